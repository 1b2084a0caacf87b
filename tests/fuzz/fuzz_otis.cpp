// Fuzz target: the OTIS deck reader (ReadOtisDeck: control.inp, the parameter file, the
// flow file and, for OTIS-P decks, the data and STARPAC files). One input holds every file
// of a deck, each after a line "@@@ NAME":
//
//   @@@ control.inp
//   ...
//   @@@ params.inp
//   ...
//
// The files are written to a private directory (in /dev/shm when it exists) and the deck
// read from there. Names are restricted to [A-Za-z0-9._-] so that nothing is written
// outside that directory. A deck that reads must also map onto the transport problem
// (OtisProblem, OtisOptions) when it is small enough to grid; any exception other than
// ConfigError/DataError, a crash or a sanitizer report is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "qingshui/core/error.h"
#include "qingshui/core/otis.h"

namespace {

std::string DeckDir() {
  namespace fs = std::filesystem;
  const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
  return (base / ("qingshui-fuzz-otis-" + std::to_string(::getpid()))).string();
}

bool SafeName(const std::string& name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void WriteDeck(const std::string& dir, const std::string& text) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir);
  std::string name, body;
  auto flush = [&]() {
    if (SafeName(name)) std::ofstream(dir + "/" + name, std::ios::binary) << body;
    body.clear();
  };
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    if (line.rfind("@@@ ", 0) == 0) {
      flush();
      name = line.substr(4);
    } else {
      body += line;
      if (end < text.size()) body += '\n';
    }
    pos = end + 1;
  }
  flush();
}

// The deck directory, removed when the fuzzer exits normally (registered after the string
// is built, so that it runs before the string is destroyed).
const std::string& Dir() {
  static const std::string dir = DeckDir();
  static const bool cleanup = (std::atexit([] {
                                 std::error_code ec;
                                 std::filesystem::remove_all(Dir(), ec);
                               }),
                               true);
  (void)cleanup;
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = Dir();
  WriteDeck(dir, std::string(reinterpret_cast<const char*>(data), size));
  try {
    const qingshui::OtisDeck deck = qingshui::ReadOtisDeck(dir);
    // Grid only decks of a sane size (a fuzzed NSEG of 10^9 is legal for the reader but
    // would make this target measure the allocator).
    if (deck.NumSegments() > 0 && deck.NumSegments() <= 5000) {
      (void)qingshui::OtisProblem(deck);
      (void)qingshui::OtisOptions(deck);
    }
  } catch (const qingshui::ConfigError&) {
  } catch (const qingshui::DataError&) {
  }
  return 0;
}
