// Mobile samples (issue #16): observations at any river point (reach, km) beside station
// samples.
//  * The CSV reader takes the station, point and mixed layouts; bad rows name file, line and
//    field; the writer keeps the station-only form unchanged and round-trips the others.
//  * A point is a virtual station: its kernels equal a station's at the same place.
//  * `sampling: {points: [...]}` in scenarios; a drill observed only at two points recovers
//    the release; `qingshui simulate` -> `qingshui trace` round trip with a mixed file.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "qingshui/core/error.h"
#include "qingshui/tracing/kernels.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"
#include "test_paths.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;
using fixtures::Priors;

std::string CsvError(const std::string& text) {
  try {
    ParseObservationsCsv(text, "obs.csv");
  } catch (const DataError& e) {
    return e.what();
  }
  return "no error";
}

TEST(PointObservationsCsv, ReadsPointAndMixedLayouts) {
  const ObservationSet pts = ParseObservationsCsv(
      "time,reach,km,species,value\n2024-04-15T04:00+08:00,fen_lower,55.5,COD,21\n", "p.csv");
  ASSERT_EQ(pts.rows.size(), 1u);
  EXPECT_TRUE(pts.rows[0].IsPoint());
  EXPECT_EQ(pts.rows[0].reach, "fen_lower");
  EXPECT_EQ(pts.rows[0].km, 55.5);
  EXPECT_EQ(SiteLabel(pts.rows[0]), "fen_lower:55.5");

  const ObservationSet mixed = ParseObservationsCsv(
      "species,km,time,value,reach,station\n"  // any column order
      "COD,,2024-04-15T04:00+08:00,20,,miaoqian\n"
      "TP,100,2024-04-15T04:00+08:00,0.2,fen_lower,\n",
      "m.csv");
  ASSERT_EQ(mixed.rows.size(), 2u);
  EXPECT_FALSE(mixed.rows[0].IsPoint());
  EXPECT_EQ(mixed.rows[0].station, "miaoqian");
  EXPECT_TRUE(std::isnan(mixed.rows[0].km));
  EXPECT_TRUE(mixed.rows[1].IsPoint());
  EXPECT_EQ(mixed.rows[1].km, 100.0);
  EXPECT_EQ(mixed.rows[1].line, 3);

  // A lone reach column beside station is an extra column, as before.
  const ObservationSet extra = ParseObservationsCsv(
      "time,station,species,value,reach\n2024-04-15,miaoqian,COD,1,fen_lower\n", "e.csv");
  EXPECT_FALSE(extra.rows[0].IsPoint());
}

TEST(PointObservationsCsv, ErrorsNameFileLineAndField) {
  const std::string mixed = "time,station,reach,km,species,value\n";
  EXPECT_EQ(CsvError(mixed + "2024-04-15,miaoqian,fen_lower,10,COD,1\n"),
            "obs.csv:2: reach: give either a station or reach and km, not both (station "
            "'miaoqian')");
  EXPECT_EQ(CsvError(mixed + "2024-04-15,,,,COD,1\n"),
            "obs.csv:2: station: empty: give a station, or reach and km");
  EXPECT_EQ(CsvError(mixed + "2024-04-15,,fen_lower,,COD,1\n"),
            "obs.csv:2: km: empty (a point sample needs reach and km)");
  EXPECT_EQ(CsvError(mixed + "2024-04-15,,,12,COD,1\n"),
            "obs.csv:2: reach: empty (a point sample needs reach and km)");
  const std::string pts = "time,reach,km,species,value\n";
  EXPECT_EQ(CsvError(pts + "2024-04-15,fen_lower,ten,COD,1\n"),
            "obs.csv:2: km: expected a finite number (river-km along the reach), got 'ten'");
  EXPECT_EQ(CsvError(pts + "# c\n2024-04-15,fen_lower,nan,COD,1\n"),
            "obs.csv:3: km: expected a finite number (river-km along the reach), got 'nan'");
  EXPECT_EQ(CsvError(pts + "2024-04-15,fen_lower,10,COD,nan\n"),
            "obs.csv:2: value: expected a finite concentration >= 0 (mg/L), got 'nan'");
  EXPECT_EQ(CsvError(pts + "2024-04-15,fen_lower,10,COD,-0.5\n"),
            "obs.csv:2: value: expected a finite concentration >= 0 (mg/L), got '-0.5'");
  EXPECT_NE(CsvError("time,reach,species,value\n").find("obs.csv:1: km: missing column"),
            std::string::npos);
  EXPECT_NE(CsvError("time,species,value\n").find("obs.csv:1: station: missing column"),
            std::string::npos);
}

TEST(PointObservationsCsv, WriterKeepsTheStationFormAndRoundTripsPoints) {
  std::vector<Observation> rows;
  rows.push_back({1.7e9, "miaoqian", "COD", 21.5, 0});
  EXPECT_EQ(FormatObservationsCsv(rows).substr(0, 27), "time,station,species,value\n");
  Observation p;
  p.time_s = 1.7e9 + 3600;
  p.reach = "fen_lower";
  p.km = 0.1 + 0.2;  // shortest text that reads back exactly
  p.species = "NH3N";
  p.value_mg_l = 0.75;
  const std::string only_points = FormatObservationsCsv({p});
  EXPECT_EQ(only_points.substr(0, only_points.find('\n')), "time,reach,km,species,value");
  rows.push_back(p);
  const std::string both = FormatObservationsCsv(rows);
  EXPECT_EQ(both.substr(0, both.find('\n')), "time,station,reach,km,species,value");
  for (const std::string& text : {only_points, both}) {
    const ObservationSet back = ParseObservationsCsv(text, "x.csv");
    const Observation& q = back.rows.back();
    EXPECT_EQ(q.reach, p.reach);
    EXPECT_EQ(q.km, p.km);
    EXPECT_EQ(q.species, p.species);
    EXPECT_EQ(q.value_mg_l, p.value_mg_l);
    EXPECT_TRUE(q.station.empty());
  }
  EXPECT_EQ(ParseObservationsCsv(both, "x.csv").rows[0].station, "miaoqian");
}

TEST(PointKernels, APointAtAStationHasTheStationsKernels) {
  const Network& net = Default();
  const Station* hejin = net.FindStation("hejin_bridge");
  ASSERT_NE(hejin, nullptr);
  KernelOptions ko;
  ko.date = "2024-04-15";
  ko.species = {"COD"};
  ko.horizon_s = 3 * 86400.0;
  ko.sampling_points.push_back({PointLabel(hejin->reach, hejin->km), hejin->reach, hejin->km});
  ko.sampling_points.push_back({"fen_lower:120", "fen_lower", 120.0});
  const ResponseKernels K = BuildKernels(net, DefaultKernelPoints(net, 0.0), ko);
  ASSERT_EQ(K.num_stations(), K.num_network_stations + 2);
  int s = -1;
  for (int i = 0; i < K.num_network_stations; ++i) {
    if (K.station_ids[i] == "hejin_bridge") s = i;
  }
  ASSERT_GE(s, 0);
  const int v = K.num_network_stations;
  EXPECT_EQ(K.station_ids[v], "fen_lower:90");
  int seen = 0;
  for (int p = 0; p < static_cast<int>(K.points.size()); ++p) {
    ASSERT_EQ(K.Sees(p, s), K.Sees(p, v));
    if (!K.Sees(p, s)) continue;
    ++seen;
    EXPECT_EQ(K.TravelTime(p, s), K.TravelTime(p, v));
    for (int g = 0; g < K.num_tables(); ++g) {
      const double* a = K.Table(p, s, 0, g);
      const double* b = K.Table(p, v, 0, g);
      for (int j = 0; j < K.num_u; ++j) ASSERT_EQ(a[j], b[j]);
    }
  }
  EXPECT_GT(seen, 3);
  // Further down the Fen, later than Hejin bridge for a source above both.
  for (int p = 0; p < static_cast<int>(K.points.size()); ++p) {
    if (K.points[p].source_id == "jishan_wwtp") {
      ASSERT_TRUE(K.Sees(p, v + 1));
      EXPECT_GT(K.TravelTime(p, v + 1), K.TravelTime(p, s));
    }
  }
}

std::string ScenarioError(const std::string& text) {
  try {
    ParseScenario(text, "s.yaml", Default());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(PointScenario, SamplingPointsParseAndErrorsAreLocated) {
  const std::string head = "start: 2024-04-15T00:00+08:00\nend: 2024-04-16T00:00+08:00\n";
  const Scenario sc = ParseScenario(
      head + "sampling: {points: [{reach: fen_lower, km: 55}, {reach: yaoxian, km: 40.5}]}\n",
      "s.yaml", Default());
  ASSERT_EQ(sc.sampling.points.size(), 2u);
  EXPECT_EQ(sc.sampling.points[1].reach, "yaoxian");
  EXPECT_EQ(sc.sampling.points[1].km, 40.5);
  EXPECT_EQ(sc.sampling.stations_keyword, "none");  // points alone: only the points
  const Scenario both =
      ParseScenario(head + "sampling: {stations: sections, points: [{reach: fen_lower, km: 55}]}\n",
                    "s.yaml", Default());
  EXPECT_EQ(both.sampling.stations_keyword, "sections");
  EXPECT_NE(ScenarioError(head + "sampling:\n  points:\n    - {reach: fen, km: 5}\n")
                .find("s.yaml:5: sampling.points[0].reach: unknown reach 'fen'"),
            std::string::npos);
  EXPECT_NE(ScenarioError(head + "sampling:\n  points:\n    - {reach: fen_lower, km: 1}\n")
                .find("s.yaml:5: sampling.points[0].km: km 1 is outside reach fen_lower"),
            std::string::npos);
  EXPECT_NE(ScenarioError(head + "sampling:\n  points:\n    - {reach: fen_lower}\n")
                .find("s.yaml:5: sampling.points[0].km: required"),
            std::string::npos);
  EXPECT_NE(ScenarioError(head + "sampling:\n  points:\n    - {reach: fen_lower, km: 9, x: 1}\n")
                .find("s.yaml:5: sampling.points[0].x: unknown key"),
            std::string::npos);
  EXPECT_NE(ScenarioError(head + "sampling: {points: []}\n")
                .find("s.yaml:3: sampling.points: expected a list of {reach: R, km: X}"),
            std::string::npos);
  EXPECT_NE(ScenarioError(head + "sampling: {stations: none}\n")
                .find("sampling.stations: none and no points: nothing would be sampled"),
            std::string::npos);
}

// A drill seen only by a mobile team: 2 t COD at the Jishan plant (Fen ~km 50), the river 10%
// faster and 30% less dispersive than the tracer assumes, 10% noise, samples every 4 h at two
// points below it and no station at all.
const char* kPointDrill =
    "start: 2024-04-15T00:00+08:00\nend: 2024-04-19T00:00+08:00\n"
    "hydrology: {velocity_factor: 1.1, dispersion_factor: 0.7}\n"
    "events: [{source: jishan_wwtp, start: 2024-04-16T02:00+08:00, duration_h: 3,\n"
    "          mass_kg: {COD: 2000, NH3N: 120, TP: 30}}]\n"
    "sampling:\n  interval_h: 4\n  noise: 0.1\n  seed: 7\n"
    "  points: [{reach: fen_lower, km: 55}, {reach: fen_lower, km: 100}]\n";

TEST(PointTracing, ADrillObservedOnlyAtPointsFindsTheSource) {
  const Network& net = Default();
  const ScenarioRun run = RunScenario(net, ParseScenario(kPointDrill, "drill.yaml", net));
  ObservationSet obs;
  obs.file = "drill";
  obs.rows = run.observations;
  for (const auto& o : obs.rows) ASSERT_TRUE(o.IsPoint());
  TraceOptions options;
  options.priors = Priors();
  const TraceResult r = Trace(net, obs, options);
  EXPECT_EQ(r.summary.num_stations, 2);
  EXPECT_EQ(r.summary.num_points, 2);
  ASSERT_FALSE(r.hypotheses.empty());
  EXPECT_EQ(r.hypotheses[0].label, "jishan_wwtp") << TraceResultTable(r);
  bool in_set = false;
  for (const auto& label : r.credible_set_90) in_set = in_set || label == "jishan_wwtp";
  EXPECT_TRUE(in_set) << TraceResultTable(r);
  // Recommendations stay at network stations (points are the "recommendations anywhere" item).
  for (const auto& n : r.next_samples) EXPECT_NE(net.FindStation(n.station), nullptr);
  EXPECT_NE(TraceResultTable(r).find("samples at 0 stations and 2 river points"),
            std::string::npos);
}

TEST(PointTracing, UnknownReachesAndKmOutsideTheReachAreNamed) {
  ObservationSet obs;
  obs.file = "o.csv";
  obs.rows.push_back({1.7e9, "miaoqian", "COD", 20, 2});
  Observation p;
  p.time_s = 1.7e9 + 3600;
  p.species = "COD";
  p.value_mg_l = 20;
  p.line = 3;
  p.reach = "fen";
  p.km = 10;
  obs.rows.push_back(p);
  TraceOptions options;
  options.priors = Priors();
  auto message = [&]() {
    try {
      Trace(Default(), obs, options);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(), "o.csv:3: reach: unknown reach 'fen' (not in the network)");
  obs.rows[1].reach = "fen_lower";
  obs.rows[1].km = 150;
  EXPECT_EQ(message(), "o.csv:3: km: km 150 is outside reach fen_lower (3 to 145.2)");
}

TEST(PointTracing, SimulateThenTraceRoundTripWithStationsAndPoints) {
  const std::string dir = testing::TempDir("points");
  {
    std::ofstream f(dir + "/s.yaml");
    f << "start: 2024-04-15T00:00+08:00\nend: 2024-04-19T00:00+08:00\n"
         "events: [{source: jishan_wwtp, start: 2024-04-16T02:00+08:00, duration_h: 3,\n"
         "          mass_kg: {COD: 2000, NH3N: 120, TP: 30}}]\n"
         "sampling: {interval_h: 4, noise: 0.1, seed: 3, stations: [miaoqian],\n"
         "           points: [{reach: fen_lower, km: 55}]}\n";
  }
  std::string out;
  ASSERT_EQ(testing::RunCommand(testing::CliPath() + " simulate --scenario " + dir +
                                    "/s.yaml --observations-out " + dir + "/obs.csv",
                                &out),
            0)
      << out;
  std::ifstream f(dir + "/obs.csv");
  std::string header, first, second;
  std::getline(f, header);
  std::getline(f, first);
  for (int i = 0; i < 4; ++i) std::getline(f, second);  // the point's first row
  EXPECT_EQ(header, "time,station,reach,km,species,value");
  EXPECT_EQ(first.rfind("2024-04-15T00:00:00+08:00,miaoqian,,,COD,", 0), 0u) << first;
  EXPECT_EQ(second.rfind("2024-04-15T00:00:00+08:00,,fen_lower,55,COD,", 0), 0u) << second;
  const ObservationSet obs = ReadObservationsCsv(dir + "/obs.csv");
  EXPECT_EQ(obs.rows.size(), 25u * 2u * 4u);  // 25 times x (station + point) x 4 species
  ASSERT_EQ(testing::RunCommand(testing::CliPath() + " trace --observations " + dir +
                                    "/obs.csv --json > " + dir + "/trace.json",
                                &out),
            0)
      << out;
  std::ifstream j(dir + "/trace.json");
  const std::string json((std::istreambuf_iterator<char>(j)), std::istreambuf_iterator<char>());
  EXPECT_NE(json.find("\"stations\": 2, \"points\": 1"), std::string::npos) << json;
  const size_t first_hyp = json.find("\"label\"");
  ASSERT_NE(first_hyp, std::string::npos) << json;
  EXPECT_EQ(json.find("\"label\": \"jishan_wwtp\""), first_hyp) << json;
}

}  // namespace
}  // namespace qingshui::tracing
