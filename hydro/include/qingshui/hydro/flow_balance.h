// Steady flow of one day on a network: which sources run on the date, the water balance of
// every segment (headwaters, sources, wetland routing, diffuse inflow, withdrawals and
// losses, in-line lakes), and the depth, velocity and dispersion that go with it.
// docs/hydraulics.md explains the rules and the formulas.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "qingshui/core/grid.h"
#include "qingshui/core/network.h"
#include "qingshui/hydro/hydraulics.h"

namespace qingshui::hydro {

// Water added at one point for the day beyond the network's own sources (e.g. a
// combined-sewer overflow computed from rain).
struct ExtraPointInflow {
  std::string label;  // names it in messages and in NetworkHydraulics::sources
  std::string reach;
  double km = 0.0;  // river-km on the reach's river
  double flow_m3s = 0.0;
  std::map<std::string, double> concentration_mg_l;
  bool is_effluent = false;  // counts as wastewater in effluent_fraction
};

// Water spread evenly along [km_from, km_to] of a reach (e.g. catchment runoff).
struct ExtraDistributedInflow {
  std::string label;
  std::string reach;
  double km_from = 0.0;
  double km_to = 0.0;
  double flow_m3s = 0.0;  // total over the stretch
  std::map<std::string, double> concentration_mg_l;
};

struct DayOptions {
  std::string date;    // YYYY-MM-DD, required: decides which sources run
  std::string season;  // headwater and lateral_flow season; empty = SeasonOfDate(date)
  // Months of the flood season (汛期), 1-12; the rest of the year is "dry".
  std::vector<int> wet_months = {6, 7, 8, 9};
  std::vector<ExtraPointInflow> point_inflows;
  std::vector<ExtraDistributedInflow> distributed_inflows;
  // Leave the network sources' mass out of lateral_concentration_g_m3 (their water still
  // enters): the caller applies SourceFlow::loads as separate point loads, so that each
  // source's contribution can be followed on its own (apportionment, tracing kernels).
  bool sources_as_loads = false;

  bool IsValid(std::string* error) const;
};

// "wet" when the date's month is in wet_months, else "dry". Throws ConfigError for a
// malformed date.
std::string SeasonOfDate(const std::string& date,
                         const std::vector<int>& wet_months = {6, 7, 8, 9});

// Whether a source discharges (or withdraws) on a date, and why. Rules
// (docs/network-format.md, "What the source fields mean for the water balance"):
//  - storm_overflow: only in storms, i.e. never in a dry-weather balance (rain.h adds them);
//  - operating: from `online` (if given) to `offline` (if given), inclusive;
//  - planned / under_construction: from `online` if it is given, never without it;
//  - plugged: after `offline` (the day it is unplugged), never without it;
//  - lake_outflow with `rule_class`: stores (does not discharge) while its outflow
//    concentration exceeds that class for an indicator of the network's standard.
// Does water of concentrations `c` (species → mg/L) meet class `cls` (e.g. "III") of the
// standard for every indicator it has a value for? On failure names the first indicator
// that fails in `failed`. An unknown class cannot be judged and passes. Lake operating
// rules ("discharge only at Class III, else store") use it to open or close the lake's
// gate in routing (RoutingProblem::gate_open) from the concentrations transport computes.
bool MeetsClass(const Standard& standard, const std::map<std::string, double>& c,
                const std::string& cls, std::string* failed = nullptr);

struct SourceActivity {
  bool active = false;
  std::string reason;
};
SourceActivity SourceActivityOn(const Network& net, const Source& source, const std::string& date);

// The day's steady hydraulics on the network's grid. Throws ConfigError for invalid
// options or a season that a headwater, lateral_flow or lake has no entry for.
NetworkHydraulics SteadyHydraulics(const Network& net, const NetworkGrid& grid,
                                   const DayOptions& options);
NetworkHydraulics SteadyHydraulics(const Network& net, const DayOptions& options);

}  // namespace qingshui::hydro
