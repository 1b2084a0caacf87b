// `qingshui forecast` — the daily forecast (issue #5). Until the forecasting engine exists
// this says so honestly and prints the network it would forecast; it never invents numbers.
#include "commands.h"
#include "qingshui/core/network.h"

namespace qingshui::cli {

int RunForecast(const Args& args, std::ostream& out, std::ostream& err) {
  std::string path;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      out << "usage: qingshui forecast [--network PATH]\n\n"
             "Forecasts water quality at the assessment sections. Not built yet: for now it\n"
             "validates the network and prints its summary.\n";
      return kExitOk;
    }
    if (a == "--network" && i + 1 < args.size()) {
      path = args[++i];
      continue;
    }
    err << "qingshui forecast: unknown or incomplete option '" << a << "'\n";
    return kExitInvalidInput;
  }
  if (path.empty()) path = DefaultNetworkPath();
  const Network net = LoadNetwork(path);
  out << "qingshui forecast: forecasting is not built yet (issue #5); no forecast is printed.\n"
         "The network it will forecast:\n\n";
  out << FormatSummary(net);
  return kExitOk;
}

}  // namespace qingshui::cli
