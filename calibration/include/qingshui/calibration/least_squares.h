// Weighted nonlinear least squares with bounds and Gaussian priors, solved by Ceres'
// Levenberg-Marquardt (the method of STARPAC's NLSWC that OTIS-P uses; Donaldson &
// Tryon 1990), with standard errors and correlations from the Gauss-Newton approximation
// of the covariance at the optimum (Bates & Watts 1988, eq. 2.32). The model is a black
// box (a transport run), so derivatives are finite differences, central where the bounds
// allow and second-order one-sided at a bound. docs/calibration.md §1.
#pragma once

#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace qingshui::calibration {

struct FitParameter {
  std::string name;
  double initial = 0.0;
  double lower = -std::numeric_limits<double>::infinity();
  double upper = std::numeric_limits<double>::infinity();
  // Typical magnitude: the optimizer works on value / scale, so that every unknown is of
  // order one (STARPAC's SCALE). 0 = |initial|, or 1 when the initial value is 0.
  double scale = 0.0;
  // Gaussian prior (regularization): adds ((value - prior_mean) / prior_sd)^2 to the sum
  // of squares. prior_sd <= 0 = no prior.
  double prior_mean = 0.0;
  double prior_sd = 0.0;
};

// Fills `residuals` (num_data values, already multiplied by the square root of their
// weights) for the parameter values `x` (physical units, in FitParameter order). May throw
// qingshui::Error for values the model cannot run with.
using ResidualModel =
    std::function<void(const std::vector<double>& x, std::vector<double>* residuals)>;

struct FitOptions {
  int max_iterations = 100;
  double function_tolerance = 1e-12;   // relative change in the cost (Ceres)
  double parameter_tolerance = 1e-10;  // relative change in the scaled parameters
  double gradient_tolerance = 1e-14;
  // Finite-difference step in scaled units (value / scale). The model's own rounding
  // (~1e-13 relative for the steady solver, less for the OTIS scheme) makes ~1e-5 the
  // step that balances truncation (h^2) and rounding (eps/h) errors of central differences.
  double difference_step = 1e-5;
  bool IsValid(std::string* error) const;
};

struct FitResult {
  std::vector<std::string> names;
  std::vector<double> initial, estimate, std_error;  // std_error NaN when not computable
  std::vector<bool> at_bound;                        // the estimate sits on a bound
  // Covariance (physical units) and correlation, row-major p x p; NaN when singular.
  std::vector<double> covariance, correlation;
  bool covariance_ok = false;
  std::string covariance_message;  // why not, when !covariance_ok
  double condition_number = 0.0;   // of the scaled Jacobian of the data residuals
  std::vector<double> residuals;   // weighted data residuals at the estimate
  double initial_sum_of_squares = 0.0;
  double sum_of_squares = 0.0;  // weighted data residuals only
  double prior_sum_of_squares = 0.0;
  int num_data = 0;
  int degrees_of_freedom = 0;  // num_data - p
  double residual_sd = 0.0;    // sqrt(sum_of_squares / degrees_of_freedom)
  int iterations = 0;
  int model_calls = 0;
  bool converged = false;
  std::string termination;  // Ceres' termination type and message
  double wall_time_s = 0.0;
  std::string BriefReport() const;
};

// Minimizes sum(residuals^2) + sum over priors. The covariance is
//   (J'J / s^2 + P)^-1,  s^2 = sum_of_squares / (num_data - p),  P = diag(1 / prior_sd^2),
// which without priors is STARPAC's s^2 (J'J)^-1 (residual variance estimated from the
// fit, weights relative). Throws ConfigError for inconsistent parameters or options.
FitResult FitLeastSquares(const std::vector<FitParameter>& parameters, int num_data,
                          const ResidualModel& model, const FitOptions& options = {});

}  // namespace qingshui::calibration
