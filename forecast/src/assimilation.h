// The analysis step (internal): a linear-Gaussian inverse problem with box bounds.
//
//   minimize  ½ (θ − μ)ᵀ Q (θ − μ) + ½ Σ_i ((y_i − r_iᵀ θ) / σ_i)²   over lower ≤ θ ≤ upper
//
// — the Kalman analysis of the load factors θ given observations y whose model is linear
// in θ (rows r_i of the response), with prior mean μ and prior precision Q. Without bounds
// the minimizer is the Kalman (best linear unbiased) estimate and H⁻¹, H = Q + RᵀΣ⁻²R, its
// error covariance; with bounds it is the maximum a posteriori estimate, found by projected
// Newton (Bertsekas 1982, SIAM J. Control Optim. 20(2): 221-246), and H⁻¹ is kept as the
// (Laplace) covariance for sampling.
#pragma once

#include <Eigen/Dense>

namespace qingshui::forecast::detail {

struct BoundedProblem {
  Eigen::MatrixXd response;  // observations × parameters
  Eigen::VectorXd observed;  // y (what the response must explain)
  Eigen::VectorXd sigma;     // observation errors, > 0
  Eigen::VectorXd prior_mean;
  Eigen::MatrixXd prior_precision;  // symmetric positive definite
  double lower = 0.0, upper = 5.0;
};

struct BoundedSolution {
  Eigen::VectorXd theta;
  Eigen::MatrixXd hessian;           // H = Q + RᵀΣ⁻²R
  Eigen::MatrixXd sample_transform;  // S with S Sᵀ = H⁻¹ (θ̂ + S z samples the posterior)
  Eigen::VectorXd sd;                // sqrt(diag H⁻¹)
  int iterations = 0;
  bool converged = false;
};

BoundedSolution SolveBounded(const BoundedProblem& problem);

}  // namespace qingshui::forecast::detail
