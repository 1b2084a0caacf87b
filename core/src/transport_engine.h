// Transport engine internals shared by its translation units (transport_*.cpp): the work
// item and block types, the hydraulics and coefficient caches, and the Engine class. Not a
// public header: users see qingshui/core/transport.h.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include <Eigen/Dense>
#if defined(__x86_64__) || defined(__SSE2__)
#include <xmmintrin.h>
#define QINGSHUI_HAVE_MXCSR 1
#endif

#include "qingshui/core/error.h"
#include "qingshui/core/transport.h"

namespace qingshui::transport::engine {


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
  std::vector<double> rk0;  // Advection::kSspRk2: the state at the start of a sub-step
  // Joint fallback (members not independent): failure flag, state and budget to restore.
  bool any_fail = false;
  Budget budget_before;
  std::vector<double> bC, bCs, bCb;
  std::vector<int> step_used;  // implicit sub-steps per step (free-running items)
  double step_t0 = 0.0, step_t1 = 0.0;  // the step StepItem is taking (EdgeLoads, Sources)
  bool step_switches = false;            // a load may switch inside it (LoadsSwitchInside)
};

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
  template <int kMb>
  void AdvectSspRk2(Item& it, const Block& B, double t0, double t1);
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
  // Loads that may switch inside a step (EdgeLoads): the times at which any member's step
  // load changes (sorted), and whether some load is interpolated linearly (then every step
  // is looked at). A step with no such time inside it leaves every load whole in I.
  std::vector<double> load_switches_;
  bool linear_loads_ = false;
  bool LoadsSwitchInside(double t0, double t1) const {
    if (linear_loads_) return true;
    const auto it = std::upper_bound(load_switches_.begin(), load_switches_.end(), t0);
    return it != load_switches_.end() && *it < t1;
  }
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

}  // namespace qingshui::transport::engine
