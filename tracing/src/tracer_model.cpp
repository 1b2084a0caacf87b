#include "tracer_model.h"

#include <algorithm>

namespace qingshui::tracing::detail {

namespace {

// Solves the n x n system (n <= 3) on index set `idx` by Gaussian elimination; false if
// singular.
bool SolveSubset(int n, const double* G, const double* h, const int* idx, int k, double* x) {
  double A[3][4];
  for (int a = 0; a < k; ++a) {
    for (int b = 0; b < k; ++b) A[a][b] = G[idx[a] * n + idx[b]];
    A[a][k] = h[idx[a]];
  }
  for (int c = 0; c < k; ++c) {
    int piv = c;
    for (int r = c + 1; r < k; ++r) {
      if (std::fabs(A[r][c]) > std::fabs(A[piv][c])) piv = r;
    }
    if (!(std::fabs(A[piv][c]) > 1e-300)) return false;
    if (piv != c) {
      for (int b = 0; b <= k; ++b) std::swap(A[c][b], A[piv][b]);
    }
    for (int r = c + 1; r < k; ++r) {
      const double f = A[r][c] / A[c][c];
      for (int b = c; b <= k; ++b) A[r][b] -= f * A[c][b];
    }
  }
  for (int c = k - 1; c >= 0; --c) {
    double s = A[c][k];
    for (int b = c + 1; b < k; ++b) s -= A[c][b] * x[b];
    x[c] = s / A[c][c];
  }
  return true;
}

}  // namespace

double SmallNnls(int n, const double* G, const double* h, double* m) {
  double best = 0.0;  // the empty set: m = 0
  for (int i = 0; i < n; ++i) m[i] = 0.0;
  for (int mask = 1; mask < (1 << n); ++mask) {
    int idx[3], k = 0;
    for (int i = 0; i < n; ++i) {
      if (mask & (1 << i)) idx[k++] = i;
    }
    double x[3];
    if (!SolveSubset(n, G, h, idx, k, x)) continue;
    bool feasible = true;
    for (int a = 0; a < k; ++a) feasible = feasible && x[a] >= 0;
    if (!feasible) continue;
    // Objective m'Gm - 2h'm = -h_S' x at the subset optimum.
    double q = 0.0;
    for (int a = 0; a < k; ++a) q -= h[idx[a]] * x[a];
    if (q < best) {
      best = q;
      for (int i = 0; i < n; ++i) m[i] = 0.0;
      for (int a = 0; a < k; ++a) m[idx[a]] = x[a];
    }
  }
  return best;
}

double SmallBoundedLs(int n, const double* G, const double* h, const double* upper, double* m) {
  const double unbounded = SmallNnls(n, G, h, m);
  bool inside = true;
  for (int i = 0; i < n; ++i) inside = inside && m[i] <= upper[i];
  if (inside) return unbounded;
  auto objective = [&](const double* x) {
    double q = 0.0;
    for (int a = 0; a < n; ++a) {
      q -= 2 * h[a] * x[a];
      for (int b = 0; b < n; ++b) q += x[a] * G[a * n + b] * x[b];
    }
    return q;
  };
  double best = 0.0;  // m = 0
  for (int i = 0; i < n; ++i) m[i] = 0.0;
  int codes = 1;
  for (int i = 0; i < n; ++i) codes *= 3;
  for (int code = 1; code < codes; ++code) {
    // State of unknown i: 0 at zero, 1 free, 2 at its upper bound.
    int state[3], idx[3], k = 0;
    bool valid = true;
    for (int i = 0, c = code; i < n; ++i, c /= 3) {
      state[i] = c % 3;
      if (state[i] == 2 && !std::isfinite(upper[i])) valid = false;
      if (state[i] == 1) idx[k++] = i;
    }
    if (!valid) continue;
    double x[3];
    for (int i = 0; i < n; ++i) x[i] = state[i] == 2 ? upper[i] : 0.0;
    if (k > 0) {
      // Free unknowns: G_FF x_F = h_F − G_FU u_U.
      double hr[3];
      for (int a = 0; a < n; ++a) {
        hr[a] = h[a];
        for (int b = 0; b < n; ++b) {
          if (state[b] == 2) hr[a] -= G[a * n + b] * upper[b];
        }
      }
      double xf[3];
      if (!SolveSubset(n, G, hr, idx, k, xf)) continue;
      bool feasible = true;
      for (int a = 0; a < k; ++a) feasible = feasible && xf[a] >= 0 && xf[a] <= upper[idx[a]];
      if (!feasible) continue;
      for (int a = 0; a < k; ++a) x[idx[a]] = xf[a];
    }
    const double q = objective(x);
    if (q < best) {
      best = q;
      std::copy(x, x + n, m);
    }
  }
  return best;
}

namespace {

// The unit response (g/m3 per t) from the cumulative tables c0 (and c1, weight gw, when
// between two dispersion tables) of one kernel point, station and species; Model::Unit.
inline double UnitFromTables(const double* c0, const double* c1, int U, double du_s, double lam,
                             double u, double d, double f, double gw, double shift) {
  // Reference-time arguments of the cumulative kernel at the end and start of the release.
  const double a = f * u - shift;
  if (a <= 0) return 0.0;
  const double b = f * (u - d) - shift;
  const double inv_du = 1.0 / du_s;
  auto cum = [&](double x) {
    if (x <= 0) return 0.0;
    const double xi = x * inv_du;
    double v0, v1 = 0.0;
    const int j = xi >= U - 1 ? U - 1 : static_cast<int>(xi);
    if (j >= U - 1) {
      v0 = c0[U - 1];
      if (c1) v1 = c1[U - 1];
    } else {
      const double w = xi - j;
      v0 = c0[j] + w * (c0[j + 1] - c0[j]);
      if (c1) v1 = c1[j] + w * (c1[j + 1] - c1[j]);
    }
    return c1 ? (1 - gw) * v0 + gw * v1 : v0;
  };
  const double diff = cum(a) - cum(b);
  if (diff == 0.0) return 0.0;
  // Decay runs on real time: the kernels decay over reference time v, the release over
  // v / f; the shift from the release point to the kernel point decays too.
  const double v_mid = std::max(0.0, f * (u - 0.5 * d) - shift);
  const double arg = lam * ((1.0 / f - 1.0) * v_mid + shift / f);
  const double decay = arg == 0.0 ? 1.0 : std::exp(-arg);
  return diff / d * kTonne * decay;
}

}  // namespace

double Model::Unit(int p, int s, int k, double u, double d, double f, int ga, double gw,
                   double shift) const {
  if (f * u - shift <= 0) return 0.0;
  return UnitFromTables(K_.Table(p, s, k, ga), gw > 0 ? K_.Table(p, s, k, ga + 1) : nullptr,
                        K_.num_u, K_.du_s, K_.decay_per_s[k], u, d, f, gw, shift);
}

void Model::Prepare(const ReleaseSpec& r, const double* th, double lnf, double lng,
                    Prepared* q) const {
  // th[0] is the release's midpoint: the data fix it far better than the start, which
  // trades off against the duration.
  q->d = std::exp(th[1]) * 3600.0;
  q->t0 = T_.t_ref + th[0] * 3600.0 - 0.5 * q->d;
  q->f = std::exp(lnf);
  const double gf = std::exp(lng) / q->f;
  const auto& gs = K_.dispersion_factors;
  const int G = static_cast<int>(gs.size());
  q->ga = 0;
  q->gw = 0.0;
  if (G > 1 && gf > gs[0]) {
    if (gf >= gs[G - 1]) {
      q->ga = G - 1;
    } else {
      while (q->ga + 1 < G - 1 && gs[q->ga + 1] <= gf) ++q->ga;
      q->gw = (gf - gs[q->ga]) / (gs[q->ga + 1] - gs[q->ga]);
    }
  }
  if (!r.unregistered()) return;
  // Unregistered at km x: displacement interpolation between the kernel points around it,
  // each shifted by the plug-flow time between it and x.
  const double x = th[2];
  const int n = static_cast<int>(r.reach_km.size());
  int hi = 0;
  while (hi < n && r.reach_km[hi] <= x) ++hi;
  q->lo = hi - 1;
  q->hi = hi < n ? hi : -1;
  const double tau_x = K_.TravelTimeOnReach(r.reach, x);
  if (q->lo >= 0) q->shift_lo = r.reach_tau[q->lo] - tau_x;
  if (q->hi >= 0) q->shift_hi = r.reach_tau[q->hi] - tau_x;
  q->w = q->lo >= 0 && q->hi >= 0
             ? (x - r.reach_km[q->lo]) / (r.reach_km[q->hi] - r.reach_km[q->lo])
             : 0.0;
  q->sees.assign(K_.num_stations(), 0);
  for (int s = 0; s < K_.num_stations(); ++s) q->sees[s] = K_.PointSees(r.reach, x, s);
}

double Model::ResponsePrepared(const ReleaseSpec& r, const Prepared& q, int s, int k,
                               double t) const {
  const double u = t - q.t0;
  if (u <= 0) return 0.0;
  if (!r.unregistered()) {
    if (!K_.Sees(r.point, s)) return 0.0;
    return Unit(r.point, s, k, u, q.d, q.f, q.ga, q.gw, 0.0);
  }
  if (!q.sees[s]) return 0.0;
  const bool lo_ok = q.lo >= 0 && K_.Sees(r.reach_points[q.lo], s);
  const bool hi_ok = q.hi >= 0 && K_.Sees(r.reach_points[q.hi], s);
  if (lo_ok && hi_ok) {
    return (1 - q.w) * Unit(r.reach_points[q.lo], s, k, u, q.d, q.f, q.ga, q.gw, q.shift_lo) +
           q.w * Unit(r.reach_points[q.hi], s, k, u, q.d, q.f, q.ga, q.gw, q.shift_hi);
  }
  if (lo_ok) return Unit(r.reach_points[q.lo], s, k, u, q.d, q.f, q.ga, q.gw, q.shift_lo);
  if (hi_ok) return Unit(r.reach_points[q.hi], s, k, u, q.d, q.f, q.ga, q.gw, q.shift_hi);
  return 0.0;
}

void Model::ResponseBlock(const ReleaseSpec& r, const Prepared& q, int s, int k, const double* t,
                          int n, double* out) const {
  const int U = K_.num_u;
  const double du = K_.du_s, lam = K_.decay_per_s[k];
  // One kernel point's tables at this station and species (null: it does not see it).
  struct Tables {
    const double *c0 = nullptr, *c1 = nullptr;
  };
  auto tables = [&](int p) {
    Tables tb;
    if (p < 0 || !K_.Sees(p, s)) return tb;
    tb.c0 = K_.Table(p, s, k, q.ga);
    tb.c1 = q.gw > 0 ? K_.Table(p, s, k, q.ga + 1) : nullptr;
    return tb;
  };
  auto unit = [&](const Tables& tb, double u, double shift) {
    return UnitFromTables(tb.c0, tb.c1, U, du, lam, u, q.d, q.f, q.gw, shift);
  };
  if (!r.unregistered()) {
    const Tables tb = tables(r.point);
    for (int i = 0; i < n; ++i) {
      const double u = t[i] - q.t0;
      out[i] = u <= 0 || !tb.c0 ? 0.0 : unit(tb, u, 0.0);
    }
    return;
  }
  const Tables lo = q.sees[s] && q.lo >= 0 ? tables(r.reach_points[q.lo]) : Tables();
  const Tables hi = q.sees[s] && q.hi >= 0 ? tables(r.reach_points[q.hi]) : Tables();
  for (int i = 0; i < n; ++i) {
    const double u = t[i] - q.t0;
    if (u <= 0) {
      out[i] = 0.0;
    } else if (lo.c0 && hi.c0) {
      out[i] = (1 - q.w) * unit(lo, u, q.shift_lo) + q.w * unit(hi, u, q.shift_hi);
    } else if (lo.c0) {
      out[i] = unit(lo, u, q.shift_lo);
    } else if (hi.c0) {
      out[i] = unit(hi, u, q.shift_hi);
    } else {
      out[i] = 0.0;
    }
  }
}

double Model::Response(const ReleaseSpec& r, const double* th, double lnf, double lng, int s, int k,
                       double t) const {
  Prepared q;
  Prepare(r, th, lnf, lng, &q);
  return ResponsePrepared(r, q, s, k, t);
}

void Model::Responses(const HypothesisSpec& spec, const double* theta, std::vector<double>* R,
                      int only) const {
  const int J = static_cast<int>(spec.releases.size());
  const int P = spec.num_params();
  const double lnf = theta[P - 2], lng = theta[P - 1];
  int rows = 0;
  for (int b : spec.blocks) rows += T_.blocks[b].end - T_.blocks[b].begin;
  if (only < 0) R->assign(static_cast<size_t>(std::max(J, 1)) * rows, 0.0);
  thread_local std::vector<Prepared> prepared;
  prepared.resize(J);
  for (int j = 0; j < J; ++j) {
    if (only < 0 || j == only)
      Prepare(spec.releases[j], theta + spec.offset(j), lnf, lng, &prepared[j]);
  }
  int r = 0;
  for (int b : spec.blocks) {
    const Block& B = T_.blocks[b];
    for (int j = 0; j < J; ++j) {
      if (only >= 0 && j != only) continue;
      ResponseBlock(spec.releases[j], prepared[j], B.station, B.species, &T_.t[B.begin],
                    B.end - B.begin, &(*R)[static_cast<size_t>(j) * rows + r]);
    }
    r += B.end - B.begin;
  }
}

void Model::Evaluate(const HypothesisSpec& spec, const double* theta, Evaluation* out,
                     bool want_residuals, const std::vector<double>* y_offset,
                     const std::vector<double>* psi_fixed) const {
  thread_local std::vector<double> R;
  Responses(spec, theta, &R);
  EvaluateResponses(spec, R, out, want_residuals, y_offset, psi_fixed);
}

void Model::EvaluateResponses(const HypothesisSpec& spec, const std::vector<double>& R,
                              Evaluation* out, bool want_residuals,
                              const std::vector<double>* y_offset,
                              const std::vector<double>* psi_fixed) const {
  const int J = static_cast<int>(spec.releases.size());
  const int Ks = K_.num_species();
  thread_local std::vector<double> psi;
  int rows = 0;
  for (int b : spec.blocks) rows += T_.blocks[b].end - T_.blocks[b].begin;
  if (psi_fixed) {
    psi = *psi_fixed;
  } else {
    psi.assign(rows, 1.0);
  }
  const int passes = psi_fixed ? 1 : irls_;
  out->psi.assign(rows, 1.0);
  out->cost = 0.0;
  out->mass.assign(J, std::vector<double>(Ks, 0.0));
  out->normal.assign(Ks, std::vector<double>(static_cast<size_t>(J) * J, 0.0));
  out->rhs.assign(Ks, std::vector<double>(J, 0.0));
  out->baseline.assign(spec.blocks.size(), 0.0);
  if (want_residuals) out->residuals.assign(rows, 0.0);

  // Per species: masses shared by that species' blocks, one baseline per block.
  std::vector<int> row_start(spec.blocks.size());
  {
    int r = 0;
    for (size_t bi = 0; bi < spec.blocks.size(); ++bi) {
      row_start[bi] = r;
      r += T_.blocks[spec.blocks[bi]].end - T_.blocks[spec.blocks[bi]].begin;
    }
  }
  auto yv = [&](int i) { return y_offset ? T_.y[i] - (*y_offset)[i] : T_.y[i]; };
  for (int k = 0; k < Ks; ++k) {
    double m[3] = {0, 0, 0};
    double G[9], h[3], upper[3];
    for (int a = 0; a < J; ++a) {
      const auto& bound = spec.releases[a].mass_max_t;
      upper[a] = bound.empty() ? INFINITY : bound[k];
    }
    for (int it = 0; it < passes; ++it) {
      std::fill(G, G + 9, 0.0);
      std::fill(h, h + 3, 0.0);
      for (size_t bi = 0; bi < spec.blocks.size(); ++bi) {
        const Block& B = T_.blocks[spec.blocks[bi]];
        if (B.species != k) continue;
        double W = 0, Sy = 0, Sr[3] = {0, 0, 0}, Srr[9] = {0}, Sry[3] = {0, 0, 0};
        for (int i = B.begin, r = row_start[bi]; i < B.end; ++i, ++r) {
          const double wi = T_.w[i] * psi[r];
          const double y = yv(i);
          W += wi;
          Sy += wi * y;
          for (int a = 0; a < J; ++a) {
            const double ra = R[static_cast<size_t>(a) * rows + r];
            Sr[a] += wi * ra;
            Sry[a] += wi * ra * y;
            for (int c = 0; c <= a; ++c)
              Srr[a * 3 + c] += wi * ra * R[static_cast<size_t>(c) * rows + r];
          }
        }
        if (!(W > 0)) continue;
        for (int a = 0; a < J; ++a) {
          h[a] += Sry[a] - Sr[a] * Sy / W;
          for (int c = 0; c <= a; ++c) {
            const double v = Srr[a * 3 + c] - Sr[a] * Sr[c] / W;
            G[a * J + c] += v;
            if (c != a) G[c * J + a] += v;
          }
        }
      }
      if (J > 0) SmallBoundedLs(J, G, h, upper, m);
      // Residuals and Huber weights for the next pass (and the costs after the last).
      const bool last = it == passes - 1;
      for (size_t bi = 0; bi < spec.blocks.size(); ++bi) {
        const Block& B = T_.blocks[spec.blocks[bi]];
        if (B.species != k) continue;
        double W = 0, Sres = 0;
        for (int i = B.begin, r = row_start[bi]; i < B.end; ++i, ++r) {
          double fit = 0.0;
          for (int a = 0; a < J; ++a) fit += m[a] * R[static_cast<size_t>(a) * rows + r];
          const double wi = T_.w[i] * psi[r];
          W += wi;
          Sres += wi * (yv(i) - fit);
        }
        const double base = W > 0 ? Sres / W : 0.0;
        for (int i = B.begin, r = row_start[bi]; i < B.end; ++i, ++r) {
          double fit = base;
          for (int a = 0; a < J; ++a) fit += m[a] * R[static_cast<size_t>(a) * rows + r];
          const double z = (yv(i) - fit) * std::sqrt(T_.w[i]);
          const double az = std::fabs(z);
          const double next_psi = az <= kHuber ? 1.0 : kHuber / az;
          if (!last) {
            psi[r] = next_psi;
          } else if (psi_fixed) {
            // Frozen Huber weights: a smooth weighted least-squares objective.
            out->cost += psi[r] * z * z;
            if (want_residuals) out->residuals[r] = std::sqrt(psi[r]) * z;
            out->psi[r] = next_psi;
          } else {
            const double rho = az <= kHuber ? z * z : 2 * kHuber * az - kHuber * kHuber;
            out->cost += rho;
            if (want_residuals) out->residuals[r] = z >= 0 ? std::sqrt(rho) : -std::sqrt(rho);
            out->psi[r] = next_psi;
          }
        }
        if (last) out->baseline[bi] = base;
      }
    }
    for (int a = 0; a < J; ++a) out->mass[a][k] = m[a];
    // The misfit's quadratic in the masses at the final weights (for the mass integral).
    std::copy(G, G + J * J, out->normal[k].begin());
    std::copy(h, h + J, out->rhs[k].begin());
  }
}

}  // namespace qingshui::tracing::detail
