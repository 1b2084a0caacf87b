// `qingshui calibrate CONFIG.yaml [--network NETWORK] [--out-dir DIR]` — fits a network's
// transport parameters (per-reach dispersion, storage zone, decay, velocity scale) to
// observed concentrations (docs/calibration.md §2) and writes estimates.csv,
// correlation.csv and residuals.csv. The numbers come from qingshui::calibration.
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "qingshui/calibration/calibrate.h"
#include "qingshui/core/error.h"
#include "qingshui/core/network.h"

namespace qingshui::cli {

namespace {

void Usage(std::ostream& out) {
  out << "usage: qingshui calibrate CONFIG.yaml [--network NETWORK] [--out-dir DIR]\n\n"
         "Fits the parameters listed in CONFIG (dispersion_m2s, storage_area_ratio,\n"
         "exchange_per_s per reach, decay_per_day per species, velocity_factor) to the\n"
         "observations it names (CSV time,station,species,value; ISO 8601 times with an\n"
         "offset) by Levenberg-Marquardt on network runs, with bounds, priors and weights per\n"
         "station and species (docs/calibration.md). Writes DIR/estimates.csv (with standard\n"
         "errors), DIR/correlation.csv and DIR/residuals.csv (default DIR: .).\n"
         "The network is --network, else the one CONFIG names, else the built-in network.\n"
         "exit codes: 0 success, 1 runtime failure, 2 invalid input or usage\n";
}

void Write(const std::filesystem::path& path, const std::string& text) {
  WriteFileAtomically(path.string(), text);
}

}  // namespace

int RunCalibrate(const Args& args, std::ostream& out, std::ostream& err) {
  std::string config, network, out_dir = ".";
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--help" || a == "-h") {
      Usage(out);
      return kExitOk;
    } else if ((a == "--network" || a == "--out-dir") && k + 1 < args.size()) {
      (a == "--network" ? network : out_dir) = args[++k];
    } else if (!a.empty() && a[0] == '-') {
      err << "qingshui calibrate: unknown or incomplete option '" << a << "'\n";
      Usage(err);
      return kExitInvalidInput;
    } else if (config.empty()) {
      config = a;
    } else {
      err << "qingshui calibrate: more than one configuration file given\n";
      return kExitInvalidInput;
    }
  }
  if (config.empty()) {
    Usage(err);
    return kExitInvalidInput;
  }
  std::string named;
  const calibration::CalibrationProblem problem = calibration::ReadCalibrationFile(config, &named);
  if (network.empty()) network = named.empty() ? DefaultNetworkPath() : named;
  const Network net = LoadNetwork(network);
  const calibration::CalibrationResult result = calibration::Calibrate(net, problem);
  std::filesystem::create_directories(out_dir);
  const std::filesystem::path dir(out_dir);
  Write(dir / "estimates.csv", calibration::FormatEstimates(result));
  Write(dir / "correlation.csv", calibration::FormatCorrelation(result));
  Write(dir / "residuals.csv", calibration::FormatResiduals(result));
  out << result.BriefReport();
  out << "wrote " << (dir / "estimates.csv").string() << ", correlation.csv, residuals.csv\n";
  return kExitOk;
}

}  // namespace qingshui::cli
