// One place where tests find the repository's data and the built CLI.
#pragma once

#include <string>

namespace qingshui::testing {

// Absolute path of a file in the source tree, e.g. DataPath("data/yuncheng/network.yaml").
std::string SourcePath(const std::string& relative);

// The whole text of a file in the source tree (throws std::runtime_error if unreadable).
std::string ReadSourceFile(const std::string& relative);

// Absolute path of the built `qingshui` program.
std::string CliPath();

// Runs a shell command, returns its exit code and fills `output` with stdout+stderr.
int RunCommand(const std::string& command, std::string* output);

// A fresh temporary directory (removed by the OS, not by the test).
std::string TempDir(const std::string& tag);

}  // namespace qingshui::testing
