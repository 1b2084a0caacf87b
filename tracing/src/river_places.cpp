#include "river_places.h"

#include <cmath>
#include <cstdlib>
#include <map>

#include "qingshui/core/error.h"
#include "qingshui/tracing/tracer.h"
#include "reach_km.h"

namespace qingshui::tracing::detail {

namespace {

// The reach the water of reach r enters next (through in-line lakes), or nullptr at an
// outlet.
const Reach* NextReach(const Network& net, const Reach& r) {
  std::string next = r.downstream;
  for (int hops = 0; hops < 64 && !next.empty(); ++hops) {
    if (const Reach* d = net.FindReach(next)) return d;
    const Lake* lake = net.FindLake(next);
    if (!lake) return nullptr;  // an outlet
    next = lake->downstream;
  }
  return nullptr;
}

// Reaches on the way down from a place, each with the km where the water enters it and the
// distance travelled to get there.
struct Step {
  const Reach* reach;
  double entry_km;
  double distance_km;
};
std::vector<Step> PathDown(const Network& net, const RiverPlace& p) {
  std::vector<Step> path;
  const Reach* r = net.FindReach(p.reach);
  double km = p.km, travelled = 0.0;
  while (r && path.size() < 1000) {
    path.push_back({r, km, travelled});
    travelled += r->end_km() - km;
    r = NextReach(net, *r);
    if (r) km = r->start_km;
  }
  return path;
}

}  // namespace

RiverPlace ParseTeamAt(const Network& net, const std::string& text, const std::string& field) {
  auto fail = [&](const std::string& what) { throw ConfigError(field + ": " + what); };
  const auto colon = text.rfind(':');
  if (colon == std::string::npos) {
    const Station* st = net.FindStation(text);
    if (!st) {
      fail("unknown station '" + text +
           "' (not in the network; give a station id or REACH:KM, e.g. fen_lower:55)");
    }
    return {st->reach, st->km};
  }
  RiverPlace p;
  p.reach = text.substr(0, colon);
  const std::string km_text = text.substr(colon + 1);
  const Reach* reach = net.FindReach(p.reach);
  if (!reach) fail("unknown reach '" + p.reach + "' in '" + text + "' (not in the network)");
  char* end = nullptr;
  p.km = std::strtod(km_text.c_str(), &end);
  if (km_text.empty() || end != km_text.c_str() + km_text.size() || !std::isfinite(p.km)) {
    fail("malformed km '" + km_text + "' in '" + text + "' (expected REACH:KM, e.g. " + p.reach +
         ":" + std::to_string(static_cast<int>(reach->start_km)) + ")");
  }
  const std::string outside = KmOutsideReach(*reach, p.km, 1e-6);
  if (!outside.empty()) fail(outside);
  return p;
}

double RiverDistanceKm(const Network& net, const RiverPlace& a, const RiverPlace& b) {
  const std::vector<Step> pa = PathDown(net, a), pb = PathDown(net, b);
  std::map<const Reach*, const Step*> on_b;
  for (const Step& s : pb) on_b[s.reach] = &s;
  for (const Step& s : pa) {
    auto it = on_b.find(s.reach);
    if (it == on_b.end()) continue;
    return s.distance_km + it->second->distance_km + std::abs(s.entry_km - it->second->entry_km);
  }
  return INFINITY;
}

std::vector<RiverPlace> PointsBelow(const Network& net, const RiverPlace& from, double spacing_km,
                                    double range_km) {
  std::vector<RiverPlace> out;
  for (const Step& s : PathDown(net, from)) {
    if (s.distance_km > range_km) break;
    const double end = s.reach->end_km();
    // Multiples of the spacing, strictly below the place on its own reach.
    double km = std::floor(s.entry_km / spacing_km + 1e-9) * spacing_km;
    if (km <= s.entry_km + 1e-9 && s.distance_km == 0.0) km += spacing_km;
    if (km < s.entry_km - 1e-9) km += spacing_km;
    for (; km <= end + 1e-9; km += spacing_km) {
      if (s.distance_km + (km - s.entry_km) > range_km + 1e-9) break;
      out.push_back({s.reach->id, std::min(km, end)});
    }
  }
  return out;
}

}  // namespace qingshui::tracing::detail

namespace qingshui::tracing {

void CheckTeamAt(const Network& net, const std::string& team_at, const std::string& field) {
  detail::ParseTeamAt(net, team_at, field);
}

}  // namespace qingshui::tracing
