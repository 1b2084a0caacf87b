#include "qingshui/tracing/candidates.h"

#include <algorithm>

#include "qingshui/core/error.h"

namespace qingshui::tracing {

namespace {

// River distance from (reach_a, km_a) down to (reach_b, km_b); negative if not downstream.
double DownstreamDistanceKm(const Network& net, const std::string& reach_a, double km_a,
                            const std::string& reach_b, double km_b) {
  if (!net.FlowsTo(reach_a, km_a, reach_b, km_b)) return -1.0;
  if (reach_a == reach_b) return km_b - km_a;
  const Reach* a = net.FindReach(reach_a);
  double distance = a->end_km() - km_a;
  std::string node = a->downstream;
  while (!node.empty() && node != reach_b) {
    if (const Reach* r = net.FindReach(node)) {
      distance += r->length_m / 1000.0;
      node = r->downstream;
    } else if (const Lake* l = net.FindLake(node)) {
      node = l->downstream;
    } else {
      return -1.0;
    }
  }
  return distance + (km_b - net.FindReach(reach_b)->start_km);
}

}  // namespace

std::vector<Candidate> UpstreamCandidates(const Network& net, const std::string& station_id) {
  const Station* station = net.FindStation(station_id);
  if (!station) throw ConfigError("unknown station '" + station_id + "'");
  std::vector<Candidate> out;
  for (const auto& s : net.sources) {
    double d = DownstreamDistanceKm(net, s.reach, s.km, station->reach, station->km);
    if (d >= 0.0) out.push_back({s.id, d});
  }
  std::sort(out.begin(), out.end(),
            [](const Candidate& a, const Candidate& b) { return a.distance_km < b.distance_km; });
  return out;
}

}  // namespace qingshui::tracing
