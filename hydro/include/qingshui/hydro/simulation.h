// A water-quality run on a network over whole days: the daily steady hydraulics feed the
// transport solver, every network source enters as its own point loads (so that each
// source's share can be followed), headwaters as concentration boundaries, and the
// network's stations are where values are reported.
//
// Time: t = 0 s is 00:00 local time (Asia/Shanghai, UTC+8) of `start_date`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "qingshui/core/grid.h"
#include "qingshui/core/network.h"
#include "qingshui/core/transport.h"
#include "qingshui/hydro/flow_balance.h"
#include "qingshui/hydro/hydraulics.h"
#include "qingshui/hydro/rain.h"

namespace qingshui::hydro {

struct SimulationOptions {
  std::string start_date;  // YYYY-MM-DD, required
  int days = 1;            // whole days simulated, >= 1
  double time_step_s = 1800.0;
  double output_interval_s = 3600.0;  // station values every this many seconds
  std::string season;                 // for every day; empty = from each date
  // Uncertain hydraulics (tracing drills, ensembles): velocity is scaled by keeping each
  // segment's flow and dividing its area by the factor; dispersion is scaled directly.
  double velocity_factor = 1.0;
  double dispersion_factor = 1.0;
  double temperature_c = 20.0;  // water temperature for the θ^(T−20) correction
  // Start from the steady state of the first day's conditions (else from zero).
  bool steady_initial_state = true;
  // Extra inflows for every day (scenarios: supplementation, spills as lateral water).
  std::vector<ExtraPointInflow> point_inflows;
  // Rain of some days (hydro::RainDays, keyed by its date): that day's catchment runoff and
  // combined-sewer overflows are added to its hydraulics, as `qingshui hydro --rain` does.
  std::map<std::string, RainDay> rain_days;

  bool IsValid(std::string* error) const;
};

// Where one contributor's mass enters: indices into the baseline forcing's loads. The
// contributors are the network's sources (by id) and the diffuse inflow of each reach
// ("diffuse:<reach id>"); headwaters enter through the boundaries.
struct SourceLoads {
  std::string id;
  std::vector<int> load_index;  // into problem.members[0].loads
};

struct Simulation {
  SimulationOptions options;
  NetworkGrid grid;
  std::vector<NetworkHydraulics> days;  // one per simulated day
  std::vector<std::string> species;     // ids, network order
  std::vector<std::string> station_ids; // network order
  std::vector<int> station_segments;
  std::vector<SourceLoads> sources;     // every network source with mass on some day
  // members[0] is the baseline: headwater boundaries and every contributor's loads. All
  // mass enters through boundaries or point loads (the flow field's lateral water carries
  // zero concentration), so that members can hold any part of it.
  transport::TransportProblem problem;
  transport::TransportOptions transport_options;

  int num_segments() const { return grid.size(); }
};

// Builds the run. Throws ConfigError for bad options or unknown ids.
Simulation BuildSimulation(const Network& network, const SimulationOptions& options);

// Appends one member per contributor (its loads alone, zero boundaries) and one for the
// headwaters (boundaries alone), and returns their names: the sources' ids,
// "diffuse:<reach>" and "headwater". Each member starts from its own steady state.
std::vector<std::string> AddContributionMembers(Simulation* simulation);

// Runs it (the steady initial state first, when asked); station values are in
// result.station_concentration_g_m3 in the order of Simulation::station_ids.
transport::TransportResult RunSimulation(const Simulation& simulation);

// A point load of `mass_g` of `species` released at (reach, km) uniformly over
// [start_s, start_s + duration_s) (duration 0: within one time step), as a transport
// PointLoad in the simulation's grid.
transport::PointLoad ReleaseLoad(const Simulation& simulation, const std::string& reach, double km,
                                 int species, double start_s, double duration_s, double mass_g);

}  // namespace qingshui::hydro
