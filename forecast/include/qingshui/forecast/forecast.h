// The daily forecast (docs/forecast.md): a hindcast over the last days with the recorded
// inputs, assimilation of the station observations into the source loads through the
// linear transport response (a bounded Kalman/least-squares analysis), then an ensemble
// over the horizon that perturbs loads, rates, flows, rain and temperature; per station,
// species and time the quantiles and the probabilities of exceeding each class limit, per
// day the assessed class with its probability, and the sources that contribute most.
//
// Members that share a flow field and kinetics ("a hydraulic group") are solved together
// by one transport run (one factorization per step); groups, the hindcast components and
// the control run are independent tasks spread over the threads. Every member and group
// draws from its own random stream, so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/forecast/inputs.h"

namespace qingshui::forecast {

// The ensemble's distributions (docs/forecast.md, "Ensemble"). "log-sd" is the standard
// deviation of ln(factor); factors are log-normal with mean 1.
struct Perturbations {
  // Per member, per source and species, per day: AR(1) log-noise around the analysed
  // factor, correlated between the species of one source.
  double plant_load_sigma = 0.20;     // treatment plants (daily effluent variability)
  double outfall_load_sigma = 0.35;   // industrial outfalls
  double other_load_sigma = 0.30;     // other sources (lake outflows, drainage, ...)
  double headwater_sigma = 0.15;      // headwater concentrations
  double load_autocorrelation = 0.7;  // lag-one-day correlation of the log-noise
  double species_correlation = 0.5;   // between the species of one source
  // Per hydraulic group (shared by its members):
  double flow_sigma = 0.20;        // headwater and diffuse inflows
  double velocity_sigma = 0.10;    // velocity at a given flow (cross-section area)
  double dispersion_sigma = 0.30;  // dispersion coefficients
  double decay_sigma = 0.30;       // first-order rates, per species
  double rain_sigma = 0.50;        // forecast rain amounts, per day
  // Chance of a rain day the forecast did not announce: this fraction of the month's
  // climatological wet-day probability, with the climatological wet-day amount
  // (exponential); 0 switches it off.
  double unforecast_rain_fraction = 0.5;
  double temperature_sd_c = 1.5;  // water temperature error (°C), per group

  bool IsValid(std::string* error) const;
};

struct AssimilationOptions {
  bool enabled = true;
  // Factor windows: the last `recent_days` of the hindcast and the days before (0 = one
  // window). The forecast continues from the recent window's factors.
  int recent_days = 3;
  // Prior of the load factors (1 = the recorded, scheduled or design load): log-sd-like
  // standard deviations by kind, and of the change between the two windows.
  double plant_prior_sigma = 0.30;
  double outfall_prior_sigma = 0.50;
  double other_prior_sigma = 0.50;
  double headwater_prior_sigma = 0.30;
  double change_sigma = 0.20;
  double max_factor = 5.0;  // bounds [0, max_factor]
  // Observation error (mg/L): sqrt(floor² + (relative_error·value)²); floor =
  // floor_fraction × the Class III limit (floor_mg_l for species without one).
  double relative_error = 0.15;
  double floor_fraction = 0.05;
  double floor_mg_l = 0.01;
  double suspect_factor = 3.0;  // flag "suspect": error × this

  bool IsValid(std::string* error) const;
};

struct ForecastOptions {
  std::int64_t as_of_utc_s = 0;  // required: the forecast starts here (UTC seconds)
  int days = 7;                  // whole local days forecast after the as-of time
  int hindcast_days = 10;        // days of hindcast before the as-of day
  int members = 200;
  int groups = 10;  // hydraulic groups (at most `members`)
  std::uint64_t seed = 1;
  int threads = 0;  // 0 = OpenMP default
  double time_step_s = 1800.0;
  double output_interval_s = 3600.0;    // must divide a day
  std::vector<std::string> indicators;  // assessed species; empty = all in the standard
  std::vector<double> quantiles = {0.05, 0.25, 0.5, 0.75, 0.95};
  Perturbations perturbations;
  AssimilationOptions assimilation;
  bool store_members = false;  // keep every member's station series
  // Progress lines ("hindcast: ...", "ensemble: ..."); the CLI prints them, Python logs.
  std::function<void(const std::string&)> progress;

  bool IsValid(std::string* error) const;
};

// What the assimilation found, per species (network order) and factor.
struct Analysis {
  bool assimilated = false;
  std::vector<std::string> components;  // "headwater:<reach>" and source ids
  std::vector<std::string> windows;     // "YYYY-MM-DD/YYYY-MM-DD" (local days, inclusive)
  // [species][window][component]
  std::vector<double> factor, factor_sd;
  std::vector<int> observations_used;             // per species
  std::vector<double> rmse_prior, rmse_analysis;  // mg/L at the observations, per species
  // Per observation used: time, station, species, value, the prior and analysed model.
  std::vector<std::int64_t> obs_time_utc_s;
  std::vector<std::string> obs_station, obs_species;
  std::vector<double> obs_value, obs_prior, obs_analysis, obs_error;
  // Hourly station series over the hindcast: [time][station][species].
  std::vector<std::int64_t> hindcast_times_utc_s;
  std::vector<double> hindcast_prior, hindcast_analysis;
};

struct ForecastSummaryRow {
  std::string station;
  std::string day;  // YYYY-MM-DD (local)
  std::string cls;  // predicted daily class ("III", "劣V"): median of the members' classes
  double class_probability = 0.0;
  double p_worse_than_iii = 0.0;
  std::string main_pollutant;   // "" when no indicator exceeds Class III
  double main_ratio = 0.0;      // its median daily mean / Class III limit
  std::string worst_indicator;  // largest ratio to Class III, exceeding or not
  double worst_ratio = 0.0;
  std::string top_source;  // largest contributor to that indicator's daily mean
  double top_share = 0.0;
};

struct ForecastResult {
  // Coordinates.
  std::int64_t as_of_utc_s = 0;
  std::vector<std::int64_t> times_utc_s;  // output times, as-of to the end of the last day
  std::vector<std::string> days;          // the forecast days (local dates)
  std::vector<std::string> stations;      // river stations (outfall monitors are not forecast)
  std::vector<std::string> species;       // network order
  std::vector<std::string> indicators;    // assessed species
  std::vector<double> quantile_levels;
  std::vector<std::string> limit_classes;  // "I" ... "V"
  std::vector<std::string> classes;        // "I" ... "V", "劣V"
  std::vector<std::string> contributors;   // "headwater:<reach>", source ids, "diffuse"
  int members = 0, groups = 0;

  // Limits (mg/L) [limit_class][species], NaN where the standard has none.
  std::vector<double> limits_mg_l;
  // Hourly: [quantile][time][station][species], [limit_class][time][station][species],
  // [time][station][species].
  std::vector<double> quantiles, p_exceed, mean;
  // Daily means: [quantile][day][station][species], [limit_class][day][station][species].
  std::vector<double> daily_quantiles, daily_p_exceed, daily_mean;
  // Predicted daily class — the median of the members' daily classes, each the worst
  // assessed indicator of the member's daily means (index into `classes`) — and the
  // probability that a member has that class: [day][station]. Class probabilities
  // [class][day][station]; P(daily class worse than limit class c) [limit_class][day][station].
  std::vector<int> daily_class;
  std::vector<double> daily_class_probability, class_probability, p_class_worse;
  // Median daily mean / Class III limit [day][station][species] (NaN: no limit).
  std::vector<double> ratio_to_class_iii;
  std::vector<std::string> main_pollutants;  // [day][station], comma-separated, worst first
  // Control run (analysed loads, unperturbed): hourly [time][station][species] and the
  // exact apportionment of its daily means [day][station][species][contributor] (mg/L).
  std::vector<double> control, contribution;
  std::vector<std::string> top_source;  // [day][station]
  double apportionment_closure = 0.0;   // max |Σ components − total| / total before reconciling
  // Members' station series [member][time][station][species] (store_members only).
  std::vector<double> member_values;

  Analysis analysis;
  std::vector<Issue> warnings;
  std::vector<std::string> defaults_used;
  std::vector<ForecastSummaryRow> summary;
  // Facts for the file: seed, options, timings.
  std::uint64_t seed = 0;
  int hindcast_days = 0;
  double wall_time_s = 0.0, hindcast_time_s = 0.0, ensemble_time_s = 0.0;
  int threads = 1;
  // CPU time of every parallel task, per phase in the order the tasks are handed out,
  // and of the serial work between the phases: what the parallel schedule allows,
  // whatever the machine's other load (benchmarks/forecast_benchmark.cpp).
  struct Phase {
    std::string name;
    std::vector<double> task_cpu_s;
  };
  std::vector<Phase> phases;
  double serial_cpu_s = 0.0;

  int num_times() const { return static_cast<int>(times_utc_s.size()); }
  int num_stations() const { return static_cast<int>(stations.size()); }
  int num_species() const { return static_cast<int>(species.size()); }
  int num_days() const { return static_cast<int>(days.size()); }
  // One line per fact: as-of, members, analysis fit, timings.
  std::string BriefReport() const;
};

// Options with the defaults of the inputs (settings in the manifest), the as-of time of
// `as_of_text` (ISO) or of the manifest or, failing both, the latest observation. Every
// fallback taken is appended to `defaults_used`.
ForecastOptions OptionsFromInputs(const ForecastInputs& inputs,
                                  std::vector<std::string>* defaults_used);

// Runs the forecast. Throws ConfigError for invalid options, DataError for unusable data.
ForecastResult RunForecast(const Network& network, const ForecastInputs& inputs,
                           const ForecastOptions& options);

// The summary table as printed by `qingshui forecast`, and as JSON.
std::string FormatSummaryTable(const ForecastResult& result);
std::string SummaryJson(const ForecastResult& result);

}  // namespace qingshui::forecast
