// Rapid source tracing (docs/tracing.md): which source released, when, for how long and how
// much — with posterior probabilities, intervals, identifiability and the sample that would
// best separate the leading candidates.
//
// Model: observations = baseline (a constant per station and species, estimated from the
// data) + Σ releases transported to the stations by response kernels of the network's own
// transport engine (kernels.h). A release is a finite-duration load (start, duration, mass
// per species) at a registered source or at any km of a reach ("unregistered location").
// Velocity and dispersion factors are nuisance parameters with log-normal priors.
//
// Fit: for each hypothesis (no release; one release at each candidate; up to three
// simultaneous releases) Ceres minimizes a robust (Huber) weighted least-squares misfit over
// start times, durations, positions and the two factors, with bounds; the masses enter
// linearly and are solved exactly (non-negative) inside every residual evaluation (variable
// projection); starts come from a coarse grid over start and duration (multi-start).
//
// Decision: Laplace approximation of each hypothesis' evidence over the nonlinear parameters
// and a quasi-Monte-Carlo integral over the masses under the source kind's species-ratio
// prior (data/tracing/source_signatures.yaml); posterior = prior × evidence, normalized.
#pragma once

#include <array>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/tracing/kernels.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/priors.h"

namespace qingshui::tracing {

struct TraceOptions {
  double start_s = NAN;         // window (epoch s); NaN = first observation
  double end_s = NAN;           // NaN = last observation
  int max_sources = 3;          // largest number of simultaneous releases considered (1-3)
  double noise_relative = 0.1;  // measurement noise, relative standard deviation
  // Species traced; empty = the observed species among the priors' reference species and
  // those its kinds give ratios for (COD, NH3N, TP), or every observed species if none.
  std::vector<std::string> species;
  bool unregistered = true;  // consider releases away from registered sources
  std::string date;          // day whose hydraulics the kernels use; empty = first sample's day
  std::string season;        // empty = from the date
  double temperature_c = 20.0;
  double kernel_step_s = 1800.0;
  double grid_spacing_km = 10.0;  // kernel points along the reaches (unregistered sources)
  double recommend_horizon_s = 24 * 3600.0;  // next samples are looked for up to this far ahead
  // Recommendations for a team in the field (`--within-h`): NaN = each station's best time
  // up to recommend_horizon_s; else only hourly times within this long after the window's
  // end (the current time), the best per station. When none of them separates the leading
  // hypotheses, the earliest sample up to recommend_horizon_s that does is given instead,
  // marked beyond the window, and TraceResult::next_samples_note says so.
  double recommend_within_s = NAN;
  // A team in the field (`--team-at`, docs/tracing.md §7, "A team in the field"): where it is
  // now (at the window's end) — a station id or "REACH:KM" — and how fast it travels along
  // the rivers. Empty = no team (recommendations at stations only, as without it). With a
  // team, recommendations are stations and river points every recommend_point_spacing_km
  // below the leading candidates, each reachable by then (distance along the river network /
  // team_speed_kmh <= time after the window's end), and recommend_within_s defaults to 2 h.
  std::string team_at;
  double team_speed_kmh = 30.0;
  double recommend_point_spacing_km = 1.0;
  // Kernels and fits in parallel (results do not depend on it). One thread was faster on
  // the shared two-core machine (benchmarks/RESULTS.md, "Source tracing").
  int num_threads = 1;
  TracingPriors priors;
  // Kernels kept between traces (a session; kernels.h): reused when the network, hydraulics
  // date, season, species, kernel options and sampling points are those of the last trace
  // through it, which then answers exactly as without the cache. Null: built each trace.
  std::shared_ptr<KernelCache> kernel_cache;
  // The kernels run to the window's end plus recommend_horizon_s (from lead before its
  // start); > 0 rounds that up to a multiple of this, so that a window growing by a sample
  // keeps its kernels (a session: 2 days). The tables differ only in how far they reach.
  double kernel_horizon_round_s = 0.0;

  bool IsValid(std::string* error) const;
};

struct SourceEstimate {
  std::string id;    // source id, or "unregistered"
  std::string kind;  // source kind, or "unregistered"
  std::string reach;
  double km = 0.0;
  std::array<double, 2> km_ci90 = {0.0, 0.0};  // unregistered only (else km, km)
  double release_start_s = 0.0;                // epoch s
  double release_end_s = 0.0;
  std::array<double, 2> start_ci90 = {0.0, 0.0};
  double duration_s = 0.0;
  std::array<double, 2> duration_ci90 = {0.0, 0.0};
  std::map<std::string, double> mass_kg;
  std::map<std::string, std::array<double, 2>> mass_kg_ci90;
};

struct Hypothesis {
  double probability = 0.0;
  double log_evidence = 0.0;            // log of prior × evidence (unnormalized)
  std::string label;                    // "no release", "chengxi_wwtp", "a + b", ...
  std::vector<SourceEstimate> sources;  // empty for "no release"
  double velocity_factor = 1.0, dispersion_factor = 1.0;
  std::array<double, 2> velocity_factor_ci90 = {1.0, 1.0};
  std::array<double, 2> dispersion_factor_ci90 = {1.0, 1.0};
  double misfit = 0.0;  // robust weighted sum of squares (noise-scale corrected)
  int modes = 1;        // distinct local optima merged into it
};

// How well a parameter of the leading hypothesis is determined: posterior against prior
// standard deviation (contraction = 1 − (posterior/prior)², 0 = data say nothing).
struct Identifiability {
  std::string parameter;  // e.g. "chengxi_wwtp.release_start", "velocity_factor"
  double estimate = 0.0;
  double posterior_sd = 0.0;
  double prior_sd = 0.0;
  double contraction = 0.0;
  std::string status;  // "identified", "weakly identified", "not identified"
};

struct SampleRecommendation {
  std::string station;  // a network station, or empty for a river point (reach, km)
  std::string reach;    // a river point (with a team only): reach id and river-km
  double km = NAN;
  double time_s = 0.0;
  double expected_information_nats = 0.0;
  // False for the fallback beyond TraceOptions::recommend_within_s (none within it
  // separates the leaders); always true without that option.
  bool within_window = true;
  // With a team: distance along the rivers from the team's place (km); NaN without.
  double team_distance_km = NAN;
  bool IsPoint() const { return station.empty(); }
  // Predicted concentration (mg/L, baseline included) under the leading hypotheses.
  std::vector<std::pair<std::string, std::map<std::string, double>>> predictions;
};

struct TraceSummary {
  int num_observations = 0;
  int num_stations = 0;  // observed sites: network stations and river points
  int num_points = 0;    // of which river points (mobile samples, reach and km)
  std::vector<std::string> species;
  double window_start_s = 0.0, window_end_s = 0.0;
  std::string hydraulics_date;
  int num_candidates = 0;  // registered sources some observed station can see
  int num_kernel_points = 0;
  int num_fits = 0;               // Ceres problems solved
  long long num_evaluations = 0;  // residual evaluations
  double noise_scale = 1.0;       // sqrt of the misfit per degree of freedom (>= 1 applied)
  double kernel_seconds = 0.0, fit_seconds = 0.0, total_seconds = 0.0;
  std::vector<std::string> unobservable;  // candidates no observed station can see
  // The team in the field recommendations were made for (TraceOptions::team_at; empty =
  // none), its speed and the window used (with the 2-h default applied).
  std::string team_at;
  double team_speed_kmh = NAN, team_within_s = NAN;
  std::vector<std::string> warnings;
  std::string BriefReport() const;
};

struct TraceResult {
  std::vector<Hypothesis> hypotheses;            // by probability, highest first
  std::vector<std::vector<std::string>> groups;  // candidates the stations cannot tell apart
  std::vector<std::vector<std::string>> indistinguishable;  // leading candidates fitting alike
  std::map<std::string, double> source_probability;         // P(a source released), by label
  std::vector<std::string> credible_set_90;        // labels of the smallest set holding 90%
  std::vector<Identifiability> identifiability;    // of the leading hypothesis
  std::vector<SampleRecommendation> next_samples;  // best first
  // What the recommendations cannot give (with recommend_within_s): nothing within the
  // window separates the leaders, or nothing up to the horizon does; empty otherwise.
  std::string next_samples_note;
  TraceSummary summary;
  double elapsed_s = 0.0;
};

// Traces the observations. Throws ConfigError (unknown stations or species, bad options) or
// DataError (no observations in the window).
TraceResult Trace(const Network& network, const ObservationSet& observations,
                  const TraceOptions& options);

// Checks a team's place (TraceOptions::team_at: a station id or "REACH:KM") against the
// network; throws ConfigError "FIELD: ..." naming what is wrong (unknown station or reach, a
// malformed km, a km outside the reach). Trace() does the same with the field
// "trace options: team_at".
void CheckTeamAt(const Network& network, const std::string& team_at,
                 const std::string& field = "trace options: team_at");

// The JSON of `qingshui trace --json` (docs/tracing.md, "Output").
std::string TraceResultJson(const TraceResult& result);
// A readable report: ranking table, groups, diagnostics, next sample.
std::string TraceResultTable(const TraceResult& result);

}  // namespace qingshui::tracing
