// Load allocation for section targets: effluent limits for controllable sources that make
// chosen stations meet class limits (monthly means) with a stated probability under flow
// and rate uncertainty, at least total removal or cost. A scenario (sampled) linear
// program on the linear transport response (apportion.h), solved with GLPK's simplex, with
// the most binding scenarios discarded down to the probability (Campi & Garatti 2011),
// re-linearized at the solution, and checked by a forward Monte Carlo of full model runs.
// docs/calibration.md §3.
//
// A month's mean concentration is taken as the steady state of the month's mean flows and
// rates (the dry season's flows change slowly; the steady state is what a month of
// unchanging daily hydraulics converges to).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qingshui/core/network.h"

namespace qingshui::calibration {

// An uncertain multiplier (or, for temperature, value).
struct Uncertain {
  enum class Kind { kFixed, kLognormal, kNormal, kUniform };
  Kind kind = Kind::kFixed;
  double a = 1.0;   // fixed value; lognormal median; normal mean; uniform low
  double b = 0.0;   // lognormal / normal coefficient of variation; uniform high
  std::string src;  // provenance
  static Uncertain Fixed(double v) { return {Kind::kFixed, v, 0.0, ""}; }
};

struct AllocationTarget {
  std::string station;
  std::string species;
  double limit_mg_l = 0.0;   // from `target_class` and the network's standard when 0
  std::string target_class;  // e.g. "III"
};

struct ControllableSource {
  std::string id;
  // Lowest effluent concentration the plant can reach (technical bound) and cost per kg
  // removed, per species (species without an entry are not controlled).
  std::map<std::string, double> min_mg_l;
  std::map<std::string, double> cost_per_kg;
  std::map<std::string, std::string> src;  // provenance per key ("min.COD", "cost.COD")
};

struct AllocationProblem {
  std::string date;    // a day of the month (decides which sources run and the season)
  std::string season;  // empty = from the date
  double probability = 0.9;
  std::vector<AllocationTarget> targets;
  std::vector<ControllableSource> sources;
  std::string objective = "removal";  // "removal" (kg/d) or "cost" (cost units/d)
  std::string cost_unit = "CNY";
  // Uncertainty of the month's mean conditions.
  Uncertain headwater_flow, lateral_loss, source_flow, velocity, dispersion, lake_depth;
  Uncertain temperature_c = Uncertain::Fixed(20.0);
  std::map<std::string, Uncertain> decay;  // per species
  int scenarios = 200;                     // for the optimization
  int verification_scenarios = 400;        // fresh ones for the forward Monte Carlo
  std::uint64_t seed = 20240524;
  int passes = 2;  // linearizations (the second at the first's solution)
  bool IsValid(std::string* error) const;
};

struct SourceLimit {
  std::string source, species;
  double flow_m3s = 0.0;  // mean design flow
  double current_mg_l = 0.0, limit_mg_l = 0.0, min_mg_l = 0.0;
  double removal_kg_d = 0.0;  // (current - limit) x flow
  double cost_per_day = 0.0;
  bool at_minimum = false;
};

struct TargetResult {
  std::string station, species;
  double limit_mg_l = 0.0;
  // The p-quantile over the optimization scenarios of the linearized monthly mean at the
  // limits, and the margin limit - quantile (>= 0 when met).
  double quantile_mg_l = 0.0, margin_mg_l = 0.0;
  double current_quantile_mg_l = 0.0;  // same with today's effluents
  bool binding = false;
  // d(objective)/d(limit): objective units per day saved per mg/L the limit is relaxed.
  double shadow_price = 0.0;
  double verified_probability = 0.0;  // forward Monte Carlo, this target alone
};

struct AllocationResult {
  bool feasible = false;
  std::string message;
  std::vector<SourceLimit> limits;
  std::vector<TargetResult> targets;
  std::vector<std::string> notes;  // sources skipped (not running on the date), ...
  double objective = 0.0;          // kg/d removed or cost/day
  std::string objective_unit;
  int scenarios = 0, discarded = 0;
  double in_sample_probability = 0.0;  // kept / all, joint over the targets
  // Forward Monte Carlo with fresh scenarios and full model runs at the limits.
  int verification_runs = 0, verification_met = 0;
  double verified_probability = 0.0, verified_low = 0.0, verified_high = 0.0;  // 95% Wilson
  // Today's effluents in the same fresh scenarios.
  double current_probability = 0.0;
  double max_linearization_error_mg_l = 0.0;  // |full - linear| over the last pass
  double wall_time_s = 0.0;
  std::string BriefReport() const;
};

// Throws ConfigError for unknown stations, species, sources, or a target without a limit.
AllocationResult Allocate(const Network& network, const AllocationProblem& problem);

// Reads an allocation file (YAML, docs/calibration.md §3.3; every number {value, src}).
AllocationProblem ReadAllocationFile(const std::string& path);

// CSV tables: per-source limits and per-target results.
std::string FormatLimits(const AllocationResult& r);
std::string FormatTargets(const AllocationResult& r);

}  // namespace qingshui::calibration
