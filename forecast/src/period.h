// A run of the network over consecutive local days (internal to the forecast library):
// the daily steady hydraulics of the day's network (records, schedule and scenario
// applied; rain added), the transport problem they make, and the forcing pieces —
// headwater concentrations and each source's loads per day — from which members are
// assembled with factors. Mirrors hydro::BuildSimulation, with per-day networks and rain.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "qingshui/core/grid.h"
#include "qingshui/core/network.h"
#include "qingshui/core/transport.h"
#include "qingshui/forecast/inputs.h"
#include "qingshui/hydro/hydraulics.h"
#include "qingshui/hydro/rain.h"

namespace qingshui::forecast::detail {

struct PeriodSpec {
  std::int64_t first_day = 0;  // local days since 1970-01-01
  int days = 1;
  double start_s = 0.0, end_s = 0.0;  // seconds after 00:00 local of first_day
  std::vector<double> output_times_s;
  double time_step_s = 1800.0;
  double flow_factor = 1.0;  // headwater and diffuse inflows
  double velocity_factor = 1.0;
  double dispersion_factor = 1.0;
  std::vector<double> decay_factor;                              // per species; empty = 1
  std::vector<double> temperature_c;                             // per day
  const std::map<std::int64_t, hydro::RainDay>* rain = nullptr;  // by local day
  bool zero_lateral_concentration = false;  // diffuse mass left out (component runs)
};

struct DayLoad {
  int segment = 0;
  int species = 0;
  std::vector<double> g_s;  // per day
};

struct Period {
  PeriodSpec spec;
  std::vector<hydro::NetworkHydraulics> hydraulics;
  transport::TransportProblem problem;  // members empty
  std::vector<int> headwater_segments;
  std::vector<std::string> headwater_reaches;
  std::vector<std::vector<double>> headwater_g_m3;    // [headwater][day * ns + species]
  std::map<std::string, std::vector<DayLoad>> loads;  // by source id
};

// The network of one local day: records (the latest at or before the day: persistence),
// then schedule and scenario events covering the day.
Network DayNetwork(const Network& base, const ForecastInputs& inputs, std::int64_t day);

Period BuildPeriod(const std::vector<Network>& day_networks, const NetworkGrid& grid,
                   const std::vector<int>& station_segments, const PeriodSpec& spec);

// Factors [component][day * ns + species] over the components (headwaters first, in
// Period::headwater_reaches order of `headwater_reaches`, then `sources`).
struct ComponentSet {
  std::vector<std::string> headwater_reaches;
  std::vector<std::string> sources;
  int size() const { return static_cast<int>(headwater_reaches.size() + sources.size()); }
};

transport::Forcing MakeForcing(const Period& period, const ComponentSet& components,
                               const std::vector<std::vector<double>>& factors);

}  // namespace qingshui::forecast::detail
