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

  // Calibration drills (issue #16, "Calibrated in every season"). The defaults below leave
  // a drill exactly as without them (their random numbers come from a second generator).
  //
  // Window start: 1-12 = 00:00 local of a day drawn uniformly in that month of `year`
  // (replaces `start`); 0 = `start`.
  int month = 0;
  int year = 2024;
  // Share of releases whose NH3-N and TP are drawn independently of the source kind,
  // uniform in [min, max] × COD, instead of from the kind's species-ratio prior.
  double independent_ratio_share = 0.0;
  double independent_nh3n_min = 0.05, independent_nh3n_max = 0.20;
  double independent_tp_min = 0.01, independent_tp_max = 0.03;
  // Rain inside the window: this many consecutive days, the first drawn uniformly among
  // the window's days, each with rain log-uniform in [min, max] mm on every catchment;
  // the network's runoff and combined-sewer overflows follow (hydro/rain.h).
  int rain_days = 0;
  double rain_mm_min = 10.0, rain_mm_max = 80.0;
  // The truth run on a grid and step the tracer does not use: every reach's segments cut
  // into this many, and this time step (the tracer's kernels: the network's segments,
  // TraceOptions::kernel_step_s).
  int truth_refine = 1;
  double truth_time_step_s = 1800.0;
  // Storage-zone mismatch: in the truth run every reach's transient-storage area ratio and
  // exchange rate are multiplied by factors log-uniform in [1/spread, spread] (1 = none).
  double storage_area_spread = 1.0;
  double storage_exchange_spread = 1.0;

  bool IsValid(std::string* error) const;
};

struct DrillTruth {
  DrillOptions options;
  Scenario scenario;  // hydrology, events, sampling (river sections only)
  std::vector<std::string> sources;
  // River km from each source down to the first sampled station that its water passes
  // (NaN if none).
  std::vector<double> first_station_km;
  // Strata and perturbations (one entry per source where a vector).
  int month = 0;  // of the window start, local time
  std::vector<double> cod_kg;
  std::vector<bool> independent_ratio;  // NH3-N/TP drawn independently of the kind
  // Largest |ln(ratio / kind median)| / log_sd over the species the kind's prior has
  // (NaN if the kind has none): how atypical the release is for its kind.
  std::vector<double> ratio_z;
  std::vector<std::string> rain_dates;  // days with rain (empty = none)
  // Sources that spill raw sewage in the window because of the rain (a plant whose sewers
  // overflow, and its storm_overflow source): real releases the truth run contains beside
  // the drill's own, which a tracer may rightly find.
  std::vector<std::string> overflow_sources;
  double storage_area_factor = 1.0, storage_exchange_factor = 1.0;
};

// The network the truth run uses: segments refined and storage zones perturbed as the
// drill's options say (a copy of `network` when they are the defaults).
Network DrillTruthNetwork(const Network& network, const DrillTruth& truth);
// Runs the drill's truth: RunScenario on DrillTruthNetwork.
ScenarioRun RunDrill(const Network& network, const DrillTruth& truth);

// The stratum of a one-release drill (its first source), for calibration tables.
struct DrillStratum {
  int month = 0;
  std::string mass;      // COD "0.2-0.6 t", "0.6-1.7 t", "1.7-5 t" (thirds of 0.2-5 t in log)
  std::string ratio;     // "typical" (kind's prior) or "atypical" (independent of the kind)
  std::string distance;  // to the first sampled station: "< 10 km", "10-30 km", ">= 30 km"
  bool rain = false;
};
DrillStratum StratumOf(const DrillTruth& truth);

// Draws a drill: sources uniformly among the river's registered sources that the priors
// allow (prior weight > 0), masses from the kind's species-ratio prior (or independently
// of it, DrillOptions::independent_ratio_share). Throws ConfigError for invalid options.
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
