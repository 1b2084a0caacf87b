// A river-km given for a reach (scenario events and sampling points, point samples in an
// observations file): the one check and message for all of them.
#pragma once

#include <sstream>
#include <string>

#include "qingshui/core/network.h"

namespace qingshui::tracing::detail {

// "" when km lies on the reach (within tol, km), else "km K is outside reach R (A to B)".
inline std::string KmOutsideReach(const Reach& reach, double km, double tol) {
  if (km >= reach.start_km - tol && km <= reach.end_km() + tol) return "";
  std::ostringstream what;
  what << "km " << km << " is outside reach " << reach.id << " (" << reach.start_km << " to "
       << reach.end_km() << ")";
  return what.str();
}

}  // namespace qingshui::tracing::detail
