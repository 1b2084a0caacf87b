// `qingshui otis DECK_DIR --out-dir OUT_DIR` — placeholder until the transport issue lands.
#include "commands.h"

namespace qingshui::cli {

int RunOtis(const Args&, std::ostream&, std::ostream& err) {
  err << "qingshui otis: the OTIS-compatible transport engine is not built yet (issue #3)\n";
  return kExitFailure;
}

}  // namespace qingshui::cli
