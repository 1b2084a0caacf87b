// Steady daily flow balance and the channel hydraulics that go with it.
// Physics checked: conservation of water volume on every segment and over the network
// (exact up to the round-off of summing N terms, N·ε); losses take only the water that is
// there, so a losing reach runs dry (Q = 0) and flow resumes exactly at the next inflow;
// wetlands route up to their hydraulic capacity; the depth of every wet segment carries its
// flow on Manning's equation or on its rating curve; dry segments have zero depth, velocity
// and dispersion (no NaN).
#include "qingshui/hydro/flow_balance.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qingshui/core/error.h"
#include "qingshui/hydro/channel.h"
#include "test_paths.h"

namespace qingshui::hydro {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();

// One 20 km reach, 1 km segments, into a lake, then a 5 km reach to the outlet.
// Headwater 0.1 m³/s (dry), losses 0.01 m³/s/km; a plant of 0.05 m³/s at km 14.5 routed
// through a wetland at km 16.5 (capacity 0.03, online 2024-06-01); a withdrawal of
// 0.02 m³/s at km 22.
const char* kNet = R"(format: qingshui-network
version: 1
name: balance test
species:
  - {id: COD, name_zh: 化学需氧量, name_en: COD, decay_per_day_20c: 0.2}
  - {id: TP, name_zh: 总磷, name_en: TP}
rivers:
  - {id: r, name_zh: 河, name_en: river}
reaches:
  - id: up
    name_zh: 上
    name_en: up
    river: r
    length_km: 20
    segment_length_m: 1000
    downstream: lk
    geometry: {bottom_width_m: 10, side_slope: 2, manning_n: 0.03, bed_slope: 0.001}
    headwater:
      dry: {flow_m3s: 0.1, concentration_mg_l: {COD: 10}}
      wet: {flow_m3s: 2.0, concentration_mg_l: {COD: 15}}
    lateral_flow:
      dry: {loss_m3s_per_km: 0.01}
      wet: {inflow_m3s_per_km: 0.02, loss_m3s_per_km: 0.01, concentration_mg_l: {COD: 20}}
  - id: down
    name_zh: 下
    name_en: down
    river: r
    start_km: 20
    length_km: 5
    segment_length_m: 1000
    downstream: mouth
    geometry: {bottom_width_m: 10, side_slope: 0, manning_n: 0.03, bed_slope: 0.001}
    rating_curve: {a: 8.0, b: 1.6}
    dispersion_m2s: 3.5
    storage: {area_ratio: 0.2, exchange_per_s: 1.0e-4}
lakes:
  - {id: lk, name_zh: 湖, name_en: lake, src: "E: test", area_km2: 1, mean_depth_m: 2, downstream: down,
     net_evaporation_mm_day: {dry: 2.16, wet: -4.32}}
outlets:
  - {id: mouth, name_zh: 口, name_en: mouth}
sources:
  - {id: plant, name_zh: 厂, name_en: plant, src: "E: test", kind: treatment_plant, reach: up, km: 14.5,
     design_flow_m3s: 0.05, effluent_mg_l: {COD: 40, TP: 0.4}, via: wet}
  - {id: wet, name_zh: 湿地, name_en: wetland, src: "E: test", kind: wetland, reach: up, km: 16.5,
     design_flow_m3s: 0, capacity_m3s: 0.03, removal: {COD: 0.5, TP: 0.25}, online: 2024-06-01,
     status: under_construction}
  - {id: take, name_zh: 取水, name_en: withdrawal, src: "E: test", kind: withdrawal, reach: down, km: 22,
     design_flow_m3s: 0.02}
  - {id: spill, name_zh: 溢流, name_en: overflow, src: "E: test", kind: storm_overflow, reach: up, km: 5,
     design_flow_m3s: 1}
  - {id: drain, name_zh: 排碱, name_en: drain, src: "E: test", kind: farmland_drainage, reach: up, km: 2,
     design_flow_m3s: 0.5, status: plugged, offline: 2025-12-31}
)";

Network TestNet() { return ParseNetwork(kNet, "balance.yaml"); }

NetworkHydraulics Day(const Network& net, const std::string& date, const std::string& season = "") {
  DayOptions o;
  o.date = date;
  o.season = season;
  return SteadyHydraulics(net, o);
}

TEST(FlowBalance, LosingReachRunsDryAndResumesAtTheNextInflow) {
  const Network net = TestNet();
  const NetworkHydraulics h = Day(net, "2024-03-01");  // dry season, wetland not yet online
  EXPECT_EQ(h.season, "dry");
  // Q after segment i (km i..i+1) = 0.1 − 0.01 (i+1) until it reaches 0 at km 10.
  for (int i = 0; i < 10; ++i) EXPECT_NEAR(h.flow_m3s[i], 0.1 - 0.01 * (i + 1), 1e-15) << i;
  // Segment 9 receives the last 0.01 m³/s and loses it: no outflow, but water in it (its
  // hydraulics are those of its mean flow 0.005 m³/s). Segments 10-13 are dry.
  EXPECT_EQ(h.flow_m3s[9], 0.0);
  EXPECT_NEAR(h.mean_flow_m3s[9], 0.005, 1e-15);
  EXPECT_GT(h.depth_m[9], 0.0);
  for (int i = 10; i < 14; ++i) {
    EXPECT_EQ(h.flow_m3s[i], 0.0) << i;  // exactly dry
    EXPECT_EQ(h.depth_m[i], 0.0);
    EXPECT_EQ(h.velocity_ms[i], 0.0);
    EXPECT_EQ(h.dispersion_m2s[i], 0.0);
    EXPECT_EQ(h.area_m2[i], 0.0);
  }
  // The plant enters segment 14 (km 14-15): 0.05 in, 0.01 lost → 0.04, then −0.01 per km.
  EXPECT_NEAR(h.flow_m3s[14], 0.04, 1e-15);
  EXPECT_NEAR(h.flow_m3s[17], 0.01, 1e-15);
  EXPECT_EQ(h.flow_m3s[18], 0.0);
  EXPECT_EQ(h.dry_segment_count(), 7 + 5);  // km 9-14, km 18-20, and all of `down`
  for (int i = 0; i < h.size(); ++i) {
    for (double v : {h.flow_m3s[i], h.depth_m[i], h.velocity_ms[i], h.dispersion_m2s[i],
                     h.area_m2[i], h.effluent_fraction[i]}) {
      EXPECT_TRUE(std::isfinite(v)) << i;
    }
  }
  // The storm overflow and the plugged drain add nothing on a dry day.
  for (const auto& s : h.sources) {
    if (s.id == "spill" || s.id == "drain") EXPECT_FALSE(s.active) << s.id << ": " << s.reason;
  }
}

TEST(FlowBalance, VolumeBalanceClosesToRoundOffOnEverySegmentAndOverall) {
  const Network net = TestNet();
  for (const char* date : {"2024-03-01", "2024-07-15"}) {
    const NetworkHydraulics h = Day(net, date);
    for (int i = 0; i < h.size(); ++i) {
      const double in = h.headwater_inflow_m3s[i] + h.upstream_inflow_m3s[i] +
                        h.point_inflow_m3s[i] + h.diffuse_inflow_m3s[i];
      const double out = h.flow_m3s[i] + h.withdrawal_m3s[i] + h.loss_m3s[i];
      EXPECT_NEAR(in, out, 4 * kEps * in) << date << " segment " << i;
    }
    const WaterBalance& b = h.balance;
    EXPECT_LE(std::abs(b.residual_m3s), h.size() * kEps * b.inflow_m3s()) << date;
  }
}

TEST(FlowBalance, WetlandTakesUpToItsCapacityOnceOnline) {
  const Network net = TestNet();
  // Before 2024-06-01 the plant discharges at its own km (segment 14).
  NetworkHydraulics before = Day(net, "2024-05-31", "dry");
  EXPECT_NEAR(before.point_inflow_m3s[14], 0.05, 1e-15);
  EXPECT_EQ(before.point_inflow_m3s[16], 0.0);
  // From then on 0.03 (the capacity) goes to the wetland at km 16.5 with 50% of COD and
  // 25% of TP removed; the remaining 0.02 still enters at km 14.5.
  NetworkHydraulics after = Day(net, "2024-06-01", "dry");
  EXPECT_NEAR(after.point_inflow_m3s[14], 0.02, 1e-15);
  EXPECT_NEAR(after.point_inflow_m3s[16], 0.03, 1e-15);
  const int ns = after.num_species();
  EXPECT_NEAR(after.lateral_concentration_g_m3[16 * ns + 0], 20.0, 1e-12);
  EXPECT_NEAR(after.lateral_concentration_g_m3[16 * ns + 1], 0.3, 1e-12);
  EXPECT_NEAR(after.lateral_concentration_g_m3[14 * ns + 0], 40.0, 1e-12);
  for (const auto& s : after.sources) {
    if (s.id == "plant") EXPECT_NEAR(s.via_wetland_m3s, 0.03, 1e-15);
  }
}

TEST(FlowBalance, LakePassesFlowMinusNetEvaporationAndWithdrawalsTakeOnlyWhatIsThere) {
  const Network net = TestNet();
  // Dry: 2.16 mm/day on 1 km² = 0.025 m³/s; the lake receives 0 (reach dry at its end), so
  // nothing evaporates and the withdrawal (0.02) finds a dry river.
  NetworkHydraulics dry = Day(net, "2024-03-01");
  const int lake = 20;
  EXPECT_EQ(dry.is_lake[lake], 1);
  EXPECT_EQ(dry.flow_m3s[lake], 0.0);
  EXPECT_NEAR(dry.balance.withdrawal_shortfall_m3s, 0.02, 1e-15);
  ASSERT_EQ(dry.warnings.size(), 1u);
  EXPECT_NE(dry.warnings[0].find("withdrawals asked 0.02"), std::string::npos) << dry.warnings[0];
  // Wet: the reach gains 0.02 − 0.01 per km; net rain on the lake adds 4.32 mm/day =
  // 0.05 m³/s; the lake passes the rest on unchanged (steady: no storage change).
  NetworkHydraulics wet = Day(net, "2024-07-15");
  EXPECT_EQ(wet.season, "wet");
  const double into_lake = 2.0 + 0.01 * 20 + 0.05;  // headwater + net lateral + plant
  EXPECT_NEAR(wet.upstream_inflow_m3s[lake], into_lake, 1e-12);
  EXPECT_NEAR(wet.flow_m3s[lake], into_lake + 0.05, 1e-12);
  // km 22 lies on a face: it belongs to the segment upstream of it (km 21-22).
  EXPECT_NEAR(wet.withdrawal_m3s[wet.size() - 4], 0.02, 1e-15);
}

TEST(FlowBalance, DepthCarriesTheMeanFlowOnManningOrTheRatingCurve) {
  const Network net = TestNet();
  const NetworkHydraulics h = Day(net, "2024-07-15");
  const Reach& up = *net.FindReach("up");
  for (int i = 0; i < 20; ++i) {
    // Manning reach: the depth is the normal depth of the mean flow.
    EXPECT_NEAR(ManningFlow(up.geometry, h.depth_m[i]) / h.mean_flow_m3s[i], 1.0, 1e-11) << i;
    EXPECT_NEAR(h.velocity_ms[i] * h.area_m2[i], h.mean_flow_m3s[i], 1e-12);
    // u* = sqrt(g R S).
    const SectionState s = SectionAtDepth(up.geometry, h.depth_m[i]);
    EXPECT_NEAR(h.shear_velocity_ms[i], std::sqrt(9.81 * s.hydraulic_radius_m() * 0.001), 1e-12);
    EXPECT_EQ(h.dispersion_method[i], "fischer");
  }
  // Rating-curve reach: Q = 8 h^1.6 exactly, user dispersion 3.5 m²/s, storage A_s = 0.2 A.
  for (int i = 21; i < h.size(); ++i) {
    EXPECT_NEAR(8.0 * std::pow(h.depth_m[i], 1.6), h.mean_flow_m3s[i], 1e-12) << i;
    EXPECT_NEAR(h.area_m2[i], 10.0 * h.depth_m[i], 1e-12);
    EXPECT_EQ(h.dispersion_m2s[i], 3.5);
    EXPECT_EQ(h.dispersion_method[i], "user");
    EXPECT_NEAR(h.storage_area_m2[i], 0.2 * h.area_m2[i], 1e-12);
  }
}

TEST(FlowBalance, SourceActivityFollowsStatusAndDates) {
  Network net = TestNet();
  Source s = *net.FindSource("plant");
  EXPECT_TRUE(SourceActivityOn(net, s, "2024-01-01").active);
  s.online = "2024-07-01";
  EXPECT_FALSE(SourceActivityOn(net, s, "2024-06-30").active);
  EXPECT_TRUE(SourceActivityOn(net, s, "2024-07-01").active);
  s.offline = "2024-12-31";
  EXPECT_TRUE(SourceActivityOn(net, s, "2024-12-31").active);
  EXPECT_FALSE(SourceActivityOn(net, s, "2025-01-01").active);
  s.online.clear();
  s.offline.clear();
  s.status = "planned";
  EXPECT_FALSE(SourceActivityOn(net, s, "2030-01-01").active);  // no date: never
  s.status = "plugged";
  s.offline = "2025-12-31";
  EXPECT_FALSE(SourceActivityOn(net, s, "2025-12-31").active);  // plugged until that day
  EXPECT_TRUE(SourceActivityOn(net, s, "2026-01-01").active);
}

TEST(FlowBalance, SeasonFromTheDateIsTheFloodSeasonJuneToSeptember) {
  EXPECT_EQ(SeasonOfDate("2024-05-31"), "dry");
  EXPECT_EQ(SeasonOfDate("2024-06-01"), "wet");
  EXPECT_EQ(SeasonOfDate("2024-09-30"), "wet");
  EXPECT_EQ(SeasonOfDate("2024-10-01"), "dry");
  EXPECT_EQ(SeasonOfDate("2024-07-01", {7, 8}), "wet");
  EXPECT_THROW(SeasonOfDate("2024-13-01"), ConfigError);
  EXPECT_THROW(SeasonOfDate("yesterday"), ConfigError);
}

TEST(FlowBalance, NamedErrorsForBadOptionsAndMissingSeasons) {
  const Network net = TestNet();
  try {
    Day(net, "2024-03-01", "monsoon");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("balance.yaml:"), std::string::npos) << m;
    EXPECT_NE(m.find("reaches[up].headwater"), std::string::npos) << m;
    EXPECT_NE(m.find("no entry for season 'monsoon' (has: dry, wet)"), std::string::npos) << m;
  }
  EXPECT_THROW(Day(net, "2024-02-30"), ConfigError);
  DayOptions o;
  o.date = "2024-03-01";
  o.point_inflows.push_back({"negative", "up", 3.0, -1.0, {}, false});
  std::string error;
  EXPECT_FALSE(o.IsValid(&error));
  EXPECT_NE(error.find("negative: flow_m3s"), std::string::npos) << error;
  EXPECT_THROW(SteadyHydraulics(net, o), ConfigError);
}

TEST(FlowBalance, ExtraInflowsEnterWhereTheyAreGiven) {
  const Network net = TestNet();
  DayOptions o;
  o.date = "2024-03-01";
  o.point_inflows.push_back({"overflow", "up", 12.5, 0.2, {{"COD", 150.0}}, true});
  o.distributed_inflows.push_back({"runoff", "down", 21.0, 25.0, 0.4, {{"COD", 30.0}}});
  const NetworkHydraulics h = SteadyHydraulics(net, o);
  EXPECT_EQ(h.diffuse_inflow_m3s[21], 0.0);
  for (int i = 22; i < 26; ++i) EXPECT_NEAR(h.diffuse_inflow_m3s[i], 0.1, 1e-15) << i;
  EXPECT_NEAR(h.point_inflow_m3s[12], 0.2, 1e-15);
  EXPECT_NEAR(h.lateral_concentration_g_m3[12 * h.num_species()], 150.0, 1e-12);
  EXPECT_NEAR(h.effluent_fraction[12], 1.0, 1e-12);  // the river above was dry: all overflow
  EXPECT_LE(std::abs(h.balance.residual_m3s), h.size() * kEps * h.balance.inflow_m3s());
}

TEST(FlowBalance, OffLineLakeReleasesOnlyWhileItsOutflowMeetsItsClass) {
  // Yazichi pumps to the Yaoxian canal only at Class III (seed §7): COD ≤ 20, NH3-N ≤ 1.0,
  // TP ≤ 0.2 mg/L (GB 3838-2002). Its release is plugged until 2024-07-31.
  Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  Source& yazichi = const_cast<Source&>(*net.FindSource("yazichi_outflow"));
  EXPECT_FALSE(SourceActivityOn(net, yazichi, "2024-07-31").active);
  EXPECT_TRUE(SourceActivityOn(net, yazichi, "2024-08-01").active);
  yazichi.effluent_mg_l["COD"] = 25.0;  // Class IV: the lake stores instead
  const SourceActivity a = SourceActivityOn(net, yazichi, "2024-08-01");
  EXPECT_FALSE(a.active);
  EXPECT_NE(a.reason.find("COD 25 mg/L against the Class III limit 20"), std::string::npos)
      << a.reason;
  std::string failed;
  EXPECT_TRUE(MeetsClass(*net.standard, {{"COD", 20.0}, {"NH3N", 1.0}, {"TP", 0.2}}, "III"));
  EXPECT_FALSE(MeetsClass(*net.standard, {{"COD", 20.0}, {"TP", 0.21}}, "III", &failed));
  EXPECT_NE(failed.find("TP"), std::string::npos);
}

// --- the default Yuncheng network -------------------------------------------------------
//
// Domain brief (shared/domain/yuncheng.md) §3:
//  - Sushui: mean flow ~1.4 m³/s, intermittent: dry outside the flood season upstream of
//    the towns; below them mostly treated effluent; floods 100-300 m³/s (events).
//  - Fen: ecological flow 0.05-1.8 m³/s in the dry season, 0.5-19 m³/s in the flood season.
// The checks: dry season — part of the Sushui above the towns is dry; Zhangliuzhuang
// carries 0.7-2.8 m³/s (the 1.4 m³/s mean within a factor 2) of which more than half is
// effluent; Miaoqian lies in 0.05-1.8 m³/s. Flood season — no Sushui segment is dry,
// Zhangliuzhuang carries more than in the dry season but less than the 100 m³/s of a flood
// event, Miaoqian lies in 0.5-19 m³/s.

struct Sections {
  double zhang_q, zhang_effluent, miao_q;
  int sushui_dry_above_wenxi;
};

Sections AtSections(const Network& net, const NetworkGrid& grid, const NetworkHydraulics& h) {
  Sections s{};
  const Station* z = net.FindStation("zhangliuzhuang");
  const Station* m = net.FindStation("miaoqian");
  const int iz = grid.SegmentAt(z->reach, z->km), im = grid.SegmentAt(m->reach, m->km);
  s.zhang_q = h.flow_m3s[iz];
  s.zhang_effluent = h.effluent_fraction[iz];
  s.miao_q = h.flow_m3s[im];
  for (int i = 0; i < h.size(); ++i) {
    if (h.reach[i] == "sushui_upper" && h.flow_m3s[i] == 0.0) s.sushui_dry_above_wenxi++;
  }
  return s;
}

TEST(DefaultNetworkFlows, DrySeasonAtZhangliuzhuangAndMiaoqianWithinTheBriefsRanges) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  const NetworkGrid grid = BuildGrid(net);
  DayOptions o;
  o.date = "2024-04-15";
  const NetworkHydraulics h = SteadyHydraulics(net, grid, o);
  ASSERT_EQ(h.season, "dry");
  const Sections s = AtSections(net, grid, h);
  EXPECT_GT(s.sushui_dry_above_wenxi, 0);
  EXPECT_GE(s.zhang_q, 0.7);
  EXPECT_LE(s.zhang_q, 2.8);
  EXPECT_GT(s.zhang_effluent, 0.5);
  EXPECT_GE(s.miao_q, 0.05);
  EXPECT_LE(s.miao_q, 1.8);
  EXPECT_LE(std::abs(h.balance.residual_m3s), h.size() * kEps * h.balance.inflow_m3s());
  std::cout << "dry 2024-04-15: Zhangliuzhuang " << s.zhang_q << " m3/s (effluent "
            << s.zhang_effluent << "), Miaoqian " << s.miao_q << " m3/s, "
            << s.sushui_dry_above_wenxi << " dry segments in the upper Sushui, residual "
            << h.balance.residual_m3s << " m3/s\n";
}

TEST(DefaultNetworkFlows, FloodSeasonAtZhangliuzhuangAndMiaoqianWithinTheBriefsRanges) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  const NetworkGrid grid = BuildGrid(net);
  DayOptions o;
  o.date = "2024-04-15";
  const Sections dry = AtSections(net, grid, SteadyHydraulics(net, grid, o));
  o.date = "2024-08-01";
  const NetworkHydraulics h = SteadyHydraulics(net, grid, o);
  ASSERT_EQ(h.season, "wet");
  const Sections s = AtSections(net, grid, h);
  EXPECT_EQ(s.sushui_dry_above_wenxi, 0);
  EXPECT_GT(s.zhang_q, dry.zhang_q);
  EXPECT_LT(s.zhang_q, 100.0);
  EXPECT_GE(s.miao_q, 0.5);
  EXPECT_LE(s.miao_q, 19.0);
  EXPECT_LE(std::abs(h.balance.residual_m3s), h.size() * kEps * h.balance.inflow_m3s());
  std::cout << "wet 2024-08-01: Zhangliuzhuang " << s.zhang_q << " m3/s (effluent "
            << s.zhang_effluent << "), Miaoqian " << s.miao_q << " m3/s, residual "
            << h.balance.residual_m3s << " m3/s\n";
}

}  // namespace
}  // namespace qingshui::hydro
