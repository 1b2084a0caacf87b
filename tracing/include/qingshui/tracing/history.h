// Release-history mode (`qingshui trace --history SOURCE_ID`): the load of a known source as
// a function of time, reconstructed from the stations by non-negative regularized least
// squares on the response kernels (docs/tracing.md, "Release history").
//
// The general solver, SolveRegularized, minimizes
//   Tikhonov:        ||W (G x − d)||² + α² ||L x||²
//   total variation: ||W (G x − d)||² + α  ||L x||₁   (iteratively reweighted, Aster et al. §7.3)
// subject to x >= 0 (Lawson & Hanson NNLS), L the k-th order difference operator, with α
// chosen by the discrepancy principle (χ² = number of data) or the corner of the L-curve
// (largest curvature of (log ||W(Gx−d)||, log ||Lx||)). It is verified on the Skaggs-Kabala
// source-history problem (Aster, Borchers & Thurber, Parameter Estimation and Inverse
// Problems, Examples 4.9 and 7.4) in tests/tracing/history_test.cpp.
#pragma once

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/tracing/observations.h"

namespace qingshui::tracing {

struct RegularizationOptions {
  std::string kind = "tikhonov";           // "tikhonov" or "tv"
  int order = 2;                           // difference order of L (0: identity)
  std::string alpha_rule = "discrepancy";  // "discrepancy" or "lcurve"
  // Values of α for the L-curve (and to bracket the discrepancy); empty = 10^-6 ... 10^3 in
  // quarter decades, relative to the scale of G.
  std::vector<double> alphas;
  double discrepancy_chi2 = NAN;  // target χ²; NaN = number of data
  int tv_iterations = 30;
  // Columns that are not regularized and may take any sign (e.g. baselines); they must be
  // the last `free_columns` columns of G.
  int free_columns = 0;
  // Weight of an identity block stacked under the difference operator (0 = none): makes
  // the regularization penalize the level as well as its changes.
  double identity_weight = 0.0;
  bool IsValid(std::string* error) const;
};

struct RegularizedSolution {
  std::vector<double> x;
  double alpha = 0.0;
  double chi2 = 0.0;      // ||W (G x − d)||²
  double seminorm = 0.0;  // ||L x||₂ (Tikhonov) or ||L x||₁ (TV)
  // The trade-off curve over the α grid.
  std::vector<double> curve_alpha, curve_chi2, curve_seminorm;
  int corner_index = -1;
  std::string alpha_rule_used;  // "lcurve" when the discrepancy principle could not apply
};

// G is row-major m x n, d and sigma have m entries (sigma > 0).
RegularizedSolution SolveRegularized(const std::vector<double>& G, int m, int n,
                                     const std::vector<double>& d, const std::vector<double>& sigma,
                                     const RegularizationOptions& options);

// Non-negative least squares min ||A x − b|| with x >= 0 except the last `free` unknowns,
// by the Lawson-Hanson active-set method on the normal equations. A row-major m x n.
std::vector<double> NonNegativeLeastSquares(const std::vector<double>& A, int m, int n,
                                            const std::vector<double>& b, int free = 0);

struct HistoryOptions {
  std::string source_id;
  double start_s = NAN, end_s = NAN;        // window; NaN = from the observations
  double bin_s = 3600.0;                    // load resolution
  double lead_s = 24 * 3600.0;              // loads are sought from this long before the window
  std::string regularization = "tikhonov";  // "tikhonov" (first differences) or "tv"
  std::string alpha_rule = "discrepancy";   // or "lcurve"
  double noise_relative = 0.1;
  std::vector<std::string> species;  // empty = every observed species of the network
  std::string date;                  // hydraulics day; empty = first sample's day
  double temperature_c = 20.0;
  bool IsValid(std::string* error) const;
};

struct HistorySeries {
  std::string species;
  std::string alpha_rule;         // the rule actually used (see RegularizedSolution)
  std::vector<double> load_kg_h;  // per bin
  double total_kg = 0.0;
  double alpha = 0.0;
  double chi2 = 0.0;
  int num_data = 0;
  std::vector<double> curve_alpha, curve_chi2, curve_seminorm;
  int corner_index = -1;
};

struct HistoryResult {
  std::string source_id;
  std::string regularization, alpha_rule;
  double bin_s = 3600.0;
  std::vector<double> bin_start_s;  // epoch s
  std::vector<HistorySeries> series;
  double velocity_factor = 1.0, dispersion_factor = 1.0;  // chosen on a grid by the misfit
  double elapsed_s = 0.0;
};

// Throws ConfigError for an unknown source or bad options, DataError for no usable data.
HistoryResult ReconstructHistory(const Network& network, const ObservationSet& observations,
                                 const HistoryOptions& options);
std::string HistoryResultJson(const HistoryResult& result);
std::string HistoryResultTable(const HistoryResult& result);

}  // namespace qingshui::tracing
