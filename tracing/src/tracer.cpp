#include "qingshui/tracing/tracer.h"

#include <algorithm>
#include <memory>

#include "qingshui/core/error.h"
#include "river_places.h"
#include "trace_context.h"

namespace qingshui::tracing {

using detail::Clock;
using detail::kRecommendStepS;

// With a team in the field and no --within-h: recommendations within the next two hours.
constexpr double kDefaultTeamWithinS = 2 * 3600.0;
using detail::Model;
using detail::Seconds;
using detail::TraceRun;

bool TraceOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (max_sources < 1 || max_sources > 3) return fail("max_sources: expected 1, 2 or 3");
  if (!(noise_relative > 0) || noise_relative >= 1) {
    return fail("noise_relative: expected a relative standard deviation in (0, 1)");
  }
  if (std::isfinite(start_s) && std::isfinite(end_s) && !(end_s > start_s)) {
    return fail("end: expected a time after start");
  }
  if (!(kernel_step_s >= 300) || kernel_step_s > 4 * 3600.0)
    return fail("kernel_step_s: expected 300 s to 4 h");
  if (!(grid_spacing_km > 0)) return fail("grid_spacing_km: expected > 0");
  if (!(recommend_horizon_s >= 0) || recommend_horizon_s > 7 * 86400.0) {
    return fail("recommend_horizon_s: expected 0 to 7 days");
  }
  if (!std::isnan(recommend_within_s) &&
      (!(recommend_within_s >= kRecommendStepS) || recommend_within_s > recommend_horizon_s)) {
    return fail(
        "recommend_within_s: expected at least 1 h (the hourly recommendation step) "
        "and at most recommend_horizon_s");
  }
  if (!(team_speed_kmh > 0) || !std::isfinite(team_speed_kmh))
    return fail("team_speed_kmh: expected a speed > 0 km/h");
  if (!(recommend_point_spacing_km >= 0.1) || !std::isfinite(recommend_point_spacing_km))
    return fail("recommend_point_spacing_km: expected at least 0.1 km");
  if (num_threads < 1) return fail("num_threads: expected >= 1");
  if (!(kernel_horizon_round_s >= 0) || kernel_horizon_round_s > 30 * 86400.0) {
    return fail("kernel_horizon_round_s: expected 0 (none) to 30 days");
  }
  std::string e;
  if (!priors.IsValid(&e)) return fail("priors: " + e);
  return true;
}

// A trace is a sequence of phases over one TraceRun (trace_context.h lists them with their
// files); each reads what the phases before it left there.
TraceResult Trace(const Network& net, const ObservationSet& obs, const TraceOptions& options) {
  const auto t_begin = Clock::now();
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("trace options: " + error);
  TraceOptions resolved = options;
  if (!options.team_at.empty()) {
    detail::ParseTeamAt(net, options.team_at);  // a bad place fails before any work
    // "Where should the team be in the next hour or two" (issue #21 item 2).
    if (std::isnan(resolved.recommend_within_s))
      resolved.recommend_within_s = std::min(kDefaultTeamWithinS, options.recommend_horizon_s);
    if (!resolved.IsValid(&error)) throw ConfigError("trace options: " + error);
  }
  TraceRun run;
  run.c.net = &net;
  run.c.options = resolved;
  run.prep = detail::PrepareContext(run.c, net, obs, resolved, run.result.summary);
  if (!resolved.team_at.empty()) {
    run.result.summary.team_at = resolved.team_at;
    run.result.summary.team_speed_kmh = resolved.team_speed_kmh;
    run.result.summary.team_within_s = resolved.recommend_within_s;
  }
  run.model = std::make_unique<Model>(*run.c.kernels, run.c.table, detail::kFitReweightingPasses);
  run.coarse = std::make_unique<Model>(*run.c.kernels, run.c.table, 1);
  run.max_sources =
      std::min<int>(options.max_sources, static_cast<int>(options.priors.p_sources.size()));

  const auto t_fit = Clock::now();
  detail::PrescreenCandidates(run);
  detail::FitSingleReleases(run);
  detail::SearchSeveralReleases(run);
  run.result.summary.fit_seconds = Seconds(t_fit);

  detail::TemperEvidence(run);
  detail::MergeModes(run);
  detail::EstimateHypotheses(run);
  detail::CredibleSetAndGroups(run);
  detail::AssessIdentifiability(run);
  detail::RecommendNextSamples(run);
  detail::Finish(run, t_begin);
  return std::move(run.result);
}

}  // namespace qingshui::tracing
