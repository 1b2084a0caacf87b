// Longitudinal dispersion coefficients of rivers from the mean hydraulics of a section.
// The formulas, their references and their ranges of validity are in docs/hydraulics.md.
#pragma once

#include <string>

namespace qingshui::hydro {

constexpr double GRAVITY_M_S2 = 9.81;

enum class DispersionFormula {
  kFischer,              // Fischer (1975)
  kKashefipourFalconer,  // Kashefipour & Falconer (2002)
  kDeng,                 // Deng, Singh & Bengtsson (2001)
};

// "fischer", "kashefipour_falconer", "deng"; throws ConfigError for other names.
DispersionFormula ParseDispersionFormula(const std::string& name);
const char* ToString(DispersionFormula formula);

// Mean hydraulics of a section: velocity U (m/s), mean depth H = A/T (m), top width
// B (m), shear velocity u* = sqrt(g R S) (m/s).
struct SectionFlow {
  double velocity_ms = 0.0;
  double depth_m = 0.0;
  double width_m = 0.0;
  double shear_velocity_ms = 0.0;
};

// E in m²/s; 0 for still or dry water (U, H, B or u* not > 0). Throws ConfigError for
// negative or non-finite inputs.
double DispersionCoefficient(DispersionFormula formula, const SectionFlow& flow);

}  // namespace qingshui::hydro
