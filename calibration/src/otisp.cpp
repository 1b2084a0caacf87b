// OTIS-P parameter estimation; see otisp.h for what is reproduced and from where.
#include "qingshui/calibration/otisp.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "qingshui/core/error.h"

namespace qingshui::calibration {

namespace {

constexpr double kHour = 3600.0;
constexpr int kExtraSegments = 15;  // OTIS-P REACHEST: the model extends 15 segments on

// Index of the parameter vector (kOtisParameterNames order).
enum Par { kDisp, kArea, kArea2, kAlpha, kLambda, kLambda2, kRho, kKd, kLamhat, kLamhat2 };

// The deck cut after reach `last` plus up to 15 segments of the reaches below it.
OtisDeck Truncated(const OtisDeck& d, int last) {
  OtisDeck t = d;
  const int nreach = static_cast<int>(d.reaches.size());
  t.reaches.assign(d.reaches.begin(), d.reaches.begin() + last + 1);
  int extra = last + 1 < nreach ? kExtraSegments : 0;
  int r = last + 1;
  for (; extra > 0 && r < nreach; ++r) {
    OtisReach part = d.reaches[r];
    const int take = std::min(extra, part.num_segments);
    part.length_m = part.length_m / part.num_segments * take;
    part.num_segments = take;
    t.reaches.push_back(part);
    extra -= take;
  }
  const size_t kept = t.reaches.size();
  auto cut = [kept](auto& v) {
    if (v.size() > kept) v.resize(kept);
  };
  if (!d.unsteady) {
    cut(t.reach_lateral_inflow_m2s);
    cut(t.reach_lateral_outflow_m2s);
    cut(t.reach_area_m2);
    cut(t.reach_lateral_concentration);
  }
  for (auto& v : t.lambda) cut(v);
  for (auto& v : t.lambda2) cut(v);
  for (auto& v : t.sorption) cut(v);
  return t;
}

// Number of reaches with data up to and including `reach` (OTIS-P's IDATA).
int DataIndex(const OtisDeck& d, int reach) {
  int k = 0;
  for (int r = 0; r <= reach; ++r) k += d.estimation.observations[r].empty() ? 0 : 1;
  return k;
}

struct Prediction {
  std::vector<double> values;
  int segments = 0;
};

Prediction Predict(const OtisDeck& d, int reach) {
  const auto& obs = d.estimation.observations[reach];
  OtisDeck t = Truncated(d, reach);
  Prediction p;
  p.segments = t.NumSegments();
  if (d.SteadyState()) {
    // Steady state: interpolate between segment centres (WEIGHTS2, SETPV2).
    t.print_locations_m.clear();
    const transport::TransportResult r = RunOtisScheme(t);
    const int n = r.num_segments;
    std::vector<double> dist;
    double x = t.xstart_m;
    for (const auto& re : t.reaches) {
      const double dx = re.length_m / re.num_segments;
      for (int k = 0; k < re.num_segments; ++k, x += dx) dist.push_back(x + 0.5 * dx);
    }
    for (const auto& o : obs) {
      int j = 0;
      while (j + 1 < n && !(o.where >= dist[j] && o.where <= dist[j + 1])) ++j;
      if (j + 1 >= n) {
        throw ConfigError(Located(d.estimation.data_file, o.line, "distance",
                                  "beyond the segments OTIS-P simulates for this reach"));
      }
      const double w = (o.where - dist[j]) / (dist[j + 1] - dist[j]);
      const double c0 = r.Concentration(0, 0, j, 0), c1 = r.Concentration(0, 0, j + 1, 0);
      p.values.push_back(c0 + w * (c1 - c0));
    }
    return p;
  }
  // Dynamic: run to the last observation + 2 TSTEP, keep every step at the reach's print
  // location, interpolate linearly in time (DYNAMIC2, SETPV).
  const int k = DataIndex(d, reach) - 1;
  t.print_locations_m = {d.print_locations_m[k]};
  t.final_h = obs.back().where + 2.0 * d.time_step_h;
  t.print_step_h = d.time_step_h;
  const transport::TransportResult r = RunOtisScheme(t);
  std::vector<double> th(r.num_times);
  for (int i = 0; i < r.num_times; ++i) th[i] = r.times_s[i] / kHour;
  int i = 1;
  for (const auto& o : obs) {
    // SETPV: the step at time TIME with TIME <= XM < TIME + TSTEP, checked from the first
    // step after TSTART on.
    while (i + 1 < r.num_times && !(o.where >= th[i] && o.where < th[i] + d.time_step_h)) ++i;
    if (i + 1 >= r.num_times) {
      throw SolverError("OTIS-P: observation at " + std::to_string(o.where) +
                        " h lies past the simulated time");
    }
    const double c0 = r.StationConcentration(0, i, 0, 0),
                 c1 = r.StationConcentration(0, i + 1, 0, 0);
    p.values.push_back(c0 + (c1 - c0) * (o.where - th[i]) / (th[i + 1] - th[i]));
  }
  return p;
}

// OKPARAM's limits: DISP >= 0.01 (lower values may make OTIS unstable), AREA, AREA2 > 0
// (here: >= 1e-6 of the start value), the rest >= 0.
double LowerBound(int par, double initial) {
  switch (par) {
    case kDisp:
      return 0.01;
    case kArea:
    case kArea2:
      return 1e-6 * std::max(initial, 1e-6);
    default:
      return 0.0;
  }
}

// Typical magnitude for scaling when the starting value is 0 (app6 starts LAMBDA at 0).
double TypicalMagnitude(int par) {
  switch (par) {
    case kDisp:
      return 1.0;
    case kArea:
    case kArea2:
      return 1.0;
    case kAlpha:
      return 1e-4;
    case kLambda:
    case kLambda2:
    case kLamhat:
    case kLamhat2:
      return 1e-5;
    default:
      return 1.0;
  }
}

}  // namespace

std::array<double, kOtisNumParameters> OtisReachParameters(const OtisDeck& d, int r) {
  std::array<double, kOtisNumParameters> p{};
  p[kDisp] = d.reaches[r].dispersion_m2s;
  p[kArea] = d.unsteady ? 0.0 : d.reach_area_m2[r];
  p[kArea2] = d.reaches[r].storage_area_m2;
  p[kAlpha] = d.reaches[r].alpha_per_s;
  p[kLambda] = d.lambda[0][r];
  p[kLambda2] = d.lambda2[0][r];
  const transport::Sorption& s = d.sorption[0][r];
  p[kRho] = s.sediment_kg_per_m3;
  p[kKd] = s.kd_m3_per_kg;
  p[kLamhat] = s.main_rate_per_s;
  p[kLamhat2] = s.storage_rate_per_s;
  return p;
}

void SetOtisParameter(OtisDeck* d, int first, int last, int index, double v) {
  for (int r = first; r <= last; ++r) {
    switch (index) {
      case kDisp:
        d->reaches[r].dispersion_m2s = v;
        break;
      case kArea:
        if (d->unsteady) throw ConfigError("OTIS-P: AREA cannot be set with unsteady flow");
        d->reach_area_m2[r] = v;
        break;
      case kArea2:
        d->reaches[r].storage_area_m2 = v;
        break;
      case kAlpha:
        d->reaches[r].alpha_per_s = v;
        break;
      case kLambda:
        d->lambda[0][r] = v;
        break;
      case kLambda2:
        d->lambda2[0][r] = v;
        break;
      case kRho:
        d->sorption[0][r].sediment_kg_per_m3 = v;
        break;
      case kKd:
        d->sorption[0][r].kd_m3_per_kg = v;
        break;
      case kLamhat:
        d->sorption[0][r].main_rate_per_s = v;
        break;
      case kLamhat2:
        d->sorption[0][r].storage_rate_per_s = v;
        break;
      default:
        throw ConfigError("OTIS-P: parameter index out of range");
    }
  }
}

std::vector<double> OtisPredictions(const OtisDeck& deck, int reach) {
  if (!deck.has_estimation || reach < 0 ||
      reach >= static_cast<int>(deck.estimation.observations.size()) ||
      deck.estimation.observations[reach].empty()) {
    throw ConfigError("OTIS-P: reach " + std::to_string(reach + 1) + " has no observations");
  }
  return Predict(deck, reach).values;
}

OtisEstimation EstimateOtisParameters(const OtisDeck& deck, const OtisEstimationOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("OTIS-P options: " + error);
  if (!deck.has_estimation) {
    throw ConfigError(Located("control.inp", 0, "",
                              "not an OTIS-P deck: control.inp names no data and STARPAC files"));
  }
  const OtisEstimationInput& e = deck.estimation;
  if (deck.unsteady && !e.fixed[kArea]) {
    throw ConfigError(Located(e.star_file, 0, "IFIXED (AREA)",
                              "AREA cannot be estimated with unsteady flow (OTIS takes the area "
                              "from the flow file)"));
  }
  OtisEstimation out;
  OtisDeck work = deck;
  const int nreach = static_cast<int>(deck.reaches.size());
  int first = 0;  // ISTART's reach
  for (int reach = 0; reach < nreach; ++reach) {
    const auto& obs = e.observations[reach];
    if (obs.empty()) continue;  // its parameters come with the next reach with data
    OtisReachEstimate est;
    est.reach = reach;
    est.first_reach = first;
    const auto start = OtisReachParameters(work, first);
    std::vector<FitParameter> fp;
    for (int k = 0; k < kOtisNumParameters; ++k) {
      if (e.fixed[k]) continue;
      est.parameters.push_back(k);
      FitParameter q;
      q.name = kOtisParameterNames[k];
      q.lower = LowerBound(k, start[k]);
      q.initial = std::max(start[k], q.lower);
      q.scale =
          e.scale[k] > 0 ? e.scale[k] : (start[k] != 0 ? std::abs(start[k]) : TypicalMagnitude(k));
      fp.push_back(q);
    }
    for (const auto& o : obs) {
      est.observed.push_back(o.concentration);
      est.where.push_back(o.where);
    }
    const int n = static_cast<int>(obs.size());
    // Every reach of the group gets the trial values (OTIS-P SETUP).
    OtisDeck trial = work;
    ResidualModel model = [&](const std::vector<double>& x, std::vector<double>* res) {
      for (size_t j = 0; j < x.size(); ++j)
        SetOtisParameter(&trial, first, reach, est.parameters[j], x[j]);
      const Prediction p = Predict(trial, reach);
      for (int i = 0; i < n; ++i) (*res)[i] = p.values[i] - est.observed[i];
    };
    FitOptions fo = options.fit;
    fo.max_iterations = std::min(fo.max_iterations, e.max_iterations);  // MIT
    est.fit = FitLeastSquares(fp, n, model, fo);
    for (size_t j = 0; j < est.parameters.size(); ++j) {
      SetOtisParameter(&work, first, reach, est.parameters[j], est.fit.estimate[j]);
    }
    const Prediction p = Predict(work, reach);
    est.predicted = p.values;
    est.model_segments = p.segments;
    out.reaches.push_back(est);
    first = reach + 1;
  }
  out.fitted = work;
  out.result = RunOtisScheme(work);
  return out;
}

std::string OtisEstimation::BriefReport() const {
  std::ostringstream o;
  for (const auto& r : reaches) {
    o << "reach " << r.reach + 1;
    if (r.first_reach != r.reach)
      o << " (reaches " << r.first_reach + 1 << "-" << r.reach + 1 << ")";
    o << ": " << r.observed.size() << " observations, model on " << r.model_segments
      << " segments; " << r.fit.BriefReport() << "\n";
    for (size_t j = 0; j < r.parameters.size(); ++j) {
      o << "  " << std::left << std::setw(8) << kOtisParameterNames[r.parameters[j]] << std::right
        << std::setw(14) << std::setprecision(6) << r.fit.estimate[j] << "  +- "
        << std::setprecision(3) << r.fit.std_error[j] << "\n";
    }
  }
  return o.str();
}

std::string FormatOtisEstimates(const OtisEstimation& est) {
  std::ostringstream o;
  o << "reach,parameter,estimate,std_error\n";
  o << std::setprecision(10);
  for (const auto& r : est.reaches) {
    for (size_t j = 0; j < r.parameters.size(); ++j) {
      o << r.reach + 1 << "," << kOtisParameterNames[r.parameters[j]] << "," << r.fit.estimate[j]
        << ",";
      if (std::isfinite(r.fit.std_error[j])) o << r.fit.std_error[j];
      o << "\n";
    }
  }
  return o.str();
}

}  // namespace qingshui::calibration
