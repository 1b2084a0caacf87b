// Transport engine. The method (finite volumes, Strang splitting of an explicit limited
// Lax-Wendroff advection step and a Crank-Nicolson step for everything else, the storage
// zone eliminated per segment so the implicit system stays tree-tridiagonal; positivity of
// the implicit step by an a-posteriori check with bisection as fallback) and the reasons for
// it are in docs/methods.md, which also describes how this file is made fast (section
// "Performance").
#include "qingshui/core/transport.h"

#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <limits>
#include <numeric>
#include <sstream>
#include <type_traits>

#include <Eigen/Dense>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>
#define QINGSHUI_HAVE_MXCSR 1
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

double TimeSeries::Centroid(double t0, double t1) const {
  const double mid = 0.5 * (t0 + t1);
  if (values.empty() || !(t1 > t0)) return mid;
  // Integral of v(t) (t - mid) over each piece: v linear on [a, b] (constant for kStep, and
  // before the first and after the last time) integrates exactly with Simpson's rule.
  double mass = 0.0, moment = 0.0;
  auto piece = [&](double a, double b) {
    if (!(b > a)) return;
    const double va = At(a), vb = At(b), m = 0.5 * (a + b);
    const double vm = interpolation == Interpolation::kStep ? va : 0.5 * (va + vb);
    const double w = (b - a) / 6.0;
    if (interpolation == Interpolation::kStep) {
      mass += va * (b - a);
      moment += va * (b - a) * (m - mid);
    } else {
      mass += (b - a) * vm;
      moment += w * (va * (a - mid) + 4.0 * vm * (m - mid) + vb * (b - mid));
    }
  };
  double a = t0;
  auto it = std::upper_bound(times_s.begin(), times_s.end(), t0);
  for (; it != times_s.end() && *it < t1; ++it) {
    piece(a, *it);
    a = *it;
  }
  piece(a, t1);
  if (!(mass != 0.0)) return mid;
  return mid + moment / mass;
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
      << max_implicit_substeps << " per step)";
  if (implicit_checked_steps > 0) {
    out << ", full implicit steps checked " << implicit_checked_steps << " (fallbacks "
        << implicit_fallbacks << ")";
  }
  out << ", Courant at user step " << max_courant_requested
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

constexpr double kInf = std::numeric_limits<double>::infinity();

// Hot loops get AVX-512 and AVX2 clones chosen at run time where the CPU has them (GCC
// function multi-versioning). Contraction to fused multiply-adds is off in them, so the
// clones do the same IEEE operations as the baseline SSE2 code on wider registers and
// results are bit-identical on every machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define QS_KERNEL                                                                       \
  __attribute__((target_clones("avx512f", "avx2", "default"), optimize("fp-contract=off"))) \
  static
#endif
#endif
#ifndef QS_KERNEL
#define QS_KERNEL static
#endif

// Flushes subnormal numbers (below 2.2e-308) to zero in this thread while it lives, and
// restores the caller's setting. The tails of fronts decay through the subnormal range,
// where every operation costs ~100 cycles on x86 (docs/methods.md, "Performance").
class FlushSubnormals {
 public:
#ifdef QINGSHUI_HAVE_MXCSR
  FlushSubnormals() : csr_(_mm_getcsr()) { _mm_setcsr(csr_ | 0x8040u); }  // FTZ | DAZ
  ~FlushSubnormals() { _mm_setcsr(csr_); }
  FlushSubnormals(const FlushSubnormals&) = delete;
  FlushSubnormals& operator=(const FlushSubnormals&) = delete;

 private:
  unsigned csr_;
#endif
};
// Relative tolerance of the a-posteriori check of a full Crank-Nicolson step: values and
// extrema are compared to within kCheckTolerance x (largest value in the step's data).
constexpr double kCheckTolerance = 1e-12;

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

// A contiguous stretch of the upstream-first numbering. A run holds "chain" cells only:
// cell i has exactly one upstream neighbour, i - 1, and drains to i + 1, so its loops use
// fixed offsets and vectorize; any other cell (headwater, junction, the last cell of a
// tributary, outlet) is a piece of its own and uses the adjacency lists.
struct Piece {
  int a = 0, b = 0;
  bool run = false;
};

// Per-cell coefficients of one advection sub-step of length tau for one hydraulic state.
struct AdvCoef {
  double tau = -1.0;
  long long hver = -1;
  std::vector<double> r;    // tau / V (0 for a dry cell)
  std::vector<double> w;    // 1 - nu on a limited face, else 0 (cap of the deviation)
  std::vector<double> k;    // (1 - nu) dx / h_d on a limited face, else 0 (limiter gain)
  std::vector<double> rho;  // h_u / h_d: ratio of the centre distances up and down
  std::vector<double> iq;   // 1 / Q_in (0 without inflow)
  std::vector<double> dq;   // Q - Q_in (0 for a dry cell): flow closure
  std::vector<int> closure_cells;  // wet cells with Q_in != Q
  std::vector<char> piece_dq;      // per piece: a run holding a closure cell
  std::vector<char> piece_uni;     // per piece: a run with rho = 1 and k = w throughout
};

// The implicit (Crank-Nicolson) operator of one species for a step tau at one hydraulic
// state and temperature factor: right-hand-side coefficients, the tree LU factorization
// (y_i = r_i / piv_i - sum_up e_j y_j, x_i = y_i - g_i x_down), the storage-zone and
// sorbate elimination, the budget weights and the data of the positivity check.
struct ImpCoef {
  double tau = -1.0, tf = -1.0;
  long long hver = -1;
  long long stamp = 0;  // for least-recently-used replacement
  int substeps = 1;     // sub-steps that make this step provably positive
  // cdec, ccl: half the budget weights of decay and lateral closure (tau lambda V / 2,
  // tau q_in dx / 2): the trapezoidal means are booked as cdec C0 in the elimination and
  // cdec C1 in the back substitution.
  std::vector<double> a0, kh, ip, e, g, srcl, cdec, ccl;
  bool storage = false, sorb = false;
  std::vector<double> s_den, s_keep, s_in, s_bg, s_ex, s_q, s_dec, s_bgk, s_back;
  std::vector<double> b_den, b_keep, b_in, b_ex, b_q, b_kd;
  std::vector<int> s_cells, b_cells;  // wet cells with storage exchange / main sorption
  double lat_sum = 0.0;  // tau * sum of q_L dx C_L: lateral inflow of one member
  std::vector<char> piece_clo;  // per piece: a cell with a closure weight (ccl != 0)
  // Check data. pm / nm: 0 where the upstream / downstream face of a run cell disperses,
  // -inf where it does not, +inf on both for a dry cell (never an extremum).
  std::vector<double> theta, pm, nm, hi_s, lo_s;
  // Decay slower / faster than at a dispersive neighbour: the cell may become a new
  // maximum / minimum of its own accord.
  std::vector<unsigned char> decay_max, decay_min;
  double static_max = -kInf;  // largest lateral-inflow / storage-background value
};

// Columns of the state that one kernel call works on: element (i, m) at [i * stride + m].
struct Block {
  double* C = nullptr;
  double* Cs = nullptr;
  double* Cb = nullptr;
  size_t stride = 1;
  int mb = 0;
  int real = std::numeric_limits<int>::max();  // columns [real, mb): padding, never read back
  const int* member = nullptr;  // problem member of column m
};

// Per-member results of one implicit solve: budget terms and what the check needs.
struct Partials {
  std::vector<double> dec, clo, bnd, load, sdec, sbg, minC, maxC, omax, minS, srcmax;
  void Reset(int mb) {
    for (auto* v : {&dec, &clo, &bnd, &load, &sdec, &sbg}) v->assign(mb, 0.0);
    for (auto* v : {&minC, &minS}) v->assign(mb, kInf);
    for (auto* v : {&maxC, &omax, &srcmax}) v->assign(mb, -kInf);
  }
};

// A load entering one cell of one column over the current implicit solve, as the rise of
// concentration it can cause at most (tau W / V).
struct LoadEntry {
  int cell, column;
  double allow;
};

// Everything one work item (one species, one block of members) owns: scratch arrays
// sized once for the whole run, its factorization cache and its budget.
struct Item {
  int s = 0, m0 = 0, m1 = 0;
  std::vector<int> members;
  std::vector<double> F, y, c0, ext, pS, pB, cbv, kbv, acc, eps;
  std::vector<size_t> touched;  // ext entries set by sparse sources
  std::vector<LoadEntry> loads;
  Partials P;
  ImpCoef cache[6];
  long long stamp = 0;
  Budget budget;
  int used_substeps = 0;
  long long checked = 0, fallbacks = 0;
  // Compacted copy of the members that fall back.
  std::vector<double> gC, gCs, gCb;
  std::vector<int> gmembers, fail_cols;
  std::vector<char> piece_ext;  // per piece: the run has right-hand-side entries
  std::vector<int> pending, waiting;  // StepItem: failed columns, blocks still to advect
  std::vector<char> ok;
  std::vector<int> cand;  // possible extrema found by the single-column back substitution
  std::vector<unsigned char> cflag;  // per cell: flagged by the 8-lane back substitution
  int ncand = 0;
  AdvCoef adv;
  // Joint fallback (members not independent): failure flag, state and budget to restore.
  bool any_fail = false;
  Budget budget_before;
  std::vector<double> bC, bCs, bCb;
  std::vector<int> step_used;  // implicit sub-steps per step (free-running items)
  double step_t0 = 0.0, step_t1 = 0.0;  // the step StepItem is taking (EdgeLoads, Sources)
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
  // State layout: species, then block of members (one per work item), then segment, then
  // member within the block. Each work item's columns are contiguous, so two threads never
  // write to the same cache line (except at the two ends of a block).
  size_t Idx(int s, int i, int m) const {
    return static_cast<size_t>(s) * N_ * M_ + member_base_[m] +
           static_cast<size_t>(i) * member_stride_[m];
  }
  // Member blocks [bounds[b], bounds[b + 1]), one per work item and species.
  void SetBlocks(const std::vector<int>& bounds);

  void Initialize(const Hydraulics& h0);
  void React(const Hydraulics& h, double tau, double t_mid, std::vector<Budget>* budgets);
  void Rebase(const std::vector<double>& v_old, const std::vector<double>& v_new,
              std::vector<Budget>* budgets);
  double Mass(int s, const std::vector<double>& V) const;
  int AdvectionSubsteps(const Hydraulics& h, double tau) const;
  void BoundaryValues(const Hydraulics& h, int s, int m0, int m1, double ta, double tb,
                      std::vector<double>* cb, std::vector<double>* w_flux) const;
  void Record(int time_index, TransportResult* r) const;
  void RecordRange(int s, int m0, int m1, int time_index, TransportResult* r) const;
  void SolveSteady(TransportResult* r);
  double Decay(int i, int s) const {
    const auto& d = p_.segments[i].decay_per_s;
    return d.empty() ? 0.0 : d[s];
  }
  // First-order loss rate of a treatment node (well-mixed segment with removal_fraction f):
  // k = f/(1 - f) Q/V, so that at steady flow the node's outflow carries (1 - f) of what
  // flows in (a continuously stirred tank with first-order removal, C = C_in/(1 + k V/Q)).
  // It follows the flow state; not temperature-corrected (f is given as achieved).
  double Treatment(const Hydraulics& h, int i, int s) const {
    const auto& f = p_.segments[i].removal_fraction;
    if (f.empty() || f[s] <= 0 || !(h.V[i] > 0)) return 0.0;
    return f[s] / (1.0 - f[s]) * h.Q[i] / h.V[i];
  }
  // Every first-order loss of the main channel: decay (theta-corrected) and treatment.
  double MainLoss(const Hydraulics& h, int i, int s, double tf) const {
    return Decay(i, s) * tf + Treatment(h, i, s);
  }
  double StorageDecay(int i, int s) const {
    const auto& d = p_.segments[i].storage_decay_per_s;
    return d.empty() ? 0.0 : d[s];
  }
  Sorption Sorb(int i, int s) const {
    const auto& d = p_.segments[i].sorption;
    return d.empty() ? Sorption{} : d[s];
  }

  // Time stepping (docs/methods.md section 2).
  void OnHydraulics();
  void BuildAdvCoef(AdvCoef* a, double tau) const;
  void BuildImpCoef(int s, double tau, double tf, ImpCoef* c) const;
  const ImpCoef& GetImpCoef(Item& it, double tau, double tf) const;
  void InitItem(Item& it, int s, int m0, int m1) const;
  Block MainBlock(Item& it) {
    Block b;
    b.C = &C_[Idx(it.s, 0, it.m0)];
    b.Cs = &Cs_[Idx(it.s, 0, it.m0)];
    b.Cb = &Cb_[Idx(it.s, 0, it.m0)];
    b.stride = it.m1 - it.m0;
    b.mb = it.m1 - it.m0;
    b.member = it.members.data();
    return b;
  }
  void AdvectHalf(Item& it, const Block& B, double ta, int nsub);
  template <int kMb>
  void AdvectSub(Item& it, const Block& B, double t0, double t1);
  enum ImplicitMode { kIndependent, kCandidate, kFallback };
  void Implicit(Item& it, const Block& B, double ta, double tb, double tf, int mode,
                std::vector<int>* deferred = nullptr, int col0 = 0);
  void RedoMembers(Item& it, const Block& B, const std::vector<int>& cols, double ta,
                   double tb, double tf);
  enum Phase {
    kPhaseAdvect1 = 1,
    kPhaseImplicit = 2,
    kPhaseAdvect2 = 4,
    kPhaseJoint = 8  // implicit step of all members of the item together (see Implicit)
  };
  void StepItem(Item& it, double t, double dt, int na, double tf, int phases);
  void Bisect(Item& it, const Block& G, const char* active, double ta, double tau, double tf,
              int* used);
  void Sources(const ImpCoef& ic, Item& it, const Block& B, double t0, double t1);
  static double MidLoadFraction(const TimeSeries& w, double t0, double t1);
  void EdgeLoads(Item& it, const Block& B, bool before);
  template <int kMb, bool kCheck, bool kKeepOld = kCheck>
  void SolveImplicit(const ImpCoef& ic, Item& it, const Block& B, double t0, double t1);
  template <int kMb>
  bool CheckFast(const ImpCoef& ic, Item& it, const Block& B, std::vector<double>& eps) const;
  bool CheckCell(const ImpCoef& ic, const Item& it, const Block& B, int i, int m,
                 double eps) const;
  void Commit(const ImpCoef& ic, Item& it, const Block& B, const char* ok);
  void SolveAndCommit(const ImpCoef& ic, Item& it, const Block& B, double t0, double t1);

  const TransportOptions& opt_;
  const TransportProblem& p_;
  int N_, S_, M_;
  // Topology (CSR list of upstream segments), headwater boundaries.
  std::vector<int> up_start_, up_list_, down_;
  std::vector<double> dx_, h_up_, h_down_;
  // per segment: -1 none/not headwater, 0 concentration, 1 mass flux, 2 OTIS flux (a mass
  // flux applied as the concentration W / Q_b on the face, advective and dispersive)
  std::vector<int> bkind_;
  std::vector<int> bindex_;  // per segment: index in member.boundaries, -1 = none
  std::vector<Piece> pieces_;
  std::vector<int> piece_of_;  // per cell: index in pieces_
  std::vector<int> outlets_;
  bool has_reactions_ = false;
  bool has_loads_ = false;  // some member has a point load (EdgeLoads)
  // Hydraulics of the current step and a version number that changes with them.
  Hydraulics h_;
  long long hver_ = 0;
  std::vector<int> inflow_cells_;  // headwaters with Q_b > 0 (advective boundary inflow)
  std::vector<int> inflow_index_;  // per cell: index in inflow_cells_, or -1
  std::vector<int> kb_cells_;      // cells with a dispersive boundary conductance K_b > 0
  std::vector<int> kb_index_;      // per cell: index in kb_cells_, or -1
  std::vector<int> flux_cells_;    // mass-flux boundaries on wet headwaters without inflow
  // State (layout: Idx).
  std::vector<double> C_, Cs_, Cb_;
  std::vector<size_t> member_base_, member_stride_;
  std::vector<Budget> budget_;  // per species
};

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
  has_loads_ = false;
  for (const Forcing& f : p_.members) has_loads_ = has_loads_ || !f.loads.empty();
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
  const double n = std::max(1.0, std::ceil(nu / opt_.max_courant - 1e-12));
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
      double w = 1.0 - h_.Q[i] * tau / V;
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

// Kernels for a run of chain cells and one chunk of kLanes members of an ensemble block.
// A row of a chunk is one 8-wide vector (GCC vector extensions: one AVX-512 register, two
// AVX2 or four SSE2 ones), and a chunk goes through a whole step while its data stay in
// the L2 cache. The vector operations are the same IEEE operations, in the same order, as
// the scalar kernels (min / max / fabs / copysign written as their exact definitions), so
// a member's result does not depend on how it was batched.
constexpr int kLanes = 8;
// Two chunks side by side in the implicit solve (ForwardRun8 / BackRun8 with kNv = 2).
constexpr int kPair = 2 * kLanes;
// The helpers are always inlined; their by-value vector ABI never shows.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef double V8 __attribute__((vector_size(64)));
typedef double V8u __attribute__((vector_size(64), aligned(8), may_alias));
typedef long long I8 __attribute__((vector_size(64)));

#define QS_INLINE __attribute__((always_inline)) inline
QS_INLINE V8 Load8(const double* p) { return *reinterpret_cast<const V8u*>(p); }
QS_INLINE void Store8(double* p, V8 v) { *reinterpret_cast<V8u*>(p) = v; }
QS_INLINE V8 Splat8(double x) { return V8{x, x, x, x, x, x, x, x}; }
QS_INLINE V8 Min8(V8 a, V8 b) { return b < a ? b : a; }  // std::min(a, b)
QS_INLINE V8 Max8(V8 a, V8 b) { return a < b ? b : a; }  // std::max(a, b)
QS_INLINE V8 Abs8(V8 a) {
  return reinterpret_cast<V8>(reinterpret_cast<I8>(a) & 0x7fffffffffffffffLL);
}
QS_INLINE V8 CopySign8(V8 mag, V8 sgn) {
  return reinterpret_cast<V8>((reinterpret_cast<I8>(mag) & 0x7fffffffffffffffLL) |
                              (reinterpret_cast<I8>(sgn) & static_cast<long long>(0x8000000000000000ULL)));
}
QS_INLINE double HMax8(V8 t) {
#ifdef __clang__
  t = Max8(t, __builtin_shufflevector(t, t, 4, 5, 6, 7, 0, 1, 2, 3));
  t = Max8(t, __builtin_shufflevector(t, t, 2, 3, 0, 1, 6, 7, 4, 5));
  t = Max8(t, __builtin_shufflevector(t, t, 1, 0, 3, 2, 5, 4, 7, 6));
#else
  t = Max8(t, __builtin_shuffle(t, I8{4, 5, 6, 7, 0, 1, 2, 3}));
  t = Max8(t, __builtin_shuffle(t, I8{2, 3, 0, 1, 6, 7, 4, 5}));
  t = Max8(t, __builtin_shuffle(t, I8{1, 0, 3, 2, 5, 4, 7, 6}));
#endif
  return t[0];
}
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

void Engine::AdvectHalf(Item& it, const Block& B, double ta, int nsub) {
  const double tau = it.adv.tau;
  for (int k = 0; k < nsub; ++k) {
    double t0 = ta + k * tau, t1 = ta + (k + 1) * tau;
    if (B.mb == 1 && B.stride == 1) {
      AdvectSub<1>(it, B, t0, t1);
    } else if (B.mb == kLanes) {
      AdvectSub<kLanes>(it, B, t0, t1);
    } else {
      AdvectSub<0>(it, B, t0, t1);
    }
  }
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
      double w = l.load_g_s.Average(t0, t1) * MidLoadFraction(l.load_g_s, it.step_t0, it.step_t1);
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
// in I, as before.
double Engine::MidLoadFraction(const TimeSeries& w, double t0, double t1) {
  const double half = 0.5 * (t1 - t0);
  if (!(half > 0)) return 1.0;
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
      if (l.species != it.s || h_.V[l.segment] <= 0) continue;
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

// One step (or the phases of it that `phases` names) for one work item. Chunks of kLanes
// members go through the phases one after the other, so that a chunk's data stay in cache.
void Engine::StepItem(Item& it, double t, double dt, int na, double tf, int phases) {
  const double t_mid = t + 0.5 * dt, t_end = t + dt;
  const double tau_a = 0.5 * dt / na;
  if (it.adv.tau != tau_a || it.adv.hver != hver_ || !opt_.reuse_factorizations) {
    BuildAdvCoef(&it.adv, tau_a);
  }
  const Block all = MainBlock(it);
  const size_t n_all = static_cast<size_t>(N_) * all.mb;
  it.step_t0 = t;
  it.step_t1 = t_end;
  // Columns of the block's chunks: loads before the first advection half / after the second.
  auto advect1 = [&](const Block& B) {
    if (has_loads_) EdgeLoads(it, B, true);
    AdvectHalf(it, B, t, na);
  };
  auto advect2 = [&](const Block& B) {
    AdvectHalf(it, B, t_mid, na);
    if (has_loads_) EdgeLoads(it, B, false);
  };
  auto chunk = [&](int c) {
    Block B = all;
    B.C += c;
    B.Cs += c;
    B.Cb += c;
    B.member += c;
    B.mb = std::min(kLanes, all.mb - c);
    return B;
  };
  if (phases & kPhaseJoint) {
    // All members of the species (the item holds them all) together: the advection, then
    // what a joint fallback needs to restore (state and budget), the checked full steps;
    // if any member failed, everything is restored and redone with positive sub-steps.
    if (phases & kPhaseAdvect1) {
      for (int c = 0; c < all.mb; c += kLanes) advect1(chunk(c));
    }
    it.any_fail = false;
    it.budget_before = it.budget;
    it.bC.assign(all.C, all.C + n_all);
    it.bCs.assign(all.Cs, all.Cs + n_all);
    it.bCb.assign(all.Cb, all.Cb + n_all);
    for (int c = 0; c < all.mb; c += kLanes) Implicit(it, chunk(c), t, t_end, tf, kCandidate);
    if (it.any_fail) {
      std::copy(it.bC.begin(), it.bC.end(), all.C);
      std::copy(it.bCs.begin(), it.bCs.end(), all.Cs);
      std::copy(it.bCb.begin(), it.bCb.end(), all.Cb);
      it.budget = it.budget_before;
      for (int c = 0; c < all.mb; c += kLanes) Implicit(it, chunk(c), t, t_end, tf, kFallback);
    }
    if (phases & kPhaseAdvect2) {
      for (int c = 0; c < all.mb; c += kLanes) advect2(chunk(c));
    }
    return;
  }
  // Two full chunks at a time share the implicit solve (its recurrences overlap); the
  // advection goes chunk by chunk. Members that fail the check are redone together with
  // those of the item's other chunks, after all of them (fewer, fuller groups); a block
  // with such a member takes its second advection after that. A member's operations are
  // the same either way.
  std::vector<int>& pending = it.pending;
  std::vector<int>& waiting = it.waiting;  // first column of each block still to advect
  pending.clear();
  waiting.clear();
  // Columns of the block that starts at column c: a pair of chunks, or what is left.
  auto block_width = [&](int c) {
    return all.mb - c >= kPair ? kPair : std::min(kLanes, all.mb - c);
  };
  for (int c = 0; c < all.mb;) {
    const int width = block_width(c);
    Block B = chunk(c);
    B.mb = width;
    if (phases & kPhaseAdvect1) {
      for (int h = c; h < c + width; h += kLanes) advect1(chunk(h));
    }
    const size_t before = pending.size();
    if (phases & kPhaseImplicit) Implicit(it, B, t, t_end, tf, kIndependent, &pending, c);
    if (phases & kPhaseAdvect2) {
      if (pending.size() > before) {
        waiting.push_back(c);
      } else {
        for (int h = c; h < c + width; h += kLanes) advect2(chunk(h));
      }
    }
    c += width;
  }
  if (!pending.empty()) RedoMembers(it, all, pending, t, t_end, tf);
  for (int c : waiting) {
    for (int h = c; h < c + block_width(c); h += kLanes) advect2(chunk(h));
  }
}

TransportResult Engine::Run() {
  auto wall0 = std::chrono::steady_clock::now();
  FlushSubnormals flush;
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

  // Work items: (species, block of members). Members are split only as far as threads
  // need; each block keeps the member-inner layout contiguous for vectorization.
  int threads = 1;
#ifdef _OPENMP
  threads = opt_.num_threads > 0 ? opt_.num_threads : omp_get_max_threads();
#endif
  // How members are advanced when the adaptive check fails for some of them: independently
  // (each member = its own single run), or all members of the species together (the same
  // linear operator for all of them, so that member sums add up). Together, a species'
  // members stay in one work item: threads then work on different species only.
  const bool together = opt_.positive_implicit && opt_.adaptive_implicit &&
                        !opt_.independent_members && M_ > 1;
  int blocks = 1;
  if (S_ < threads && !opt_.steady_state && !together) {
    blocks = std::min(M_, (threads + S_ - 1) / S_);
  }
  std::vector<int> bounds(blocks + 1);
  for (int b = 0; b <= blocks; ++b) bounds[b] = M_ * b / blocks;
  // With a fixed flow field and no reactions the work items never interact and each runs
  // all its steps on its own (free-running, below). Blocks of kCacheBlock members then keep
  // a block's state and scratch in the L2 cache from one step to the next (a 64-member
  // block of 2000 cells, 1 MB of state alone, would come from L3 every step). One pair of
  // chunks per block: blocks of 32 run the 64-member benchmark (D = 0.3) 10% slower on one
  // thread and reach only 1.7-1.8x on two; they batch the redo of failing members better
  // (app3: 200 instead of 227 ms), which does not make up for it.
  const bool steady_flow = p_.flow.states.size() == 1;
  const bool fixed_hydraulics = steady_flow && opt_.reuse_factorizations;
  constexpr int kCacheBlock = kPair;
  if (!opt_.steady_state && !together && fixed_hydraulics && !has_reactions_ &&
      M_ / blocks > kCacheBlock) {
    bounds.clear();
    for (int m = 0; m < M_; m += kCacheBlock) bounds.push_back(m);
    bounds.push_back(M_);
    blocks = static_cast<int>(bounds.size()) - 1;
  }
  SetBlocks(bounds);
  ComputeHydraulics(FlowAt(p_.start_time_s), &h_);
  OnHydraulics();
  Initialize(h_);
  if (opt_.steady_state) {
    SolveSteady(&r);
    r.summary.wall_time_s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    return r;
  }
  std::vector<double> initial_mass(S_);
  for (int s = 0; s < S_; ++s) initial_mass[s] = Mass(s, h_.V);

  const int n_items = S_ * blocks;
  std::vector<Item> items(n_items);
  for (int k = 0; k < n_items; ++k) {
    const int b = k % blocks;
    InitItem(items[k], k / blocks, bounds[b], bounds[b + 1]);
  }

  TransportSummary& sum = r.summary;
  // The steps, shortened to land on the output times, and how many outputs are due after
  // each.
  struct StepInfo {
    double t, dt;
    int outputs_after;
    int na;  // advection sub-steps per half step (steady flow: known in advance)
  };
  std::vector<StepInfo> steps;
  size_t next_out = 0;
  {
    double t = p_.start_time_s;
    while (next_out < outputs.size() &&
           outputs[next_out] <= t + 1e-9 * std::max(1.0, p_.time_step_s)) {
      Record(static_cast<int>(next_out++), &r);
    }
    const double tol = 1e-9 * p_.time_step_s;
    double last_dt = -1.0;
    int na = 1;
    while (t < p_.end_time_s - tol) {
      double dt = std::min(p_.time_step_s, p_.end_time_s - t);
      if (next_out < outputs.size()) dt = std::min(dt, outputs[next_out] - t);
      const double t_end = t + dt;
      size_t after = next_out;
      while (after < outputs.size() && outputs[after] <= t_end + tol) ++after;
      if (fixed_hydraulics && dt != last_dt) {
        for (int i = 0; i < N_; ++i) {
          if (h_.V[i] > 0) {
            sum.max_courant_requested = std::max(sum.max_courant_requested,
                                                 std::max(h_.Q[i], h_.Qin[i]) * dt / h_.V[i]);
          }
        }
        na = AdvectionSubsteps(h_, 0.5 * dt);
        last_dt = dt;
      }
      steps.push_back({t, dt, static_cast<int>(after), na});
      next_out = after;
      t = t_end;
    }
  }
  // Outputs recorded before the first step.
  int recorded = 0;
  while (recorded < r.num_times &&
         outputs[recorded] <= p_.start_time_s + 1e-9 * std::max(1.0, p_.time_step_s)) {
    ++recorded;
  }
  // Work items never interact while no reaction couples the species and the hydraulics are
  // fixed: each then runs all its steps without waiting for the others (no barrier per
  // step).
  const bool free_running = !has_reactions_ && fixed_hydraulics;
  const int implicit_phase = together ? kPhaseJoint : kPhaseImplicit;
  std::exception_ptr error;
  auto keep_error = [&]() {
#pragma omp critical(qingshui_transport_error)
    if (!error) error = std::current_exception();
  };
  const double t_end_run = steps.empty() ? p_.start_time_s : steps.back().t + steps.back().dt;
  std::vector<double> v_prev = h_.V;
  if (free_running) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (n_items > 1)
    for (int k = 0; k < n_items; ++k) {
      Item& it = items[k];
      if (it.m1 <= it.m0) continue;
      FlushSubnormals flush_in_thread;
      try {
        it.step_used.assign(steps.size(), 0);
        int rec = recorded;
        for (size_t q = 0; q < steps.size(); ++q) {
          const StepInfo& st = steps[q];
          it.used_substeps = 0;
          StepItem(it, st.t, st.dt, st.na, TemperatureFactor(it.s, st.t + 0.5 * st.dt),
                   kPhaseAdvect1 | implicit_phase | kPhaseAdvect2);
          it.step_used[q] = it.used_substeps;
          if (!std::isfinite(C_[Idx(it.s, 0, it.m0)])) {
            throw SolverError("transport: non-finite concentration");
          }
          for (; rec < st.outputs_after; ++rec) RecordRange(it.s, it.m0, it.m1, rec, &r);
        }
      } catch (...) {
        keep_error();
      }
    }
    if (error) std::rethrow_exception(error);
    for (size_t q = 0; q < steps.size(); ++q) {
      int used = 0;
      for (const Item& it : items) {
        if (!it.step_used.empty()) used = std::max(used, it.step_used[q]);
      }
      sum.implicit_substeps += used;
      sum.max_implicit_substeps = std::max(sum.max_implicit_substeps, used);
    }
  } else {
    std::vector<double> tf(S_);
    for (StepInfo& st : steps) {
      const double t = st.t, dt = st.dt, t_mid = t + 0.5 * dt;
      int& na = st.na;
      if (!fixed_hydraulics) {
        ComputeHydraulics(FlowAt(t_mid), &h_);
        OnHydraulics();
        Rebase(v_prev, h_.V, &budget_);
        v_prev = h_.V;
        for (int i = 0; i < N_; ++i) {
          if (h_.V[i] > 0) {
            sum.max_courant_requested = std::max(sum.max_courant_requested,
                                                 std::max(h_.Q[i], h_.Qin[i]) * dt / h_.V[i]);
          }
        }
        na = AdvectionSubsteps(h_, 0.5 * dt);
      }
      for (int s = 0; s < S_; ++s) tf[s] = TemperatureFactor(s, t_mid);
      for (Item& it : items) it.used_substeps = 0;
      auto run_items = [&](int phases) {
#pragma omp parallel for schedule(static) num_threads(threads) if (n_items > 1)
        for (int k = 0; k < n_items; ++k) {
          Item& it = items[k];
          if (it.m1 <= it.m0) continue;
          FlushSubnormals flush_in_thread;
          try {
            StepItem(it, t, dt, na, tf[it.s], phases);
          } catch (...) {
            keep_error();
          }
        }
        if (error) std::rethrow_exception(error);
      };
      // Strang splitting: A(dt/2) [R(dt/2)] I(dt) [R(dt/2)] A(dt/2).
      if (!has_reactions_) {
        run_items(kPhaseAdvect1 | implicit_phase | kPhaseAdvect2);
      } else {
        run_items(kPhaseAdvect1);
        React(h_, 0.5 * dt, t_mid, &budget_);
        run_items(implicit_phase);
        React(h_, 0.5 * dt, t_mid, &budget_);
        run_items(kPhaseAdvect2);
      }
      int used = 0;
      for (const Item& it : items) used = std::max(used, it.used_substeps);
      sum.implicit_substeps += used;
      sum.max_implicit_substeps = std::max(sum.max_implicit_substeps, used);
      if (!std::isfinite(C_[0])) throw SolverError("transport: non-finite concentration");
      for (; recorded < st.outputs_after; ++recorded) Record(recorded, &r);
    }
  }
  for (const StepInfo& st : steps) {
    sum.advection_substeps += 2LL * st.na;
    sum.max_advection_substeps = std::max(sum.max_advection_substeps, st.na);
  }
  sum.num_steps = static_cast<int>(steps.size());
  const double t = t_end_run;
  next_out = steps.empty() ? next_out : static_cast<size_t>(steps.back().outputs_after);
  while (next_out < outputs.size()) Record(static_cast<int>(next_out++), &r);
  for (const Item& it : items) {
    budget_[it.s].Add(it.budget);
    sum.implicit_checked_steps += it.checked;
    sum.implicit_fallbacks += it.fallbacks;
  }
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
          diag[i] = h.Qin[i] + kd + h.Kb[i] + h.qin_dx[i] + MainLoss(h, i, s, tfac[s]) * V +
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
        mb.decay_main_g += MainLoss(h, i, s, tf) * h.V[i] * c;
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
  bool any_steady_start = false;
  for (const Forcing& f : problem.members) any_steady_start |= f.initial_steady_state;
  if (!any_steady_start || options_.steady_state) {
    Engine engine(options_, problem);
    return engine.Run();
  }
  // Members that start from their steady state: one steady solve for all of them (they
  // share the flow field), at the first flow state in force at start_time_s.
  TransportProblem steady = problem;
  steady.members.clear();
  std::vector<int> which;
  for (size_t m = 0; m < problem.members.size(); ++m) {
    if (!problem.members[m].initial_steady_state) continue;
    which.push_back(static_cast<int>(m));
    steady.members.push_back(problem.members[m]);
    steady.members.back().initial_steady_state = false;
  }
  const double at = problem.members[which.front()].initial_steady_time_s;
  for (int m : which) {
    const double a = problem.members[m].initial_steady_time_s;
    if (!(a == at || (std::isnan(a) && std::isnan(at)))) {
      throw ConfigError("transport: members " + std::to_string(which.front()) + " and " +
                        std::to_string(m) + " ask for steady initial states at different " +
                        "times (initial_steady_time_s); one steady solve serves all of them");
    }
  }
  if (!std::isnan(at)) {
    if (!std::isfinite(at)) throw ConfigError("transport: initial_steady_time_s must be finite");
    steady.start_time_s = at;
  }
  steady.end_time_s = steady.start_time_s;
  steady.output_times_s.clear();
  TransportOptions so = options_;
  so.steady_state = true;
  so.store_fields = true;
  const TransportResult r = Engine(so, steady).Run();
  TransportProblem started = problem;
  const size_t n = static_cast<size_t>(r.num_segments) * r.num_species;
  for (size_t k = 0; k < which.size(); ++k) {
    Forcing& f = started.members[which[k]];
    const size_t at = r.Index(static_cast<int>(k), 0, 0, r.num_segments, 0);
    f.initial_concentration_g_m3.assign(r.concentration_g_m3.begin() + at,
                                        r.concentration_g_m3.begin() + at + n);
    f.initial_storage_g_m3.assign(r.storage_g_m3.begin() + at, r.storage_g_m3.begin() + at + n);
    f.initial_sorbed_g_kg.assign(r.sorbed_g_kg.begin() + at, r.sorbed_g_kg.begin() + at + n);
    f.initial_steady_state = false;
  }
  Engine engine(options_, started);
  TransportResult out = engine.Run();
  out.summary.steady_iterations += r.summary.steady_iterations;
  return out;
}

}  // namespace qingshui::transport
