// Manning normal depth. Physics checked: for a wide rectangle (b ≫ h, R → h) Manning's
// equation has the closed form h = (n q / sqrt(S))^(3/5) with q = Q/b; for any trapezoid
// the solved depth must carry exactly the requested flow.
#include "qingshui/hydro/channel.h"

#include <gtest/gtest.h>

#include <cmath>

#include "qingshui/core/error.h"

namespace qingshui::hydro {
namespace {

TEST(NormalDepth, WideRectangleMatchesClosedForm) {
  // b = 1000 m, Q = 50 m³/s: h ≈ 0.1 m, so R = h / (1 + 2h/b) differs from h by 2h/b ≈
  // 2e-4; Q ∝ R^(2/3) h gives a depth error of (2/3)(2h/b)·(3/5) ≈ 0.4·2h/b relative.
  ChannelGeometry g{1000.0, 0.0, 0.03, 0.001};
  const double q = 50.0 / g.bottom_width_m;
  const double h_wide = std::pow(g.manning_n * q / std::sqrt(g.bed_slope), 0.6);
  const SectionState s = NormalDepth(g, 50.0);
  const double expected_rel = 0.4 * 2.0 * h_wide / g.bottom_width_m;
  EXPECT_NEAR(s.depth_m / h_wide - 1.0, expected_rel, 0.1 * expected_rel);
  EXPECT_NEAR(s.velocity_ms * s.area_m2, 50.0, 1e-10);
}

TEST(NormalDepth, TrapezoidCarriesTheFlowToRoundOff) {
  for (double z : {0.0, 0.5, 2.0}) {
    for (double flow : {1e-4, 0.05, 1.4, 30.0, 300.0}) {
      ChannelGeometry g{15.0, z, 0.035, 1.0 / 400.0};
      const SectionState s = NormalDepth(g, flow);
      EXPECT_GT(s.depth_m, 0.0);
      EXPECT_NEAR(ManningFlow(g, s.depth_m) / flow, 1.0, 1e-11) << "z=" << z << " Q=" << flow;
      EXPECT_NEAR(s.area_m2, (15.0 + z * s.depth_m) * s.depth_m, 1e-12 * s.area_m2);
      EXPECT_NEAR(s.top_width_m, 15.0 + 2 * z * s.depth_m, 1e-12);
    }
  }
}

TEST(NormalDepth, ZeroFlowIsADrySectionNotNaN) {
  const SectionState s = NormalDepth({10.0, 1.0, 0.03, 0.002}, 0.0);
  EXPECT_EQ(s.depth_m, 0.0);
  EXPECT_EQ(s.area_m2, 0.0);
  EXPECT_EQ(s.velocity_ms, 0.0);
  EXPECT_EQ(s.hydraulic_radius_m(), 0.0);
}

TEST(NormalDepth, InvalidInputsAreConfigErrors) {
  EXPECT_THROW(NormalDepth({10.0, 1.0, 0.03, 0.002}, -1.0), ConfigError);
  EXPECT_THROW(NormalDepth({10.0, 1.0, 0.03, 0.002}, std::nan("")), ConfigError);
  EXPECT_THROW(NormalDepth({0.0, 1.0, 0.03, 0.002}, 1.0), ConfigError);
  EXPECT_THROW(NormalDepth({10.0, 1.0, 0.03, 0.0}, 1.0), ConfigError);
}

}  // namespace
}  // namespace qingshui::hydro
