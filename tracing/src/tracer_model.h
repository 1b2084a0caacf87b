// Internals of the tracer shared by tracer.cpp, history.cpp and the benchmark's reference
// implementation: the observation table in blocks, the response of a release through the
// kernels, and the variable-projection misfit (masses and baselines solved inside).
#pragma once

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "qingshui/tracing/kernels.h"
#include "qingshui/tracing/priors.h"

namespace qingshui::tracing::detail {

// Huber threshold in standard deviations: residuals beyond it count linearly (Huber 1964).
// 3 keeps the Gaussian likelihood for all but gross outliers, so that probabilities stay
// those of the noise model where the data are sound.
constexpr double kHuber = 3.0;
constexpr double kTonne = 1.0e6;  // g; masses are solved in tonnes for conditioning

// Observations of one station and species, rows [begin, end) of the table, sorted by time.
struct Block {
  int station = 0;  // kernel station index
  int species = 0;  // traced species index
  int begin = 0, end = 0;
  double h0_cost = 0.0;      // robust misfit of the baseline alone
  double h0_baseline = 0.0;  // and its baseline (mg/L)
};

struct ObservationTable {
  std::vector<double> t;      // epoch s
  std::vector<double> y;      // mg/L
  std::vector<double> w;      // 1/sigma^2
  std::vector<Block> blocks;  // by station, then species
  double t_ref = 0.0;         // window start; start times are hours after it
  double h0_cost = 0.0;       // sum over blocks
  int num_rows() const { return static_cast<int>(t.size()); }
};

// One release of a hypothesis: at a kernel point (registered source) or continuous on a
// reach (unregistered; `reach_points` sorted by km, with their plug-flow times).
struct ReleaseSpec {
  int point = -1;
  std::string reach;
  std::vector<int> reach_points;
  std::vector<double> reach_km;
  std::vector<double> reach_tau;  // plug-flow time from the reach's start (s)
  double km_lo = 0.0, km_hi = 0.0;
  // Hard upper bound of the mass of each traced species (tonnes): the end of the mass
  // prior's support (docs/tracing.md §6, "Mass bound"). Every mass solve respects it, so no
  // fit can reach a mass the prior excludes by explaining data with a kernel whose response
  // is tiny. Empty = unbounded (the release history, the benchmark's reference).
  std::vector<double> mass_max_t;
  bool unregistered() const { return point < 0; }
  int num_params() const { return unregistered() ? 3 : 2; }
};

// Parameter vector of a hypothesis: per release [midpoint (h after t_ref), ln duration (h),
// (km)], then [ln velocity factor, ln dispersion factor]. The start is midpoint − duration/2.
struct HypothesisSpec {
  std::vector<ReleaseSpec> releases;
  std::vector<int> blocks;  // blocks some release can reach
  int num_params() const {
    int n = 2;
    for (const auto& r : releases) n += r.num_params();
    return n;
  }
  int offset(int j) const {
    int n = 0;
    for (int i = 0; i < j; ++i) n += releases[i].num_params();
    return n;
  }
};

struct Evaluation {
  double cost = 0.0;              // robust misfit over the hypothesis' blocks
  std::vector<double> residuals;  // signed sqrt of each row's robust misfit (blocks' rows)
  // [release][species]: masses (tonnes), least squares within 0 <= m <= mass_max_t.
  std::vector<std::vector<double>> mass;
  // Per species, the J x J normal matrix G of the masses (row-major) and the right-hand side
  // h (J) at the final weights: the misfit is m'Gm − 2h'm + const in the masses.
  std::vector<std::vector<double>> normal, rhs;
  std::vector<double> baseline;  // per block of the spec
  // Huber weights implied by the final residuals (per row of the spec's blocks).
  std::vector<double> psi;
};

class Model {
 public:
  Model(const ResponseKernels& kernels, const ObservationTable& table, int irls_iterations)
      : K_(kernels), T_(table), irls_(irls_iterations) {}

  // The misfit of a hypothesis at parameters `theta` (masses and baselines solved inside).
  // `y_offset` (optional, per row) is subtracted from the observations first. Without
  // `psi_fixed` the Huber loss is applied by iteratively reweighted least squares and the
  // cost is Σ ρ(z²); with it, the weights are frozen and the cost is the smooth Σ ψ z².
  void Evaluate(const HypothesisSpec& spec, const double* theta, Evaluation* out,
                bool want_residuals, const std::vector<double>* y_offset = nullptr,
                const std::vector<double>* psi_fixed = nullptr) const;

  // The responses (g/m3 per t) of every release at the rows of the spec's blocks, R[j * rows
  // + r]; with `only` >= 0 just that release's column (the others are left as they are: a
  // Jacobian column of one release's parameter). Evaluate = Responses + EvaluateResponses.
  void Responses(const HypothesisSpec& spec, const double* theta, std::vector<double>* R,
                 int only = -1) const;
  void EvaluateResponses(const HypothesisSpec& spec, const std::vector<double>& R, Evaluation* out,
                         bool want_residuals, const std::vector<double>* y_offset = nullptr,
                         const std::vector<double>* psi_fixed = nullptr) const;

  // Concentration per tonne released (g/m3 per t) of release j at station s, species k,
  // time t (epoch s); parameters as in Evaluate.
  double Response(const ReleaseSpec& r, const double* theta_j, double lnf, double lng, int s, int k,
                  double t) const;

  const ResponseKernels& kernels() const { return K_; }
  const ObservationTable& table() const { return T_; }
  int irls_iterations() const { return irls_; }

  // A release's parameters decoded once (per evaluation, or per recommendation sweep), and
  // its response from them: Response() is Prepare() then ResponsePrepared().
  struct Prepared {
    double t0 = 0, d = 0, f = 1;
    int ga = 0;
    double gw = 0;
    // Unregistered: kernel points around x, weights and shifts; per station whether x sees it.
    int lo = -1, hi = -1;
    double w = 0, shift_lo = 0, shift_hi = 0;
    std::vector<char> sees;
  };
  void Prepare(const ReleaseSpec& r, const double* theta_j, double lnf, double lng,
               Prepared* out) const;
  double ResponsePrepared(const ReleaseSpec& r, const Prepared& q, int s, int k, double t) const;

 private:
  // ResponsePrepared at the n times t of one block (station s, species k), into out[0, n):
  // the tables and the decay rate looked up once per block, not per row (the same values).
  void ResponseBlock(const ReleaseSpec& r, const Prepared& q, int s, int k, const double* t, int n,
                     double* out) const;
  double Unit(int p, int s, int k, double u, double d, double f, int ga, double gw,
              double shift) const;
  const ResponseKernels& K_;
  const ObservationTable& T_;
  int irls_;
};

// Non-negative least squares min m'Gm - 2h'm, m >= 0, for n <= 3 unknowns, by enumerating
// the active sets (exact); G row-major n x n. Returns the objective value.
double SmallNnls(int n, const double* G, const double* h, double* m);

// The same within 0 <= m <= upper (entries may be +inf): the non-negative solution when it
// respects the upper bounds, else the best of every assignment of each unknown to zero, its
// upper bound or free (3^n; exact, the problem being convex). Returns the objective value.
double SmallBoundedLs(int n, const double* G, const double* h, const double* upper, double* m);

}  // namespace qingshui::tracing::detail
