// Source apportionment: the contribution of each source (and of each reach's diffuse inflow
// and each headwater) to each station's concentration, exact in the sense that the
// contributions add up to the simulated concentration.
//
// Why not "one run per source": the advection scheme's flux limiter (docs/methods.md §2)
// makes a run positively homogeneous of degree one in its forcing (all loads and boundary
// values times s gives s times the concentrations) but not additive, so runs of each
// source alone do not add up to the run with all of them. Euler's theorem for homogeneous
// functions gives an exact decomposition at the actual operating point instead:
//     C(L) = sum_j L_j dC/dL_j (L),
// contribution_j = L_j dC/dL_j, the change in C per relative change of source j's forcing,
// computed by central differences with every member of one run sharing the flow field
// (forcing j scaled by 1 +- h). The same derivatives are the linear response used by the
// load allocation. Where the limiter is not differentiable the identity holds only to
// O(h); the remainder ("closure") is reported and distributed in proportion to the
// contributions, so that they add up exactly. docs/calibration.md §4.
#pragma once

#include <string>
#include <vector>

#include "qingshui/hydro/simulation.h"

namespace qingshui::calibration {

struct ApportionOptions {
  double relative_step = 1e-4;  // h; the forcing of a contributor is scaled by 1 +- h
  // Steady state of the simulation's first day instead of the time-stepped run (monthly
  // means under steady conditions, the load allocation).
  bool steady_state = false;
  // Convergence of the steady solver's defect correction (relative change). Its lagged
  // limiter can stall at round-off, member by member, below ~1e-12; the closure error is
  // about this tolerance over relative_step.
  double steady_tolerance = 1e-11;
  // Resolve only these contributors (ids as in Apportionment::contributors); empty = all.
  // With a subset, "rest" holds the total minus the resolved ones (by Euler's theorem,
  // the sum of the others' contributions) and no reconciliation is applied.
  std::vector<std::string> only;
  bool IsValid(std::string* error) const;
};

struct Apportionment {
  // Source ids, "diffuse:<reach>", "headwater:<reach>" (each headwater boundary).
  std::vector<std::string> contributors;
  std::vector<std::string> stations, species;
  std::vector<double> times_s;
  // [((contributor * num_times + time) * num_stations + station) * num_species + species]
  std::vector<double> contribution_g_m3;
  // Simulated concentration and what is not resolved: [(time * stations + station) *
  // species + k].
  std::vector<double> total_g_m3, rest_g_m3;
  // Largest |sum of contributions - total| before reconciliation, relative to the largest
  // total of the species (all contributors resolved only; else 0).
  double max_closure_error = 0.0;
  bool reconciled = false;

  int num_times() const { return static_cast<int>(times_s.size()); }
  size_t Index(int c, int t, int s, int k) const {
    return ((static_cast<size_t>(c) * times_s.size() + t) * stations.size() + s) * species.size() +
           k;
  }
  double Contribution(int c, int t, int s, int k) const {
    return contribution_g_m3[Index(c, t, s, k)];
  }
  double Total(int t, int s, int k) const {
    return total_g_m3[(static_cast<size_t>(t) * stations.size() + s) * species.size() + k];
  }
};

// The contributions for a simulation (hydro::BuildSimulation; its members beyond the
// first are ignored). Throws ConfigError for unknown contributor ids.
Apportionment Apportion(const hydro::Simulation& simulation, const ApportionOptions& options = {});

// Long-form CSV: time_s,station,species,contributor,concentration_mg_l,share (share of the
// total; empty where the total is 0), one row per contributor, then "total".
std::string FormatApportionment(const Apportionment& a);

}  // namespace qingshui::calibration
