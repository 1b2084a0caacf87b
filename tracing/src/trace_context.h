// Internals of the tracer (docs/tracing.md §5-7) shared by its phases and the benchmark's
// reference implementation: the prepared query (Context), one local optimum of a hypothesis
// (Fit), the fitting toolkit (trace_fit.cpp) and the state a trace carries from phase to
// phase (TraceRun). Trace() in tracer.cpp runs the phases in order:
//
//   PrepareContext          trace_prepare.cpp          species, window, kernels, table
//   PrescreenCandidates     trace_single_releases.cpp  coarse grid of every kernel point
//   FitSingleReleases       trace_single_releases.cpp  one release per candidate / reach
//   SearchSeveralReleases   trace_several_releases.cpp additions and swaps, 2-3 releases
//   TemperEvidence          trace_hypotheses.cpp       noise scale from the best fit
//   MergeModes              trace_hypotheses.cpp       fits of one release set = modes
//   EstimateHypotheses      trace_hypotheses.cpp       intervals of every hypothesis
//   CredibleSetAndGroups    trace_diagnostics.cpp      marginals, 90% set, groups
//   AssessIdentifiability   trace_diagnostics.cpp      posterior against prior widths
//   RecommendNextSamples    trace_next_samples.cpp     where a sample separates the leaders
//   Finish                  trace_diagnostics.cpp      warnings, pruning, summary
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <exception>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "qingshui/tracing/kernels.h"
#include "qingshui/tracing/tracer.h"
#include "tracer_model.h"

namespace qingshui::tracing::detail {

using Clock = std::chrono::steady_clock;
inline double Seconds(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

constexpr double kLn2Pi = 1.8378770664093453;

// Unregistered releases' grid points (and every point of a residual prescreen) are screened
// coarsely — one duration, a coarser step, no refinement — since they only place the start
// of a fit along a reach or of an added release.
constexpr double kCoarseScreenDurationH = 3.0;
constexpr double kCoarseScreenStepH = 3.0;

// Passes of iteratively reweighted least squares for the Huber weights inside a fit's
// misfit (docs/tracing.md §4): enough for the weights of gross outliers to settle; the
// prescreens use one pass (they only rank starts).
constexpr int kFitReweightingPasses = 4;

// Candidate times of a next sample: hourly after the window's end (a crew's planning
// resolution).
constexpr double kRecommendStepS = 3600.0;

// An unregistered release may sit anywhere on one of these reaches.
struct UReach {
  std::string reach;
  ReleaseSpec spec;  // reach_points etc. filled
  double length_km = 0.0;
};

// One local optimum of one hypothesis.
struct Fit {
  HypothesisSpec spec;
  std::vector<std::string> labels;  // per release: source id or "unregistered:<reach>"
  std::vector<double> theta;
  double cost = 0.0;  // robust misfit over all blocks, at the bounded masses
  Evaluation eval;
  std::vector<double> jtj;    // P x P Gauss-Newton Hessian of cost / 2 (data part)
  std::vector<double> dmass;  // [(j * Ks + k) * P + q] derivative of masses (t) by theta
  double log_prior_h = 0.0;   // log P(hypothesis)
  double log_prior_theta = 0.0;
  std::vector<double> prior_hess;   // diagonal
  double log_evidence = -INFINITY;  // at the final noise scale
  std::vector<double> cov;          // P x P posterior covariance at the final noise scale
};

// A query prepared for fitting (PrepareContext).
struct Context {
  const Network* net = nullptr;
  TraceOptions options;
  std::vector<std::string> species;
  ObservationTable table;
  std::shared_ptr<const ResponseKernels> kernels;  // shared with a KernelCache, if any
  std::vector<int> candidates;  // registered kernel points some observed block sees
  std::vector<UReach> ureaches;
  double unreg_length_km = 0.0;
  double t_lo_h = 0.0, t_hi_h = 0.0;  // release start bounds (h after t_ref)
  double lnd_lo = 0.0, lnd_hi = 0.0;
  std::vector<double> candidate_weight;  // by kernel point
  double candidate_weight_total = 0.0;
  std::string reference;  // reference species of the mass prior
  int reference_index = 0;
  double log_p_norm = 0.0;  // log of the hypotheses' prior total
  long long evaluations = 0;
  int fits = 0;
};

// What PrepareContext finds beside the context.
struct Prepared {
  std::vector<double> species_median;
  std::set<int> observed_stations;
  double w_start = 0.0, w_end = 0.0;
};

// Everything a query needs before fitting: the species traced, the window, the response
// kernels, the observation table with its noise model, the baseline-only misfit of each
// block, the candidates and the reaches an unregistered release may sit on.
Prepared PrepareContext(Context& c, const Network& net, const ObservationSet& obs,
                        const TraceOptions& options, TraceSummary& sum);

// Runs body(i) for i in [0, n) on `threads` threads; the first exception is rethrown after
// the loop (an exception must not leave an OpenMP region).
template <typename F>
void ParallelFor(int n, int threads, F body) {
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (...) {
#pragma omp critical(qingshui_trace_failure)
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

// --- The fitting toolkit (trace_fit.cpp) -------------------------------------------------

std::vector<int> BlocksSeen(const Context& c, const std::vector<ReleaseSpec>& rel);
// The source kinds a release may be, with their prior weights.
std::vector<std::pair<std::string, double>> KindOptions(const Context& c, const ReleaseSpec& r);
// Range of the reference species' mass prior (tonnes).
std::array<double, 2> ReferenceMassRange(const Context& c);
// Hard upper bounds of a release's masses (tonnes, per traced species).
std::vector<double> MassBounds(const Context& c, const ReleaseSpec& r);
// A hypothesis of these releases: their mass bounds and the blocks they can reach.
HypothesisSpec MakeSpec(const Context& c, const std::vector<ReleaseSpec>& rel);
ReleaseSpec Registered(int point);
// Baseline-only misfit of the blocks the hypothesis does not reach.
double OtherBlocksCost(const Context& c, const HypothesisSpec& s);
// Baseline-only misfit of every block, of the observations minus `offset` (if given).
std::vector<double> BlockCosts(const Context& c, const Model& model,
                               const std::vector<double>* offset);
// Minimizes the hypothesis' misfit plus the factor priors over theta (in place), from its
// current value, within the bounds; `fixed` >= 0 holds that parameter constant.
double Solve(Context& c, const Model& model, const HypothesisSpec& spec, std::vector<double>* theta,
             const std::vector<double>* offset, int max_iterations, int fixed = -1);

struct Start {
  double tmid_h, lnd, cost;
};
// The prescreen's grid kept as a quadrature over a single release's timing prior (docs/
// tracing.md §6, "Releases the data cannot see"): per grid point and species, G of the
// misfit's quadratic in the mass (m·G·m − 2·h·m relative to no release), at nominal hydraulics.
struct TimingQuadrature {
  std::vector<double> G;  // [point * Ks + k]
  int num_midpoints = 0;     // per duration (the grid is durations x midpoints)
  int num_durations = 0;
  double step_h = 0.0;
};
// Coarse grid over start and duration at the nominal hydraulics; the best few distinct
// starts, best first (docs/tracing.md §5.1).
std::vector<Start> Prescreen(Context& c, const Model& coarse, int point,
                             const std::vector<double>& block_costs,
                             const std::vector<double>* offset = nullptr,
                             const std::vector<double>& durations_h = {1.5, 8.0},
                             double step_h = 2.0, bool refine = true,
                             TimingQuadrature* quadrature = nullptr);
// A finer local grid (midpoint ± step, durations 0.5-4 h) around a coarse start.
Start RefineStart(Context& c, const Model& coarse, int point,
                  const std::vector<double>& block_costs, const std::vector<double>* offset,
                  const Start& start, double step_h);

double LogNormalPdf(double x, double sd);
void ComputeCurvature(Context& c, const Model& model, Fit* fit);
double LogMassIntegral(const Context& c, const Fit& fit, double s2);
// log of the prior probability that a single release would go unseen, weighted by how little
// it would change the data: the mean over the timing prior (midpoint uniform over
// [t_lo_h, t_hi_h], the grid's durations; midpoints after the last sample see nothing) and the
// reference mass prior of exp(−½ m·a·m / s2), a = the misfit's curvature in the mass with the
// species at the kind's median ratios. Times the hypothesis' prior and the no-release
// likelihood it is the evidence of the releases the data cannot tell from none, which the
// Laplace evidence at a fit's optimum leaves out.
double LogUnseenReleaseShare(const Context& c, const ReleaseSpec& r, const TimingQuadrature& q,
                             double s2);
void ComputeEvidence(const Context& c, Fit* fit, double s2);

std::string Label(const Context& c, const ReleaseSpec& r);
double LogPriorHypothesis(const Context& c, const std::vector<ReleaseSpec>& rel);
// Solves one local optimum of the releases from theta, with its curvature and evidence.
Fit RunFit(Context& c, const Model& model, const std::vector<ReleaseSpec>& rel,
           std::vector<double> theta, int max_iterations);

// The profile of a release's duration (docs/tracing.md §6, "Intervals").
struct DurationProfile {
  std::vector<double> lnd, cost, mid;
  double mid_sd = 0.0;  // conditional sd of the midpoint given the duration (Laplace)
};
// Travel time (s, nominal velocity) from a release to the first observed station it reaches.
double FirstTravelTime(const Context& c, const ReleaseSpec& r, const std::vector<double>& theta,
                       int offset);
DurationProfile ProfileDuration(Context& c, const Model& model, const Fit& fit, int j, double s2);

std::vector<double> StartTheta(const std::vector<ReleaseSpec>& rel,
                               const std::vector<std::array<double, 3>>& per_release, double lnf,
                               double lng);
// The fitted release signal of a fit at every row (for residual prescreens).
std::vector<double> FittedSignal(const Context& c, const Model& model, const Fit& fit);
// 90% interval of a mixture of normals, clamped to [lo, hi].
std::array<double, 2> Interval(const std::vector<double>& w, const std::vector<double>& mu,
                               const std::vector<double>& sd, double lo, double hi);

// --- The state of one trace, passed from phase to phase ----------------------------------

// A fit to run: the releases and the parameters to start from.
struct FitJob {
  std::vector<ReleaseSpec> rel;
  std::vector<double> theta;
};

// The fits of one set of releases: local optima (modes) of one hypothesis.
struct ModeGroup {
  std::string key;
  std::vector<int> modes;  // indices into TraceRun::fits
  double log_z_modes = -INFINITY;  // the modes' Laplace evidence, summed
  double log_z = -INFINITY;        // the hypothesis' evidence (>= log_z_modes)
};

struct TraceRun {
  Context c;
  Prepared prep;
  std::unique_ptr<Model> model;   // misfit with 4 reweighting passes (fits)
  std::unique_ptr<Model> coarse;  // one pass (prescreens)
  int max_sources = 1;
  std::vector<int> screen_points;           // kernel points prescreened
  std::vector<std::vector<Start>> starts;   // by kernel point
  std::vector<TimingQuadrature> quadrature;  // by kernel point (prescreened ones)
  std::vector<Fit> fits;                    // every local optimum found
  double s2 = 1.0;                          // noise scale squared
  std::map<std::string, ModeGroup> by_key;  // hypotheses by their release set
  double log_z0 = 0.0;                      // "no release"
  double log_max = 0.0, norm = 0.0;         // normalization of the posterior
  std::map<std::string, int> best_mode;     // hypothesis label -> best fit index
  TraceResult result;
};

void PrescreenCandidates(TraceRun& run);
void FitSingleReleases(TraceRun& run);
void SearchSeveralReleases(TraceRun& run);
void TemperEvidence(TraceRun& run);
void MergeModes(TraceRun& run);
void EstimateHypotheses(TraceRun& run);
void CredibleSetAndGroups(TraceRun& run);
void AssessIdentifiability(TraceRun& run);
void RecommendNextSamples(TraceRun& run);
void Finish(TraceRun& run, Clock::time_point t_begin);

}  // namespace qingshui::tracing::detail
