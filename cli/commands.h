// Subcommands of the `qingshui` program. Each takes the arguments after its name and
// returns the process exit code: 0 success, 1 runtime failure, 2 invalid input or usage.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace qingshui::cli {

using Args = std::vector<std::string>;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitInvalidInput = 2;

int RunCheck(const Args& args, std::ostream& out, std::ostream& err);
int RunCalibrate(const Args& args, std::ostream& out, std::ostream& err);  // calibrate_command.cpp
int RunAllocate(const Args& args, std::ostream& out, std::ostream& err);   // allocate_command.cpp
int RunForecast(const Args& args, std::ostream& out, std::ostream& err);
int RunHydro(const Args& args, std::ostream& out, std::ostream& err);
int RunOtis(const Args& args, std::ostream& out, std::ostream& err);
int RunSimulate(const Args& args, std::ostream& out, std::ostream& err);
int RunTrace(const Args& args, std::ostream& out, std::ostream& err);

// Writes contents to path atomically: a temporary file beside it (named after this process,
// so concurrent runs into one folder do not share it), renamed over path only when complete.
// A failure (full disk, unwritable folder) removes the temporary and leaves the previous
// file; a path that exists and is not a regular file (a FIFO, a device) is refused.
// Throws std::runtime_error naming the file and the reason.
void WriteFileAtomically(const std::string& path, const std::string& contents);

// A finite number given to an option; ConfigError "OPTION: expected a number, got 'TEXT'".
double ParseNumberOption(const std::string& option, const std::string& text);

// Path of the built-in Yuncheng network (QINGSHUI_NETWORK overrides it).
std::string DefaultNetworkPath();
// Path of the tracing priors (data/tracing/source_signatures.yaml beside the network's
// data; QINGSHUI_TRACING_PRIORS overrides it).
std::string DefaultPriorsPath();

}  // namespace qingshui::cli
