// Rain: SCS curve-number runoff, combined-sewer overflow with a buffer tank, and the rain
// file. Physics checked: the SCS equation against a hand-worked case (NEH-4); storm water
// that the plant cannot treat first fills the tank and only then spills, with the
// conservation (inflow − treated − tank change − overflow = 0) exact; the spilled water
// carries the sewer's mix of raw sewage and storm water; a higher throughput before the
// storm (pre-flood-season schedule) empties the tank and reduces the spill; runoff enters
// the river along its stretch and the day's water balance still closes.
#include "qingshui/hydro/rain.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qingshui/core/error.h"
#include "test_paths.h"

namespace qingshui::hydro {
namespace {

// A 10 km reach; a city catchment (CN 90, 10 km²) whose combined sewers (half the runoff)
// drain to a plant of capacity 0.5 m³/s receiving 0.4 m³/s of sewage, with a 20,000 m³
// tank; a rural catchment (CN 75, 100 km²) along the whole reach.
const char* kNet = R"(format: qingshui-network
version: 1
name: rain test
species:
  - {id: COD, name_zh: 化学需氧量, name_en: COD}
rivers:
  - {id: r, name_zh: 河, name_en: river}
reaches:
  - id: main
    name_zh: 干流
    name_en: main
    river: r
    length_km: 10
    segment_length_m: 1000
    downstream: mouth
    geometry: {bottom_width_m: 10, side_slope: 2, manning_n: 0.03, bed_slope: 0.001}
    headwater:
      dry: {flow_m3s: 1.0, concentration_mg_l: {COD: 10}}
      wet: {flow_m3s: 1.0, concentration_mg_l: {COD: 10}}
outlets:
  - {id: mouth, name_zh: 口, name_en: mouth}
sources:
  - id: plant
    name_zh: 厂
    name_en: plant
    src: "E: test"
    kind: treatment_plant
    reach: main
    km: 4.5
    design_flow_m3s: 0.4
    capacity_m3s: 0.5
    effluent_mg_l: {COD: 40}
    sewage_inflow_m3s: 0.4
    buffer_tank_m3: 20000
    raw_sewage_mg_l: {COD: 300}
    overflow_at: spill
    operations:
      - {from: 2024-05-25, to: 2024-05-31, capacity_factor: 2.0}
  - {id: spill, name_zh: 溢流口, name_en: overflow, src: "E: test", kind: storm_overflow, reach: main, km: 5.5, design_flow_m3s: 0}
catchments:
  - {id: city, name_zh: 城区, name_en: city, src: "E: test", reach: main, km_from: 4, km_to: 6,
     area_km2: 10, curve_number: 90, runoff_mg_l: {COD: 100}, sewer_plant: plant, sewered_fraction: 0.5}
  - {id: farm, name_zh: 农田, name_en: farmland, src: "E: test", reach: main, km_from: 0, km_to: 10,
     area_km2: 100, curve_number: 75, runoff_mg_l: {COD: 30}}
)";

Network TestNet() { return ParseNetwork(kNet, "rain-net.yaml"); }

TEST(Rain, ScsCurveNumberRunoff) {
  // P = 100 mm, CN = 80: S = 25400/80 − 254 = 63.5 mm, I_a = 12.7 mm,
  // Q = 87.3² / (87.3 + 63.5) = 50.54 mm.
  EXPECT_NEAR(ScsRunoffMm(100.0, 80.0), 87.3 * 87.3 / (87.3 + 63.5), 1e-9);
  EXPECT_EQ(ScsRunoffMm(12.7, 80.0), 0.0);  // no runoff until the initial abstraction
  EXPECT_EQ(ScsRunoffMm(0.0, 90.0), 0.0);
  EXPECT_NEAR(ScsRunoffMm(50.0, 100.0), 50.0, 1e-12);  // impervious: all rain runs off
  EXPECT_THROW(ScsRunoffMm(-1.0, 80.0), ConfigError);
  EXPECT_THROW(ScsRunoffMm(10.0, 0.0), ConfigError);
}

TEST(Rain, OverflowOnlyOnceTheTankIsFullAndItCarriesTheSewerMix) {
  const Network net = TestNet();
  // Day 1 dry; day 2 a 40 mm storm; day 3 dry (the tank drains at the spare 0.1 m³/s).
  const RainSeries rain = ParseRainCsv(
      "date,city,farm\n2024-07-01,0,0\n2024-07-02,40,40\n2024-07-03,0,0\n", "rain.csv", net);
  const std::vector<RainDay> days = RainDays(net, rain);
  ASSERT_EQ(days.size(), 3u);
  EXPECT_TRUE(days[0].point_inflows.empty());
  const PlantStorm& p = days[1].plants.at(0);
  const double runoff_mm = ScsRunoffMm(40.0, 90.0);
  const double storm = 0.5 * runoff_mm / 1000.0 * 10e6 / 86400.0;
  EXPECT_NEAR(p.storm_m3s, storm, 1e-12);
  const double excess = (0.4 + storm - 0.5) * 86400.0;
  EXPECT_NEAR(p.tank_end_m3, 20000.0, 1e-9);
  EXPECT_NEAR(p.overflow_m3s, (excess - 20000.0) / 86400.0, 1e-12);
  // Water: sewage + storm = treated + tank gain + overflow.
  EXPECT_NEAR(p.sewage_m3s + p.storm_m3s,
              p.treated_m3s + (p.tank_end_m3 - p.tank_start_m3) / 86400.0 + p.overflow_m3s, 1e-12);
  // The overflow enters at the overflow point with (0.4·300 + storm·100)/(0.4 + storm).
  const ExtraPointInflow* spill = nullptr;
  for (const auto& q : days[1].point_inflows) {
    if (q.label == "overflow:plant") spill = &q;
  }
  ASSERT_NE(spill, nullptr);
  EXPECT_DOUBLE_EQ(spill->km, 5.5);
  EXPECT_NEAR(spill->concentration_mg_l.at("COD"), (0.4 * 300 + storm * 100) / (0.4 + storm), 1e-9);
  // The plant also discharges the 0.1 m³/s of storm water it treats.
  EXPECT_NEAR(days[1].plants[0].extra_effluent_m3s, 0.1, 1e-12);
  // Next day: 0.1 m³/s spare capacity drains 8,640 m³ of the tank, nothing spills.
  EXPECT_NEAR(days[2].plants[0].tank_end_m3, 20000.0 - 8640.0, 1e-9);
  EXPECT_EQ(days[2].plants[0].overflow_m3s, 0.0);
}

TEST(Rain, PreFloodScheduleEmptiesTheTankAndReducesTheSpill) {
  const Network net = TestNet();
  // Storms on 05-24 and 05-28 with a dry day between. With the schedule (capacity ×2 from
  // 05-25) the tank empties on 05-25 (spare 0.6 m³/s·day = 51,840 m³ > 20,000) and the
  // second storm spills less than without it.
  const std::string csv =
      "date,city,farm\n2024-05-24,40,0\n2024-05-25,0,0\n2024-05-26,0,0\n2024-05-27,0,0\n"
      "2024-05-28,40,0\n";
  const RainSeries rain = ParseRainCsv(csv, "rain.csv", net);
  const auto with = RainDays(net, rain);
  Network plain = TestNet();
  plain.sources[0].operations.clear();
  const auto without = RainDays(plain, rain);
  EXPECT_NEAR(with[1].plants[0].tank_end_m3, 0.0, 1e-9);
  EXPECT_GT(without[1].plants[0].tank_end_m3, 0.0);
  EXPECT_LT(with[4].plants[0].overflow_m3s, without[4].plants[0].overflow_m3s);
  // Capacity doubled on the storm day: 1.0 m³/s.
  EXPECT_NEAR(with[4].plants[0].capacity_m3s, 1.0, 1e-12);
}

TEST(Rain, RunoffEntersAlongItsStretchAndTheBalanceCloses) {
  const Network net = TestNet();
  const RainSeries rain = ParseRainCsv("date,city,farm\n2024-07-02,40,40\n", "rain.csv", net);
  const RainDay day = RainOnDay(net, rain, "2024-07-02");
  DayOptions o;
  o.date = "2024-07-02";
  AddRain(day, &o);
  const NetworkHydraulics h = SteadyHydraulics(net, o);
  const double farm = ScsRunoffMm(40.0, 75.0) / 1000.0 * 100e6 / 86400.0;
  const double city_river = 0.5 * ScsRunoffMm(40.0, 90.0) / 1000.0 * 10e6 / 86400.0;
  EXPECT_NEAR(h.balance.diffuse_inflow_m3s, farm + city_river, 1e-12);
  // Farm runoff is spread evenly over 10 segments, the city's over km 4-6 (segments 4, 5).
  EXPECT_NEAR(h.diffuse_inflow_m3s[0], farm / 10, 1e-12);
  EXPECT_NEAR(h.diffuse_inflow_m3s[4], farm / 10 + city_river / 2, 1e-12);
  const double spill = day.plants[0].overflow_m3s;
  EXPECT_NEAR(h.point_inflow_m3s[5], spill, 1e-12);  // km 5.5
  EXPECT_NEAR(h.flow_m3s[9], 1.0 + 0.4 + 0.1 + spill + farm + city_river, 1e-9);
  EXPECT_LE(std::abs(h.balance.residual_m3s),
            h.size() * std::numeric_limits<double>::epsilon() * h.balance.inflow_m3s());
}

TEST(Rain, BadRainFilesGetNamedErrors) {
  const Network net = TestNet();
  auto expect = [&](const std::string& csv, const std::string& what, bool config = false) {
    try {
      ParseRainCsv(csv, "rain.csv", net);
      FAIL() << "expected an error for: " << csv;
    } catch (const DataError& e) {
      EXPECT_FALSE(config) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    } catch (const ConfigError& e) {
      EXPECT_TRUE(config) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect("date,city\n2024-07-01,1\n2024-07-03,2\n",
         "rain.csv:3: date: gap: 2024-07-03 follows 2024-07-01 (1 missing day(s))");
  expect("date,city\n2024-07-02,1\n2024-07-01,2\n", "rain.csv:3: date: 2024-07-01 does not follow");
  expect("date,city\n2024-07-01,-3\n", "rain.csv:2: city: rain must be >= 0 mm/day");
  expect("date,city,farm\n2024-07-01,3,\n",
         "rain.csv:2: farm: expected rain in mm/day, found '' (missing value)");
  expect("date,city\n2024-07-01,lots\n", "rain.csv:2: city: expected rain in mm/day, found 'lots'");
  expect("date,city\n2024-07-32,1\n", "rain.csv:2: date: expected YYYY-MM-DD");
  expect("date,town\n2024-07-01,1\n", "rain.csv:1: town: unknown catchment (known: city, farm)",
         true);
  expect("day,city\n", "rain.csv:1: header");
  const RainSeries ok = ParseRainCsv("date,city\n2024-07-01,1\n", "rain.csv", net);
  EXPECT_THROW(RainOnDay(net, ok, "2024-07-05"), DataError);
}

TEST(Rain, StormOnTheDefaultNetworkSpillsAtChengdongAndRaisesZhangliuzhuang) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  std::string csv = "date";
  for (const auto& c : net.catchments) csv += "," + c.id;
  csv += "\n2024-07-20";
  for (size_t k = 0; k < net.catchments.size(); ++k) csv += ",0";
  csv += "\n2024-07-21";
  for (size_t k = 0; k < net.catchments.size(); ++k) csv += ",35";
  csv += "\n";
  const RainSeries rain = ParseRainCsv(csv, "storm.csv", net);
  const RainDay day = RainOnDay(net, rain, "2024-07-21");
  double spill = 0.0;
  for (const auto& p : day.plants) {
    if (p.id == "chengdong_wwtp") spill = p.overflow_m3s;
  }
  EXPECT_GT(spill, 0.0);
  DayOptions dry, wet;
  dry.date = wet.date = "2024-07-21";
  AddRain(day, &wet);
  const NetworkGrid grid = BuildGrid(net);
  const NetworkHydraulics h0 = SteadyHydraulics(net, grid, dry);
  const NetworkHydraulics h1 = SteadyHydraulics(net, grid, wet);
  const Station* z = net.FindStation("zhangliuzhuang");
  const int iz = grid.SegmentAt(z->reach, z->km);
  // 35 mm over the whole basin on a wet day: ~3 mm of runoff from the farmland, ~190 m³/s
  // as a daily mean from the Sushui catchments — the order of its 100-300 m³/s floods
  // (brief §3). As a steady daily mean it ignores routing through Wuxing Lake.
  EXPECT_GT(h1.flow_m3s[iz], h0.flow_m3s[iz] + 10.0);
  EXPECT_LE(std::abs(h1.balance.residual_m3s),
            h1.size() * std::numeric_limits<double>::epsilon() * h1.balance.inflow_m3s());
  std::cout << day.BriefReport() << "Zhangliuzhuang " << h0.flow_m3s[iz] << " -> "
            << h1.flow_m3s[iz] << " m3/s (steady daily mean)\n";
}

}  // namespace
}  // namespace qingshui::hydro
