// Which sources can have caused what a station sees: everything that drains past it.
#pragma once

#include <string>
#include <vector>

#include "qingshui/core/network.h"

namespace qingshui::tracing {

struct Candidate {
  std::string source_id;
  double distance_km = 0.0;  // river distance from the source down to the station
};

// Sources upstream of `station_id` (water from them passes the station), nearest first.
// Throws ConfigError for an unknown station. Distances follow the reaches' river-km,
// adding the full length of each intermediate reach (lakes count as zero length).
std::vector<Candidate> UpstreamCandidates(const Network& network, const std::string& station_id);

}  // namespace qingshui::tracing
