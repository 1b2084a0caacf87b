// Small text helpers shared by the writers and readers of several libraries.
#pragma once

#include <string>
#include <vector>

namespace qingshui {

// s as a JSON string literal, quotes included: ", \ and control characters escaped
// (UTF-8 passes through unchanged).
std::string JsonString(const std::string& s);

}  // namespace qingshui
