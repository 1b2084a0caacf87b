// Synthetic truth for twin experiments and demo data (docs/forecast.md, "Verification"):
// the network run with an inputs directory's records, schedule and weather, every
// component's loads (headwater concentrations, each source's loads) scaled by a factor
// drawn once per component and species — log-normal, mean 1, with the analysis prior's
// standard deviations times `factor_scale` — and by daily AR(1) noise; then observations
// sampled from that run with the analysis' error model.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/forecast/forecast.h"
#include "qingshui/forecast/inputs.h"

namespace qingshui::forecast {

struct TruthOptions {
  std::int64_t first_day = 0;  // local day of the start (00:00 local)
  int days = 1;
  std::uint64_t seed = 1;
  double factor_scale = 1.0;  // × the assimilation prior's standard deviations
  double daily_sigma = 0.10;  // log-sd of the daily noise
  double autocorrelation = 0.7;
  double time_step_s = 1800.0;
  double output_interval_s = 3600.0;
  AssimilationOptions prior;  // the standard deviations the factors are drawn with
};

struct Truth {
  std::vector<std::int64_t> times_utc_s;
  std::vector<std::string> stations;  // river stations (as the forecast's)
  std::vector<std::string> species;
  std::vector<double> values;  // [time][station][species], mg/L
  std::vector<std::string> components;
  std::vector<double> factors;  // [component][species], the constant part

  // Linear interpolation in time; NaN outside the run.
  double At(std::int64_t utc_s, int station, int species) const;
};

Truth SimulateTruth(const Network& network, const ForecastInputs& inputs,
                    const TruthOptions& options);

// Samples of the truth at every river station from `from` to `to` (UTC s): every station's
// sampling interval on the local clock (daily stations at 10:00 local), each value
// truth + N(0, σ²) with σ = sqrt(floor² + (relative_error·truth)²) as in the analysis,
// floored at 0; only `species` (empty = all).
std::vector<Observation> SampleObservations(const Truth& truth, const Network& network,
                                            std::int64_t from_utc_s, std::int64_t to_utc_s,
                                            std::uint64_t seed, const AssimilationOptions& errors,
                                            const std::vector<std::string>& species = {});

}  // namespace qingshui::forecast
