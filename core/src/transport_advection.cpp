// Transport engine, advection: the explicit limited Lax-Wendroff step (van Leer limiter
// in flux form, Sweby 1984) on one column, on a block of columns and on 8-lane chunks
// (docs/methods.md section 2, "A - advection").
#include "transport_engine.h"
#include "simd8.h"

namespace qingshui::transport::engine {

namespace {

// Limited Lax-Wendroff face deviation delta = C_face - C_i (Sweby 1984 form with the van
// Leer limiter, gradients scaled by centre distances), capped so that the update stays a
// convex combination for Courant <= 0.75 on any grid (docs/methods.md). Inactive faces have
// k = w = 0 and get 0.
//
// With the gradients g_u = du / h_u, g_d = dd / h_d, the van Leer slope is 2 g_u g_d /
// (g_u + g_d) where g_u g_d > 0, else 0, and delta = (1 - nu) dx / 2 x slope. Multiplying
// through by h_u, it is evaluated as
//   delta = sign(du) min(k max(du dd, 0) / (|du| + rho |dd|), w min(|du|, |dd|)),
// k = (1 - nu) dx / h_d, rho = h_u / h_d, with fewer operations per value (this is the
// inner loop of every run). Without a branch, so that the loops vectorize: where du dd > 0,
// du and dd have one sign and |du| + rho |dd| >= 2 sqrt(rho du dd) is so far above DBL_MIN
// that adding it changes nothing; where du dd <= 0 the numerator is 0. The magnitude is
// >= 0, so taking the smaller of it and the cap and then the sign of du is the clamp of the
// signed deviation to [-cap, cap].
inline double Limited(double du, double dd, double rho, double k, double w) {
  const double adu = std::fabs(du), add = std::fabs(dd);
  const double q = std::max(du * dd, 0.0) / (adu + rho * add + DBL_MIN);
  return std::copysign(std::min(k * q, w * std::min(adu, add)), du);
}

// The same where rho = 1 and k = w (a uniform stretch): 1 x |dd| = |dd| and min(w q, w m)
// = w min(q, m) (rounding is monotonic), so the value is Limited's, bit for bit.
inline double LimitedUniform(double du, double dd, double w) {
  const double adu = std::fabs(du), add = std::fabs(dd);
  const double q = std::max(du * dd, 0.0) / (adu + add + DBL_MIN);
  return std::copysign(w * std::min(q, std::min(adu, add)), du);
}

// Kernels for a run of chain cells [a, b) of one contiguous column (a single member):
// free functions so that the restrict-qualified parameters let the compiler vectorize the
// loops without run-time alias checks, and the recurrences carry their value in a
// register. Cell a - 1 and cell b exist (a run cell has its neighbours i - 1 and i + 1).
// (A chain cell's only inflow is Q_{i-1} = Q_in, so its upstream value is C_{i-1} itself.)
template <bool kUni>
QS_KERNEL void AdvectPass1Run(int a, int b, const double* __restrict C,
                              const double* __restrict rho, const double* __restrict k,
                              const double* __restrict w, const double* __restrict Q,
                              double* __restrict F) {
  for (int i = a; i < b; ++i) {
    const double dev = kUni ? LimitedUniform(C[i] - C[i - 1], C[i + 1] - C[i], w[i])
                            : Limited(C[i] - C[i - 1], C[i + 1] - C[i], rho[i], k[i], w[i]);
    F[i] = Q[i] * (C[i] + dev);
  }
}

// The update C += r (in - F_i + (Q - Q_in) C): the flux F_i = Q (C + delta) that leaves a
// cell is the one the next cell receives (the OTIS form Q_in C + Q delta is the same sum);
// Q - Q_in is 0 except where water leaves otherwise (flow closure).
QS_KERNEL void AdvectPass2Run(int a, int b, double* __restrict C, const double* __restrict F,
                              const double* __restrict r, const double* __restrict dq) {
  for (int i = a; i < b; ++i) C[i] += r[i] * ((F[i - 1] - F[i]) + dq[i] * C[i]);
}


// Row kernels: one cell, all columns of a block (members contiguous), vectorized over
// members. up[m] is the inflowing mass rate per unit... (see each).

// Advection pass 1 of a chain cell: F from the upstream, own and downstream values.
QS_KERNEL void AdvRow1Chain(int mb, const double* __restrict cu, const double* __restrict ci,
                            const double* __restrict cd, double rhoi, double ki, double wi,
                            double qi, double* __restrict f) {
  for (int m = 0; m < mb; ++m) {
    const double dev = Limited(ci[m] - cu[m], cd[m] - ci[m], rhoi, ki, wi);
    f[m] = qi * (ci[m] + dev);
  }
}

// Advection pass 1 of a generic cell; acc[m] = inflowing mass rate (Q_b C_b + sum Q_j C_j).
QS_KERNEL void AdvRow1Acc(int mb, const double* __restrict acc, const double* __restrict ci,
                          const double* __restrict cd, double iqi, double rhoi, double ki,
                          double wi, double qi, double* __restrict f) {
  for (int m = 0; m < mb; ++m) {
    const double dev = Limited(ci[m] - acc[m] * iqi, cd[m] - ci[m], rhoi, ki, wi);
    f[m] = qi * (ci[m] + dev);
  }
}

// Advection pass 2: C += r (in - F + (Q - Q_in) C), in[m] = inflowing mass rate, f[m] = the
// cell's own outflowing flux (AdvectPass2Run).
QS_KERNEL void AdvRow2(int mb, double* __restrict ci, const double* __restrict in,
                       const double* __restrict f, double ri, double dqi) {
  for (int m = 0; m < mb; ++m) ci[m] += ri * ((in[m] - f[m]) + dqi * ci[m]);
}


QS_SIMD8_CODE_FOLLOWS
// Limited() on eight lanes; kUni: rho = 1 and k = w (the same values, fewer products).
template <bool kUni>
QS_INLINE V8 Limited8(V8 du, V8 dd, double rho, double k, double w) {
  const V8 adu = Abs8(du), add = Abs8(dd);
  if (kUni) {
    const V8 q = Max8(du * dd, Splat8(0.0)) / (adu + add + DBL_MIN);
    return CopySign8(w * Min8(q, Min8(adu, add)), du);
  }
  const V8 q = Max8(du * dd, Splat8(0.0)) / (adu + rho * add + DBL_MIN);
  return CopySign8(Min8(k * q, w * Min8(adu, add)), du);
}


// A whole advection sub-step of a run on one chunk, both passes in one sweep: the flux of
// cell i uses the old values of i - 1, i, i + 1 (carried in registers or not yet
// overwritten), and the update of i uses the fluxes of i - 1 and i. Needs F and the old
// value of cell a - 1 in F / Cold; leaves those of cell b - 1 there. kDq: the run holds a
// flow-closure cell (dq != 0); without one the term is dropped, which changes no value
// (adding dq C = +-0 leaves the sum as it is, up to the sign of a zero).
template <bool kDq, bool kUni>
QS_KERNEL void AdvectRun8(int a, int b, double* __restrict C, std::ptrdiff_t st,
                          const double* __restrict rho, const double* __restrict k,
                          const double* __restrict w, const double* __restrict Q,
                          const double* __restrict r, const double* __restrict dq,
                          double* __restrict F, double* __restrict Cold) {
  V8 cu = Load8(Cold + (a - 1) * kLanes), ci = Load8(C + a * st),
     fp = Load8(F + (a - 1) * kLanes);
  for (int i = a; i < b; ++i) {
    const V8 cd = Load8(C + (i + 1) * st);
    const V8 dev = Limited8<kUni>(ci - cu, cd - ci, rho[i], k[i], w[i]);
    const V8 f = Q[i] * (ci + dev);
    if (kDq) {
      Store8(C + i * st, ci + r[i] * ((fp - f) + dq[i] * ci));
    } else {
      Store8(C + i * st, ci + r[i] * (fp - f));
    }
    fp = f;
    cu = ci;
    ci = cd;
  }
  Store8(F + (b - 1) * kLanes, fp);
  Store8(Cold + (b - 1) * kLanes, cu);
}


}  // namespace

void Engine::BuildAdvCoef(AdvCoef* ap, double tau) const {
  AdvCoef& a = *ap;
  a.tau = tau;
  a.hver = hver_;
  a.r.assign(N_, 0.0);
  a.w.assign(N_, 0.0);
  a.k.assign(N_, 0.0);
  a.rho.resize(N_);
  a.iq.assign(N_, 0.0);
  a.dq.assign(N_, 0.0);
  a.closure_cells.clear();
  const bool rk2 = opt_.advection == TransportOptions::Advection::kSspRk2;
  for (int i = 0; i < N_; ++i) {
    const double V = h_.V[i];
    a.rho[i] = h_up_[i] / h_down_[i];
    if (h_.Qin[i] > 0) a.iq[i] = 1.0 / h_.Qin[i];
    if (V <= 0) continue;
    a.r[i] = tau / V;
    if (h_.Qin[i] != h_.Q[i]) {
      a.closure_cells.push_back(i);
      a.dq[i] = h_.Q[i] - h_.Qin[i];
    }
    if (down_[i] >= 0 && h_.Qin[i] > 0 && !p_.segments[i].well_mixed) {
      // Method of lines (kSspRk2): the semi-discrete face value, the nu -> 0 limit of the
      // Lax-Wendroff deviation (MUSCL with the van Leer limiter, van Leer 1979).
      double w = rk2 ? 1.0 : 1.0 - h_.Q[i] * tau / V;
      a.w[i] = w;
      a.k[i] = dx_[i] == h_down_[i] ? w : w * dx_[i] / h_down_[i];
    }
  }
  // A run on a uniform stretch (rho = 1, k = w) takes a kernel without the two products:
  // 1 x |dd| = |dd|, and min(w q, w m) = w min(q, m) (rounding is monotonic), so its values
  // are those of the general kernel, bit for bit.
  a.piece_dq.assign(pieces_.size(), 0);
  a.piece_uni.assign(pieces_.size(), 1);
  for (size_t p = 0; p < pieces_.size(); ++p) {
    for (int i = pieces_[p].a; i < pieces_[p].b; ++i) {
      if (a.dq[i] != 0.0) a.piece_dq[p] = 1;
      if (a.rho[i] != 1.0 || a.k[i] != a.w[i]) a.piece_uni[p] = 0;
    }
  }
}

void Engine::AdvectHalf(Item& it, const Block& B, double ta, int nsub) {
  const double tau = it.adv.tau;
  const bool rk2 = opt_.advection == TransportOptions::Advection::kSspRk2;
  for (int k = 0; k < nsub; ++k) {
    double t0 = ta + k * tau, t1 = ta + (k + 1) * tau;
    if (rk2) {
      if (B.mb == 1 && B.stride == 1) {
        AdvectSspRk2<1>(it, B, t0, t1);
      } else if (B.mb == kLanes) {
        AdvectSspRk2<kLanes>(it, B, t0, t1);
      } else {
        AdvectSspRk2<0>(it, B, t0, t1);
      }
    } else if (B.mb == 1 && B.stride == 1) {
      AdvectSub<1>(it, B, t0, t1);
    } else if (B.mb == kLanes) {
      AdvectSub<kLanes>(it, B, t0, t1);
    } else {
      AdvectSub<0>(it, B, t0, t1);
    }
  }
}

// One sub-step of the method-of-lines advection with the two-stage SSP Runge-Kutta method
// (Heun; Shu & Osher 1988, eq. 2.15):
//   C1 = C0 + tau L(C0),  C2 = C1 + tau L(C1),  C = (C0 + C2) / 2,
// L the semi-discrete limited upwind operator (AdvectSub is a forward-Euler step of it: the
// advection coefficients have w = 1, the nu -> 0 limit). Each stage is positive and
// creates no extremum for Courant <= 0.5, so their convex combination is too. The boundary
// value of both stages is the exact mean over the sub-step (TimeSeries::Average): the mass
// admitted is exact, and for a smooth boundary value the local error stays O(tau^3). The
// budget terms are those of the two stages, halved (the combination's fluxes).
template <int kMb>
void Engine::AdvectSspRk2(Item& it, const Block& B, double t0, double t1) {
  const int mb = kMb > 0 ? kMb : B.mb;
  const size_t st = kMb == 1 ? 1 : B.stride;
  const size_t n = static_cast<size_t>(N_) * mb;
  if (it.rk0.size() < n) it.rk0.resize(n);
  double* __restrict c0 = it.rk0.data();
  double* __restrict C = B.C;
  for (int i = 0; i < N_; ++i) {
    for (int m = 0; m < mb; ++m) c0[static_cast<size_t>(i) * mb + m] = C[i * st + m];
  }
  const Budget before = it.budget;
  AdvectSub<kMb>(it, B, t0, t1);
  AdvectSub<kMb>(it, B, t0, t1);
  for (int i = 0; i < N_; ++i) {
    for (int m = 0; m < mb; ++m) {
      double& c = C[i * st + m];
      c = 0.5 * (c0[static_cast<size_t>(i) * mb + m] + c);
    }
  }
  Budget& b = it.budget;
  b.boundary = before.boundary + 0.5 * (b.boundary - before.boundary);
  b.outlet = before.outlet + 0.5 * (b.outlet - before.outlet);
  b.closure = before.closure + 0.5 * (b.closure - before.closure);
}

// One explicit advection sub-step on a block of columns:
//   V (C_i* - C_i) = tau [ sum_up F_j + Q_b C_b - F_i + (Q_i - Q_in) C_i ],  F_j = Q_j (C_j + delta_j)
// (OTIS's non-conservative form Q_in C_i + Q_i delta_i for the outflow, written with the
// flux F_i; the mass C (Q_in - Q) that leaves with water that does not go downstream is
// booked as flow closure). Pass 1 computes F from the old state, pass 2 updates in place
// (it reads only fluxes and the cell's own value).
template <int kMb>
void Engine::AdvectSub(Item& it, const Block& B, double t0, double t1) {
  const int mb = kMb > 0 ? kMb : B.mb;
  const std::ptrdiff_t st = kMb == 1 ? 1 : static_cast<std::ptrdiff_t>(B.stride);
  const std::ptrdiff_t smb = mb;
  const AdvCoef& ac = it.adv;
  const double tau = ac.tau;
  double* __restrict C = B.C;
  double* __restrict F = it.F.data();
  double* __restrict cbv = it.cbv.data();
  double* __restrict acc = it.acc.data();
  const double* __restrict Q = h_.Q.data();
  const double* __restrict Qin = h_.Qin.data();
  const double* __restrict Qb = h_.Qb.data();
  const double* __restrict r = ac.r.data();
  const double* __restrict w = ac.w.data();
  const double* __restrict k = ac.k.data();
  const double* __restrict rho = ac.rho.data();
  const double* __restrict iq = ac.iq.data();
  const double* __restrict dq = ac.dq.data();
  Budget& bud = it.budget;
  // Boundary face concentrations: exact means over [t0, t1].
  for (size_t j = 0; j < inflow_cells_.size(); ++j) {
    const int i = inflow_cells_[j];
    double* cb = cbv + j * smb;
    double sum = 0.0;
    for (int m = 0; m < mb; ++m) {
      double v = 0.0;
      if (bindex_[i] >= 0) {
        v = p_.members[B.member[m]].boundaries[bindex_[i]].series[it.s].Average(t0, t1);
        if (bkind_[i] != 0) v /= Qb[i];
      }
      cb[m] = v;
      sum += v;
    }
    bud.boundary += tau * Qb[i] * sum;
  }
  if constexpr (kMb == kLanes) {
    // One sweep (AdvectRun8). Generic cells keep their old values in Cold first: cells
    // downstream of them read those after they have been updated.
    double* __restrict Cold = it.c0.data();
    for (int i : ac.closure_cells) {
      const double* ci = C + i * st;
      double sum = 0.0;
      for (int m = 0; m < mb; ++m) sum += ci[m];
      bud.closure += tau * (Qin[i] - Q[i]) * sum;
    }
    for (const Piece& pc : pieces_) {
      if (!pc.run) Store8(Cold + pc.a * smb, Load8(C + pc.a * st));
    }
    for (size_t p = 0; p < pieces_.size(); ++p) {
      const Piece& pc = pieces_[p];
      if (pc.run) {
        if (ac.piece_dq[p]) {
          AdvectRun8<true, false>(pc.a, pc.b, C, st, rho, k, w, Q, r, dq, F, Cold);
        } else if (ac.piece_uni[p]) {
          AdvectRun8<false, true>(pc.a, pc.b, C, st, rho, k, w, Q, r, dq, F, Cold);
        } else {
          AdvectRun8<false, false>(pc.a, pc.b, C, st, rho, k, w, Q, r, dq, F, Cold);
        }
        continue;
      }
      const int i = pc.a, d = down_[i], bi = inflow_index_[i];
      const double* ci = Cold + i * smb;  // == C (not updated yet)
      const double* cd = d >= 0 ? C + d * st : ci;
      double* f = F + i * smb;
      for (int m = 0; m < mb; ++m) acc[m] = bi >= 0 ? Qb[i] * cbv[bi * smb + m] : 0.0;
      for (int u = up_start_[i]; u < up_start_[i + 1]; ++u) {
        const int j = up_list_[u];
        const double qj = Q[j];
        const double* cj = Cold + j * smb;
        for (int m = 0; m < mb; ++m) acc[m] += qj * cj[m];
      }
      AdvRow1Acc(mb, acc, ci, cd, iq[i], rho[i], k[i], w[i], Q[i], f);
      if (d < 0 && Q[i] > 0) {
        double sum = 0.0;
        for (int m = 0; m < mb; ++m) sum += f[m];
        bud.outlet += tau * sum;
      }
      for (int m = 0; m < mb; ++m) acc[m] = bi >= 0 ? Qb[i] * cbv[bi * smb + m] : 0.0;
      for (int u = up_start_[i]; u < up_start_[i + 1]; ++u) {
        const double* fj = F + up_list_[u] * smb;
        for (int m = 0; m < mb; ++m) acc[m] += fj[m];
      }
      AdvRow2(mb, C + i * st, acc, f, r[i], dq[i]);
    }
    return;
  }
  // Pass 1: face deviations and outgoing fluxes.
  for (size_t p = 0; p < pieces_.size(); ++p) {
    const Piece& pc = pieces_[p];
    if (kMb == 1 && pc.run && ac.piece_uni[p]) {
      AdvectPass1Run<true>(pc.a, pc.b, C, rho, k, w, Q, F);
    } else if (kMb == 1 && pc.run) {
      AdvectPass1Run<false>(pc.a, pc.b, C, rho, k, w, Q, F);
    } else if (pc.run) {
      for (int i = pc.a; i < pc.b; ++i) {
        AdvRow1Chain(mb, C + (i - 1) * st, C + i * st, C + (i + 1) * st, rho[i], k[i], w[i],
                     Q[i], F + i * smb);
      }
    } else {
      const int i = pc.a, d = down_[i], bi = inflow_index_[i];
      const double* ci = C + i * st;
      const double* cd = d >= 0 ? C + d * st : ci;
      double* f = F + i * smb;
      for (int m = 0; m < mb; ++m) acc[m] = bi >= 0 ? Qb[i] * cbv[bi * smb + m] : 0.0;
      for (int u = up_start_[i]; u < up_start_[i + 1]; ++u) {
        const int j = up_list_[u];
        const double qj = Q[j];
        const double* cj = C + j * st;
        for (int m = 0; m < mb; ++m) acc[m] += qj * cj[m];
      }
      AdvRow1Acc(mb, acc, ci, cd, iq[i], rho[i], k[i], w[i], Q[i], f);
    }
  }
  // Budget: outlet outflow and flow closure (old state).
  for (int i : outlets_) {
    if (Q[i] <= 0) continue;
    const double* f = F + i * smb;
    double sum = 0.0;
    for (int m = 0; m < mb; ++m) sum += f[m];
    bud.outlet += tau * sum;
  }
  for (int i : ac.closure_cells) {
    const double* ci = C + i * st;
    double sum = 0.0;
    for (int m = 0; m < mb; ++m) sum += ci[m];
    bud.closure += tau * (Qin[i] - Q[i]) * sum;
  }
  // Pass 2: update.
  for (const Piece& pc : pieces_) {
    if (kMb == 1 && pc.run) {
      AdvectPass2Run(pc.a, pc.b, C, F, r, dq);
    } else if (pc.run) {
      for (int i = pc.a; i < pc.b; ++i) {
        AdvRow2(mb, C + i * st, F + (i - 1) * smb, F + i * smb, r[i], dq[i]);
      }
    } else {
      const int i = pc.a, bi = inflow_index_[i];
      for (int m = 0; m < mb; ++m) acc[m] = bi >= 0 ? Qb[i] * cbv[bi * smb + m] : 0.0;
      for (int u = up_start_[i]; u < up_start_[i + 1]; ++u) {
        const double* fj = F + up_list_[u] * smb;
        for (int m = 0; m < mb; ++m) acc[m] += fj[m];
      }
      AdvRow2(mb, C + i * st, acc, F + i * smb, r[i], dq[i]);
    }
  }
}


}  // namespace qingshui::transport::engine
