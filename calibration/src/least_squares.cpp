#include "qingshui/calibration/least_squares.h"

#include <ceres/ceres.h>

#include <Eigen/Dense>
#include <chrono>
#include <cmath>
#include <sstream>

#include "qingshui/core/error.h"

namespace qingshui::calibration {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The scaled problem: z = x / scale. Data residuals come from the model, prior residuals
// (z - mean/scale) / (sd/scale) follow them.
struct Scaled {
  std::vector<FitParameter> p;
  std::vector<double> scale, lower, upper;  // scaled bounds
  std::vector<int> prior;                   // indices with a prior
  int num_data = 0;
  const ResidualModel* model = nullptr;
  double step = 1e-5;
  int calls = 0;

  std::vector<double> Physical(const double* z) const {
    std::vector<double> x(p.size());
    for (size_t i = 0; i < p.size(); ++i) x[i] = z[i] * scale[i];
    return x;
  }
  void Data(const double* z, double* r) {
    std::vector<double> out(num_data, 0.0);
    (*model)(Physical(z), &out);
    ++calls;
    if (static_cast<int>(out.size()) != num_data) {
      throw SolverError("calibration model returned " + std::to_string(out.size()) +
                        " residuals, expected " + std::to_string(num_data));
    }
    for (int k = 0; k < num_data; ++k) r[k] = out[k];
  }
  void Priors(const double* z, double* r) const {
    for (size_t k = 0; k < prior.size(); ++k) {
      const FitParameter& q = p[prior[k]];
      r[k] = (z[prior[k]] * scale[prior[k]] - q.prior_mean) / q.prior_sd;
    }
  }
  // Jacobian of the data residuals (row-major num_data x p) by finite differences:
  // central where z +- h stays within the bounds, else second-order one-sided.
  void Jacobian(const double* z, const double* r0, double* jac) {
    const int np = static_cast<int>(p.size());
    std::vector<double> zz(z, z + np), a(num_data), b(num_data);
    for (int j = 0; j < np; ++j) {
      const double h = step * std::max(1.0, std::abs(z[j]));
      const bool down = z[j] - h >= lower[j], up = z[j] + h <= upper[j];
      if (up && down) {
        zz[j] = z[j] + h;
        Data(zz.data(), a.data());
        zz[j] = z[j] - h;
        Data(zz.data(), b.data());
        for (int k = 0; k < num_data; ++k) jac[k * np + j] = (a[k] - b[k]) / (2 * h);
      } else {
        const double s = up ? h : -h;
        zz[j] = z[j] + s;
        Data(zz.data(), a.data());
        zz[j] = z[j] + 2 * s;
        Data(zz.data(), b.data());
        for (int k = 0; k < num_data; ++k) {
          jac[k * np + j] = (-3 * r0[k] + 4 * a[k] - b[k]) / (2 * s);
        }
      }
      zz[j] = z[j];
    }
  }
};

class Cost : public ceres::CostFunction {
 public:
  explicit Cost(Scaled* s) : s_(s) {
    mutable_parameter_block_sizes()->push_back(static_cast<int>(s->p.size()));
    set_num_residuals(s->num_data + static_cast<int>(s->prior.size()));
  }
  bool Evaluate(double const* const* parameters, double* residuals,
                double** jacobians) const override {
    const double* z = parameters[0];
    const int np = static_cast<int>(s_->p.size());
    try {
      s_->Data(z, residuals);
      s_->Priors(z, residuals + s_->num_data);
      if (jacobians && jacobians[0]) {
        s_->Jacobian(z, residuals, jacobians[0]);
        double* jp = jacobians[0] + static_cast<size_t>(s_->num_data) * np;
        for (size_t k = 0; k < s_->prior.size(); ++k) {
          for (int j = 0; j < np; ++j) jp[k * np + j] = 0.0;
          const int i = s_->prior[k];
          jp[k * np + i] = s_->scale[i] / s_->p[i].prior_sd;
        }
      }
    } catch (const Error&) {
      return false;  // Ceres shrinks the step
    }
    for (int k = 0; k < num_residuals(); ++k) {
      if (!std::isfinite(residuals[k])) return false;
    }
    return true;
  }

 private:
  Scaled* s_;
};

}  // namespace

bool FitOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (max_iterations < 1) return fail("max_iterations: expected >= 1");
  if (!(function_tolerance > 0) || !(parameter_tolerance > 0) || !(gradient_tolerance > 0)) {
    return fail("tolerances: expected > 0");
  }
  if (!(difference_step > 0) || !(difference_step < 0.1)) {
    return fail("difference_step: expected in (0, 0.1)");
  }
  return true;
}

FitResult FitLeastSquares(const std::vector<FitParameter>& parameters, int num_data,
                          const ResidualModel& model, const FitOptions& options) {
  const auto wall0 = std::chrono::steady_clock::now();
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("fit options: " + error);
  const int np = static_cast<int>(parameters.size());
  if (np < 1) throw ConfigError("calibration: no parameter to estimate");
  if (num_data < 1) throw ConfigError("calibration: no observation to fit");
  Scaled s;
  s.p = parameters;
  s.num_data = num_data;
  s.model = &model;
  s.step = options.difference_step;
  std::vector<double> z(np);
  for (int i = 0; i < np; ++i) {
    const FitParameter& q = parameters[i];
    if (!std::isfinite(q.initial)) throw ConfigError(q.name + ": initial value must be finite");
    if (!(q.lower <= q.upper)) throw ConfigError(q.name + ": lower bound above upper bound");
    if (q.initial < q.lower || q.initial > q.upper) {
      throw ConfigError(q.name + ": initial value " + std::to_string(q.initial) +
                        " outside its bounds [" + std::to_string(q.lower) + ", " +
                        std::to_string(q.upper) + "]");
    }
    double sc = q.scale > 0 ? q.scale : std::abs(q.initial);
    if (!(sc > 0)) sc = 1.0;
    s.scale.push_back(sc);
    s.lower.push_back(q.lower / sc);
    s.upper.push_back(q.upper / sc);
    if (q.prior_sd > 0) s.prior.push_back(i);
    z[i] = q.initial / sc;
  }

  FitResult r;
  for (const auto& q : parameters) {
    r.names.push_back(q.name);
    r.initial.push_back(q.initial);
  }
  r.num_data = num_data;
  {
    std::vector<double> r0(num_data);
    s.Data(z.data(), r0.data());
    for (double v : r0) r.initial_sum_of_squares += v * v;
  }

  ceres::Problem problem;
  problem.AddResidualBlock(new Cost(&s), nullptr, z.data());
  for (int i = 0; i < np; ++i) {
    if (std::isfinite(s.lower[i])) problem.SetParameterLowerBound(z.data(), i, s.lower[i]);
    if (std::isfinite(s.upper[i])) problem.SetParameterUpperBound(z.data(), i, s.upper[i]);
  }
  ceres::Solver::Options o;
  o.minimizer_type = ceres::TRUST_REGION;
  o.trust_region_strategy_type = ceres::LEVENBERG_MARQUARDT;
  o.linear_solver_type = ceres::DENSE_QR;
  o.max_num_iterations = options.max_iterations;
  o.function_tolerance = options.function_tolerance;
  o.parameter_tolerance = options.parameter_tolerance;
  o.gradient_tolerance = options.gradient_tolerance;
  o.logging_type = ceres::SILENT;
  o.num_threads = 1;
  ceres::Solver::Summary summary;
  ceres::Solve(o, &problem, &summary);
  r.iterations = static_cast<int>(summary.iterations.size()) - 1;
  r.converged = summary.termination_type == ceres::CONVERGENCE;
  r.termination = ceres::TerminationTypeToString(summary.termination_type) + std::string(": ") +
                  summary.message;
  if (summary.termination_type == ceres::FAILURE) {
    throw SolverError("calibration: Levenberg-Marquardt failed: " + summary.message);
  }

  // Residuals and Jacobian at the optimum.
  std::vector<double> res(num_data);
  s.Data(z.data(), res.data());
  std::vector<double> jac(static_cast<size_t>(num_data) * np);
  s.Jacobian(z.data(), res.data(), jac.data());
  r.residuals = res;
  for (double v : res) r.sum_of_squares += v * v;
  std::vector<double> pr(s.prior.size());
  s.Priors(z.data(), pr.data());
  for (double v : pr) r.prior_sum_of_squares += v * v;
  r.degrees_of_freedom = num_data - np;
  r.residual_sd =
      r.degrees_of_freedom > 0 ? std::sqrt(r.sum_of_squares / r.degrees_of_freedom) : kNaN;
  for (int i = 0; i < np; ++i) {
    r.estimate.push_back(z[i] * s.scale[i]);
    const double tol = 1e-9 * std::max(1.0, std::abs(z[i]));
    r.at_bound.push_back(z[i] - s.lower[i] <= tol || s.upper[i] - z[i] <= tol);
  }

  // Covariance (scaled): (J'J / s^2 + P)^-1.
  Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> J(
      jac.data(), num_data, np);
  Eigen::JacobiSVD<Eigen::MatrixXd> jsvd(J);
  const auto sv = jsvd.singularValues();
  r.condition_number =
      sv(sv.size() - 1) > 0 ? sv(0) / sv(sv.size() - 1) : std::numeric_limits<double>::infinity();
  r.std_error.assign(np, kNaN);
  r.covariance.assign(static_cast<size_t>(np) * np, kNaN);
  r.correlation.assign(static_cast<size_t>(np) * np, kNaN);
  double s2 = r.degrees_of_freedom > 0 ? r.sum_of_squares / r.degrees_of_freedom : kNaN;
  if (!(s2 > 0) && !s.prior.empty()) s2 = 1.0;  // priors alone: weights taken as absolute
  if (!(s2 > 0)) {
    r.covariance_message = r.degrees_of_freedom <= 0
                               ? "no degrees of freedom (observations <= parameters)"
                               : "zero residuals: the data are fitted exactly";
  } else {
    Eigen::MatrixXd H = J.transpose() * J / s2;
    for (int i : s.prior) {
      const double sd = s.p[i].prior_sd / s.scale[i];
      H(i, i) += 1.0 / (sd * sd);
    }
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(H);
    const double lmax = eig.eigenvalues().maxCoeff(), lmin = eig.eigenvalues().minCoeff();
    if (!(lmin > 1e-13 * lmax)) {
      r.covariance_message =
          "singular: the observations do not determine every parameter "
          "(smallest/largest eigenvalue of J'J " +
          std::to_string(lmin / lmax) + ")";
    } else {
      Eigen::MatrixXd C = eig.eigenvectors() * eig.eigenvalues().cwiseInverse().asDiagonal() *
                          eig.eigenvectors().transpose();
      r.covariance_ok = true;
      for (int i = 0; i < np; ++i) {
        r.std_error[i] = std::sqrt(C(i, i)) * s.scale[i];
        for (int j = 0; j < np; ++j) {
          r.covariance[i * np + j] = C(i, j) * s.scale[i] * s.scale[j];
          r.correlation[i * np + j] = C(i, j) / std::sqrt(C(i, i) * C(j, j));
        }
      }
    }
  }
  r.model_calls = s.calls;
  r.wall_time_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  return r;
}

std::string FitResult::BriefReport() const {
  std::ostringstream o;
  o << (converged ? "converged" : "not converged") << " after " << iterations
    << " Levenberg-Marquardt iterations, " << model_calls << " model runs, " << wall_time_s
    << " s; sum of squares " << initial_sum_of_squares << " -> " << sum_of_squares;
  if (prior_sum_of_squares > 0) o << " (+ " << prior_sum_of_squares << " from priors)";
  o << ", residual sd " << residual_sd << " (" << degrees_of_freedom << " degrees of freedom)";
  if (!covariance_ok) o << "; no standard errors: " << covariance_message;
  return o.str();
}

}  // namespace qingshui::calibration
