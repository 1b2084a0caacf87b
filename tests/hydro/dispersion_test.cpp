// Longitudinal dispersion formulas. Physics checked: each formula reproduces its published
// expression (hand-evaluated here for one section), scales as the paper says (Fischer:
// E ∝ B², Kashefipour & Falconer wide-channel form: E ∝ H U²/u*), and gives 0 — not NaN —
// for still or dry water.
#include "qingshui/hydro/dispersion.h"

#include <gtest/gtest.h>

#include <cmath>

#include "qingshui/core/error.h"

namespace qingshui::hydro {
namespace {

// A Fen-like section: U = 0.4 m/s, H = 1.0 m, B = 40 m, S = 3e-4 → u* = sqrt(g H S).
SectionFlow Fen() {
  SectionFlow f;
  f.velocity_ms = 0.4;
  f.depth_m = 1.0;
  f.width_m = 40.0;
  f.shear_velocity_ms = std::sqrt(9.81 * 1.0 * 3e-4);
  return f;
}

TEST(Dispersion, FischerIsPointZeroElevenUSquaredBSquaredOverHUStar) {
  const SectionFlow f = Fen();
  const double us = f.shear_velocity_ms;  // 0.05425 m/s
  EXPECT_NEAR(DispersionCoefficient(DispersionFormula::kFischer, f),
              0.011 * 0.16 * 1600.0 / (1.0 * us), 1e-12);
  // ≈ 51.9 m²/s: the brief's estimate for the Fen is ~50 m²/s (§5).
  EXPECT_NEAR(DispersionCoefficient(DispersionFormula::kFischer, f), 51.9, 0.1);
  SectionFlow wide = f;
  wide.width_m *= 2;
  EXPECT_NEAR(DispersionCoefficient(DispersionFormula::kFischer, wide),
              4.0 * DispersionCoefficient(DispersionFormula::kFischer, f), 1e-9);
}

TEST(Dispersion, KashefipourFalconerUsesTheWideChannelFormAboveBOverHOfFifty) {
  SectionFlow f = Fen();  // B/H = 40 < 50: the general form
  const double us = f.shear_velocity_ms;
  const double c17 = 7.428 + 1.775 * std::pow(40.0, 0.620) * std::pow(us / 0.4, 0.572);
  EXPECT_NEAR(DispersionCoefficient(DispersionFormula::kKashefipourFalconer, f),
              c17 * 1.0 * 0.4 * (0.4 / us), 1e-12);
  f.width_m = 60.0;  // B/H = 60 > 50: the wide-channel form, independent of B
  EXPECT_NEAR(DispersionCoefficient(DispersionFormula::kKashefipourFalconer, f),
              10.612 * 1.0 * 0.4 * (0.4 / us), 1e-12);
}

TEST(Dispersion, DengFollowsThePublishedExpression) {
  const SectionFlow f = Fen();
  const double us = f.shear_velocity_ms, r = 40.0, uu = 0.4 / us;
  const double eps = 0.145 + uu * std::pow(r, 1.38) / 3520.0;
  const double expected = 0.15 / (8 * eps) * uu * uu * std::pow(r, 5.0 / 3.0) * 1.0 * us;
  EXPECT_NEAR(DispersionCoefficient(DispersionFormula::kDeng, f), expected, 1e-12 * expected);
}

TEST(Dispersion, StillOrDryWaterHasNoDispersionAndBadInputIsAConfigError) {
  for (auto formula : {DispersionFormula::kFischer, DispersionFormula::kKashefipourFalconer,
                       DispersionFormula::kDeng}) {
    EXPECT_EQ(DispersionCoefficient(formula, SectionFlow{}), 0.0);
    SectionFlow still = Fen();
    still.velocity_ms = 0.0;
    EXPECT_EQ(DispersionCoefficient(formula, still), 0.0);
    SectionFlow bad = Fen();
    bad.depth_m = -1.0;
    EXPECT_THROW(DispersionCoefficient(formula, bad), ConfigError);
    bad.depth_m = std::nan("");
    EXPECT_THROW(DispersionCoefficient(formula, bad), ConfigError);
  }
  EXPECT_EQ(ParseDispersionFormula("deng"), DispersionFormula::kDeng);
  EXPECT_THROW(ParseDispersionFormula("elder"), ConfigError);
}

}  // namespace
}  // namespace qingshui::hydro
