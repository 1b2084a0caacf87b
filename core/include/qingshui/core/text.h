// Small text helpers shared by the writers and readers of several libraries.
#pragma once

#include <string>
#include <vector>

namespace qingshui {

// s as a JSON string literal, quotes included: ", \ and control characters escaped
// (UTF-8 passes through unchanged).
std::string JsonString(const std::string& s);

// The fields of one CSV record (RFC 4180 quoting within the line: "a,b" is one field, ""
// inside quotes is a quote), each with surrounding whitespace removed. A quote left open
// at the end of the line sets *unterminated (when given); the text read so far is kept.
std::vector<std::string> SplitCsvLine(const std::string& line, bool* unterminated = nullptr);

}  // namespace qingshui
