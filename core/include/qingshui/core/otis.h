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

struct OtisDeck {
  std::string dir, params_file, flow_file;
  std::vector<std::string> solute_outputs, sorption_outputs;
  std::string title;
  int print_option = 1;  // PRTOPT
  double print_step_h = 0, time_step_h = 0, start_h = 0, final_h = 0, xstart_m = 0,
         downstream_flux = 0;
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

  bool SteadyState() const { return final_h == 0.0; }
  int NumSegments() const;
  double SegmentLength(int segment) const;
  double SegmentCentre(int segment) const;
};

// Reads DIR/control.inp and the files it names. Throws ConfigError("file:line: ...").
OtisDeck ReadOtisDeck(const std::string& deck_dir);

// The transport problem OTIS would solve for this deck: one segment per OTIS segment,
// OTIS's initial condition (the upstream boundary value everywhere, storage and sorbate in
// equilibrium), and output times at OTIS's print times.
transport::TransportProblem OtisProblem(const OtisDeck& deck);

// The transport options for a deck (steady state when TFINAL = 0).
transport::TransportOptions OtisOptions(const OtisDeck& deck);

struct OtisOutputFile {
  std::string name;      // as given in control.inp
  std::string contents;  // OTIS format (1PE14.6 columns)
};

// Formats the output files named in control.inp from a result of OtisProblem.
std::vector<OtisOutputFile> FormatOtisOutputs(const OtisDeck& deck, const transport::TransportResult& r);

// One number as OTIS writes it (Fortran 1PE14.6, e.g. "  8.250000E+00").
std::string OtisNumber(double value);

}  // namespace qingshui
