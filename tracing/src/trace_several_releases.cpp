// Phase 3 of a trace (docs/tracing.md §5.3): several simultaneous releases.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "trace_context.h"

namespace qingshui::tracing::detail {

namespace {

// Additions to a base hypothesis: the best registered candidates and the best unregistered
// reaches of the residual prescreen (the unregistered prior is a tenth of the registered).
constexpr int kAddRegistered = 3;
constexpr int kAddUnregistered = 1;
// Replacements of one release of a K-hypothesis (swap stage): one more registered, since a
// release's substitutes are often several neighbouring sources.
constexpr int kSwapRegistered = 4;
constexpr int kSwapUnregistered = 1;
// Refined starts of the most promising addition (the others get one): its prescreen's two
// best sampling intervals.
constexpr int kFirstAdditionStarts = 2;
// Ceres iterations of a several-release fit: more parameters than a single release.
constexpr int kSeveralIterations = 50;
// Bases for K releases: the best two hypotheses of K − 1 (one for K = 3), the second only
// when it holds at least this share of the first's weight.
constexpr int kBases = 2;
constexpr double kSecondBaseWeight = 0.1;

}  // namespace

void SearchSeveralReleases(TraceRun& run) {
  Context& c = run.c;
  const TraceOptions& options = c.options;
  const Model& model = *run.model;
  const Model& coarse = *run.coarse;
  const auto& screen_points = run.screen_points;
  auto& fits = run.fits;
  const int max_sources = run.max_sources;
  // Several simultaneous releases. (1) Add one release at a time to the best hypotheses of
  // the previous size, the additions chosen by a prescreen on the residual after the base's
  // releases. (2) When K releases explain the data better than fewer, revisit each release
  // of the best K-hypotheses: prescreen every candidate against the residual of the other
  // releases and fit the best replacements, so that candidates a release cannot be told
  // apart from share the posterior instead of the first one found taking it all.
  struct Addition {
    ReleaseSpec release;
    std::array<double, 3> start;  // midpoint, ln duration, km
    int point = -1;               // kernel point screened
    std::vector<Start> starts;    // its distinct coarse starts
  };
  auto residual_candidates = [&](const std::vector<double>& offset,
                                 const std::set<std::string>& exclude, int n_registered,
                                 int n_unregistered) {
    std::vector<std::vector<Start>> rs(screen_points.size());
    const std::vector<double> residual_blocks = BlockCosts(c, coarse, &offset);
    ParallelFor(static_cast<int>(screen_points.size()), options.num_threads, [&](int i) {
      rs[i] = Prescreen(c, coarse, screen_points[i], residual_blocks, &offset,
                        {kCoarseScreenDurationH}, kCoarseScreenStepH, false);
    });
    std::vector<std::pair<double, Addition>> reg, unreg;
    std::map<int, std::pair<double, Addition>> best_reach;  // per unregistered reach
    for (size_t i = 0; i < screen_points.size(); ++i) {
      if (rs[i].empty()) continue;
      const int p = screen_points[i];
      const Start& st = rs[i][0];
      if (!c.kernels->points[p].source_id.empty() && c.candidate_weight[p] > 0) {
        const ReleaseSpec r = Registered(p);
        if (!exclude.count(Label(c, r)))
          reg.push_back({st.cost, {r, {st.tmid_h, st.lnd, 0.0}, p, rs[i]}});
      }
      for (size_t u = 0; u < c.ureaches.size(); ++u) {
        const auto& rp = c.ureaches[u].spec.reach_points;
        if (std::find(rp.begin(), rp.end(), p) == rp.end()) continue;
        if (exclude.count(Label(c, c.ureaches[u].spec))) continue;
        auto it = best_reach.find(static_cast<int>(u));
        if (it == best_reach.end() || st.cost < it->second.first) {
          best_reach[static_cast<int>(u)] = {
              st.cost, {c.ureaches[u].spec, {st.tmid_h, st.lnd, c.kernels->points[p].km}, p, rs[i]}};
        }
      }
    }
    for (const auto& [u, v] : best_reach) unreg.push_back(v);
    auto by_cost = [](const auto& a, const auto& b) { return a.first < b.first; };
    std::sort(reg.begin(), reg.end(), by_cost);
    std::sort(unreg.begin(), unreg.end(), by_cost);
    std::vector<Addition> chosen;
    for (int i = 0; i < n_registered && i < static_cast<int>(reg.size()); ++i)
      chosen.push_back(reg[i].second);
    for (int i = 0; i < n_unregistered && i < static_cast<int>(unreg.size()); ++i)
      chosen.push_back(unreg[i].second);
    // Each chosen addition from its best coarse starts, refined on a finer local grid: a
    // release added to others has to land in the right sampling interval.
    std::vector<Addition> out;
    for (size_t ai = 0; ai < chosen.size(); ++ai) {
      const Addition& a = chosen[ai];
      const size_t n_starts = ai == 0 ? kFirstAdditionStarts : 1;
      for (size_t q = 0; q < std::min(n_starts, a.starts.size()); ++q) {
        const Start st = RefineStart(c, coarse, a.point, residual_blocks, &offset, a.starts[q],
                                     kCoarseScreenStepH);
        Addition b = a;
        b.start = {st.tmid_h, st.lnd, a.start[2]};
        out.push_back(b);
      }
    }
    return out;
  };
  auto key_of = [](std::vector<std::string> l) {
    std::sort(l.begin(), l.end());
    std::string key;
    for (const auto& s : l) key += s + "|";
    return key;
  };
  auto per_release = [](const Fit& f, int j) {
    const int o = f.spec.offset(j);
    return std::array<double, 3>{f.theta[o], f.theta[o + 1],
                                 f.spec.releases[j].unregistered() ? f.theta[o + 2] : 0.0};
  };
  auto run_jobs = [&](std::vector<FitJob>& more) {
    const size_t first = fits.size();
    fits.resize(first + more.size());
    ParallelFor(static_cast<int>(more.size()), options.num_threads, [&](int i) {
      fits[first + i] = RunFit(c, model, more[i].rel, more[i].theta, kSeveralIterations);
    });
  };
  auto best_of_size = [&](int K) {
    double b = -INFINITY;
    for (const auto& f : fits) {
      if (static_cast<int>(f.spec.releases.size()) == K) b = std::max(b, f.log_evidence);
    }
    return b;
  };
  auto top_of_size = [&](int K, int n) {
    std::vector<int> idx;
    for (size_t i = 0; i < fits.size(); ++i) {
      if (static_cast<int>(fits[i].spec.releases.size()) == K) idx.push_back(static_cast<int>(i));
    }
    std::sort(idx.begin(), idx.end(),
              [&](int a, int b) { return fits[a].log_evidence > fits[b].log_evidence; });
    std::vector<int> out;
    std::set<std::string> seen;
    for (int i : idx) {
      if (seen.insert(key_of(fits[i].labels)).second) out.push_back(i);
      if (static_cast<int>(out.size()) >= n) break;
    }
    return out;
  };
  for (int K = 2; K <= max_sources; ++K) {
    // A third release is looked for only when two explain the data better than one.
    if (K >= 3 && !(best_of_size(K - 1) > best_of_size(K - 2))) break;
    std::set<std::string> fitted;
    for (const auto& f : fits) fitted.insert(key_of(f.labels));
    std::vector<FitJob> more;
    // Bases: the best hypothesis of the previous size, and the second when it holds
    // kSecondBaseWeight of the first's weight.
    std::vector<int> bases = top_of_size(K - 1, kBases);
    if (bases.size() == 2 && fits[bases[1]].log_evidence <
                                 fits[bases[0]].log_evidence - std::log(1.0 / kSecondBaseWeight)) {
      bases.resize(1);
    }
    if (K >= 3) bases.resize(std::min<size_t>(bases.size(), 1));
    for (int bi : bases) {
      const Fit base = fits[bi];
      const std::vector<double> offset = FittedSignal(c, model, base);
      std::set<std::string> exclude(base.labels.begin(), base.labels.end());
      std::set<std::string> round;
      for (const Addition& a :
           residual_candidates(offset, exclude, kAddRegistered, kAddUnregistered)) {
        std::vector<ReleaseSpec> rel = base.spec.releases;
        rel.push_back(a.release);
        std::vector<std::string> labels = base.labels;
        labels.push_back(Label(c, a.release));
        const std::string key = key_of(labels);
        if (fitted.count(key) && !round.count(key)) continue;
        round.insert(key);
        std::vector<std::array<double, 3>> per;
        for (size_t j = 0; j < base.spec.releases.size(); ++j)
          per.push_back(per_release(base, static_cast<int>(j)));
        per.push_back(a.start);
        const int P = base.spec.num_params();
        more.push_back({rel, StartTheta(rel, per, base.theta[P - 2], base.theta[P - 1])});
      }
    }
    run_jobs(more);
    for (const auto& f : fits) fitted.insert(key_of(f.labels));
    if (!(best_of_size(K) > best_of_size(K - 1))) continue;
    // Swap stage.
    more.clear();
    for (int bi : top_of_size(K, kBases)) {
      const Fit base = fits[bi];
      for (int j = 0; j < K; ++j) {
        // Residual of the other releases.
        Fit others = base;
        for (int k = 0; k < static_cast<int>(c.species.size()); ++k) others.eval.mass[j][k] = 0.0;
        const std::vector<double> offset = FittedSignal(c, model, others);
        std::set<std::string> exclude(base.labels.begin(), base.labels.end());
        std::set<std::string> round;
        for (const Addition& a :
             residual_candidates(offset, exclude, kSwapRegistered, kSwapUnregistered)) {
          std::vector<ReleaseSpec> rel = base.spec.releases;
          rel[j] = a.release;
          std::vector<std::string> labels = base.labels;
          labels[j] = Label(c, a.release);
          // Sets fitted before are fitted again from these starts: the base's other releases
          // and factors may put them in a better optimum.
          const std::string key = key_of(labels);
          if (round.count(key + "@" + std::to_string(a.start[0]))) continue;
          round.insert(key + "@" + std::to_string(a.start[0]));
          std::vector<std::array<double, 3>> per;
          for (int jj = 0; jj < K; ++jj) per.push_back(jj == j ? a.start : per_release(base, jj));
          const int P = base.spec.num_params();
          more.push_back({rel, StartTheta(rel, per, base.theta[P - 2], base.theta[P - 1])});
          // Also from the replaced release's own timing (a substitute explains the same
          // signal; its position differs by a short travel time).
          if (round.count(key + "#replaced")) continue;
          round.insert(key + "#replaced");
          per[j] = per_release(base, j);
          per[j][2] = a.start[2];
          if (a.release.unregistered())
            per[j][2] = std::clamp(per_release(base, j)[2], a.release.km_lo, a.release.km_hi);
          more.push_back({rel, StartTheta(rel, per, base.theta[P - 2], base.theta[P - 1])});
        }
      }
    }
    run_jobs(more);
  }
}

}  // namespace qingshui::tracing::detail
