// Transport engine. The method (finite volumes, Strang splitting of an explicit limited
// Lax-Wendroff advection step and a positivity-preserving Crank-Nicolson step for
// everything else, the storage zone eliminated per segment so the implicit system stays
// tree-tridiagonal) and the reasons for it are in docs/methods.md.
#include "qingshui/core/transport.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <sstream>

#include <Eigen/Dense>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "qingshui/core/error.h"

namespace qingshui::transport {

// ---------------------------------------------------------------------------------------
// TimeSeries

TimeSeries TimeSeries::Constant(double value) {
  TimeSeries s;
  s.times_s = {0.0};
  s.values = {value};
  s.interpolation = Interpolation::kStep;
  return s;
}

double TimeSeries::At(double t) const {
  if (values.empty()) return 0.0;
  if (t <= times_s.front()) return values.front();
  if (t >= times_s.back()) return values.back();
  size_t k = std::upper_bound(times_s.begin(), times_s.end(), t) - times_s.begin() - 1;
  if (interpolation == Interpolation::kStep) return values[k];
  double w = (t - times_s[k]) / (times_s[k + 1] - times_s[k]);
  return values[k] + w * (values[k + 1] - values[k]);
}

namespace {

// Integral of a series from -infinity-free origin: integral over [a, b] on one piece.
double PieceIntegral(const TimeSeries& s, size_t k, double a, double b) {
  // Piece k spans [times[k], times[k+1]] (k+1 may not exist: constant tail).
  if (s.interpolation == TimeSeries::Interpolation::kStep || k + 1 >= s.times_s.size()) {
    return s.values[k] * (b - a);
  }
  double t0 = s.times_s[k], t1 = s.times_s[k + 1];
  double slope = (s.values[k + 1] - s.values[k]) / (t1 - t0);
  double va = s.values[k] + slope * (a - t0), vb = s.values[k] + slope * (b - t0);
  return 0.5 * (va + vb) * (b - a);
}

}  // namespace

double TimeSeries::Average(double t0, double t1) const {
  if (values.empty()) return 0.0;
  if (!(t1 > t0)) return At(t0);
  double total = 0.0;
  double a = t0;
  // Head before the first time: constant first value.
  if (a < times_s.front()) {
    double b = std::min(t1, times_s.front());
    total += values.front() * (b - a);
    a = b;
  }
  if (a < t1) {
    size_t k = std::upper_bound(times_s.begin(), times_s.end(), a) - times_s.begin() - 1;
    while (a < t1) {
      double end = (k + 1 < times_s.size()) ? std::min(t1, times_s[k + 1]) : t1;
      total += PieceIntegral(*this, k, a, end);
      a = end;
      ++k;
    }
  }
  return total / (t1 - t0);
}

bool TimeSeries::IsValid(std::string* error) const {
  if (times_s.size() != values.size()) {
    *error = "times and values differ in length";
    return false;
  }
  for (size_t k = 0; k < values.size(); ++k) {
    if (!std::isfinite(times_s[k]) || !std::isfinite(values[k])) {
      *error = "non-finite time or value at point " + std::to_string(k);
      return false;
    }
    if (k > 0 && !(times_s[k] > times_s[k - 1])) {
      *error = "times must increase strictly (point " + std::to_string(k) + ")";
      return false;
    }
  }
  return true;
}

bool TransportOptions::IsValid(std::string* error) const {
  if (!(max_courant > 0.0 && max_courant <= 1.0)) {
    *error = "max_courant must be in (0, 1]";
    return false;
  }
  if (max_substeps < 1) {
    *error = "max_substeps must be >= 1";
    return false;
  }
  if (num_threads < 0) {
    *error = "num_threads must be >= 0";
    return false;
  }
  if (!(steady_tolerance > 0.0) || max_steady_iterations < 1) {
    *error = "steady_tolerance must be > 0 and max_steady_iterations >= 1";
    return false;
  }
  return true;
}

std::string TransportSummary::BriefReport() const {
  std::ostringstream out;
  out << "transport: " << num_steps << " steps";
  if (steady_iterations > 0) out << " (steady state, " << steady_iterations << " iterations)";
  out << ", advection sub-steps " << advection_substeps << " (max " << max_advection_substeps
      << " per half step), implicit sub-steps " << implicit_substeps << " (max "
      << max_implicit_substeps << " per step), Courant at user step " << max_courant_requested
      << ", max relative mass-balance error " << max_relative_mass_error << ", "
      << wall_time_s << " s";
  return out.str();
}

TransportSolver::TransportSolver(const TransportOptions& options) : options_(options) {
  std::string error;
  if (!options_.IsValid(&error)) throw ConfigError("TransportOptions: " + error);
}

namespace {

using Interp = TimeSeries::Interpolation;

// Mass-budget terms accumulated by one work item (one species, a block of members).
struct Budget {
  double boundary = 0, lateral = 0, load = 0, outlet = 0, closure = 0, decay_main = 0,
         decay_storage = 0, background = 0, reaction = 0;
  void Add(const Budget& o) {
    boundary += o.boundary; lateral += o.lateral; load += o.load; outlet += o.outlet;
    closure += o.closure; decay_main += o.decay_main; decay_storage += o.decay_storage;
    background += o.background; reaction += o.reaction;
  }
};

// Hydraulic quantities frozen over one step (evaluated at its midpoint: second order).
struct Hydraulics {
  std::vector<double> Q, A, V, Qb, Qin, qin_dx, qout_dx, K, Kb, CL;
};

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

class Engine {
 public:
  Engine(const TransportOptions& options, const TransportProblem& p)
      : opt_(options), p_(p), N_(static_cast<int>(p.segments.size())), S_(p.num_species),
        M_(static_cast<int>(p.members.size())) {}

  TransportResult Run();

 private:
  void Validate();
  void BuildTopology();
  FlowState FlowAt(double t) const;
  void ComputeHydraulics(const FlowState& f, Hydraulics* h) const;
  double TemperatureFactor(int s, double t) const {
    if (p_.theta.empty()) return 1.0;
    double T = p_.temperature_c.values.empty() ? 20.0 : p_.temperature_c.At(t);
    return std::pow(p_.theta[s], T - 20.0);
  }
  size_t Idx(int s, int i, int m) const { return (static_cast<size_t>(s) * N_ + i) * M_ + m; }

  void Initialize(const Hydraulics& h0);
  void AdvectHalf(const Hydraulics& h, int s, int m0, int m1, double ta, double tb, int nsub,
                  Budget* b);
  void Implicit(const Hydraulics& h, int s, int m0, int m1, double ta, double tb, int nsub,
                double temperature_factor, Budget* b);
  void React(const Hydraulics& h, double tau, double t_mid, std::vector<Budget>* budgets);
  void Rebase(const std::vector<double>& v_old, const std::vector<double>& v_new,
              std::vector<Budget>* budgets);
  double Mass(int s, const std::vector<double>& V) const;
  int AdvectionSubsteps(const Hydraulics& h, double tau) const;
  int ImplicitSubsteps(const Hydraulics& h, double tau, double t_mid) const;
  void BoundaryValues(const Hydraulics& h, int s, int m0, int m1, double ta, double tb,
                      std::vector<double>* cb, std::vector<double>* w_flux) const;
  void Record(int time_index, TransportResult* r) const;
  void SolveSteady(TransportResult* r);
  double Decay(int i, int s) const {
    const auto& d = p_.segments[i].decay_per_s;
    return d.empty() ? 0.0 : d[s];
  }
  double StorageDecay(int i, int s) const {
    const auto& d = p_.segments[i].storage_decay_per_s;
    return d.empty() ? 0.0 : d[s];
  }
  Sorption Sorb(int i, int s) const {
    const auto& d = p_.segments[i].sorption;
    return d.empty() ? Sorption{} : d[s];
  }

  const TransportOptions& opt_;
  const TransportProblem& p_;
  int N_, S_, M_;
  // Topology (CSR list of upstream segments), headwater boundaries.
  std::vector<int> up_start_, up_list_, down_;
  std::vector<double> dx_, h_up_, h_down_;
  std::vector<int> bkind_;  // per segment: -1 none/not headwater, 0 conc, 1 mass flux
  std::vector<int> bindex_;  // per segment: index in member.boundaries, -1 = none
  bool has_reactions_ = false;
  // State: [species][segment][member].
  std::vector<double> C_, Cs_, Cb_;
  std::vector<Budget> budget_;  // per species
};

void Engine::Validate() {
  auto fail = [](const std::string& what) { throw ConfigError("transport problem: " + what); };
  if (S_ < 1) fail("num_species must be >= 1");
  if (N_ < 1) fail("no segments");
  if (M_ < 1) fail("no members (give one Forcing)");
  for (int i = 0; i < N_; ++i) {
    const Segment& g = p_.segments[i];
    std::string at = "segment " + std::to_string(i) + ": ";
    if (g.downstream != -1 && (g.downstream <= i || g.downstream >= N_)) {
      fail(at + "downstream index must be larger than its own (upstream-first numbering) or -1");
    }
    if (!(g.length_m > 0.0)) fail(at + "length_m must be > 0");
    if (g.dispersion_m2s < 0 || g.storage_area_m2 < 0 || g.exchange_per_s < 0) {
      fail(at + "dispersion, storage area and exchange rate must be >= 0");
    }
    if (g.exchange_per_s > 0 && !(g.storage_area_m2 > 0)) {
      fail(at + "exchange_per_s > 0 needs storage_area_m2 > 0");
    }
    auto check_size = [&](size_t n, const char* name) {
      if (n != 0 && n != static_cast<size_t>(S_)) fail(at + name + " must have num_species entries");
    };
    check_size(g.decay_per_s.size(), "decay_per_s");
    check_size(g.storage_decay_per_s.size(), "storage_decay_per_s");
    check_size(g.sorption.size(), "sorption");
    for (const Sorption& so : g.sorption) {
      if (so.main_rate_per_s < 0 || so.storage_rate_per_s < 0 || so.sediment_kg_per_m3 < 0 ||
          so.kd_m3_per_kg < 0 || so.storage_background_g_m3 < 0) {
        fail(at + "sorption parameters must be >= 0");
      }
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
  }
  if (!p_.theta.empty() && p_.theta.size() != static_cast<size_t>(S_)) fail("theta needs num_species values");
  if (!p_.reaction_matrix_per_s.empty() &&
      p_.reaction_matrix_per_s.size() != static_cast<size_t>(S_) * S_) {
    fail("reaction_matrix_per_s needs num_species^2 values");
  }
  std::string err;
  if (!p_.temperature_c.IsValid(&err)) fail("temperature_c: " + err);
  if (!opt_.steady_state) {
    if (!(p_.time_step_s > 0.0)) fail("time_step_s must be > 0");
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
    bkind_[i] = b0[k].kind == UpstreamBoundary::Kind::kConcentration ? 0 : 1;
  }
  has_reactions_ = false;
  for (double k : p_.reaction_matrix_per_s) has_reactions_ = has_reactions_ || k != 0.0;
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
    if (bkind_[i] == 0 || (bkind_[i] < 0 && up_start_[i + 1] == up_start_[i] && h->Qb[i] > 0)) {
      // A concentration boundary (or an unspecified clean headwater inflow) fixes C on the
      // upstream face: dispersive flux A D (C_b - C) / (dx / 2).
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
  for (int i = 0; i < N_; ++i) {
    if (h.V[i] > 0) nu = std::max(nu, std::max(h.Q[i], h.Qin[i]) * tau / h.V[i]);
  }
  int n = std::max(1, static_cast<int>(std::ceil(nu / opt_.max_courant - 1e-12)));
  if (n > opt_.max_substeps) {
    throw SolverError("transport: advection needs " + std::to_string(n) +
                      " sub-steps in one half step (max_substeps " +
                      std::to_string(opt_.max_substeps) + "); a segment is nearly dry");
  }
  return n;
}

int Engine::ImplicitSubsteps(const Hydraulics& h, double tau, double t_mid) const {
  if (!opt_.positive_implicit) return 1;
  // Crank-Nicolson is positive (hence free of new extrema) when the explicit half of every
  // equation has a non-negative diagonal: (tau/2) * (total outgoing rate) <= 1.
  double rate = 0.0;
  for (int s = 0; s < S_; ++s) {
    double f = TemperatureFactor(s, t_mid);
    for (int i = 0; i < N_; ++i) {
      if (h.V[i] <= 0) continue;
      const Segment& g = p_.segments[i];
      Sorption so = Sorb(i, s);
      double kout = h.K[i] + h.Kb[i] + h.qin_dx[i];
      for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) kout += h.K[up_list_[k]];
      double r = kout / h.V[i] + g.exchange_per_s + Decay(i, s) * f +
                 so.sediment_kg_per_m3 * so.main_rate_per_s * so.kd_m3_per_kg;
      double a = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
      r = std::max(r, a + StorageDecay(i, s) * f + so.storage_rate_per_s);
      r = std::max(r, so.main_rate_per_s);
      rate = std::max(rate, r);
    }
  }
  int n = std::max(1, static_cast<int>(std::ceil(0.5 * tau * rate - 1e-12)));
  if (n > opt_.max_substeps) {
    throw SolverError("transport: the implicit step needs " + std::to_string(n) +
                      " sub-steps to stay positive (max_substeps " +
                      std::to_string(opt_.max_substeps) + ")");
  }
  return n;
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

void Engine::AdvectHalf(const Hydraulics& h, int s, int m0, int m1, double ta, double tb,
                        int nsub, Budget* bud) {
  const int mb = m1 - m0;
  const double tau = (tb - ta) / nsub;
  std::vector<double> cb, acc(static_cast<size_t>(N_) * mb), delta(static_cast<size_t>(N_) * mb);
  double* C = &C_[Idx(s, 0, 0)];
  const size_t M = M_;
  for (int k = 0; k < nsub; ++k) {
    double t0 = ta + k * tau, t1 = ta + (k + 1) * tau;
    BoundaryValues(h, s, m0, m1, t0, t1, &cb, nullptr);
    // 1. Flow-weighted mean of the inflowing concentrations (junctions mix by flow).
    for (int i = 0; i < N_; ++i) {
      double* a = &acc[static_cast<size_t>(i) * mb];
      const double* b = &cb[static_cast<size_t>(i) * mb];
      double qb = h.Qb[i];
      for (int m = 0; m < mb; ++m) a[m] = qb * b[m];
    }
    for (int j = 0; j < N_; ++j) {
      int d = down_[j];
      if (d < 0) continue;
      double q = h.Q[j];
      double* a = &acc[static_cast<size_t>(d) * mb];
      const double* c = C + j * M + m0;
      for (int m = 0; m < mb; ++m) a[m] += q * c[m];
    }
    // 2. Limited Lax-Wendroff face deviation delta = C_face - C (Sweby 1984 form with the
    //    van Leer limiter, gradients scaled by centre distances for unequal segments).
    for (int i = 0; i < N_; ++i) {
      double* dl = &delta[static_cast<size_t>(i) * mb];
      int d = down_[i];
      if (d < 0 || h.V[i] <= 0 || h.Qin[i] <= 0 || p_.segments[i].well_mixed) {
        for (int m = 0; m < mb; ++m) dl[m] = 0.0;
        continue;
      }
      double nu = h.Q[i] * tau / h.V[i];
      double w = 1.0 - nu;
      double inv_qin = 1.0 / h.Qin[i];
      double hu = 1.0 / h_up_[i], hd = 1.0 / h_down_[i];
      double half_dx = 0.5 * dx_[i];
      const double* a = &acc[static_cast<size_t>(i) * mb];
      const double* ci = C + i * M + m0;
      const double* cd = C + d * M + m0;
      for (int m = 0; m < mb; ++m) {
        double du = ci[m] - a[m] * inv_qin;  // C_i - C_upstream
        double dd = cd[m] - ci[m];           // C_down - C_i
        double gu = du * hu, gd = dd * hd;
        double prod = gu * gd;
        double slope = prod > 0 ? 2.0 * prod / (gu + gd) : 0.0;
        double dev = w * half_dx * slope;
        // Keep the face value between the neighbours' values so the update is a convex
        // combination for Courant <= 0.75 on any grid (docs/methods.md).
        double cap = w * std::min(std::fabs(du), std::fabs(dd));
        dev = std::max(-cap, std::min(cap, dev));
        dl[m] = dev;
      }
    }
    // 3. Inflowing mass per cell: boundary plus upstream faces.
    for (int i = 0; i < N_; ++i) {
      double* a = &acc[static_cast<size_t>(i) * mb];
      const double* b = &cb[static_cast<size_t>(i) * mb];
      double qb = h.Qb[i];
      for (int m = 0; m < mb; ++m) a[m] = qb * b[m];
      if (qb > 0) {
        double sum = 0;
        for (int m = 0; m < mb; ++m) sum += b[m];
        bud->boundary += tau * qb * sum;
      }
    }
    for (int j = 0; j < N_; ++j) {
      int d = down_[j];
      double q = h.Q[j];
      if (q <= 0) continue;
      const double* c = C + j * M + m0;
      const double* dl = &delta[static_cast<size_t>(j) * mb];
      if (d < 0) {
        double sum = 0;
        for (int m = 0; m < mb; ++m) sum += c[m] + dl[m];
        bud->outlet += tau * q * sum;
        continue;
      }
      double* a = &acc[static_cast<size_t>(d) * mb];
      for (int m = 0; m < mb; ++m) a[m] += q * (c[m] + dl[m]);
    }
    // 4. Update: V dC = tau [ inflow - Qin C - Q delta ] (non-conservative OTIS form; the
    //    mass C (Qin - Q) leaving with water that does not go downstream is booked).
    for (int i = 0; i < N_; ++i) {
      if (h.V[i] <= 0) continue;
      double r = tau / h.V[i];
      double qin = h.Qin[i], q = h.Q[i];
      double* c = C + i * M + m0;
      const double* a = &acc[static_cast<size_t>(i) * mb];
      const double* dl = &delta[static_cast<size_t>(i) * mb];
      double closure = 0;
      for (int m = 0; m < mb; ++m) {
        closure += c[m];
        c[m] += r * (a[m] - qin * c[m] - q * dl[m]);
      }
      bud->closure += tau * (qin - q) * closure;
    }
  }
}

void Engine::Implicit(const Hydraulics& h, int s, int m0, int m1, double ta, double tb,
                      int nsub, double tf, Budget* bud) {
  const int mb = m1 - m0;
  const double tau = (tb - ta) / nsub, hh = 0.5 * tau;
  const size_t M = M_;
  // Per-segment coefficients (frozen over the step): the tree-tridiagonal matrix, its
  // factorization, and the storage / sorbate elimination S1 = pS + qS C1, B1 = pB + qB C1.
  std::vector<double> diag(N_), off(N_), mult(N_), piv(N_), qS(N_), qB(N_), ks(N_), as(N_),
      lam(N_), lams(N_), sink(N_), vs(N_);
  std::vector<Sorption> so(N_);
  bool any_storage = false, any_sorb = false;
  for (int i = 0; i < N_; ++i) {
    const Segment& g = p_.segments[i];
    so[i] = Sorb(i, s);
    lam[i] = Decay(i, s) * tf;
    lams[i] = StorageDecay(i, s) * tf;
    vs[i] = g.storage_area_m2 * dx_[i];
    as[i] = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
    ks[i] = as[i] + lams[i] + so[i].storage_rate_per_s;
    any_storage = any_storage || ks[i] > 0;
    any_sorb = any_sorb || so[i].main_rate_per_s > 0;
    off[i] = -0.5 * h.K[i];
    if (h.V[i] <= 0) {
      diag[i] = 1.0;
      qS[i] = qB[i] = 0.0;
      sink[i] = 0.0;
      continue;
    }
    double V = h.V[i];
    qS[i] = hh * as[i] / (1.0 + hh * ks[i]);
    qB[i] = hh * so[i].main_rate_per_s * so[i].kd_m3_per_kg / (1.0 + hh * so[i].main_rate_per_s);
    // Everything that removes C_i from the main channel (per unit C_i), without dispersion.
    sink[i] = h.Kb[i] + h.qin_dx[i] + g.exchange_per_s * V + lam[i] * V +
              so[i].sediment_kg_per_m3 * so[i].main_rate_per_s * so[i].kd_m3_per_kg * V;
    double kd = h.K[i];
    for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) kd += h.K[up_list_[k]];
    diag[i] = V / tau + 0.5 * (kd + sink[i]) - 0.5 * g.exchange_per_s * V * qS[i] -
              0.5 * so[i].sediment_kg_per_m3 * so[i].main_rate_per_s * V * qB[i];
  }
  // Gaussian elimination on the tree, leaves first (no fill-in, no pivoting: the matrix
  // is an M-matrix, diagonally dominant).
  for (int j = 0; j < N_; ++j) piv[j] = diag[j];
  for (int j = 0; j < N_; ++j) {
    int d = down_[j];
    if (d < 0) continue;
    mult[j] = off[j] / piv[j];
    piv[d] -= mult[j] * off[j];
  }
  std::vector<double> rhs(static_cast<size_t>(N_) * mb), cb, wf, c0(static_cast<size_t>(N_) * mb);
  std::vector<double> pS(any_storage ? static_cast<size_t>(N_) * mb : 0),
      pB(any_sorb ? static_cast<size_t>(N_) * mb : 0);
  double* C = &C_[Idx(s, 0, 0)];
  double* CS = &Cs_[Idx(s, 0, 0)];
  double* CB = &Cb_[Idx(s, 0, 0)];
  for (int k = 0; k < nsub; ++k) {
    double t0 = ta + k * tau, t1 = ta + (k + 1) * tau;
    BoundaryValues(h, s, m0, m1, t0, t1, &cb, &wf);
    // Point loads (g/s averaged over the sub-step) into wf.
    for (int m = m0; m < m1; ++m) {
      for (const PointLoad& l : p_.members[m].loads) {
        if (l.species != s) continue;
        double w = l.load_g_s.Average(t0, t1);
        wf[static_cast<size_t>(l.segment) * mb + (m - m0)] += w;
        bud->load += tau * w;
      }
    }
    // Explicit half: rhs = V C0 / tau + F(C0)/2 + sources (+ eliminated storage terms).
    for (int i = 0; i < N_; ++i) {
      const double* c = C + i * M + m0;
      double* r = &rhs[static_cast<size_t>(i) * mb];
      double* c0i = &c0[static_cast<size_t>(i) * mb];
      if (h.V[i] <= 0) {
        for (int m = 0; m < mb; ++m) { r[m] = c[m]; c0i[m] = c[m]; }
        continue;
      }
      double V = h.V[i];
      double a0 = V / tau - 0.5 * sink[i];
      double src_l = h.qin_dx[i] * h.CL[static_cast<size_t>(i) * S_ + s];
      double kb = h.Kb[i];
      const double* b = &cb[static_cast<size_t>(i) * mb];
      const double* w = &wf[static_cast<size_t>(i) * mb];
      for (int m = 0; m < mb; ++m) {
        c0i[m] = c[m];
        r[m] = a0 * c[m] + src_l + kb * b[m] + w[m];
      }
      if (src_l != 0) bud->lateral += tau * src_l * mb;
    }
    // Dispersive fluxes of the old state (explicit half).
    for (int j = 0; j < N_; ++j) {
      int d = down_[j];
      if (d < 0 || h.K[j] == 0) continue;
      double kh = 0.5 * h.K[j];
      const double* cj = C + j * M + m0;
      const double* cd = C + d * M + m0;
      double* rj = &rhs[static_cast<size_t>(j) * mb];
      double* rd = &rhs[static_cast<size_t>(d) * mb];
      for (int m = 0; m < mb; ++m) {
        double f = kh * (cd[m] - cj[m]);
        rj[m] += f;
        rd[m] -= f;
      }
    }
    if (any_storage || any_sorb) {
      for (int i = 0; i < N_; ++i) {
        if (h.V[i] <= 0) continue;
        const Segment& g = p_.segments[i];
        double V = h.V[i];
        double* r = &rhs[static_cast<size_t>(i) * mb];
        const double* c = C + i * M + m0;
        if (ks[i] > 0) {
          const double* sz = CS + i * M + m0;
          double* ps = &pS[static_cast<size_t>(i) * mb];
          double den = 1.0 / (1.0 + hh * ks[i]);
          double bg = 2.0 * hh * so[i].storage_rate_per_s * so[i].storage_background_g_m3;
          double ex = 0.5 * g.exchange_per_s * V;
          for (int m = 0; m < mb; ++m) {
            ps[m] = (sz[m] * (1.0 - hh * ks[i]) + hh * as[i] * c[m] + bg) * den;
            r[m] += ex * (sz[m] + ps[m]);
          }
        }
        if (so[i].main_rate_per_s > 0) {
          const double* sb = CB + i * M + m0;
          double* pb = &pB[static_cast<size_t>(i) * mb];
          double lh = so[i].main_rate_per_s;
          double den = 1.0 / (1.0 + hh * lh);
          double ex = 0.5 * so[i].sediment_kg_per_m3 * lh * V;
          for (int m = 0; m < mb; ++m) {
            pb[m] = (sb[m] * (1.0 - hh * lh) + hh * lh * so[i].kd_m3_per_kg * c[m]) * den;
            r[m] += ex * (sb[m] + pb[m]);
          }
        }
      }
    }
    // Solve: forward elimination leaves-first, back substitution outlet-first.
    for (int j = 0; j < N_; ++j) {
      int d = down_[j];
      if (d < 0) continue;
      double mu = mult[j];
      const double* rj = &rhs[static_cast<size_t>(j) * mb];
      double* rd = &rhs[static_cast<size_t>(d) * mb];
      for (int m = 0; m < mb; ++m) rd[m] -= mu * rj[m];
    }
    for (int i = N_ - 1; i >= 0; --i) {
      int d = down_[i];
      double inv = 1.0 / piv[i];
      double* c = C + i * M + m0;
      const double* r = &rhs[static_cast<size_t>(i) * mb];
      if (d < 0) {
        for (int m = 0; m < mb; ++m) c[m] = r[m] * inv;
      } else {
        const double* cd = C + d * M + m0;
        double o = off[i];
        for (int m = 0; m < mb; ++m) c[m] = (r[m] - o * cd[m]) * inv;
      }
    }
    // Storage zone, sorbate and the budget of this sub-step (trapezoidal means, exactly
    // the quantities the discrete equations used).
    for (int i = 0; i < N_; ++i) {
      if (h.V[i] <= 0) continue;
      double V = h.V[i];
      const double* c = C + i * M + m0;
      const double* c0i = &c0[static_cast<size_t>(i) * mb];
      double sum_mean = 0.0;
      for (int m = 0; m < mb; ++m) sum_mean += 0.5 * (c[m] + c0i[m]);
      bud->decay_main += tau * lam[i] * V * sum_mean;
      bud->closure += tau * h.qin_dx[i] * sum_mean;
      if (h.Kb[i] > 0) {
        const double* b = &cb[static_cast<size_t>(i) * mb];
        double sb = 0;
        for (int m = 0; m < mb; ++m) sb += b[m] - 0.5 * (c[m] + c0i[m]);
        bud->boundary += tau * h.Kb[i] * sb;
      }
      if (bkind_[i] == 1 && h.Qb[i] <= 0) {
        const double* w = &wf[static_cast<size_t>(i) * mb];
        double sw = 0;
        for (int m = 0; m < mb; ++m) sw += w[m];
        bud->boundary += tau * sw;
      }
      if (ks[i] > 0) {
        double* sz = CS + i * M + m0;
        const double* ps = &pS[static_cast<size_t>(i) * mb];
        double smean = 0;
        for (int m = 0; m < mb; ++m) {
          double s1 = ps[m] + qS[i] * c[m];
          smean += 0.5 * (sz[m] + s1);
          sz[m] = s1;
        }
        bud->decay_storage += tau * lams[i] * vs[i] * smean;
        bud->background += tau * so[i].storage_rate_per_s * vs[i] *
                           (so[i].storage_background_g_m3 * mb - smean);
      }
      if (so[i].main_rate_per_s > 0) {
        double* sb = CB + i * M + m0;
        const double* pb = &pB[static_cast<size_t>(i) * mb];
        for (int m = 0; m < mb; ++m) sb[m] = pb[m] + qB[i] * c[m];
      }
    }
  }
  // Point loads into dry segments cannot be held: they were booked as loads above and
  // were added to a row that is the identity, so take them back out of the budget.
  for (int m = m0; m < m1; ++m) {
    for (const PointLoad& l : p_.members[m].loads) {
      if (l.species == s && h.V[l.segment] <= 0) bud->load -= (tb - ta) * l.load_g_s.Average(ta, tb);
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
  int ns = r->num_stations;
  for (int m = 0; m < M_; ++m) {
    if (opt_.store_fields) {
      for (int i = 0; i < N_; ++i) {
        for (int s = 0; s < S_; ++s) {
          size_t o = r->Index(m, t, i, N_, s), k = Idx(s, i, m);
          r->concentration_g_m3[o] = C_[k];
          r->storage_g_m3[o] = Cs_[k];
          r->sorbed_g_kg[o] = Cb_[k];
        }
      }
    }
    for (int q = 0; q < ns; ++q) {
      const Station& st = p_.stations[q];
      for (int s = 0; s < S_; ++s) {
        size_t o = r->Index(m, t, q, ns, s), a = Idx(s, st.segment, m);
        double w = st.weight;
        double c = C_[a], cs = Cs_[a], cb = Cb_[a];
        if (st.next_segment >= 0 && w != 0.0) {
          size_t b = Idx(s, st.next_segment, m);
          c = (1 - w) * c + w * C_[b];
          cs = (1 - w) * cs + w * Cs_[b];
          cb = (1 - w) * cb + w * Cb_[b];
        }
        r->station_concentration_g_m3[o] = c;
        r->station_storage_g_m3[o] = cs;
        r->station_sorbed_g_kg[o] = cb;
      }
    }
  }
}

TransportResult Engine::Run() {
  auto wall0 = std::chrono::steady_clock::now();
  Validate();
  BuildTopology();
  TransportResult r;
  r.num_members = M_;
  r.num_segments = N_;
  r.num_species = S_;
  r.num_stations = static_cast<int>(p_.stations.size());
  std::vector<double> outputs = p_.output_times_s;
  if (opt_.steady_state) {
    outputs = {p_.start_time_s};
  } else if (outputs.empty()) {
    outputs = {p_.start_time_s};
    if (p_.end_time_s > p_.start_time_s) outputs.push_back(p_.end_time_s);
  }
  r.times_s = outputs;
  r.num_times = static_cast<int>(outputs.size());
  size_t nf = opt_.store_fields ? static_cast<size_t>(M_) * r.num_times * N_ * S_ : 0;
  r.concentration_g_m3.assign(nf, 0.0);
  r.storage_g_m3.assign(nf, 0.0);
  r.sorbed_g_kg.assign(nf, 0.0);
  size_t nst = static_cast<size_t>(M_) * r.num_times * r.num_stations * S_;
  r.station_concentration_g_m3.assign(nst, 0.0);
  r.station_storage_g_m3.assign(nst, 0.0);
  r.station_sorbed_g_kg.assign(nst, 0.0);
  budget_.assign(S_, Budget{});

  Hydraulics h;
  ComputeHydraulics(FlowAt(p_.start_time_s), &h);
  Initialize(h);
  if (opt_.steady_state) {
    SolveSteady(&r);
    r.summary.wall_time_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return r;
  }
  std::vector<double> initial_mass(S_);
  for (int s = 0; s < S_; ++s) initial_mass[s] = Mass(s, h.V);

  // Work items: (species, block of members). Members are split only as far as threads
  // need; each block keeps the member-inner layout contiguous for vectorization.
  int threads = 1;
#ifdef _OPENMP
  threads = opt_.num_threads > 0 ? opt_.num_threads : omp_get_max_threads();
#endif
  int blocks = 1;
  if (S_ < threads) blocks = std::min(M_, (threads + S_ - 1) / S_);
  std::vector<std::pair<int, int>> ranges;
  for (int b = 0; b < blocks; ++b) ranges.push_back({M_ * b / blocks, M_ * (b + 1) / blocks});
  int items = S_ * blocks;
  std::vector<Budget> item_budget(items);

  TransportSummary& sum = r.summary;
  size_t next_out = 0;
  double t = p_.start_time_s;
  while (next_out < outputs.size() && outputs[next_out] <= t + 1e-9 * std::max(1.0, p_.time_step_s)) {
    Record(static_cast<int>(next_out++), &r);
  }
  std::vector<double> v_prev = h.V;
  const double tol = 1e-9 * p_.time_step_s;
  while (t < p_.end_time_s - tol) {
    double dt = std::min(p_.time_step_s, p_.end_time_s - t);
    if (next_out < outputs.size()) dt = std::min(dt, outputs[next_out] - t);
    double t_mid = t + 0.5 * dt, t_end = t + dt;
    ComputeHydraulics(FlowAt(t_mid), &h);
    Rebase(v_prev, h.V, &budget_);
    v_prev = h.V;
    for (int i = 0; i < N_; ++i) {
      if (h.V[i] > 0) {
        sum.max_courant_requested = std::max(sum.max_courant_requested,
                                             std::max(h.Q[i], h.Qin[i]) * dt / h.V[i]);
      }
    }
    int na = AdvectionSubsteps(h, 0.5 * dt);
    int ni = ImplicitSubsteps(h, dt, t_mid);
    sum.advection_substeps += 2LL * na;
    sum.max_advection_substeps = std::max(sum.max_advection_substeps, na);
    sum.implicit_substeps += ni;
    sum.max_implicit_substeps = std::max(sum.max_implicit_substeps, ni);
    std::vector<double> tf(S_);
    for (int s = 0; s < S_; ++s) tf[s] = TemperatureFactor(s, t_mid);
    for (auto& b : item_budget) b = Budget{};
    auto run_items = [&](int phase) {
#pragma omp parallel for schedule(static) num_threads(threads) if (items > 1)
      for (int it = 0; it < items; ++it) {
        int s = it / blocks;
        auto [m0, m1] = ranges[it % blocks];
        if (m1 <= m0) continue;
        Budget* b = &item_budget[it];
        if (phase == 0 || phase == 1) AdvectHalf(h, s, m0, m1, t, t_mid, na, b);
        if (phase == 0 || phase == 2) Implicit(h, s, m0, m1, t, t_end, ni, tf[s], b);
        if (phase == 0 || phase == 3) AdvectHalf(h, s, m0, m1, t_mid, t_end, na, b);
      }
    };
    // Strang splitting: A(dt/2) [R(dt/2)] I(dt) [R(dt/2)] A(dt/2).
    if (!has_reactions_) {
      run_items(0);
    } else {
      run_items(1);
      React(h, 0.5 * dt, t_mid, &budget_);
      run_items(2);
      React(h, 0.5 * dt, t_mid, &budget_);
      run_items(3);
    }
    for (int it = 0; it < items; ++it) budget_[it / blocks].Add(item_budget[it]);
    t = t_end;
    sum.num_steps++;
    for (double c : {C_[0]}) {
      if (!std::isfinite(c)) throw SolverError("transport: non-finite concentration");
    }
    while (next_out < outputs.size() && outputs[next_out] <= t + tol) {
      Record(static_cast<int>(next_out++), &r);
    }
  }
  while (next_out < outputs.size()) Record(static_cast<int>(next_out++), &r);
  Hydraulics h_end;
  ComputeHydraulics(FlowAt(t), &h_end);
  Rebase(v_prev, h_end.V, &budget_);
  sum.mass_balance.resize(S_);
  for (int s = 0; s < S_; ++s) {
    MassBalance& mb = sum.mass_balance[s];
    const Budget& b = budget_[s];
    mb.initial_mass_g = initial_mass[s];
    mb.final_mass_g = Mass(s, h_end.V);
    mb.boundary_inflow_g = b.boundary;
    mb.lateral_inflow_g = b.lateral;
    mb.point_load_g = b.load;
    mb.outlet_outflow_g = b.outlet;
    mb.flow_closure_g = b.closure;
    mb.decay_main_g = b.decay_main;
    mb.decay_storage_g = b.decay_storage;
    mb.storage_background_g = b.background;
    mb.reaction_g = b.reaction;
    double sources = b.boundary + b.lateral + b.load + b.background + b.reaction;
    double sinks = b.outlet + b.closure + b.decay_main + b.decay_storage;
    mb.residual_g = mb.final_mass_g - mb.initial_mass_g - (sources - sinks);
    double scale = std::max({std::fabs(mb.initial_mass_g), std::fabs(mb.final_mass_g),
                             std::fabs(b.boundary) + std::fabs(b.lateral) + std::fabs(b.load) +
                                 std::fabs(b.background) + std::fabs(b.reaction),
                             std::numeric_limits<double>::min()});
    mb.relative_error = std::fabs(mb.residual_g) / scale;
    sum.max_relative_mass_error = std::max(sum.max_relative_mass_error, mb.relative_error);
  }
  for (double c : C_) {
    if (!std::isfinite(c)) throw SolverError("transport: non-finite concentration");
  }
  sum.wall_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

// Steady state: d/dt = 0 with the storage zone and sorbate in equilibrium. The limited
// second-order face values make the system nonlinear; it is solved by defect correction
// (upwind system implicit, limited correction and reaction coupling lagged), which
// converges in a few tens of tree solves (docs/methods.md).
void Engine::SolveSteady(TransportResult* r) {
  Hydraulics h;
  ComputeHydraulics(FlowAt(p_.start_time_s), &h);
  const double t0 = p_.start_time_s;
  std::vector<double> diag(N_), lo(N_), upc(N_), piv(N_), rhs(N_), x(N_), delta(N_), acc(N_);
  std::vector<double> cb, wf;
  int iterations = 0;
  r->summary.mass_balance.assign(S_, MassBalance{});
  for (int m = 0; m < M_; ++m) {
    std::vector<double> tfac(S_);
    for (int s = 0; s < S_; ++s) tfac[s] = TemperatureFactor(s, t0);
    Eigen::MatrixXd K = Eigen::MatrixXd::Zero(S_, S_);
    if (has_reactions_) {
      for (int a = 0; a < S_; ++a)
        for (int b = 0; b < S_; ++b) K(a, b) = p_.reaction_matrix_per_s[a * S_ + b] * tfac[b];
    }
    bool converged = false;
    for (int iter = 0; iter < opt_.max_steady_iterations && !converged; ++iter) {
      ++iterations;
      double change = 0.0, scale = 0.0;
      for (int s = 0; s < S_; ++s) {
        BoundaryValues(h, s, m, m + 1, t0, t0, &cb, &wf);
        for (const PointLoad& l : p_.members[m].loads) {
          if (l.species == s) wf[l.segment] += l.load_g_s.At(t0);
        }
        // Limited face deviations (Courant -> 0 limit of the transient scheme).
        for (int i = 0; i < N_; ++i) acc[i] = h.Qb[i] * cb[i];
        for (int j = 0; j < N_; ++j) {
          if (down_[j] >= 0) acc[down_[j]] += h.Q[j] * C_[Idx(s, j, m)];
        }
        for (int i = 0; i < N_; ++i) {
          int d = down_[i];
          delta[i] = 0;
          if (d < 0 || h.Qin[i] <= 0 || p_.segments[i].well_mixed) continue;
          double ci = C_[Idx(s, i, m)];
          double du = ci - acc[i] / h.Qin[i], dd = C_[Idx(s, d, m)] - ci;
          double gu = du / h_up_[i], gd = dd / h_down_[i];
          double prod = gu * gd;
          double dev = prod > 0 ? 0.5 * dx_[i] * 2.0 * prod / (gu + gd) : 0.0;
          double cap = std::min(std::fabs(du), std::fabs(dd));
          delta[i] = std::max(-cap, std::min(cap, dev));
        }
        for (int i = 0; i < N_; ++i) {
          const Segment& g = p_.segments[i];
          Sorption so = Sorb(i, s);
          double V = h.V[i];
          if (V <= 0) {
            diag[i] = 1; rhs[i] = C_[Idx(s, i, m)]; lo[i] = upc[i] = 0;
            continue;
          }
          double a = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
          double lams = StorageDecay(i, s) * tfac[s];
          double ks = a + lams + so.storage_rate_per_s;
          double storage_src = so.storage_rate_per_s * so.storage_background_g_m3;
          if (has_reactions_) {
            ks -= K(s, s);
            for (int b = 0; b < S_; ++b) {
              if (b != s) storage_src += K(s, b) * Cs_[Idx(b, i, m)];
            }
          }
          // Storage zone in equilibrium: S = keep C + bgs (other species lagged).
          double keep = ks > 0 ? a / ks : 0.0;
          double bgs = ks > 0 ? storage_src / ks : 0.0;
          double kd = h.K[i];
          for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) kd += h.K[up_list_[k]];
          diag[i] = h.Qin[i] + kd + h.Kb[i] + h.qin_dx[i] + Decay(i, s) * tfac[s] * V +
                    g.exchange_per_s * V * (1.0 - keep);
          double src = (h.Qb[i] + h.Kb[i]) * cb[i] + wf[i] +
                       h.qin_dx[i] * h.CL[static_cast<size_t>(i) * S_ + s] +
                       g.exchange_per_s * V * bgs - h.Q[i] * delta[i];
          for (int k = up_start_[i]; k < up_start_[i + 1]; ++k) {
            int j = up_list_[k];
            src += h.Q[j] * delta[j];
          }
          if (has_reactions_) {
            for (int b = 0; b < S_; ++b) {
              if (b != s) src += K(s, b) * V * C_[Idx(b, i, m)];
            }
            diag[i] -= K(s, s) * V;
          }
          rhs[i] = src;
          lo[i] = down_[i] >= 0 ? -(h.Q[i] + h.K[i]) : 0.0;  // row down(i), column i
          upc[i] = -h.K[i];                                    // row i, column down(i)
        }
        for (int j = 0; j < N_; ++j) piv[j] = diag[j];
        for (int j = 0; j < N_; ++j) {
          int d = down_[j];
          if (d < 0) continue;
          double mu = lo[j] / piv[j];
          piv[d] -= mu * upc[j];
          rhs[d] -= mu * rhs[j];
        }
        for (int i = N_ - 1; i >= 0; --i) {
          int d = down_[i];
          x[i] = (rhs[i] - (d >= 0 ? upc[i] * x[d] : 0.0)) / piv[i];
        }
        for (int i = 0; i < N_; ++i) {
          size_t k = Idx(s, i, m);
          change = std::max(change, std::fabs(x[i] - C_[k]));
          scale = std::max(scale, std::fabs(x[i]));
          C_[k] = x[i];
          const Segment& g = p_.segments[i];
          Sorption so = Sorb(i, s);
          double a = g.storage_area_m2 > 0 ? g.exchange_per_s * h.A[i] / g.storage_area_m2 : 0.0;
          double ks = a + StorageDecay(i, s) * tfac[s] + so.storage_rate_per_s;
          double storage_src = so.storage_rate_per_s * so.storage_background_g_m3;
          if (has_reactions_ && g.storage_area_m2 > 0) {
            for (int b = 0; b < S_; ++b) {
              if (b != s) storage_src += K(s, b) * Cs_[Idx(b, i, m)];
            }
          }
          double den = ks - (has_reactions_ ? K(s, s) : 0.0);
          Cs_[k] = den > 0 ? (a * x[i] + storage_src) / den : 0.0;
          Cb_[k] = so.kd_m3_per_kg * x[i];
        }
      }
      converged = change <= opt_.steady_tolerance * std::max(scale, 1e-300);
    }
    if (!converged) {
      throw SolverError("transport: steady state did not converge in " +
                        std::to_string(opt_.max_steady_iterations) + " iterations");
    }
  }
  r->summary.steady_iterations = iterations;
  // Steady budget as rates (g/s): inflow = outflow + losses.
  for (int s = 0; s < S_; ++s) {
    MassBalance& mb = r->summary.mass_balance[s];
    double tf = TemperatureFactor(s, t0);
    for (int m = 0; m < M_; ++m) {
      BoundaryValues(h, s, m, m + 1, t0, t0, &cb, &wf);
      for (const PointLoad& l : p_.members[m].loads) {
        if (l.species == s) mb.point_load_g += l.load_g_s.At(t0);
      }
      for (int i = 0; i < N_; ++i) {
        size_t k = Idx(s, i, m);
        double c = C_[k];
        mb.boundary_inflow_g += (h.Qb[i] + h.Kb[i]) * cb[i] - h.Kb[i] * c + wf[i];
        mb.lateral_inflow_g += h.qin_dx[i] * h.CL[static_cast<size_t>(i) * S_ + s];
        double cf = c;
        if (down_[i] < 0) mb.outlet_outflow_g += h.Q[i] * cf;
        mb.flow_closure_g += c * (h.Qin[i] - h.Q[i]) + h.qin_dx[i] * c;
        mb.decay_main_g += Decay(i, s) * tf * h.V[i] * c;
        double vs = p_.segments[i].storage_area_m2 * dx_[i];
        Sorption so = Sorb(i, s);
        mb.decay_storage_g += StorageDecay(i, s) * tf * vs * Cs_[k];
        mb.storage_background_g += so.storage_rate_per_s * vs * (so.storage_background_g_m3 - Cs_[k]);
      }
    }
  }
  // The limited corrections move mass between faces only, so the rate budget closes to
  // the solver tolerance; report it.
  for (int s = 0; s < S_; ++s) {
    MassBalance& mb = r->summary.mass_balance[s];
    if (has_reactions_) continue;  // reaction exchange between species not itemized here
    double in = mb.boundary_inflow_g + mb.lateral_inflow_g + mb.point_load_g + mb.storage_background_g;
    double out = mb.outlet_outflow_g + mb.flow_closure_g + mb.decay_main_g + mb.decay_storage_g;
    mb.residual_g = in - out;
    mb.relative_error = std::fabs(mb.residual_g) / std::max(std::fabs(in), 1e-300);
    r->summary.max_relative_mass_error = std::max(r->summary.max_relative_mass_error, mb.relative_error);
  }
  Record(0, r);
}

}  // namespace

TransportResult TransportSolver::Run(const TransportProblem& problem) const {
  Engine engine(options_, problem);
  return engine.Run();
}

}  // namespace qingshui::transport
