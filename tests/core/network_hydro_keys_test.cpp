// Network keys read for the hydraulics (docs/network-format.md): rating_curve,
// dispersion_m2s, dispersion_formula, lateral_flow per season, a lake's
// net_evaporation_mm_day. Units converted on reading, written back on a round trip, and a
// named error (file:line: field: what) for each kind of bad value.
#include <gtest/gtest.h>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"

namespace qingshui {
namespace {

// Line numbers in the error tests refer to this text (line 1 is "format: ...").
const char* kNet = R"(format: qingshui-network
version: 1
name: hydro keys
species:
  - {id: COD, name_zh: 化学需氧量, name_en: COD}
rivers:
  - {id: r, name_zh: 河, name_en: river}
reaches:
  - id: a
    name_zh: 甲
    name_en: a
    river: r
    length_km: 10
    segment_length_m: 500
    downstream: lk
    geometry: {bottom_width_m: 10, side_slope: 2, manning_n: 0.03, bed_slope: 0.001}
    rating_curve: {a: {value: 6.5, src: "M: gauging 2023"}, b: 1.6}
    dispersion_m2s: 4
    dispersion_formula: deng
    lateral_flow:
      dry: {loss_m3s_per_km: 0.004}
      wet: {inflow_m3s_per_km: {value: 0.01, src: "E: test"}, loss_m3s_per_km: 0.002, concentration_mg_l: {COD: 20}}
lakes:
  - {id: lk, name_zh: 湖, name_en: lake, src: "E: test", area_km2: 2, mean_depth_m: 1.5, downstream: mouth,
     net_evaporation_mm_day: {dry: 2.5, wet: -1.0}}
outlets:
  - {id: mouth, name_zh: 口, name_en: mouth}
)";

std::string Edit(const std::string& from, const std::string& to) {
  std::string text = kNet;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

void ExpectError(const std::string& text, int line, const std::string& field,
                 const std::string& what) {
  try {
    ParseNetwork(text, "net.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("net.yaml:" + std::to_string(line) + ": " + field), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
  }
}

TEST(NetworkHydroKeys, ReadWithUnitsConverted) {
  const Network net = ParseNetwork(kNet, "net.yaml");
  const Reach& a = *net.FindReach("a");
  ASSERT_TRUE(a.rating_curve.has_value());
  EXPECT_DOUBLE_EQ(a.rating_curve->a, 6.5);
  EXPECT_DOUBLE_EQ(a.rating_curve->b, 1.6);
  ASSERT_TRUE(a.dispersion_m2s.has_value());
  EXPECT_DOUBLE_EQ(*a.dispersion_m2s, 4.0);
  EXPECT_EQ(a.dispersion_formula, "deng");
  // m³/s per km → m³/s per m.
  EXPECT_DOUBLE_EQ(a.lateral_flow.at("dry").loss_m2s, 0.004 / 1000.0);
  EXPECT_DOUBLE_EQ(a.lateral_flow.at("dry").inflow_m2s, 0.0);
  EXPECT_DOUBLE_EQ(a.lateral_flow.at("wet").inflow_m2s, 0.01 / 1000.0);
  EXPECT_DOUBLE_EQ(a.lateral_flow.at("wet").concentration_mg_l.at("COD"), 20.0);
  // mm/day → m/s; negative = net rain.
  EXPECT_DOUBLE_EQ(net.lakes[0].net_evaporation_m_s.at("dry"), 2.5e-3 / 86400.0);
  EXPECT_DOUBLE_EQ(net.lakes[0].net_evaporation_m_s.at("wet"), -1.0e-3 / 86400.0);
}

TEST(NetworkHydroKeys, DefaultsWhenAbsent) {
  const Network net =
      ParseNetwork(Edit("    rating_curve: {a: {value: 6.5, src: \"M: gauging 2023\"}, b: 1.6}\n"
                        "    dispersion_m2s: 4\n    dispersion_formula: deng\n",
                        ""),
                   "net.yaml");
  const Reach& a = *net.FindReach("a");
  EXPECT_FALSE(a.rating_curve.has_value());
  EXPECT_FALSE(a.dispersion_m2s.has_value());
  EXPECT_EQ(a.dispersion_formula, "fischer");
}

TEST(NetworkHydroKeys, RoundTripKeepsValuesAndProvenance) {
  const Network a = ParseNetwork(kNet, "net.yaml");
  const std::string yaml = WriteNetworkYaml(a);
  const Network b = ParseNetwork(yaml, "net.yaml");
  EXPECT_EQ(WriteNetworkYaml(b), yaml);
  const Reach& ra = *a.FindReach("a");
  const Reach& rb = *b.FindReach("a");
  EXPECT_DOUBLE_EQ(rb.rating_curve->a, ra.rating_curve->a);
  EXPECT_EQ(rb.dispersion_formula, "deng");
  EXPECT_NEAR(rb.lateral_flow.at("wet").inflow_m2s, ra.lateral_flow.at("wet").inflow_m2s, 1e-18);
  EXPECT_NEAR(b.lakes[0].net_evaporation_m_s.at("dry"), a.lakes[0].net_evaporation_m_s.at("dry"),
              1e-20);
  bool found = false;
  for (const auto& p : b.provenance) {
    if (p.path == "reaches[a].rating_curve.a") found = p.kind == 'M' && p.text == "gauging 2023";
  }
  EXPECT_TRUE(found);
}

TEST(NetworkHydroKeys, RatingCurveThatDoesNotIncreaseIsNamed) {
  ExpectError(Edit("b: 1.6}", "b: 0}"), 17, "reaches[a].rating_curve.b",
              "expected a finite number > 0");
  ExpectError(Edit("{value: 6.5, src: \"M: gauging 2023\"}", "-2"), 17, "reaches[a].rating_curve.a",
              "expected a finite number > 0");
  ExpectError(Edit("b: 1.6}", "c: 1.6}"), 17, "reaches[a].rating_curve",
              "required number is missing");
}

TEST(NetworkHydroKeys, NegativeLateralFlowsAndUnknownFormulaAreNamed) {
  ExpectError(Edit("loss_m3s_per_km: 0.004", "loss_m3s_per_km: -0.004"), 21,
              "reaches[a].lateral_flow.dry.loss_m3s_per_km", "expected a finite number >= 0");
  ExpectError(Edit("loss_m3s_per_km: 0.004", "los_m3s_per_km: 0.004"), 21,
              "reaches[a].lateral_flow.dry.los_m3s_per_km", "unknown key");
  ExpectError(Edit("dispersion_formula: deng", "dispersion_formula: elder"), 19,
              "reaches[a].dispersion_formula",
              "expected one of: fischer, kashefipour_falconer, deng");
  ExpectError(Edit("dispersion_m2s: 4", "dispersion_m2s: -4"), 18, "reaches[a].dispersion_m2s",
              "expected a finite number >= 0");
  ExpectError(Edit("concentration_mg_l: {COD: 20}", "concentration_mg_l: {BOD: 20}"), 22,
              "reaches[a].lateral_flow.wet.concentration_mg_l.BOD", "unknown species 'BOD'");
  ExpectError(Edit("wet: -1.0}", "wet: many}"), 25, "lakes[lk].net_evaporation_mm_day.wet",
              "expected a finite number");
}

}  // namespace
}  // namespace qingshui

namespace qingshui {
namespace {

// Rain keys: catchments, plant sewer keys and operations, lake level tables.
const char* kRainNet = R"(format: qingshui-network
version: 1
name: rain keys
species:
  - {id: COD, name_zh: 化学需氧量, name_en: COD}
rivers:
  - {id: r, name_zh: 河, name_en: river}
reaches:
  - {id: a, name_zh: 甲, name_en: a, river: r, length_km: 10, segment_length_m: 500, downstream: lk,
     geometry: {bottom_width_m: 10, manning_n: 0.03, bed_slope: 0.001}}
lakes:
  - id: lk
    name_zh: 湖
    name_en: lake
    src: "E: test"
    area_km2: 2
    mean_depth_m: 1.5
    downstream: mouth
    levels:
      - {depth_m: 0, area_km2: 1, outflow_m3s: 0}
      - {depth_m: 1.5, area_km2: 2, outflow_m3s: 0}
      - {depth_m: 2.5, area_km2: 2.5, outflow_m3s: 20}
outlets:
  - {id: mouth, name_zh: 口, name_en: mouth}
sources:
  - id: plant
    name_zh: 厂
    name_en: plant
    src: "E: test"
    kind: treatment_plant
    reach: a
    km: 4
    design_flow_m3s: 0
    capacity_m3s: 0.46
    sewage_inflow_m3s: 0.42
    buffer_tank_m3: {value: 20000, src: "E: test"}
    raw_sewage_mg_l: {COD: 300}
    overflow_at: spill
    operations:
      - {from: 2024-05-15, to: 2024-05-31, capacity_factor: 1.1}
  - {id: spill, name_zh: 溢流口, name_en: spill, src: "E: test", kind: storm_overflow, reach: a, km: 4.5, design_flow_m3s: 0}
catchments:
  - id: city
    name_zh: 城区
    name_en: city
    src: "E: test"
    reach: a
    km_from: 3
    km_to: 6
    area_km2: 30
    curve_number: 90
    runoff_mg_l: {COD: 100}
    sewer_plant: plant
    sewered_fraction: 0.6
)";

std::string EditRain(const std::string& from, const std::string& to) {
  std::string text = kRainNet;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

void ExpectRainError(const std::string& text, int line, const std::string& field,
                     const std::string& what) {
  try {
    ParseNetwork(text, "rain.yaml");
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rain.yaml:" + std::to_string(line) + ": " + field), std::string::npos) << m;
    EXPECT_NE(m.find(what), std::string::npos) << m;
  }
}

TEST(NetworkRainKeys, ReadWithUnitsConvertedAndRoundTrip) {
  const Network net = ParseNetwork(kRainNet, "rain.yaml");
  const Catchment* c = net.FindCatchment("city");
  ASSERT_NE(c, nullptr);
  EXPECT_DOUBLE_EQ(c->area_m2, 30e6);
  EXPECT_DOUBLE_EQ(c->curve_number, 90.0);
  EXPECT_DOUBLE_EQ(c->initial_abstraction_ratio, 0.2);  // default
  EXPECT_EQ(c->sewer_plant, "plant");
  const Source& p = *net.FindSource("plant");
  EXPECT_DOUBLE_EQ(*p.sewage_inflow_m3s, 0.42);
  EXPECT_DOUBLE_EQ(*p.buffer_tank_m3, 20000.0);
  EXPECT_DOUBLE_EQ(p.raw_sewage_mg_l.at("COD"), 300.0);
  EXPECT_EQ(p.overflow_at, "spill");
  ASSERT_EQ(p.operations.size(), 1u);
  EXPECT_EQ(p.operations[0].from, "2024-05-15");
  EXPECT_DOUBLE_EQ(p.operations[0].capacity_factor, 1.1);
  ASSERT_EQ(net.lakes[0].levels.size(), 3u);
  EXPECT_DOUBLE_EQ(net.lakes[0].levels[2].area_m2, 2.5e6);
  const std::string yaml = WriteNetworkYaml(net);
  const Network again = ParseNetwork(yaml, "rain.yaml");
  EXPECT_EQ(WriteNetworkYaml(again), yaml);
  EXPECT_EQ(again.catchments.size(), 1u);
  EXPECT_EQ(again.FindSource("plant")->operations.size(), 1u);
  EXPECT_EQ(again.lakes[0].levels.size(), 3u);
}

TEST(NetworkRainKeys, BadValuesAreNamed) {
  ExpectRainError(EditRain("curve_number: 90", "curve_number: 120"), 51,
                  "catchments[city].curve_number", "a curve number lies in (0, 100]");
  ExpectRainError(EditRain("km_to: 6", "km_to: 12"), 49, "catchments[city].km_to",
                  "lies outside reach 'a'");
  ExpectRainError(EditRain("km_to: 6", "km_to: 2"), 49, "catchments[city].km_to",
                  "km_to must be >= km_from");
  ExpectRainError(EditRain("sewer_plant: plant", "sewer_plant: spill"), 53,
                  "catchments[city].sewer_plant", "expected a treatment_plant");
  ExpectRainError(EditRain("sewered_fraction: 0.6", "sewered_fraction: 1.6"), 54,
                  "catchments[city].sewered_fraction", "a fraction between 0 and 1");
  ExpectRainError(EditRain("overflow_at: spill", "overflow_at: plant"), 38,
                  "sources[plant].overflow_at", "expected a storm_overflow");
  ExpectRainError(EditRain("to: 2024-05-31", "to: 2024-05-01"), 40,
                  "sources[plant].operations[0].to", "is before start date");
  ExpectRainError(EditRain("buffer_tank_m3: {value: 20000", "buffer_tank_m3: {value: -1"), 36,
                  "sources[plant].buffer_tank_m3", "expected a finite number >= 0");
  ExpectRainError(EditRain("{depth_m: 2.5, area_km2: 2.5, outflow_m3s: 20}",
                           "{depth_m: 1.0, area_km2: 2.5, outflow_m3s: 20}"),
                  22, "lakes[lk].levels[2].depth_m", "depths must increase");
  ExpectRainError(EditRain("{depth_m: 1.5, area_km2: 2, outflow_m3s: 0}",
                           "{depth_m: 1.5, area_km2: 2, outflow_m3s: 30}"),
                  22, "lakes[lk].levels[2].outflow_m3s", "outflow must not decrease");
  ExpectRainError(EditRain("{depth_m: 0, area_km2: 1, outflow_m3s: 0}",
                           "{depth_m: 0, area_km2: 1, outflow_m3s: 1}"),
                  20, "lakes[lk].levels[0].outflow_m3s",
                  "the first (lowest) row must have outflow 0");
}

}  // namespace
}  // namespace qingshui
