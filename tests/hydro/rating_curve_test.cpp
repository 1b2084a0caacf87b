// Rating curves and the area-flow relation used by routing. Physics checked: the depth on
// a rating curve Q = a h^b inverts it exactly; DepthFromArea inverts the trapezoid's area;
// ReachFlowFromArea is Manning's (or the rating's) flow at that depth, increasing from 0.
#include <gtest/gtest.h>

#include <cmath>

#include "qingshui/core/error.h"
#include "qingshui/hydro/channel.h"

namespace qingshui::hydro {
namespace {

TEST(RatingCurve, DepthInvertsQEqualsAHToTheB) {
  const ChannelGeometry g{12.0, 1.5, 0.03, 0.001};
  const RatingCurve r{6.0, 1.7};
  for (double q : {0.01, 1.4, 30.0}) {
    const SectionState s = RatingDepth(g, r, q);
    EXPECT_NEAR(6.0 * std::pow(s.depth_m, 1.7), q, 1e-12 * q);
    EXPECT_NEAR(s.velocity_ms * s.area_m2, q, 1e-12 * q);
  }
  EXPECT_EQ(RatingDepth(g, r, 0.0).depth_m, 0.0);
  EXPECT_THROW(RatingDepth(g, {6.0, 0.0}, 1.0), ConfigError);   // flow does not increase
  EXPECT_THROW(RatingDepth(g, {-1.0, 1.5}, 1.0), ConfigError);  // flow decreases
  EXPECT_THROW(RatingDepth(g, r, -0.1), ConfigError);
}

TEST(RatingCurve, AreaAndFlowRelationsInvertTheSection) {
  Reach reach;
  reach.geometry = {12.0, 1.5, 0.03, 0.001};
  for (double h : {0.0, 1e-4, 0.3, 2.0, 7.0}) {
    const double a = SectionAtDepth(reach.geometry, h).area_m2;
    EXPECT_NEAR(DepthFromArea(reach.geometry, a), h, 1e-13 * (1 + h));
    EXPECT_NEAR(ReachFlowFromArea(reach, a), ManningFlow(reach.geometry, h), 1e-12 * (1 + a));
  }
  reach.geometry.side_slope = 0.0;
  EXPECT_NEAR(DepthFromArea(reach.geometry, 6.0), 0.5, 1e-15);
  reach.rating_curve = RatingCurve{6.0, 1.7};
  EXPECT_NEAR(ReachFlowFromArea(reach, 6.0), 6.0 * std::pow(0.5, 1.7), 1e-12);
  double last = 0.0;
  for (double a = 0.5; a < 100; a *= 1.5) {
    const double q = ReachFlowFromArea(reach, a);
    EXPECT_GT(q, last);
    last = q;
  }
}

}  // namespace
}  // namespace qingshui::hydro
