// Transport problems that several test suites build on.
#pragma once

#include <cmath>

#include "qingshui/core/transport.h"

namespace qingshui::transport::fixtures {

// A straight uniform channel of n segments of length dx, flow Q, area A, dispersion D; one
// species, one member, steady flow entering at the headwater.
inline TransportProblem Channel(int n, double dx, double Q, double A, double D) {
  TransportProblem p;
  p.num_species = 1;
  p.segments.resize(n);
  for (int i = 0; i < n; ++i) {
    p.segments[i].downstream = i + 1 < n ? i + 1 : -1;
    p.segments[i].length_m = dx;
    p.segments[i].dispersion_m2s = D;
  }
  FlowState f;
  f.flow_m3s.assign(n, Q);
  f.area_m2.assign(n, A);
  f.headwater_inflow_m3s.assign(n, 0.0);
  f.headwater_inflow_m3s[0] = Q;
  p.flow.times_s = {0.0};
  p.flow.states = {f};
  p.members.resize(1);
  return p;
}

// exp(a) erfc(b) without overflow: for large b, erfc(b) = exp(-b^2) erfcx(b) with the
// continued fraction erfcx(b) = (1/sqrt(pi)) / (b + (1/2) / (b + 1 / (b + (3/2) / (b + ...)))),
// evaluated bottom-up (60 terms: converged to round-off for b >= 4). Cutting the product off
// where erfc(b) underflows is wrong far downstream, where exp(a) is as large as erfc(b) is
// small (x = 4500 m on the step deck of issue #14: 11.02 instead of 11.24 mg/L at 3.6 h).
inline double ExpErfc(double a, double b) {
  if (b < 4.0) return std::exp(a) * std::erfc(b);
  double f = b;
  for (int k = 60; k >= 1; --k) f = b + 0.5 * k / f;
  return std::exp(a - b * b) / (std::sqrt(M_PI) * f);
}

// Semi-infinite channel, C(0, t) = c0 for t > 0 at the upstream face, advection u,
// dispersion D, first-order decay lambda (van Genuchten & Alves 1982, A1; Bear 1972; with
// lambda = 0 Ogata & Banks 1961). Runkel (1996) builds his pulse from it. Checked against
// the convolution of the boundary with the first-passage density x / sqrt(4 pi D t^3)
// exp(-(x - u t)^2 / (4 D t) - lambda t) (scipy quadrature): 11.2359 mg/L at x = 4500 m,
// t = 3.115 h, u = 0.4, D = 2, lambda = 5e-5, c0 = 40.
inline double StepResponse(double x, double t, double u, double D, double lambda, double c0) {
  if (t <= 0) return 0.0;
  const double w = std::sqrt(u * u + 4.0 * lambda * D), s = 2.0 * std::sqrt(D * t);
  return 0.5 * c0 * (ExpErfc((u - w) * x / (2 * D), (x - w * t) / s) +
                     ExpErfc((u + w) * x / (2 * D), (x + w * t) / s));
}

}  // namespace qingshui::transport::fixtures
