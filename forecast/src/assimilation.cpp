#include "assimilation.h"

#include <cmath>

#include "qingshui/core/error.h"

namespace qingshui::forecast::detail {

BoundedSolution SolveBounded(const BoundedProblem& p) {
  const int n = static_cast<int>(p.prior_mean.size());
  BoundedSolution s;
  Eigen::MatrixXd h = p.prior_precision;
  Eigen::VectorXd b = p.prior_precision * p.prior_mean;
  if (p.response.rows() > 0) {
    const Eigen::VectorXd w = p.sigma.array().square().inverse();
    h.noalias() += p.response.transpose() * w.asDiagonal() * p.response;
    b.noalias() += p.response.transpose() * (w.asDiagonal() * p.observed);
  }
  s.hessian = h;
  auto objective = [&](const Eigen::VectorXd& x) { return 0.5 * x.dot(h * x) - b.dot(x); };
  auto project = [&](Eigen::VectorXd x) {
    for (int i = 0; i < n; ++i) x[i] = std::min(p.upper, std::max(p.lower, x[i]));
    return x;
  };
  Eigen::VectorXd x = project(p.prior_mean);
  const double scale = std::max(1.0, h.diagonal().cwiseAbs().maxCoeff());
  for (s.iterations = 0; s.iterations < 500; ++s.iterations) {
    const Eigen::VectorXd g = h * x - b;
    // Optimality: the projected gradient step does not move x.
    const double kkt = (project(x - g / scale) - x).cwiseAbs().maxCoeff();
    if (kkt < 1e-12 * std::max(1.0, x.cwiseAbs().maxCoeff())) {
      s.converged = true;
      break;
    }
    // Free variables: not held at a bound by the gradient (with a small margin, the
    // "epsilon-active" set of Bertsekas).
    std::vector<int> free;
    const double eps = 1e-10;
    for (int i = 0; i < n; ++i) {
      const bool at_lower = x[i] <= p.lower + eps && g[i] > 0;
      const bool at_upper = x[i] >= p.upper - eps && g[i] < 0;
      if (!at_lower && !at_upper) free.push_back(i);
    }
    Eigen::VectorXd d = Eigen::VectorXd::Zero(n);
    if (!free.empty()) {
      Eigen::MatrixXd hf(free.size(), free.size());
      Eigen::VectorXd gf(free.size());
      for (size_t a = 0; a < free.size(); ++a) {
        gf[a] = g[free[a]];
        for (size_t c = 0; c < free.size(); ++c) hf(a, c) = h(free[a], free[c]);
      }
      const Eigen::VectorXd df = hf.llt().solve(-gf);
      for (size_t a = 0; a < free.size(); ++a) d[free[a]] = df[a];
    }
    // Projected line search (Armijo along the projection arc); fall back to a projected
    // gradient step when the Newton direction does not descend.
    const double f0 = objective(x);
    double alpha = 1.0;
    Eigen::VectorXd next = project(x + d);
    while (objective(next) > f0 - 1e-4 * g.dot(x - next) && alpha > 1e-12) {
      alpha *= 0.5;
      next = project(x + alpha * d);
    }
    if (alpha <= 1e-12 || objective(next) > f0) {
      alpha = 1.0 / scale;
      next = project(x - alpha * g);
      while (objective(next) > f0 && alpha > 1e-20) {
        alpha *= 0.5;
        next = project(x - alpha * g);
      }
    }
    if ((next - x).cwiseAbs().maxCoeff() == 0.0) {
      s.converged = true;
      break;
    }
    x = next;
  }
  s.theta = x;
  // Posterior covariance H⁻¹ = L⁻ᵀ L⁻¹ with H = L Lᵀ; samples θ̂ + L⁻ᵀ z.
  Eigen::LLT<Eigen::MatrixXd> llt(h);
  if (llt.info() != Eigen::Success) {
    throw SolverError("forecast analysis: the posterior precision is not positive definite");
  }
  const Eigen::MatrixXd l_inv = llt.matrixL().solve(Eigen::MatrixXd::Identity(n, n));  // L⁻¹
  s.sample_transform = l_inv.transpose();
  s.sd = (s.sample_transform * s.sample_transform.transpose()).diagonal().cwiseSqrt();
  return s;
}

}  // namespace qingshui::forecast::detail
