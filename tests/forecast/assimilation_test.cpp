// The analysis step: a linear-Gaussian inverse problem with box bounds. Without active
// bounds the solution is the Kalman estimate (closed form); with them it satisfies the
// optimality (KKT) conditions of the bounded quadratic problem; H⁻¹ is the covariance.
#include "../../forecast/src/assimilation.h"

#include <gtest/gtest.h>

namespace qingshui::forecast::detail {
namespace {

TEST(ForecastAnalysis, WithoutActiveBoundsItIsTheKalmanEstimate) {
  BoundedProblem p;
  p.response = Eigen::MatrixXd(4, 3);
  p.response << 1.0, 0.5, 0.0, 0.2, 1.0, 0.3, 0.0, 0.4, 1.0, 0.7, 0.7, 0.7;
  const Eigen::Vector3d truth(1.3, 0.8, 1.1);
  p.observed = p.response * truth;
  p.sigma = Eigen::VectorXd::Constant(4, 0.05);
  p.prior_mean = Eigen::VectorXd::Ones(3);
  p.prior_precision = Eigen::MatrixXd::Identity(3, 3) / (0.3 * 0.3);
  p.upper = 5.0;
  const BoundedSolution s = SolveBounded(p);
  ASSERT_TRUE(s.converged);
  // Kalman: x = μ + P Rᵀ (R P Rᵀ + Σ)⁻¹ (y − R μ).
  const Eigen::MatrixXd P = p.prior_precision.inverse();
  const Eigen::MatrixXd S = p.response * P * p.response.transpose() +
                            Eigen::MatrixXd(p.sigma.array().square().matrix().asDiagonal());
  const Eigen::VectorXd kalman =
      p.prior_mean +
      P * p.response.transpose() * S.ldlt().solve(p.observed - p.response * p.prior_mean);
  EXPECT_LT((s.theta - kalman).cwiseAbs().maxCoeff(), 1e-12);
  // Posterior covariance (I − K R) P = H⁻¹, and S Sᵀ reproduces it.
  const Eigen::MatrixXd cov = P - P * p.response.transpose() * S.ldlt().solve(p.response * P);
  EXPECT_LT((s.sample_transform * s.sample_transform.transpose() - cov).cwiseAbs().maxCoeff(),
            1e-12);
  EXPECT_LT((s.sd - cov.diagonal().cwiseSqrt()).cwiseAbs().maxCoeff(), 1e-12);
}

TEST(ForecastAnalysis, BoundsHoldAndTheSolutionIsOptimal) {
  // Two sources seen together: the data ask for a negative load of the first.
  BoundedProblem p;
  p.response = Eigen::MatrixXd(3, 2);
  p.response << 1.0, 1.0, 1.0, 0.2, 0.1, 1.0;
  p.observed = Eigen::Vector3d(0.5, -0.8, 0.9);
  p.sigma = Eigen::VectorXd::Constant(3, 0.1);
  p.prior_mean = Eigen::VectorXd::Ones(2);
  p.prior_precision = Eigen::MatrixXd::Identity(2, 2) * 4.0;
  p.upper = 5.0;
  const BoundedSolution s = SolveBounded(p);
  ASSERT_TRUE(s.converged);
  EXPECT_EQ(s.theta[0], 0.0);
  // KKT: gradient >= 0 at the lower bound, = 0 at a free variable.
  const Eigen::VectorXd g =
      s.hessian * s.theta -
      (p.prior_precision * p.prior_mean +
       p.response.transpose() *
           (p.sigma.array().square().inverse().matrix().asDiagonal() * p.observed));
  EXPECT_GT(g[0], 0.0);
  EXPECT_NEAR(g[1], 0.0, 1e-10 * s.hessian.norm());
  // The free variable is the 1-D minimizer with the other held at 0.
  EXPECT_NEAR(s.theta[1],
              (p.prior_precision(1, 1) * 1.0 +
               (p.response.col(1).array() * p.observed.array() / p.sigma.array().square()).sum()) /
                  s.hessian(1, 1),
              1e-12);
  // Upper bound.
  p.observed *= 50.0;
  p.upper = 2.0;
  const BoundedSolution u = SolveBounded(p);
  EXPECT_LE(u.theta.maxCoeff(), 2.0);
  EXPECT_EQ(u.theta[1], 2.0);
}

}  // namespace
}  // namespace qingshui::forecast::detail
