// USGS OTIS input decks (Runkel 1998, USGS WRIR 98-4018): read a deck as OTIS reads it,
// map it onto the TransportSolver, and format OTIS's output files.
//
// Reading follows OTIS: control.inp names the parameter file, the flow file and the output
// files; lines starting with '#' are comments; NSOLUTE/IDECAY/ISORB, NPRINT/IOPT and
// NBOUND/IBOUND are I5 fixed-width fields (a blank field is 0); every other record is
// read list-directed (blank-separated values, the rest of the line - e.g. a '|' label - is
// ignored). Anything OTIS would accept that this reader cannot honour is a ConfigError
// naming the file and line.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "qingshui/core/transport.h"

namespace qingshui {

struct OtisReach {
  int num_segments = 0;
  double length_m = 0, dispersion_m2s = 0, storage_area_m2 = 0, alpha_per_s = 0;
};

struct OtisFlowSet {  // one time of an unsteady flow file, values at the flow locations
  std::vector<double> lateral_inflow_m2s, flow_m3s, area_m2;
  std::vector<std::vector<double>> lateral_concentration;  // [solute][location]
};

// OTIS-P's ten parameters, in the order of star.inp and of OTIS-P's PAR vector (Runkel
// 1998, "OTIS-P"): DISP, AREA, AREA2, ALPHA, LAMBDA, LAMBDA2, RHO, KD, LAMHAT, LAMHAT2.
constexpr int kOtisNumParameters = 10;
extern const std::array<const char*, kOtisNumParameters> kOtisParameterNames;

// One observation of an OTIS-P data file: time (h) for a dynamic deck, distance (m) for a
// steady-state deck (TFINAL = 0), and the observed concentration.
struct OtisObservation {
  double where = 0.0;
  double concentration = 0.0;
  int line = 0;  // in the data file
};

// The parameter-estimation part of an OTIS-P deck: control.inp names, after the flow
// file, the data file, the STARPAC input file, the parameter output file and the STARPAC
// output file (then the solute and sorption outputs as OTIS).
struct OtisEstimationInput {
  std::string data_file, star_file, params_output_file, star_output_file;
  // data.inp: observations for each reach (possibly none). OTIS-P estimates one parameter
  // set for each reach with data, together with the reaches without data just above it.
  std::vector<std::vector<OtisObservation>> observations;  // [reach]
  // star.inp (STARPAC NLSWC controls).
  int weight_option = 0;      // IWEIGHT: 0 unit weights, 1 weights 1/PV^2 (not supported)
  int covariance_option = 1;  // IVAPRX
  int max_iterations = 100;   // MIT
  int print_option = 0;       // NPRT
  double max_first_change = 1.0;            // DELTA
  double parameter_tolerance = 1e-5;        // STOPP
  double sum_of_squares_tolerance = 1e-5;   // STOPSS
  std::array<bool, kOtisNumParameters> fixed{};     // IFIXED != 0
  std::array<double, kOtisNumParameters> scale{};   // SCALE (0 = STARPAC default)
};

struct OtisDeck {
  std::string dir, params_file, flow_file;
  std::vector<std::string> solute_outputs, sorption_outputs;
  std::string title;
  int print_option = 1;  // PRTOPT
  double print_step_h = 0, time_step_h = 0, start_h = 0, final_h = 0, xstart_m = 0,
         downstream_flux = 0;     // DSBOUND: dispersive flux D dC/dx at the outlet face
  int downstream_flux_line = 0;  // where DSBOUND was read (for error messages)
  std::vector<OtisReach> reaches;
  int num_solutes = 1, decay_option = 0, sorption_option = 0;
  std::vector<std::vector<double>> lambda, lambda2;  // [solute][reach]
  std::vector<std::vector<transport::Sorption>> sorption;      // [solute][reach]
  int interpolation_option = 0;                     // IOPT
  std::vector<double> print_locations_m;
  int boundary_option = 1;                          // IBOUND
  std::vector<double> boundary_times_h;
  std::vector<std::vector<double>> boundary_values;  // [time][solute]
  // Flow file.
  bool unsteady = false;
  double flow_step_h = 0, upstream_flow_m3s = 0;
  std::vector<double> reach_lateral_inflow_m2s, reach_lateral_outflow_m2s, reach_area_m2;
  std::vector<std::vector<double>> reach_lateral_concentration;  // [reach][solute]
  std::vector<double> flow_locations_m;
  std::vector<OtisFlowSet> flow_sets;
  // OTIS-P decks only (control.inp names data and STARPAC files).
  bool has_estimation = false;
  OtisEstimationInput estimation;

  bool SteadyState() const { return final_h == 0.0; }
  int NumSegments() const;
  double SegmentLength(int segment) const;
  double SegmentCentre(int segment) const;
};

// Reads DIR/control.inp and the files it names. Throws ConfigError("file:line: ...").
// An OTIS-P control file (parameter, flow, data, STARPAC input, parameter output, STARPAC
// output, then the solute and sorption output files) is recognised by the number of names
// it holds; its data and STARPAC input files are read into `estimation` and checked as
// OTIS-P checks them (DATACHK, WEIGHTS2): NSOLUTE = 1, observation times past TSTART +
// TSTEP, increasing and at least TSTEP apart, distances within the stream, one print
// location per reach with data (dynamic decks).
OtisDeck ReadOtisDeck(const std::string& deck_dir);

// The transport problem OTIS would solve for this deck: one segment per OTIS segment,
// OTIS's initial condition (the steady state for TSTART's flow and the first boundary record, storage
// and sorbate in equilibrium: Forcing::initial_steady_state), output times at OTIS's print
// times, and stations at the print locations themselves (linear interpolation between
// segment centres, as IOPT = 1, for either IOPT; docs/methods.md section 4). For Qingshui's
// own scheme (TransportSolver); a non-zero DSBOUND is a ConfigError here (only
// RunOtisScheme has it).
transport::TransportProblem OtisProblem(const OtisDeck& deck);

// The transport options for a deck (steady state when TFINAL = 0).
transport::TransportOptions OtisOptions(const OtisDeck& deck);

struct OtisOutputFile {
  std::string name;      // as given in control.inp
  std::string contents;  // OTIS format (1PE14.6 columns)
};

// OTIS compatibility scheme (core/src/otis_scheme.cpp): runs the deck with OTIS's own
// numerical method (Runkel 1998, "Numerical Solution"; Runkel & Chapra 1993) -
// Crank-Nicolson in time, centred differences in space, storage zone and sorbate eliminated
// so that the main-channel system stays tridiagonal - with OTIS's treatment of the upstream
// boundary (IBOUND 1/2/3), the downstream dispersive flux (DSBOUND), lateral inflow,
// unsteady flow sets, decay, kinetic sorption, print locations (IOPT) and the steady-state
// solution (TFINAL = 0), which is also OTIS's initial condition. It exists so that OTIS
// users can reproduce their numbers; it inherits OTIS's errors (overshoot at fronts when
// the Courant number exceeds one, no exact mass balance with unsteady flow).
// The result has FormatOtisOutputs's layout: one member; stations = print locations
// (every output time); for a steady-state deck one time with every segment stored.
// summary.num_steps counts time steps, summary.max_courant_requested is the largest
// Q dt / (A dx) met, summary.mass_balance is empty. Throws ConfigError for what OTIS
// rejects (a print location past the last segment centre, flow locations not covering
// the grid, IBOUND = 3 data ending before TFINAL) and DataError when the unsteady flow file
// runs out of flow sets.
transport::TransportResult RunOtisScheme(const OtisDeck& deck);

// Formats the output files named in control.inp from a result of OtisProblem (run by the
// TransportSolver) or of RunOtisScheme.
std::vector<OtisOutputFile> FormatOtisOutputs(const OtisDeck& deck, const transport::TransportResult& r);

// One number as OTIS writes it (Fortran 1PE14.6, e.g. "  8.250000E+00").
std::string OtisNumber(double value);

}  // namespace qingshui
