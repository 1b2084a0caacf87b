// The network grid: segments cover every reach exactly, are numbered upstream-first, and
// the links reproduce the network's topology (junctions, in-line lakes, outlets).
#include "qingshui/core/grid.h"

#include <gtest/gtest.h>

#include <set>

#include "qingshui/core/error.h"
#include "test_paths.h"

namespace qingshui {
namespace {

Network Default() { return LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml")); }

TEST(NetworkGrid, SegmentsTileEveryReachAndAreNumberedUpstreamFirst) {
  const Network net = Default();
  const NetworkGrid grid = BuildGrid(net);
  int reach_segments = 0;
  for (const auto& r : net.reaches) {
    const auto [first, count] = grid.reach_segments.at(r.id);
    EXPECT_EQ(count, r.segment_count());
    reach_segments += count;
    double length = 0.0;
    for (int i = first; i < first + count; ++i) length += grid.segments[i].length_m;
    EXPECT_NEAR(length, r.length_m, 1e-9 * r.length_m) << r.id;
    EXPECT_NEAR(grid.segments[first].km_start, r.start_km, 1e-12);
    EXPECT_NEAR(grid.segments[first + count - 1].km_end, r.end_km(), 1e-9);
  }
  int lakes_inline = 0;
  for (const auto& l : net.lakes) lakes_inline += !l.downstream.empty();
  EXPECT_EQ(grid.size(), reach_segments + lakes_inline);
  EXPECT_EQ(grid.size(), net.Summary().segment_count + lakes_inline);
  for (int i = 0; i < grid.size(); ++i) {
    const int d = grid.segments[i].downstream;
    EXPECT_TRUE(d == -1 || d > i) << i;
    if (d == -1) EXPECT_TRUE(net.IsOutlet(grid.segments[i].outlet));
  }
}

TEST(NetworkGrid, WuxingLakeJoinsTheSushuiAndTheYaoxianCanal) {
  const Network net = Default();
  const NetworkGrid grid = BuildGrid(net);
  const int lake = grid.lake_segment.at("wuxing_lake");
  EXPECT_TRUE(grid.segments[lake].is_lake);
  auto up = grid.Upstream(lake);
  ASSERT_EQ(up.size(), 2u);
  std::set<std::string> reaches;
  for (int s : up) reaches.insert(grid.segments[s].reach);
  EXPECT_EQ(reaches, (std::set<std::string>{"sushui_linyi", "yaoxian"}));
  EXPECT_EQ(grid.segments[grid.segments[lake].downstream].reach, "sushui_lower");
}

TEST(NetworkGrid, SegmentAtFindsTheSegmentHoldingAStation) {
  const Network net = Default();
  const NetworkGrid grid = BuildGrid(net);
  for (const auto& st : net.stations) {
    const GridSegment& s = grid.segments[grid.SegmentAt(st.reach, st.km)];
    EXPECT_EQ(s.reach, st.reach);
    EXPECT_LE(s.km_start - 1e-9, st.km);
    EXPECT_GE(s.km_end + 1e-9, st.km);
  }
  EXPECT_THROW(grid.SegmentAt("fen_lower", 150.0), ConfigError);
  EXPECT_THROW(grid.SegmentAt("nowhere", 1.0), ConfigError);
}

TEST(NetworkGrid, HeadwatersAreTheReachesNothingDrainsInto) {
  const Network net = Default();
  const NetworkGrid grid = BuildGrid(net);
  std::set<std::string> heads;
  for (int s : grid.HeadwaterSegments()) heads.insert(grid.segments[s].reach);
  EXPECT_EQ(heads, (std::set<std::string>{"sushui_upper", "yaoxian", "fen_upper", "kuai_lower"}));
}

}  // namespace
}  // namespace qingshui
