// Verification drills (issue #6 item 8; docs/tracing.md, "Verification"): a random release
// at registered sources of one river, simulated with perturbed hydraulics by the full
// network run, sampled 4-hourly with noise at the river sections, then traced and scored.
// Seeded: the same seed gives the same drill on every platform.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/tracing/priors.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"

namespace qingshui::tracing {

struct DrillOptions {
  // "sushui" (the Sushui with the Yaoxian canal, down to Zhangliuzhuang) or "fen" (the Fen
  // with the Kuai, down to Miaoqian); sources are drawn from the river's reaches.
  std::string river = "fen";
  int num_sources = 1;  // 0 (no release), 1 or 2
  std::uint64_t seed = 1;
  std::string start = "2024-04-15T00:00:00+08:00";
  double window_days = 7.0;
  double sampling_interval_h = 4.0;
  double noise = 0.1;
  double velocity_spread = 0.25;     // true velocity factor uniform in 1 ± this
  double dispersion_spread = 0.6;    // true dispersion factor uniform in 1 ± this
  double release_earliest_h = 12.0;  // release start uniform in [earliest, latest] after start
  double release_latest_h = 84.0;
  double duration_min_h = 0.5, duration_max_h = 12.0;  // log-uniform
  double cod_min_kg = 500.0, cod_max_kg = 5000.0;      // log-uniform; other species by ratio
};

struct DrillTruth {
  DrillOptions options;
  Scenario scenario;  // hydrology, events, sampling (river sections only)
  std::vector<std::string> sources;
  // River km from each source down to the first sampled station that its water passes
  // (NaN if none).
  std::vector<double> first_station_km;
};

// Draws a drill: sources uniformly among the river's registered sources that the priors
// allow (prior weight > 0), masses from the kind's species-ratio prior.
DrillTruth MakeDrill(const Network& network, const TracingPriors& priors,
                     const DrillOptions& options);

struct DrillScore {
  // Per true source (one entry per source of the drill).
  std::vector<std::string> sources;
  std::vector<bool> in_set;  // in the 90% credible set
  std::vector<int> rank;     // 1 = highest marginal probability; 0 = not ranked
  std::vector<double> first_station_km;
  // Estimates from the highest-probability hypothesis that contains the source as one of
  // exactly as many releases as the drill has (NaN if none).
  std::vector<double> start_error_h;  // |estimate − truth|
  std::vector<bool> start_covered;    // truth inside the 90% interval
  std::vector<std::map<std::string, double>> mass_relative_error;
  std::vector<std::map<std::string, bool>> mass_covered;
  int set_size = 0;
  bool no_release_first = false;
  double no_release_probability = 0.0;
  double elapsed_s = 0.0;
  std::string top_label;
  double top_probability = 0.0;
};

DrillScore ScoreDrill(const DrillTruth& truth, const TraceResult& result);

// Sources of a drill river: ids in network order.
std::vector<std::string> DrillRiverSources(const Network& network, const TracingPriors& priors,
                                           const std::string& river);

}  // namespace qingshui::tracing
