// The one way the CLI writes a text result file (see commands.h).
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "commands.h"

namespace qingshui::cli {

// Temporary file beside the target (so the rename stays on one file system), named after
// this process so that concurrent runs into one folder do not share it; removed when the
// write fails, so a full disk or an unwritable folder leaves only the previous file.
void WriteFileAtomically(const std::string& target, const std::string& contents) {
  const std::filesystem::path path(target);
  std::filesystem::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  auto fail = [&](const std::string& why) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw std::runtime_error("cannot write " + path.string() + ": " + why +
                             " (the previous file, if any, is unchanged)");
  };
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("cannot write " + path.string() +
                             ": it exists and is not a regular file (not replaced)");
  }
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(std::strerror(errno));
    f << contents;
    f.flush();
    if (!f) fail(std::strerror(errno));
    f.close();
    if (!f) fail(std::strerror(errno));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) fail(ec.message());
}

}  // namespace qingshui::cli
