// Transport engine: advection, dispersion, lateral inflow, transient storage, kinetic
// sorption, first-order decay and coupled first-order reactions of many species on a
// tree-shaped segment grid (a river network). The equations are those of OTIS
// (Runkel 1998, USGS WRIR 98-4018, eqs. 1-5), extended as described in docs/methods.md,
// which also explains the discretization and why it was chosen.
//
// Units: SI inside. Lengths m, areas m2, flows m3/s, time s, rates 1/s, concentrations
// g/m3 (= mg/L), loads g/s, masses g.
#pragma once

#include <limits>
#include <string>
#include <vector>

// Everything lives in qingshui::transport so the engine's plain names (Segment, Station,
// TimeSeries) never collide with the network model's.
namespace qingshui::transport {

// A scalar time series. kStep holds each value until the next time (OTIS IBOUND=1/2);
// kLinear interpolates between points (OTIS IBOUND=3). Before the first time the first
// value holds, after the last the last value holds. An empty series is zero.
struct TimeSeries {
  enum class Interpolation { kStep, kLinear };
  std::vector<double> times_s;
  std::vector<double> values;
  Interpolation interpolation = Interpolation::kLinear;

  static TimeSeries Constant(double value);
  double At(double t_s) const;
  // Exact mean of the series over [t0_s, t1_s] (the value at t0_s when t1_s == t0_s).
  // Time-averaged forcing keeps the mass that enters over a step exact even when a step
  // or a load switches on inside the step.
  double Average(double t0_s, double t1_s) const;
  // Centroid time of the series over [t0_s, t1_s]: integral of v t / integral of v (the
  // midpoint when the integral is zero). A load that switches on or off inside a step enters
  // the solver at this time (docs/methods.md, "Loads inside a step").
  double Centroid(double t0_s, double t1_s) const;
  bool IsValid(std::string* error) const;
};

// Kinetic sorption as in OTIS (Runkel 1998 eqs. 3-5; parameters LAMHAT, LAMHAT2, RHO,
// KD, CSBACK).
struct Sorption {
  double main_rate_per_s = 0.0;        // LAMHAT: main channel sorption rate
  double storage_rate_per_s = 0.0;     // LAMHAT2: storage-zone sorption rate
  double sediment_kg_per_m3 = 0.0;     // RHO: accessible sediment mass per water volume
  double kd_m3_per_kg = 0.0;           // KD: distribution coefficient (g/kg per g/m3 -> m3/kg)
  double storage_background_g_m3 = 0.0;  // CSBACK: storage-zone background concentration
};

// One finite volume of the grid. Segments are numbered upstream-first: every segment's
// downstream index is larger than its own index, or -1 at an outlet. Several segments may
// drain into one (a junction).
struct Segment {
  int downstream = -1;
  double length_m = 0.0;
  double dispersion_m2s = 0.0;
  double storage_area_m2 = 0.0;   // A_s (OTIS AREA2)
  double exchange_per_s = 0.0;    // alpha (OTIS ALPHA)
  // A well-mixed node (lake, wetland): no dispersion across its faces and a first-order
  // (fully mixed) outflow concentration. Its volume is area_m2 x length_m, so give it
  // length_m = 1 and area_m2 = volume in the flow field if that is more natural.
  bool well_mixed = false;
  // Per species (size num_species, or empty for zero).
  std::vector<double> decay_per_s;          // lambda  (OTIS LAMBDA), main channel
  std::vector<double> storage_decay_per_s;  // lambda_s (OTIS LAMBDA2), storage zone
  std::vector<Sorption> sorption;           // empty = no sorption
  // A treatment node (well_mixed only): per species, the fraction of the inflowing mass
  // removed at steady flow, 0 <= f < 1 (empty = none). Applied as the first-order rate
  // f/(1 - f) Q/V of a stirred tank, which follows the flow state (docs/methods.md); the
  // removed mass is booked with decay_main_g.
  std::vector<double> removal_fraction;
};

// Hydraulic state of every segment at one time. Vectors are indexed by segment;
// lateral_concentration_g_m3 is segment-major: [segment * num_species + species].
struct FlowState {
  std::vector<double> flow_m3s;              // at the downstream face, >= 0
  std::vector<double> area_m2;               // main channel cross-section
  std::vector<double> lateral_inflow_m2s;    // q_L in, m3/s per m of channel
  std::vector<double> lateral_outflow_m2s;   // q_L out, m3/s per m
  std::vector<double> headwater_inflow_m3s;  // through the upstream face (headwaters only)
  std::vector<double> lateral_concentration_g_m3;  // C_L; empty = zero
};

// Flow states at increasing times, linearly interpolated in between (one state = steady).
struct FlowField {
  std::vector<double> times_s;
  std::vector<FlowState> states;
};

// An upstream boundary on a headwater segment (OTIS IBOUND): a concentration at the
// upstream face (Dirichlet: it sets the advective inflow and a dispersive flux across the
// face), a total mass flux (g/s) entering through the face, or OTIS's flux boundary
// (IBOUND = 2): a mass flux W (g/s) that OTIS turns into the face concentration W / Q_b,
// which then enters as a concentration boundary does (advective inflow W plus a dispersive
// flux), so that more than W enters while the channel below is cleaner than W / Q_b.
struct UpstreamBoundary {
  enum class Kind { kConcentration, kMassFlux, kOtisFlux };
  int segment = 0;
  Kind kind = Kind::kConcentration;
  std::vector<TimeSeries> series;  // per species: g/m3 or g/s
};

// A point load (g/s) of one species into one segment's main channel.
struct PointLoad {
  int segment = 0;
  int species = 0;
  TimeSeries load_g_s;
};

// What differs between ensemble members (or scenarios) that share one flow field: their
// boundaries, loads and initial state. Boundary segments and kinds must be the same in
// every member; only the series differ.
struct Forcing {
  std::vector<UpstreamBoundary> boundaries;
  std::vector<PointLoad> loads;
  // Initial main-channel concentration, [segment * num_species + species]; empty = zero.
  std::vector<double> initial_concentration_g_m3;
  // Initial storage-zone / sorbed concentrations; empty = in equilibrium with the main
  // channel (the storage-zone steady state, and C_sed = K_d C), as OTIS starts.
  std::vector<double> initial_storage_g_m3;
  std::vector<double> initial_sorbed_g_kg;
  // Start from the steady state of this member's forcing at initial_steady_time_s (NaN:
  // start_time_s) on the flow field's state then (boundaries, loads, lateral inflow and
  // temperature held at their values at that time; storage zone and sorbate in
  // equilibrium): OTIS's initial condition for every dynamic run (Runkel 1998, subroutine
  // STEADY, with the first boundary record). It replaces the initial_* vectors. The steady
  // state is that of this engine's own discretization (TransportOptions::steady_state), so
  // a run whose forcing does not change stays where it started. Members that ask for it
  // must give the same time.
  bool initial_steady_state = false;
  double initial_steady_time_s = std::numeric_limits<double>::quiet_NaN();
};

// A value reported at a station: (1 - weight) * C[segment] + weight * C[next_segment].
// OTIS IOPT=0 uses the segment containing the location (weight 0); IOPT=1 interpolates
// linearly between the two nearest segment centres. Storage-zone (sorbed) values are
// interpolated the same way where both segments have a storage zone (sorption) or neither
// has; otherwise the nearer segment's value is reported (the upstream one at weight 0.5).
struct Station {
  int segment = 0;
  int next_segment = -1;
  double weight = 0.0;
};

struct TransportProblem {
  int num_species = 1;
  std::vector<Segment> segments;
  FlowField flow;
  // Water temperature (deg C); empty = 20 deg C. Decay rates and the reaction matrix are
  // multiplied by theta^(T - 20) of the reacting species.
  TimeSeries temperature_c;
  std::vector<double> theta;  // per species; empty = 1
  // Coupled first-order reactions, row-major num_species x num_species: dC_i/dt +=
  // sum_j K[i][j] C_j, in main channel and storage zone (e.g. organic N -> NH3 -> NO3:
  // K[NH3][orgN] = k1, K[orgN][orgN] = -k1, ...). Empty = none.
  std::vector<double> reaction_matrix_per_s;
  std::vector<Forcing> members;  // at least one
  double start_time_s = 0.0;
  double end_time_s = 0.0;
  double time_step_s = 0.0;
  // Times at which results are stored (within [start, end], increasing); steps are
  // shortened to land on them exactly. Empty = start and end only.
  std::vector<double> output_times_s;
  std::vector<Station> stations;
};

struct TransportOptions {
  // How the advection halves of the split step (A I A) are integrated in time
  // (docs/methods.md section 2 and section 4, "Time error at a fixed grid").
  enum class Advection {
    // One-step limited Lax-Wendroff (van Leer limiter): one flux evaluation per sub-step;
    // its time and space errors are coupled (first order in time at a fixed grid).
    kLimitedLaxWendroff,
    // Method of lines: the semi-discrete van Leer (MUSCL) fluxes integrated with the
    // two-stage strong-stability-preserving Runge-Kutta method (Heun; Shu & Osher 1988):
    // second order in time at a fixed grid, two flux evaluations per sub-step, and
    // sub-steps of at most Courant 0.5 (its positivity bound).
    kSspRk2,
  };
  Advection advection = Advection::kLimitedLaxWendroff;
  // Largest Courant number of an explicit advection sub-step. 0.75 is the bound under
  // which the limited scheme is provably positive and free of new extrema on any grid,
  // including junctions and cells whose inflow and outflow differ (docs/methods.md).
  // With Advection::kSspRk2 the bound is 0.5 (each stage is such a step): the smaller of
  // the two is used.
  double max_courant = 0.75;
  // Keep the implicit (Crank-Nicolson) part positive and free of oscillation
  // (docs/methods.md). Turning it off gives plain CN at the user's step.
  bool positive_implicit = true;
  // How positive_implicit is enforced. true (default): take the full Crank-Nicolson step
  // and check the result (no negative value, no value outside the bounds of the data, no
  // new extremum that the data do not explain); a member that fails is redone for that
  // step only, by bisection (halves checked the same way, down to steps that are provably
  // positive) or, for joint members, with the positive sub-steps (implicit_fallbacks).
  // false: always sub-step so that every sub-step is provably positive (a priori bound).
  bool adaptive_implicit = true;
  // With several members: when the check fails for some members, redo only those (true:
  // every member's result is exactly that of a single run of it, and members never wait for
  // each other), or redo the step for all members of the species (false, default: every
  // member is advanced by the same linear operator, so that members that are parts of a
  // whole, e.g. source contributions, add up to the whole as the linear equations do).
  bool independent_members = false;
  // Keep hydraulic coefficients and the implicit factorizations between steps while the
  // flow field is steady (one state) and the step and temperature factors are unchanged.
  // Off = recompute everything every step (same results; for testing and timing).
  bool reuse_factorizations = true;
  int max_substeps = 1000000;  // per step and per operator; more is a SolverError
  int num_threads = 0;         // 0 = OpenMP default
  // Solve the steady state (time derivatives zero) instead of time stepping; the flow
  // field's first state and the forcing at start_time_s are used.
  bool steady_state = false;
  double steady_tolerance = 1e-13;
  int max_steady_iterations = 500;
  // Keep concentrations at every segment for every output time (time x segment x
  // species per member). Stations are always stored.
  bool store_fields = true;

  bool IsValid(std::string* error) const;
};

// Mass budget of one species over a run, summed over members (g). For a steady-state
// solve the terms are rates (g/s) and the masses are zero.
struct MassBalance {
  double initial_mass_g = 0.0;  // main channel + storage zone + sorbed
  double final_mass_g = 0.0;
  double boundary_inflow_g = 0.0;  // advective + dispersive, through upstream faces
  double lateral_inflow_g = 0.0;   // q_L C_L
  double point_load_g = 0.0;
  double outlet_outflow_g = 0.0;   // advective, through outlet faces
  // Mass carried off by water that leaves other than downstream: lateral outflow, the
  // non-conservative OTIS form's q_L C term, flow data that do not close the water
  // balance, and area changes at fixed concentration. Negative when it adds mass.
  double flow_closure_g = 0.0;
  double decay_main_g = 0.0;  // first-order loss in the main channel, treatment included
  double decay_storage_g = 0.0;
  double storage_background_g = 0.0;  // storage-zone sorption towards CSBACK (source)
  double reaction_g = 0.0;            // net production by the reaction matrix
  double residual_g = 0.0;  // final - initial - (sources - sinks)
  double relative_error = 0.0;
};

struct TransportSummary {
  int num_steps = 0;
  long long advection_substeps = 0;
  int max_advection_substeps = 0;  // in one half step
  // Implicit sub-steps of the steps taken (1 for an accepted full step; summed over steps,
  // the largest over species and members within a step).
  long long implicit_substeps = 0;
  int max_implicit_substeps = 0;   // in one step
  // Adaptive positivity (adaptive_implicit): Crank-Nicolson solves that were checked
  // (bisected halves included), and member-steps that failed the first check and were redone
  // (per species and member).
  long long implicit_checked_steps = 0;
  long long implicit_fallbacks = 0;
  double max_courant_requested = 0.0;  // Q dt / V at the user's step
  int steady_iterations = 0;
  std::vector<MassBalance> mass_balance;  // per species
  double max_relative_mass_error = 0.0;
  double wall_time_s = 0.0;
  std::string BriefReport() const;
};

// Result arrays are flat and member-major, then time, then segment (or station), then
// species: index = ((member * num_times + time) * num_segments + segment) * num_species
// + species. Sorbed values are main-channel sorbate (g/kg); zero without sorption.
struct TransportResult {
  int num_members = 0, num_times = 0, num_segments = 0, num_species = 0, num_stations = 0;
  std::vector<double> times_s;
  std::vector<double> concentration_g_m3;  // empty unless store_fields
  std::vector<double> storage_g_m3;
  std::vector<double> sorbed_g_kg;
  std::vector<double> station_concentration_g_m3;
  std::vector<double> station_storage_g_m3;
  std::vector<double> station_sorbed_g_kg;
  TransportSummary summary;

  double Concentration(int member, int time, int segment, int species) const {
    return concentration_g_m3[Index(member, time, segment, num_segments, species)];
  }
  double StationConcentration(int member, int time, int station, int species) const {
    return station_concentration_g_m3[Index(member, time, station, num_stations, species)];
  }
  size_t Index(int member, int time, int where, int num_where, int species) const {
    return ((static_cast<size_t>(member) * num_times + time) * num_where + where) *
               num_species + species;
  }
};

class TransportSolver {
 public:
  explicit TransportSolver(const TransportOptions& options);
  // Throws ConfigError for an inconsistent problem, DataError for bad data (negative
  // flow, flow through a dry segment), SolverError when the sub-step budget is exceeded.
  TransportResult Run(const TransportProblem& problem) const;

 private:
  TransportOptions options_;
};

}  // namespace qingshui::transport
