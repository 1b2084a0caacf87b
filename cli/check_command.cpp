// `qingshui check NETWORK` — validate a network file and print its summary.
#include <cstdlib>

#include "commands.h"
#include "qingshui/core/network.h"

namespace qingshui::cli {

std::string DefaultNetworkPath() {
  if (const char* env = std::getenv("QINGSHUI_NETWORK"); env && *env) return env;
  return QINGSHUI_DEFAULT_NETWORK;
}

int RunCheck(const Args& args, std::ostream& out, std::ostream& err) {
  std::string path;
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      out << "usage: qingshui check [NETWORK]\n\n"
             "Validates a network file (docs/network-format.md) and prints a summary: reaches\n"
             "and their total length, segments, sources by kind, stations, species.\n"
             "Without NETWORK, checks the built-in Yuncheng network.\n"
             "exit codes: 0 valid, 2 invalid (one line per error: file:line: field: what)\n";
      return kExitOk;
    }
    if (!a.empty() && a[0] == '-') {
      err << "qingshui check: unknown option '" << a << "' (see qingshui check --help)\n";
      return kExitInvalidInput;
    }
    if (!path.empty()) {
      err << "qingshui check: expected one network file, got '" << path << "' and '" << a
          << "'\n";
      return kExitInvalidInput;
    }
    path = a;
  }
  if (path.empty()) path = DefaultNetworkPath();
  const Network net = LoadNetwork(path);
  out << FormatSummary(net);
  out << "valid\n";
  return kExitOk;
}

}  // namespace qingshui::cli
