#include "qingshui/core/error.h"

namespace qingshui {

std::string Located(const std::string& file, int line, const std::string& field,
                    const std::string& what) {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += what;
  return out;
}

}  // namespace qingshui
