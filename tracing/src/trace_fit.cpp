// The fitting toolkit of the tracer (docs/tracing.md §4-6): hypotheses' specs and mass
// bounds, the variable-projection misfit as a Ceres problem, prescreens, the Laplace
// evidence with the mass integral, duration profiles.
#include <ceres/ceres.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "math_util.h"
#include "trace_context.h"

namespace qingshui::tracing::detail {

namespace {

// The Huber weights are frozen during a solve; a second solve follows when some weight
// changed by more than this (docs/tracing.md §5.2).
constexpr double kHuberWeightChange = 0.05;
// Prescreen: the best kPrescreenStarts starts at least kDistinctStartsH apart (a release's
// misfit has a minimum per sampling interval; distinct minima are different timings).
constexpr int kPrescreenStarts = 3;
constexpr double kDistinctStartsH = 3.0;
// Duration profile: steps of kProfileStepLnD in ln duration (a factor of 1.4), each a
// warm-started solve of kProfileIterations, out to a misfit kProfileEndChi2 above the best
// (beyond the 99.9% level) or kMaxProfileSteps steps.
constexpr double kProfileStepLnD = 0.35;
constexpr int kProfileIterations = 6;
constexpr double kProfileEndChi2 = 12.0;
constexpr int kMaxProfileSteps = 40;
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
             std::vector<double> steps, std::vector<double> lo, std::vector<double> hi, int fixed)
      : model_(model),
        spec_(spec),
        offset_(offset),
        psi_(psi),
        counter_(counter),
        steps_(std::move(steps)),
        lo_(std::move(lo)),
        hi_(std::move(hi)),
        fixed_(fixed) {
    set_num_residuals(rows);
    mutable_parameter_block_sizes()->push_back(spec->num_params());
  }
  bool Evaluate(double const* const* p, double* residuals, double** jacobians) const override {
    const int P = spec_->num_params();
    const int n = num_residuals();
    thread_local Evaluation e;
    thread_local std::vector<double> R0, R1;
    model_->Responses(*spec_, p[0], &R0);
    model_->EvaluateResponses(*spec_, R0, &e, true, offset_, psi_);
    ++*counter_;
    std::copy(e.residuals.begin(), e.residuals.end(), residuals);
    if (!jacobians || !jacobians[0]) return true;
    std::vector<double> th(p[0], p[0] + P);
    const int J = static_cast<int>(spec_->releases.size());
    for (int q = 0; q < P; ++q) {
      if (q == fixed_) {
        // Held constant (a profile): Ceres multiplies this column by zero, so it is not
        // computed.
        for (int r = 0; r < n; ++r) jacobians[0][r * P + q] = 0.0;
        continue;
      }
      double h = steps_[q];
      if (th[q] + h > hi_[q]) h = -h;
      const double keep = th[q];
      th[q] = keep + h;
      // A release's own parameter moves only its responses: the others' columns are reused
      // (the same numbers); the two factors move every release's.
      int owner = -1;
      for (int j = 0; j < J && q < P - 2; ++j) {
        if (q >= spec_->offset(j)) owner = j;
      }
      if (owner < 0 || J == 1) {
        model_->Responses(*spec_, th.data(), &R1);
      } else {
        R1 = R0;
        model_->Responses(*spec_, th.data(), &R1, owner);
      }
      model_->EvaluateResponses(*spec_, R1, &e, true, offset_, psi_);
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
  int fixed_;  // parameter held constant (-1: none)
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

}  // namespace

std::vector<int> BlocksSeen(const Context& c, const std::vector<ReleaseSpec>& rel) {
  std::vector<int> out;
  for (size_t b = 0; b < c.table.blocks.size(); ++b) {
    const Block& B = c.table.blocks[b];
    bool seen = false;
    for (const auto& r : rel) {
      if (!r.unregistered()) {
        seen = seen || c.kernels->Sees(r.point, B.station);
      } else {
        seen = seen || c.kernels->PointSees(r.reach, r.km_lo, B.station);
      }
    }
    if (seen) out.push_back(static_cast<int>(b));
  }
  return out;
}

// The source kinds a release may be, with their prior weights (summing to one): for an
// unregistered release every kind of positive weight (a mixture by weight); for a
// registered source its own kind, contaminated by that mixture with the share
// `atypical_composition` (docs/tracing.md §6, "Atypical compositions").
std::vector<std::pair<std::string, double>> KindOptions(const Context& c, const ReleaseSpec& r) {
  const auto& pr = c.options.priors;
  std::vector<std::pair<std::string, double>> pooled;
  double total = 0.0;
  for (const auto& [kind, sig] : pr.kinds) {
    if (sig.prior_weight > 0) {
      pooled.push_back({kind, sig.prior_weight});
      total += sig.prior_weight;
    }
  }
  for (auto& o : pooled) o.second /= total;
  if (pooled.empty()) pooled.push_back({"", 1.0});
  if (r.unregistered()) return pooled;
  const double eps = pr.atypical_composition;
  std::vector<std::pair<std::string, double>> options = {
      {c.kernels->points[r.point].kind, 1.0 - eps}};
  if (eps > 0) {
    for (const auto& o : pooled) options.push_back({o.first, eps * o.second});
  }
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

// Minimizes the hypothesis' misfit plus the factor priors over theta (in place), from its
// current value, within the bounds; `fixed` >= 0 holds that parameter constant.
double Solve(Context& c, const Model& model, const HypothesisSpec& spec, std::vector<double>* theta,
             const std::vector<double>* offset, int max_iterations, int fixed) {
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
        new VarProCost(&model, &spec, offset, &psi, &counter, rows, StepSizes(spec), lo, hi, fixed),
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
    if (change < kHuberWeightChange) break;
    psi = e.psi;
  }
#pragma omp atomic
  c.evaluations += counter;
  return final_cost;
}

// --- Prescreen ---------------------------------------------------------------------------

// Coarse grid over start and duration at the nominal hydraulics; the best few distinct
// starts, best first.
// `block_costs`: baseline-only misfit of every block of the data screened (the observations,
// or the residual after `offset`), so that the costs are totals comparable across points.
std::vector<Start> Prescreen(Context& c, const Model& coarse, int point,
                             const std::vector<double>& block_costs,
                             const std::vector<double>* offset,
                             const std::vector<double>& durations_h, double step_h, bool refine,
                             TimingQuadrature* quadrature) {
  HypothesisSpec spec = MakeSpec(c, {Registered(point)});
  std::vector<Start> grid;
  if (spec.blocks.empty()) return grid;
  const int Ks = static_cast<int>(c.species.size());
  double others = std::accumulate(block_costs.begin(), block_costs.end(), 0.0);
  for (int b : spec.blocks) others -= block_costs[b];
  double t_last = -INFINITY;
  for (int b : spec.blocks) t_last = std::max(t_last, c.table.t[c.table.blocks[b].end - 1]);
  const double t_last_h = (t_last - c.table.t_ref) / 3600.0;
  Evaluation e;
  if (quadrature) {
    *quadrature = TimingQuadrature();
    quadrature->num_durations = static_cast<int>(durations_h.size());
    quadrature->step_h = step_h;
  }
  for (double d_h : durations_h) {
    int n = 0;
    for (double t0 = c.t_lo_h; t0 <= std::min(c.t_hi_h, t_last_h); t0 += step_h, ++n) {
      double th[4] = {t0, std::log(d_h), 0.0, 0.0};
      coarse.Evaluate(spec, th, &e, false, offset);
      grid.push_back({t0, std::log(d_h), e.cost + others});
      if (quadrature) {
        for (int k = 0; k < Ks; ++k) {
          quadrature->G.push_back(e.normal[k][0]);
        }
      }
    }
    if (quadrature) quadrature->num_midpoints = n;
  }
#pragma omp atomic
  c.evaluations += static_cast<long long>(grid.size());
  std::sort(grid.begin(), grid.end(),
            [](const Start& a, const Start& b) { return a.cost < b.cost; });
  std::vector<Start> out;
  for (const auto& g : grid) {
    bool distinct = true;
    for (const auto& o : out)
      distinct = distinct && std::fabs(o.tmid_h - g.tmid_h) >= kDistinctStartsH;
    if (distinct) out.push_back(g);
    if (static_cast<int>(out.size()) >= kPrescreenStarts) break;
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
  std::vector<double> R0, R1;
  model.Responses(s, fit->theta.data(), &R0);
  const int rows = static_cast<int>(fit->eval.residuals.size());
  const int J = static_cast<int>(s.releases.size());
  const int Ks = c.kernels->num_species();
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
    // A release's own parameter moves only its responses (the others' are reused).
    const int owner = q >= P - 2 || J == 1 ? -1 : [&] {
      int j = 0;
      while (j + 1 < J && q >= s.offset(j + 1)) ++j;
      return j;
    }();
    for (auto [theta, e] :
         {std::pair<const double*, Evaluation*>{tp.data(), &ep}, {tm.data(), &em}}) {
      if (owner < 0) {
        model.Responses(s, theta, &R1);
      } else {
        R1 = R0;
        model.Responses(s, theta, &R1, owner);
      }
      model.EvaluateResponses(s, R1, e, true, nullptr, &psi);
    }
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
  const int Ks = c.kernels->num_species();
  if (J == 0) return 0.0;
  const auto& pr = c.options.priors;
  // Plain variables, not a structured binding: the lambdas below capture them (C++17
  // cannot capture structured bindings; clang refuses, GCC allows it as an extension).
  const std::array<double, 2> range = ReferenceMassRange(c);
  const double lo = range[0], hi = range[1];
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
      const double bound =
          fit.spec.releases[a].mass_max_t.empty() ? hi : fit.spec.releases[a].mass_max_t[k];
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

// ∫ exp(−x m²) dm/m over [lo, hi], x >= 0: ½ [E1(x lo²) − E1(x hi²)] with E1 the exponential
// integral (E1(z) = −Ei(−z)); ln(hi/lo) when x = 0. Logs, as the value can be tiny.
double LogGaussianOverLogUniform(double x, double lo, double hi) {
  if (!(x > 0)) return std::log(std::log(hi / lo));
  const double zl = x * lo * lo, zh = x * hi * hi;
  // E1(z) ~ e^{-z}/z (1 − 1/z + ...) for large z: in logs there.
  auto log_e1 = [](double z) {
    if (z < 50.0) return std::log(-std::expint(-z));
    return -z - std::log(z) + std::log1p(-1.0 / z + 2.0 / (z * z));
  };
  const double a = log_e1(zl), b = log_e1(zh);
  return std::log(0.5) + a + std::log1p(-std::exp(b - a));
}

double LogUnseenReleaseShare(const Context& c, const ReleaseSpec& r, const TimingQuadrature& q,
                             double s2) {
  const int Ks = static_cast<int>(c.species.size());
  const auto& pr = c.options.priors;
  const std::array<double, 2> range = ReferenceMassRange(c);
  const double log_range = std::log(std::log(range[1] / range[0]));
  const int n_points = q.num_midpoints * q.num_durations;
  if (n_points == 0 || static_cast<int>(q.G.size()) != n_points * Ks) return -INFINITY;
  // Per kind: the species' median ratios to the reference species.
  const auto kinds = KindOptions(c, r);
  std::vector<std::vector<double>> ratio(kinds.size(), std::vector<double>(Ks, 1.0));
  for (size_t o = 0; o < kinds.size(); ++o) {
    for (int k = 0; k < Ks; ++k) {
      if (k != c.reference_index)
        ratio[o][k] = pr.Ratio(kinds[o].first, c.species[k], c.reference).median;
    }
  }
  // Share of the midpoint prior the grid covers (per duration); beyond the last sample a
  // release is unseen and its likelihood is that of no release.
  const double span = c.t_hi_h - c.t_lo_h;
  const double covered = std::min(span, q.num_midpoints * q.step_h);
  const double w_grid = span > 0 ? q.step_h / span / q.num_durations : 0.0;
  // Terms in logs (each can be tiny): log(weight · value) per grid point and kind.
  std::vector<double> logs;
  if (span > covered) logs.push_back(std::log((span - covered) / span));
  for (int i = 0; i < n_points; ++i) {
    for (size_t o = 0; o < kinds.size(); ++o) {
      double a = 0.0;
      for (int k = 0; k < Ks; ++k) a += ratio[o][k] * ratio[o][k] * q.G[i * Ks + k];
      logs.push_back(std::log(w_grid * kinds[o].second) +
                     LogGaussianOverLogUniform(0.5 * a / s2, range[0], range[1]) - log_range);
    }
  }
  if (logs.empty()) return 0.0;
  const double mx = *std::max_element(logs.begin(), logs.end());
  double sum = 0.0;
  for (double l : logs) sum += std::exp(l - mx);
  return mx + std::log(sum);
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

std::string Label(const Context& c, const ReleaseSpec& r) {
  return r.unregistered() ? "unregistered:" + r.reach : c.kernels->points[r.point].source_id;
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

// Travel time (s, nominal velocity) from a release to the first observed station it reaches.
double FirstTravelTime(const Context& c, const ReleaseSpec& r, const std::vector<double>& theta,
                       int offset) {
  double best = INFINITY;
  const int p = r.unregistered() ? -1 : r.point;
  for (const Block& B : c.table.blocks) {
    if (p >= 0) {
      if (c.kernels->Sees(p, B.station)) best = std::min(best, c.kernels->TravelTime(p, B.station));
    } else {
      // The nearest reach point upstream of the release position stands in for it.
      const double x = theta[offset + 2];
      for (size_t i = 0; i < r.reach_points.size(); ++i) {
        if (r.reach_km[i] <= x && c.kernels->Sees(r.reach_points[i], B.station) &&
            c.kernels->PointSees(r.reach, x, B.station)) {
          best = std::min(best, c.kernels->TravelTime(r.reach_points[i], B.station) -
                                    (c.kernels->TravelTimeOnReach(r.reach, x) - r.reach_tau[i]));
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
    Solve(c, model, s, th, nullptr, kProfileIterations, q);
    model.Evaluate(s, th->data(), &e, false);
    const double prior = 0.5 * (std::pow((*th)[P - 2] / c.options.priors.velocity_log_sd, 2) +
                                std::pow((*th)[P - 1] / c.options.priors.dispersion_log_sd, 2));
    return e.cost + OtherBlocksCost(c, s) + 2 * prior;
  };
  const double step = kProfileStepLnD;
  const double center = fit.theta[q];
  std::vector<std::array<double, 3>> pts;  // lnd, cost, mid
  {
    std::vector<double> th = fit.theta;
    const double c0 = point(&th, center);
    pts.push_back({center, c0, th[m]});
  }
  for (int dir : {-1, 1}) {
    std::vector<double> th = fit.theta;
    for (int k = 1; k < kMaxProfileSteps; ++k) {
      double v = center + dir * k * step;
      const bool last = v <= c.lnd_lo || v >= c.lnd_hi;
      v = std::clamp(v, c.lnd_lo, c.lnd_hi);
      if (std::fabs(v - pts.back()[0]) < 1e-9 && k > 1) break;
      const double cost = point(&th, v);
      pts.push_back({v, cost, th[m]});
      double best = INFINITY;
      for (const auto& p : pts) best = std::min(best, p[1]);
      if ((cost - best) / s2 > kProfileEndChi2 || last) break;
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

}  // namespace qingshui::tracing::detail
