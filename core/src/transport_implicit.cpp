// Transport engine, the implicit step: Crank-Nicolson for dispersion, lateral inflow,
// storage zone, sorption, decay and loads, factorized on the tree (leaves to outlet), its
// a-posteriori positivity check and the bisection of members that fail it
// (docs/methods.md section 2, "I - ..." and "Positivity of the implicit step").
#include "transport_engine.h"
#include "simd8.h"

namespace qingshui::transport::engine {

namespace {

// Running sums of the elimination: the largest old value and the old halves of the
// decay and closure budget terms.
struct FwdSums {
  double omax = -kInf, dec = 0, clo = 0;
};

// Right-hand side and forward elimination, with the old halves of the budget terms.
void ForwardRun(int a, int b, const double* __restrict C, const double* __restrict a0,
                const double* __restrict kh, const double* __restrict ip,
                const double* __restrict e, const double* __restrict srcl,
                const double* __restrict ext, const double* __restrict cdec,
                const double* __restrict ccl, double* __restrict y, double* __restrict c0,
                FwdSums* sums) {
  double yp = y[a - 1], omax = sums->omax, dec = sums->dec, clo = sums->clo;
  for (int i = a; i < b; ++i) {
    const double c = C[i];
    const double rhs =
        a0[i] * c + srcl[i] + ext[i] + kh[i] * (C[i + 1] - c) + kh[i - 1] * (C[i - 1] - c);
    yp = rhs * ip[i] - e[i - 1] * yp;
    y[i] = yp;
    c0[i] = c;
    omax = std::max(omax, c);
    dec += cdec[i] * c;
    clo += ccl[i] * c;
  }
  sums->omax = omax;
  sums->dec = dec;
  sums->clo = clo;
}

// Back substitution with the new halves of the budget sums (decay, lateral closure) and the
// new extremes.
// With kCheck it also lists the cells of the run that may be strict extrema among their
// dispersive neighbours (pm / nm: 0 = the neighbour disperses, -inf = it does not, +inf =
// dry cell): cell i + 1 is tested once x_i is known, off the recurrence's critical path.
// Cell a is always listed (its upstream neighbour is solved later); returns the count.
struct BackSums {
  double dec = 0, clo = 0, mn = kInf, mx = -kInf;
};
template <bool kCheck>
int BackRun(int a, int b, double* __restrict C, const double* __restrict y,
            const double* __restrict g, const double* __restrict cdec,
            const double* __restrict ccl,
            const double* __restrict pm, const double* __restrict nm, double eps,
            BackSums* sums, int* __restrict cand) {
  double x1 = C[b], x2 = 0.0;
  double dec = sums->dec, clo = sums->clo, mn = sums->mn, mx = sums->mx;
  int n = 0;
  for (int i = b - 1; i >= a; --i) {
    const double x = y[i] - g[i] * x1;
    C[i] = x;
    dec += cdec[i] * x;
    clo += ccl[i] * x;
    if (kCheck) {
      mn = std::min(mn, x);
      mx = std::max(mx, x);
      if (i + 1 < b) {
        const int j = i + 1;
        const double hiN = std::max(x + pm[j], x2 + nm[j]);
        const double loN = std::min(x - pm[j], x2 - nm[j]);
        cand[n] = j;
        n += (x1 > hiN + eps) | (x1 < loN - eps);
      }
    }
    x2 = x1;
    x1 = x;
  }
  if (kCheck) cand[n++] = a;
  sums->dec = dec;
  sums->clo = clo;
  sums->mn = mn;
  sums->mx = mx;
  return n;
}
// Row kernels of the implicit solve: one cell, all columns of a block (members
// contiguous), vectorized over members.

// Right-hand side and forward elimination of a chain cell.
template <bool kCheck>
QS_KERNEL void FwdRow(int mb, const double* __restrict cu, const double* __restrict ci,
                      const double* __restrict cd, const double* __restrict ex,
                      const double* __restrict yu, double* __restrict yi,
                      double* __restrict c0i, double* __restrict omax, double* __restrict dec,
                      double* __restrict clo, double a0i, double sl, double khi, double khp,
                      double ipi, double ep, double cdi, double cci) {
  for (int m = 0; m < mb; ++m) {
    const double c = ci[m];
    const double rhs = a0i * c + sl + ex[m] + khi * (cd[m] - c) + khp * (cu[m] - c);
    yi[m] = rhs * ipi - ep * yu[m];
    c0i[m] = c;
    if (kCheck) omax[m] = std::max(omax[m], c);
    dec[m] += cdi * c;
    clo[m] += cci * c;
  }
}

// Back substitution of a cell with a downstream neighbour, with the budget sums.
template <bool kCheck>
QS_KERNEL void BackRow(int mb, double* __restrict xi, const double* __restrict xd,
                       const double* __restrict yi, double* __restrict dec,
                       double* __restrict clo, double* __restrict mn, double* __restrict mx,
                       double gi, double cdi, double cci) {
  for (int m = 0; m < mb; ++m) {
    const double x = yi[m] - gi * xd[m];
    xi[m] = x;
    dec[m] += cdi * x;
    clo[m] += cci * x;
    if (kCheck) {
      mn[m] = std::min(mn[m], x);
      mx[m] = std::max(mx[m], x);
    }
  }
}

// Any column of a chain cell a strict extremum (beyond eps[m]) among its neighbours?
QS_KERNEL int ExtremumRow(int mb, const double* __restrict xu, const double* __restrict xi,
                          const double* __restrict xd, const double* __restrict eps,
                          double pmi, double nmi) {
  double excess = -kInf;  // by how much the cell lies outside its neighbours' range
#pragma omp simd reduction(max : excess)
  for (int m = 0; m < mb; ++m) {
    const double hiN = std::max(xu[m] + pmi, xd[m] + nmi);
    const double loN = std::min(xu[m] - pmi, xd[m] - nmi);
    excess = std::max(excess, std::max(xi[m] - (hiN + eps[m]), (loN - eps[m]) - xi[m]));
  }
  return excess > 0;
}

// The run kernels of the implicit solve on kNv chunks side by side (a row is kNv vectors,
// kNv * kLanes members): the elimination and back substitution are recurrences along the
// run, bound by the latency of a multiply and a subtract per cell; with two chunks, two
// independent recurrences overlap in the same loop. Per member the operations and their
// order are those of one chunk (and of the scalar kernels).
// kExt: the run has right-hand-side entries in ext (storage zone, sorbate, loads); without,
// the zeros are not read. kC0: keep the old state in c0 and its maximum (the check and the
// restoring of failed columns read them); the budget takes its old halves here in any
// case, the closure term only with kClo (the run has closure weights; else they are 0 and
// adding their products changes nothing). Sums: omax, dec, clo (kNv * kLanes each).
QS_SIMD8_CODE_FOLLOWS
template <int kNv, bool kExt, bool kC0, bool kClo>
QS_KERNEL void ForwardRun8(int a, int b, const double* __restrict C, std::ptrdiff_t st,
                           const double* __restrict a0, const double* __restrict kh,
                           const double* __restrict ip, const double* __restrict e,
                           const double* __restrict srcl, const double* __restrict ext,
                           const double* __restrict cdec, const double* __restrict ccl,
                           double* __restrict y, double* __restrict c0,
                           double* __restrict sums) {
  constexpr std::ptrdiff_t kRow = kNv * kLanes;
  V8 yp[kNv], om[kNv], dec[kNv], clo[kNv], cu[kNv], c[kNv];
  for (int v = 0; v < kNv; ++v) {
    yp[v] = Load8(y + (a - 1) * kRow + v * kLanes);
    om[v] = Load8(sums + v * kLanes);
    dec[v] = Load8(sums + kRow + v * kLanes);
    clo[v] = Load8(sums + 2 * kRow + v * kLanes);
    cu[v] = Load8(C + (a - 1) * st + v * kLanes);
    c[v] = Load8(C + a * st + v * kLanes);
  }
  for (int i = a; i < b; ++i) {
    for (int v = 0; v < kNv; ++v) {
      const V8 cd = Load8(C + (i + 1) * st + v * kLanes);
      V8 rhs = a0[i] * c[v] + srcl[i];
      if (kExt) rhs = rhs + Load8(ext + i * kRow + v * kLanes);
      rhs = rhs + kh[i] * (cd - c[v]) + kh[i - 1] * (cu[v] - c[v]);
      yp[v] = rhs * ip[i] - e[i - 1] * yp[v];
      Store8(y + i * kRow + v * kLanes, yp[v]);
      if (kC0) {
        Store8(c0 + i * kRow + v * kLanes, c[v]);
        om[v] = Max8(om[v], c[v]);
      }
      dec[v] += cdec[i] * c[v];
      if (kClo) clo[v] += ccl[i] * c[v];
      cu[v] = c[v];
      c[v] = cd;
    }
  }
  for (int v = 0; v < kNv; ++v) {
    Store8(sums + v * kLanes, om[v]);
    Store8(sums + kRow + v * kLanes, dec[v]);
    Store8(sums + 2 * kRow + v * kLanes, clo[v]);
  }
}

// sums: dec, clo, min, max (kNv * kLanes each). With kCheck flags the possible extrema
// among cells a + 1 .. b - 1 as BackRun lists them (a cell is flagged if it may be one in
// any column).
template <int kNv, bool kCheck, bool kClo>
QS_KERNEL void BackRun8(int a, int b, double* __restrict C, std::ptrdiff_t st,
                        const double* __restrict y, const double* __restrict g,
                        const double* __restrict cdec, const double* __restrict ccl,
                        const double* __restrict pm, const double* __restrict nm,
                        const double* __restrict eps_p, double* __restrict sums,
                        unsigned char* __restrict flag) {
  constexpr std::ptrdiff_t kRow = kNv * kLanes;
  V8 x1[kNv], x2[kNv], dec[kNv], clo[kNv], mn[kNv], mx[kNv], eps[kNv];
  for (int v = 0; v < kNv; ++v) {
    x1[v] = Load8(C + b * st + v * kLanes);
    x2[v] = Splat8(0.0);
    dec[v] = Load8(sums + v * kLanes);
    clo[v] = Load8(sums + kRow + v * kLanes);
    mn[v] = Load8(sums + 2 * kRow + v * kLanes);
    mx[v] = Load8(sums + 3 * kRow + v * kLanes);
    eps[v] = Load8(eps_p + v * kLanes);
  }
  for (int i = b - 1; i >= a; --i) {
    V8 out = Splat8(-kInf);
    for (int v = 0; v < kNv; ++v) {
      const V8 x = Load8(y + i * kRow + v * kLanes) - g[i] * x1[v];
      Store8(C + i * st + v * kLanes, x);
      dec[v] += cdec[i] * x;
      if (kClo) clo[v] += ccl[i] * x;
      if (kCheck) {
        mn[v] = Min8(mn[v], x);
        mx[v] = Max8(mx[v], x);
        if (i + 1 < b) {
          const int j = i + 1;
          const V8 hiN = Max8(x + pm[j], x2[v] + nm[j]);
          const V8 loN = Min8(x - pm[j], x2[v] - nm[j]);
          out = Max8(out, Max8(x1[v] - (hiN + eps[v]), (loN - eps[v]) - x1[v]));
        }
      }
      x2[v] = x1[v];
      x1[v] = x;
    }
    // A flag per cell (its address does not depend on the earlier cells, unlike a list's
    // next slot); the caller lists the flagged cells.
    if (kCheck && i + 1 < b) flag[i + 1] = HMax8(out) > 0;
  }
  for (int v = 0; v < kNv; ++v) {
    Store8(sums + v * kLanes, dec[v]);
    Store8(sums + kRow + v * kLanes, clo[v]);
    Store8(sums + 2 * kRow + v * kLanes, mn[v]);
    Store8(sums + 3 * kRow + v * kLanes, mx[v]);
  }
}


}  // namespace

void Engine::BuildImpCoef(int s, double tau, double tf, ImpCoef* c) const {
  const Hydraulics& h = h_;
  const double hh = 0.5 * tau;
  c->tau = tau;
  c->tf = tf;
  c->hver = hver_;
  auto zero = [this](std::vector<double>& v, double x) { v.assign(N_, x); };
  for (auto* v : {&c->a0, &c->kh, &c->ip, &c->e, &c->g, &c->srcl, &c->cdec, &c->ccl, &c->pm,
                  &c->nm}) {
    zero(*v, 0.0);
  }
  zero(c->theta, 1.0);
  zero(c->hi_s, -kInf);
  zero(c->lo_s, kInf);
  c->decay_max.assign(N_, 0);
  c->decay_min.assign(N_, 0);
  c->storage = c->sorb = false;
  c->s_cells.clear();
  c->b_cells.clear();
  for (int i = 0; i < N_; ++i) {
    if (h.V[i] <= 0) continue;
    const Segment& g = p_.segments[i];
    Sorption so = Sorb(i, s);
    double as = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
    if (as + StorageDecay(i, s) * tf + so.storage_rate_per_s > 0) c->s_cells.push_back(i);
    if (so.main_rate_per_s > 0) c->b_cells.push_back(i);
  }
  c->storage = !c->s_cells.empty();
  c->sorb = !c->b_cells.empty();
  if (c->storage) {
    for (auto* v : {&c->s_den, &c->s_keep, &c->s_in, &c->s_bg, &c->s_ex, &c->s_q, &c->s_dec,
                    &c->s_bgk, &c->s_back}) {
      zero(*v, 0.0);
    }
  }
  if (c->sorb) {
    for (auto* v : {&c->b_den, &c->b_keep, &c->b_in, &c->b_ex, &c->b_q, &c->b_kd}) zero(*v, 0.0);
  }
  std::vector<double> diag(N_, 1.0), off(N_, 0.0);
  double rate = 0.0;
  c->lat_sum = 0.0;
  c->static_max = -kInf;
  for (int i = 0; i < N_; ++i) {
    off[i] = -0.5 * h.K[i];
    c->kh[i] = 0.5 * h.K[i];
    const double V = h.V[i];
    if (V <= 0) {
      c->a0[i] = 1.0;
      c->pm[i] = c->nm[i] = kInf;  // a dry cell keeps its value: never an extremum
      continue;
    }
    const Segment& g = p_.segments[i];
    Sorption so = Sorb(i, s);
    const double lam = MainLoss(h, i, s, tf), lams = StorageDecay(i, s) * tf;
    const double vs = g.storage_area_m2 * dx_[i];
    const double as = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
    const double ks = as + lams + so.storage_rate_per_s;
    const double lh = so.main_rate_per_s;
    const double qS = hh * as / (1.0 + hh * ks);
    const double qB = hh * lh * so.kd_m3_per_kg / (1.0 + hh * lh);
    // Everything that removes C_i from the main channel (per unit C_i), without dispersion.
    const double sink = h.Kb[i] + h.qin_dx[i] + g.exchange_per_s * V + lam * V +
                        so.sediment_kg_per_m3 * lh * so.kd_m3_per_kg * V;
    double kd = h.K[i];
    for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) kd += h.K[up_list_[k]];
    diag[i] = V / tau + 0.5 * (kd + sink) - 0.5 * g.exchange_per_s * V * qS -
              0.5 * so.sediment_kg_per_m3 * lh * V * qB;
    c->a0[i] = V / tau - 0.5 * sink;
    c->srcl[i] = h.qin_dx[i] * h.CL[static_cast<size_t>(i) * S_ + s];
    c->lat_sum += c->srcl[i];
    c->cdec[i] = 0.5 * (tau * lam * V);
    c->ccl[i] = 0.5 * (tau * h.qin_dx[i]);
    if (c->storage && ks > 0) {
      c->s_den[i] = 1.0 / (1.0 + hh * ks);
      c->s_keep[i] = 1.0 - hh * ks;
      c->s_in[i] = hh * as;
      c->s_bg[i] = 2.0 * hh * so.storage_rate_per_s * so.storage_background_g_m3;
      c->s_ex[i] = 0.5 * g.exchange_per_s * V;
      c->s_q[i] = qS;
      c->s_dec[i] = tau * lams * vs;
      c->s_bgk[i] = tau * so.storage_rate_per_s * vs;
      c->s_back[i] = so.storage_background_g_m3;
    }
    if (c->sorb && lh > 0) {
      c->b_den[i] = 1.0 / (1.0 + hh * lh);
      c->b_keep[i] = 1.0 - hh * lh;
      c->b_in[i] = hh * lh * so.kd_m3_per_kg;
      c->b_ex[i] = 0.5 * so.sediment_kg_per_m3 * lh * V;
      c->b_q[i] = qB;
      c->b_kd[i] = so.kd_m3_per_kg;
    }
    // Crank-Nicolson is positive when the explicit half of every equation has a
    // non-negative diagonal: (tau/2) * (total outgoing rate) <= 1.
    double kout = h.K[i] + h.Kb[i] + h.qin_dx[i];
    for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) kout += h.K[up_list_[k]];
    double rr = kout / V + g.exchange_per_s + lam + so.sediment_kg_per_m3 * lh * so.kd_m3_per_kg;
    rr = std::max(rr, ks);
    rr = std::max(rr, lh);
    rate = std::max(rate, rr);
    // Check data: the damping a positive step can give at most (decay in channel and
    // storage), the values that sources pull towards, and cells whose decay differs from
    // a neighbour's.
    const double lam_all = lam + lams;
    c->theta[i] = std::max(0.0, (1.0 - hh * lam_all) / (1.0 + hh * lam_all));
    if (h.qin_dx[i] > 0) {
      const double cl = h.CL[static_cast<size_t>(i) * S_ + s];
      c->hi_s[i] = std::max(c->hi_s[i], cl);
      c->lo_s[i] = std::min(c->lo_s[i], cl);
    }
    if (g.exchange_per_s > 0 && so.storage_rate_per_s > 0) {
      c->hi_s[i] = std::max(c->hi_s[i], so.storage_background_g_m3);
      c->lo_s[i] = std::min(c->lo_s[i], so.storage_background_g_m3);
    }
    c->static_max = std::max(c->static_max, c->hi_s[i]);
    const double d_i = MainLoss(h, i, s, tf);
    auto compare = [&](int j) {
      c->decay_max[i] |= d_i < MainLoss(h, j, s, tf);
      c->decay_min[i] |= d_i > MainLoss(h, j, s, tf);
    };
    if (down_[i] >= 0 && h.K[i] > 0) compare(down_[i]);
    for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) {
      const int j = up_list_[k];
      if (h.K[j] > 0) compare(j);
    }
    // Run cells: which of the two faces disperse (the extremum test ignores the others).
    if (i > 0) c->pm[i] = h.K[i - 1] > 0 ? 0.0 : -kInf;
    c->nm[i] = h.K[i] > 0 ? 0.0 : -kInf;
  }
  // Tree LU, leaves first (no fill-in, no pivoting: an M-matrix, diagonally dominant).
  std::vector<double> piv = diag;
  for (int j = 0; j < N_; ++j) {
    const int d = down_[j];
    if (d < 0) continue;
    const double mult = off[j] / piv[j];
    piv[d] -= mult * off[j];
  }
  for (int i = 0; i < N_; ++i) {
    c->ip[i] = 1.0 / piv[i];
    c->g[i] = off[i] * c->ip[i];
  }
  for (int j = 0; j < N_; ++j) c->e[j] = down_[j] >= 0 ? off[j] * c->ip[down_[j]] : 0.0;
  c->piece_clo.assign(pieces_.size(), 0);
  for (size_t p = 0; p < pieces_.size(); ++p) {
    for (int i = pieces_[p].a; i < pieces_[p].b; ++i) {
      if (c->ccl[i] != 0.0) c->piece_clo[p] = 1;
    }
  }
  const double n = std::max(1.0, std::ceil(0.5 * tau * rate - 1e-12));
  if (opt_.positive_implicit && !(n <= opt_.max_substeps)) {
    std::ostringstream msg;
    msg << "transport: the implicit step needs " << n
        << " sub-steps to stay positive (max_substeps " << opt_.max_substeps << ")";
    throw SolverError(msg.str());
  }
  c->substeps = static_cast<int>(std::min<double>(n, opt_.max_substeps));
}

const ImpCoef& Engine::GetImpCoef(Item& it, double tau, double tf) const {
  ++it.stamp;
  if (opt_.reuse_factorizations) {
    for (ImpCoef& c : it.cache) {
      if (c.tau == tau && c.tf == tf && c.hver == hver_) {
        c.stamp = it.stamp;
        return c;
      }
    }
  }
  ImpCoef* victim = &it.cache[0];
  for (ImpCoef& c : it.cache) {
    if (c.stamp < victim->stamp) victim = &c;
  }
  BuildImpCoef(it.s, tau, tf, victim);
  victim->stamp = it.stamp;
  return *victim;
}

void Engine::InitItem(Item& it, int s, int m0, int m1) const {
  it.s = s;
  it.m0 = m0;
  it.m1 = m1;
  const int mb = m1 - m0;
  it.members.resize(mb);
  for (int m = 0; m < mb; ++m) it.members[m] = m0 + m;
  // Per-column scratch is shared by the item's block (mb columns) and by the groups of
  // failed members that Implicit redoes on kLanes-wide copies, padded with inactive
  // columns (Bisect): it must hold the wider of the two.
  const int width = mb > 1 ? std::max(mb, kLanes) : 1;
  const size_t n = static_cast<size_t>(N_) * width;
  for (auto* v : {&it.F, &it.y, &it.c0, &it.ext, &it.pS, &it.pB}) v->assign(n, 0.0);
  int heads = 0;
  for (int i = 0; i < N_; ++i) heads += up_start_[i + 1] == up_start_[i];
  it.cbv.assign(static_cast<size_t>(heads) * width, 0.0);
  it.kbv.assign(static_cast<size_t>(heads) * width, 0.0);
  it.acc.assign(width, 0.0);
  it.ok.assign(width, 1);
  it.eps.assign(width, 0.0);
  it.cand.assign(N_ + 1, 0);
  it.cflag.assign(N_ + 1, 0);
}

// Sparse sources of one implicit solve into ext (right-hand side, per column): the
// Dirichlet face term K_b C_b, mass-flux boundaries on headwaters without inflow, and point
// loads, each as an exact mean over [t0, t1]. Books loads and flux boundaries.
void Engine::Sources(const ImpCoef& ic, Item& it, const Block& B, double t0, double t1) {
  const int mb = B.mb;
  const std::ptrdiff_t smb = mb;
  const double tau = ic.tau;
  Partials& P = it.P;
  it.touched.clear();
  it.loads.clear();
  for (size_t k = 0; k < kb_cells_.size(); ++k) {
    const int i = kb_cells_[k];
    for (int m = 0; m < mb; ++m) {
      double v = bkind_[i] < 0 ? 0.0  // clean headwater inflow
                 : p_.members[B.member[m]].boundaries[bindex_[i]].series[it.s].Average(t0, t1);
      if (bkind_[i] == 2) v /= h_.Qb[i];  // an OTIS flux boundary as C_b = W / Q_b
      it.kbv[k * smb + m] = v;
      if (v != 0.0) {
        const size_t q = i * smb + m;
        it.ext[q] += h_.Kb[i] * v;
        it.touched.push_back(q);
      }
    }
  }
  for (int i : flux_cells_) {
    for (int m = 0; m < mb; ++m) {
      double v = p_.members[B.member[m]].boundaries[bindex_[i]].series[it.s].Average(t0, t1);
      const size_t q = i * smb + m;
      it.ext[q] += v;
      it.touched.push_back(q);
      P.bnd[m] += tau * v;
      it.loads.push_back({i, m, tau * v / h_.V[i]});
    }
  }
  for (int m = 0; m < mb; ++m) {
    for (const PointLoad& l : p_.members[B.member[m]].loads) {
      if (l.species != it.s || h_.V[l.segment] <= 0) continue;  // a dry cell holds no load
      // The part of the step's load that EdgeLoads does not put in before or after the
      // advection half steps (all of it unless the load changes inside the step).
      double w = l.load_g_s.Average(t0, t1);
      if (it.step_switches) w *= MidLoadFraction(l.load_g_s, it.step_t0, it.step_t1);
      const size_t q = l.segment * smb + m;
      it.ext[q] += w;
      it.touched.push_back(q);
      P.load[m] += tau * w;
      it.loads.push_back({l.segment, m, tau * w / h_.V[l.segment]});
    }
  }
}

// Loads inside a step (docs/methods.md, "Loads inside a step"). In the split step
// A(dt/2) I(dt) A(dt/2) a load entering in I is carried by the second advection half only:
// it enters at the step's midpoint. A load that switches on or off inside the step has its
// centroid c elsewhere; the fraction |c - mid| / (dt/2) of the step's mass then enters
// before the first half (c < mid: carried over the whole step) or after the second (c > mid:
// not carried), the rest in I, so that the mass enters with its exact centroid (first
// moment) and exactly (zeroth moment). A load constant over the step has c = mid: all of it
// in I, as before (ConstantInside: found with one binary search, without the centroid;
// most loads of a forecast change only at day boundaries).
static bool ConstantInside(const TimeSeries& w, double t0, double t1) {
  if (w.times_s.size() <= 1) return true;
  const auto it = std::upper_bound(w.times_s.begin(), w.times_s.end(), t0);
  if (it != w.times_s.end() && *it < t1) return false;  // a time inside (t0, t1)
  // No time inside: a step series holds; a linear one only before its first or after its
  // last time.
  return w.interpolation == TimeSeries::Interpolation::kStep || it == w.times_s.begin() ||
         it == w.times_s.end();
}

double Engine::MidLoadFraction(const TimeSeries& w, double t0, double t1) {
  const double half = 0.5 * (t1 - t0);
  if (!(half > 0) || ConstantInside(w, t0, t1)) return 1.0;
  const double f = std::fabs(w.Centroid(t0, t1) - (t0 + half)) / half;
  return f > 0 ? std::max(0.0, 1.0 - f) : 1.0;
}

void Engine::EdgeLoads(Item& it, const Block& B, bool before) {
  const double t0 = it.step_t0, t1 = it.step_t1;
  const double tau = t1 - t0, half = 0.5 * tau;
  if (!(half > 0)) return;
  const int real = std::min(B.mb, B.real);
  for (int m = 0; m < real; ++m) {
    for (const PointLoad& l : p_.members[B.member[m]].loads) {
      if (l.species != it.s || h_.V[l.segment] <= 0 || ConstantInside(l.load_g_s, t0, t1)) {
        continue;
      }
      const double shift = (l.load_g_s.Centroid(t0, t1) - (t0 + half)) / half;
      const double f = before ? -shift : shift;
      if (!(f > 0)) continue;
      const double mass = std::min(f, 1.0) * tau * l.load_g_s.Average(t0, t1);
      B.C[l.segment * B.stride + m] += mass / h_.V[l.segment];
      it.budget.load += mass;
    }
  }
}

// One Crank-Nicolson solve over [t0, t1] (ic.tau = t1 - t0) on a block of columns:
//   (V/tau + L/2) C1 = (V/tau - L/2) C0 + sources (+ eliminated storage / sorbate terms),
// right-hand side built and eliminated in one leaves-first sweep, back-substituted
// outlet-first. Leaves C1 in place, the old state in it.c0 (with kKeepOld; without, the
// 8-lane run kernels skip it: only the check and the restoring of columns read it), the
// new storage / sorbate in it.pS / it.pB and the budget terms and check data per column in
// it.P; Commit books them.
template <int kMb, bool kCheck, bool kKeepOld>
void Engine::SolveImplicit(const ImpCoef& ic, Item& it, const Block& B, double t0, double t1) {
  const int mb = kMb > 0 ? kMb : B.mb;
  const std::ptrdiff_t st = kMb == 1 ? 1 : static_cast<std::ptrdiff_t>(B.stride);
  const std::ptrdiff_t smb = mb;
  const double tau = ic.tau;
  Partials& P = it.P;
  P.Reset(mb);
  double* __restrict C = B.C;
  double* __restrict y = it.y.data();
  double* __restrict c0 = it.c0.data();
  double* __restrict ext = it.ext.data();
  const double* __restrict a0 = ic.a0.data();
  const double* __restrict kh = ic.kh.data();
  const double* __restrict ip = ic.ip.data();
  const double* __restrict e = ic.e.data();
  const double* __restrict g = ic.g.data();
  const double* __restrict srcl = ic.srcl.data();
  const double* __restrict cdec = ic.cdec.data();
  const double* __restrict ccl = ic.ccl.data();
  const bool dense_ext = ic.storage || ic.sorb;
  if (dense_ext) {
    // Storage zone and sorbate, solved for their new values: S1 = pS + qS C1 (and B1).
    double* __restrict pS = it.pS.data();
    double* __restrict pB = it.pB.data();
    for (int i = 0; i < N_; ++i) {
      double* ex = ext + i * smb;
      for (int m = 0; m < mb; ++m) ex[m] = 0.0;
    }
    for (int i : ic.s_cells) {
      const double keep = ic.s_keep[i], in = ic.s_in[i], bg = ic.s_bg[i], den = ic.s_den[i],
                   exr = ic.s_ex[i];
      const double* ci = C + i * st;
      const double* sz = B.Cs + i * st;
      double* ps = pS + i * smb;
      double* ex = ext + i * smb;
      for (int m = 0; m < mb; ++m) {
        ps[m] = (sz[m] * keep + in * ci[m] + bg) * den;
        ex[m] += exr * (sz[m] + ps[m]);
      }
    }
    for (int i : ic.b_cells) {
      const double keep = ic.b_keep[i], in = ic.b_in[i], den = ic.b_den[i], exr = ic.b_ex[i];
      const double* ci = C + i * st;
      const double* sb = B.Cb + i * st;
      double* pb = pB + i * smb;
      double* ex = ext + i * smb;
      for (int m = 0; m < mb; ++m) {
        pb[m] = (sb[m] * keep + in * ci[m]) * den;
        ex[m] += exr * (sb[m] + pb[m]);
      }
    }
  }
  Sources(ic, it, B, t0, t1);
  double* __restrict omax = P.omax.data();
  double* __restrict dec = P.dec.data();
  double* __restrict clo = P.clo.data();
  // Runs that hold right-hand-side entries (all of them with storage or sorbate).
  constexpr int kW = kMb == kLanes || kMb == kPair ? kMb : 1;  // vector kernels' width
  if (kW > 1) {
    it.piece_ext.assign(pieces_.size(), dense_ext ? 1 : 0);
    for (size_t q : it.touched) it.piece_ext[piece_of_[q / smb]] = 1;
  }
  double fsums[3 * kW];
  // Right-hand side and forward elimination, leaves first; the old halves of the budget.
  // Without kKeepOld the run kernels do not keep the old state (nothing reads it).
  for (size_t p = 0; p < pieces_.size(); ++p) {
    const Piece& pc = pieces_[p];
    if (kMb == 1 && pc.run) {
      FwdSums fs{omax[0], dec[0], clo[0]};
      ForwardRun(pc.a, pc.b, C, a0, kh, ip, e, srcl, ext, cdec, ccl, y, c0, &fs);
      omax[0] = fs.omax;
      dec[0] = fs.dec;
      clo[0] = fs.clo;
    } else if (kW > 1 && pc.run) {
      for (int m = 0; m < kW; ++m) {
        fsums[m] = omax[m];
        fsums[kW + m] = dec[m];
        fsums[2 * kW + m] = clo[m];
      }
      constexpr int kNv = kW / kLanes;
      auto run = [&](auto ext_t, auto clo_t) {
        ForwardRun8<kNv, decltype(ext_t)::value, kKeepOld, decltype(clo_t)::value>(
            pc.a, pc.b, C, st, a0, kh, ip, e, srcl, ext, cdec, ccl, y, c0, fsums);
      };
      using T = std::true_type;
      using F = std::false_type;
      if (it.piece_ext[p]) {
        if (ic.piece_clo[p]) run(T{}, T{}); else run(T{}, F{});
      } else {
        if (ic.piece_clo[p]) run(F{}, T{}); else run(F{}, F{});
      }
      for (int m = 0; m < kW; ++m) {
        omax[m] = fsums[m];
        dec[m] = fsums[kW + m];
        clo[m] = fsums[2 * kW + m];
      }
    } else if (pc.run) {
      for (int i = pc.a; i < pc.b; ++i) {
        FwdRow<kCheck>(mb, C + (i - 1) * st, C + i * st, C + (i + 1) * st, ext + i * smb,
                       y + (i - 1) * smb, y + i * smb, c0 + i * smb, omax, dec, clo, a0[i],
                       srcl[i], kh[i], kh[i - 1], ip[i], e[i - 1], cdec[i], ccl[i]);
      }
    } else {
      const int i = pc.a, d = down_[i];
      const double* ci = C + i * st;
      const double* ex = ext + i * smb;
      double* yi = y + i * smb;
      double* c0i = c0 + i * smb;
      for (int m = 0; m < mb; ++m) {
        const double c = ci[m];
        c0i[m] = c;
        yi[m] = a0[i] * c + srcl[i] + ex[m];
        if (kCheck) omax[m] = std::max(omax[m], c);
        dec[m] += cdec[i] * c;
        clo[m] += ccl[i] * c;
      }
      if (d >= 0) {
        const double* cd = C + d * st;
        for (int m = 0; m < mb; ++m) yi[m] += kh[i] * (cd[m] - ci[m]);
      }
      for (int u = up_start_[i]; u < up_start_[i + 1]; ++u) {
        const int j = up_list_[u];
        const double* cj = C + j * st;
        for (int m = 0; m < mb; ++m) yi[m] += kh[j] * (cj[m] - ci[m]);
      }
      for (int m = 0; m < mb; ++m) yi[m] *= ip[i];
      for (int u = up_start_[i]; u < up_start_[i + 1]; ++u) {
        const int j = up_list_[u];
        const double* yj = y + j * smb;
        for (int m = 0; m < mb; ++m) yi[m] -= e[j] * yj[m];
      }
    }
  }
  if (!dense_ext) {
    for (size_t q : it.touched) ext[q] = 0.0;
  }
  // Back substitution, outlet first, with the new halves of the budget terms.
  // One column: the run kernels also list possible extrema, detected with a tolerance no
  // larger than the check's (CheckCell decides).
  it.ncand = 0;
  const double eps_detect = kCheckTolerance * std::max(omax[0], 0.0);
  double eps8[kW], sums8[4 * kW];
  if (kW > 1) {
    for (int m = 0; m < kW; ++m) eps8[m] = kCheckTolerance * std::max(omax[m], 0.0);
  }
  double* __restrict minC = P.minC.data();
  double* __restrict maxC = P.maxC.data();
  for (auto pc = pieces_.rbegin(); pc != pieces_.rend(); ++pc) {
    if (kMb == 1 && pc->run) {
      BackSums bs{dec[0], clo[0], minC[0], maxC[0]};
      it.ncand += BackRun<kCheck>(pc->a, pc->b, C, y, g, cdec, ccl, ic.pm.data(),
                                  ic.nm.data(), eps_detect, &bs, it.cand.data() + it.ncand);
      dec[0] = bs.dec;
      clo[0] = bs.clo;
      minC[0] = bs.mn;
      maxC[0] = bs.mx;
    } else if (kW > 1 && pc->run) {
      for (int m = 0; m < kW; ++m) {
        sums8[m] = dec[m];
        sums8[kW + m] = clo[m];
        sums8[2 * kW + m] = minC[m];
        sums8[3 * kW + m] = maxC[m];
      }
      if (ic.piece_clo[static_cast<size_t>(pieces_.rend() - pc) - 1]) {
        BackRun8<kW / kLanes, kCheck, true>(pc->a, pc->b, C, st, y, g, cdec, ccl, ic.pm.data(),
                                            ic.nm.data(), eps8, sums8, it.cflag.data());
      } else {
        BackRun8<kW / kLanes, kCheck, false>(pc->a, pc->b, C, st, y, g, cdec, ccl,
                                             ic.pm.data(), ic.nm.data(), eps8, sums8,
                                             it.cflag.data());
      }
      if (kCheck) {
        int* cand = it.cand.data();
        int n = it.ncand;
        for (int j = pc->b - 1; j > pc->a; --j) {
          cand[n] = j;
          n += it.cflag[j];
        }
        cand[n++] = pc->a;
        it.ncand = n;
      }
      for (int m = 0; m < kW; ++m) {
        dec[m] = sums8[m];
        clo[m] = sums8[kW + m];
        if (kCheck) {
          minC[m] = sums8[2 * kW + m];
          maxC[m] = sums8[3 * kW + m];
        }
      }
    } else if (pc->run) {
      for (int i = pc->b - 1; i >= pc->a; --i) {
        BackRow<kCheck>(mb, C + i * st, C + (i + 1) * st, y + i * smb, dec, clo, minC, maxC,
                        g[i], cdec[i], ccl[i]);
      }
    } else if (down_[pc->a] >= 0) {
      const int i = pc->a;
      BackRow<kCheck>(mb, C + i * st, C + down_[i] * st, y + i * smb, dec, clo, minC, maxC,
                      g[i], cdec[i], ccl[i]);
    } else {
      const int i = pc->a;
      const double cdi = cdec[i], cci = ccl[i];
      const double* yi = y + i * smb;
      double* xi = C + i * st;
      for (int m = 0; m < mb; ++m) {
        const double x = yi[m];
        xi[m] = x;
        dec[m] += cdi * x;
        clo[m] += cci * x;
        if (kCheck) {
          minC[m] = std::min(minC[m], x);
          maxC[m] = std::max(maxC[m], x);
        }
      }
    }
  }
  // Storage zone and sorbate: new values, budget, check data.
  if (ic.storage) {
    double* __restrict pS = it.pS.data();
    for (int i : ic.s_cells) {
      const double q = ic.s_q[i], sd = ic.s_dec[i], sb = ic.s_bgk[i], back = ic.s_back[i];
      const double* ci = C + i * st;
      const double* sz = B.Cs + i * st;
      double* ps = pS + i * smb;
      for (int m = 0; m < mb; ++m) {
        const double s1 = ps[m] + q * ci[m];
        ps[m] = s1;
        const double smean = 0.5 * (sz[m] + s1);
        P.sdec[m] += sd * smean;
        P.sbg[m] += sb * (back - smean);
        if (kCheck) {
          P.minS[m] = std::min(P.minS[m], s1);
          P.srcmax[m] = std::max(P.srcmax[m], sz[m]);
        }
      }
    }
  }
  if (ic.sorb) {
    double* __restrict pB = it.pB.data();
    for (int i : ic.b_cells) {
      const double q = ic.b_q[i], kd = ic.b_kd[i];
      const double* ci = C + i * st;
      const double* sb = B.Cb + i * st;
      double* pb = pB + i * smb;
      for (int m = 0; m < mb; ++m) {
        const double b1 = pb[m] + q * ci[m];
        pb[m] = b1;
        if (kCheck) {
          P.minS[m] = std::min(P.minS[m], b1);
          if (kd > 0) P.srcmax[m] = std::max(P.srcmax[m], sb[m] / kd);
        }
      }
    }
  }
  // Dispersive flux through Dirichlet faces.
  for (size_t k = 0; k < kb_cells_.size(); ++k) {
    const int i = kb_cells_[k];
    const double kb = h_.Kb[i];
    for (int m = 0; m < mb; ++m) {
      const double v = it.kbv[k * smb + m];
      const double mean = 0.5 * (C[i * st + m] + c0[i * smb + m]);
      P.bnd[m] += tau * kb * (v - mean);
      if (kCheck) P.srcmax[m] = std::max(P.srcmax[m], v);
    }
  }
}

// The a-posteriori check of a full Crank-Nicolson step, per column (it.ok[m]): no
// negative value (channel, storage, sorbate), nothing above the largest value of the
// step's data (plus what loads can add), and every new strict local extremum either sits
// where the data had one (and stays within the neighbourhood's bounds) or at a cell whose
// sources can make one (and stays within their bounds). docs/methods.md explains why this
// rejects exactly the Crank-Nicolson oscillations.
template <int kMb>
bool Engine::CheckFast(const ImpCoef& ic, Item& it, const Block& B,
                       std::vector<double>& eps_v) const {
  const int mb = kMb > 0 ? kMb : B.mb;
  const std::ptrdiff_t st = kMb == 1 ? 1 : static_cast<std::ptrdiff_t>(B.stride);
  const Partials& P = it.P;
  char* ok = it.ok.data();
  double* eps = eps_v.data();
  bool any_ok = false;
  for (int m = 0; m < mb; ++m) {
    double allow = 0.0;
    for (const LoadEntry& l : it.loads) {
      if (l.column == m) allow = std::max(allow, l.allow);
    }
    const double gmax = std::max({P.omax[m], P.srcmax[m], ic.static_max, 0.0}) + allow;
    eps[m] = kCheckTolerance * gmax;
    ok[m] = P.minC[m] >= 0.0 && P.minS[m] >= 0.0 && P.maxC[m] <= gmax + eps[m];
    any_ok = any_ok || ok[m];
  }
  if (!any_ok) return false;
  const double* __restrict C = B.C;
  const double* __restrict pm = ic.pm.data();
  const double* __restrict nm = ic.nm.data();
  if (kMb == 1 || kMb == kLanes || kMb == kPair) {
    // Run cells: the candidates listed by the back substitution; other cells: all.
    for (int k = 0; k < it.ncand; ++k) {
      for (int m = 0; m < mb; ++m) {
        if (ok[m] && !CheckCell(ic, it, B, it.cand[k], m, eps[m])) ok[m] = 0;
      }
    }
    for (const Piece& pc : pieces_) {
      if (pc.run) continue;
      for (int m = 0; m < mb; ++m) {
        if (ok[m] && !CheckCell(ic, it, B, pc.a, m, eps[m])) ok[m] = 0;
      }
    }
    for (int m = 0; m < mb; ++m) {
      if (!ok[m]) return false;
    }
    return true;
  }
  for (const Piece& pc : pieces_) {
    if (pc.run) {
      for (int i = pc.a; i < pc.b; ++i) {
        if (!ExtremumRow(mb, C + (i - 1) * st, C + i * st, C + (i + 1) * st, eps, pm[i], nm[i])) {
          continue;
        }
        for (int m = 0; m < mb; ++m) {
          if (ok[m] && !CheckCell(ic, it, B, i, m, eps[m])) ok[m] = 0;
        }
      }
    } else {
      for (int m = 0; m < mb; ++m) {
        if (ok[m] && !CheckCell(ic, it, B, pc.a, m, eps[m])) ok[m] = 0;
      }
    }
  }
  for (int m = 0; m < mb; ++m) {
    if (!ok[m]) return false;
  }
  return true;
}

bool Engine::CheckCell(const ImpCoef& ic, const Item& it, const Block& B, int i, int m,
                       double eps) const {
  const Hydraulics& h = h_;
  if (h.V[i] <= 0) return true;
  const size_t smb = static_cast<size_t>(B.mb), st = B.stride;
  auto X = [&](int j) { return B.C[j * st + m]; };
  auto X0 = [&](int j) { return it.c0[j * smb + m]; };
  // Neighbours through dispersive faces; a Dirichlet face is a neighbour with the
  // boundary value (old and new alike).
  auto for_nbrs = [&](int k, auto&& fn) {
    const int d = down_[k];
    if (d >= 0 && h.K[k] > 0) fn(d);
    for (int u = up_start_[k]; u < up_start_[k + 1]; ++u) {
      const int j = up_list_[u];
      if (h.K[j] > 0) fn(j);
    }
  };
  auto ghost = [&](int k, double* v) {
    const int q = kb_index_[k];
    if (q < 0) return false;
    *v = it.kbv[q * smb + m];
    return true;
  };
  const double x = X(i);
  double hiN = -kInf, loN = kInf, gv = 0.0;
  for_nbrs(i, [&](int j) {
    hiN = std::max(hiN, X(j));
    loN = std::min(loN, X(j));
  });
  const bool has_ghost = ghost(i, &gv);
  if (has_ghost) {
    hiN = std::max(hiN, gv);
    loN = std::min(loN, gv);
  }
  const bool is_max = x > hiN + eps, is_min = x < loN - eps;
  if (!is_max && !is_min) return true;
  // Bounds from the data of the step around the cell.
  double hi = X0(i), lo = X0(i);
  for_nbrs(i, [&](int j) {
    hi = std::max(hi, X0(j));
    lo = std::min(lo, X0(j));
  });
  if (has_ghost) {
    hi = std::max(hi, gv);
    lo = std::min(lo, gv);
  }
  // Values that sources pull the cell towards: lateral inflow, storage background, the
  // storage zone, the sorbate's equilibrium concentration.
  double smax = ic.hi_s[i], smin = ic.lo_s[i];
  if (p_.segments[i].exchange_per_s > 0 && ic.storage) {
    const double cs = B.Cs[i * st + m];
    smax = std::max(smax, cs);
    smin = std::min(smin, cs);
  }
  if (ic.sorb && ic.b_kd[i] > 0 && ic.b_q[i] > 0) {
    const double ceq = B.Cb[i * st + m] / ic.b_kd[i];
    smax = std::max(smax, ceq);
    smin = std::min(smin, ceq);
  }
  hi = std::max(hi, smax);
  lo = std::min(lo, smin);
  double allow = 0.0;
  for (const LoadEntry& l : it.loads) {
    if (l.cell == i && l.column == m) allow += l.allow;
  }
  if (is_max && x > hi + allow + eps) return false;
  if (is_min && x < lo * ic.theta[i] - eps) return false;
  // A source can make the extremum: a load, a value beyond the neighbours' (maxima above,
  // minima below), or decay slower / faster than at a neighbour.
  if (is_max && (allow > 0 || smax > hiN + eps || ic.decay_max[i])) return true;
  if (is_min && (smin < loN - eps || ic.decay_min[i])) return true;
  // Otherwise the data must have had a (weak) extremum of the same kind at this cell:
  // in one dimension a positive step is variation diminishing (it creates no extremum),
  // and dispersion does not move one. An oscillation puts extrema on the flanks of a
  // front, where the data were monotone.
  auto weak = [&](int k) {
    const double v = X0(k);
    bool mx = true, mn = true;
    for_nbrs(k, [&](int j) {
      mx = mx && v >= X0(j) - eps;
      mn = mn && v <= X0(j) + eps;
    });
    double gk;
    if (ghost(k, &gk)) {
      mx = mx && v >= gk - eps;
      mn = mn && v <= gk + eps;
    }
    return is_max ? mx : mn;
  };
  return weak(i);
}

// Books the budget of the columns with ok[m] (all if ok is null) and stores their new
// storage-zone and sorbate values.
void Engine::Commit(const ImpCoef& ic, Item& it, const Block& B, const char* ok) {
  const int mb = B.mb;
  const size_t smb = static_cast<size_t>(mb), st = B.stride;
  const Partials& P = it.P;
  Budget& b = it.budget;
  for (int m = 0; m < mb; ++m) {
    if (ok && !ok[m]) continue;
    b.decay_main += P.dec[m];
    b.closure += P.clo[m];
    b.boundary += P.bnd[m];
    b.load += P.load[m];
    b.lateral += ic.tau * ic.lat_sum;
    b.decay_storage += P.sdec[m];
    b.background += P.sbg[m];
  }
  for (int i : ic.s_cells) {
    for (int m = 0; m < mb; ++m) {
      if (!ok || ok[m]) B.Cs[i * st + m] = it.pS[i * smb + m];
    }
  }
  for (int i : ic.b_cells) {
    for (int m = 0; m < mb; ++m) {
      if (!ok || ok[m]) B.Cb[i * st + m] = it.pB[i * smb + m];
    }
  }
}

void Engine::SolveAndCommit(const ImpCoef& ic, Item& it, const Block& B, double t0, double t1) {
  if (B.mb == 1 && B.stride == 1) {
    SolveImplicit<1, false>(ic, it, B, t0, t1);
  } else if (B.mb == kLanes) {
    SolveImplicit<kLanes, false>(ic, it, B, t0, t1);
  } else if (B.mb == kPair) {
    SolveImplicit<kPair, false>(ic, it, B, t0, t1);
  } else {
    SolveImplicit<0, false>(ic, it, B, t0, t1);
  }
  Commit(ic, it, B, nullptr);
}

// The implicit operator over one step [ta, tb] on a block of columns. Positive by one of:
// the step is within the positivity bound (one solve); adaptive (default): a full
// Crank-Nicolson step, checked per member; or always sub-stepping (adaptive_implicit =
// false). What an adaptive step does with a member that fails the check depends on mode:
//   kIndependent  redo that member alone with positive sub-steps (its result is that of a
//                 single run of it);
//   kCandidate    only record the failure (it.any_fail) and keep the full step: all members
//                 of the species are redone together in the kFallback phase if any failed.
void Engine::Implicit(Item& it, const Block& B, double ta, double tb, double tf, int mode,
                      std::vector<int>* deferred, int col0) {
  const double dt = tb - ta;
  const bool fast = B.mb == 1 && B.stride == 1;
  const ImpCoef& full = GetImpCoef(it, dt, tf);
  const int n = opt_.positive_implicit ? full.substeps : 1;
  auto substep = [&](const Block& blk) {
    const ImpCoef& sub = GetImpCoef(it, dt / n, tf);
    const double tau = sub.tau;
    for (int k = 0; k < n; ++k) SolveAndCommit(sub, it, blk, ta + k * tau, ta + (k + 1) * tau);
    it.used_substeps = std::max(it.used_substeps, n);
  };
  if (mode == kFallback) {
    if (n > 1) {
      substep(B);
      it.fallbacks += B.mb;
    }
    return;
  }
  if (n == 1) {
    SolveAndCommit(full, it, B, ta, tb);
    it.used_substeps = std::max(it.used_substeps, 1);
    return;
  }
  if (!opt_.adaptive_implicit) {
    substep(B);
    return;
  }
  bool all_ok;
  if (fast) {
    SolveImplicit<1, true>(full, it, B, ta, tb);
    all_ok = CheckFast<1>(full, it, B, it.eps);
  } else if (B.mb == kLanes) {
    SolveImplicit<kLanes, true>(full, it, B, ta, tb);
    all_ok = CheckFast<kLanes>(full, it, B, it.eps);
  } else if (B.mb == kPair) {
    SolveImplicit<kPair, true>(full, it, B, ta, tb);
    all_ok = CheckFast<kPair>(full, it, B, it.eps);
  } else {
    SolveImplicit<0, true>(full, it, B, ta, tb);
    all_ok = CheckFast<0>(full, it, B, it.eps);
  }
  it.checked += B.mb;
  it.used_substeps = std::max(it.used_substeps, 1);
  if (mode == kCandidate) {
    Commit(full, it, B, nullptr);
    it.any_fail = it.any_fail || !all_ok;
    return;
  }
  Commit(full, it, B, it.ok.data());
  if (all_ok) return;
  // Members that failed: back to their state before the step, then redone by RedoMembers,
  // here or (deferred: column col0 + m of the caller's block) together with the failing
  // members of the item's other chunks.
  const size_t smb = static_cast<size_t>(B.mb), st = B.stride;
  std::vector<int>& failed = it.fail_cols;
  failed.clear();
  for (int m = 0; m < B.mb; ++m) {
    if (!it.ok[m]) failed.push_back(m);
  }
  for (int i = 0; i < N_; ++i) {
    for (int m : failed) B.C[i * st + m] = it.c0[i * smb + m];
  }
  it.fallbacks += static_cast<long long>(failed.size());
  if (deferred) {
    for (int m : failed) deferred->push_back(col0 + m);
    return;
  }
  RedoMembers(it, B, failed, ta, tb, tf);
}

// Redoes the step [ta, tb] of columns cols of block B by bisection (Bisect) on a contiguous
// copy of just them, so that a member's result never depends on the others; a group of up
// to kLanes of them shares the 8-lane kernels, padded with inactive copies.
void Engine::RedoMembers(Item& it, const Block& B, const std::vector<int>& failed, double ta,
                         double tb, double tf) {
  const double dt = tb - ta;
  const size_t st = B.stride;
  const ImpCoef& full = GetImpCoef(it, dt, tf);
  // Storage zone and sorbate are copied only where they exist (else never read).
  const bool zones = full.storage || full.sorb;
  for (size_t g0 = 0; g0 < failed.size(); g0 += kLanes) {
    const int* cols = failed.data() + g0;
    const int nf = static_cast<int>(std::min<size_t>(kLanes, failed.size() - g0));
    const int width = nf == 1 ? 1 : kLanes;
    const size_t gn = static_cast<size_t>(N_) * width;
    it.gC.resize(gn);
    it.gCs.resize(gn);
    it.gCb.resize(gn);
    it.gmembers.resize(width);
    char active[kLanes];
    int src[kLanes];
    for (int q = 0; q < width; ++q) {
      src[q] = cols[std::min(q, nf - 1)];
      active[q] = q < nf;
      it.gmembers[q] = B.member[src[q]];
    }
    // Copies columns col[0 .. count) of B to / from the group's columns 0 .. count).
    auto copy = [&](bool to_group, int count, const int* col) {
      double* block[3] = {B.C, B.Cs, B.Cb};
      double* group[3] = {it.gC.data(), it.gCs.data(), it.gCb.data()};
      for (int z = 0; z < (zones ? 3 : 1); ++z) {
        for (int i = 0; i < N_; ++i) {
          for (int q = 0; q < count; ++q) {
            double& g = group[z][static_cast<size_t>(i) * width + q];
            double& b = block[z][i * st + col[q]];
            if (to_group) {
              g = b;
            } else {
              b = g;
            }
          }
        }
      }
    };
    copy(true, width, src);
    Block G;
    G.C = it.gC.data();
    G.Cs = it.gCs.data();
    G.Cb = it.gCb.data();
    G.stride = width;
    G.mb = width;
    G.real = nf;
    G.member = it.gmembers.data();
    int used = 0;
    Bisect(it, G, active, ta, 0.5 * dt, tf, &used);
    Bisect(it, G, active, ta + 0.5 * dt, 0.5 * dt, tf, &used);
    it.used_substeps = std::max(it.used_substeps, used);
    copy(false, nf, cols);
  }
}

// Advances the active columns of a contiguous block G (one column, or kLanes) over
// [ta, ta + tau] by a checked full Crank-Nicolson step; the columns that fail the check go
// on with two halves, each treated the same way. Inactive columns keep their values.
// Terminates: a step within the positivity bound is taken unchecked. Every step taken is
// thus either checked or provably positive; used counts the steps of the deepest column.
void Engine::Bisect(Item& it, const Block& G, const char* active, double ta, double tau,
                    double tf, int* used) {
  const ImpCoef& c = GetImpCoef(it, tau, tf);
  const int mb = G.mb;
  const size_t smb = static_cast<size_t>(mb);
  char ok[kLanes] = {}, fail[kLanes] = {};
  bool any_fail = false;
  // Columns to put back afterwards: the inactive real ones (they have finished this
  // interval) and those that fail; padding columns simply carry on.
  int keep[kLanes], nkeep = 0;
  for (int m = 0; m < std::min(mb, G.real); ++m) {
    if (!active[m]) keep[nkeep++] = m;
  }
  if (c.substeps == 1) {
    if (mb == 1) {
      SolveImplicit<1, false>(c, it, G, ta, ta + tau);
    } else if (nkeep > 0) {
      SolveImplicit<kLanes, false, true>(c, it, G, ta, ta + tau);
    } else {
      SolveImplicit<kLanes, false>(c, it, G, ta, ta + tau);
    }
    for (int m = 0; m < mb; ++m) ok[m] = active[m];
  } else {
    bool all;
    if (mb == 1) {
      SolveImplicit<1, true>(c, it, G, ta, ta + tau);
      all = CheckFast<1>(c, it, G, it.eps);
    } else {
      SolveImplicit<kLanes, true>(c, it, G, ta, ta + tau);
      all = CheckFast<kLanes>(c, it, G, it.eps);
    }
    (void)all;
    for (int m = 0; m < mb; ++m) {
      ok[m] = active[m] && it.ok[m];
      fail[m] = active[m] && !it.ok[m];
      any_fail = any_fail || fail[m];
      it.checked += active[m];
    }
  }
  Commit(c, it, G, ok);
  for (int m = 0; m < mb; ++m) {
    if (fail[m]) keep[nkeep++] = m;
  }
  for (int i = 0; i < N_; ++i) {
    for (int q = 0; q < nkeep; ++q) G.C[i * smb + keep[q]] = it.c0[i * smb + keep[q]];
  }
  if (!any_fail) {
    ++*used;
    return;
  }
  int u1 = 0, u2 = 0;
  Bisect(it, G, fail, ta, 0.5 * tau, tf, &u1);
  Bisect(it, G, fail, ta + 0.5 * tau, 0.5 * tau, tf, &u2);
  *used += std::max(1, u1 + u2);
}

}  // namespace qingshui::transport::engine
