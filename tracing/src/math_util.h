// Small numerical helpers of the tracer: the normal distribution, quasi-random points,
// quantiles of Gaussian mixtures.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

namespace qingshui::tracing::detail {

inline double NormalCdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

// Inverse of the standard normal CDF (P. J. Acklam's rational approximation, relative error
// below 1.2e-9, refined by one Halley step on erfc).
inline double NormalQuantile(double p) {
  if (p <= 0) return -INFINITY;
  if (p >= 1) return INFINITY;
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double lo = 0.02425, hi = 1 - lo;
  double x;
  if (p < lo) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= hi) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log(1 - p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double e = NormalCdf(x) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

// Radical inverse in base b (Halton sequence), shifted by a Cranley-Patterson rotation.
inline double Halton(int index, int base, double shift) {
  double f = 1.0, r = 0.0;
  int i = index + 1;
  while (i > 0) {
    f /= base;
    r += f * (i % base);
    i /= base;
  }
  r += shift;
  return r - std::floor(r);
}

inline int Prime(int k) {
  static const int primes[] = {2,  3,  5,  7,  11, 13, 17, 19, 23, 29, 31, 37,  41,  43,
                               47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107};
  return primes[k % 28];
}

// Quantile q of a mixture of normals (weights need not sum to 1), optionally truncated
// below at `floor` (the mixture restricted to x >= floor and renormalized).
inline double MixtureQuantile(const std::vector<double>& w, const std::vector<double>& mean,
                              const std::vector<double>& sd, double q, double floor = -INFINITY) {
  double total = 0.0, lo = INFINITY, hi = -INFINITY;
  auto cdf = [&](double x) {
    double s = 0.0;
    for (size_t i = 0; i < w.size(); ++i) {
      if (sd[i] > 0) {
        s += w[i] * NormalCdf((x - mean[i]) / sd[i]);
      } else {
        s += w[i] * (x >= mean[i] ? 1.0 : 0.0);
      }
    }
    return s;
  };
  for (size_t i = 0; i < w.size(); ++i) {
    lo = std::min(lo, mean[i] - 10 * sd[i]);
    hi = std::max(hi, mean[i] + 10 * sd[i]);
  }
  if (w.empty()) return NAN;
  const double base = std::isfinite(floor) ? cdf(floor) : 0.0;
  total = cdf(hi) - base;
  if (!(total > 0)) return std::isfinite(floor) ? floor : NAN;
  if (std::isfinite(floor)) lo = std::max(lo, floor);
  const double target = base + q * total;
  for (int it = 0; it < 200 && hi - lo > 1e-12 * (1 + std::fabs(hi)); ++it) {
    const double mid = 0.5 * (lo + hi);
    if (cdf(mid) < target) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return 0.5 * (lo + hi);
}

}  // namespace qingshui::tracing::detail
