// Phases 4-6 of a trace (docs/tracing.md §6): the noise scale, the modes of each hypothesis
// and every hypothesis' estimates and 90% intervals.
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "math_util.h"
#include "trace_context.h"

namespace qingshui::tracing::detail {

namespace {

// Two fits of one hypothesis are the same optimum found twice when their misfits differ by
// less than kSameOptimumCost (χ² units, a quarter of a nat) and every parameter by less than
// kSameOptimumTheta (h, ln h, km, ln factors: below the resolution that matters).
constexpr double kSameOptimumCost = 0.5;
constexpr double kSameOptimumTheta = 0.25;
// Duration profiles (a dozen re-optimizations each) go to the leading hypotheses only: at
// least this probable, at most this many; the others take the Laplace Gaussian.
constexpr double kProfileMinProbability = 0.01;
constexpr int kMaxProfiles = 8;
// ... and only where the fits' optima hold at least this share of the hypothesis' evidence:
// where the releases the data cannot see dominate, the fit chases noise and its profile says
// nothing.
constexpr double kProfileModesShare = 0.5;
// Smallest cell of a profile point in ln duration, so that the end points keep some weight.
constexpr double kMinProfileCell = 0.05;

}  // namespace

void TemperEvidence(TraceRun& run) {
  Context& c = run.c;
  const TracingPriors& pr = c.options.priors;
  auto& fits = run.fits;
  TraceSummary& sum = run.result.summary;
  // Noise scale from the best hypothesis: misfit per degree of freedom, never below 1.
  double& s2 = run.s2;
  s2 = 1.0;
  {
    double best = std::log(pr.p_no_release) - c.log_p_norm - 0.5 * c.table.h0_cost;
    double best_cost = c.table.h0_cost;
    int best_params = static_cast<int>(c.table.blocks.size());
    for (const auto& f : fits) {
      if (f.log_evidence > best) {
        best = f.log_evidence;
        best_cost = f.cost;
        best_params = static_cast<int>(c.table.blocks.size()) + f.spec.num_params() +
                      static_cast<int>(f.spec.releases.size() * c.species.size());
      }
    }
    const int dof = std::max(1, c.table.num_rows() - best_params);
    s2 = std::max(1.0, best_cost / dof);
  }
  sum.noise_scale = std::sqrt(s2);
  for (auto& f : fits) ComputeEvidence(c, &f, s2);
}

void MergeModes(TraceRun& run) {
  const Context& c = run.c;
  const TracingPriors& pr = c.options.priors;
  const auto& fits = run.fits;
  const double s2 = run.s2;
  auto& by_key = run.by_key;
  TraceResult& result = run.result;
  // Hypotheses: fits with the same set of releases are modes of one hypothesis.
  for (size_t i = 0; i < fits.size(); ++i) {
    std::vector<std::string> l = fits[i].labels;
    std::sort(l.begin(), l.end());
    std::string key;
    for (const auto& s : l) key += (key.empty() ? "" : " + ") + s;
    ModeGroup& g = by_key[key];
    g.key = key;
    // The same optimum found from two starts counts once.
    bool duplicate = false;
    for (int m : g.modes) {
      const Fit& o = fits[m];
      bool same = std::fabs(o.cost - fits[i].cost) < kSameOptimumCost;
      for (size_t q = 0; q < o.theta.size() && same; ++q)
        same = std::fabs(o.theta[q] - fits[i].theta[q]) < kSameOptimumTheta;
      duplicate = duplicate || same;
    }
    if (!duplicate) g.modes.push_back(static_cast<int>(i));
  }
  const double log_z0 = std::log(pr.p_no_release) - c.log_p_norm - 0.5 * c.table.h0_cost / s2;
  double log_max = log_z0;
  for (auto& [key, g] : by_key) {
    double mx = -INFINITY;
    for (int m : g.modes) mx = std::max(mx, fits[m].log_evidence);
    double s = 0.0;
    for (int m : g.modes) s += std::exp(fits[m].log_evidence - mx);
    g.log_z_modes = mx + std::log(s);
    g.log_z = g.log_z_modes;
    // A single release the data cannot see (small masses, any time) is as likely as no
    // release; the Laplace evidence at a fit's optimum, which a noise-chasing fit makes
    // sharp, leaves that part of the parameter space out. Each is the integral over part of
    // it: the larger is kept (docs/tracing.md §6, "Releases the data cannot see").
    const Fit& f0 = fits[g.modes[0]];
    if (f0.spec.releases.size() == 1 && !run.quadrature.empty()) {
      const ReleaseSpec& r = f0.spec.releases[0];
      double log_prior = LogPriorHypothesis(c, {r});
      double log_b = -INFINITY;
      if (!r.unregistered()) {
        if (run.quadrature[r.point].num_midpoints > 0)
          log_b = LogUnseenReleaseShare(c, r, run.quadrature[r.point], s2);
      } else {
        // Uniform along the reach: the mean over its grid points.
        std::vector<double> lb;
        for (int p : r.reach_points) {
          if (run.quadrature[p].num_midpoints > 0)
            lb.push_back(LogUnseenReleaseShare(c, r, run.quadrature[p], s2));
        }
        if (!lb.empty()) {
          const double m = *std::max_element(lb.begin(), lb.end());
          double sum = 0.0;
          for (double l : lb) sum += std::exp(l - m);
          log_b = m + std::log(sum / lb.size());
        }
        for (const auto& u : c.ureaches) {
          if (u.reach == r.reach) log_prior += std::log(u.length_km / c.unreg_length_km);
        }
      }
      const double log_z_unseen = log_prior - 0.5 * c.table.h0_cost / s2 + log_b;
      g.log_z = std::max(g.log_z, log_z_unseen);
    }
    log_max = std::max(log_max, g.log_z);
  }
  double norm = std::exp(log_z0 - log_max);
  for (const auto& [key, g] : by_key) norm += std::exp(g.log_z - log_max);

  Hypothesis none;
  none.label = "no release";
  none.log_evidence = log_z0;
  none.probability = std::exp(log_z0 - log_max) / norm;
  none.misfit = c.table.h0_cost / s2;
  result.hypotheses.push_back(none);
  run.log_z0 = log_z0;
  run.log_max = log_max;
  run.norm = norm;
}

void EstimateHypotheses(TraceRun& run) {
  Context& c = run.c;
  const TracingPriors& pr = c.options.priors;
  const Model& model = *run.model;
  const auto& fits = run.fits;
  const auto& by_key = run.by_key;
  const double s2 = run.s2, log_max = run.log_max, norm = run.norm;
  auto& best_mode = run.best_mode;
  TraceResult& result = run.result;
  int profiled = 0;
  // Hypotheses in order of probability, so that the duration profiles go to the leaders.
  std::vector<std::pair<double, std::string>> hyp_order;
  for (const auto& [key, g] : by_key) hyp_order.push_back({-g.log_z, key});
  std::sort(hyp_order.begin(), hyp_order.end());
  for (const auto& [neg_log_z, key] : hyp_order) {
    const ModeGroup& g = by_key.at(key);
    Hypothesis h;
    h.label = key;
    h.log_evidence = g.log_z;
    h.probability = std::exp(g.log_z - log_max) / norm;
    h.modes = static_cast<int>(g.modes.size());
    int bm = g.modes[0];
    for (int m : g.modes) {
      if (fits[m].log_evidence > fits[bm].log_evidence) bm = m;
    }
    best_mode[key] = bm;
    const Fit& f = fits[bm];
    const int P = f.spec.num_params();
    h.misfit = f.cost / s2;
    // Mode weights for mixture intervals.
    std::vector<double> wm;
    for (int m : g.modes) wm.push_back(std::exp(fits[m].log_evidence - g.log_z_modes));
    auto interval_of = [&](auto index_in, double lo, double hi) {
      std::vector<double> mu, sd, w;
      for (size_t mi = 0; mi < g.modes.size(); ++mi) {
        const Fit& fm = fits[g.modes[mi]];
        const int q = index_in(fm);
        if (q < 0) continue;
        const int Pm = fm.spec.num_params();
        mu.push_back(fm.theta[q]);
        sd.push_back(std::sqrt(std::max(0.0, fm.cov[q * Pm + q])));
        w.push_back(wm[mi]);
      }
      return Interval(w, mu, sd, lo, hi);
    };
    const double ln_f = f.theta[P - 2], ln_g = f.theta[P - 1];
    h.velocity_factor = std::exp(ln_f);
    h.dispersion_factor = std::exp(ln_g);
    {
      auto vi =
          interval_of([](const Fit& fm) { return fm.spec.num_params() - 2; }, -INFINITY, INFINITY);
      auto di =
          interval_of([](const Fit& fm) { return fm.spec.num_params() - 1; }, -INFINITY, INFINITY);
      h.velocity_factor_ci90 = {std::exp(vi[0]), std::exp(vi[1])};
      h.dispersion_factor_ci90 = {std::exp(di[0]), std::exp(di[1])};
    }
    for (size_t j = 0; j < f.spec.releases.size(); ++j) {
      const ReleaseSpec& r = f.spec.releases[j];
      const int o = f.spec.offset(static_cast<int>(j));
      SourceEstimate e;
      const std::string label = f.labels[j];
      // The same release in another mode: match by label.
      auto find_q = [&](const Fit& fm, int rel) {
        for (size_t jj = 0; jj < fm.labels.size(); ++jj) {
          if (fm.labels[jj] == label) return fm.spec.offset(static_cast<int>(jj)) + rel;
        }
        return -1;
      };
      if (r.unregistered()) {
        e.id = "unregistered";
        e.kind = "unregistered";
        e.reach = r.reach;
        e.km = f.theta[o + 2];
        e.km_ci90 = interval_of([&](const Fit& fm) { return find_q(fm, 2); }, r.km_lo, r.km_hi);
      } else {
        const KernelPoint& kp = c.kernels->points[r.point];
        e.id = kp.source_id;
        e.kind = kp.kind;
        e.reach = kp.reach;
        e.km = kp.km;
        e.km_ci90 = {kp.km, kp.km};
      }
      {
        // Duration and start: posterior medians and 90% intervals. For the leading
        // hypotheses from the duration profile (a mixture over the grid of durations, each
        // with the midpoint's conditional spread); otherwise from the Laplace Gaussian.
        std::vector<double> sw, smu, ssd;  // start mixture (h)
        std::vector<double> dl, dw;        // ln duration grid and weights
        for (size_t mi = 0; mi < g.modes.size(); ++mi) {
          const Fit& fm = fits[g.modes[mi]];
          const int q = find_q(fm, 0);
          if (q < 0) continue;
          const int Pm = fm.spec.num_params();
          const bool profile = g.modes[mi] == bm && h.probability >= kProfileMinProbability &&
                               profiled < kMaxProfiles &&
                               g.log_z_modes >= g.log_z + std::log(kProfileModesShare);
          if (profile) {
            ++profiled;
            int jj = 0;
            while (fm.labels[jj] != label) ++jj;
            const DurationProfile dp = ProfileDuration(c, model, fm, jj, s2);
            const double cmin = *std::min_element(dp.cost.begin(), dp.cost.end());
            // Weights: uniform prior in ln duration; cells between grid midpoints.
            for (size_t k = 0; k < dp.lnd.size(); ++k) {
              const double a = k == 0 ? dp.lnd[k] : 0.5 * (dp.lnd[k - 1] + dp.lnd[k]);
              const double b =
                  k + 1 == dp.lnd.size() ? dp.lnd[k] : 0.5 * (dp.lnd[k] + dp.lnd[k + 1]);
              const double w = wm[mi] * std::exp(-0.5 * (dp.cost[k] - cmin) / s2) *
                               std::max(b - a, kMinProfileCell);
              dl.push_back(dp.lnd[k]);
              dw.push_back(w);
              sw.push_back(w);
              smu.push_back(dp.mid[k] - 0.5 * std::exp(dp.lnd[k]));
              ssd.push_back(dp.mid_sd);
            }
          } else {
            const double v00 = std::max(1e-8, fm.cov[q * Pm + q]),
                         v11 = std::max(0.0, fm.cov[(q + 1) * Pm + q + 1]);
            const double v01 = fm.cov[q * Pm + q + 1];
            // Nine points of the duration's (truncated) Gaussian, each with the midpoint's
            // conditional distribution.
            for (int n = -4; n <= 4; ++n) {
              const double z = 0.5 * n;
              const double lnd = fm.theta[q + 1] + std::sqrt(v11) * z;
              if (lnd < c.lnd_lo - 1e-9 || lnd > c.lnd_hi + 1e-9) continue;
              const double w = wm[mi] * std::exp(-0.5 * z * z);
              const double mid =
                  fm.theta[q] + (v11 > 0 ? v01 / v11 : 0.0) * (lnd - fm.theta[q + 1]);
              int jj = 0;
              while (fm.labels[jj] != label) ++jj;
              const double timing =
                  pr.timing_error_relative *
                  FirstTravelTime(c, fm.spec.releases[jj], fm.theta, fm.spec.offset(jj)) / 3600.0 /
                  std::exp(fm.theta[Pm - 2]);
              const double sd = std::sqrt(std::max(1e-8, v00 - (v11 > 0 ? v01 * v01 / v11 : 0.0)) +
                                          timing * timing);
              dl.push_back(lnd);
              dw.push_back(w);
              sw.push_back(w);
              smu.push_back(mid - 0.5 * std::exp(lnd));
              ssd.push_back(sd);
            }
            if (dl.empty()) {
              dl.push_back(fm.theta[q + 1]);
              dw.push_back(wm[mi]);
              sw.push_back(wm[mi]);
              smu.push_back(fm.theta[q] - 0.5 * std::exp(fm.theta[q + 1]));
              ssd.push_back(std::sqrt(v00));
            }
          }
        }
        auto grid_quantile = [&](double p) {
          std::vector<size_t> idx(dl.size());
          std::iota(idx.begin(), idx.end(), 0);
          std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return dl[a] < dl[b]; });
          const double tot = std::accumulate(dw.begin(), dw.end(), 0.0);
          double acc = 0.0;
          for (size_t n : idx) {
            acc += dw[n] / tot;
            if (acc >= p) return dl[n];
          }
          return dl[idx.back()];
        };
        e.duration_s = std::exp(grid_quantile(0.5)) * 3600.0;
        e.duration_ci90 = {std::exp(grid_quantile(0.05)) * 3600.0,
                           std::exp(grid_quantile(0.95)) * 3600.0};
        const double s50 = detail::MixtureQuantile(sw, smu, ssd, 0.5);
        const double s05 = detail::MixtureQuantile(sw, smu, ssd, 0.05);
        const double s95 = detail::MixtureQuantile(sw, smu, ssd, 0.95);
        e.release_start_s = c.table.t_ref + s50 * 3600.0;
        e.release_end_s = e.release_start_s + e.duration_s;
        e.start_ci90 = {c.table.t_ref + s05 * 3600.0, c.table.t_ref + s95 * 3600.0};
      }
      // Masses: conditional covariance (G/s2)^-1 plus the propagated parameter uncertainty.
      const int J = static_cast<int>(f.spec.releases.size());
      const int Ks = static_cast<int>(c.species.size());
      for (int k = 0; k < Ks; ++k) {
        Eigen::MatrixXd G(J, J);
        for (int a = 0; a < J; ++a) {
          for (int b = 0; b < J; ++b) G(a, b) = f.eval.normal[k][a * J + b] / s2;
        }
        double var = 0.0;
        if (G(j, j) > 0) {
          Eigen::MatrixXd Gi =
              G + 1e-12 * std::max(1e-300, G.trace()) * Eigen::MatrixXd::Identity(J, J);
          var = Gi.ldlt().solve(Eigen::MatrixXd::Identity(J, J))(j, j);
        } else {
          var = std::pow(pr.mass_max_kg / 1000.0, 2);
        }
        for (int a = 0; a < P; ++a) {
          for (int b = 0; b < P; ++b) {
            var += f.dmass[(static_cast<size_t>(j) * Ks + k) * P + a] * f.cov[a * P + b] *
                   f.dmass[(static_cast<size_t>(j) * Ks + k) * P + b];
          }
        }
        const double m = f.eval.mass[j][k];
        const double sd = std::sqrt(std::max(0.0, var));
        e.mass_kg[c.species[k]] = m * 1000.0;
        const double lo = detail::MixtureQuantile({1.0}, {m}, {sd}, 0.05, 0.0);
        const double hi = detail::MixtureQuantile({1.0}, {m}, {sd}, 0.95, 0.0);
        // No interval reaches past the mass bound (the prior's support).
        const double bound = r.mass_max_t.empty() ? INFINITY : r.mass_max_t[k];
        e.mass_kg_ci90[c.species[k]] = {std::clamp(lo, 0.0, bound) * 1000.0,
                                        std::clamp(hi, 0.0, bound) * 1000.0};
      }
      h.sources.push_back(e);
    }
    result.hypotheses.push_back(h);
  }
  std::stable_sort(
      result.hypotheses.begin(), result.hypotheses.end(),
      [](const Hypothesis& a, const Hypothesis& b) { return a.probability > b.probability; });
}

}  // namespace qingshui::tracing::detail
