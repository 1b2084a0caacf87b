// qingshui — command-line entry point. Dispatches to one function per subcommand and
// turns library exceptions into one-line messages and documented exit codes.
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>

#include "commands.h"
#include "qingshui/core/error.h"

namespace {

using qingshui::cli::Args;
using Command = std::function<int(const Args&, std::ostream&, std::ostream&)>;

struct Entry {
  Command run;
  const char* summary;
};

const std::map<std::string, Entry>& Commands() {
  static const std::map<std::string, Entry> commands = {
      {"allocate", {qingshui::cli::RunAllocate, "effluent limits that meet section targets with a probability"}},
      {"calibrate", {qingshui::cli::RunCalibrate, "fit transport parameters to observed concentrations"}},
      {"check", {qingshui::cli::RunCheck, "validate a network file and print its summary"}},
      {"forecast", {qingshui::cli::RunForecast, "forecast water quality at the sections"}},
      {"hydro",
       {qingshui::cli::RunHydro, "flow, depth, velocity, dispersion per segment for a day"}},
      {"otis", {qingshui::cli::RunOtis, "run a USGS OTIS input deck, write OTIS-format output"}},
      {"simulate",
       {qingshui::cli::RunSimulate, "run a synthetic release scenario, sample the stations"}},
      {"trace",
       {qingshui::cli::RunTrace, "rank the sources of an exceedance: when, how much, how sure"}},
  };
  return commands;
}

void PrintUsage(std::ostream& out) {
  out << "usage: qingshui COMMAND [ARGS...]\n\n"
         "Water-quality forecasting and pollution source tracing for river networks.\n\n"
         "commands:\n";
  for (const auto& [name, entry] : Commands()) {
    out << "  " << name << std::string(12 - name.size(), ' ') << entry.summary << "\n";
  }
  out << "\n'qingshui COMMAND --help' describes a command.\n"
         "exit codes:\n"
         "  0  success\n"
         "  1  runtime failure: a numerical method failed, an output cannot be written\n"
         "     (unwritable folder, disk full), an input file changed during the run; an\n"
         "     output is replaced only when complete, so the previous file is kept\n"
         "  2  invalid input or usage: the message names file, line and field (also a\n"
         "     corrupt or truncated HDF5 input)\n"
         "  (killed by a signal: the shell reports 128 + signal; previous outputs intact)\n"
         "docs/reliability.md lists the failure cases tried.\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(std::cerr);
    return qingshui::cli::kExitInvalidInput;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(std::cout);
    return qingshui::cli::kExitOk;
  }
  if (name == "--version") {
    std::cout << "qingshui " << QINGSHUI_VERSION << "\n";
    return qingshui::cli::kExitOk;
  }
  auto it = Commands().find(name);
  if (it == Commands().end()) {
    std::cerr << "qingshui: unknown command '" << name << "'\n\n";
    PrintUsage(std::cerr);
    return qingshui::cli::kExitInvalidInput;
  }
  Args args(argv + 2, argv + argc);
  try {
    const int code = it->second.run(args, std::cout, std::cerr);
    // A report that could not be printed (standard output on a full disk, a closed pipe)
    // is a failure, not a success with nothing said.
    std::cout.flush();
    if (!std::cout) {
      std::cerr << "qingshui " << name << ": error: cannot write to standard output\n";
      return code == qingshui::cli::kExitOk ? qingshui::cli::kExitFailure : code;
    }
    return code;
  } catch (const qingshui::ConfigError& e) {
    std::cerr << "qingshui " << name << ": " << e.what() << "\n";
    return qingshui::cli::kExitInvalidInput;
  } catch (const qingshui::DataError& e) {
    std::cerr << "qingshui " << name << ": " << e.what() << "\n";
    return qingshui::cli::kExitInvalidInput;
  } catch (const std::exception& e) {
    std::cerr << "qingshui " << name << ": error: " << e.what() << "\n";
    return qingshui::cli::kExitFailure;
  }
}
