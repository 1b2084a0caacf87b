// Transport engine, public API: time series, options, the summary, and TransportSolver::Run
// (with the steady initial state of Forcing::initial_steady_state). The method (finite
// volumes, Strang splitting of an explicit limited Lax-Wendroff advection step and a
// Crank-Nicolson step for everything else, the storage zone eliminated per segment so the
// implicit system stays tree-tridiagonal; positivity of the implicit step by an
// a-posteriori check with bisection as fallback) and the reasons for it are in
// docs/methods.md, which also describes how the engine is made fast ("Performance"). The
// engine itself: transport_engine.h (types and the Engine class), transport_setup.cpp,
// transport_advection.cpp, transport_implicit.cpp (with its check and bisection),
// transport_schedule.cpp (steps, threads), transport_steady.cpp; simd8.h (8-lane vectors).
#include "qingshui/core/transport.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "qingshui/core/error.h"
#include "transport_engine.h"

namespace qingshui::transport {

// ---------------------------------------------------------------------------------------
// TimeSeries

TimeSeries TimeSeries::Constant(double value) {
  TimeSeries s;
  s.times_s = {0.0};
  s.values = {value};
  s.interpolation = Interpolation::kStep;
  return s;
}

double TimeSeries::At(double t) const {
  if (values.empty()) return 0.0;
  if (t <= times_s.front()) return values.front();
  if (t >= times_s.back()) return values.back();
  size_t k = std::upper_bound(times_s.begin(), times_s.end(), t) - times_s.begin() - 1;
  if (interpolation == Interpolation::kStep) return values[k];
  double w = (t - times_s[k]) / (times_s[k + 1] - times_s[k]);
  return values[k] + w * (values[k + 1] - values[k]);
}

namespace {

// Integral of a series from -infinity-free origin: integral over [a, b] on one piece.
double PieceIntegral(const TimeSeries& s, size_t k, double a, double b) {
  // Piece k spans [times[k], times[k+1]] (k+1 may not exist: constant tail).
  if (s.interpolation == TimeSeries::Interpolation::kStep || k + 1 >= s.times_s.size()) {
    return s.values[k] * (b - a);
  }
  double t0 = s.times_s[k], t1 = s.times_s[k + 1];
  double slope = (s.values[k + 1] - s.values[k]) / (t1 - t0);
  double va = s.values[k] + slope * (a - t0), vb = s.values[k] + slope * (b - t0);
  return 0.5 * (va + vb) * (b - a);
}

}  // namespace

double TimeSeries::Average(double t0, double t1) const {
  if (values.empty()) return 0.0;
  if (!(t1 > t0)) return At(t0);
  double total = 0.0;
  double a = t0;
  // Head before the first time: constant first value.
  if (a < times_s.front()) {
    double b = std::min(t1, times_s.front());
    total += values.front() * (b - a);
    a = b;
  }
  if (a < t1) {
    size_t k = std::upper_bound(times_s.begin(), times_s.end(), a) - times_s.begin() - 1;
    while (a < t1) {
      double end = (k + 1 < times_s.size()) ? std::min(t1, times_s[k + 1]) : t1;
      total += PieceIntegral(*this, k, a, end);
      a = end;
      ++k;
    }
  }
  return total / (t1 - t0);
}

double TimeSeries::Centroid(double t0, double t1) const {
  const double mid = 0.5 * (t0 + t1);
  if (values.empty() || !(t1 > t0)) return mid;
  // Integral of v(t) (t - mid) over each piece: v linear on [a, b] (constant for kStep, and
  // before the first and after the last time) integrates exactly with Simpson's rule.
  double mass = 0.0, moment = 0.0;
  auto piece = [&](double a, double b) {
    if (!(b > a)) return;
    const double va = At(a), vb = At(b), m = 0.5 * (a + b);
    const double vm = interpolation == Interpolation::kStep ? va : 0.5 * (va + vb);
    const double w = (b - a) / 6.0;
    if (interpolation == Interpolation::kStep) {
      mass += va * (b - a);
      moment += va * (b - a) * (m - mid);
    } else {
      mass += (b - a) * vm;
      moment += w * (va * (a - mid) + 4.0 * vm * (m - mid) + vb * (b - mid));
    }
  };
  double a = t0;
  auto it = std::upper_bound(times_s.begin(), times_s.end(), t0);
  for (; it != times_s.end() && *it < t1; ++it) {
    piece(a, *it);
    a = *it;
  }
  piece(a, t1);
  if (!(mass != 0.0)) return mid;
  return mid + moment / mass;
}

bool TimeSeries::IsValid(std::string* error) const {
  if (times_s.size() != values.size()) {
    *error = "times and values differ in length";
    return false;
  }
  for (size_t k = 0; k < values.size(); ++k) {
    if (!std::isfinite(times_s[k]) || !std::isfinite(values[k])) {
      *error = "non-finite time or value at point " + std::to_string(k);
      return false;
    }
    if (k > 0 && !(times_s[k] > times_s[k - 1])) {
      *error = "times must increase strictly (point " + std::to_string(k) + ")";
      return false;
    }
  }
  return true;
}

bool TransportOptions::IsValid(std::string* error) const {
  if (advection != Advection::kLimitedLaxWendroff && advection != Advection::kSspRk2) {
    *error = "advection must be kLimitedLaxWendroff or kSspRk2";
    return false;
  }
  if (!(max_courant > 0.0 && max_courant <= 1.0)) {
    *error = "max_courant must be in (0, 1]";
    return false;
  }
  if (max_substeps < 1) {
    *error = "max_substeps must be >= 1";
    return false;
  }
  if (num_threads < 0) {
    *error = "num_threads must be >= 0";
    return false;
  }
  if (!(steady_tolerance > 0.0) || max_steady_iterations < 1) {
    *error = "steady_tolerance must be > 0 and max_steady_iterations >= 1";
    return false;
  }
  return true;
}

std::string TransportSummary::BriefReport() const {
  std::ostringstream out;
  out << "transport: " << num_steps << " steps";
  if (steady_iterations > 0) out << " (steady state, " << steady_iterations << " iterations)";
  out << ", advection sub-steps " << advection_substeps << " (max " << max_advection_substeps
      << " per half step), implicit sub-steps " << implicit_substeps << " (max "
      << max_implicit_substeps << " per step)";
  if (implicit_checked_steps > 0) {
    out << ", full implicit steps checked " << implicit_checked_steps << " (fallbacks "
        << implicit_fallbacks << ")";
  }
  out << ", Courant at user step " << max_courant_requested
      << ", max relative mass-balance error " << max_relative_mass_error << ", "
      << wall_time_s << " s";
  return out.str();
}

TransportSolver::TransportSolver(const TransportOptions& options) : options_(options) {
  std::string error;
  if (!options_.IsValid(&error)) throw ConfigError("TransportOptions: " + error);
}

TransportResult TransportSolver::Run(const TransportProblem& problem) const {
  bool any_steady_start = false;
  for (const Forcing& f : problem.members) any_steady_start |= f.initial_steady_state;
  if (!any_steady_start || options_.steady_state) {
    return engine::Engine(options_, problem).Run();
  }
  // Members that start from their steady state: one steady solve for all of them (they
  // share the flow field), at the first flow state in force at start_time_s.
  TransportProblem steady = problem;
  steady.members.clear();
  std::vector<int> which;
  for (size_t m = 0; m < problem.members.size(); ++m) {
    if (!problem.members[m].initial_steady_state) continue;
    which.push_back(static_cast<int>(m));
    steady.members.push_back(problem.members[m]);
    steady.members.back().initial_steady_state = false;
  }
  const double at = problem.members[which.front()].initial_steady_time_s;
  for (int m : which) {
    const double a = problem.members[m].initial_steady_time_s;
    if (!(a == at || (std::isnan(a) && std::isnan(at)))) {
      throw ConfigError("transport: members " + std::to_string(which.front()) + " and " +
                        std::to_string(m) + " ask for steady initial states at different " +
                        "times (initial_steady_time_s); one steady solve serves all of them");
    }
  }
  if (!std::isnan(at)) {
    if (!std::isfinite(at)) throw ConfigError("transport: initial_steady_time_s must be finite");
    steady.start_time_s = at;
  }
  steady.end_time_s = steady.start_time_s;
  steady.output_times_s.clear();
  TransportOptions so = options_;
  so.steady_state = true;
  so.store_fields = true;
  const TransportResult r = engine::Engine(so, steady).Run();
  TransportProblem started = problem;
  const size_t n = static_cast<size_t>(r.num_segments) * r.num_species;
  for (size_t k = 0; k < which.size(); ++k) {
    Forcing& f = started.members[which[k]];
    const size_t at = r.Index(static_cast<int>(k), 0, 0, r.num_segments, 0);
    f.initial_concentration_g_m3.assign(r.concentration_g_m3.begin() + at,
                                        r.concentration_g_m3.begin() + at + n);
    f.initial_storage_g_m3.assign(r.storage_g_m3.begin() + at, r.storage_g_m3.begin() + at + n);
    f.initial_sorbed_g_kg.assign(r.sorbed_g_kg.begin() + at, r.sorbed_g_kg.begin() + at + n);
    f.initial_steady_state = false;
  }
  TransportResult out = engine::Engine(options_, started).Run();
  out.summary.steady_iterations += r.summary.steady_iterations;
  return out;
}

}  // namespace qingshui::transport
