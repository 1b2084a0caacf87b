// Network files: parsing, round trip, and one test per kind of invalid input. Every error
// must name the file, the line and the field, because a person has to find and fix it.
#include "qingshui/core/network.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "qingshui/core/error.h"
#include "test_paths.h"

namespace qingshui {
namespace {

// A small valid network: a main stem split by an in-line lake, a tributary, one outlet.
// Line numbers below refer to this text (line 1 is "format: ...").
const char* kMinimal = R"(format: qingshui-network
version: 1
name: test river
species:
  - {id: COD, name_zh: 化学需氧量, name_en: chemical oxygen demand, decay_per_day_20c: {value: 0.2, src: "S: test"}, theta: 1.047}
  - {id: NH3N, name_zh: 氨氮, name_en: ammonia nitrogen, decay_per_day_20c: 0.1}
rivers:
  - {id: main, name_zh: 主河, name_en: Main river}
  - {id: trib, name_zh: 支流, name_en: Tributary}
reaches:
  - id: upper
    name_zh: 上游
    name_en: upper main
    river: main
    length_km: 10
    segment_length_m: 500
    downstream: lake
    geometry: {bottom_width_m: 10, side_slope: 2, manning_n: 0.03, bed_slope: 0.001}
    headwater:
      dry: {flow_m3s: 0.5, concentration_mg_l: {COD: 10, NH3N: 0.5}}
  - id: tribr
    name_zh: 支流段
    name_en: tributary reach
    river: trib
    length_km: 4
    segment_length_m: 400
    downstream: lake
    geometry: {bottom_width_m: 5, manning_n: 0.035, bed_slope: 0.002}
  - id: lower
    name_zh: 下游
    name_en: lower main
    river: main
    start_km: 12
    length_km: 8.2
    segment_length_m: 500
    downstream: mouth
    geometry: {bottom_width_m: 20, side_slope: 1, manning_n: 0.03, bed_slope: 0.0005}
    storage: {area_ratio: 0.2, exchange_per_s: 1.0e-4}
lakes:
  - {id: lake, name_zh: 湖, name_en: Lake, src: "E: test", area_km2: 2, mean_depth_m: 1.5, downstream: lower}
outlets:
  - {id: mouth, name_zh: 河口, name_en: mouth}
sources:
  - id: plant
    name_zh: 污水厂
    name_en: plant
    src: "E: test"
    kind: treatment_plant
    reach: upper
    km: 6
    design_flow_m3s: 0.116
    effluent_mg_l: {COD: 40, NH3N: 2}
    online: 2024-06-01
    via: wet
  - {id: wet, name_zh: 湿地, name_en: wetland, src: "E: test", kind: wetland, reach: upper, km: 6.5, design_flow_m3s: 0.116, removal: {COD: 0.3}}
stations:
  - {id: sec, name_zh: 断面, name_en: section, src: "E: test", kind: assessment_section, reach: lower, km: 18, sampling_interval_h: 4, target_class: III}
)";

Network Parse(const std::string& text) { return ParseNetwork(text, "net.yaml"); }

// Replaces the first occurrence of `from` in the minimal network.
std::string Edit(const std::string& from, const std::string& to) {
  std::string text = kMinimal;
  size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// Parses `text`, expects a ConfigError whose message contains "net.yaml:LINE:" and every
// given fragment.
void ExpectError(const std::string& text, int line, std::initializer_list<std::string> fragments) {
  try {
    Parse(text);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    const std::string message = e.what();
    if (line > 0) {
      EXPECT_NE(message.find("net.yaml:" + std::to_string(line) + ":"), std::string::npos)
          << message;
    } else {
      EXPECT_EQ(message.rfind("net.yaml", 0), 0u) << message;
    }
    for (const auto& f : fragments) EXPECT_NE(message.find(f), std::string::npos) << message;
  }
}

TEST(NetworkParse, MinimalNetworkIsReadWithUnitsConverted) {
  const Network net = Parse(kMinimal);
  ASSERT_EQ(net.reaches.size(), 3u);
  const Reach* lower = net.FindReach("lower");
  ASSERT_NE(lower, nullptr);
  EXPECT_DOUBLE_EQ(lower->length_m, 8200.0);
  EXPECT_DOUBLE_EQ(lower->end_km(), 20.2);
  EXPECT_EQ(lower->segment_count(), 17);  // ceil(8200 / 500)
  ASSERT_TRUE(lower->storage.has_value());
  EXPECT_DOUBLE_EQ(lower->storage->exchange_per_s, 1e-4);
  EXPECT_DOUBLE_EQ(net.FindSpecies("COD")->decay_per_s, 0.2 / 86400.0);
  EXPECT_DOUBLE_EQ(net.lakes[0].volume_m3(), 2e6 * 1.5);
  EXPECT_EQ(net.FindSource("plant")->via, "wet");
  EXPECT_EQ(net.FindSource("wet")->kind, SourceKind::kWetland);
  EXPECT_DOUBLE_EQ(net.FindStation("sec")->sampling_interval_s, 4 * 3600.0);
  EXPECT_DOUBLE_EQ(net.FindReach("upper")->headwater.at("dry").concentration_mg_l.at("NH3N"), 0.5);
}

TEST(NetworkParse, TopologyOrdersReachesUpstreamFirstThroughTheLake) {
  const Network net = Parse(kMinimal);
  const auto order = net.ReachesUpstreamFirst();
  ASSERT_EQ(order.size(), 3u);
  EXPECT_EQ(order.back(), "lower");
  EXPECT_TRUE(net.FlowsTo("upper", 6, "lower", 18));
  EXPECT_TRUE(net.FlowsTo("tribr", 1, "lower", 18));
  EXPECT_FALSE(net.FlowsTo("lower", 18, "upper", 6));
  EXPECT_FALSE(net.FlowsTo("upper", 6, "upper", 5));
  auto up = net.UpstreamReaches("lower");
  EXPECT_EQ(up.size(), 3u);
}

TEST(NetworkParse, SummaryCountsSegmentsSourcesAndProvenance) {
  const NetworkSummary s = Parse(kMinimal).Summary();
  EXPECT_EQ(s.reach_count, 3);
  EXPECT_NEAR(s.total_length_km, 22.2, 1e-12);
  EXPECT_EQ(s.segment_count, 20 + 10 + 17);
  EXPECT_EQ(s.sources_by_kind.at("treatment_plant"), 1);
  EXPECT_EQ(s.sources_by_kind.at("wetland"), 1);
  // Only COD's decay rate carries a src in the fixture.
  EXPECT_EQ(s.numbers_total - s.numbers_without_provenance, 1);
}

TEST(NetworkParse, RoundTripKeepsEveryValueAndProvenance) {
  const Network a = Parse(kMinimal);
  const std::string yaml = WriteNetworkYaml(a);
  const Network b = Parse(yaml);
  EXPECT_EQ(WriteNetworkYaml(b), yaml);
  ASSERT_EQ(a.sources.size(), b.sources.size());
  for (size_t i = 0; i < a.sources.size(); ++i) {
    EXPECT_EQ(a.sources[i].id, b.sources[i].id);
    EXPECT_DOUBLE_EQ(a.sources[i].km, b.sources[i].km);
    EXPECT_EQ(a.sources[i].effluent_mg_l, b.sources[i].effluent_mg_l);
  }
  EXPECT_DOUBLE_EQ(a.FindSpecies("COD")->decay_per_s, b.FindSpecies("COD")->decay_per_s);
  // Defaults are written out explicitly, so b may hold more plain numbers; every number
  // that carried provenance keeps it, under the same path.
  auto with_src = [](const Network& n) {
    std::map<std::string, std::string> out;
    for (const auto& p : n.provenance) {
      if (p.kind != '?') out[p.path] = std::string(1, p.kind) + p.text;
    }
    return out;
  };
  EXPECT_EQ(with_src(a), with_src(b));
  EXPECT_FALSE(with_src(a).empty());
}

// --- one test per validation error kind -------------------------------------------------

TEST(NetworkErrors, MalformedYamlNamesTheLine) {
  ExpectError(Edit("    river: trib\n", "    river: [trib\n"), 0, {"malformed YAML"});
}

TEST(NetworkErrors, UnknownKey) {
  ExpectError(Edit("    river: trib\n", "    river: trib\n    lenght_km: 4\n"), 25,
              {"reaches[tribr].lenght_km", "unknown key"});
}

TEST(NetworkErrors, DuplicateKeyInOneMap) {
  ExpectError(Edit("    river: trib\n", "    river: trib\n    river: main\n"), 25,
              {"reaches[tribr].river", "twice"});
}

TEST(NetworkErrors, DuplicateId) {
  ExpectError(Edit("  - id: tribr\n", "  - id: upper\n"), 21, {"duplicate id 'upper'"});
}

TEST(NetworkErrors, DuplicateIdAcrossReachesAndLakes) {
  ExpectError(Edit("{id: lake,", "{id: lower,"), 0, {"duplicate id 'lower'"});
}

TEST(NetworkErrors, UnknownReferenceInSource) {
  ExpectError(Edit("    reach: upper\n    km: 6\n", "    reach: uper\n    km: 6\n"), 49,
              {"sources[plant].reach", "unknown reach 'uper'", "known: upper"});
}

TEST(NetworkErrors, UnknownDownstream) {
  ExpectError(Edit("    downstream: mouth\n", "    downstream: sea\n"), 36,
              {"reaches[lower].downstream", "unknown reach, lake or outlet 'sea'"});
}

TEST(NetworkErrors, ViaMustBeAWetland) {
  ExpectError(Edit("    via: wet\n", "    via: plant\n"), 54, {"sources[plant].via", "wetland"});
}

TEST(NetworkErrors, ObjectBeyondTheReachEnd) {
  ExpectError(Edit("reach: lower, km: 18,", "reach: lower, km: 21,"), 57,
              {"stations[sec].km", "outside reach 'lower'", "12 to 20.2"});
}

TEST(NetworkErrors, ObjectBeforeTheReachStart) {
  ExpectError(Edit("reach: lower, km: 18,", "reach: lower, km: 11.9,"), 57,
              {"stations[sec].km", "outside reach"});
}

TEST(NetworkErrors, Cycle) {
  // lower drains back into upper: upper -> lake -> lower -> upper.
  ExpectError(Edit("    downstream: mouth\n", "    downstream: upper\n"), 0, {"cycle"});
}

TEST(NetworkErrors, DisconnectedReach) {
  // The lake has no outlet any more: everything above it drains nowhere, and the outlet
  // receives nothing.
  ExpectError(Edit(", downstream: lower}", "}"), 0, {"disconnected"});
}

TEST(NetworkErrors, NegativeLength) {
  ExpectError(Edit("    length_km: 4\n", "    length_km: -4\n"), 25,
              {"reaches[tribr].length_km", "> 0", "-4"});
}

TEST(NetworkErrors, NaNFlow) {
  ExpectError(Edit("design_flow_m3s: 0.116\n", "design_flow_m3s: .nan\n"), 51,
              {"sources[plant].design_flow_m3s", "finite"});
}

TEST(NetworkErrors, NegativeRate) {
  ExpectError(Edit("decay_per_day_20c: 0.1}", "decay_per_day_20c: -0.1}"), 6,
              {"species[NH3N].decay_per_day_20c", ">= 0"});
}

TEST(NetworkErrors, TextWhereANumberBelongs) {
  ExpectError(Edit("    segment_length_m: 400\n", "    segment_length_m: four hundred\n"), 26,
              {"reaches[tribr].segment_length_m", "found 'four hundred'"});
}

TEST(NetworkErrors, RemovalFractionAboveOne) {
  ExpectError(Edit("removal: {COD: 0.3}", "removal: {COD: 1.3}"), 55,
              {"sources[wet].removal.COD", "between 0 and 1"});
}

TEST(NetworkErrors, InLineTreatmentLakeCannotRemoveEverything) {
  ExpectError(Edit("mean_depth_m: 1.5, downstream: lower}",
                   "mean_depth_m: 1.5, downstream: lower, role: treatment, removal: {COD: 1}}"),
              40, {"lakes[lake].removal.COD", "below 1"});
}

TEST(NetworkErrors, UnknownSpecies) {
  ExpectError(Edit("effluent_mg_l: {COD: 40, NH3N: 2}", "effluent_mg_l: {COD: 40, NH4: 2}"), 52,
              {"sources[plant].effluent_mg_l.NH4", "unknown species 'NH4'", "COD, NH3N"});
}

TEST(NetworkErrors, UnknownSourceKind) {
  ExpectError(Edit("kind: treatment_plant", "kind: sewage_plant"), 48,
              {"sources[plant].kind", "sewage_plant", "treatment_plant"});
}

TEST(NetworkErrors, MalformedDate) {
  ExpectError(Edit("online: 2024-06-01", "online: 2024-02-30"), 53,
              {"sources[plant].online", "YYYY-MM-DD"});
}

TEST(NetworkErrors, MissingRequiredField) {
  ExpectError(Edit("    downstream: lake\n    geometry: {bottom_width_m: 5,",
                   "    geometry: {bottom_width_m: 5,"),
              21, {"reaches[tribr].downstream", "required"});
}

TEST(NetworkErrors, ProvenanceMustSaySourceOrEstimate) {
  ExpectError(Edit("src: \"S: test\"}", "src: \"from a book\"}"), 5,
              {"species[COD].decay_per_day_20c.src", "'S:'"});
}

TEST(NetworkErrors, UnsupportedVersion) {
  ExpectError(Edit("version: 1", "version: 7"), 2, {"version 7"});
}

TEST(NetworkErrors, NotAMapAtTheTop) {
  ExpectError("- just\n- a list\n", 1, {"expected a map"});
}

TEST(NetworkErrors, MissingFileIsAConfigError) {
  EXPECT_THROW(LoadNetwork("/nonexistent/network.yaml"), ConfigError);
}

// --- the shipped data ----------------------------------------------------------------

TEST(Standards, Gb3838ClassifiesByTheWorstMatchingClass) {
  const Standard s = LoadStandard(testing::SourcePath("data/standards/gb3838-2002.yaml"));
  ASSERT_EQ(s.classes.size(), 5u);
  // GB 3838-2002 Table 1: NH3-N III ≤ 1.0, IV ≤ 1.5; COD I/II ≤ 15; DO is a lower bound.
  EXPECT_EQ(s.classes[s.Classify("NH3N", 1.0)], "III");
  EXPECT_EQ(s.classes[s.Classify("NH3N", 1.01)], "IV");
  EXPECT_EQ(s.Classify("NH3N", 2.5), 5);  // worse than V
  EXPECT_EQ(s.classes[s.Classify("COD", 15)], "I");
  EXPECT_EQ(s.classes[s.Classify("TP", 0.25)], "IV");
  EXPECT_EQ(s.classes[s.Classify("DO", 5.5)], "III");
}

TEST(DefaultNetwork, ValidatesWithBothSectionsAndFullProvenance) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  const Station* z = net.FindStation("zhangliuzhuang");
  const Station* m = net.FindStation("miaoqian");
  ASSERT_NE(z, nullptr);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(z->kind, "assessment_section");
  EXPECT_EQ(m->kind, "assessment_section");
  EXPECT_EQ(z->target_class, "III");
  EXPECT_NEAR(m->km, 145.2, 1e-9);  // Miaoqian is at the mouth of the 145.2 km Fen reach
  for (const char* sp : {"COD", "NH3N", "TP", "F"}) EXPECT_NE(net.FindSpecies(sp), nullptr) << sp;
  ASSERT_TRUE(net.standard.has_value());
  const NetworkSummary s = net.Summary();
  EXPECT_EQ(s.numbers_without_provenance, 0);
  EXPECT_GT(s.numbers_total, 100);
  // Every station and source says where it comes from.
  for (const auto& st : net.stations) EXPECT_FALSE(st.src.empty()) << st.id;
  for (const auto& so : net.sources) EXPECT_FALSE(so.src.empty()) << so.id;
  // Both sections see water from upstream sources, and not from the other river.
  EXPECT_TRUE(net.FlowsTo("sushui_upper", 100, z->reach, z->km) ||
              !net.FindReach("sushui_upper"));
}

TEST(DefaultNetwork, HasTheSushuiAndFenAtTheBriefsLengths) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  std::map<std::string, double> max_km;
  for (const auto& r : net.reaches) max_km[r.river] = std::max(max_km[r.river], r.end_km());
  // Domain brief §3: Sushui 195-200 km; Yaoxian canal ~86 km; Fen reach 145.2 km.
  EXPECT_GE(max_km["sushui"], 190.0);
  EXPECT_LE(max_km["sushui"], 200.0);
  EXPECT_NEAR(max_km["yaoxian"], 86.0, 5.0);
  EXPECT_NEAR(max_km["fen"], 145.2, 1e-9);
  EXPECT_EQ(net.outlets.size(), 2u);
}

TEST(DefaultNetwork, ContainsEverySourceTheBriefNames) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  // Chinese names from the domain brief §1 (the seed's measures). Each must appear in some
  // source's or lake's name_zh.
  const std::vector<std::string> named = {
      "城西污水处理厂", "城东污水处理厂", "开发区", "城西机电产业园", "临晋", "首创第二",
      "楚侯", "丰喜", "永济市城区", "永济经济技术开发区", "新大桥东", "新绛县城区",
      "新绛经济技术开发区", "河津市第二", "河津经济技术开发区", "荣碧", "稷山",
      "北门滩", "鸭子池", "西塬湖", "伍姓湖", "排碱"};
  for (const auto& fragment : named) {
    bool found = false;
    for (const auto& s : net.sources) found = found || s.name_zh.find(fragment) != std::string::npos;
    for (const auto& l : net.lakes) found = found || l.name_zh.find(fragment) != std::string::npos;
    EXPECT_TRUE(found) << "no source or lake named like " << fragment;
  }
  // The two tracing instruments of the seed are outfall monitors watching a source.
  int monitors = 0;
  for (const auto& st : net.stations) {
    if (st.kind == "outfall_monitor") {
      ++monitors;
      EXPECT_NE(net.FindSource(st.monitors), nullptr) << st.id;
    }
  }
  EXPECT_EQ(monitors, 2);
}

// --- the command line ----------------------------------------------------------------

TEST(CheckCommand, DefaultNetworkNamesBothSections) {
  std::string out;
  int code = testing::RunCommand(
      testing::CliPath() + " check " + testing::SourcePath("data/yuncheng/network.yaml"), &out);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("zhangliuzhuang"), std::string::npos) << out;
  EXPECT_NE(out.find("miaoqian"), std::string::npos) << out;
  EXPECT_NE(out.find("张留庄"), std::string::npos) << out;
  EXPECT_NE(out.find("valid"), std::string::npos) << out;
}

TEST(CheckCommand, BrokenNetworkGivesOneLineWithFileAndLineAndExitCode2) {
  const std::string dir = testing::TempDir("check");
  const std::string path = dir + "/broken.yaml";
  std::ofstream(path) << Edit("    length_km: 4\n", "    length_km: -4\n");
  std::string out;
  int code = testing::RunCommand(testing::CliPath() + " check " + path, &out);
  EXPECT_EQ(code, 2) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  EXPECT_NE(out.find(path + ":25: reaches[tribr].length_km"), std::string::npos) << out;
}

TEST(CheckCommand, UnknownCommandAndOptionAreUsageErrors) {
  std::string out;
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " chek", &out), 2);
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " check --bogus", &out), 2);
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " check /nonexistent.yaml", &out), 2);
  EXPECT_NE(out.find("/nonexistent.yaml"), std::string::npos) << out;
}

}  // namespace
}  // namespace qingshui
