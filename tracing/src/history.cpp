#include "qingshui/tracing/history.h"

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/tracing/kernels.h"
#include "tracer_model.h"

namespace qingshui::tracing {

bool RegularizationOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (kind != "tikhonov" && kind != "tv") return fail("regularization: expected tikhonov or tv");
  if (order < 0 || order > 3) return fail("order: expected 0 to 3");
  if (alpha_rule != "discrepancy" && alpha_rule != "lcurve") {
    return fail("alpha: expected discrepancy or lcurve");
  }
  for (double a : alphas) {
    if (!(a > 0)) return fail("alphas: expected values > 0");
  }
  if (alpha_rule == "lcurve" && !alphas.empty() && alphas.size() < 5) {
    return fail("alphas: the L-curve needs at least 5 values");
  }
  if (tv_iterations < 1) return fail("tv_iterations: expected >= 1");
  if (free_columns < 0) return fail("free_columns: expected >= 0");
  if (!(identity_weight >= 0)) return fail("identity_weight: expected >= 0");
  return true;
}

namespace {

// Lawson-Hanson NNLS on the normal equations H x = g (H = A'A, g = A'b); the last `free`
// unknowns are unconstrained.
Eigen::VectorXd NnlsNormal(const Eigen::MatrixXd& H, const Eigen::VectorXd& g, int free) {
  const int n = static_cast<int>(g.size());
  const int nc = n - free;  // constrained unknowns 0 .. nc-1
  Eigen::VectorXd x = Eigen::VectorXd::Zero(n);
  std::vector<char> passive(n, 0);
  for (int i = nc; i < n; ++i) passive[i] = 1;
  auto solve_passive = [&](Eigen::VectorXd* z) {
    std::vector<int> idx;
    for (int i = 0; i < n; ++i) {
      if (passive[i]) idx.push_back(i);
    }
    z->setZero(n);
    if (idx.empty()) return;
    const int p = static_cast<int>(idx.size());
    Eigen::MatrixXd Hp(p, p);
    Eigen::VectorXd gp(p);
    for (int a = 0; a < p; ++a) {
      gp(a) = g(idx[a]);
      for (int b = 0; b < p; ++b) Hp(a, b) = H(idx[a], idx[b]);
    }
    const double ridge = 1e-13 * std::max(1e-300, Hp.diagonal().cwiseAbs().maxCoeff());
    Hp.diagonal().array() += ridge;
    Eigen::VectorXd zp = Hp.ldlt().solve(gp);
    for (int a = 0; a < p; ++a) (*z)(idx[a]) = zp(a);
  };
  if (free > 0) solve_passive(&x);
  const double tol = 1e-12 * std::max(1.0, g.cwiseAbs().maxCoeff());
  Eigen::VectorXd z;
  for (int outer = 0; outer < 3 * n + 10; ++outer) {
    const Eigen::VectorXd w = g - H * x;
    int j = -1;
    double best = tol;
    for (int i = 0; i < nc; ++i) {
      if (!passive[i] && w(i) > best) {
        best = w(i);
        j = i;
      }
    }
    if (j < 0) break;
    passive[j] = 1;
    for (int inner = 0; inner < 3 * n + 10; ++inner) {
      solve_passive(&z);
      double alpha = 1.0;
      bool feasible = true;
      for (int i = 0; i < nc; ++i) {
        if (passive[i] && z(i) <= 0) {
          feasible = false;
          const double denom = x(i) - z(i);
          if (denom > 0) alpha = std::min(alpha, x(i) / denom);
        }
      }
      if (feasible) {
        x = z;
        break;
      }
      x += alpha * (z - x);
      for (int i = 0; i < nc; ++i) {
        if (passive[i] && x(i) <= 1e-14 * std::max(1.0, x.cwiseAbs().maxCoeff())) {
          passive[i] = 0;
          x(i) = 0.0;
        }
      }
    }
  }
  for (int i = 0; i < nc; ++i) x(i) = std::max(0.0, x(i));
  return x;
}

// The k-th order difference operator on the regularized (first n - free) unknowns, with
// `identity` × I stacked below it when identity > 0.
Eigen::MatrixXd Difference(int n, int order, int free, double identity) {
  const int nr = n - free;
  Eigen::MatrixXd L = Eigen::MatrixXd::Identity(nr, nr);
  for (int o = 0; o < order; ++o) {
    Eigen::MatrixXd D = Eigen::MatrixXd::Zero(L.rows() - 1, L.rows());
    for (int i = 0; i + 1 < L.rows(); ++i) {
      D(i, i) = -1.0;
      D(i, i + 1) = 1.0;
    }
    L = D * L;
  }
  const int extra = identity > 0 && order > 0 ? nr : 0;
  Eigen::MatrixXd full = Eigen::MatrixXd::Zero(L.rows() + extra, n);
  full.topLeftCorner(L.rows(), nr) = L;
  if (extra) full.bottomLeftCorner(nr, nr) = identity * Eigen::MatrixXd::Identity(nr, nr);
  return full;
}

}  // namespace

std::vector<double> NonNegativeLeastSquares(const std::vector<double>& A, int m, int n,
                                            const std::vector<double>& b, int free) {
  Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Am(
      A.data(), m, n);
  Eigen::Map<const Eigen::VectorXd> bm(b.data(), m);
  const Eigen::MatrixXd H = Am.transpose() * Am;
  const Eigen::VectorXd g = Am.transpose() * bm;
  const Eigen::VectorXd x = NnlsNormal(H, g, free);
  return std::vector<double>(x.data(), x.data() + n);
}

RegularizedSolution SolveRegularized(const std::vector<double>& G, int m, int n,
                                     const std::vector<double>& d, const std::vector<double>& sigma,
                                     const RegularizationOptions& opt) {
  std::string error;
  if (!opt.IsValid(&error)) throw ConfigError("regularization: " + error);
  if (m <= 0 || n <= 0 || static_cast<int>(G.size()) != m * n || static_cast<int>(d.size()) != m ||
      static_cast<int>(sigma.size()) != m || opt.free_columns >= n) {
    throw ConfigError("regularization: inconsistent problem sizes");
  }
  Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> Gm(
      G.data(), m, n);
  Eigen::VectorXd wd(m);
  Eigen::MatrixXd WG(m, n);
  for (int i = 0; i < m; ++i) {
    if (!(sigma[i] > 0)) throw DataError("regularization: sigma must be > 0");
    WG.row(i) = Gm.row(i) / sigma[i];
    wd(i) = d[i] / sigma[i];
  }
  const Eigen::MatrixXd H0 = WG.transpose() * WG;
  const Eigen::VectorXd g0 = WG.transpose() * wd;
  const double dd = wd.squaredNorm();
  const int order = opt.kind == "tv" ? std::max(1, opt.order) : opt.order;
  const Eigen::MatrixXd L = Difference(n, order, opt.free_columns, opt.identity_weight);
  const Eigen::MatrixXd LtL = L.transpose() * L;
  auto chi2_of = [&](const Eigen::VectorXd& x) {
    return std::max(0.0, x.dot(H0 * x) - 2 * x.dot(g0) + dd);
  };

  Eigen::VectorXd warm;  // the previous total-variation solution (warm start)
  auto solve = [&](double alpha, Eigen::VectorXd* x, double* semi) {
    if (opt.kind == "tikhonov") {
      *x = NnlsNormal(H0 + alpha * alpha * LtL, g0, opt.free_columns);
      *semi = (L * *x).norm();
      return;
    }
    // Total variation by iteratively reweighted least squares: |v| ≈ v² / |v_old|
    // (Aster et al. 2018 §7.3, irlsl1reg), each step a non-negative least squares, started
    // from the solution at the previous α.
    *x = warm.size() == n ? warm : NnlsNormal(H0 + 1e-6 * alpha * LtL, g0, opt.free_columns);
    const double scale = std::max(1e-300, x->cwiseAbs().maxCoeff());
    for (int it = 0; it < opt.tv_iterations; ++it) {
      const Eigen::VectorXd v = L * *x;
      Eigen::VectorXd wgt(v.size());
      for (int i = 0; i < v.size(); ++i) wgt(i) = 1.0 / std::max(std::fabs(v(i)), 1e-6 * scale);
      const Eigen::MatrixXd R = L.transpose() * wgt.asDiagonal() * L;
      const Eigen::VectorXd xn = NnlsNormal(H0 + 0.5 * alpha * R, g0, opt.free_columns);
      const double change = (xn - *x).norm() / std::max(1e-300, xn.norm());
      *x = xn;
      if (change < 1e-4) break;
    }
    warm = *x;
    *semi = (L * *x).lpNorm<1>();
  };

  RegularizedSolution out;
  std::vector<double> alphas = opt.alphas;
  if (alphas.empty()) {
    // Scale: α² LᵀL comparable with the data term (Tikhonov); α |Lx| comparable with the
    // gradient of the data term at x = 0 (TV).
    const double ref = opt.kind == "tikhonov"
                           ? std::sqrt(H0.trace() / std::max(1e-300, LtL.trace()))
                           : std::max(1e-300, g0.cwiseAbs().maxCoeff());
    // Quarter decades (Aster et al.'s grids); half decades for total variation, whose
    // reweighted solves cost more.
    const double step = opt.kind == "tikhonov" ? 0.25 : 0.5;
    for (double e = -6.0; e <= 3.0 + 1e-9; e += step) alphas.push_back(ref * std::pow(10.0, e));
  }
  std::sort(alphas.begin(), alphas.end());
  std::vector<Eigen::VectorXd> xs(alphas.size());
  for (size_t i = 0; i < alphas.size(); ++i) {
    double semi;
    solve(alphas[i], &xs[i], &semi);
    out.curve_alpha.push_back(alphas[i]);
    out.curve_chi2.push_back(chi2_of(xs[i]));
    out.curve_seminorm.push_back(semi);
  }
  // L-curve corner: largest curvature of (log sqrt(chi2), log seminorm) in log alpha.
  {
    const int N = static_cast<int>(alphas.size());
    double best = -INFINITY;
    for (int i = 1; i + 1 < N; ++i) {
      auto pt = [&](int j) {
        return std::array<double, 3>{std::log(alphas[j]),
                                     0.5 * std::log(std::max(1e-300, out.curve_chi2[j])),
                                     std::log(std::max(1e-300, out.curve_seminorm[j]))};
      };
      const auto a = pt(i - 1), b = pt(i), c = pt(i + 1);
      const double h1 = b[0] - a[0], h2 = c[0] - b[0];
      const double x1 = (c[1] - a[1]) / (h1 + h2), y1 = (c[2] - a[2]) / (h1 + h2);
      const double x2 = 2 * ((c[1] - b[1]) / h2 - (b[1] - a[1]) / h1) / (h1 + h2);
      const double y2 = 2 * ((c[2] - b[2]) / h2 - (b[2] - a[2]) / h1) / (h1 + h2);
      const double denom = std::pow(x1 * x1 + y1 * y1, 1.5);
      if (!(denom > 0)) continue;
      // Signed curvature; the corner of an L-curve bends towards the origin (ABT's
      // l_curve_corner takes the maximum of the same expression).
      const double kappa = (x1 * y2 - x2 * y1) / denom;
      if (kappa > best) {
        best = kappa;
        out.corner_index = i;
      }
    }
  }
  double alpha;
  Eigen::VectorXd x;
  double semi;
  const double target =
      std::isfinite(opt.discrepancy_chi2) ? opt.discrepancy_chi2 : static_cast<double>(m);
  // The discrepancy principle needs a regularization light enough to reach the noise level;
  // when even the lightest misses it (the model cannot fit the data that well), it does not
  // apply and the L-curve corner is used instead (reported in alpha_rule_used).
  out.alpha_rule_used = opt.alpha_rule;
  if (opt.alpha_rule == "discrepancy" && !(out.curve_chi2.front() <= target))
    out.alpha_rule_used = "lcurve";
  if (out.alpha_rule_used == "lcurve") {
    const int i = out.corner_index >= 0 ? out.corner_index : static_cast<int>(alphas.size()) / 2;
    alpha = alphas[i];
    x = xs[i];
    semi = out.curve_seminorm[i];
  } else {
    // Discrepancy principle (Morozov): the largest α whose misfit does not exceed the
    // expected χ² of the noise. χ² grows with α; bisect in log α between grid points.
    int hi = -1;
    for (size_t i = 0; i < alphas.size(); ++i) {
      if (out.curve_chi2[i] > target) {
        hi = static_cast<int>(i);
        break;
      }
    }
    if (hi < 0) {
      alpha = alphas.back();
      x = xs.back();
      semi = out.curve_seminorm.back();
    } else if (hi == 0) {
      alpha = alphas[0];
      x = xs[0];
      semi = out.curve_seminorm[0];
    } else {
      double lo_a = std::log(alphas[hi - 1]), hi_a = std::log(alphas[hi]);
      alpha = alphas[hi - 1];
      x = xs[hi - 1];
      semi = out.curve_seminorm[hi - 1];
      for (int it = 0; it < 30; ++it) {
        const double mid = 0.5 * (lo_a + hi_a);
        Eigen::VectorXd xm;
        double sm;
        solve(std::exp(mid), &xm, &sm);
        if (chi2_of(xm) > target) {
          hi_a = mid;
        } else {
          lo_a = mid;
          alpha = std::exp(mid);
          x = xm;
          semi = sm;
        }
        if (hi_a - lo_a < (opt.kind == "tv" ? 2e-2 : 1e-3)) break;
      }
    }
  }
  out.alpha = alpha;
  out.x.assign(x.data(), x.data() + n);
  out.chi2 = chi2_of(x);
  out.seminorm = semi;
  return out;
}

bool HistoryOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (source_id.empty()) return fail("history: a source id is required");
  if (!(bin_s >= 600) || bin_s > 86400) return fail("bin_h: expected 10 minutes to 24 h");
  if (!(lead_s >= 0)) return fail("lead: expected >= 0");
  if (regularization != "tikhonov" && regularization != "tv") {
    return fail("regularization: expected tikhonov or tv");
  }
  if (alpha_rule != "discrepancy" && alpha_rule != "lcurve")
    return fail("alpha: expected discrepancy or lcurve");
  if (!(noise_relative > 0 && noise_relative < 1))
    return fail("noise: expected a relative standard deviation in (0, 1)");
  if (std::isfinite(start_s) && std::isfinite(end_s) && !(end_s > start_s))
    return fail("end: expected after start");
  return true;
}

HistoryResult ReconstructHistory(const Network& net, const ObservationSet& obs,
                                 const HistoryOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string error;
  if (!o.IsValid(&error)) throw ConfigError("trace --history: " + error);
  const Source* src = net.FindSource(o.source_id);
  if (!src) throw ConfigError("trace --history: unknown source '" + o.source_id + "'");
  std::set<std::string> observed;
  double t_min = INFINITY, t_max = -INFINITY;
  for (const auto& r : obs.rows) {
    if (!net.FindSpecies(r.species)) {
      throw ConfigError(
          Located(obs.file, r.line, "species", "unknown species '" + r.species + "'"));
    }
    if (r.IsPoint()) {
      throw ConfigError(Located(obs.file, r.line, "reach",
                                "point samples (reach, km) are not used by --history yet; "
                                "give station samples only"));
    }
    if (!net.FindStation(r.station)) {
      throw ConfigError(
          Located(obs.file, r.line, "station", "unknown station '" + r.station + "'"));
    }
    if ((std::isfinite(o.start_s) && r.time_s < o.start_s) ||
        (std::isfinite(o.end_s) && r.time_s > o.end_s))
      continue;
    observed.insert(r.species);
    t_min = std::min(t_min, r.time_s);
    t_max = std::max(t_max, r.time_s);
  }
  if (!std::isfinite(t_min))
    throw DataError(Located(obs.file, 0, "time", "no observations in the window"));
  std::vector<std::string> species;
  for (const auto& sp : net.species) {
    const bool wanted = o.species.empty() ||
                        std::find(o.species.begin(), o.species.end(), sp.id) != o.species.end();
    if (wanted && observed.count(sp.id)) species.push_back(sp.id);
  }
  if (species.empty())
    throw DataError(Located(obs.file, 0, "species", "no observations of the species asked for"));
  const double w_start = std::isfinite(o.start_s) ? o.start_s : t_min;
  const double w_end = std::isfinite(o.end_s) ? o.end_s : t_max;

  KernelPoint kp;
  kp.reach = src->reach;
  kp.km = src->km;
  kp.source_id = src->id;
  kp.kind = ToString(src->kind);
  KernelOptions ko;
  ko.date = o.date.empty() ? LocalDate(w_start) : o.date;
  ko.temperature_c = o.temperature_c;
  ko.time_step_s = std::min(3600.0, o.bin_s);
  ko.horizon_s = w_end - (w_start - o.lead_s) + ko.time_step_s;
  ko.grid_spacing_km = 0.0;
  ko.species = species;
  ko.dispersion_factors = {1.0};
  const ResponseKernels K = BuildKernels(net, {kp}, ko);

  HistoryResult out;
  out.source_id = o.source_id;
  out.regularization = o.regularization;
  out.alpha_rule = o.alpha_rule;
  out.bin_s = o.bin_s;
  const int nb = static_cast<int>(std::ceil((w_end - (w_start - o.lead_s)) / o.bin_s - 1e-9));
  for (int j = 0; j < nb; ++j) out.bin_start_s.push_back(w_start - o.lead_s + j * o.bin_s);

  detail::ObservationTable table;
  table.t_ref = w_start;
  const detail::Model model(K, table, 1);
  detail::ReleaseSpec rel;
  rel.point = 0;
  std::map<std::string, int> station_index;
  for (int s = 0; s < K.num_stations(); ++s) station_index[K.station_ids[s]] = s;

  // Per species: the samples at stations below the source, their noise, one baseline per
  // station (free) and one load per bin.
  struct SpeciesProblem {
    int k = 0;
    std::vector<int> s;
    std::vector<double> t, d, sigma;
    std::vector<int> stations;
  };
  std::vector<SpeciesProblem> problems;
  for (size_t k = 0; k < species.size(); ++k) {
    SpeciesProblem sp;
    sp.k = static_cast<int>(k);
    for (const auto& r : obs.rows) {
      if (r.species != species[k] || r.time_s < w_start || r.time_s > w_end) continue;
      const int s = station_index[r.station];
      if (!K.Sees(0, s)) continue;  // upstream stations say nothing about this source
      sp.s.push_back(s);
      sp.t.push_back(r.time_s);
      sp.d.push_back(r.value_mg_l);
      if (std::find(sp.stations.begin(), sp.stations.end(), s) == sp.stations.end())
        sp.stations.push_back(s);
    }
    if (sp.d.empty()) continue;
    std::vector<double> ys = sp.d;
    std::nth_element(ys.begin(), ys.begin() + ys.size() / 2, ys.end());
    const double floor = 0.01 * ys[ys.size() / 2] + 1e-6;
    for (double y : sp.d)
      sp.sigma.push_back(std::sqrt(std::pow(o.noise_relative * y, 2) + floor * floor));
    problems.push_back(sp);
  }
  if (problems.empty()) {
    throw DataError(Located(obs.file, 0, "station",
                            "no observations at stations downstream of " + o.source_id));
  }
  // G for velocity and dispersion factors e^lnf, e^lng: bins whose release no sample sees
  // (after the last arrival) are left out — reported as 0 — rather than given an arbitrary
  // value by the null space.
  auto build = [&](const SpeciesProblem& sp, double lnf, double lng, std::vector<double>* G,
                   std::vector<int>* keep) {
    const int m = static_cast<int>(sp.d.size());
    std::vector<double> full(static_cast<size_t>(m) * nb);
    std::vector<double> norms(nb, 0.0);
    double max_norm = 0.0;
    for (int i = 0; i < m; ++i) {
      for (int j = 0; j < nb; ++j) {
        const double th[2] = {(out.bin_start_s[j] + 0.5 * o.bin_s - w_start) / 3600.0,
                              std::log(o.bin_s / 3600.0)};
        const double v = model.Response(rel, th, lnf, lng, sp.s[i], sp.k, sp.t[i]);
        full[static_cast<size_t>(i) * nb + j] = v;
        norms[j] += std::pow(v / sp.sigma[i], 2);
      }
    }
    for (double x : norms) max_norm = std::max(max_norm, x);
    keep->clear();
    for (int j = 0; j < nb; ++j) {
      if (norms[j] > 1e-6 * max_norm) keep->push_back(j);
    }
    const int nk = static_cast<int>(keep->size()), nf = static_cast<int>(sp.stations.size());
    G->assign(static_cast<size_t>(m) * (nk + nf), 0.0);
    for (int i = 0; i < m; ++i) {
      for (int a = 0; a < nk; ++a)
        (*G)[static_cast<size_t>(i) * (nk + nf) + a] =
            full[static_cast<size_t>(i) * nb + (*keep)[a]];
      const int si = static_cast<int>(std::find(sp.stations.begin(), sp.stations.end(), sp.s[i]) -
                                      sp.stations.begin());
      (*G)[static_cast<size_t>(i) * (nk + nf) + nk + si] = 1.0;
    }
  };
  auto options_for = [&](const SpeciesProblem& sp) {
    RegularizationOptions ro;
    ro.kind = o.regularization;
    ro.order = o.regularization == "tv" ? 1 : 2;
    ro.alpha_rule = o.alpha_rule;
    ro.free_columns = static_cast<int>(sp.stations.size());
    // A steady load is indistinguishable from the baseline; a small identity term in the
    // regularization gives that part to the baseline (minimum-norm loads).
    ro.identity_weight = 0.1;
    return ro;
  };
  // Velocity and dispersion are uncertain: choose the factors on a small grid by the misfit
  // at each species' nominal regularization, then reconstruct with them.
  std::vector<double> nominal_alpha(problems.size());
  for (size_t q = 0; q < problems.size(); ++q) {
    std::vector<double> G;
    std::vector<int> keep;
    build(problems[q], 0.0, 0.0, &G, &keep);
    const int n = static_cast<int>(G.size() / problems[q].d.size());
    RegularizationOptions ro = options_for(problems[q]);
    ro.kind = "tikhonov";
    ro.order = 2;
    nominal_alpha[q] = SolveRegularized(G, static_cast<int>(problems[q].d.size()), n, problems[q].d,
                                        problems[q].sigma, ro)
                           .alpha;
  }
  double best_lnf = 0.0, best_lng = 0.0, best_chi2 = INFINITY;
  for (double lnf : {-0.2, -0.1, 0.0, 0.1, 0.2}) {
    for (double lng : {-0.7, 0.0, 0.7}) {
      double chi2 = 0.0;
      for (size_t q = 0; q < problems.size(); ++q) {
        std::vector<double> G;
        std::vector<int> keep;
        build(problems[q], lnf, lng, &G, &keep);
        const int n = static_cast<int>(G.size() / problems[q].d.size());
        // Tikhonov at the nominal α for this choice (fast, also when the final
        // reconstruction is total variation).
        RegularizationOptions ro = options_for(problems[q]);
        ro.kind = "tikhonov";
        ro.order = 2;
        ro.alphas = {nominal_alpha[q] * 0.5, nominal_alpha[q], nominal_alpha[q] * 2,
                     nominal_alpha[q] * 4, nominal_alpha[q] * 8};
        ro.alpha_rule = "lcurve";
        const RegularizedSolution sol = SolveRegularized(G, static_cast<int>(problems[q].d.size()),
                                                         n, problems[q].d, problems[q].sigma, ro);
        chi2 += sol.curve_chi2[1];
      }
      if (chi2 < best_chi2) {
        best_chi2 = chi2;
        best_lnf = lnf;
        best_lng = lng;
      }
    }
  }
  out.velocity_factor = std::exp(best_lnf);
  out.dispersion_factor = std::exp(best_lng);
  for (size_t q = 0; q < problems.size(); ++q) {
    const SpeciesProblem& sp = problems[q];
    std::vector<double> G;
    std::vector<int> keep;
    build(sp, best_lnf, best_lng, &G, &keep);
    const int m = static_cast<int>(sp.d.size());
    const int n = static_cast<int>(G.size() / m);
    const RegularizedSolution sol = SolveRegularized(G, m, n, sp.d, sp.sigma, options_for(sp));
    HistorySeries hs;
    hs.alpha_rule = sol.alpha_rule_used;
    hs.species = species[sp.k];
    std::vector<double> x(nb, 0.0);
    for (size_t a = 0; a < keep.size(); ++a) x[keep[a]] = sol.x[a];
    for (int j = 0; j < nb; ++j) {
      hs.load_kg_h.push_back(x[j] * 1000.0 / (o.bin_s / 3600.0));
      hs.total_kg += x[j] * 1000.0;
    }
    hs.alpha = sol.alpha;
    hs.chi2 = sol.chi2;
    hs.num_data = m;
    hs.curve_alpha = sol.curve_alpha;
    hs.curve_chi2 = sol.curve_chi2;
    hs.curve_seminorm = sol.curve_seminorm;
    hs.corner_index = sol.corner_index;
    out.series.push_back(hs);
  }
  if (out.series.empty()) {
    throw DataError(Located(obs.file, 0, "station",
                            "no observations at stations downstream of " + o.source_id));
  }
  out.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

namespace {
std::string Num(double x, int digits = 6) {
  if (!std::isfinite(x)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", digits, x);
  return b;
}
}  // namespace

std::string HistoryResultJson(const HistoryResult& r) {
  std::ostringstream o;
  o << "{\n  \"source\": \"" << r.source_id << "\", \"regularization\": \"" << r.regularization
    << "\", \"alpha_rule\": \"" << r.alpha_rule << "\", \"bin_h\": " << Num(r.bin_s / 3600.0)
    << ", \"velocity_factor\": " << Num(r.velocity_factor)
    << ", \"dispersion_factor\": " << Num(r.dispersion_factor) << ",\n";
  o << "  \"bin_start\": [";
  for (size_t j = 0; j < r.bin_start_s.size(); ++j)
    o << (j ? ", " : "") << "\"" << FormatIsoTime(r.bin_start_s[j]) << "\"";
  o << "],\n  \"series\": [";
  for (size_t i = 0; i < r.series.size(); ++i) {
    const auto& s = r.series[i];
    o << (i ? "," : "") << "\n    {\"species\": \"" << s.species << "\", \"alpha_rule\": \""
      << s.alpha_rule << "\", \"total_kg\": " << Num(s.total_kg) << ", \"alpha\": " << Num(s.alpha)
      << ", \"chi2\": " << Num(s.chi2) << ", \"num_data\": " << s.num_data << ", \"load_kg_h\": [";
    for (size_t j = 0; j < s.load_kg_h.size(); ++j) o << (j ? ", " : "") << Num(s.load_kg_h[j], 5);
    o << "]}";
  }
  o << "\n  ],\n  \"elapsed_s\": " << Num(r.elapsed_s, 4) << "\n}\n";
  return o.str();
}

std::string HistoryResultTable(const HistoryResult& r) {
  std::ostringstream o;
  o << "Release history of " << r.source_id << " (" << r.regularization << ", α by " << r.alpha_rule
    << "), bins of " << Num(r.bin_s / 3600.0, 3) << " h; velocity x" << Num(r.velocity_factor, 3)
    << ", dispersion x" << Num(r.dispersion_factor, 3) << " (chosen by the misfit)\n";
  for (const auto& s : r.series) {
    o << "  " << s.species << ": total " << Num(s.total_kg, 4) << " kg, chi2 " << Num(s.chi2, 4)
      << " for " << s.num_data << " samples, alpha " << Num(s.alpha, 3);
    if (s.alpha_rule != r.alpha_rule)
      o << " (" << s.alpha_rule << ": the noise level was not reached)";
    o << "\n";
  }
  o << "time";
  for (const auto& s : r.series) o << "," << s.species << "_kg_h";
  o << "\n";
  for (size_t j = 0; j < r.bin_start_s.size(); ++j) {
    bool any = false;
    for (const auto& s : r.series) any = any || s.load_kg_h[j] > 1e-6 * std::max(1.0, s.total_kg);
    if (!any) continue;
    o << FormatIsoTime(r.bin_start_s[j]);
    for (const auto& s : r.series) o << "," << Num(s.load_kg_h[j], 4);
    o << "\n";
  }
  o << "(bins with no load omitted; elapsed " << Num(r.elapsed_s, 3) << " s)\n";
  return o.str();
}

}  // namespace qingshui::tracing
