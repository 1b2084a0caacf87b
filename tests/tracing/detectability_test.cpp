// What the routine sampling can see (issue #21 item 5; docs/tracing.md §12, "Detectability"):
// the table's logic (a larger release is never less detectable, a source just above a
// section is seen at a small mass, bounded below by plug-flow dilution), its agreement with
// the network's full simulation sampled by the same first-alarm rule, invalid options, and
// `qingshui check --detectability`.
#include "qingshui/tracing/detectability.h"

#include <gtest/gtest.h>

#include <cmath>

#include "qingshui/core/error.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/scenario.h"
#include "test_paths.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;  // tests/tracing/tracing_fixtures.h
using fixtures::Priors;

DetectabilityOptions AprilOptions() {
  DetectabilityOptions o;
  o.priors = Priors();
  o.dates = {"2024-04-15"};
  return o;
}

TEST(Detectability, LargerReleasesAreNeverLessDetectable) {
  DetectabilityOptions o = AprilOptions();
  o.dates = {"2024-04-15", "2024-06-15"};
  const DetectabilityTable t = Detectability(Default(), o);
  ASSERT_EQ(t.rows.size(), 2 * Default().sources.size());
  EXPECT_EQ(t.stations.size(), 14u);  // every station but the two outfall monitors
  EXPECT_EQ(t.baseline_alarms, 0);
  for (const auto& r : t.rows) {
    SCOPED_TRACE(r.source + " " + r.date);
    ASSERT_EQ(r.rungs.size(), o.masses_kg.size());
    for (size_t i = 1; i < r.rungs.size(); ++i) {
      const DetectabilityRung& a = r.rungs[i - 1];
      const DetectabilityRung& b = r.rungs[i];
      EXPECT_GE(b.phases_alarmed, a.phases_alarmed) << b.mass_kg;
      // Seen no later: the alarms of a smaller release are alarms of a larger one too.
      if (a.phases_alarmed == o.phases && b.phases_alarmed == o.phases) {
        EXPECT_LE(b.delay_max_s, a.delay_max_s + 1e-6) << b.mass_kg;
      }
      if (a.phases_alarmed > 0) EXPECT_LE(b.delay_min_s, a.delay_min_s + 1e-6) << b.mass_kg;
    }
    if (r.always >= 0) {
      ASSERT_GE(r.sometimes, 0);
      EXPECT_LE(r.sometimes, r.always);
      EXPECT_FALSE(r.rungs[r.always].station.empty());
      EXPECT_GT(r.rungs[r.always].delay_min_s, 0.0);
      EXPECT_LE(r.rungs[r.always].delay_max_s, o.horizon_s);
    }
    // Every source of the default network has a section below it.
    EXPECT_FALSE(r.first_section.empty());
  }
}

// A source 1 km above Zhangliuzhuang, COD alone: an alarm needs the plume to add half the
// baseline b at the section; a release M spread over d can add at most M / (Q d) (dispersion
// and decay only lower the peak), so M >= b Q d / 2 — here about 0.13 t. Dispersion over
// 1 km and the 4-hourly sampling cost little more: seen from every start below 4x that.
TEST(Detectability, SourceJustAboveASectionIsSeenAtASmallMass) {
  DetectabilityOptions o = AprilOptions();
  o.use_priors = false;
  o.sources = {"yongji_farmland_drainage"};
  o.masses_kg.clear();
  for (double m = 50; m <= 2000; m *= 1.25) o.masses_kg.push_back(m);
  const DetectabilityTable t = Detectability(Default(), o);
  ASSERT_EQ(t.rows.size(), 1u);
  const DetectabilityRow& r = t.rows[0];
  EXPECT_EQ(r.first_section, "zhangliuzhuang");
  EXPECT_LT(r.travel_time_s, 2 * 3600.0);
  const double plug_kg = r.section_baseline_mg_l * r.section_flow_m3s * o.duration_s / 2 / 1000;
  EXPECT_GT(plug_kg, 50.0);
  EXPECT_LT(plug_kg, 300.0);
  ASSERT_GE(r.always, 0);
  ASSERT_GE(r.sometimes, 0);
  EXPECT_GE(r.rungs[r.sometimes].mass_kg, 0.95 * plug_kg);
  EXPECT_LE(r.rungs[r.always].mass_kg, 4 * plug_kg);
  EXPECT_EQ(r.rungs[r.always].station, "zhangliuzhuang");
  EXPECT_EQ(r.rungs[r.always].species, "COD");
  // The first routine sample after the plume arrives: within one interval plus the travel.
  EXPECT_LE(r.rungs[r.always].delay_max_s, o.sampling_interval_s + r.travel_time_s + 3600.0);

  // Further from the sections costs mass: 45 h above the Linyi/Yongji section needs more
  // than 13 h above it (the same reach, decay and storage on the way).
  o.use_priors = true;
  o.sources = {"linjin_wwtp", "linyi_shouchuang_2_wwtp"};
  o.masses_kg = AprilOptions().masses_kg;
  const DetectabilityTable far = Detectability(Default(), o);
  ASSERT_EQ(far.rows.size(), 2u);
  ASSERT_GE(far.rows[0].always, 0);
  ASSERT_GE(far.rows[1].always, 0);
  EXPECT_LT(far.rows[0].travel_time_s, far.rows[1].travel_time_s);
  EXPECT_LT(far.rows[0].always, far.rows[1].always);
}

// The table's forward model (kernels on the simulated baseline) against the network's full
// simulation with the release in it (RunScenario), both sampled by the same rule: the release
// begins at a routine sample (one start per interval). Near the threshold the kernels' few
// per cent can move an alarm by one rung or one sample, no more.
TEST(Detectability, AgreesWithTheFullSimulation) {
  DetectabilityOptions o = AprilOptions();
  o.phases = 1;
  o.horizon_s = 3 * 86400.0;  // these three alarm within 1.5 days
  o.sources = {"chengdong_wwtp", "jishan_wwtp", "yongji_city_wwtp"};
  o.masses_kg = {300, 1000, 3000};
  const DetectabilityTable t = Detectability(Default(), o);
  ASSERT_EQ(t.rows.size(), 3u);
  const int window_n = 6;
  for (const auto& r : t.rows) {
    int engine_first = -1;  // first rung the full simulation alarms at
    for (size_t i = 0; i < o.masses_kg.size(); ++i) {
      const double m = o.masses_kg[i];
      std::string text = "start: 2024-04-15T00:00+08:00\nend: 2024-04-19T04:00+08:00\n";
      text += "events:\n  - {source: " + r.source +
              ", start: 2024-04-16T00:00+08:00, duration_h: 3, mass_kg: {";
      text += "COD: " + std::to_string(m);
      for (const char* sp : {"NH3N", "TP"}) {
        text += std::string(", ") + sp + ": " +
                std::to_string(m * Priors().Ratio(r.kind, sp, "COD").median);
      }
      text += "}}\nsampling: {interval_h: 4, noise: 0, stations: sections}\n";
      const ScenarioRun run = RunScenario(Default(), ParseScenario(text, "drill.yaml", Default()));
      // Series per station and species, time-major in the run.
      std::map<std::pair<std::string, std::string>, std::vector<double>> series;
      std::vector<double> times;
      for (size_t j = 0; j < run.observations.size(); ++j) {
        const Observation& ob = run.observations[j];
        if (ob.species == "F") continue;
        series[{ob.station, ob.species}].push_back(run.exact_mg_l[j]);
        if (times.empty() || ob.time_s > times.back()) times.push_back(ob.time_s);
      }
      double first = INFINITY;
      std::string station;
      for (const auto& kv : series) {
        for (int n = window_n + 1; n < static_cast<int>(kv.second.size()); ++n) {
          if (AlarmAt(kv.second, n, window_n, 1.5)) {
            if (times[n] < first) {
              first = times[n];
              station = kv.first.first;
            }
            break;
          }
        }
      }
      const DetectabilityRung& g = r.rungs[i];
      SCOPED_TRACE(r.source + " " + std::to_string(m) + " kg");
      if (std::isfinite(first) && engine_first < 0) engine_first = static_cast<int>(i);
      if (std::isfinite(first) && g.phases_alarmed == 1) {
        double t0 = 0;
        ASSERT_TRUE(ParseIsoTime("2024-04-16T00:00+08:00", &t0));
        EXPECT_NEAR(g.delay_min_s, first - t0, 4 * 3600.0 + 1);
        if (std::abs(g.delay_min_s - (first - t0)) < 1) EXPECT_EQ(g.station, station);
      }
    }
    SCOPED_TRACE(r.source);
    ASSERT_GE(engine_first, 0);
    ASSERT_GE(r.always, 0);
    EXPECT_LE(std::abs(engine_first - r.always), 1);
  }
}

TEST(Detectability, InvalidOptionsAreNamed) {
  auto expect_error = [](const DetectabilityOptions& o, const std::string& what) {
    try {
      Detectability(Default(), o);
      ADD_FAILURE() << "no error for " << what;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  DetectabilityOptions o = AprilOptions();
  o.masses_kg = {1000, 300};
  expect_error(o, "masses_kg: expected increasing");
  o = AprilOptions();
  o.masses_kg = {};
  expect_error(o, "masses_kg");
  o = AprilOptions();
  o.masses_kg = {-1};
  expect_error(o, "masses_kg");
  o = AprilOptions();
  o.dates = {};
  expect_error(o, "dates");
  o = AprilOptions();
  o.dates = {"2024-13-45"};
  expect_error(o, "2024-13-45");
  o = AprilOptions();
  o.sources = {"no_such_plant"};
  expect_error(o, "unknown source 'no_such_plant'");
  o = AprilOptions();
  o.stations = {"no_such_section"};
  expect_error(o, "unknown station 'no_such_section'");
  o = AprilOptions();
  o.reference_species = "BOD5";
  expect_error(o, "'BOD5'");
  o = AprilOptions();
  o.alarm_ratio = 1.0;
  expect_error(o, "alarm_ratio");
  o = AprilOptions();
  o.median_window_s = 3600;
  expect_error(o, "median_window_s");
  o = AprilOptions();
  o.phases = 0;
  expect_error(o, "phases");

  const std::vector<double> v = {1, 1, 1, 2};
  EXPECT_TRUE(AlarmAt(v, 3, 3, 1.5));
  EXPECT_FALSE(AlarmAt(v, 3, 3, 2.0));
  EXPECT_THROW(AlarmAt(v, 2, 3, 1.5), std::invalid_argument);
}

TEST(CheckCommand, DetectabilityTable) {
  std::string out;
  int code = testing::RunCommand(testing::CliPath() +
                                     " check --detectability --dates 2024-06-15 --sources "
                                     "chengdong_wwtp,wanrong_rongbi_wwtp --masses-t 0.3,1,3,10",
                                 &out);
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("valid\n"), std::string::npos) << out;
  EXPECT_NE(out.find("chengdong_wwtp "), std::string::npos) << out;
  EXPECT_NE(out.find("wet 06-15"), std::string::npos) << out;
  EXPECT_NE(out.find("sushui_yanhu_linyi"), std::string::npos) << out;
  EXPECT_NE(out.find("masses (t): 0.3 1 3 10"), std::string::npos) << out;

  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " check --dates 2024-06-15", &out), 2);
  EXPECT_NE(out.find("--detectability"), std::string::npos) << out;
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " check --detectability --masses-t 1,x", &out),
            2);
  EXPECT_NE(out.find("--masses-t: expected a number, got 'x'"), std::string::npos) << out;
  EXPECT_EQ(
      testing::RunCommand(testing::CliPath() + " check --detectability --sources nowhere", &out),
      2);
  EXPECT_NE(out.find("unknown source 'nowhere'"), std::string::npos) << out;
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " check --detectability --dates", &out), 2);
}

}  // namespace
}  // namespace qingshui::tracing
