// Values given to command-line options: shared by the subcommands that take numbers.
#include <cmath>
#include <cstdlib>
#include <string>

#include "commands.h"
#include "qingshui/core/error.h"

namespace qingshui::cli {

double ParseNumberOption(const std::string& option, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
    throw ConfigError(option + ": expected a number, got '" + text + "'");
  }
  return v;
}

}  // namespace qingshui::cli
