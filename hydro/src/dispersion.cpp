#include "qingshui/hydro/dispersion.h"

#include <cmath>

#include "qingshui/core/error.h"

namespace qingshui::hydro {

DispersionFormula ParseDispersionFormula(const std::string& name) {
  if (name == "fischer") return DispersionFormula::kFischer;
  if (name == "kashefipour_falconer") return DispersionFormula::kKashefipourFalconer;
  if (name == "deng") return DispersionFormula::kDeng;
  throw ConfigError("dispersion_formula: unknown formula '" + name +
                    "' (expected fischer, kashefipour_falconer or deng)");
}

const char* ToString(DispersionFormula formula) {
  switch (formula) {
    case DispersionFormula::kFischer:
      return "fischer";
    case DispersionFormula::kKashefipourFalconer:
      return "kashefipour_falconer";
    case DispersionFormula::kDeng:
      return "deng";
  }
  return "?";
}

double DispersionCoefficient(DispersionFormula formula, const SectionFlow& f) {
  for (double v : {f.velocity_ms, f.depth_m, f.width_m, f.shear_velocity_ms}) {
    if (!std::isfinite(v) || v < 0.0) {
      throw ConfigError(
          "dispersion: expected finite velocity, depth, width and shear "
          "velocity >= 0");
    }
  }
  const double u = f.velocity_ms, h = f.depth_m, b = f.width_m, us = f.shear_velocity_ms;
  if (!(u > 0.0 && h > 0.0 && b > 0.0 && us > 0.0)) return 0.0;
  switch (formula) {
    case DispersionFormula::kFischer:
      // Fischer (1975), J. Environ. Eng. Div. ASCE 101(EE3): 453-455; Fischer et al. (1979)
      // eq. 5.19: E = 0.011 U² B² / (H u*).
      return 0.011 * u * u * b * b / (h * us);
    case DispersionFormula::kKashefipourFalconer: {
      // Kashefipour & Falconer (2002), Water Research 36(6): 1596-1608. Wide channels
      // (B/H > 50): E = 10.612 H U (U/u*); otherwise
      // E = [7.428 + 1.775 (B/H)^0.620 (u*/U)^0.572] H U (U/u*).
      const double ratio = b / h;
      const double coeff =
          ratio > 50.0 ? 10.612 : 7.428 + 1.775 * std::pow(ratio, 0.620) * std::pow(us / u, 0.572);
      return coeff * h * u * (u / us);
    }
    case DispersionFormula::kDeng: {
      // Deng, Singh & Bengtsson (2001), J. Hydraul. Eng. 127(11): 919-927:
      // E = 0.15/(8 ε_t0) (U/u*)² (B/H)^(5/3) H u*,
      // ε_t0 = 0.145 + (1/3520) (U/u*) (B/H)^1.38.
      const double ratio = b / h;
      const double eps = 0.145 + (u / us) * std::pow(ratio, 1.38) / 3520.0;
      return 0.15 / (8.0 * eps) * (u / us) * (u / us) * std::pow(ratio, 5.0 / 3.0) * h * us;
    }
  }
  return 0.0;
}

}  // namespace qingshui::hydro
