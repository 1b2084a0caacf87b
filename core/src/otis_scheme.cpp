// OTIS's own numerical method, for users who need OTIS's numbers (`qingshui otis
// --scheme otis`). It reproduces the finite-difference solution of OTIS MOD40:
//
//   Runkel, R.L. (1998) One-dimensional transport with inflow and storage (OTIS): a solute
//     transport model for streams and rivers. USGS WRIR 98-4018, section "Numerical
//     Solution".
//   Runkel, R.L., Chapra, S.C. (1993) An efficient numerical solution of the transient
//     storage equations for solute transport in small streams. Water Resour. Res. 29(1),
//     211-215.
//
// Summary of the method (every detail below is OTIS's, including its quirks):
// * Grid: segment i has length dx_i and centre x_i; Q, A, q_L, C_L live at the centres.
//   Face values are interpolated with the segment lengths: A_f = (dx_i A_{i+1} +
//   dx_{i+1} A_i)/(dx_i + dx_{i+1}), D_f likewise with the weights swapped.
// * Main channel: Crank-Nicolson in time, centred differences in space. Advection
//   -(Q/A) dC/dx uses face concentrations interpolated between centres, i.e. the
//   coefficients -Q/(2A(dx_{i-1}+dx_i)), Q/(2A(dx_i+dx_{i+1})) and a diagonal term that
//   vanishes on a uniform grid; dispersion (1/A) d/dx(A D dC/dx) uses the face gradient
//   (C_{i+1}-C_i)/((dx_i+dx_{i+1})/2).
// * Storage zone and streambed sorbate: their Crank-Nicolson equations are local, so
//   C_s^{n+1} and C_sed^{n+1} are eliminated in terms of C^{n+1} (Runkel & Chapra 1993);
//   the main-channel system stays tridiagonal and is solved by the Thomas algorithm,
//   factorized only when the flow changes.
// * Upstream boundary: the boundary concentration sits on the upstream face of segment 1
//   (advective inflow Q C_b / (A dx) and dispersion with the gradient over dx/2). IBOUND 1:
//   step concentration; 2: step mass flux, C_b = flux / Q at the upstream boundary
//   (re-evaluated when the flow changes); 3: concentration interpolated linearly in time
//   at every step. A change takes effect at the new time level of the step during which it
//   falls (OTIS warns that it is applied at the start of that step).
// * Downstream boundary: dispersive flux D dC/dx = DSBOUND at the last face, through a
//   ghost value C_{n+1} = C_n + dx DSBOUND / D in the centred advection and dispersion.
// * Unsteady flow: one flow set every QSTEP; Q and A are interpolated linearly between flow
//   locations at the segment centres; q_L and C_L hold the value of the next flow location
//   downstream (weighted when a location lies inside the segment). The new set is used at
//   the new time level of the step that crosses QSTEP; Crank-Nicolson averages old and new.
// * Steady state (and the initial condition of every dynamic run): the same centred
//   differences with d/dt = 0, storage zone and sorbate in equilibrium, one tridiagonal
//   solve per solute.
// * Print locations: IOPT = 0 uses the nearest segment centre upstream (or the next centre
//   when the location is exactly on it); IOPT = 1 interpolates linearly between centres.
//   Output every NINT(PSTEP/TSTEP) steps; OTIS stops after
//   INT((INT((TFINAL-TSTART)/TSTEP)+1)/IPRINT)+1 outputs, possibly past TFINAL.
//
// The scheme is what OTIS is, not what Qingshui recommends: at Courant numbers above one
// its centred Crank-Nicolson advection overshoots (app3, docs/methods.md).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "qingshui/core/error.h"
#include "qingshui/core/otis.h"

namespace qingshui {
namespace {

constexpr double kHour = 3600.0;
constexpr double kNever = 999.0e99;   // OTIS: "this never changes"
constexpr double kTimeTolH = 1.0e-7;  // OTIS: a change is due when TIME > TSTOP + 1e-7 h

using Matrix = std::vector<std::vector<double>>;  // [solute][segment]

// Time-invariant grid and parameter groups (OTIS INPUT2, PREPROC1).
struct Grid {
  int n = 0;
  std::vector<int> reach;
  std::vector<double> dx, dist, disp, area2, alpha;
  std::vector<double> dface, hplusf, hplusb, hmultf, hmultb, hdiv, hdivf, hadv;
};

// Chemistry per solute and segment (OTIS INPUT4, INPUT5).
struct Chemistry {
  Matrix lambda, lambda2, lamhat, lamhat2, rholam, kd, csback;
};

// Flow variables at one time level, at the segment centres.
struct Flow {
  std::vector<double> q, area, qlatin;
  Matrix clatin;
};

// Flow-dependent matrix groups of one time level (OTIS PREPROC3).
struct Level {
  Flow flow;
  std::vector<double> aface, lower, upper, gamma;  // lower/upper: OTIS A and C
  Matrix bterms;                                   // transport + sorption + decay part of B
};

Grid MakeGrid(const OtisDeck& d) {
  Grid g;
  for (size_t r = 0; r < d.reaches.size(); ++r) {
    const OtisReach& re = d.reaches[r];
    double dx = re.length_m / re.num_segments;
    for (int k = 0; k < re.num_segments; ++k) {
      g.reach.push_back(static_cast<int>(r));
      g.dx.push_back(dx);
      g.disp.push_back(re.dispersion_m2s);
      g.area2.push_back(re.storage_area_m2);
      g.alpha.push_back(re.alpha_per_s);
    }
  }
  const int n = g.n = static_cast<int>(g.dx.size());
  if (n < 2) {
    throw ConfigError(
        Located(d.params_file, 0, "NSEG", "the OTIS scheme needs at least 2 segments in all"));
  }
  const auto& h = g.dx;
  g.dist.resize(n);
  g.dist[0] = d.xstart_m + 0.5 * h[0];
  for (int i = 1; i < n; ++i) g.dist[i] = g.dist[i - 1] + 0.5 * (h[i - 1] + h[i]);
  g.dface.resize(n);
  for (int i = 0; i + 1 < n; ++i) {
    g.dface[i] =
        h[i] / (h[i + 1] + h[i]) * g.disp[i + 1] + h[i + 1] / (h[i + 1] + h[i]) * g.disp[i];
  }
  g.dface[n - 1] = g.disp[n - 1];
  g.hplusf.assign(n, 0.0);
  g.hplusb.assign(n, 0.0);
  g.hmultf.assign(n, 0.0);
  g.hmultb.assign(n, 0.0);
  g.hdiv.assign(n, 0.0);
  g.hdivf.assign(n, 0.0);
  g.hadv.assign(n, 0.0);
  g.hplusf[0] = h[0] + h[1];
  g.hmultf[0] = h[0] * g.hplusf[0];
  g.hdiv[0] = h[0] / g.hplusf[0];
  g.hdivf[0] = h[1] / g.hplusf[0];
  for (int i = 1; i + 1 < n; ++i) {
    g.hplusf[i] = h[i] + h[i + 1];
    g.hplusb[i] = h[i] + h[i - 1];
    g.hmultf[i] = h[i] * g.hplusf[i];
    g.hmultb[i] = h[i] * g.hplusb[i];
    g.hdiv[i] = h[i] / g.hplusf[i];
    g.hdivf[i] = h[i + 1] / g.hplusf[i];
    g.hadv[i] = 0.5 * (g.hdivf[i] - h[i - 1] / g.hplusb[i]) / h[i];
  }
  g.hplusb[n - 1] = h[n - 1] + h[n - 2];
  g.hmultb[n - 1] = h[n - 1] * g.hplusb[n - 1];
  return g;
}

Chemistry MakeChemistry(const OtisDeck& d, const Grid& g) {
  const int ns = d.num_solutes;
  Chemistry c;
  for (Matrix* m : {&c.lambda, &c.lambda2, &c.lamhat, &c.lamhat2, &c.rholam, &c.kd, &c.csback}) {
    m->assign(ns, std::vector<double>(g.n, 0.0));
  }
  for (int s = 0; s < ns; ++s) {
    for (int i = 0; i < g.n; ++i) {
      const int r = g.reach[i];
      if (d.decay_option == 1) {
        c.lambda[s][i] = d.lambda[s][r];
        c.lambda2[s][i] = d.lambda2[s][r];
      }
      if (d.sorption_option == 1) {
        const transport::Sorption& so = d.sorption[s][r];
        c.lamhat[s][i] = so.main_rate_per_s;
        c.lamhat2[s][i] = so.storage_rate_per_s;
        c.rholam[s][i] = so.main_rate_per_s * so.sediment_kg_per_m3;
        c.kd[s][i] = so.kd_m3_per_kg;
        c.csback[s][i] = so.storage_background_g_m3;
      }
    }
  }
  return c;
}

// Steady flow (OTIS QSTEADY, FLOWINIT): reach values; Q at the centres accumulates the net
// lateral inflow, half a segment at a time.
Flow SteadyFlow(const OtisDeck& d, const Grid& g) {
  const int n = g.n, ns = d.num_solutes;
  Flow f;
  f.q.resize(n);
  f.area.resize(n);
  f.qlatin.resize(n);
  f.clatin.assign(ns, std::vector<double>(n, 0.0));
  std::vector<double> qlatout(n);
  for (int i = 0; i < n; ++i) {
    const int r = g.reach[i];
    f.area[i] = d.reach_area_m2[r];
    f.qlatin[i] = d.reach_lateral_inflow_m2s[r];
    qlatout[i] = d.reach_lateral_outflow_m2s[r];
    for (int s = 0; s < ns; ++s) f.clatin[s][i] = d.reach_lateral_concentration[r][s];
  }
  f.q[0] = d.upstream_flow_m3s + 0.5 * g.dx[0] * (f.qlatin[0] - qlatout[0]);
  for (int i = 1; i < n; ++i) {
    f.q[i] = f.q[i - 1] + 0.5 * ((f.qlatin[i - 1] - qlatout[i - 1]) * g.dx[i - 1] +
                                 (f.qlatin[i] - qlatout[i]) * g.dx[i]);
  }
  return f;
}

// Interpolation of unsteady flow data onto the segments (OTIS QWEIGHTS, QAINIT).
struct FlowWeights {
  std::vector<int> index;  // OTIS QINDEX - 1: the flow location downstream of the centre
  std::vector<double> weight, dsdist, usdist;
};

FlowWeights MakeFlowWeights(const OtisDeck& d, const Grid& g) {
  const auto& loc = d.flow_locations_m;
  const int nflow = static_cast<int>(loc.size());
  const std::string file = d.flow_file;
  if (nflow < 2)
    throw ConfigError(Located(file, 0, "NFLOW", "the OTIS scheme needs at least 2 flow locations"));
  if (loc.front() != d.xstart_m) {
    throw ConfigError(Located(file, 0, "FLOWLOC", "the first flow location must equal XSTART"));
  }
  if (loc.back() < g.dist.back()) {
    throw ConfigError(
        Located(file, 0, "FLOWLOC",
                "the last flow location must be at or below the centre of the last segment"));
  }
  FlowWeights w;
  int j = 1;
  for (int i = 0; i < g.n; ++i) {
    while (j < nflow - 1 && g.dist[i] >= loc[j]) ++j;
    w.index.push_back(j);
    w.weight.push_back((g.dist[i] - loc[j - 1]) / (loc[j] - loc[j - 1]));
    w.dsdist.push_back((loc[j] - g.dist[i]) / g.dx[i]);
    w.usdist.push_back((g.dist[i] - loc[j - 1]) / g.dx[i]);
  }
  return w;
}

Flow UnsteadyFlow(const OtisFlowSet& set, const FlowWeights& w, int ns) {
  const int n = static_cast<int>(w.index.size());
  const int nflow = static_cast<int>(set.flow_m3s.size());
  // OTIS extends the lateral data one location past the last (QINVAL(NFLOW+1)).
  auto at = [&](const std::vector<double>& v, int k) { return v[std::min(k, nflow - 1)]; };
  auto wtavg = [](double dist, double us, double ds) {
    return (0.5 - dist) * us + (0.5 + dist) * ds;
  };
  Flow f;
  f.q.resize(n);
  f.area.resize(n);
  f.qlatin.resize(n);
  f.clatin.assign(ns, std::vector<double>(n, 0.0));
  for (int i = 0; i < n; ++i) {
    const int j = w.index[i];
    f.q[i] = set.flow_m3s[j - 1] + w.weight[i] * (set.flow_m3s[j] - set.flow_m3s[j - 1]);
    f.area[i] = set.area_m2[j - 1] + w.weight[i] * (set.area_m2[j] - set.area_m2[j - 1]);
    if (w.usdist[i] < 0.5) {  // a flow location in the upstream half of the segment
      f.qlatin[i] =
          wtavg(w.usdist[i], at(set.lateral_inflow_m2s, j - 1), at(set.lateral_inflow_m2s, j));
      for (int s = 0; s < ns; ++s) {
        f.clatin[s][i] = wtavg(w.usdist[i], at(set.lateral_concentration[s], j - 1),
                               at(set.lateral_concentration[s], j));
      }
    } else if (w.dsdist[i] < 0.5) {  // ... in the downstream half
      f.qlatin[i] =
          wtavg(w.dsdist[i], at(set.lateral_inflow_m2s, j + 1), at(set.lateral_inflow_m2s, j));
      for (int s = 0; s < ns; ++s) {
        f.clatin[s][i] = wtavg(w.dsdist[i], at(set.lateral_concentration[s], j + 1),
                               at(set.lateral_concentration[s], j));
      }
    } else {
      f.qlatin[i] = at(set.lateral_inflow_m2s, j);
      for (int s = 0; s < ns; ++s) f.clatin[s][i] = at(set.lateral_concentration[s], j);
    }
  }
  return f;
}

// Tridiagonal solve (Thomas algorithm, OTIS DECOMP/SUBSTIT and MATRIX): lower[i] couples
// segment i to i-1, upper[i] to i+1.
struct Factor {
  std::vector<double> awork, bwork;
};

Factor Decompose(const std::vector<double>& lower, const std::vector<double>& diag,
                 const std::vector<double>& upper) {
  const int n = static_cast<int>(diag.size());
  Factor f;
  f.awork.assign(n, 0.0);
  f.bwork.assign(n, 0.0);
  f.bwork[0] = diag[0];
  for (int i = 1; i < n; ++i) {
    f.awork[i] = lower[i] / f.bwork[i - 1];
    f.bwork[i] = diag[i] - f.awork[i] * upper[i - 1];
  }
  return f;
}

// Forward and back substitution; d is overwritten.
void Substitute(const Factor& f, const std::vector<double>& upper, std::vector<double>* d,
                std::vector<double>* x) {
  const int n = static_cast<int>(d->size());
  for (int i = 1; i < n; ++i) (*d)[i] -= f.awork[i] * (*d)[i - 1];
  (*x)[n - 1] = (*d)[n - 1] / f.bwork[n - 1];
  for (int i = n - 2; i >= 0; --i) (*x)[i] = ((*d)[i] - upper[i] * (*x)[i + 1]) / f.bwork[i];
}

// Per-solute groups of a step from the old to the new level (OTIS TWOPLUS, BN, TGROUP,
// IGROUP): the explicit diagonal, the storage-zone coupling and the constant sources.
struct Groups {
  std::vector<double> twoplus, bn, tgroup, source;
};

class OtisRun {
 public:
  explicit OtisRun(const OtisDeck& d)
      : d_(d), g_(MakeGrid(d)), chem_(MakeChemistry(d, g_)), ns_(d.num_solutes) {}

  transport::TransportResult Run();

 private:
  // Matrix groups of a flow level (OTIS PREPROC3 without the solute part).
  Level MakeLevel(Flow flow) const;
  // Factorizes B = 1/dt + BTERMS + storage term of the new level, per solute (DECOMP).
  void Factorize();
  // The step groups from the old and the new level (OTIS PREPROC3 / SAVEN).
  void Prepare();
  void SteadyState(const Flow& flow, const std::vector<double>& boundary);
  void Step();
  void SetStop();
  void Update(double time_h);
  void ChangeFlow();
  void ChangeBoundary(double time_h);
  void SetPrintWeights();
  void Record(transport::TransportResult* r, int t) const;

  const OtisDeck& d_;
  Grid g_;
  Chemistry chem_;
  int ns_;
  bool steady_ = false;
  double timeb_ = 0, tstep_h_ = 0, dsbound_ = 0;
  // Per solute and segment, dt-dependent groups (OTIS PREPROC2).
  Matrix lam2dt_, lhatdt_, lhat2dt_, sgroup_, sgroup2_;
  Level old_, new_;
  std::vector<Factor> factor_;  // per solute, of the new level
  std::vector<Groups> groups_;  // per solute
  bool flow_changed_ = false;   // since the last step
  // State.
  Matrix conc_, conc2_, sorb_;
  // Upstream boundary (OTIS USTIME, USBC, USCONC, JBOUND, USCONCN).
  std::vector<double> ustime_;
  Matrix usbc_, usconc_;  // [boundary time][solute]
  std::vector<double> usconcn_;
  int jbound_ = 0;
  // Unsteady flow.
  FlowWeights weights_;
  size_t next_flow_set_ = 1;
  // Event times (hours).
  double qstop_ = kNever, bcstop_ = kNever, tstop_ = kNever;
  enum class Stop { kFlow, kBoundary, kBoth } stop_type_ = Stop::kBoundary;
  // Print locations.
  std::vector<int> pindex_;
  std::vector<double> wt_;
  long long steps_ = 0;
  std::vector<double> d_work_, old_work_;
};

Level OtisRun::MakeLevel(Flow flow) const {
  const Grid& g = g_;
  const int n = g.n;
  Level l;
  l.flow = std::move(flow);
  const auto& q = l.flow.q;
  const auto& a = l.flow.area;
  const auto& ql = l.flow.qlatin;
  l.aface.assign(n, 0.0);
  l.lower.assign(n, 0.0);
  l.upper.assign(n, 0.0);
  l.gamma.assign(n, 0.0);
  std::vector<double> ad(n, 0.0), transb(n, 0.0);
  // A segment without exchange has no storage term; OTIS would compute 0/0 when AREA2 = 0.
  auto gamma = [&](int i) {
    return g.alpha[i] == 0.0 ? 0.0 : a[i] * g.alpha[i] / (timeb_ * g.area2[i]);
  };
  // First segment: the upstream face carries the boundary concentration (in the RHS).
  l.aface[0] = g.hdiv[0] * a[1] + g.hdivf[0] * a[0];
  {
    const double advb = 0.5 * q[0] * g.hdivf[0] / (a[0] * g.dx[0]);
    const double advc = 0.5 * q[0] / (a[0] * g.hplusf[0]);
    ad[0] = l.aface[0] * g.dface[0];
    const double ad_up = ad[0];
    const double dispb = (ad[0] / g.hplusf[0] + ad_up / g.dx[0]) / (a[0] * g.dx[0]);
    const double dispc = -ad[0] / (a[0] * g.hmultf[0]);
    const double latb = ql[0] / (a[0] + a[0]);
    l.gamma[0] = gamma(0);
    transb[0] = advb + dispb + latb;
    l.upper[0] = advc + dispc;
  }
  for (int i = 1; i + 1 < n; ++i) {
    l.aface[i] = g.hdiv[i] * a[i + 1] + g.hdivf[i] * a[i];
    const double adva = -0.5 * q[i] / (a[i] * g.hplusb[i]);
    const double advb = g.hadv[i] * q[i] / a[i];
    const double advc = 0.5 * q[i] / (a[i] * g.hplusf[i]);
    ad[i] = l.aface[i] * g.dface[i];
    const double dispa = -ad[i - 1] / (a[i] * g.hmultb[i]);
    const double dispb = (ad[i] / g.hplusf[i] + ad[i - 1] / g.hplusb[i]) / (a[i] * g.dx[i]);
    const double dispc = -ad[i] / (a[i] * g.hmultf[i]);
    const double latb = ql[i] / (a[i] + a[i]);
    l.gamma[i] = gamma(i);
    transb[i] = advb + dispb + latb;
    l.lower[i] = adva + dispa;
    l.upper[i] = advc + dispc;
  }
  {
    // Last segment: zero-gradient ghost for advection, no dispersion through the outlet
    // face (DSBOUND enters the RHS).
    const int i = n - 1;
    l.aface[i] = a[i];
    const double adva = -0.5 * q[i] / (a[i] * g.hplusb[i]);
    const double advb = -adva;
    const double dispa = -ad[i - 1] / (a[i] * g.hmultb[i]);
    const double dispb = -dispa;
    const double latb = ql[i] / (a[i] + a[i]);
    l.gamma[i] = gamma(i);
    transb[i] = advb + dispb + latb;
    l.lower[i] = adva + dispa;
  }
  l.bterms.assign(ns_, std::vector<double>(n, 0.0));
  for (int s = 0; s < ns_; ++s) {
    for (int i = 0; i < n; ++i) {
      const double sorbb = sgroup_[s][i] * chem_.kd[s][i];
      const double decayb = 0.5 * chem_.lambda[s][i];
      l.bterms[s][i] = transb[i] + sorbb + decayb;
    }
  }
  return l;
}

void OtisRun::Factorize() {
  const int n = g_.n;
  factor_.assign(ns_, Factor());
  std::vector<double> b(n);
  for (int s = 0; s < ns_; ++s) {
    for (int i = 0; i < n; ++i) {
      const double twoplus = 2.0 + new_.gamma[i] + lam2dt_[s][i] + lhat2dt_[s][i];
      const double storb = 0.5 * g_.alpha[i] * (1.0 - new_.gamma[i] / twoplus);
      b[i] = timeb_ + new_.bterms[s][i] + storb;
    }
    factor_[s] = Decompose(new_.lower, b, new_.upper);
  }
}

void OtisRun::Prepare() {
  const int n = g_.n;
  const Level& o = old_;
  const Level& w = new_;
  groups_.assign(ns_, Groups());
  for (int s = 0; s < ns_; ++s) {
    Groups& gr = groups_[s];
    gr.twoplus.resize(n);
    gr.bn.resize(n);
    gr.tgroup.resize(n);
    gr.source.resize(n);
    for (int i = 0; i < n; ++i) {
      const double alpha = g_.alpha[i];
      const double twoplus = gr.twoplus[i] = 2.0 + w.gamma[i] + lam2dt_[s][i] + lhat2dt_[s][i];
      gr.bn[i] = timeb_ - o.bterms[s][i] - 0.5 * alpha * (1.0 - o.gamma[i] / twoplus);
      gr.tgroup[i] = 0.5 * alpha * (4.0 + w.gamma[i] - o.gamma[i]) / twoplus;
      const double igroup = 0.5 * (o.flow.qlatin[i] * o.flow.clatin[s][i] / o.flow.area[i] +
                                   w.flow.qlatin[i] * w.flow.clatin[s][i] / w.flow.area[i]);
      gr.source[i] = alpha * sgroup2_[s][i] / twoplus + igroup;
    }
  }
}

// Steady-state concentrations for a flow and a boundary value per solute (OTIS STEADY:
// SSDIFF, MATRIX, SSCONC).
void OtisRun::SteadyState(const Flow& flow, const std::vector<double>& boundary) {
  const Grid& g = g_;
  const int n = g.n;
  const auto& q = flow.q;
  const auto& a = flow.area;
  const auto& ql = flow.qlatin;
  conc_.assign(ns_, std::vector<double>(n, 0.0));
  conc2_.assign(ns_, std::vector<double>(n, 0.0));
  sorb_.assign(ns_, std::vector<double>(n, 0.0));
  std::vector<double> lo(n), di(n), up(n), rhs(n), aface(n), ad(n);
  for (int s = 0; s < ns_; ++s) {
    const double cb = boundary[s];
    // Storage-zone equilibrium: alpha (C_s - C) = alpha A_s (lamhat2 Cback - (lambda2 +
    // lamhat2) C) / (alpha A + A_s (lambda2 + lamhat2)).
    auto storage = [&](int i, double* b, double* r) {
      if (g.alpha[i] == 0.0) return;
      const double k = chem_.lambda2[s][i] + chem_.lamhat2[s][i];
      const double den = g.alpha[i] * a[i] + g.area2[i] * k;
      *b += g.alpha[i] * g.area2[i] * k / den;
      *r += g.alpha[i] * g.area2[i] * chem_.lamhat2[s][i] * chem_.csback[s][i] / den;
    };
    aface[0] = g.hdiv[0] * a[1] + g.hdivf[0] * a[0];
    lo[0] = 0.0;
    di[0] = q[0] * g.hdivf[0] / (a[0] * g.dx[0]);
    up[0] = q[0] / (a[0] * g.hplusf[0]);
    rhs[0] = q[0] * cb / (a[0] * g.dx[0]);
    ad[0] = aface[0] * g.dface[0];
    const double ad_up = ad[0];
    di[0] += 2.0 * (ad[0] / g.hplusf[0] + ad_up / g.dx[0]) / (a[0] * g.dx[0]);
    up[0] -= 2.0 * ad[0] / (a[0] * g.hmultf[0]);
    rhs[0] += 2.0 * ad_up * cb / (a[0] * g.dx[0] * g.dx[0]);
    di[0] += ql[0] / a[0];
    rhs[0] += ql[0] * flow.clatin[s][0] / a[0];
    storage(0, &di[0], &rhs[0]);
    di[0] += chem_.lambda[s][0];
    for (int i = 1; i + 1 < n; ++i) {
      aface[i] = g.hdiv[i] * a[i + 1] + g.hdivf[i] * a[i];
      lo[i] = -q[i] / (a[i] * g.hplusb[i]);
      di[i] = q[i] * 2.0 * g.hadv[i] / a[i];
      up[i] = q[i] / (a[i] * g.hplusf[i]);
      rhs[i] = 0.0;
      ad[i] = aface[i] * g.dface[i];
      lo[i] -= 2.0 * ad[i - 1] / (a[i] * g.hmultb[i]);
      di[i] += 2.0 * (ad[i] / g.hplusf[i] + ad[i - 1] / g.hplusb[i]) / (a[i] * g.dx[i]);
      up[i] -= 2.0 * ad[i] / (a[i] * g.hmultf[i]);
      di[i] += ql[i] / a[i];
      rhs[i] += ql[i] * flow.clatin[s][i] / a[i];
      storage(i, &di[i], &rhs[i]);
      di[i] += chem_.lambda[s][i];
    }
    {
      const int i = n - 1;
      up[i] = 0.0;
      aface[i] = a[i];
      lo[i] = -q[i] / (a[i] * g.hplusb[i]);
      di[i] = q[i] * (1.0 - g.dx[i - 1] / g.hplusb[i]) / (a[i] * g.dx[i]);
      rhs[i] = dsbound_ == 0.0 ? 0.0 : -q[i] * dsbound_ / (2.0 * a[i] * g.dface[i]);
      lo[i] -= 2.0 * ad[i - 1] / (a[i] * g.hmultb[i]);
      di[i] += 2.0 * ad[i - 1] / (a[i] * g.hmultb[i]);
      rhs[i] += aface[i] * dsbound_ / (a[i] * g.dx[i]);
      di[i] += ql[i] / a[i];
      rhs[i] += ql[i] * flow.clatin[s][i] / a[i];
      storage(i, &di[i], &rhs[i]);
      di[i] += chem_.lambda[s][i];
    }
    Factor f = Decompose(lo, di, up);
    Substitute(f, up, &rhs, &conc_[s]);
    for (int i = 0; i < n; ++i) {
      if (g.alpha[i] != 0.0 || chem_.lamhat2[s][i] != 0.0) {
        conc2_[s][i] =
            (g.alpha[i] * a[i] * conc_[s][i] +
             g.area2[i] * chem_.lamhat2[s][i] * chem_.csback[s][i]) /
            (g.alpha[i] * a[i] + g.area2[i] * (chem_.lambda2[s][i] + chem_.lamhat2[s][i]));
      }
      sorb_[s][i] = chem_.kd[s][i] * conc_[s][i];
    }
  }
}

// One Crank-Nicolson step from the old to the new level (OTIS REACT / CONSER).
void OtisRun::Step() {
  const Grid& g = g_;
  const int n = g.n;
  const Level& o = old_;
  const Level& w = new_;
  d_work_.resize(n);
  old_work_.resize(n);
  std::vector<double>& d = d_work_;
  std::vector<double>& oldconc = old_work_;
  for (int s = 0; s < ns_; ++s) {
    std::vector<double>& c = conc_[s];
    std::vector<double>& c2 = conc2_[s];
    std::vector<double>& sb = sorb_[s];
    const Groups& gr = groups_[s];
    const std::vector<double>& sgroup = sgroup_[s];
    const double us = usconc_[jbound_][s];
    const double usn = usconcn_[s];
    for (int i = 0; i < n; ++i) {
      double v = gr.bn[i] * c[i];
      if (i > 0) v -= o.lower[i] * c[i - 1];
      if (i + 1 < n) v -= o.upper[i] * c[i + 1];
      d[i] = v + gr.tgroup[i] * c2[i] + gr.source[i] + 2.0 * sb[i] * sgroup[i];
      oldconc[i] = c[i];
    }
    // Upstream boundary: advective inflow, dispersion over half a segment.
    d[0] += 0.5 * (o.flow.q[0] * usn / (o.flow.area[0] * g.dx[0]) +
                   w.flow.q[0] * us / (w.flow.area[0] * g.dx[0])) +
            g.dface[0] * (o.aface[0] * usn / o.flow.area[0] + w.aface[0] * us / w.flow.area[0]) /
                (g.dx[0] * g.dx[0]);
    // Downstream boundary: dispersive flux DSBOUND (OTIS divides by D there, so only
    // when it is non-zero).
    if (dsbound_ != 0.0) {
      const int l = n - 1;
      d[l] +=
          -0.25 * dsbound_ / g.dface[l] *
              (o.flow.q[l] / o.flow.area[l] + w.flow.q[l] / w.flow.area[l]) +
          0.5 * dsbound_ / g.dx[l] * (w.aface[l] / w.flow.area[l] + o.aface[l] / o.flow.area[l]);
    }
    Substitute(factor_[s], w.upper, &d, &c);
    // Storage zone and sorbate from their own Crank-Nicolson equations.
    const std::vector<double>& l2 = lam2dt_[s];
    const std::vector<double>& lh2 = lhat2dt_[s];
    const std::vector<double>& lh = lhatdt_[s];
    const std::vector<double>& kd = chem_.kd[s];
    const std::vector<double>& sg2 = sgroup2_[s];
    for (int i = 0; i < n; ++i) {
      c2[i] = ((2.0 - o.gamma[i] - l2[i] - lh2[i]) * c2[i] + o.gamma[i] * oldconc[i] +
               w.gamma[i] * c[i] + 2.0 * sg2[i]) /
              gr.twoplus[i];
    }
    if (d_.sorption_option == 1) {
      for (int i = 0; i < n; ++i) {
        sb[i] = ((2.0 - lh[i]) * sb[i] + kd[i] * lh[i] * (c[i] + oldconc[i])) / (2.0 + lh[i]);
      }
    }
    usconcn_[s] = us;
  }
}

// OTIS SETSTOP: the next time at which the flow and/or the boundary condition change.
void OtisRun::SetStop() {
  if (d_.boundary_option == 3 && qstop_ < bcstop_) bcstop_ = qstop_;
  if (std::fabs(qstop_ - bcstop_) < kTimeTolH) {
    tstop_ = qstop_;
    stop_type_ = Stop::kBoth;
  } else if (qstop_ < bcstop_) {
    tstop_ = qstop_;
    stop_type_ = Stop::kFlow;
  } else {
    tstop_ = bcstop_;
    stop_type_ = Stop::kBoundary;
  }
}

// OTIS QCHANGE + PREPROC3: the next flow set becomes the new time level.
void OtisRun::ChangeFlow() {
  if (next_flow_set_ >= d_.flow_sets.size()) {
    throw DataError(
        Located(d_.flow_file, 0, "flow data",
                "the run needs flow set " + std::to_string(next_flow_set_ + 1) +
                    " (t = " + std::to_string(d_.start_h + next_flow_set_ * d_.flow_step_h) +
                    " h) but the file holds " + std::to_string(d_.flow_sets.size())));
  }
  const OtisFlowSet& set = d_.flow_sets[next_flow_set_++];
  new_ = MakeLevel(UnsteadyFlow(set, weights_, ns_));
  qstop_ = tstop_ + d_.flow_step_h;
  if (d_.boundary_option == 2) {
    for (size_t k = jbound_; k < d_.boundary_times_h.size(); ++k) {
      for (int s = 0; s < ns_; ++s) usconc_[k][s] = usbc_[k][s] / set.flow_m3s[0];
    }
  }
  Factorize();
  Prepare();
  flow_changed_ = true;
}

// OTIS BCCHANGE.
void OtisRun::ChangeBoundary(double time_h) {
  if (d_.boundary_option == 1 || d_.boundary_option == 2) {
    ++jbound_;
    bcstop_ = ustime_[jbound_ + 1];
    return;
  }
  const int nb = static_cast<int>(d_.boundary_times_h.size());
  while (jbound_ < nb && time_h > ustime_[jbound_ + 1]) ++jbound_;
  for (int s = 0; s < ns_; ++s) {
    if (jbound_ + 1 < nb) {
      const double t0 = ustime_[jbound_], t1 = ustime_[jbound_ + 1];
      usconc_[jbound_][s] = usbc_[jbound_][s] +
                            (time_h - t0) * (usbc_[jbound_ + 1][s] - usbc_[jbound_][s]) / (t1 - t0);
    } else {
      usconc_[jbound_][s] = usbc_[std::min(jbound_, nb - 1)][s];  // past the last time
    }
  }
  bcstop_ = tstop_ + tstep_h_;
}

// OTIS UPDATE.
void OtisRun::Update(double time_h) {
  if (stop_type_ == Stop::kFlow) {
    ChangeFlow();
  } else if (stop_type_ == Stop::kBoundary) {
    ChangeBoundary(time_h);
  } else {
    ChangeFlow();
    ChangeBoundary(time_h);
  }
  SetStop();
}

// OTIS WEIGHTS: print location -> upstream segment and interpolation weight.
void OtisRun::SetPrintWeights() {
  const auto& dist = g_.dist;
  const int n = g_.n;
  for (double loc : d_.print_locations_m) {
    if (loc > dist[n - 1]) {
      throw ConfigError(Located(d_.params_file, 0, "PRTLOC",
                                std::to_string(loc) +
                                    " lies beyond the centre of the last segment (" +
                                    std::to_string(dist[n - 1]) + ")"));
    }
    loc = std::max(loc, dist[0]);  // OTIS moves it to the first centre, with a warning
    int j = 0;
    while (!(loc >= dist[j] && loc <= dist[j + 1])) ++j;
    double wt;
    if (d_.interpolation_option == 1) {
      wt = (loc - dist[j]) / (dist[j + 1] - dist[j]);
    } else {
      wt = loc == dist[j + 1] ? 1.0 : 0.0;
    }
    pindex_.push_back(j);
    wt_.push_back(wt);
  }
}

void OtisRun::Record(transport::TransportResult* r, int t) const {
  const int np = static_cast<int>(pindex_.size());
  for (int p = 0; p < np; ++p) {
    const int i = pindex_[p];
    const double w = wt_[p];
    for (int s = 0; s < ns_; ++s) {
      const size_t k = r->Index(0, t, p, np, s);
      r->station_concentration_g_m3[k] = conc_[s][i] + w * (conc_[s][i + 1] - conc_[s][i]);
      r->station_storage_g_m3[k] = conc2_[s][i] + w * (conc2_[s][i + 1] - conc2_[s][i]);
      r->station_sorbed_g_kg[k] = sorb_[s][i] + w * (sorb_[s][i + 1] - sorb_[s][i]);
    }
  }
}

transport::TransportResult OtisRun::Run() {
  const auto wall0 = std::chrono::steady_clock::now();
  const OtisDeck& d = d_;
  const int n = g_.n;
  steady_ = d.SteadyState();
  tstep_h_ = d.time_step_h;
  dsbound_ = d.downstream_flux;
  timeb_ = steady_ ? 0.0 : 1.0 / (tstep_h_ * kHour);
  // dt-dependent groups (OTIS PREPROC2: rate / TIMEB).
  for (Matrix* m : {&lam2dt_, &lhatdt_, &lhat2dt_, &sgroup_, &sgroup2_})
    m->assign(ns_, std::vector<double>(n, 0.0));
  if (!steady_) {
    for (int s = 0; s < ns_; ++s) {
      for (int i = 0; i < n; ++i) {
        lam2dt_[s][i] = chem_.lambda2[s][i] / timeb_;
        lhatdt_[s][i] = chem_.lamhat[s][i] / timeb_;
        lhat2dt_[s][i] = chem_.lamhat2[s][i] / timeb_;
        sgroup_[s][i] = chem_.rholam[s][i] / (2.0 + lhatdt_[s][i]);
        sgroup2_[s][i] = lhat2dt_[s][i] * chem_.csback[s][i];
      }
    }
  }
  // Flow at TSTART.
  Flow flow0;
  double qstart = d.upstream_flow_m3s;
  if (d.unsteady) {
    weights_ = MakeFlowWeights(d, g_);
    flow0 = UnsteadyFlow(d.flow_sets.front(), weights_, ns_);
    qstart = d.flow_sets.front().flow_m3s.front();
  } else {
    flow0 = SteadyFlow(d, g_);
  }
  // Upstream boundary (OTIS INPUT7, PREPROC): a flux is divided by the upstream flow.
  const int nb = static_cast<int>(d.boundary_times_h.size());
  if (d.boundary_option == 3 && !steady_ && d.boundary_times_h.back() < d.final_h) {
    throw ConfigError(Located(d.params_file, 0, "USTIME",
                              "with IBOUND = 3 the last boundary time must be at or after TFINAL"));
  }
  ustime_ = d.boundary_times_h;
  ustime_.push_back(kNever);
  usbc_.assign(nb + 1, std::vector<double>(ns_, 0.0));
  for (int k = 0; k < nb; ++k) usbc_[k] = d.boundary_values[k];
  usconc_ = usbc_;
  if (d.boundary_option == 2) {
    for (int k = 0; k < nb; ++k) {
      for (int s = 0; s < ns_; ++s) usconc_[k][s] = usbc_[k][s] / qstart;
    }
  }
  usconcn_ = usconc_[0];
  jbound_ = 0;
  SetPrintWeights();
  const int np = static_cast<int>(pindex_.size());

  transport::TransportResult r;
  r.num_members = 1;
  r.num_segments = n;
  r.num_species = ns_;
  r.num_stations = np;
  double max_courant = 0.0;
  if (!steady_) {
    for (int i = 0; i < n; ++i) {
      max_courant =
          std::max(max_courant, flow0.q[i] * tstep_h_ * kHour / (flow0.area[i] * g_.dx[i]));
    }
  }
  // Initial condition (dynamic) or result (steady): OTIS's steady-state solution with the
  // first boundary value and the flow at TSTART.
  SteadyState(flow0, usconc_[0]);
  if (steady_) {
    r.num_times = 1;
    r.times_s = {d.start_h * kHour};
    r.concentration_g_m3.resize(static_cast<size_t>(n) * ns_);
    r.storage_g_m3.resize(r.concentration_g_m3.size());
    r.sorbed_g_kg.resize(r.concentration_g_m3.size());
    for (int i = 0; i < n; ++i) {
      for (int s = 0; s < ns_; ++s) {
        const size_t k = r.Index(0, 0, i, n, s);
        r.concentration_g_m3[k] = conc_[s][i];
        r.storage_g_m3[k] = conc2_[s][i];
        r.sorbed_g_kg[k] = sorb_[s][i];
      }
    }
    r.station_concentration_g_m3.resize(static_cast<size_t>(np) * ns_);
    r.station_storage_g_m3.resize(r.station_concentration_g_m3.size());
    r.station_sorbed_g_kg.resize(r.station_concentration_g_m3.size());
    Record(&r, 0);
    r.summary.wall_time_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return r;
  }

  // Dynamic run (OTIS PREPROC, SAVEN, MAINRUN, DYNAMIC).
  new_ = MakeLevel(flow0);
  old_ = new_;
  Factorize();
  Prepare();
  qstop_ = d.unsteady ? d.start_h + d.flow_step_h : kNever;
  bcstop_ = d.boundary_option == 3 ? d.start_h : ustime_[1];
  SetStop();
  const long iprint = std::max(1L, std::lround(d.print_step_h / tstep_h_));
  double time_h = d.start_h;
  const long ncalls = (static_cast<long>((d.final_h - time_h) / tstep_h_) + 1) / iprint + 1;
  r.num_times = static_cast<int>(ncalls + 1);
  const size_t size = static_cast<size_t>(r.num_times) * np * ns_;
  r.station_concentration_g_m3.resize(size);
  r.station_storage_g_m3.resize(size);
  r.station_sorbed_g_kg.resize(size);
  r.times_s.push_back(time_h * kHour);
  Record(&r, 0);
  for (long call = 1; call <= ncalls; ++call) {
    for (long k = 0; k < iprint; ++k) {
      time_h += tstep_h_;
      while (time_h > tstop_ + kTimeTolH) Update(time_h);
      Step();
      ++steps_;
      if (flow_changed_) {
        old_ = new_;  // OTIS SAVEN: the new level becomes the old one
        Prepare();
        flow_changed_ = false;
        for (int i = 0; i < n; ++i) {
          max_courant = std::max(
              max_courant, old_.flow.q[i] * tstep_h_ * kHour / (old_.flow.area[i] * g_.dx[i]));
        }
      }
    }
    r.times_s.push_back(time_h * kHour);
    Record(&r, static_cast<int>(call));
  }
  r.summary.num_steps = static_cast<int>(steps_);
  r.summary.max_courant_requested = max_courant;
  r.summary.wall_time_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

}  // namespace

transport::TransportResult RunOtisScheme(const OtisDeck& deck) { return OtisRun(deck).Run(); }

}  // namespace qingshui
