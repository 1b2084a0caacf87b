// `qingshui allocate ALLOCATION.yaml [--network NETWORK] [--out-dir DIR]
// [--scenarios N] [--verify N]` — effluent limits for controllable sources that meet section
// targets with a probability at least removal or cost (docs/calibration.md §3); writes
// limits.csv and targets.csv and prints the answer with the forward Monte Carlo check.
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "qingshui/calibration/allocation.h"
#include "qingshui/core/error.h"
#include "qingshui/core/network.h"

namespace qingshui::cli {

namespace {

void Usage(std::ostream& out) {
  out << "usage: qingshui allocate [ALLOCATION.yaml] [--network NETWORK] [--out-dir DIR]\n"
         "                         [--scenarios N] [--verify N] [--probability P]\n\n"
         "Chooses effluent limits for the controllable sources in ALLOCATION (default:\n"
         "data/yuncheng/allocation.yaml) so that the targets (class limits at stations, as\n"
         "monthly means) are met with the stated probability under the flow and rate\n"
         "uncertainty it describes, at least total removal (kg/d) or cost, within each\n"
         "source's technical minimum: a scenario linear program on the linear transport\n"
         "response, solved by GLPK, re-linearized at the solution and checked by a forward\n"
         "Monte Carlo of full model runs with fresh scenarios (docs/calibration.md).\n"
         "Writes DIR/limits.csv and DIR/targets.csv (default DIR: .).\n"
         "exit codes: 0 success (also when the targets cannot be met: the report says so),\n"
         "1 runtime failure, 2 invalid input or usage\n";
}

void Write(const std::filesystem::path& path, const std::string& text) {
  WriteFileAtomically(path.string(), text);
}

}  // namespace

int RunAllocate(const Args& args, std::ostream& out, std::ostream& err) {
  std::string config, network, out_dir = ".";
  int scenarios = -1, verify = -1;
  double probability = -1;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--help" || a == "-h") {
      Usage(out);
      return kExitOk;
    }
    const bool has_value = k + 1 < args.size();
    try {
      if (a == "--network" && has_value) {
        network = args[++k];
      } else if (a == "--out-dir" && has_value) {
        out_dir = args[++k];
      } else if (a == "--scenarios" && has_value) {
        scenarios = std::stoi(args[++k]);
      } else if (a == "--verify" && has_value) {
        verify = std::stoi(args[++k]);
      } else if (a == "--probability" && has_value) {
        probability = std::stod(args[++k]);
      } else if (!a.empty() && a[0] == '-') {
        err << "qingshui allocate: unknown or incomplete option '" << a << "'\n";
        Usage(err);
        return kExitInvalidInput;
      } else if (config.empty()) {
        config = a;
      } else {
        err << "qingshui allocate: more than one allocation file given\n";
        return kExitInvalidInput;
      }
    } catch (const std::exception&) {
      err << "qingshui allocate: " << a << ": expected a number\n";
      return kExitInvalidInput;
    }
  }
  if (network.empty()) network = DefaultNetworkPath();
  if (config.empty()) {
    config = (std::filesystem::path(network).parent_path() / "allocation.yaml").string();
  }
  calibration::AllocationProblem problem = calibration::ReadAllocationFile(config);
  if (scenarios > 0) problem.scenarios = scenarios;
  if (verify >= 0) problem.verification_scenarios = verify;
  if (probability > 0) problem.probability = probability;
  const Network net = LoadNetwork(network);
  const calibration::AllocationResult r = calibration::Allocate(net, problem);
  std::filesystem::create_directories(out_dir);
  Write(std::filesystem::path(out_dir) / "limits.csv", calibration::FormatLimits(r));
  Write(std::filesystem::path(out_dir) / "targets.csv", calibration::FormatTargets(r));
  out << r.BriefReport();
  out << "wrote " << (std::filesystem::path(out_dir) / "limits.csv").string() << ", targets.csv\n";
  return kExitOk;
}

}  // namespace qingshui::cli
