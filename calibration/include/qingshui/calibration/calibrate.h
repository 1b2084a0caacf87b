// Calibration of a network's transport parameters against observed concentration series:
// per-reach dispersion, storage-zone area and exchange rate, decay rates and a velocity
// scale, fitted with bounds, Gaussian priors and weights per station and species by
// Levenberg-Marquardt (least_squares.h) on full network runs (hydro::RunSimulation).
// docs/calibration.md §2.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "qingshui/calibration/least_squares.h"
#include "qingshui/core/network.h"
#include "qingshui/hydro/simulation.h"

namespace qingshui::calibration {

// One observed concentration. time_s counts from 00:00 local time (UTC+8) of the
// simulation's start date, as hydro::Simulation does.
struct Observation {
  double time_s = 0.0;
  std::string station;
  std::string species;
  double value_mg_l = 0.0;
  int line = 0;  // in the CSV file
};

// Seconds from 00:00 (UTC+8) of `start_date` to an ISO-8601 date-time with an offset
// ("2024-04-01T08:00:00+08:00", "...Z", "...+0800"; seconds and fractions optional).
// Throws DataError (what was expected) for anything else.
double SecondsSinceStart(const std::string& iso_time, const std::string& start_date);

// Long-form CSV, header `time,station,species,value` (any column order; more columns are
// ignored), '#' comment lines. Throws DataError naming the file, line and column.
std::vector<Observation> ReadObservations(const std::string& path, const std::string& start_date);

enum class ParameterKind {
  kDispersion,        // dispersion_m2s: the reach's dispersion coefficient (m2/s)
  kStorageAreaRatio,  // storage_area_ratio: A_s / A (-)
  kExchange,          // exchange_per_s: storage-zone exchange alpha (1/s)
  kDecay,             // decay_per_day: first-order decay at 20 deg C of `species` (1/d)
  kVelocityFactor,    // velocity_factor: velocity multiplied (area divided) by it (-)
};
const char* ToString(ParameterKind kind);  // the names above
bool ParseParameterKind(const std::string& name, ParameterKind* kind);

struct CalibrationParameter {
  ParameterKind kind = ParameterKind::kDispersion;
  std::string reach;    // empty = every reach (a lake for kDecay: its segment)
  std::string species;  // kDecay only
  // Start value; NaN = the network's value (for a reach with varying values along it, the
  // mean over its wet segments).
  double initial = std::numeric_limits<double>::quiet_NaN();
  double lower = 0.0;
  double upper = std::numeric_limits<double>::infinity();
  double prior_mean = 0.0, prior_sd = 0.0;  // prior_sd <= 0: no prior
  std::string Name() const;  // e.g. "dispersion_m2s[sushui_lower]", "decay_per_day[COD]"
};

// A tracer injected for the study (dye or salt slug): `mass_kg` of `species` released at
// (reach, km) uniformly over [start_s, start_s + duration_s) (hydro::ReleaseLoad).
struct TracerRelease {
  std::string reach;
  double km = 0.0;
  std::string species;
  double start_s = 0.0, duration_s = 0.0, mass_kg = 0.0;
};

struct CalibrationProblem {
  hydro::SimulationOptions simulation;
  std::vector<TracerRelease> releases;
  std::vector<CalibrationParameter> parameters;
  std::vector<Observation> observations;
  // Weights multiply squared residuals (1/sigma^2 up to a common factor); default 1.
  std::map<std::string, double> station_weights, species_weights;
  FitOptions fit;
};

struct CalibrationResult {
  FitResult fit;  // estimates, standard errors, correlation (parameter order)
  std::vector<CalibrationParameter> parameters;
  std::vector<Observation> observations;
  std::vector<double> simulated_mg_l;  // at the observations, at the estimates
  std::vector<double> weights;         // per observation
  std::string BriefReport() const;
};

// Throws ConfigError for unknown stations, species, reaches or inconsistent bounds,
// DataError for observations outside the simulated period.
CalibrationResult Calibrate(const Network& network, const CalibrationProblem& problem);

// The network's simulation with parameter values `x` (CalibrationParameter order) applied:
// what Calibrate runs for each trial.
hydro::Simulation CalibratedSimulation(const Network& network, const CalibrationProblem& problem,
                                       const std::vector<double>& x);

// Reads a calibration file (YAML; docs/calibration.md §2.3): simulation, parameters,
// weights, fit options and the observation CSV (relative to the file). The network path
// it names (if any) is returned in `network_path`.
CalibrationProblem ReadCalibrationFile(const std::string& path, std::string* network_path);

// CSV tables of a result: estimates (parameter,kind,reach,species,initial,estimate,
// std_error,lower,upper,at_bound), the correlation matrix, residuals (time_s,station,
// species,observed,simulated,weight,weighted_residual).
std::string FormatEstimates(const CalibrationResult& result);
std::string FormatCorrelation(const CalibrationResult& result);
std::string FormatResiduals(const CalibrationResult& result);

}  // namespace qingshui::calibration
