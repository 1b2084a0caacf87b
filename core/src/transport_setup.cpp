// Transport engine, set-up and bookkeeping: problem validation, topology (runs of chain
// cells), hydraulics of a flow state, the initial state, boundary values, reactions (the
// matrix exponential), re-basing the state when volumes change, results and the work
// items' member blocks. The method is in docs/methods.md; the engine's layout in
// transport_engine.h.
#include "transport_engine.h"

#include <sstream>

namespace qingshui::transport::engine {

namespace {

// Matrix exponential by scaling and squaring with a Taylor series; the reaction matrix is
// small (species x species) and this runs once per step.
Eigen::MatrixXd Expm(const Eigen::MatrixXd& M) {
  double norm = M.cwiseAbs().rowwise().sum().maxCoeff();
  int squarings = 0;
  if (norm > 0.5) squarings = static_cast<int>(std::ceil(std::log2(norm / 0.5)));
  Eigen::MatrixXd X = M / std::ldexp(1.0, squarings);
  Eigen::MatrixXd result = Eigen::MatrixXd::Identity(M.rows(), M.cols());
  Eigen::MatrixXd term = result;
  for (int k = 1; k <= 16; ++k) {
    term = term * X / k;
    result += term;
  }
  for (int k = 0; k < squarings; ++k) result = result * result;
  return result;
}

}  // namespace

void Engine::Validate() {
  auto fail = [](const std::string& what) { throw ConfigError("transport problem: " + what); };
  // NaN compares false with everything: every number is checked to be finite explicitly,
  // naming the first offending index.
  auto check_values = [&](const std::vector<double>& v, const std::string& what, bool nonneg) {
    for (size_t j = 0; j < v.size(); ++j) {
      if (!std::isfinite(v[j]) || (nonneg && v[j] < 0)) {
        fail(what + "[" + std::to_string(j) + "] must be a finite number" +
             (nonneg ? " >= 0" : "") + " (found " + std::to_string(v[j]) + ")");
      }
    }
  };
  if (S_ < 1) fail("num_species must be >= 1");
  if (N_ < 1) fail("no segments");
  if (M_ < 1) fail("no members (give one Forcing)");
  for (int i = 0; i < N_; ++i) {
    const Segment& g = p_.segments[i];
    std::string at = "segment " + std::to_string(i) + ": ";
    if (g.downstream != -1 && (g.downstream <= i || g.downstream >= N_)) {
      fail(at + "downstream index must be larger than its own (upstream-first numbering) or -1");
    }
    if (!(g.length_m > 0.0) || !std::isfinite(g.length_m)) fail(at + "length_m must be finite and > 0");
    if (!(g.dispersion_m2s >= 0) || !(g.storage_area_m2 >= 0) || !(g.exchange_per_s >= 0) ||
        !std::isfinite(g.dispersion_m2s) || !std::isfinite(g.storage_area_m2) ||
        !std::isfinite(g.exchange_per_s)) {
      fail(at + "dispersion, storage area and exchange rate must be finite and >= 0");
    }
    check_values(g.decay_per_s, at + "decay_per_s", true);
    check_values(g.storage_decay_per_s, at + "storage_decay_per_s", true);
    if (g.exchange_per_s > 0 && !(g.storage_area_m2 > 0)) {
      fail(at + "exchange_per_s > 0 needs storage_area_m2 > 0");
    }
    auto check_size = [&](size_t n, const char* name) {
      if (n != 0 && n != static_cast<size_t>(S_)) fail(at + name + " must have num_species entries");
    };
    check_size(g.decay_per_s.size(), "decay_per_s");
    check_size(g.storage_decay_per_s.size(), "storage_decay_per_s");
    check_size(g.sorption.size(), "sorption");
    check_size(g.removal_fraction.size(), "removal_fraction");
    if (!g.removal_fraction.empty() && !g.well_mixed) {
      fail(at + "removal_fraction is for well-mixed (treatment) nodes only");
    }
    for (double f : g.removal_fraction) {
      if (!(f >= 0.0 && f < 1.0)) fail(at + "removal_fraction must be in [0, 1)");
    }
    for (const Sorption& so : g.sorption) {
      check_values({so.main_rate_per_s, so.storage_rate_per_s, so.sediment_kg_per_m3,
                    so.kd_m3_per_kg, so.storage_background_g_m3},
                   at + "sorption parameters", true);
      if (so.storage_rate_per_s > 0 && !(g.storage_area_m2 > 0)) {
        fail(at + "storage-zone sorption needs storage_area_m2 > 0");
      }
    }
  }
  if (p_.flow.states.empty() || p_.flow.times_s.size() != p_.flow.states.size()) {
    fail("flow field needs at least one state and one time per state");
  }
  for (size_t k = 0; k < p_.flow.states.size(); ++k) {
    const FlowState& f = p_.flow.states[k];
    std::string at = "flow state " + std::to_string(k) + ": ";
    if (k > 0 && !(p_.flow.times_s[k] > p_.flow.times_s[k - 1])) fail(at + "times must increase");
    auto n = static_cast<size_t>(N_);
    if (f.flow_m3s.size() != n || f.area_m2.size() != n) fail(at + "flow_m3s and area_m2 need one value per segment");
    for (const auto* v : {&f.lateral_inflow_m2s, &f.lateral_outflow_m2s, &f.headwater_inflow_m3s}) {
      if (!v->empty() && v->size() != n) fail(at + "lateral and headwater vectors need one value per segment (or none)");
    }
    if (!f.lateral_concentration_g_m3.empty() && f.lateral_concentration_g_m3.size() != n * S_) {
      fail(at + "lateral_concentration_g_m3 needs segments x species values");
    }
    if (!std::isfinite(p_.flow.times_s[k])) fail(at + "time must be finite");
    check_values(f.flow_m3s, at + "flow_m3s", true);
    check_values(f.area_m2, at + "area_m2", true);
    check_values(f.lateral_inflow_m2s, at + "lateral_inflow_m2s", true);
    check_values(f.lateral_outflow_m2s, at + "lateral_outflow_m2s", true);
    check_values(f.headwater_inflow_m3s, at + "headwater_inflow_m3s", true);
    check_values(f.lateral_concentration_g_m3, at + "lateral_concentration_g_m3", true);
  }
  check_values(p_.theta, "theta", true);
  check_values(p_.reaction_matrix_per_s, "reaction_matrix_per_s", false);
  if (!p_.theta.empty() && p_.theta.size() != static_cast<size_t>(S_)) fail("theta needs num_species values");
  if (!p_.reaction_matrix_per_s.empty() &&
      p_.reaction_matrix_per_s.size() != static_cast<size_t>(S_) * S_) {
    fail("reaction_matrix_per_s needs num_species^2 values");
  }
  std::string err;
  if (!p_.temperature_c.IsValid(&err)) fail("temperature_c: " + err);
  if (!opt_.steady_state) {
    if (!(p_.time_step_s > 0.0) || !std::isfinite(p_.time_step_s)) fail("time_step_s must be finite and > 0");
    if (!std::isfinite(p_.start_time_s) || !std::isfinite(p_.end_time_s)) fail("start and end times must be finite");
    if (!(p_.end_time_s >= p_.start_time_s)) fail("end_time_s must be >= start_time_s");
  }
  for (size_t k = 0; k < p_.output_times_s.size(); ++k) {
    double t = p_.output_times_s[k];
    if (t < p_.start_time_s - 1e-9 || t > p_.end_time_s + 1e-9 ||
        (k > 0 && !(t > p_.output_times_s[k - 1]))) {
      fail("output_times_s must increase and lie within [start, end]");
    }
  }
  for (const Station& st : p_.stations) {
    if (st.segment < 0 || st.segment >= N_ || st.next_segment >= N_ ||
        (st.next_segment < 0 && st.weight != 0.0)) {
      fail("station refers to an unknown segment");
    }
    if (!(st.weight >= 0.0 && st.weight <= 1.0)) fail("station weight must be in [0, 1]");
  }
  // Boundaries: same segments and kinds in every member.
  const auto& b0 = p_.members[0].boundaries;
  for (size_t mi = 0; mi < p_.members.size(); ++mi) {
    const Forcing& fo = p_.members[mi];
    std::string at = "member " + std::to_string(mi) + ": ";
    if (fo.boundaries.size() != b0.size()) fail(at + "boundaries differ from member 0");
    for (size_t k = 0; k < fo.boundaries.size(); ++k) {
      const UpstreamBoundary& b = fo.boundaries[k];
      if (b.segment != b0[k].segment || b.kind != b0[k].kind) fail(at + "boundaries differ from member 0");
      if (b.segment < 0 || b.segment >= N_) fail(at + "boundary on unknown segment");
      if (b.series.size() != static_cast<size_t>(S_)) fail(at + "boundary needs one series per species");
      for (const auto& s : b.series) {
        if (!s.IsValid(&err)) fail(at + "boundary series: " + err);
      }
    }
    for (const PointLoad& l : fo.loads) {
      if (l.segment < 0 || l.segment >= N_ || l.species < 0 || l.species >= S_) {
        fail(at + "point load on unknown segment or species");
      }
      if (!l.load_g_s.IsValid(&err)) fail(at + "point load series: " + err);
    }
    auto n = static_cast<size_t>(N_) * S_;
    for (const auto* v : {&fo.initial_concentration_g_m3, &fo.initial_storage_g_m3, &fo.initial_sorbed_g_kg}) {
      if (!v->empty() && v->size() != n) fail(at + "initial values need segments x species entries");
    }
    check_values(fo.initial_concentration_g_m3, at + "initial_concentration_g_m3", false);
    check_values(fo.initial_storage_g_m3, at + "initial_storage_g_m3", false);
    check_values(fo.initial_sorbed_g_kg, at + "initial_sorbed_g_kg", false);
  }
}

void Engine::BuildTopology() {
  down_.resize(N_);
  dx_.resize(N_);
  std::vector<int> count(N_ + 1, 0);
  for (int i = 0; i < N_; ++i) {
    down_[i] = p_.segments[i].downstream;
    dx_[i] = p_.segments[i].length_m;
    if (down_[i] >= 0) count[down_[i] + 1]++;
  }
  up_start_.assign(N_ + 1, 0);
  for (int i = 0; i < N_; ++i) up_start_[i + 1] = up_start_[i] + count[i + 1];
  up_list_.resize(up_start_[N_]);
  std::vector<int> fill(up_start_.begin(), up_start_.end() - 1);
  for (int i = 0; i < N_; ++i) {
    if (down_[i] >= 0) up_list_[fill[down_[i]]++] = i;
  }
  h_up_.resize(N_);
  h_down_.resize(N_);
  for (int i = 0; i < N_; ++i) {
    int n_up = up_start_[i + 1] - up_start_[i];
    if (n_up == 0) {
      h_up_[i] = 0.5 * dx_[i];  // the boundary value sits on the upstream face
    } else {
      double mean = 0.0;
      for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) mean += dx_[up_list_[k]];
      h_up_[i] = 0.5 * dx_[i] + 0.5 * mean / n_up;
    }
    h_down_[i] = down_[i] >= 0 ? 0.5 * (dx_[i] + dx_[down_[i]]) : 0.5 * dx_[i];
  }
  bkind_.assign(N_, -1);
  bindex_.assign(N_, -1);
  const auto& b0 = p_.members[0].boundaries;
  for (size_t k = 0; k < b0.size(); ++k) {
    int i = b0[k].segment;
    if (up_start_[i + 1] != up_start_[i]) {
      throw ConfigError("transport problem: boundary on segment " + std::to_string(i) +
                        ", which is not a headwater (segments flow into it)");
    }
    if (bindex_[i] >= 0) {
      throw ConfigError("transport problem: two boundaries on segment " + std::to_string(i));
    }
    bindex_[i] = static_cast<int>(k);
    bkind_[i] = b0[k].kind == UpstreamBoundary::Kind::kConcentration ? 0
                : b0[k].kind == UpstreamBoundary::Kind::kMassFlux    ? 1
                                                                     : 2;
  }
  has_reactions_ = false;
  for (double k : p_.reaction_matrix_per_s) has_reactions_ = has_reactions_ || k != 0.0;
  load_switches_.clear();
  linear_loads_ = false;
  for (const Forcing& f : p_.members) {
    for (const PointLoad& l : f.loads) {
      const TimeSeries& w = l.load_g_s;
      if (w.times_s.size() < 2) continue;
      if (w.interpolation == TimeSeries::Interpolation::kLinear) linear_loads_ = true;
      for (size_t k = 1; k < w.times_s.size(); ++k) {
        if (w.values[k] != w.values[k - 1]) load_switches_.push_back(w.times_s[k]);
      }
    }
  }
  std::sort(load_switches_.begin(), load_switches_.end());
  load_switches_.erase(std::unique(load_switches_.begin(), load_switches_.end()),
                       load_switches_.end());
  // Runs of chain cells (one upstream neighbour i - 1, draining to i + 1) and single
  // generic cells, in the upstream-first order.
  pieces_.clear();
  outlets_.clear();
  for (int i = 0; i < N_; ++i) {
    if (down_[i] < 0) outlets_.push_back(i);
    const bool chain = up_start_[i + 1] - up_start_[i] == 1 && up_list_[up_start_[i]] == i - 1 &&
                       down_[i] == i + 1;
    if (chain && !pieces_.empty() && pieces_.back().run && pieces_.back().b == i) {
      pieces_.back().b = i + 1;
    } else {
      pieces_.push_back(Piece{i, i + 1, chain});
    }
  }
  piece_of_.assign(N_, 0);
  for (size_t p = 0; p < pieces_.size(); ++p) {
    for (int i = pieces_[p].a; i < pieces_[p].b; ++i) piece_of_[i] = static_cast<int>(p);
  }
}

FlowState Engine::FlowAt(double t) const {
  const FlowField& f = p_.flow;
  if (f.states.size() == 1 || t <= f.times_s.front()) return f.states.front();
  if (t >= f.times_s.back()) return f.states.back();
  size_t k = std::upper_bound(f.times_s.begin(), f.times_s.end(), t) - f.times_s.begin() - 1;
  double w = (t - f.times_s[k]) / (f.times_s[k + 1] - f.times_s[k]);
  const FlowState& a = f.states[k];
  const FlowState& b = f.states[k + 1];
  auto mix = [w](const std::vector<double>& x, const std::vector<double>& y) {
    if (x.empty() && y.empty()) return std::vector<double>();
    size_t n = std::max(x.size(), y.size());
    std::vector<double> out(n);
    for (size_t i = 0; i < n; ++i) {
      double xv = x.empty() ? 0.0 : x[i], yv = y.empty() ? 0.0 : y[i];
      out[i] = (1 - w) * xv + w * yv;
    }
    return out;
  };
  FlowState out;
  out.flow_m3s = mix(a.flow_m3s, b.flow_m3s);
  out.area_m2 = mix(a.area_m2, b.area_m2);
  out.lateral_inflow_m2s = mix(a.lateral_inflow_m2s, b.lateral_inflow_m2s);
  out.lateral_outflow_m2s = mix(a.lateral_outflow_m2s, b.lateral_outflow_m2s);
  out.headwater_inflow_m3s = mix(a.headwater_inflow_m3s, b.headwater_inflow_m3s);
  out.lateral_concentration_g_m3 = mix(a.lateral_concentration_g_m3, b.lateral_concentration_g_m3);
  return out;
}

void Engine::ComputeHydraulics(const FlowState& f, Hydraulics* h) const {
  h->Q.resize(N_); h->A.resize(N_); h->V.resize(N_); h->Qb.assign(N_, 0.0);
  h->Qin.assign(N_, 0.0); h->qin_dx.resize(N_); h->qout_dx.resize(N_); h->K.assign(N_, 0.0);
  h->Kb.assign(N_, 0.0);
  h->CL.assign(static_cast<size_t>(N_) * S_, 0.0);
  for (int i = 0; i < N_; ++i) {
    double Q = f.flow_m3s[i], A = f.area_m2[i];
    double qin = f.lateral_inflow_m2s.empty() ? 0.0 : f.lateral_inflow_m2s[i];
    double qout = f.lateral_outflow_m2s.empty() ? 0.0 : f.lateral_outflow_m2s[i];
    double qb = f.headwater_inflow_m3s.empty() ? 0.0 : f.headwater_inflow_m3s[i];
    if (!(Q >= 0) || !(A >= 0) || !(qin >= 0) || !(qout >= 0) || !(qb >= 0)) {
      throw DataError("flow field: segment " + std::to_string(i) +
                      ": flow, area and lateral flows must be finite and >= 0");
    }
    if (qb > 0 && up_start_[i + 1] != up_start_[i]) {
      throw DataError("flow field: segment " + std::to_string(i) +
                      ": headwater inflow on a segment that has upstream segments");
    }
    h->Q[i] = Q; h->A[i] = A; h->V[i] = A * dx_[i]; h->Qb[i] = qb;
    h->qin_dx[i] = qin * dx_[i]; h->qout_dx[i] = qout * dx_[i];
  }
  for (int i = 0; i < N_; ++i) {
    h->Qin[i] += h->Qb[i];
    if (down_[i] >= 0) h->Qin[down_[i]] += h->Q[i];
  }
  for (int i = 0; i < N_; ++i) {
    if (h->V[i] <= 0.0 && (h->Q[i] > 0.0 || h->Qin[i] > 0.0 || h->qin_dx[i] > 0.0)) {
      throw DataError("flow field: segment " + std::to_string(i) +
                      ": water flows through a segment of zero area");
    }
    const Segment& g = p_.segments[i];
    // Dispersive conductance A D / distance of the face, harmonic in the two half cells so
    // the dispersive flux is continuous across a change of A D (and zero next to a lake).
    auto half = [&](int j) {
      const Segment& gj = p_.segments[j];
      double ad = h->A[j] * gj.dispersion_m2s;
      return (gj.well_mixed || ad <= 0.0) ? std::numeric_limits<double>::infinity()
                                          : 0.5 * dx_[j] / ad;
    };
    if (down_[i] >= 0) {
      double r = half(i) + half(down_[i]);
      h->K[i] = std::isfinite(r) ? 1.0 / r : 0.0;
    }
    if (bkind_[i] == 0 || (bkind_[i] == 2 && h->Qb[i] > 0) ||
        (bkind_[i] < 0 && up_start_[i + 1] == up_start_[i] && h->Qb[i] > 0)) {
      // A concentration boundary (an OTIS flux boundary, an unspecified clean headwater
      // inflow) fixes C on the upstream face: dispersive flux A D (C_b - C) / (dx / 2).
      double r = half(i);
      h->Kb[i] = std::isfinite(r) ? 1.0 / r : 0.0;
    }
    (void)g;
  }
  if (!f.lateral_concentration_g_m3.empty()) h->CL = f.lateral_concentration_g_m3;
}

double Engine::Mass(int s, const std::vector<double>& V) const {
  double total = 0.0;
  for (int i = 0; i < N_; ++i) {
    const Segment& g = p_.segments[i];
    Sorption so = Sorb(i, s);
    double vs = g.storage_area_m2 * dx_[i];
    for (int m = 0; m < M_; ++m) {
      size_t k = Idx(s, i, m);
      total += V[i] * C_[k] + vs * Cs_[k] + so.sediment_kg_per_m3 * V[i] * Cb_[k];
    }
  }
  return total;
}

void Engine::Initialize(const Hydraulics& h0) {
  size_t n = static_cast<size_t>(S_) * N_ * M_;
  C_.assign(n, 0.0); Cs_.assign(n, 0.0); Cb_.assign(n, 0.0);
  for (int m = 0; m < M_; ++m) {
    const Forcing& fo = p_.members[m];
    for (int i = 0; i < N_; ++i) {
      const Segment& g = p_.segments[i];
      double a = g.storage_area_m2 > 0 ? g.exchange_per_s * h0.A[i] / g.storage_area_m2 : 0.0;
      for (int s = 0; s < S_; ++s) {
        size_t k = Idx(s, i, m), f = static_cast<size_t>(i) * S_ + s;
        double c = fo.initial_concentration_g_m3.empty() ? 0.0 : fo.initial_concentration_g_m3[f];
        C_[k] = c;
        Sorption so = Sorb(i, s);
        if (!fo.initial_storage_g_m3.empty()) {
          Cs_[k] = fo.initial_storage_g_m3[f];
        } else {
          // Storage-zone steady state for the initial main-channel value (OTIS starts so).
          double den = a + StorageDecay(i, s) + so.storage_rate_per_s;
          Cs_[k] = den > 0 ? (a * c + so.storage_rate_per_s * so.storage_background_g_m3) / den : 0.0;
        }
        Cb_[k] = fo.initial_sorbed_g_kg.empty() ? so.kd_m3_per_kg * c : fo.initial_sorbed_g_kg[f];
      }
    }
  }
}

int Engine::AdvectionSubsteps(const Hydraulics& h, double tau) const {
  double nu = 0.0;
  int worst = -1;
  for (int i = 0; i < N_; ++i) {
    if (h.V[i] <= 0) continue;
    double c = std::max(h.Q[i], h.Qin[i]) * tau / h.V[i];
    if (c > nu) {
      nu = c;
      worst = i;
    }
  }
  // In floating point first: a nearly dry segment can ask for more than INT_MAX.
  // The SSP Runge-Kutta advection's stages are forward-Euler steps, positive up to 0.5.
  const double bound = opt_.advection == TransportOptions::Advection::kSspRk2
                           ? std::min(opt_.max_courant, 0.5)
                           : opt_.max_courant;
  const double n = std::max(1.0, std::ceil(nu / bound - 1e-12));
  if (!(n <= opt_.max_substeps)) {
    std::ostringstream msg;
    msg << "transport: advection needs " << n << " sub-steps in one half step (max_substeps "
        << opt_.max_substeps << "); segment " << worst << " is nearly dry (volume "
        << h.V[worst] << " m3, inflow " << h.Qin[worst] << " m3/s, outflow " << h.Q[worst]
        << " m3/s)";
    throw SolverError(msg.str());
  }
  return static_cast<int>(n);
}

// Boundary inflow concentration (per headwater segment x member) averaged over [ta, tb],
// and mass-flux boundaries on headwaters with no inflow, which enter as loads.
void Engine::BoundaryValues(const Hydraulics& h, int s, int m0, int m1, double ta, double tb,
                            std::vector<double>* cb, std::vector<double>* w_flux) const {
  int mb = m1 - m0;
  cb->assign(static_cast<size_t>(N_) * mb, 0.0);
  if (w_flux) w_flux->assign(static_cast<size_t>(N_) * mb, 0.0);
  for (int i = 0; i < N_; ++i) {
    if (bindex_[i] < 0) continue;
    for (int m = m0; m < m1; ++m) {
      double v = p_.members[m].boundaries[bindex_[i]].series[s].Average(ta, tb);
      size_t k = static_cast<size_t>(i) * mb + (m - m0);
      if (bkind_[i] == 0) {
        (*cb)[k] = v;
      } else if (h.Qb[i] > 0) {
        (*cb)[k] = v / h.Qb[i];
      } else if (w_flux) {
        (*w_flux)[k] = v;
      }
    }
  }
}

void Engine::React(const Hydraulics& h, double tau, double t_mid, std::vector<Budget>* budgets) {
  Eigen::MatrixXd K(S_, S_);
  for (int a = 0; a < S_; ++a) {
    for (int b = 0; b < S_; ++b) {
      K(a, b) = p_.reaction_matrix_per_s[static_cast<size_t>(a) * S_ + b] * TemperatureFactor(b, t_mid);
    }
  }
  Eigen::MatrixXd E = Expm(K * tau);
  std::vector<double> before(S_), after(S_), sb(S_), sa(S_);
  for (int i = 0; i < N_; ++i) {
    if (h.V[i] <= 0) continue;
    double vs = p_.segments[i].storage_area_m2 * dx_[i];
    for (int m = 0; m < M_; ++m) {
      for (int s = 0; s < S_; ++s) { before[s] = C_[Idx(s, i, m)]; sb[s] = Cs_[Idx(s, i, m)]; }
      for (int a = 0; a < S_; ++a) {
        double x = 0, y = 0;
        for (int b = 0; b < S_; ++b) { x += E(a, b) * before[b]; y += E(a, b) * sb[b]; }
        after[a] = x; sa[a] = y;
      }
      for (int s = 0; s < S_; ++s) {
        C_[Idx(s, i, m)] = after[s];
        if (vs > 0) Cs_[Idx(s, i, m)] = sa[s];
        (*budgets)[s].reaction += h.V[i] * (after[s] - before[s]) + (vs > 0 ? vs * (sa[s] - sb[s]) : 0.0);
      }
    }
  }
}

// Areas change between steps at fixed concentration (the OTIS non-conservative form);
// the mass that this adds or removes is booked as flow closure.
void Engine::Rebase(const std::vector<double>& v_old, const std::vector<double>& v_new,
                    std::vector<Budget>* budgets) {
  for (int s = 0; s < S_; ++s) {
    double dm = 0;
    for (int i = 0; i < N_; ++i) {
      double dv = v_new[i] - v_old[i];
      if (dv == 0) continue;
      double rho = Sorb(i, s).sediment_kg_per_m3;
      for (int m = 0; m < M_; ++m) dm += dv * (C_[Idx(s, i, m)] + rho * Cb_[Idx(s, i, m)]);
    }
    (*budgets)[s].closure -= dm;
  }
}

void Engine::Record(int t, TransportResult* r) const {
  for (int s = 0; s < S_; ++s) RecordRange(s, 0, M_, t, r);
}

// Stores species s of members [m0, m1) at output t (work items record their own part).
void Engine::RecordRange(int s, int m0, int m1, int t, TransportResult* r) const {
  int ns = r->num_stations;
  for (int m = m0; m < m1; ++m) {
    if (opt_.store_fields) {
      for (int i = 0; i < N_; ++i) {
        {
          size_t o = r->Index(m, t, i, N_, s), k = Idx(s, i, m);
          r->concentration_g_m3[o] = C_[k];
          r->storage_g_m3[o] = Cs_[k];
          r->sorbed_g_kg[o] = Cb_[k];
        }
      }
    }
    for (int q = 0; q < ns; ++q) {
      const Station& st = p_.stations[q];
      {
        size_t o = r->Index(m, t, q, ns, s), a = Idx(s, st.segment, m);
        double w = st.weight;
        double c = C_[a], cs = Cs_[a], cb = Cb_[a];
        if (st.next_segment >= 0 && w != 0.0) {
          size_t b = Idx(s, st.next_segment, m);
          c = (1 - w) * c + w * C_[b];
          // A storage zone (or sorbing bed) that exists on one side only is not interpolated
          // into the other: the nearer segment's value (the upstream one half way).
          const Segment &ga = p_.segments[st.segment], &gb = p_.segments[st.next_segment];
          const bool sa = ga.storage_area_m2 > 0 && ga.exchange_per_s > 0;
          const bool sb = gb.storage_area_m2 > 0 && gb.exchange_per_s > 0;
          if (sa == sb) {
            cs = (1 - w) * cs + w * Cs_[b];
          } else if (w > 0.5) {
            cs = Cs_[b];
          }
          if (ga.sorption.empty() == gb.sorption.empty()) {
            cb = (1 - w) * cb + w * Cb_[b];
          } else if (w > 0.5) {
            cb = Cb_[b];
          }
        }
        r->station_concentration_g_m3[o] = c;
        r->station_storage_g_m3[o] = cs;
        r->station_sorbed_g_kg[o] = cb;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------
// Time stepping. Everything below runs once per step or sub-step; it allocates nothing
// (scratch lives in the work items) and, while the flow field is steady, recomputes no
// coefficient and no factorization (they are cached by step length, temperature factor
// and hydraulic version).

void Engine::SetBlocks(const std::vector<int>& bounds) {
  member_base_.resize(M_);
  member_stride_.resize(M_);
  for (size_t b = 0; b + 1 < bounds.size(); ++b) {
    const int m0 = bounds[b], m1 = bounds[b + 1];
    for (int m = m0; m < m1; ++m) {
      member_base_[m] = static_cast<size_t>(N_) * m0 + (m - m0);
      member_stride_[m] = m1 - m0;
    }
  }
}

void Engine::OnHydraulics() {
  ++hver_;
  inflow_cells_.clear();
  kb_cells_.clear();
  flux_cells_.clear();
  inflow_index_.assign(N_, -1);
  kb_index_.assign(N_, -1);
  for (int i = 0; i < N_; ++i) {
    if (h_.Qb[i] > 0) {
      inflow_index_[i] = static_cast<int>(inflow_cells_.size());
      inflow_cells_.push_back(i);
    }
    if (h_.Kb[i] > 0) {
      kb_index_[i] = static_cast<int>(kb_cells_.size());
      kb_cells_.push_back(i);
    }
    if (bkind_[i] >= 1 && h_.Qb[i] <= 0 && h_.V[i] > 0) flux_cells_.push_back(i);
  }
}

}  // namespace qingshui::transport::engine
