// OTIS-P: parameter estimation on an OTIS deck (Runkel 1998, USGS WRIR 98-4018, chapter
// "OTIS-P"), as OTIS-P does it, with Ceres' Levenberg-Marquardt in place of STARPAC's
// NLSWC and OTIS's own numerical method (RunOtisScheme, the compatibility scheme) as the
// model, so that OTIS-P's fitted parameters are reproduced.
//
// What OTIS-P does (subroutines REACHEST, OTISRUN, SETUP, SETPV, WEIGHTS2 of OTIS MOD40):
//  - reach by reach, upstream first: each reach with observations gets one parameter set,
//    which also applies to the reaches without observations just above it (since the last
//    reach with data); reaches estimated earlier keep their estimates;
//  - the model runs only down to 15 segments past the end of the current reach (the last
//    reach: to its end), and, for a dynamic deck, only until the last observation time +
//    2 TSTEP;
//  - dynamic decks: the k-th reach with data is compared with the k-th print location
//    (IOPT as in the deck), the simulated value at an observation time linearly
//    interpolated between the two time steps around it; steady-state decks: at the
//    observation distance, linearly interpolated between segment centres;
//  - parameters: DISP >= 0.01 m2/s, AREA and AREA2 > 0, the others >= 0 (OKPARAM);
//    unit weights (IWEIGHT = 0); standard errors s (J'J)^-1/2 with s^2 = RSS / (n - p).
#pragma once

#include <array>
#include <string>
#include <vector>

#include "qingshui/calibration/least_squares.h"
#include "qingshui/core/otis.h"
#include "qingshui/core/transport.h"

namespace qingshui::calibration {

struct OtisEstimationOptions {
  FitOptions fit;
  bool IsValid(std::string* error) const { return fit.IsValid(error); }
};

// The estimate for one reach with observations.
struct OtisReachEstimate {
  int reach = 0;                // 0-based: the reach whose observations were fitted
  int first_reach = 0;          // the parameters apply to reaches first_reach..reach
  std::vector<int> parameters;  // indices into kOtisParameterNames of the estimated ones
  FitResult fit;                // in the order of `parameters`
  std::vector<double> observed, predicted, where;  // at the observations (h or m)
  int model_segments = 0;                          // segments the model ran on (OTIS-P's IEND)
};

struct OtisEstimation {
  std::vector<OtisReachEstimate> reaches;
  OtisDeck fitted;  // the deck with every estimate in place
  // The whole deck run with the estimates (RunOtisScheme), for FormatOtisOutputs.
  transport::TransportResult result;
  std::string BriefReport() const;
};

// Throws ConfigError when the deck has no estimation input or asks for what OTIS-P's
// method cannot estimate here (AREA with unsteady flow: OTIS takes the area from the flow
// file), SolverError when the optimizer fails.
OtisEstimation EstimateOtisParameters(const OtisDeck& deck,
                                      const OtisEstimationOptions& options = {});

// The ten OTIS-P parameter values of a reach of a deck (DISP, AREA, ...; RHO is the
// sediment mass per volume, as in params.inp).
std::array<double, kOtisNumParameters> OtisReachParameters(const OtisDeck& deck, int reach);

// Sets parameter `index` (kOtisParameterNames) of reaches first..last of a deck.
void SetOtisParameter(OtisDeck* deck, int first, int last, int index, double value);

// OTIS-P's predicted values for the observations of `reach` (which must have some) with
// the deck's current parameters: the truncated model run and the interpolation above.
std::vector<double> OtisPredictions(const OtisDeck& deck, int reach);

// estimates.csv: reach,parameter,estimate,std_error (reach 1-based, OTIS's parameter
// names, std_error empty when it could not be computed), one row per estimated parameter
// of each reach with observations.
std::string FormatOtisEstimates(const OtisEstimation& estimation);

}  // namespace qingshui::calibration
