// Candidate sources for a station: only what drains past the station can have caused
// what it sees. Checked on the default network, whose two rivers do not meet.
#include "qingshui/tracing/candidates.h"

#include <gtest/gtest.h>

#include <set>

#include "qingshui/core/error.h"
#include "test_paths.h"

namespace qingshui::tracing {
namespace {

Network Default() { return LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml")); }

TEST(UpstreamCandidates, SectionsSeeOnlyTheirOwnRiver) {
  const Network net = Default();
  auto river_of = [&](const std::string& source_id) {
    return net.FindReach(net.FindSource(source_id)->reach)->river;
  };
  const auto z = UpstreamCandidates(net, "zhangliuzhuang");
  const auto m = UpstreamCandidates(net, "miaoqian");
  ASSERT_FALSE(z.empty());
  ASSERT_FALSE(m.empty());
  for (const auto& c : z) EXPECT_NE(river_of(c.source_id), "fen") << c.source_id;
  for (const auto& c : m) EXPECT_TRUE(river_of(c.source_id) == "fen" || river_of(c.source_id) == "kuai") << c.source_id;
  // Sorted nearest first, distances positive and no longer than the rivers.
  for (size_t i = 1; i < z.size(); ++i) EXPECT_LE(z[i - 1].distance_km, z[i].distance_km);
  for (const auto& c : m) {
    EXPECT_GE(c.distance_km, 0.0);
    EXPECT_LE(c.distance_km, 145.2 + 1e-9);
  }
}

TEST(UpstreamCandidates, DistanceFollowsRiverKmOnOneReach) {
  const Network net = Default();
  const Station* m = net.FindStation("miaoqian");
  for (const auto& c : UpstreamCandidates(net, "miaoqian")) {
    const Source* s = net.FindSource(c.source_id);
    if (s->reach == m->reach) EXPECT_NEAR(c.distance_km, m->km - s->km, 1e-9) << s->id;
  }
}

TEST(UpstreamCandidates, UnknownStationIsAConfigError) {
  EXPECT_THROW(UpstreamCandidates(Default(), "nowhere"), ConfigError);
}

}  // namespace
}  // namespace qingshui::tracing
