#include "reference_grid_posterior.h"

#include <algorithm>
#include <cmath>

#include "qingshui/core/error.h"
#include "trace_context.h"

namespace qingshui::tracing {

using detail::Clock;
using detail::Context;
using detail::Evaluation;
using detail::HypothesisSpec;
using detail::Model;

GridPosterior ReferenceGridPosterior(const Network& net, const ObservationSet& obs,
                                     const TraceOptions& options) {
  const auto t_begin = Clock::now();
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("trace options: " + error);
  Context c;
  TraceSummary sum;
  detail::PrepareContext(c, net, obs, options, sum);
  const Model model(*c.kernels, c.table, 4);
  const auto& pr = options.priors;
  const std::vector<double> lnd = {std::log(0.5), std::log(1.5), std::log(4.0), std::log(12.0)};
  const std::vector<double> lnf = {-0.3, -0.15, 0.0, 0.15, 0.3};
  const std::vector<double> lng = {-1.0, -0.5, 0.0, 0.5, 1.0};
  std::vector<double> log_z(c.candidates.size(), -INFINITY);
  std::vector<long long> counts(c.candidates.size(), 0);
  detail::ParallelFor(static_cast<int>(c.candidates.size()), options.num_threads, [&](int i) {
    const int p = c.candidates[i];
    HypothesisSpec spec = detail::MakeSpec(c, {detail::Registered(p)});
    spec.releases[0].mass_max_t.clear();  // no mass prior in the reference
    const double others = detail::OtherBlocksCost(c, spec);
    Evaluation e;
    std::vector<double> terms;
    for (double t = c.t_lo_h; t <= c.t_hi_h + 1e-9; t += 1.0) {
      for (double d : lnd) {
        for (double f : lnf) {
          for (double g : lng) {
            const double th[4] = {t, d, f, g};
            model.Evaluate(spec, th, &e, false);
            ++counts[i];
            terms.push_back(-0.5 * (e.cost + others) + detail::LogNormalPdf(f, pr.velocity_log_sd) +
                            detail::LogNormalPdf(g, pr.dispersion_log_sd));
          }
        }
      }
    }
    const double mx = *std::max_element(terms.begin(), terms.end());
    double sum_exp = 0.0;
    for (double x : terms) sum_exp += std::exp(x - mx);
    log_z[i] = mx + std::log(sum_exp / terms.size()) + std::log(c.candidate_weight[p]);
  });
  GridPosterior out;
  const double mx = *std::max_element(log_z.begin(), log_z.end());
  double total = 0.0;
  for (double l : log_z) total += std::exp(l - mx);
  for (size_t i = 0; i < c.candidates.size(); ++i) {
    out.source_probability.push_back(
        {c.kernels->points[c.candidates[i]].source_id, std::exp(log_z[i] - mx) / total});
    out.evaluations += counts[i];
  }
  std::sort(out.source_probability.begin(), out.source_probability.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  out.elapsed_s = detail::Seconds(t_begin);
  return out;
}

}  // namespace qingshui::tracing
