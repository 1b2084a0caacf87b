// Phases 1-2 of a trace (docs/tracing.md §5.1-5.2): the prescreen of every kernel point and
// the single-release fits at registered candidates and on reaches.
#include <algorithm>
#include <cmath>

#include "trace_context.h"

namespace qingshui::tracing::detail {

namespace {

// Candidates whose prescreen misfit is within a margin of the best — this share of the best's
// gain over "no release", at least kMinRefineMargin (χ² units) — are refined from several
// starts; the others get one short fit: their posterior is negligible, but it is computed
// rather than assumed.
constexpr double kRefineGainShare = 0.5;
constexpr double kMinRefineMargin = 50.0;
// At most this many candidates are refined, each from up to kRefineStarts distinct starts of
// its prescreen (a short release seen close below a source has a minimum per sampling
// interval; three cover the likely ones).
constexpr size_t kMaxRefinedCandidates = 10;
constexpr int kRefineStarts = 3;
// Ceres iterations of a refined fit and of a far candidate's short fit (enough to converge
// from a prescreen start / to place a negligible candidate's evidence).
constexpr int kRefinedIterations = 40;
constexpr int kShortIterations = 10;

}  // namespace

// Prescreen every kernel point that matters (registered candidates, reach points).
void PrescreenCandidates(TraceRun& run) {
  Context& c = run.c;
  const TraceOptions& options = c.options;
  const Model& coarse = *run.coarse;
  auto& screen_points = run.screen_points;
  auto& starts = run.starts;
  screen_points = c.candidates;
  for (const auto& u : c.ureaches) {
    for (int p : u.spec.reach_points) screen_points.push_back(p);
  }
  std::sort(screen_points.begin(), screen_points.end());
  screen_points.erase(std::unique(screen_points.begin(), screen_points.end()), screen_points.end());
  starts.assign(c.kernels->points.size(), {});
  run.quadrature.assign(c.kernels->points.size(), {});
  const std::vector<double> h0_blocks = BlockCosts(c, coarse, nullptr);
  ParallelFor(static_cast<int>(screen_points.size()), options.num_threads, [&](int i) {
    const int p = screen_points[i];
    // Grid points (unregistered releases) on a coarser grid: they only place the start.
    starts[p] = c.kernels->points[p].source_id.empty()
                    ? Prescreen(c, coarse, p, h0_blocks, nullptr, {kCoarseScreenDurationH},
                                kCoarseScreenStepH, false, &run.quadrature[p])
                    : Prescreen(c, coarse, p, h0_blocks, nullptr, {1.5, 8.0}, 2.0, true,
                                &run.quadrature[p]);
  });
}

void FitSingleReleases(TraceRun& run) {
  Context& c = run.c;
  const TraceOptions& options = c.options;
  const Model& model = *run.model;
  const auto& starts = run.starts;
  auto& fits = run.fits;
  // Single releases at registered candidates: every candidate from its best start, those
  // close to the best from up to kRefineStarts starts.
  std::vector<FitJob> jobs;
  std::vector<int> max_iter;
  std::vector<std::pair<double, int>> order;
  for (int p : c.candidates) {
    if (!starts[p].empty()) order.push_back({starts[p][0].cost, p});
  }
  std::sort(order.begin(), order.end());
  const double best_screen = order.empty() ? c.table.h0_cost : order[0].first;
  const double margin =
      std::max(kMinRefineMargin, kRefineGainShare * (c.table.h0_cost - best_screen));
  for (size_t i = 0; i < order.size(); ++i) {
    const int p = order[i].second;
    const bool refine = i < kMaxRefinedCandidates && order[i].first <= best_screen + margin;
    const int n = refine ? std::min<int>(kRefineStarts, starts[p].size()) : 1;
    for (int q = 0; q < n; ++q) {
      const std::vector<ReleaseSpec> rel = {Registered(p)};
      jobs.push_back(
          {rel, StartTheta(rel, {{starts[p][q].tmid_h, starts[p][q].lnd, 0.0}}, 0.0, 0.0)});
      max_iter.push_back(refine ? kRefinedIterations : kShortIterations);
    }
  }
  for (const auto& u : c.ureaches) {
    std::vector<std::pair<double, int>> best;
    for (size_t i = 0; i < u.spec.reach_points.size(); ++i) {
      const int p = u.spec.reach_points[i];
      if (!starts[p].empty()) best.push_back({starts[p][0].cost, static_cast<int>(i)});
    }
    if (best.empty()) continue;
    std::sort(best.begin(), best.end());
    const int i = best[0].second;
    const Start& st = starts[u.spec.reach_points[i]][0];
    const std::vector<ReleaseSpec> rel = {u.spec};
    jobs.push_back({rel, StartTheta(rel, {{st.tmid_h, st.lnd, u.spec.reach_km[i]}}, 0.0, 0.0)});
    max_iter.push_back(best[0].first <= best_screen + margin ? kRefinedIterations
                                                             : kShortIterations);
  }
  fits.resize(jobs.size());
  ParallelFor(static_cast<int>(jobs.size()), options.num_threads,
              [&](int i) { fits[i] = RunFit(c, model, jobs[i].rel, jobs[i].theta, max_iter[i]); });
}

}  // namespace qingshui::tracing::detail
