// Rain: daily rainfall per sub-catchment → runoff into reaches (SCS curve number), and
// combined-sewer overflow at treatment plants when the sewage plus the storm water the
// sewers collect exceed the plant's capacity and its buffer tank is full. The overflow
// carries raw sewage mixed with storm water. docs/hydraulics.md ("Rain") gives the
// equations and the rain file format.
#pragma once

#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/hydro/flow_balance.h"

namespace qingshui::hydro {

// Daily rain (mm/day), one column per catchment, consecutive days.
struct RainSeries {
  std::string file;
  std::vector<std::string> dates;       // YYYY-MM-DD, consecutive
  std::vector<std::string> catchments;  // column ids
  std::vector<double> rain_mm;          // [day * catchments + column]

  int num_days() const { return static_cast<int>(dates.size()); }
  // Index of `date`, or -1.
  int DayIndex(const std::string& date) const;
  // Rain on `day` in catchment `id` (0 for a catchment without a column).
  double RainMm(int day, const std::string& id) const;
};

// CSV: a header `date,<catchment id>,...`, then one row per day. Throws DataError (named
// file, line and column) for gaps between days, repeated or unordered dates, missing,
// negative or non-numeric values; ConfigError for a column that is not a catchment of
// the network.
RainSeries ReadRainCsv(const std::string& path, const Network& net);
RainSeries ParseRainCsv(const std::string& text, const std::string& file, const Network& net);

// SCS curve-number runoff depth (mm) for a day's rain P (mm): S = 25400/CN − 254,
// I_a = λ S, Q = (P − I_a)² / (P − I_a + S) for P > I_a, else 0 (USDA-SCS NEH-4, 1972).
double ScsRunoffMm(double rain_mm, double curve_number, double initial_abstraction_ratio = 0.2);

struct CatchmentRunoff {
  std::string id;
  double rain_mm = 0.0;
  double runoff_mm = 0.0;
  double runoff_m3s = 0.0;    // day mean
  double to_sewer_m3s = 0.0;  // collected by combined sewers
  double to_river_m3s = 0.0;  // runs off into the reach
};

struct PlantStorm {
  std::string id;
  double sewage_m3s = 0.0;    // dry-weather sewage
  double storm_m3s = 0.0;     // storm water from combined sewers
  double capacity_m3s = 0.0;  // treatment capacity that day (operations applied)
  double treated_m3s = 0.0;   // inflow + tank release actually treated
  double tank_start_m3 = 0.0;
  double tank_end_m3 = 0.0;
  double overflow_m3s = 0.0;        // spilled to the river (day mean)
  double extra_effluent_m3s = 0.0;  // treated storm water discharged with the effluent
};

// Everything rain changes on one day.
struct RainDay {
  std::string date;
  std::vector<CatchmentRunoff> catchments;
  std::vector<PlantStorm> plants;
  std::vector<ExtraPointInflow> point_inflows;              // overflows, extra effluent
  std::vector<ExtraDistributedInflow> distributed_inflows;  // runoff
  std::string BriefReport() const;
};

// Runs the series from its first day (buffer tanks empty) and returns every day.
std::vector<RainDay> RainDays(const Network& net, const RainSeries& rain);
// The day `date` of that run; DataError if the series does not contain it.
RainDay RainOnDay(const Network& net, const RainSeries& rain, const std::string& date);
// Adds the day's runoff and overflows to the day's options.
void AddRain(const RainDay& day, DayOptions* options);

}  // namespace qingshui::hydro
