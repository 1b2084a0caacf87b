#include "qingshui/tracing/tracer.h"

#include <ceres/ceres.h>

#include <Eigen/Dense>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "math_util.h"
#include "qingshui/core/error.h"
#include "qingshui/tracing/kernels.h"
#include "tracer_model.h"

namespace qingshui::tracing {

using detail::Block;
using detail::Evaluation;
using detail::HypothesisSpec;
using detail::Model;
using detail::ObservationTable;
using detail::ReleaseSpec;

bool TraceOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (max_sources < 1 || max_sources > 3) return fail("max_sources: expected 1, 2 or 3");
  if (!(noise_relative > 0) || noise_relative >= 1) {
    return fail("noise_relative: expected a relative standard deviation in (0, 1)");
  }
  if (std::isfinite(start_s) && std::isfinite(end_s) && !(end_s > start_s)) {
    return fail("end: expected a time after start");
  }
  if (!(kernel_step_s >= 300) || kernel_step_s > 4 * 3600.0)
    return fail("kernel_step_s: expected 300 s to 4 h");
  if (!(grid_spacing_km > 0)) return fail("grid_spacing_km: expected > 0");
  if (!(recommend_horizon_s >= 0) || recommend_horizon_s > 7 * 86400.0) {
    return fail("recommend_horizon_s: expected 0 to 7 days");
  }
  if (num_threads < 1) return fail("num_threads: expected >= 1");
  std::string e;
  if (!priors.IsValid(&e)) return fail("priors: " + e);
  return true;
}

namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a) {
  return std::chrono::duration<double>(Clock::now() - a).count();
}

constexpr double kLn2Pi = 1.8378770664093453;

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

struct Context {
  const Network* net = nullptr;
  TraceOptions options;
  std::vector<std::string> species;
  ObservationTable table;
  ResponseKernels kernels;
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

std::vector<int> BlocksSeen(const Context& c, const std::vector<ReleaseSpec>& rel) {
  std::vector<int> out;
  for (size_t b = 0; b < c.table.blocks.size(); ++b) {
    const Block& B = c.table.blocks[b];
    bool seen = false;
    for (const auto& r : rel) {
      if (!r.unregistered()) {
        seen = seen || c.kernels.Sees(r.point, B.station);
      } else {
        seen = seen || c.kernels.PointSees(r.reach, r.km_lo, B.station);
      }
    }
    if (seen) out.push_back(static_cast<int>(b));
  }
  return out;
}

// The source kinds a release may be, with their prior weights: its own for a registered
// source, every kind of positive weight for an unregistered release (a mixture).
std::vector<std::pair<std::string, double>> KindOptions(const Context& c, const ReleaseSpec& r) {
  std::vector<std::pair<std::string, double>> options;
  if (!r.unregistered()) {
    options.push_back({c.kernels.points[r.point].kind, 1.0});
    return options;
  }
  for (const auto& [kind, sig] : c.options.priors.kinds) {
    if (sig.prior_weight > 0) options.push_back({kind, sig.prior_weight});
  }
  if (options.empty()) options.push_back({"", 1.0});
  return options;
}

// Range of the reference species' mass prior (tonnes of the traced reference species): the
// file's range, scaled when tracing uses another reference species.
std::array<double, 2> ReferenceMassRange(const Context& c) {
  const auto& pr = c.options.priors;
  const double scale = pr.Ratio("treatment_plant", c.reference, pr.reference_species).median;
  return {pr.mass_min_kg / 1000.0 * scale, pr.mass_max_kg / 1000.0 * scale};
}

// Standard normal quantile of 0.999: a species' mass bound is the reference bound times its
// ratio prior's 99.9% quantile, the point beyond which the prior holds a thousandth.
constexpr double kRatioBoundZ = 3.090232306167813;

// Hard upper bounds of a release's masses (tonnes, per traced species; docs/tracing.md §6):
// the reference species' at the end of its log-uniform prior, where the prior's density
// drops to zero; every other species' at that times the largest 99.9% quantile of its ratio
// prior over the kinds the release may be. No fit, prescreen or profile can go beyond them.
std::vector<double> MassBounds(const Context& c, const ReleaseSpec& r) {
  const auto& pr = c.options.priors;
  const double ref_max = ReferenceMassRange(c)[1];
  std::vector<double> out(c.species.size(), ref_max);
  const auto kinds = KindOptions(c, r);
  for (size_t k = 0; k < c.species.size(); ++k) {
    if (static_cast<int>(k) == c.reference_index) continue;
    double q = 0.0;
    for (const auto& kind : kinds) {
      const SpeciesRatio sr = pr.Ratio(kind.first, c.species[k], c.reference);
      q = std::max(q, sr.median * std::exp(kRatioBoundZ * sr.log_sd));
    }
    out[k] = ref_max * q;
  }
  return out;
}

HypothesisSpec MakeSpec(const Context& c, const std::vector<ReleaseSpec>& rel) {
  HypothesisSpec s;
  s.releases = rel;
  for (auto& r : s.releases) r.mass_max_t = MassBounds(c, r);
  s.blocks = BlocksSeen(c, rel);
  return s;
}

ReleaseSpec Registered(int point) {
  ReleaseSpec r;
  r.point = point;
  return r;
}

double OtherBlocksCost(const Context& c, const HypothesisSpec& s) {
  double total = c.table.h0_cost;
  for (int b : s.blocks) total -= c.table.blocks[b].h0_cost;
  return total;
}

// Baseline-only misfit of every block, of the observations minus `offset` (if given).
std::vector<double> BlockCosts(const Context& c, const Model& model,
                               const std::vector<double>* offset) {
  std::vector<double> out(c.table.blocks.size());
  Evaluation e;
  for (size_t b = 0; b < c.table.blocks.size(); ++b) {
    HypothesisSpec s;
    s.blocks = {static_cast<int>(b)};
    double th[2] = {0, 0};
    model.Evaluate(s, th, &e, false, offset);
    out[b] = e.cost;
  }
  return out;
}

// --- Ceres -------------------------------------------------------------------------------

// Finite-difference steps per parameter: the kernels are tabulated hourly and interpolated
// linearly, so steps of a fraction of the table spacing give derivatives of the shape of
// the response rather than of its interpolation kinks (a relative step of 1e-6 does not).
std::vector<double> StepSizes(const HypothesisSpec& s) {
  std::vector<double> h;
  for (const auto& r : s.releases) {
    h.push_back(0.05);                       // midpoint, h
    h.push_back(0.02);                       // ln duration
    if (r.unregistered()) h.push_back(0.1);  // km
  }
  h.push_back(0.005);  // ln velocity factor
  h.push_back(0.01);   // ln dispersion factor
  return h;
}

// The variable-projection misfit as a Ceres cost: residuals from Model::Evaluate, Jacobian
// by forward differences with the steps above (backward at an upper bound).
class VarProCost : public ceres::CostFunction {
 public:
  VarProCost(const Model* model, const HypothesisSpec* spec, const std::vector<double>* offset,
             const std::vector<double>* psi, long long* counter, int rows,
             std::vector<double> steps, std::vector<double> lo, std::vector<double> hi)
      : model_(model),
        spec_(spec),
        offset_(offset),
        psi_(psi),
        counter_(counter),
        steps_(std::move(steps)),
        lo_(std::move(lo)),
        hi_(std::move(hi)) {
    set_num_residuals(rows);
    mutable_parameter_block_sizes()->push_back(spec->num_params());
  }
  bool Evaluate(double const* const* p, double* residuals, double** jacobians) const override {
    const int P = spec_->num_params();
    const int n = num_residuals();
    thread_local Evaluation e;
    model_->Evaluate(*spec_, p[0], &e, true, offset_, psi_);
    ++*counter_;
    std::copy(e.residuals.begin(), e.residuals.end(), residuals);
    if (!jacobians || !jacobians[0]) return true;
    std::vector<double> th(p[0], p[0] + P);
    for (int q = 0; q < P; ++q) {
      double h = steps_[q];
      if (th[q] + h > hi_[q]) h = -h;
      const double keep = th[q];
      th[q] = keep + h;
      model_->Evaluate(*spec_, th.data(), &e, true, offset_, psi_);
      ++*counter_;
      th[q] = keep;
      for (int r = 0; r < n; ++r) jacobians[0][r * P + q] = (e.residuals[r] - residuals[r]) / h;
    }
    return true;
  }

 private:
  const Model* model_;
  const HypothesisSpec* spec_;
  const std::vector<double>* offset_;
  const std::vector<double>* psi_;
  long long* counter_;
  std::vector<double> steps_, lo_, hi_;
};

// ln f / s_f and ln g / s_g: the log-normal priors of the two factors.
class FactorPrior : public ceres::CostFunction {
 public:
  FactorPrior(int P, double sf, double sg) : P_(P), sf_(sf), sg_(sg) {
    set_num_residuals(2);
    mutable_parameter_block_sizes()->push_back(P);
  }
  bool Evaluate(double const* const* p, double* r, double** jac) const override {
    r[0] = p[0][P_ - 2] / sf_;
    r[1] = p[0][P_ - 1] / sg_;
    if (jac && jac[0]) {
      std::fill(jac[0], jac[0] + 2 * P_, 0.0);
      jac[0][P_ - 2] = 1.0 / sf_;
      jac[0][P_ + P_ - 1] = 1.0 / sg_;
    }
    return true;
  }

 private:
  int P_;
  double sf_, sg_;
};

void Bounds(const Context& c, const HypothesisSpec& s, std::vector<double>* lo,
            std::vector<double>* hi) {
  const int P = s.num_params();
  lo->assign(P, 0.0);
  hi->assign(P, 0.0);
  for (size_t j = 0; j < s.releases.size(); ++j) {
    const int o = s.offset(static_cast<int>(j));
    (*lo)[o] = c.t_lo_h;
    (*hi)[o] = c.t_hi_h;
    (*lo)[o + 1] = c.lnd_lo;
    (*hi)[o + 1] = c.lnd_hi;
    if (s.releases[j].unregistered()) {
      (*lo)[o + 2] = s.releases[j].km_lo;
      (*hi)[o + 2] = s.releases[j].km_hi;
    }
  }
  const auto& pr = c.options.priors;
  (*lo)[P - 2] = -4 * pr.velocity_log_sd;
  (*hi)[P - 2] = 4 * pr.velocity_log_sd;
  (*lo)[P - 1] = -3 * pr.dispersion_log_sd;
  (*hi)[P - 1] = 3 * pr.dispersion_log_sd;
}

// Minimizes the hypothesis' misfit plus the factor priors over theta (in place), from its
// current value, within the bounds; `fixed` >= 0 holds that parameter constant.
double Solve(Context& c, const Model& model, const HypothesisSpec& spec, std::vector<double>* theta,
             const std::vector<double>* offset, int max_iterations, int fixed = -1) {
  const int P = spec.num_params();
  int rows = 0;
  for (int b : spec.blocks) rows += c.table.blocks[b].end - c.table.blocks[b].begin;
  if (rows == 0) return 0.0;
  std::vector<double> lo, hi;
  Bounds(c, spec, &lo, &hi);
  for (int q = 0; q < P; ++q) (*theta)[q] = std::clamp((*theta)[q], lo[q], hi[q]);
  long long counter = 0;
  double final_cost = 0.0;
  // The Huber weights are frozen during each solve (a smooth least-squares problem for the
  // trust region); a second solve follows when they changed (iteratively reweighted).
  Evaluation e;
  model.Evaluate(spec, theta->data(), &e, false, offset);
  std::vector<double> psi = e.psi;
  for (int round = 0; round < 2; ++round) {
    ceres::Problem::Options po;
    ceres::Problem problem(po);
    problem.AddResidualBlock(
        new VarProCost(&model, &spec, offset, &psi, &counter, rows, StepSizes(spec), lo, hi),
        nullptr, theta->data());
    if (fixed >= 0) problem.SetManifold(theta->data(), new ceres::SubsetManifold(P, {fixed}));
    problem.AddResidualBlock(
        new FactorPrior(P, c.options.priors.velocity_log_sd, c.options.priors.dispersion_log_sd),
        nullptr, theta->data());
    for (int q = 0; q < P; ++q) {
      problem.SetParameterLowerBound(theta->data(), q, lo[q]);
      problem.SetParameterUpperBound(theta->data(), q, hi[q]);
    }
    ceres::Solver::Options so;
    so.linear_solver_type = ceres::DENSE_QR;
    so.max_num_iterations = max_iterations;
    so.function_tolerance = 1e-6;
    so.gradient_tolerance = 1e-10;
    so.parameter_tolerance = 1e-7;
    so.logging_type = ceres::SILENT;
    so.minimizer_progress_to_stdout = false;
    so.num_threads = 1;
    ceres::Solver::Summary summary;
    ceres::Solve(so, &problem, &summary);
    final_cost = summary.final_cost;
#pragma omp atomic
    c.fits += 1;
    model.Evaluate(spec, theta->data(), &e, false, offset);
    double change = 0.0;
    for (size_t r = 0; r < psi.size(); ++r) change = std::max(change, std::fabs(e.psi[r] - psi[r]));
    if (change < 0.05) break;
    psi = e.psi;
  }
#pragma omp atomic
  c.evaluations += counter;
  return final_cost;
}

// --- Prescreen ---------------------------------------------------------------------------

struct Start {
  double tmid_h, lnd, cost;
};

// Coarse grid over start and duration at the nominal hydraulics; the best few distinct
// starts, best first.
// `block_costs`: baseline-only misfit of every block of the data screened (the observations,
// or the residual after `offset`), so that the costs are totals comparable across points.
std::vector<Start> Prescreen(Context& c, const Model& coarse, int point,
                             const std::vector<double>& block_costs,
                             const std::vector<double>* offset = nullptr,
                             const std::vector<double>& durations_h = {1.5, 8.0},
                             double step_h = 2.0, bool refine = true) {
  HypothesisSpec spec = MakeSpec(c, {Registered(point)});
  std::vector<Start> grid;
  if (spec.blocks.empty()) return grid;
  double others = std::accumulate(block_costs.begin(), block_costs.end(), 0.0);
  for (int b : spec.blocks) others -= block_costs[b];
  double t_last = -INFINITY;
  for (int b : spec.blocks) t_last = std::max(t_last, c.table.t[c.table.blocks[b].end - 1]);
  const double t_last_h = (t_last - c.table.t_ref) / 3600.0;
  Evaluation e;
  for (double d_h : durations_h) {
    for (double t0 = c.t_lo_h; t0 <= std::min(c.t_hi_h, t_last_h); t0 += step_h) {
      double th[4] = {t0, std::log(d_h), 0.0, 0.0};
      coarse.Evaluate(spec, th, &e, false, offset);
      grid.push_back({t0, std::log(d_h), e.cost + others});
    }
  }
#pragma omp atomic
  c.evaluations += static_cast<long long>(grid.size());
  std::sort(grid.begin(), grid.end(),
            [](const Start& a, const Start& b) { return a.cost < b.cost; });
  std::vector<Start> out;
  for (const auto& g : grid) {
    bool distinct = true;
    for (const auto& o : out) distinct = distinct && std::fabs(o.tmid_h - g.tmid_h) >= 3.0;
    if (distinct) out.push_back(g);
    if (out.size() >= 3) break;
  }
  if (!refine) return out;
  // Refine around each: a short release seen by a station close below it passes between two
  // samples, so the misfit has a minimum per sampling interval; a finer local grid over the
  // midpoint and duration finds the right one before the local optimizer starts.
  std::vector<Start> fine;
  for (const auto& o : out) {
    Start best = o;
    for (double dt = -step_h; dt <= step_h + 1e-9; dt += 0.5) {
      for (double d_h : {0.5, 1.5, 4.0}) {
        const double t = std::clamp(o.tmid_h + dt, c.t_lo_h, c.t_hi_h);
        double th[4] = {t, std::log(d_h), 0.0, 0.0};
        coarse.Evaluate(spec, th, &e, false, offset);
        if (e.cost + others < best.cost) best = {t, std::log(d_h), e.cost + others};
      }
    }
#pragma omp atomic
    c.evaluations += 27;
    fine.push_back(best);
  }
  std::sort(fine.begin(), fine.end(),
            [](const Start& a, const Start& b) { return a.cost < b.cost; });
  return fine;
}

// A finer local grid (midpoint ± step, durations 0.5-4 h) around a coarse start.
Start RefineStart(Context& c, const Model& coarse, int point,
                  const std::vector<double>& block_costs, const std::vector<double>* offset,
                  const Start& start, double step_h) {
  HypothesisSpec spec = MakeSpec(c, {Registered(point)});
  double others = std::accumulate(block_costs.begin(), block_costs.end(), 0.0);
  for (int b : spec.blocks) others -= block_costs[b];
  Start best = start;
  Evaluation e;
  int n = 0;
  for (double dt = -step_h; dt <= step_h + 1e-9; dt += 0.5) {
    for (double d_h : {0.5, 1.5, 4.0}) {
      const double t = std::clamp(start.tmid_h + dt, c.t_lo_h, c.t_hi_h);
      double th[4] = {t, std::log(d_h), 0.0, 0.0};
      coarse.Evaluate(spec, th, &e, false, offset);
      ++n;
      if (e.cost + others < best.cost) best = {t, std::log(d_h), e.cost + others};
    }
  }
#pragma omp atomic
  c.evaluations += n;
  return best;
}

// --- Laplace and mass integral -----------------------------------------------------------

double LogNormalPdf(double x, double sd) {
  return -0.5 * x * x / (sd * sd) - std::log(sd) - 0.5 * kLn2Pi;
}

void ComputeCurvature(Context& c, const Model& model, Fit* fit) {
  const HypothesisSpec& s = fit->spec;
  const int P = s.num_params();
  std::vector<double> lo, hi;
  Bounds(c, s, &lo, &hi);
  model.Evaluate(s, fit->theta.data(), &fit->eval, true);
  // Derivatives with the Huber weights frozen at the optimum: the Gauss-Newton Hessian of
  // the robust misfit (smooth, unlike the reweighting itself).
  const std::vector<double> psi = fit->eval.psi;
  Evaluation e0;
  model.Evaluate(s, fit->theta.data(), &e0, true, nullptr, &psi);
  const int rows = static_cast<int>(fit->eval.residuals.size());
  const int J = static_cast<int>(s.releases.size());
  const int Ks = c.kernels.num_species();
  fit->cost = fit->eval.cost + OtherBlocksCost(c, s);
  std::vector<double> Jm(static_cast<size_t>(rows) * P, 0.0);
  fit->dmass.assign(static_cast<size_t>(J) * Ks * P, 0.0);
  Evaluation ep, em;
  for (int q = 0; q < P; ++q) {
    double h;
    if (q >= P - 2) {
      h = 0.01;
    } else {
      int j = 0, o = 0;
      while (o + s.releases[j].num_params() <= q) o += s.releases[j++].num_params();
      h = q - o == 0 ? 0.1 : q - o == 1 ? 0.05 : 0.2;
    }
    std::vector<double> tp = fit->theta, tm = fit->theta;
    tp[q] = std::min(hi[q], tp[q] + h);
    tm[q] = std::max(lo[q], tm[q] - h);
    const double step = tp[q] - tm[q];
    if (!(step > 0)) continue;
    model.Evaluate(s, tp.data(), &ep, true, nullptr, &psi);
    model.Evaluate(s, tm.data(), &em, true, nullptr, &psi);
    for (int r = 0; r < rows; ++r)
      Jm[static_cast<size_t>(r) * P + q] = (ep.residuals[r] - em.residuals[r]) / step;
    for (int a = 0; a < J; ++a) {
      for (int k = 0; k < Ks; ++k) {
        fit->dmass[(static_cast<size_t>(a) * Ks + k) * P + q] =
            (ep.mass[a][k] - em.mass[a][k]) / step;
      }
    }
  }
#pragma omp atomic
  c.evaluations += 2 * P + 1;
  fit->jtj.assign(static_cast<size_t>(P) * P, 0.0);
  for (int r = 0; r < rows; ++r) {
    for (int a = 0; a < P; ++a) {
      const double ja = Jm[static_cast<size_t>(r) * P + a];
      if (ja == 0) continue;
      for (int b = 0; b < P; ++b) fit->jtj[a * P + b] += ja * Jm[static_cast<size_t>(r) * P + b];
    }
  }
  // Priors: density at the optimum and curvature (uniform priors get the curvature of a
  // normal with their variance, so that an unconstrained direction keeps its prior width).
  const auto& pr = c.options.priors;
  fit->prior_hess.assign(P, 0.0);
  fit->log_prior_theta = 0.0;
  for (int j = 0; j < J; ++j) {
    const int o = s.offset(j);
    const double tr = c.t_hi_h - c.t_lo_h, dr = c.lnd_hi - c.lnd_lo;
    fit->log_prior_theta += -std::log(tr) - std::log(dr);
    fit->prior_hess[o] = 12.0 / (tr * tr);
    fit->prior_hess[o + 1] = 12.0 / (dr * dr);
    if (s.releases[j].unregistered()) {
      const double L = s.releases[j].km_hi - s.releases[j].km_lo;
      fit->log_prior_theta += -std::log(c.unreg_length_km);
      fit->prior_hess[o + 2] = 12.0 / (L * L);
    }
  }
  fit->log_prior_theta += LogNormalPdf(fit->theta[P - 2], pr.velocity_log_sd) +
                          LogNormalPdf(fit->theta[P - 1], pr.dispersion_log_sd);
  fit->prior_hess[P - 2] = 1.0 / (pr.velocity_log_sd * pr.velocity_log_sd);
  fit->prior_hess[P - 1] = 1.0 / (pr.dispersion_log_sd * pr.dispersion_log_sd);
}

// log of ∫ exp(-½ [Q(m) − Q(m̂)] / s2) π(m) dm: the masses' share of the evidence under the
// mass prior (log-uniform reference mass, log-normal species ratios of the source's kind; a
// mixture over kinds for unregistered releases), Q(m) = m'Gm − 2h'm the misfit's quadratic
// in the masses and m̂ the fit's masses (least squares within the prior's bounds). The
// integral is taken relative to the fitted misfit, never to an unconstrained optimum that
// the prior may exclude (an unconstrained mass of 10²³ t must not lend its fit to the
// hypothesis). Importance sampling from an even mixture of a Gaussian around m̂ and the
// prior (balance heuristic, Veach & Guibas 1995): the Gaussian covers well-determined masses,
// the prior releases the data barely see (a flat likelihood must not earn the best-fit
// likelihood). Quasi-random points with a fixed rotation: deterministic.
double LogMassIntegral(const Context& c, const Fit& fit, double s2) {
  const int J = static_cast<int>(fit.spec.releases.size());
  const int Ks = c.kernels.num_species();
  if (J == 0) return 0.0;
  const auto& pr = c.options.priors;
  const auto [lo, hi] = ReferenceMassRange(c);
  const double log_range = std::log(hi / lo);
  const int r = c.reference_index;
  const auto& m_hat = fit.eval.mass;
  // Per species: G/s2 and the gradient of ½Q/s2 at m̂, so that
  // ½[Q(m) − Q(m̂)]/s2 = ½ d'(G/s2)d + g'd with d = m − m̂ (g = 0 where m̂ is interior).
  std::vector<Eigen::MatrixXd> Gs(Ks);
  std::vector<Eigen::VectorXd> grad(Ks);
  // Proposal: a Gaussian around m̂ with precision G/s2 plus 1/bound² (no wider than the
  // prior's range, so that a species without signal does not waste its samples far outside).
  std::vector<Eigen::MatrixXd> chol_cov(Ks);
  std::vector<Eigen::MatrixXd> prec(Ks);
  std::vector<double> log_det_prec(Ks, 0.0);
  for (int k = 0; k < Ks; ++k) {
    Eigen::MatrixXd G(J, J);
    Eigen::VectorXd h(J), mk(J);
    for (int a = 0; a < J; ++a) {
      for (int b = 0; b < J; ++b) G(a, b) = fit.eval.normal[k][a * J + b] / s2;
      h(a) = fit.eval.rhs[k][a] / s2;
      mk(a) = m_hat[a][k];
    }
    Gs[k] = G;
    grad[k] = G * mk - h;
    Eigen::MatrixXd P = G;
    for (int a = 0; a < J; ++a) {
      const double bound = fit.spec.releases[a].mass_max_t.empty()
                               ? hi
                               : fit.spec.releases[a].mass_max_t[k];
      P(a, a) += 1.0 / (bound * bound);
    }
    Eigen::LLT<Eigen::MatrixXd> llt(P);
    if (llt.info() != Eigen::Success) {
      P.diagonal().array() += 1e-9 * P.trace();
      llt.compute(P);
    }
    prec[k] = P;
    const Eigen::MatrixXd L = llt.matrixL();
    for (int a = 0; a < J; ++a) log_det_prec[k] += 2 * std::log(L(a, a));
    // Covariance factor: (L L')^-1 = L^-T L^-1, so m = m̂ + L^-T z.
    chol_cov[k] =
        L.transpose().triangularView<Eigen::Upper>().solve(Eigen::MatrixXd::Identity(J, J));
  }
  // Kind options per release (weights) and their ratio priors.
  struct Kind {
    double weight;
    std::vector<double> log_median, sd;
  };
  std::vector<std::vector<Kind>> kinds(J);
  for (int j = 0; j < J; ++j) {
    const auto options = KindOptions(c, fit.spec.releases[j]);
    double wsum = 0.0;
    for (const auto& o : options) wsum += o.second;
    for (const auto& o : options) {
      Kind kd;
      kd.weight = o.second / wsum;
      for (int k = 0; k < Ks; ++k) {
        const SpeciesRatio sr = pr.Ratio(o.first, c.species[k], c.reference);
        kd.log_median.push_back(std::log(sr.median));
        kd.sd.push_back(std::max(sr.log_sd, 1e-3));
      }
      kinds[j].push_back(kd);
    }
  }
  auto log_prior = [&](const std::vector<std::vector<double>>& m) {
    double lp = 0.0;
    for (int j = 0; j < J; ++j) {
      const double mref = m[j][r];
      if (!(mref >= lo && mref <= hi)) return -std::numeric_limits<double>::infinity();
      lp += -std::log(mref) - std::log(log_range);
      double best = -INFINITY;
      std::vector<double> opt;
      for (const auto& kd : kinds[j]) {
        double l = std::log(kd.weight);
        for (int k = 0; k < Ks && std::isfinite(l); ++k) {
          if (k == r) continue;
          if (!(m[j][k] > 0)) {
            l = -INFINITY;
            break;
          }
          l += -std::log(m[j][k]) +
               LogNormalPdf(std::log(m[j][k] / mref) - kd.log_median[k], kd.sd[k]);
        }
        opt.push_back(l);
        best = std::max(best, l);
      }
      if (!std::isfinite(best)) return -std::numeric_limits<double>::infinity();
      double sum = 0.0;
      for (double l : opt) sum += std::exp(l - best);
      lp += best + std::log(sum);
    }
    return lp;
  };
  // log of the integrand's likelihood factor, exp(-½ [Q(m) − Q(m̂)] / s2), and of the
  // Gaussian proposal's density.
  auto log_likelihood = [&](const std::vector<std::vector<double>>& m) {
    double ll = 0.0;
    for (int k = 0; k < Ks; ++k) {
      Eigen::VectorXd d(J);
      for (int a = 0; a < J; ++a) d(a) = m[a][k] - m_hat[a][k];
      ll += -0.5 * d.dot(Gs[k] * d) - grad[k].dot(d);
    }
    return ll;
  };
  auto log_gauss = [&](const std::vector<std::vector<double>>& m) {
    double lg = 0.0;
    for (int k = 0; k < Ks; ++k) {
      Eigen::VectorXd d(J);
      for (int a = 0; a < J; ++a) d(a) = m[a][k] - m_hat[a][k];
      lg += -0.5 * d.dot(prec[k] * d) - 0.5 * J * kLn2Pi + 0.5 * log_det_prec[k];
    }
    return lg;
  };
  constexpr int kSamples = 512;
  std::vector<double> terms;
  terms.reserve(kSamples);
  std::vector<std::vector<double>> m(J, std::vector<double>(Ks, 0.0));
  const int D = J * Ks;
  for (int q = 0; q < kSamples; ++q) {
    const bool from_prior = q % 2 == 1;
    const int idx = q / 2;
    if (!from_prior) {
      for (int k = 0; k < Ks; ++k) {
        Eigen::VectorXd z(J);
        for (int a = 0; a < J; ++a) {
          z(a) = detail::NormalQuantile(detail::Halton(idx, detail::Prime(k * J + a), 0.5));
        }
        const Eigen::VectorXd v = chol_cov[k] * z;
        for (int a = 0; a < J; ++a) m[a][k] = m_hat[a][k] + v(a);
      }
    } else {
      for (int j = 0; j < J; ++j) {
        const double u = detail::Halton(idx, detail::Prime(D + j * (Ks + 1)), 0.25);
        const double mref = lo * std::exp(u * log_range);
        // Kind by its weight, then the ratios.
        const double uk = detail::Halton(idx, detail::Prime(D + j * (Ks + 1) + 1), 0.75);
        size_t o = 0;
        double acc = kinds[j][0].weight;
        while (o + 1 < kinds[j].size() && uk > acc) acc += kinds[j][++o].weight;
        for (int k = 0; k < Ks; ++k) {
          if (k == r) {
            m[j][k] = mref;
            continue;
          }
          const double z = detail::NormalQuantile(
              detail::Halton(idx, detail::Prime(D + j * (Ks + 1) + 2 + k), 0.5));
          m[j][k] = mref * std::exp(kinds[j][o].log_median[k] + kinds[j][o].sd[k] * z);
        }
      }
    }
    const double lp = log_prior(m);
    if (!std::isfinite(lp)) {
      terms.push_back(-INFINITY);
      continue;
    }
    const double lg = log_gauss(m);
    // Mixture proposal density ½ N + ½ π; integrand exp(-½ ΔQ/s2) · π(m).
    const double lr = std::log(0.5) + std::max(lg, lp) +
                      std::log1p(std::exp(std::min(lg, lp) - std::max(lg, lp)));
    terms.push_back(log_likelihood(m) + lp - lr);
  }
  const double mx = *std::max_element(terms.begin(), terms.end());
  if (!std::isfinite(mx)) return -1e300;
  double sum = 0.0;
  for (double t : terms) sum += std::exp(t - mx);
  return mx + std::log(sum / kSamples);
}

void ComputeEvidence(const Context& c, Fit* fit, double s2) {
  const int P = fit->spec.num_params();
  Eigen::MatrixXd H(P, P);
  for (int a = 0; a < P; ++a) {
    for (int b = 0; b < P; ++b) H(a, b) = fit->jtj[a * P + b] / s2;
    H(a, a) += fit->prior_hess[a];
  }
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H);
  Eigen::VectorXd ev = eig.eigenvalues();
  const double floor = 1e-9 * std::max(1.0, ev.maxCoeff());
  double logdet = 0.0;
  for (int a = 0; a < P; ++a) logdet += std::log(std::max(ev(a), floor));
  Eigen::MatrixXd cov =
      eig.eigenvectors() *
      ev.unaryExpr([&](double x) { return 1.0 / std::max(x, floor); }).asDiagonal() *
      eig.eigenvectors().transpose();
  fit->cov.assign(static_cast<size_t>(P) * P, 0.0);
  for (int a = 0; a < P; ++a) {
    for (int b = 0; b < P; ++b) fit->cov[a * P + b] = cov(a, b);
  }
  fit->log_evidence = fit->log_prior_h + fit->log_prior_theta - 0.5 * fit->cost / s2 +
                      0.5 * (P * kLn2Pi - logdet) + LogMassIntegral(c, *fit, s2);
}

// --- Fits --------------------------------------------------------------------------------

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

std::string Label(const Context& c, const ReleaseSpec& r) {
  return r.unregistered() ? "unregistered:" + r.reach : c.kernels.points[r.point].source_id;
}

double LogPriorHypothesis(const Context& c, const std::vector<ReleaseSpec>& rel) {
  const auto& pr = c.options.priors;
  const int K = static_cast<int>(rel.size());
  if (K == 0) return std::log(pr.p_no_release) - c.log_p_norm;
  double lp = std::log(pr.p_sources[K - 1]) - c.log_p_norm + std::lgamma(K + 1.0);
  for (const auto& r : rel) {
    if (r.unregistered()) {
      lp += std::log(pr.p_unregistered);  // the km density is in the parameter prior
    } else {
      lp += std::log(1 - pr.p_unregistered) +
            std::log(c.candidate_weight[r.point] / c.candidate_weight_total);
    }
  }
  return lp;
}

Fit RunFit(Context& c, const Model& model, const std::vector<ReleaseSpec>& rel,
           std::vector<double> theta, int max_iterations) {
  Fit fit;
  fit.spec = MakeSpec(c, rel);
  for (const auto& r : rel) fit.labels.push_back(Label(c, r));
  fit.log_prior_h = LogPriorHypothesis(c, rel);
  Solve(c, model, fit.spec, &theta, nullptr, max_iterations);
  fit.theta = theta;
  ComputeCurvature(c, model, &fit);
  ComputeEvidence(c, &fit, 1.0);
  return fit;
}

// The posterior of a release's duration, which the data often bound only from above (a
// short release looks like a pulse): the profile misfit on a grid of ln duration, the other
// parameters re-optimized at each point (warm-started, a few iterations). Start times are
// midpoint − duration/2, so this also gives the start's interval.
struct DurationProfile {
  std::vector<double> lnd, cost, mid;
  double mid_sd = 0.0;  // conditional sd of the midpoint given the duration (Laplace)
};

// Travel time (s, nominal velocity) from a release to the first observed station it reaches.
double FirstTravelTime(const Context& c, const ReleaseSpec& r, const std::vector<double>& theta,
                       int offset) {
  double best = INFINITY;
  const int p = r.unregistered() ? -1 : r.point;
  for (const Block& B : c.table.blocks) {
    if (p >= 0) {
      if (c.kernels.Sees(p, B.station)) best = std::min(best, c.kernels.TravelTime(p, B.station));
    } else {
      // The nearest reach point upstream of the release position stands in for it.
      const double x = theta[offset + 2];
      for (size_t i = 0; i < r.reach_points.size(); ++i) {
        if (r.reach_km[i] <= x && c.kernels.Sees(r.reach_points[i], B.station) &&
            c.kernels.PointSees(r.reach, x, B.station)) {
          best = std::min(best, c.kernels.TravelTime(r.reach_points[i], B.station) -
                                    (c.kernels.TravelTimeOnReach(r.reach, x) - r.reach_tau[i]));
        }
      }
    }
  }
  return std::isfinite(best) ? std::max(0.0, best) : 0.0;
}

DurationProfile ProfileDuration(Context& c, const Model& model, const Fit& fit, int j, double s2) {
  DurationProfile out;
  const HypothesisSpec& s = fit.spec;
  const int P = s.num_params();
  const int q = s.offset(j) + 1;  // ln duration
  const int m = q - 1;            // midpoint
  const double vmm = fit.cov[m * P + m], vdd = fit.cov[q * P + q], vmd = fit.cov[m * P + q];
  const double timing = c.options.priors.timing_error_relative *
                        FirstTravelTime(c, s.releases[j], fit.theta, s.offset(j)) / 3600.0 /
                        std::exp(fit.theta[P - 2]);
  out.mid_sd = std::sqrt(std::max(1e-6, vmm - (vdd > 0 ? vmd * vmd / vdd : 0.0)) + timing * timing);
  Evaluation e;
  auto point = [&](std::vector<double>* th, double v) {
    (*th)[q] = v;
    Solve(c, model, s, th, nullptr, 6, q);
    model.Evaluate(s, th->data(), &e, false);
    const double prior = 0.5 * (std::pow((*th)[P - 2] / c.options.priors.velocity_log_sd, 2) +
                                std::pow((*th)[P - 1] / c.options.priors.dispersion_log_sd, 2));
    return e.cost + OtherBlocksCost(c, s) + 2 * prior;
  };
  const double step = 0.35;
  const double center = fit.theta[q];
  std::vector<std::array<double, 3>> pts;  // lnd, cost, mid
  {
    std::vector<double> th = fit.theta;
    const double c0 = point(&th, center);
    pts.push_back({center, c0, th[m]});
  }
  for (int dir : {-1, 1}) {
    std::vector<double> th = fit.theta;
    for (int k = 1; k < 40; ++k) {
      double v = center + dir * k * step;
      const bool last = v <= c.lnd_lo || v >= c.lnd_hi;
      v = std::clamp(v, c.lnd_lo, c.lnd_hi);
      if (std::fabs(v - pts.back()[0]) < 1e-9 && k > 1) break;
      const double cost = point(&th, v);
      pts.push_back({v, cost, th[m]});
      double best = INFINITY;
      for (const auto& p : pts) best = std::min(best, p[1]);
      if ((cost - best) / s2 > 12.0 || last) break;
    }
  }
  std::sort(pts.begin(), pts.end());
  pts.erase(std::unique(pts.begin(), pts.end(),
                        [](const auto& a, const auto& b) { return std::fabs(a[0] - b[0]) < 1e-9; }),
            pts.end());
  for (const auto& p : pts) {
    out.lnd.push_back(p[0]);
    out.cost.push_back(p[1]);
    out.mid.push_back(p[2]);
  }
  return out;
}

std::vector<double> StartTheta(const std::vector<ReleaseSpec>& rel,
                               const std::vector<std::array<double, 3>>& per_release, double lnf,
                               double lng) {
  std::vector<double> th;
  for (size_t j = 0; j < rel.size(); ++j) {
    th.push_back(per_release[j][0]);
    th.push_back(per_release[j][1]);
    if (rel[j].unregistered()) th.push_back(per_release[j][2]);
  }
  th.push_back(lnf);
  th.push_back(lng);
  return th;
}

// The fitted release signal of a fit at every row (for residual prescreens).
std::vector<double> FittedSignal(const Context& c, const Model& model, const Fit& fit) {
  std::vector<double> sig(c.table.num_rows(), 0.0);
  const int P = fit.spec.num_params();
  for (const Block& B : c.table.blocks) {
    for (int i = B.begin; i < B.end; ++i) {
      double v = 0.0;
      for (size_t j = 0; j < fit.spec.releases.size(); ++j) {
        const double m = fit.eval.mass[j][B.species];
        if (m == 0) continue;
        v += m * model.Response(fit.spec.releases[j], fit.theta.data() + fit.spec.offset(j),
                                fit.theta[P - 2], fit.theta[P - 1], B.station, B.species,
                                c.table.t[i]);
      }
      sig[i] = v;
    }
  }
  return sig;
}

// --- Output helpers ----------------------------------------------------------------------

std::array<double, 2> Interval(const std::vector<double>& w, const std::vector<double>& mu,
                               const std::vector<double>& sd, double lo, double hi) {
  return {std::clamp(detail::MixtureQuantile(w, mu, sd, 0.05), lo, hi),
          std::clamp(detail::MixtureQuantile(w, mu, sd, 0.95), lo, hi)};
}

}  // namespace

// Everything a query needs before fitting: the species traced, the window, the response
// kernels, the observation table with its noise model, the baseline-only misfit of each
// block, the candidates and the reaches an unregistered release may sit on.
namespace {
struct Prepared {
  std::vector<double> species_median;
  std::set<int> observed_stations;
  double w_start = 0.0, w_end = 0.0;
};

}  // namespace

static Prepared PrepareContext(Context& c, const Network& net, const ObservationSet& obs,
                               const TraceOptions& options, TraceSummary& sum) {
  c.net = &net;
  c.options = options;
  const auto& pr = options.priors;
  Prepared out;
  std::vector<double>& species_median = out.species_median;
  std::set<int>& observed_stations = out.observed_stations;
  // Species traced.
  std::set<std::string> observed_species;
  for (const auto& o : obs.rows) {
    if (!net.FindSpecies(o.species)) {
      throw ConfigError(Located(obs.file, o.line, "species",
                                "unknown species '" + o.species + "' (not in the network)"));
    }
    if (!net.FindStation(o.station)) {
      throw ConfigError(Located(obs.file, o.line, "station",
                                "unknown station '" + o.station + "' (not in the network)"));
    }
    observed_species.insert(o.species);
  }
  if (!options.species.empty()) {
    for (const auto& s : options.species) {
      if (!net.FindSpecies(s))
        throw ConfigError("trace options: species: unknown species '" + s + "'");
      if (observed_species.count(s)) c.species.push_back(s);
    }
  } else {
    std::set<std::string> known = {pr.reference_species};
    for (const auto& [kind, sig] : pr.kinds) {
      for (const auto& [sp, r] : sig.ratios) known.insert(sp);
    }
    for (const auto& sp : net.species) {
      if (observed_species.count(sp.id) && known.count(sp.id)) c.species.push_back(sp.id);
    }
    if (c.species.empty()) {
      for (const auto& sp : net.species) {
        if (observed_species.count(sp.id)) c.species.push_back(sp.id);
      }
    }
  }
  if (c.species.empty())
    throw DataError(Located(obs.file, 0, "species", "no observations of a traced species"));
  c.reference = c.species[0];
  for (size_t k = 0; k < c.species.size(); ++k) {
    if (c.species[k] == pr.reference_species) c.reference = c.species[k];
  }
  c.reference_index = static_cast<int>(std::find(c.species.begin(), c.species.end(), c.reference) -
                                       c.species.begin());

  // Window.
  double t_min = INFINITY, t_max = -INFINITY;
  for (const auto& o : obs.rows) {
    if (std::isfinite(options.start_s) && o.time_s < options.start_s) continue;
    if (std::isfinite(options.end_s) && o.time_s > options.end_s) continue;
    if (std::find(c.species.begin(), c.species.end(), o.species) == c.species.end()) continue;
    t_min = std::min(t_min, o.time_s);
    t_max = std::max(t_max, o.time_s);
  }
  if (!std::isfinite(t_min)) {
    throw DataError(Located(obs.file, 0, "time", "no observations in the window"));
  }
  const double w_start = std::isfinite(options.start_s) ? options.start_s : t_min;
  const double w_end = std::isfinite(options.end_s) ? options.end_s : t_max;
  out.w_start = w_start;
  out.w_end = w_end;
  sum.window_start_s = w_start;
  sum.window_end_s = w_end;
  c.table.t_ref = w_start;
  c.t_lo_h = -pr.lead_s / 3600.0;
  c.t_hi_h = (w_end - w_start) / 3600.0;
  c.lnd_lo = std::log(pr.duration_min_s / 3600.0);
  c.lnd_hi = std::log(pr.duration_max_s / 3600.0);

  // Kernels.
  const auto t_kernels = Clock::now();
  KernelOptions ko;
  ko.date = options.date.empty() ? LocalDate(w_start) : options.date;
  ko.season = options.season;
  ko.temperature_c = options.temperature_c;
  ko.time_step_s = options.kernel_step_s;
  ko.horizon_s =
      (w_end + options.recommend_horizon_s) - (w_start - pr.lead_s) + options.kernel_step_s;
  ko.grid_spacing_km = options.unregistered ? options.grid_spacing_km : 0.0;
  ko.species = c.species;
  ko.num_threads = options.num_threads;
  sum.hydraulics_date = ko.date;
  std::vector<KernelPoint> points;
  for (const auto& kp : DefaultKernelPoints(net, ko.grid_spacing_km)) {
    if (!kp.source_id.empty() && pr.KindWeight(kp.kind) <= 0) continue;
    points.push_back(kp);
  }
  c.kernels = BuildKernels(net, points, ko);
  sum.kernel_seconds = Seconds(t_kernels);
  sum.num_kernel_points = static_cast<int>(c.kernels.points.size());
  if (c.kernels.max_relative_mass_error > 1e-8) {
    sum.warnings.push_back("kernel mass balance error " +
                           std::to_string(c.kernels.max_relative_mass_error));
  }

  // Observation table: blocks by station (network order) and species, rows by time.
  std::map<std::string, int> station_index;
  for (int s = 0; s < c.kernels.num_stations(); ++s) station_index[c.kernels.station_ids[s]] = s;
  struct Row {
    int s, k;
    double t, y;
  };
  std::vector<Row> rows;
  for (const auto& o : obs.rows) {
    if (o.time_s < w_start || o.time_s > w_end) continue;
    auto it = std::find(c.species.begin(), c.species.end(), o.species);
    if (it == c.species.end()) continue;
    rows.push_back({station_index[o.station], static_cast<int>(it - c.species.begin()), o.time_s,
                    o.value_mg_l});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.s, a.k, a.t) < std::tie(b.s, b.k, b.t);
  });
  species_median.assign(c.species.size(), 0.0);
  for (size_t k = 0; k < c.species.size(); ++k) {
    std::vector<double> v;
    for (const auto& r : rows) {
      if (r.k == static_cast<int>(k)) v.push_back(r.y);
    }
    if (!v.empty()) {
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      species_median[k] = v[v.size() / 2];
    }
  }
  for (size_t i = 0; i < rows.size();) {
    size_t j = i;
    while (j < rows.size() && rows[j].s == rows[i].s && rows[j].k == rows[i].k) ++j;
    // Baseline guess for the model-error term: the lower quartile of the block.
    std::vector<double> v;
    for (size_t r = i; r < j; ++r) v.push_back(rows[r].y);
    std::nth_element(v.begin(), v.begin() + v.size() / 4, v.end());
    const double base = v[v.size() / 4];
    Block B;
    B.station = rows[i].s;
    B.species = rows[i].k;
    B.begin = c.table.num_rows();
    const double floor = 0.01 * species_median[rows[i].k] + 1e-6;
    for (size_t r = i; r < j; ++r) {
      const double y = rows[r].y;
      const double excess = std::max(0.0, y - base);
      const double sd2 = std::pow(options.noise_relative * y, 2) +
                         std::pow(pr.model_error_relative * excess, 2) + floor * floor;
      c.table.t.push_back(rows[r].t);
      c.table.y.push_back(y);
      c.table.w.push_back(1.0 / sd2);
    }
    B.end = c.table.num_rows();
    if (B.end - B.begin >= 2) {
      c.table.blocks.push_back(B);
      observed_stations.insert(B.station);
    }
    i = j;
  }
  if (c.table.blocks.empty()) {
    throw DataError(Located(obs.file, 0, "",
                            "need at least two samples of a station and species in the window"));
  }
  sum.num_observations = c.table.num_rows();
  sum.num_stations = static_cast<int>(observed_stations.size());
  sum.species = c.species;

  const Model model(c.kernels, c.table, 4);
  // Baseline-only misfit of every block.
  {
    Evaluation e;
    c.table.h0_cost = 0.0;
    for (size_t b = 0; b < c.table.blocks.size(); ++b) {
      HypothesisSpec s;
      s.blocks = {static_cast<int>(b)};
      double th[2] = {0, 0};
      model.Evaluate(s, th, &e, false);
      c.table.blocks[b].h0_cost = e.cost;
      c.table.blocks[b].h0_baseline = e.baseline[0];
      c.table.h0_cost += e.cost;
    }
  }

  // Candidates and unregistered reaches.
  c.candidate_weight.assign(c.kernels.points.size(), 0.0);
  for (size_t p = 0; p < c.kernels.points.size(); ++p) {
    const KernelPoint& kp = c.kernels.points[p];
    if (kp.source_id.empty()) continue;
    bool seen = false;
    for (const Block& B : c.table.blocks)
      seen = seen || c.kernels.Sees(static_cast<int>(p), B.station);
    if (seen) {
      c.candidates.push_back(static_cast<int>(p));
      c.candidate_weight[p] = pr.KindWeight(kp.kind);
      c.candidate_weight_total += c.candidate_weight[p];
    } else {
      sum.unobservable.push_back(kp.source_id);
    }
  }
  sum.num_candidates = static_cast<int>(c.candidates.size());
  if (options.unregistered && pr.p_unregistered > 0) {
    for (const auto& reach : net.reaches) {
      UReach u;
      u.reach = reach.id;
      std::vector<std::pair<double, int>> pts;
      for (size_t p = 0; p < c.kernels.points.size(); ++p) {
        if (c.kernels.points[p].reach == reach.id)
          pts.push_back({c.kernels.points[p].km, static_cast<int>(p)});
      }
      std::sort(pts.begin(), pts.end());
      bool seen = false;
      for (const Block& B : c.table.blocks)
        seen = seen || c.kernels.PointSees(reach.id, reach.start_km, B.station);
      if (!seen || pts.empty()) continue;
      u.spec.reach = reach.id;
      u.spec.km_lo = reach.start_km;
      u.spec.km_hi = reach.end_km();
      for (const auto& [km, p] : pts) {
        // Points in one segment add nothing (identical kernels); keep the first.
        if (!u.spec.reach_km.empty() &&
            c.kernels.points[p].segment == c.kernels.points[u.spec.reach_points.back()].segment)
          continue;
        u.spec.reach_points.push_back(p);
        u.spec.reach_km.push_back(km);
        u.spec.reach_tau.push_back(c.kernels.TravelTimeOnReach(reach.id, km));
      }
      u.length_km = reach.length_m / 1000.0;
      c.unreg_length_km += u.length_km;
      c.ureaches.push_back(u);
    }
  }
  {
    double total = pr.p_no_release;
    for (int K = 1; K <= options.max_sources && K <= static_cast<int>(pr.p_sources.size()); ++K)
      total += pr.p_sources[K - 1];
    c.log_p_norm = std::log(total);
  }
  return out;
}

TraceResult Trace(const Network& net, const ObservationSet& obs, const TraceOptions& options) {
  const auto t_begin = Clock::now();
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("trace options: " + error);
  Context c;
  c.net = &net;
  c.options = options;
  const auto& pr = options.priors;
  TraceResult result;
  TraceSummary& sum = result.summary;

  const Prepared prep = PrepareContext(c, net, obs, options, sum);
  const std::vector<double>& species_median = prep.species_median;
  const std::set<int>& observed_stations = prep.observed_stations;
  const double w_end = prep.w_end;
  const Model model(c.kernels, c.table, 4);
  const Model coarse(c.kernels, c.table, 1);
  const int max_sources = std::min<int>(options.max_sources, static_cast<int>(pr.p_sources.size()));

  const auto t_fit = Clock::now();
  // Prescreen every kernel point that matters (registered candidates, reach points).
  std::vector<int> screen_points = c.candidates;
  for (const auto& u : c.ureaches) {
    for (int p : u.spec.reach_points) screen_points.push_back(p);
  }
  std::sort(screen_points.begin(), screen_points.end());
  screen_points.erase(std::unique(screen_points.begin(), screen_points.end()), screen_points.end());
  std::vector<std::vector<Start>> starts(c.kernels.points.size());
  const std::vector<double> h0_blocks = BlockCosts(c, coarse, nullptr);
  ParallelFor(static_cast<int>(screen_points.size()), options.num_threads, [&](int i) {
    const int p = screen_points[i];
    // Grid points (unregistered releases) on a coarser grid: they only place the start.
    starts[p] = c.kernels.points[p].source_id.empty()
                    ? Prescreen(c, coarse, p, h0_blocks, nullptr, {3.0}, 3.0, false)
                    : Prescreen(c, coarse, p, h0_blocks);
  });

  std::vector<Fit> fits;
  // Single releases at registered candidates: every candidate from its best start; the
  // better half also from its second-best.
  struct Job {
    std::vector<ReleaseSpec> rel;
    std::vector<double> theta;
  };
  std::vector<Job> jobs;
  std::vector<int> max_iter;
  std::vector<std::pair<double, int>> order;
  for (int p : c.candidates) {
    if (!starts[p].empty()) order.push_back({starts[p][0].cost, p});
  }
  std::sort(order.begin(), order.end());
  // Candidates that the prescreen finds close to the best (within half the gain the best
  // makes over "no release", at least 50) are refined from two starts; the others get one
  // short fit: their posterior is negligible, but it is computed rather than assumed.
  const double best_screen = order.empty() ? c.table.h0_cost : order[0].first;
  const double margin = std::max(50.0, 0.5 * (c.table.h0_cost - best_screen));
  for (size_t i = 0; i < order.size(); ++i) {
    const int p = order[i].second;
    const bool refine = i < 10 && order[i].first <= best_screen + margin;
    const int n = refine ? std::min<int>(3, starts[p].size()) : 1;
    for (int q = 0; q < n; ++q) {
      const std::vector<ReleaseSpec> rel = {Registered(p)};
      jobs.push_back(
          {rel, StartTheta(rel, {{starts[p][q].tmid_h, starts[p][q].lnd, 0.0}}, 0.0, 0.0)});
      max_iter.push_back(refine ? 40 : 10);
    }
  }
  for (const auto& u : c.ureaches) {
    std::vector<std::pair<double, int>> best;
    for (size_t i = 0; i < u.spec.reach_points.size(); ++i) {
      const int p = u.spec.reach_points[i];
      if (!starts[p].empty()) best.push_back({starts[p][0].cost, static_cast<int>(i)});
    }
    if (best.empty()) continue;
    std::sort(best.begin(), best.end());
    const int i = best[0].second;
    const Start& st = starts[u.spec.reach_points[i]][0];
    const std::vector<ReleaseSpec> rel = {u.spec};
    jobs.push_back({rel, StartTheta(rel, {{st.tmid_h, st.lnd, u.spec.reach_km[i]}}, 0.0, 0.0)});
    max_iter.push_back(best[0].first <= best_screen + margin ? 40 : 10);
  }
  fits.resize(jobs.size());
  ParallelFor(static_cast<int>(jobs.size()), options.num_threads,
              [&](int i) { fits[i] = RunFit(c, model, jobs[i].rel, jobs[i].theta, max_iter[i]); });

  // Several simultaneous releases. (1) Add one release at a time to the best hypotheses of
  // the previous size, the additions chosen by a prescreen on the residual after the base's
  // releases. (2) When K releases explain the data better than fewer, revisit each release
  // of the best K-hypotheses: prescreen every candidate against the residual of the other
  // releases and fit the best replacements, so that candidates a release cannot be told
  // apart from share the posterior instead of the first one found taking it all.
  struct Addition {
    ReleaseSpec release;
    std::array<double, 3> start;  // midpoint, ln duration, km
    int point = -1;               // kernel point screened
    std::vector<Start> starts;    // its distinct coarse starts
  };
  auto residual_candidates = [&](const std::vector<double>& offset,
                                 const std::set<std::string>& exclude, int n_registered,
                                 int n_unregistered) {
    std::vector<std::vector<Start>> rs(screen_points.size());
    const std::vector<double> residual_blocks = BlockCosts(c, coarse, &offset);
    ParallelFor(static_cast<int>(screen_points.size()), options.num_threads, [&](int i) {
      rs[i] = Prescreen(c, coarse, screen_points[i], residual_blocks, &offset, {3.0}, 3.0, false);
    });
    std::vector<std::pair<double, Addition>> reg, unreg;
    std::map<int, std::pair<double, Addition>> best_reach;  // per unregistered reach
    for (size_t i = 0; i < screen_points.size(); ++i) {
      if (rs[i].empty()) continue;
      const int p = screen_points[i];
      const Start& st = rs[i][0];
      if (!c.kernels.points[p].source_id.empty() && c.candidate_weight[p] > 0) {
        const ReleaseSpec r = Registered(p);
        if (!exclude.count(Label(c, r)))
          reg.push_back({st.cost, {r, {st.tmid_h, st.lnd, 0.0}, p, rs[i]}});
      }
      for (size_t u = 0; u < c.ureaches.size(); ++u) {
        const auto& rp = c.ureaches[u].spec.reach_points;
        if (std::find(rp.begin(), rp.end(), p) == rp.end()) continue;
        if (exclude.count(Label(c, c.ureaches[u].spec))) continue;
        auto it = best_reach.find(static_cast<int>(u));
        if (it == best_reach.end() || st.cost < it->second.first) {
          best_reach[static_cast<int>(u)] = {
              st.cost, {c.ureaches[u].spec, {st.tmid_h, st.lnd, c.kernels.points[p].km}, p, rs[i]}};
        }
      }
    }
    for (const auto& [u, v] : best_reach) unreg.push_back(v);
    auto by_cost = [](const auto& a, const auto& b) { return a.first < b.first; };
    std::sort(reg.begin(), reg.end(), by_cost);
    std::sort(unreg.begin(), unreg.end(), by_cost);
    std::vector<Addition> chosen;
    for (int i = 0; i < n_registered && i < static_cast<int>(reg.size()); ++i)
      chosen.push_back(reg[i].second);
    for (int i = 0; i < n_unregistered && i < static_cast<int>(unreg.size()); ++i)
      chosen.push_back(unreg[i].second);
    // Each chosen addition from its two best coarse starts, refined on a finer local grid:
    // a release added to others has to land in the right sampling interval.
    std::vector<Addition> out;
    for (size_t ai = 0; ai < chosen.size(); ++ai) {
      const Addition& a = chosen[ai];
      // Two starts for the most promising addition, one for the others.
      for (size_t q = 0; q < std::min<size_t>(ai == 0 ? 2 : 1, a.starts.size()); ++q) {
        const Start st =
            RefineStart(c, coarse, a.point, residual_blocks, &offset, a.starts[q], 3.0);
        Addition b = a;
        b.start = {st.tmid_h, st.lnd, a.start[2]};
        out.push_back(b);
      }
    }
    return out;
  };
  auto key_of = [](std::vector<std::string> l) {
    std::sort(l.begin(), l.end());
    std::string key;
    for (const auto& s : l) key += s + "|";
    return key;
  };
  auto per_release = [](const Fit& f, int j) {
    const int o = f.spec.offset(j);
    return std::array<double, 3>{f.theta[o], f.theta[o + 1],
                                 f.spec.releases[j].unregistered() ? f.theta[o + 2] : 0.0};
  };
  auto run_jobs = [&](std::vector<Job>& more) {
    const size_t first = fits.size();
    fits.resize(first + more.size());
    ParallelFor(static_cast<int>(more.size()), options.num_threads,
                [&](int i) { fits[first + i] = RunFit(c, model, more[i].rel, more[i].theta, 50); });
  };
  auto best_of_size = [&](int K) {
    double b = -INFINITY;
    for (const auto& f : fits) {
      if (static_cast<int>(f.spec.releases.size()) == K) b = std::max(b, f.log_evidence);
    }
    return b;
  };
  auto top_of_size = [&](int K, int n) {
    std::vector<int> idx;
    for (size_t i = 0; i < fits.size(); ++i) {
      if (static_cast<int>(fits[i].spec.releases.size()) == K) idx.push_back(static_cast<int>(i));
    }
    std::sort(idx.begin(), idx.end(),
              [&](int a, int b) { return fits[a].log_evidence > fits[b].log_evidence; });
    std::vector<int> out;
    std::set<std::string> seen;
    for (int i : idx) {
      if (seen.insert(key_of(fits[i].labels)).second) out.push_back(i);
      if (static_cast<int>(out.size()) >= n) break;
    }
    return out;
  };
  for (int K = 2; K <= max_sources; ++K) {
    // A third release is looked for only when two explain the data better than one.
    if (K >= 3 && !(best_of_size(K - 1) > best_of_size(K - 2))) break;
    std::set<std::string> fitted;
    for (const auto& f : fits) fitted.insert(key_of(f.labels));
    std::vector<Job> more;
    // Bases: the best hypothesis of the previous size, and the second when it holds a
    // tenth of the first's weight.
    std::vector<int> bases = top_of_size(K - 1, 2);
    if (bases.size() == 2 &&
        fits[bases[1]].log_evidence < fits[bases[0]].log_evidence - std::log(10.0)) {
      bases.resize(1);
    }
    if (K >= 3) bases.resize(std::min<size_t>(bases.size(), 1));
    for (int bi : bases) {
      const Fit base = fits[bi];
      const std::vector<double> offset = FittedSignal(c, model, base);
      std::set<std::string> exclude(base.labels.begin(), base.labels.end());
      std::set<std::string> round;
      for (const Addition& a : residual_candidates(offset, exclude, 3, 1)) {
        std::vector<ReleaseSpec> rel = base.spec.releases;
        rel.push_back(a.release);
        std::vector<std::string> labels = base.labels;
        labels.push_back(Label(c, a.release));
        const std::string key = key_of(labels);
        if (fitted.count(key) && !round.count(key)) continue;
        round.insert(key);
        std::vector<std::array<double, 3>> per;
        for (size_t j = 0; j < base.spec.releases.size(); ++j)
          per.push_back(per_release(base, static_cast<int>(j)));
        per.push_back(a.start);
        const int P = base.spec.num_params();
        more.push_back({rel, StartTheta(rel, per, base.theta[P - 2], base.theta[P - 1])});
      }
    }
    run_jobs(more);
    for (const auto& f : fits) fitted.insert(key_of(f.labels));
    if (!(best_of_size(K) > best_of_size(K - 1))) continue;
    // Swap stage.
    more.clear();
    for (int bi : top_of_size(K, 2)) {
      const Fit base = fits[bi];
      for (int j = 0; j < K; ++j) {
        // Residual of the other releases.
        Fit others = base;
        for (int k = 0; k < static_cast<int>(c.species.size()); ++k) others.eval.mass[j][k] = 0.0;
        const std::vector<double> offset = FittedSignal(c, model, others);
        std::set<std::string> exclude(base.labels.begin(), base.labels.end());
        std::set<std::string> round;
        for (const Addition& a : residual_candidates(offset, exclude, 4, 1)) {
          std::vector<ReleaseSpec> rel = base.spec.releases;
          rel[j] = a.release;
          std::vector<std::string> labels = base.labels;
          labels[j] = Label(c, a.release);
          // Sets fitted before are fitted again from these starts: the base's other releases
          // and factors may put them in a better optimum.
          const std::string key = key_of(labels);
          if (round.count(key + "@" + std::to_string(a.start[0]))) continue;
          round.insert(key + "@" + std::to_string(a.start[0]));
          std::vector<std::array<double, 3>> per;
          for (int jj = 0; jj < K; ++jj) per.push_back(jj == j ? a.start : per_release(base, jj));
          const int P = base.spec.num_params();
          more.push_back({rel, StartTheta(rel, per, base.theta[P - 2], base.theta[P - 1])});
          // Also from the replaced release's own timing (a substitute explains the same
          // signal; its position differs by a short travel time).
          if (round.count(key + "#replaced")) continue;
          round.insert(key + "#replaced");
          per[j] = per_release(base, j);
          per[j][2] = a.start[2];
          if (a.release.unregistered())
            per[j][2] = std::clamp(per_release(base, j)[2], a.release.km_lo, a.release.km_hi);
          more.push_back({rel, StartTheta(rel, per, base.theta[P - 2], base.theta[P - 1])});
        }
      }
    }
    run_jobs(more);
  }
  sum.fit_seconds = Seconds(t_fit);

  // Noise scale from the best hypothesis: misfit per degree of freedom, never below 1.
  double s2 = 1.0;
  {
    double best = std::log(pr.p_no_release) - c.log_p_norm - 0.5 * c.table.h0_cost;
    double best_cost = c.table.h0_cost;
    int best_params = static_cast<int>(c.table.blocks.size());
    for (const auto& f : fits) {
      if (f.log_evidence > best) {
        best = f.log_evidence;
        best_cost = f.cost;
        best_params = static_cast<int>(c.table.blocks.size()) + f.spec.num_params() +
                      static_cast<int>(f.spec.releases.size() * c.species.size());
      }
    }
    const int dof = std::max(1, c.table.num_rows() - best_params);
    s2 = std::max(1.0, best_cost / dof);
  }
  sum.noise_scale = std::sqrt(s2);
  for (auto& f : fits) ComputeEvidence(c, &f, s2);

  // Hypotheses: fits with the same set of releases are modes of one hypothesis.
  struct Group {
    std::string key;
    std::vector<int> modes;
    double log_z = -INFINITY;
  };
  std::map<std::string, Group> by_key;
  for (size_t i = 0; i < fits.size(); ++i) {
    std::vector<std::string> l = fits[i].labels;
    std::sort(l.begin(), l.end());
    std::string key;
    for (const auto& s : l) key += (key.empty() ? "" : " + ") + s;
    Group& g = by_key[key];
    g.key = key;
    // The same optimum found from two starts counts once.
    bool duplicate = false;
    for (int m : g.modes) {
      const Fit& o = fits[m];
      bool same = std::fabs(o.cost - fits[i].cost) < 0.5;
      for (size_t q = 0; q < o.theta.size() && same; ++q)
        same = std::fabs(o.theta[q] - fits[i].theta[q]) < 0.25;
      duplicate = duplicate || same;
    }
    if (!duplicate) g.modes.push_back(static_cast<int>(i));
  }
  const double log_z0 = std::log(pr.p_no_release) - c.log_p_norm - 0.5 * c.table.h0_cost / s2;
  double log_max = log_z0;
  for (auto& [key, g] : by_key) {
    double mx = -INFINITY;
    for (int m : g.modes) mx = std::max(mx, fits[m].log_evidence);
    double s = 0.0;
    for (int m : g.modes) s += std::exp(fits[m].log_evidence - mx);
    g.log_z = mx + std::log(s);
    log_max = std::max(log_max, g.log_z);
  }
  double norm = std::exp(log_z0 - log_max);
  for (const auto& [key, g] : by_key) norm += std::exp(g.log_z - log_max);

  Hypothesis none;
  none.label = "no release";
  none.log_evidence = log_z0;
  none.probability = std::exp(log_z0 - log_max) / norm;
  none.misfit = c.table.h0_cost / s2;
  result.hypotheses.push_back(none);
  std::map<std::string, int> best_mode;  // hypothesis label -> best fit index
  int profiled = 0;
  // Hypotheses in order of probability, so that the duration profiles go to the leaders.
  std::vector<std::pair<double, std::string>> hyp_order;
  for (const auto& [key, g] : by_key) hyp_order.push_back({-g.log_z, key});
  std::sort(hyp_order.begin(), hyp_order.end());
  for (const auto& [neg_log_z, key] : hyp_order) {
    const Group& g = by_key[key];
    Hypothesis h;
    h.label = key;
    h.log_evidence = g.log_z;
    h.probability = std::exp(g.log_z - log_max) / norm;
    h.modes = static_cast<int>(g.modes.size());
    int bm = g.modes[0];
    for (int m : g.modes) {
      if (fits[m].log_evidence > fits[bm].log_evidence) bm = m;
    }
    best_mode[key] = bm;
    const Fit& f = fits[bm];
    const int P = f.spec.num_params();
    h.misfit = f.cost / s2;
    // Mode weights for mixture intervals.
    std::vector<double> wm;
    for (int m : g.modes) wm.push_back(std::exp(fits[m].log_evidence - g.log_z));
    auto interval_of = [&](auto index_in, double lo, double hi) {
      std::vector<double> mu, sd, w;
      for (size_t mi = 0; mi < g.modes.size(); ++mi) {
        const Fit& fm = fits[g.modes[mi]];
        const int q = index_in(fm);
        if (q < 0) continue;
        const int Pm = fm.spec.num_params();
        mu.push_back(fm.theta[q]);
        sd.push_back(std::sqrt(std::max(0.0, fm.cov[q * Pm + q])));
        w.push_back(wm[mi]);
      }
      return Interval(w, mu, sd, lo, hi);
    };
    const double ln_f = f.theta[P - 2], ln_g = f.theta[P - 1];
    h.velocity_factor = std::exp(ln_f);
    h.dispersion_factor = std::exp(ln_g);
    {
      auto vi =
          interval_of([](const Fit& fm) { return fm.spec.num_params() - 2; }, -INFINITY, INFINITY);
      auto di =
          interval_of([](const Fit& fm) { return fm.spec.num_params() - 1; }, -INFINITY, INFINITY);
      h.velocity_factor_ci90 = {std::exp(vi[0]), std::exp(vi[1])};
      h.dispersion_factor_ci90 = {std::exp(di[0]), std::exp(di[1])};
    }
    for (size_t j = 0; j < f.spec.releases.size(); ++j) {
      const ReleaseSpec& r = f.spec.releases[j];
      const int o = f.spec.offset(static_cast<int>(j));
      SourceEstimate e;
      const std::string label = f.labels[j];
      // The same release in another mode: match by label.
      auto find_q = [&](const Fit& fm, int rel) {
        for (size_t jj = 0; jj < fm.labels.size(); ++jj) {
          if (fm.labels[jj] == label) return fm.spec.offset(static_cast<int>(jj)) + rel;
        }
        return -1;
      };
      if (r.unregistered()) {
        e.id = "unregistered";
        e.kind = "unregistered";
        e.reach = r.reach;
        e.km = f.theta[o + 2];
        e.km_ci90 = interval_of([&](const Fit& fm) { return find_q(fm, 2); }, r.km_lo, r.km_hi);
      } else {
        const KernelPoint& kp = c.kernels.points[r.point];
        e.id = kp.source_id;
        e.kind = kp.kind;
        e.reach = kp.reach;
        e.km = kp.km;
        e.km_ci90 = {kp.km, kp.km};
      }
      {
        // Duration and start: posterior medians and 90% intervals. For the leading
        // hypotheses from the duration profile (a mixture over the grid of durations, each
        // with the midpoint's conditional spread); otherwise from the Laplace Gaussian.
        std::vector<double> sw, smu, ssd;  // start mixture (h)
        std::vector<double> dl, dw;        // ln duration grid and weights
        for (size_t mi = 0; mi < g.modes.size(); ++mi) {
          const Fit& fm = fits[g.modes[mi]];
          const int q = find_q(fm, 0);
          if (q < 0) continue;
          const int Pm = fm.spec.num_params();
          const bool profile = g.modes[mi] == bm && h.probability >= 0.01 && profiled < 8;
          if (profile) {
            ++profiled;
            int jj = 0;
            while (fm.labels[jj] != label) ++jj;
            const DurationProfile dp = ProfileDuration(c, model, fm, jj, s2);
            const double cmin = *std::min_element(dp.cost.begin(), dp.cost.end());
            // Weights: uniform prior in ln duration; cells between grid midpoints.
            for (size_t k = 0; k < dp.lnd.size(); ++k) {
              const double a = k == 0 ? dp.lnd[k] : 0.5 * (dp.lnd[k - 1] + dp.lnd[k]);
              const double b =
                  k + 1 == dp.lnd.size() ? dp.lnd[k] : 0.5 * (dp.lnd[k] + dp.lnd[k + 1]);
              const double w =
                  wm[mi] * std::exp(-0.5 * (dp.cost[k] - cmin) / s2) * std::max(b - a, 0.05);
              dl.push_back(dp.lnd[k]);
              dw.push_back(w);
              sw.push_back(w);
              smu.push_back(dp.mid[k] - 0.5 * std::exp(dp.lnd[k]));
              ssd.push_back(dp.mid_sd);
            }
          } else {
            const double v00 = std::max(1e-8, fm.cov[q * Pm + q]),
                         v11 = std::max(0.0, fm.cov[(q + 1) * Pm + q + 1]);
            const double v01 = fm.cov[q * Pm + q + 1];
            // Nine points of the duration's (truncated) Gaussian, each with the midpoint's
            // conditional distribution.
            for (int n = -4; n <= 4; ++n) {
              const double z = 0.5 * n;
              const double lnd = fm.theta[q + 1] + std::sqrt(v11) * z;
              if (lnd < c.lnd_lo - 1e-9 || lnd > c.lnd_hi + 1e-9) continue;
              const double w = wm[mi] * std::exp(-0.5 * z * z);
              const double mid =
                  fm.theta[q] + (v11 > 0 ? v01 / v11 : 0.0) * (lnd - fm.theta[q + 1]);
              int jj = 0;
              while (fm.labels[jj] != label) ++jj;
              const double timing =
                  pr.timing_error_relative *
                  FirstTravelTime(c, fm.spec.releases[jj], fm.theta, fm.spec.offset(jj)) / 3600.0 /
                  std::exp(fm.theta[Pm - 2]);
              const double sd = std::sqrt(std::max(1e-8, v00 - (v11 > 0 ? v01 * v01 / v11 : 0.0)) +
                                          timing * timing);
              dl.push_back(lnd);
              dw.push_back(w);
              sw.push_back(w);
              smu.push_back(mid - 0.5 * std::exp(lnd));
              ssd.push_back(sd);
            }
            if (dl.empty()) {
              dl.push_back(fm.theta[q + 1]);
              dw.push_back(wm[mi]);
              sw.push_back(wm[mi]);
              smu.push_back(fm.theta[q] - 0.5 * std::exp(fm.theta[q + 1]));
              ssd.push_back(std::sqrt(v00));
            }
          }
        }
        auto grid_quantile = [&](double p) {
          std::vector<size_t> idx(dl.size());
          std::iota(idx.begin(), idx.end(), 0);
          std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return dl[a] < dl[b]; });
          const double tot = std::accumulate(dw.begin(), dw.end(), 0.0);
          double acc = 0.0;
          for (size_t n : idx) {
            acc += dw[n] / tot;
            if (acc >= p) return dl[n];
          }
          return dl[idx.back()];
        };
        e.duration_s = std::exp(grid_quantile(0.5)) * 3600.0;
        e.duration_ci90 = {std::exp(grid_quantile(0.05)) * 3600.0,
                           std::exp(grid_quantile(0.95)) * 3600.0};
        const double s50 = detail::MixtureQuantile(sw, smu, ssd, 0.5);
        const double s05 = detail::MixtureQuantile(sw, smu, ssd, 0.05);
        const double s95 = detail::MixtureQuantile(sw, smu, ssd, 0.95);
        e.release_start_s = c.table.t_ref + s50 * 3600.0;
        e.release_end_s = e.release_start_s + e.duration_s;
        e.start_ci90 = {c.table.t_ref + s05 * 3600.0, c.table.t_ref + s95 * 3600.0};
      }
      // Masses: conditional covariance (G/s2)^-1 plus the propagated parameter uncertainty.
      const int J = static_cast<int>(f.spec.releases.size());
      const int Ks = static_cast<int>(c.species.size());
      for (int k = 0; k < Ks; ++k) {
        Eigen::MatrixXd G(J, J);
        for (int a = 0; a < J; ++a) {
          for (int b = 0; b < J; ++b) G(a, b) = f.eval.normal[k][a * J + b] / s2;
        }
        double var = 0.0;
        if (G(j, j) > 0) {
          Eigen::MatrixXd Gi =
              G + 1e-12 * std::max(1e-300, G.trace()) * Eigen::MatrixXd::Identity(J, J);
          var = Gi.ldlt().solve(Eigen::MatrixXd::Identity(J, J))(j, j);
        } else {
          var = std::pow(pr.mass_max_kg / 1000.0, 2);
        }
        for (int a = 0; a < P; ++a) {
          for (int b = 0; b < P; ++b) {
            var += f.dmass[(static_cast<size_t>(j) * Ks + k) * P + a] * f.cov[a * P + b] *
                   f.dmass[(static_cast<size_t>(j) * Ks + k) * P + b];
          }
        }
        const double m = f.eval.mass[j][k];
        const double sd = std::sqrt(std::max(0.0, var));
        e.mass_kg[c.species[k]] = m * 1000.0;
        const double lo = detail::MixtureQuantile({1.0}, {m}, {sd}, 0.05, 0.0);
        const double hi = detail::MixtureQuantile({1.0}, {m}, {sd}, 0.95, 0.0);
        // No interval reaches past the mass bound (the prior's support).
        const double bound = r.mass_max_t.empty() ? INFINITY : r.mass_max_t[k];
        e.mass_kg_ci90[c.species[k]] = {std::clamp(lo, 0.0, bound) * 1000.0,
                                        std::clamp(hi, 0.0, bound) * 1000.0};
      }
      h.sources.push_back(e);
    }
    result.hypotheses.push_back(h);
  }
  std::stable_sort(
      result.hypotheses.begin(), result.hypotheses.end(),
      [](const Hypothesis& a, const Hypothesis& b) { return a.probability > b.probability; });

  // Marginal probability per source and the 90% credible set.
  for (const auto& h : result.hypotheses) {
    if (h.sources.empty()) {
      result.source_probability["no release"] += h.probability;
      continue;
    }
    std::set<std::string> labels;
    for (const auto& s : h.sources)
      labels.insert(s.id == "unregistered" ? "unregistered:" + s.reach : s.id);
    for (const auto& l : labels) result.source_probability[l] += h.probability;
  }
  {
    double acc = 0.0;
    std::set<std::string> set;
    for (const auto& h : result.hypotheses) {
      if (acc >= 0.9) break;
      acc += h.probability;
      if (h.sources.empty()) set.insert("no release");
      for (const auto& s : h.sources)
        set.insert(s.id == "unregistered" ? "unregistered:" + s.reach : s.id);
    }
    // Order the set by marginal probability.
    std::vector<std::pair<double, std::string>> ordered;
    for (const auto& l : set) ordered.push_back({-result.source_probability[l], l});
    std::sort(ordered.begin(), ordered.end());
    for (const auto& [p, l] : ordered) result.credible_set_90.push_back(l);
  }

  // Groups: registered candidates with the same observing stations and travel times that
  // differ by less than half the sampling interval at every one of them.
  {
    std::vector<double> intervals;
    for (const Block& B : c.table.blocks) {
      if (B.end - B.begin >= 2)
        intervals.push_back((c.table.t[B.end - 1] - c.table.t[B.begin]) / (B.end - B.begin - 1));
    }
    std::nth_element(intervals.begin(), intervals.begin() + intervals.size() / 2, intervals.end());
    const double tol = 0.5 * intervals[intervals.size() / 2];
    const int n = static_cast<int>(c.candidates.size());
    std::vector<int> parent(n);
    std::iota(parent.begin(), parent.end(), 0);
    std::function<int(int)> root = [&](int a) {
      return parent[a] == a ? a : parent[a] = root(parent[a]);
    };
    for (int a = 0; a < n; ++a) {
      for (int b = a + 1; b < n; ++b) {
        const int pa = c.candidates[a], pb = c.candidates[b];
        bool same = true;
        for (int s : observed_stations) {
          const bool sa = c.kernels.Sees(pa, s), sb = c.kernels.Sees(pb, s);
          if (sa != sb) {
            same = false;
            break;
          }
          if (sa && std::fabs(c.kernels.TravelTime(pa, s) - c.kernels.TravelTime(pb, s)) > tol) {
            same = false;
            break;
          }
        }
        if (same) parent[root(a)] = root(b);
      }
    }
    std::map<int, std::vector<std::string>> groups;
    for (int a = 0; a < n; ++a)
      groups[root(a)].push_back(c.kernels.points[c.candidates[a]].source_id);
    for (auto& [r, g] : groups) {
      if (g.size() > 1) result.groups.push_back(g);
    }
  }

  // Leading candidates whose best fits predict the observations alike (within the noise).
  {
    std::vector<std::string> leaders;
    std::vector<std::vector<double>> preds;
    for (const auto& h : result.hypotheses) {
      if (h.sources.size() != 1 || h.probability < 1e-3 || leaders.size() >= 8) continue;
      const Fit& f = fits[best_mode[h.label]];
      std::vector<double> sig = FittedSignal(c, model, f);
      leaders.push_back(h.label);
      preds.push_back(sig);
    }
    const int n = static_cast<int>(leaders.size());
    std::vector<int> parent(n);
    std::iota(parent.begin(), parent.end(), 0);
    std::function<int(int)> root = [&](int a) {
      return parent[a] == a ? a : parent[a] = root(parent[a]);
    };
    for (int a = 0; a < n; ++a) {
      for (int b = a + 1; b < n; ++b) {
        double d2 = 0.0;
        for (int i = 0; i < c.table.num_rows(); ++i)
          d2 += c.table.w[i] * std::pow(preds[a][i] - preds[b][i], 2);
        if (d2 / s2 < 4.0) parent[root(a)] = root(b);
      }
    }
    std::map<int, std::vector<std::string>> groups;
    for (int a = 0; a < n; ++a) groups[root(a)].push_back(leaders[a]);
    for (auto& [r, g] : groups) {
      if (g.size() > 1) result.indistinguishable.push_back(g);
    }
  }

  // Identifiability of the leading hypothesis.
  if (!result.hypotheses.empty() && !result.hypotheses[0].sources.empty()) {
    const Fit& f = fits[best_mode[result.hypotheses[0].label]];
    const int P = f.spec.num_params();
    auto add = [&](const std::string& name, double est, double post, double prior) {
      Identifiability id;
      id.parameter = name;
      id.estimate = est;
      id.posterior_sd = post;
      id.prior_sd = prior;
      const double ratio = prior > 0 ? post / prior : 1.0;
      id.contraction = std::clamp(1.0 - ratio * ratio, 0.0, 1.0);
      id.status = ratio < 0.3 ? "identified" : ratio < 0.7 ? "weakly identified" : "not identified";
      result.identifiability.push_back(id);
    };
    const double tr = c.t_hi_h - c.t_lo_h, dr = c.lnd_hi - c.lnd_lo;
    const int Ks = static_cast<int>(c.species.size());
    for (size_t j = 0; j < f.spec.releases.size(); ++j) {
      const int o = f.spec.offset(static_cast<int>(j));
      const std::string who = f.labels[j];
      add(who + ".release_midpoint_h", f.theta[o], std::sqrt(f.cov[o * P + o]),
          tr / std::sqrt(12.0));
      add(who + ".ln_duration_h", f.theta[o + 1], std::sqrt(f.cov[(o + 1) * P + o + 1]),
          dr / std::sqrt(12.0));
      if (f.spec.releases[j].unregistered()) {
        const double L = f.spec.releases[j].km_hi - f.spec.releases[j].km_lo;
        add(who + ".km", f.theta[o + 2], std::sqrt(f.cov[(o + 2) * P + o + 2]),
            L / std::sqrt(12.0));
      }
      const auto& e = result.hypotheses[0].sources[j];
      for (int k = 0; k < Ks; ++k) {
        const double m = e.mass_kg.at(c.species[k]);
        const auto ci = e.mass_kg_ci90.at(c.species[k]);
        const double post =
            m > 0 ? (std::log(std::max(ci[1], 1e-9)) - std::log(std::max(ci[0], m * 1e-3))) /
                        (2 * 1.645)
                  : INFINITY;
        const double prior = k == c.reference_index
                                 ? std::log(pr.mass_max_kg / pr.mass_min_kg) / std::sqrt(12.0)
                                 : pr.Ratio(e.kind, c.species[k], c.reference).log_sd;
        add(who + ".ln_mass_" + c.species[k], m > 0 ? std::log(m) : -INFINITY, post, prior);
      }
    }
    add("ln_velocity_factor", f.theta[P - 2], std::sqrt(f.cov[(P - 2) * P + P - 2]),
        pr.velocity_log_sd);
    add("ln_dispersion_factor", f.theta[P - 1], std::sqrt(f.cov[(P - 1) * P + P - 1]),
        pr.dispersion_log_sd);
  }

  // Next sample: the station and time (after the last sample) where the leading
  // hypotheses' predictions differ most relative to the measurement noise; expected
  // information ≈ Σ_species ½ ln(1 + between-hypothesis variance / noise variance).
  {
    struct Lead {
      std::string label;
      double p;
      int fit;  // -1: no release
    };
    std::vector<Lead> leads;
    double acc = 0.0;
    for (const auto& h : result.hypotheses) {
      if (acc >= 0.99 || leads.size() >= 6) break;
      acc += h.probability;
      leads.push_back({h.label, h.probability, h.sources.empty() ? -1 : best_mode[h.label]});
    }
    double ptot = 0.0;
    for (const auto& l : leads) ptot += l.p;
    const int S = c.kernels.num_stations(), Ks = static_cast<int>(c.species.size());
    std::vector<std::vector<double>> base(S, std::vector<double>(Ks, -1.0));
    std::vector<std::vector<double>> species_bases(Ks);
    for (const Block& B : c.table.blocks) {
      base[B.station][B.species] = B.h0_baseline;
      species_bases[B.species].push_back(B.h0_baseline);
    }
    for (int k = 0; k < Ks; ++k) {
      auto& v = species_bases[k];
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      for (int s = 0; s < S; ++s) {
        if (base[s][k] < 0) base[s][k] = v.empty() ? species_median[k] : v[v.size() / 2];
      }
    }
    struct Candidate {
      double info;
      int s;
      double t;
    };
    std::vector<Candidate> cands;
    if (leads.size() >= 2 && ptot > 0) {
      for (int s = 0; s < S; ++s) {
        for (double dt = 3600.0; dt <= options.recommend_horizon_s + 1e-9; dt += 3600.0) {
          const double t = w_end + dt;
          double info = 0.0;
          for (int k = 0; k < Ks; ++k) {
            std::vector<double> mu(leads.size(), 0.0);
            double mean = 0.0;
            for (size_t l = 0; l < leads.size(); ++l) {
              if (leads[l].fit >= 0) {
                const Fit& f = fits[leads[l].fit];
                const int P = f.spec.num_params();
                for (size_t j = 0; j < f.spec.releases.size(); ++j) {
                  mu[l] += f.eval.mass[j][k] *
                           model.Response(f.spec.releases[j],
                                          f.theta.data() + f.spec.offset(static_cast<int>(j)),
                                          f.theta[P - 2], f.theta[P - 1], s, k, t);
                }
              }
              mean += leads[l].p / ptot * mu[l];
            }
            double var = 0.0;
            for (size_t l = 0; l < leads.size(); ++l)
              var += leads[l].p / ptot * std::pow(mu[l] - mean, 2);
            const double level = base[s][k] + mean;
            const double noise2 = std::pow(options.noise_relative * level, 2) +
                                  std::pow(0.01 * species_median[k] + 1e-6, 2);
            info += 0.5 * std::log1p(var / noise2);
          }
          cands.push_back({info, s, t});
        }
      }
    }
    std::sort(cands.begin(), cands.end(),
              [](const Candidate& a, const Candidate& b) { return a.info > b.info; });
    std::set<int> used;
    for (const auto& cd : cands) {
      if (result.next_samples.size() >= 3 || cd.info < 0.01) break;
      if (used.count(cd.s)) continue;
      used.insert(cd.s);
      SampleRecommendation r;
      r.station = c.kernels.station_ids[cd.s];
      r.time_s = cd.t;
      r.expected_information_nats = cd.info;
      for (const auto& l : leads) {
        std::map<std::string, double> pred;
        for (int k = 0; k < Ks; ++k) {
          double v = base[cd.s][k];
          if (l.fit >= 0) {
            const Fit& f = fits[l.fit];
            const int P = f.spec.num_params();
            for (size_t j = 0; j < f.spec.releases.size(); ++j) {
              v += f.eval.mass[j][k] *
                   model.Response(f.spec.releases[j],
                                  f.theta.data() + f.spec.offset(static_cast<int>(j)),
                                  f.theta[P - 2], f.theta[P - 1], cd.s, k, cd.t);
            }
          }
          pred[c.species[k]] = v;
        }
        r.predictions.push_back({l.label, pred});
      }
      result.next_samples.push_back(r);
    }
  }

  // A leading release pressed against the earliest start considered: an older release may
  // explain the data better than anything the window allows.
  if (!result.hypotheses.empty()) {
    const double earliest = c.table.t_ref + c.t_lo_h * 3600.0;
    for (const auto& e : result.hypotheses[0].sources) {
      if (0.5 * (e.release_start_s + e.release_end_s) < earliest + 2 * 3600.0) {
        sum.warnings.push_back(
            "the leading release (" + (e.id == "unregistered" ? "unregistered " + e.reach : e.id) +
            ") starts at the earliest time considered (" + FormatIsoTime(earliest) +
            ", lead_h before the window): an older release may explain the data better; widen the "
            "window "
            "(--start) or raise lead_h in the priors");
      }
    }
  }
  // Keep the output readable: hypotheses above 1e-4 (at least the top five).
  {
    std::vector<Hypothesis> kept;
    for (size_t i = 0; i < result.hypotheses.size(); ++i) {
      if (i < 5 || result.hypotheses[i].probability >= 1e-4) kept.push_back(result.hypotheses[i]);
    }
    result.hypotheses = kept;
  }
  sum.num_fits = c.fits;
  sum.num_evaluations = c.evaluations;
  sum.total_seconds = Seconds(t_begin);
  result.elapsed_s = sum.total_seconds;
  return result;
}

GridPosterior ReferenceGridPosterior(const Network& net, const ObservationSet& obs,
                                     const TraceOptions& options) {
  const auto t_begin = Clock::now();
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("trace options: " + error);
  Context c;
  TraceSummary sum;
  PrepareContext(c, net, obs, options, sum);
  const Model model(c.kernels, c.table, 4);
  const auto& pr = options.priors;
  const std::vector<double> lnd = {std::log(0.5), std::log(1.5), std::log(4.0), std::log(12.0)};
  const std::vector<double> lnf = {-0.3, -0.15, 0.0, 0.15, 0.3};
  const std::vector<double> lng = {-1.0, -0.5, 0.0, 0.5, 1.0};
  std::vector<double> log_z(c.candidates.size(), -INFINITY);
  std::vector<long long> counts(c.candidates.size(), 0);
  ParallelFor(static_cast<int>(c.candidates.size()), options.num_threads, [&](int i) {
    const int p = c.candidates[i];
    HypothesisSpec spec = MakeSpec(c, {Registered(p)});
    spec.releases[0].mass_max_t.clear();  // no mass prior in the reference
    const double others = OtherBlocksCost(c, spec);
    Evaluation e;
    std::vector<double> terms;
    for (double t = c.t_lo_h; t <= c.t_hi_h + 1e-9; t += 1.0) {
      for (double d : lnd) {
        for (double f : lnf) {
          for (double g : lng) {
            const double th[4] = {t, d, f, g};
            model.Evaluate(spec, th, &e, false);
            ++counts[i];
            terms.push_back(-0.5 * (e.cost + others) + LogNormalPdf(f, pr.velocity_log_sd) +
                            LogNormalPdf(g, pr.dispersion_log_sd));
          }
        }
      }
    }
    const double mx = *std::max_element(terms.begin(), terms.end());
    double sum_exp = 0.0;
    for (double x : terms) sum_exp += std::exp(x - mx);
    log_z[i] = mx + std::log(sum_exp / terms.size()) + std::log(c.candidate_weight[p]);
  });
  GridPosterior out;
  const double mx = *std::max_element(log_z.begin(), log_z.end());
  double total = 0.0;
  for (double l : log_z) total += std::exp(l - mx);
  for (size_t i = 0; i < c.candidates.size(); ++i) {
    out.source_probability.push_back(
        {c.kernels.points[c.candidates[i]].source_id, std::exp(log_z[i] - mx) / total});
    out.evaluations += counts[i];
  }
  std::sort(out.source_probability.begin(), out.source_probability.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  out.elapsed_s = Seconds(t_begin);
  return out;
}

}  // namespace qingshui::tracing
