// Places on the river network for a team in the field (docs/tracing.md §7, "A team in the
// field"): where the team is (`--team-at STATION|REACH:KM`), how far it is along the rivers
// to another place, and the river points every so many km below a place.
#pragma once

#include <string>
#include <vector>

#include "qingshui/core/network.h"

namespace qingshui::tracing::detail {

struct RiverPlace {
  std::string reach;
  double km = 0.0;
};

// A station id or "REACH:KM" (a river-km of that reach). Throws ConfigError "FIELD: ..."
// for an unknown station or reach, a malformed km or a km outside the reach.
RiverPlace ParseTeamAt(const Network& net, const std::string& text,
                       const std::string& field = "trace options: team_at");

// Distance along the river network (km): down from each place to the first reach both
// reach, then along it. Lakes count as no distance (their outflow reach starts where the
// inflows end). INFINITY when the two drain to different outlets.
double RiverDistanceKm(const Network& net, const RiverPlace& a, const RiverPlace& b);

// Points every spacing_km (at multiples of spacing_km in river-km) strictly below `from`,
// following the water down reaches and through lakes, up to `range_km` of river below it.
std::vector<RiverPlace> PointsBelow(const Network& net, const RiverPlace& from, double spacing_km,
                                    double range_km);

}  // namespace qingshui::tracing::detail
