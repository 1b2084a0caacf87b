// Helpers shared by the forecast library's source files (not part of its interface).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace qingshui::forecast::detail {

std::string ReadTextFile(const std::string& path);  // ConfigError when it cannot be read
std::string Trim(const std::string& s);
// Whole text is a number (strtod); false for empty or trailing text.
bool ParseNumber(const std::string& text, double* value);
// (line number, line) of every non-blank, non-comment line.
std::vector<std::pair<int, std::string>> CsvLines(const std::string& text);

}  // namespace qingshui::forecast::detail
