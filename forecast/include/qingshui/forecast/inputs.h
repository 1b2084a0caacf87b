// Inputs of the daily forecast (docs/forecast.md, "Inputs"): an inputs directory with a
// manifest `forecast.yaml` naming the as-of time and the files, station observations
// (CSV in long form or the same in HDF5), plant flow and effluent records, a schedule of
// plant events (outages, upgrades, online/offline dates, flow changes), a weather forecast
// (daily rain per sub-catchment, water temperature), scenario overrides and a seasonal
// climatology. Everything but the network is optional: what is missing falls back to a
// documented default, and the run lists the defaults it used.
//
// Problems in the data are either errors (DataError/ConfigError naming file, line and
// field, with the problem's code in brackets, e.g. "[unknown-station]") when the input
// cannot be meant as written, or named warnings (Issue) when the run can go on without the
// offending value: gaps, duplicate timestamps, values outside the physical range,
// stations without observations.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/hydro/rain.h"

namespace qingshui::forecast {

// A named warning. `code` is one of those listed in docs/forecast.md ("Warnings").
struct Issue {
  std::string code;            // e.g. "observation-gap"
  std::string where;           // "observations.csv:41", "miaoqian/NH3N", ...
  std::string message;         // what is wrong and what the run did about it
  std::string Format() const;  // "warning[observation-gap] observations.csv:41: ..."
};

// One observed value. Flags: "" or "ok" (valid), "suspect" (used with three times the
// observation error), "below_detection" (value is the detection limit; used as half of
// it, with an error of half of it), "invalid" (not used).
struct Observation {
  std::int64_t time_utc_s = 0;
  std::string station;
  std::string species;
  double value_mg_l = 0.0;
  std::string flag;
  std::string where;  // "observations.csv:12" or "observations.h5:/value[11]"
};

// A daily-mean record of a source: its flow (quantity "flow_m3s", m³/s) or the effluent
// concentration of a species (quantity = species id, mg/L) on a local calendar day.
struct PlantRecord {
  std::int64_t day = 0;  // local days since 1970-01-01
  std::string source;
  std::string quantity;
  double value = 0.0;
  std::string where;
};

// A planned or reported change of a source over local days [from_day, to_day].
//   outage:  effluent_mg_l replaces the species given, flow_factor scales the flow;
//   upgrade: effluent_mg_l replaces the species given (to_day open by default);
//   flow:    flow_m3s replaces the flow;
//   online:  the source runs from from_day (status operating), whatever the network says;
//   offline: the source does not run (no water, no mass) in the window.
struct ScheduleEvent {
  enum class Kind { kOutage, kUpgrade, kFlow, kOnline, kOffline };
  std::string source;
  Kind kind = Kind::kOutage;
  std::int64_t from_day = 0;
  std::int64_t to_day = INT64_MAX;
  std::map<std::string, double> effluent_mg_l;
  std::optional<double> flow_m3s;
  double flow_factor = 1.0;
  std::string note;
  std::string where;
  bool Covers(std::int64_t day) const { return day >= from_day && day <= to_day; }
};
const char* ToString(ScheduleEvent::Kind kind);

// Weather for the hindcast and the horizon: rain per catchment (hydro's rain series) and
// the daily mean water temperature.
struct Weather {
  std::string file;
  std::optional<hydro::RainSeries> rain;  // none = no rain column in the file (or no file)
  std::map<std::int64_t, double> water_temperature_c;  // by local day
};

// Monthly climatology (index 0 = January): the defaults for missing weather and the
// distribution of rain the forecast did not announce.
struct Climatology {
  std::string file;
  std::array<double, 12> water_temperature_c{};
  std::array<double, 12> wet_day_probability{};   // P(rain >= 1 mm on a day)
  std::array<double, 12> mean_wet_day_rain_mm{};  // mean rain of such a day
};

// Settings a manifest may carry (each overridden by the command line).
struct InputSettings {
  std::optional<int> hindcast_days, days, members, groups;
  std::optional<std::uint64_t> seed;
  std::vector<std::string> indicators;  // assessed species; empty = every standard indicator
};

struct ForecastInputs {
  std::string dir;
  std::string manifest;  // path of forecast.yaml, "" when the directory has none
  std::string description;
  bool synthetic = false;  // the manifest says the data are synthetic (demo)
  std::optional<std::int64_t> as_of_utc_s;
  std::string network_path;  // from the manifest (resolved), "" = not given

  std::string observations_file;  // "" = none
  std::vector<Observation> observations;
  std::string plant_records_file;
  std::vector<PlantRecord> plant_records;
  std::string schedule_file;
  std::vector<ScheduleEvent> schedule;
  std::string scenario_file;
  std::vector<ScheduleEvent> scenario;
  Weather weather;
  Climatology climatology;
  InputSettings settings;
  std::vector<Issue> warnings;  // found while reading
};

// The shipped demo inputs (data/yuncheng/demo in the source tree); the environment variable
// QINGSHUI_FORECAST_INPUTS overrides it.
std::string DefaultInputsDir();

// The network the manifest in `dir` names ("" when there is no manifest or it names none).
std::string ManifestNetworkPath(const std::string& dir);

// Reads an inputs directory against a network (station, source, species and catchment ids
// are checked). A directory without forecast.yaml is read by the conventional file names
// (observations.csv or .h5, plant_records.csv, schedule.yaml, scenario.yaml, weather.csv).
// `climatology` defaults to climatology.yaml beside the network file.
ForecastInputs ReadInputs(const std::string& dir, const Network& net);

// Observation files: CSV `time,station,species,value[,flag]` (header required, columns in
// any order, '#' comment lines), or HDF5 with 1-D datasets of those names (docs/forecast.md).
// Syntax errors throw DataError; ids are checked by ValidateObservations.
std::vector<Observation> ReadObservationsCsv(const std::string& path);
std::vector<Observation> ParseObservationsCsv(const std::string& text, const std::string& file);
std::vector<Observation> ReadObservationsHdf5(const std::string& path);

// Plant records CSV `date,source,quantity,value`.
std::vector<PlantRecord> ParsePlantRecordsCsv(const std::string& text, const std::string& file);

// Checks observations against the network and the assimilation window [window_start,
// as_of] and keeps the usable ones, sorted by (station, species, time). Errors:
// unknown station or species ([unknown-station], [unknown-species]). Warnings: values
// outside the physical range ([value-out-of-range]: negative, not finite, or above 100x
// the Class V limit), duplicate timestamps ([duplicate-timestamp]: identical values keep
// one, conflicting values drop both), gaps longer than twice a station's sampling interval
// ([observation-gap]), river stations without any observation in the window
// ([station-without-observations]), observations after the as-of time
// ([observation-after-as-of]), outfall monitors ([outfall-monitor-not-assimilated]),
// invalid flags ([invalid-flag]).
std::vector<Observation> ValidateObservations(const std::vector<Observation>& observations,
                                              const Network& net, std::int64_t window_start_utc_s,
                                              std::int64_t as_of_utc_s, std::vector<Issue>* issues);

// The species a forecast assesses: `wanted` if given (each must be a network species with
// an indicator in the standard), else every network species the standard has.
std::vector<std::string> AssessedIndicators(const Network& net,
                                            const std::vector<std::string>& wanted);

}  // namespace qingshui::forecast
