// Phases 7-8 and the end of a trace (docs/tracing.md §6-7): marginal probabilities, the 90%
// credible set, groups, identifiability, warnings and pruning.
#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "qingshui/core/network.h"
#include "trace_context.h"

namespace qingshui::tracing::detail {

namespace {

// Candidates are one group when their travel times to every observing station differ by
// less than this share of the median sampling interval (the data cannot order them).
constexpr double kGroupTimingShare = 0.5;
// Leading single releases compared for `indistinguishable`: at least this probable, at most
// this many; alike when their predictions differ by Δχ² below kIndistinguishableChi2 (two
// standard deviations in one direction).
constexpr double kLeaderMinProbability = 1e-3;
constexpr int kMaxLeaders = 8;
constexpr double kIndistinguishableChi2 = 4.0;
// Posterior / prior standard deviation below which a parameter is identified (contraction
// above 0.91) or weakly identified (above 0.51).
constexpr double kIdentifiedRatio = 0.3;
constexpr double kWeaklyIdentifiedRatio = 0.7;
constexpr double kZ95 = 1.645;  // standard normal 95% quantile: a 90% interval is ±kZ95 sd
// A leading release whose midpoint lies within this of the earliest start considered is
// pressed against it (warning).
constexpr double kEarliestStartMarginS = 2 * 3600.0;
// Output: hypotheses at least this probable, and always the first few.
constexpr double kKeepProbability = 1e-4;
constexpr int kAlwaysKept = 5;

// The groups (of two or more) of items 0 .. n-1 under the transitive closure of alike(a, b),
// asked for a < b: union-find, each group in increasing order, groups ordered by their root.
template <typename Alike>
std::vector<std::vector<int>> Groups(int n, const Alike& alike) {
  std::vector<int> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  std::function<int(int)> root = [&](int a) {
    return parent[a] == a ? a : parent[a] = root(parent[a]);
  };
  for (int a = 0; a < n; ++a) {
    for (int b = a + 1; b < n; ++b) {
      if (alike(a, b)) parent[root(a)] = root(b);
    }
  }
  std::map<int, std::vector<int>> by_root;
  for (int a = 0; a < n; ++a) by_root[root(a)].push_back(a);
  std::vector<std::vector<int>> groups;
  for (auto& entry : by_root) {
    if (entry.second.size() > 1) groups.push_back(std::move(entry.second));
  }
  return groups;
}

}  // namespace

void CredibleSetAndGroups(TraceRun& run) {
  const Context& c = run.c;
  const Model& model = *run.model;
  const auto& fits = run.fits;
  const auto& best_mode = run.best_mode;
  const std::set<int>& observed_stations = run.prep.observed_stations;
  const double s2 = run.s2;
  TraceResult& result = run.result;
  // Marginal probability per source and the 90% credible set.
  for (const auto& h : result.hypotheses) {
    if (h.sources.empty()) {
      result.source_probability["no release"] += h.probability;
      continue;
    }
    std::set<std::string> labels;
    for (const auto& s : h.sources)
      labels.insert(s.id == "unregistered" ? "unregistered:" + s.reach : s.id);
    for (const auto& l : labels) result.source_probability[l] += h.probability;
  }
  {
    double acc = 0.0;
    std::set<std::string> set;
    for (const auto& h : result.hypotheses) {
      if (acc >= 0.9) break;
      acc += h.probability;
      if (h.sources.empty()) set.insert("no release");
      for (const auto& s : h.sources)
        set.insert(s.id == "unregistered" ? "unregistered:" + s.reach : s.id);
    }
    // Order the set by marginal probability.
    std::vector<std::pair<double, std::string>> ordered;
    for (const auto& l : set) ordered.push_back({-result.source_probability[l], l});
    std::sort(ordered.begin(), ordered.end());
    for (const auto& [p, l] : ordered) result.credible_set_90.push_back(l);
  }

  // Groups: registered candidates with the same observing stations and travel times that
  // differ by less than half the sampling interval at every one of them.
  {
    std::vector<double> intervals;
    for (const Block& B : c.table.blocks) {
      if (B.end - B.begin >= 2)
        intervals.push_back((c.table.t[B.end - 1] - c.table.t[B.begin]) / (B.end - B.begin - 1));
    }
    std::nth_element(intervals.begin(), intervals.begin() + intervals.size() / 2, intervals.end());
    const double tol = kGroupTimingShare * intervals[intervals.size() / 2];
    const int n = static_cast<int>(c.candidates.size());
    const auto alike = [&](int a, int b) {
      const int pa = c.candidates[a], pb = c.candidates[b];
      for (int s : observed_stations) {
        const bool sa = c.kernels->Sees(pa, s), sb = c.kernels->Sees(pb, s);
        if (sa != sb) return false;
        if (sa && std::fabs(c.kernels->TravelTime(pa, s) - c.kernels->TravelTime(pb, s)) > tol)
          return false;
      }
      return true;
    };
    for (const std::vector<int>& g : Groups(n, alike)) {
      std::vector<std::string> ids;
      for (int a : g) ids.push_back(c.kernels->points[c.candidates[a]].source_id);
      result.groups.push_back(ids);
    }
  }

  // Leading candidates whose best fits predict the observations alike (within the noise).
  {
    std::vector<std::string> leaders;
    std::vector<std::vector<double>> preds;
    for (const auto& h : result.hypotheses) {
      if (h.sources.size() != 1 || h.probability < kLeaderMinProbability ||
          static_cast<int>(leaders.size()) >= kMaxLeaders)
        continue;
      const Fit& f = fits[best_mode.at(h.label)];
      std::vector<double> sig = FittedSignal(c, model, f);
      leaders.push_back(h.label);
      preds.push_back(sig);
    }
    const auto alike = [&](int a, int b) {
      double d2 = 0.0;
      for (int i = 0; i < c.table.num_rows(); ++i)
        d2 += c.table.w[i] * std::pow(preds[a][i] - preds[b][i], 2);
      return d2 / s2 < kIndistinguishableChi2;
    };
    for (const std::vector<int>& g : Groups(static_cast<int>(leaders.size()), alike)) {
      std::vector<std::string> labels;
      for (int a : g) labels.push_back(leaders[a]);
      result.indistinguishable.push_back(labels);
    }
  }
}

// Identifiability of the leading hypothesis.
void AssessIdentifiability(TraceRun& run) {
  const Context& c = run.c;
  const TracingPriors& pr = c.options.priors;
  const auto& fits = run.fits;
  const auto& best_mode = run.best_mode;
  TraceResult& result = run.result;
  if (!result.hypotheses.empty() && !result.hypotheses[0].sources.empty()) {
    const Fit& f = fits[best_mode.at(result.hypotheses[0].label)];
    const int P = f.spec.num_params();
    auto add = [&](const std::string& name, double est, double post, double prior) {
      Identifiability id;
      id.parameter = name;
      id.estimate = est;
      id.posterior_sd = post;
      id.prior_sd = prior;
      const double ratio = prior > 0 ? post / prior : 1.0;
      id.contraction = std::clamp(1.0 - ratio * ratio, 0.0, 1.0);
      id.status = ratio < kIdentifiedRatio         ? "identified"
                  : ratio < kWeaklyIdentifiedRatio ? "weakly identified"
                                                   : "not identified";
      result.identifiability.push_back(id);
    };
    const double tr = c.t_hi_h - c.t_lo_h, dr = c.lnd_hi - c.lnd_lo;
    const int Ks = static_cast<int>(c.species.size());
    for (size_t j = 0; j < f.spec.releases.size(); ++j) {
      const int o = f.spec.offset(static_cast<int>(j));
      const std::string who = f.labels[j];
      add(who + ".release_midpoint_h", f.theta[o], std::sqrt(f.cov[o * P + o]),
          tr / std::sqrt(12.0));
      add(who + ".ln_duration_h", f.theta[o + 1], std::sqrt(f.cov[(o + 1) * P + o + 1]),
          dr / std::sqrt(12.0));
      if (f.spec.releases[j].unregistered()) {
        const double L = f.spec.releases[j].km_hi - f.spec.releases[j].km_lo;
        add(who + ".km", f.theta[o + 2], std::sqrt(f.cov[(o + 2) * P + o + 2]),
            L / std::sqrt(12.0));
      }
      const auto& e = result.hypotheses[0].sources[j];
      for (int k = 0; k < Ks; ++k) {
        const double m = e.mass_kg.at(c.species[k]);
        const auto ci = e.mass_kg_ci90.at(c.species[k]);
        const double post =
            m > 0 ? (std::log(std::max(ci[1], 1e-9)) - std::log(std::max(ci[0], m * 1e-3))) /
                        (2 * kZ95)
                  : INFINITY;
        const double prior = k == c.reference_index
                                 ? std::log(pr.mass_max_kg / pr.mass_min_kg) / std::sqrt(12.0)
                                 : pr.Ratio(e.kind, c.species[k], c.reference).log_sd;
        add(who + ".ln_mass_" + c.species[k], m > 0 ? std::log(m) : -INFINITY, post, prior);
      }
    }
    add("ln_velocity_factor", f.theta[P - 2], std::sqrt(f.cov[(P - 2) * P + P - 2]),
        pr.velocity_log_sd);
    add("ln_dispersion_factor", f.theta[P - 1], std::sqrt(f.cov[(P - 1) * P + P - 1]),
        pr.dispersion_log_sd);
  }
}

void Finish(TraceRun& run, Clock::time_point t_begin) {
  Context& c = run.c;
  TraceResult& result = run.result;
  TraceSummary& sum = result.summary;
  // A leading release pressed against the earliest start considered: an older release may
  // explain the data better than anything the window allows.
  if (!result.hypotheses.empty()) {
    const double earliest = c.table.t_ref + c.t_lo_h * 3600.0;
    for (const auto& e : result.hypotheses[0].sources) {
      if (0.5 * (e.release_start_s + e.release_end_s) < earliest + kEarliestStartMarginS) {
        sum.warnings.push_back(
            "the leading release (" + (e.id == "unregistered" ? "unregistered " + e.reach : e.id) +
            ") starts at the earliest time considered (" + FormatIsoTime(earliest) +
            ", lead_h before the window): an older release may explain the data better; widen the "
            "window "
            "(--start) or raise lead_h in the priors");
      }
    }
  }
  // Keep the output readable: hypotheses above kKeepProbability (at least the top few).
  {
    std::vector<Hypothesis> kept;
    for (size_t i = 0; i < result.hypotheses.size(); ++i) {
      if (static_cast<int>(i) < kAlwaysKept || result.hypotheses[i].probability >= kKeepProbability)
        kept.push_back(result.hypotheses[i]);
    }
    result.hypotheses = kept;
  }
  sum.num_fits = c.fits;
  sum.num_evaluations = c.evaluations;
  sum.total_seconds = Seconds(t_begin);
  result.elapsed_s = sum.total_seconds;
}

}  // namespace qingshui::tracing::detail
