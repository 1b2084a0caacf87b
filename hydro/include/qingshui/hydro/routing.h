// Unsteady routing of flood waves and releases on the segment grid: a kinematic wave in
// finite-volume form, implicit (backward Euler) in time and upwind in space, solved segment
// by segment upstream-first with a safeguarded Newton iteration. Why this scheme, and how
// its numerical diffusion c(Δx + cΔt)/2 plays the role of Muskingum-Cunge's matched
// diffusion, is in docs/hydraulics.md ("Unsteady routing").
//
// Per segment i of length Δx_i, with volume V = A Δx:
//   (V^{n+1} − V^n)/Δt = H_i + Σ_up Q_up^{n+1} + q_in,i − L_i − Q_i(A^{n+1})
// H headwater inflow, q_in lateral inflow, L the losses actually taken (never more than
// the water there), all averaged over the step. The discrete volume budget is exact up to
// round-off: the outflow is taken from the continuity equation once A^{n+1} is solved.
#pragma once

#include <string>
#include <vector>

#include "qingshui/core/grid.h"
#include "qingshui/core/network.h"
#include "qingshui/hydro/flow_balance.h"
#include "qingshui/hydro/hydraulics.h"

namespace qingshui::hydro {

// Volume-area-outflow relation of a lake (level pool): piecewise linear in volume between
// the rows of a table of depth, surface area and outflow. Volumes by the trapezoid rule.
class LevelPool {
 public:
  LevelPool() = default;
  // Rows in increasing depth; area > 0; outflow non-decreasing, starting at 0. Throws
  // ConfigError naming `what` when they are not.
  LevelPool(const std::vector<LakeLevel>& rows, const std::string& what);
  // A prismatic lake (constant area) with no outflow relation: outflow 0.
  static LevelPool Prismatic(double area_m2, double max_depth_m);

  double Volume(double depth_m) const;
  double Depth(double volume_m3) const;
  double Area(double volume_m3) const;
  double Outflow(double volume_m3) const;
  // The smallest volume whose outflow is `flow_m3s` (the level of a steady lake).
  double VolumeForOutflow(double flow_m3s) const;
  double max_volume_m3() const { return volume_.empty() ? 0.0 : volume_.back(); }
  bool has_outflow() const { return !outflow_.empty() && outflow_.back() > 0.0; }

 private:
  std::vector<double> depth_, area_, volume_, outflow_;
};

// How a segment's outflow depends on what it holds.
struct OutflowRelation {
  enum class Kind {
    kReach,        // Manning normal flow or the reach's rating curve, Q(A)
    kLinear,       // Q = c A (a linear channel: a cascade of linear reservoirs)
    kLevelPool,    // a lake: Q(V) from its table; A holds the volume (length 1 m)
    kPassThrough,  // a lake without a table: passes its inflow on, volume constant
  };
  Kind kind = Kind::kLinear;
  const Reach* reach = nullptr;  // kReach
  double celerity_ms = 0.0;      // kLinear
  LevelPool pool;                // kLevelPool
  // kLevelPool held back by its operating rule: no outflow until the lake rises above the
  // top of its table, where it spills.
  bool closed = false;

  double Flow(double area_m2) const;
};

// Forcing held constant between successive times (a step series): index [k][segment].
struct StepForcing {
  std::vector<double> times_s;
  std::vector<std::vector<double>> values;

  // Exact mean over [t0, t1] of segment i (0 where there is no data).
  double Average(int segment, double t0, double t1) const;
};

struct RoutingProblem {
  std::vector<int> downstream;   // upstream-first numbering, -1 at an outlet
  std::vector<double> length_m;  // lakes: 1
  std::vector<OutflowRelation> relation;
  std::vector<double> initial_area_m2;  // lakes: volume
  StepForcing headwater_m3s;
  StepForcing lateral_inflow_m3s;
  StepForcing loss_m3s;  // potential losses and withdrawals
  // Lakes whose rule holds the outflow back ("discharge only at Class III, else store"):
  // 1 = may discharge, 0 = store. Closed, a lake still spills above its table's top.
  StepForcing gate_open;
  double start_time_s = 0.0;
  double end_time_s = 0.0;
};

struct RoutingOptions {
  double time_step_s = 3600.0;
  double output_interval_s = 0.0;  // 0: every step
  double tolerance = 1e-13;        // relative, on each segment's area
  int max_iterations = 100;
  // A losing segment left with less wetted area than this (m²) is dry: its losses take
  // the rest (1e-6 m² is a 0.1 µm film on a 10 m bed).
  double dry_area_m2 = 1e-6;
  bool IsValid(std::string* error) const;
};

// Routes the problem; throws ConfigError for an inconsistent problem, SolverError if a
// Newton iteration fails.
RoutedFlow Route(const RoutingProblem& problem, const RoutingOptions& options);

// Routes a sequence of days on a network (day k from k·86400 s): each day's inflows are
// those of SteadyHydraulics for that day (sources, runoff, overflows), held for the day;
// the run starts from the steady state of the first day. Lakes with a `levels` table are
// level pools (starting at the level whose outflow is the steady flow); lakes without one
// pass their inflow on (volume constant). Also returns the first day's hydraulics.
RoutedFlow RouteDays(const Network& net, const NetworkGrid& grid,
                     const std::vector<DayOptions>& days, const RoutingOptions& options,
                     NetworkHydraulics* first_day = nullptr);

}  // namespace qingshui::hydro
