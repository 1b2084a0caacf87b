// Synthetic events (`qingshui simulate`): scenario errors name file, line and field; the
// samples come from the network's full run (a release adds nothing before it starts and its
// mass afterwards); the same seed gives the same samples.
#include "qingshui/tracing/scenario.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "qingshui/core/error.h"
#include "test_paths.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;  // tests/tracing/tracing_fixtures.h

std::string ErrorOf(const std::string& text) {
  try {
    ParseScenario(text, "s.yaml", Default());
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

const char* kHead = "start: 2024-04-15T00:00+08:00\nend: 2024-04-16T00:00+08:00\n";

TEST(Scenario, ErrorsNameFileLineAndField) {
  EXPECT_EQ(ErrorOf(std::string(kHead) + "hydrology: {velocity_factr: 1}\n"),
            "s.yaml:3: hydrology.velocity_factr: unknown key (known: dispersion_factor, season, "
            "temperature_c, velocity_factor)");
  EXPECT_NE(ErrorOf(std::string(kHead) +
                    "events:\n  - {source: chengxi, start: 2024-04-15T01:00, mass_kg: {COD: 1}}\n")
                .find("s.yaml:4: events[0].source: unknown source 'chengxi'"),
            std::string::npos);
  EXPECT_NE(
      ErrorOf(
          std::string(kHead) +
          "events:\n  - {reach: fen_lower, km: 200, start: 2024-04-15T01:00, mass_kg: {COD: 1}}\n")
          .find("s.yaml:4: events[0].km: km 200 is outside reach fen_lower"),
      std::string::npos);
  EXPECT_NE(
      ErrorOf(std::string(kHead) +
              "events:\n  - {source: chengxi_wwtp, start: 2024-04-15T01:00, mass_kg: {BOD: 1}}\n")
          .find("s.yaml:4: events[0].mass_kg.BOD: unknown species"),
      std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kHead) +
                    "events:\n  - {source: chengxi_wwtp, start: 15/04/2024, mass_kg: {COD: 1}}\n")
                .find("s.yaml:4: events[0].start: expected an ISO-8601 time"),
            std::string::npos);
  EXPECT_NE(ErrorOf(std::string(kHead) + "sampling: {stations: [miaoqian, nowhere]}\n")
                .find("s.yaml:3: sampling.stations[1]: unknown station 'nowhere'"),
            std::string::npos);
  EXPECT_NE(ErrorOf("start: 2024-04-15T00:00+08:00\nend: 2024-04-14T00:00+08:00\n")
                .find("s.yaml:2: end: expected a time after start"),
            std::string::npos);
  EXPECT_NE(ErrorOf("start: [1]\n").find("s.yaml:1: start:"), std::string::npos);
  EXPECT_NE(
      ErrorOf("start: 2024-04-15T00:00+08:00\nend: 2024-04-16T00:00+08:00\nevents: [{source: a}\n")
          .find("s.yaml:"),
      std::string::npos);
}

TEST(Scenario, ReleaseAddsItsSignalOnlyAfterItStartsAndSamplesAreReproducible) {
  const std::string t =
      "start: 2024-04-15T00:00+08:00\n"
      "end: 2024-04-17T00:00+08:00\n"
      "events:\n"
      "  - {source: xinjiang_ez_outfall, start: 2024-04-15T10:00+08:00, duration_h: 2,\n"
      "     mass_kg: {COD: 800, NH3N: 60, TP: 8}}\n"
      "sampling: {interval_h: 2, noise: 0.1, seed: 5, stations: [fen_xinjiang_jishan, "
      "xinjiang_zhanli]}\n";
  const Scenario sc = ParseScenario(t, "s.yaml", Default());
  const ScenarioRun run = RunScenario(Default(), sc);
  Scenario quiet = sc;
  quiet.events.clear();
  const ScenarioRun base = RunScenario(Default(), quiet);
  const int species = static_cast<int>(Default().species.size());
  ASSERT_EQ(run.observations.size(), static_cast<size_t>(25 * 2 * species));  // 48 h / 2 h + 1
  ASSERT_EQ(run.observations.size(), base.observations.size());
  double release;
  ParseIsoTime("2024-04-15T10:00+08:00", &release);
  double max_excess = 0.0, upstream = 0.0;
  for (size_t i = 0; i < run.observations.size(); ++i) {
    const Observation& o = run.observations[i];
    const double excess = run.exact_mg_l[i] - base.exact_mg_l[i];
    if (o.time_s <= release) {
      // Before the release: nothing, to round-off.
      EXPECT_NEAR(excess, 0.0, 1e-12 * std::max(1.0, base.exact_mg_l[i]))
          << FormatIsoTime(o.time_s) << " " << o.station;
    } else if (o.station == "xinjiang_zhanli") {
      upstream = std::max(upstream, std::fabs(excess));
    } else if (o.species == "COD") {
      max_excess = std::max(max_excess, excess);
    }
  }
  EXPECT_GT(max_excess, 1.0);  // 800 kg COD passes the section 15 km below within the run
  // 15 km upstream against the current: physically e^(-uL/D) ~ e^-45 of it; the implicit
  // dispersion step leaks a little more upstream, still a ten-thousandth of the plume.
  EXPECT_LT(upstream, 1e-4 * max_excess);
  // Same seed, same samples; a different seed, different ones.
  const ScenarioRun again = RunScenario(Default(), sc);
  Scenario other = sc;
  other.sampling.seed = 6;
  const ScenarioRun diff = RunScenario(Default(), other);
  bool differs = false;
  for (size_t i = 0; i < run.observations.size(); ++i) {
    EXPECT_EQ(run.observations[i].value_mg_l, again.observations[i].value_mg_l);
    differs = differs || run.observations[i].value_mg_l != diff.observations[i].value_mg_l;
  }
  EXPECT_TRUE(differs);
  EXPECT_LT(run.relative_mass_error, 1e-10);
}

TEST(Scenario, SimulateCommandWritesTheLongCsv) {
  const std::string dir = testing::TempDir("simulate");
  {
    std::ofstream f(dir + "/s.yaml");
    f << "start: 2024-04-15T00:00+08:00\nend: 2024-04-15T12:00+08:00\n"
         "events: [{source: jishan_wwtp, start: 2024-04-15T01:00+08:00, duration_h: 1, mass_kg: "
         "{COD: 100}}]\n"
         "sampling: {interval_h: 4, noise: 0.1, seed: 1, stations: sections}\n";
  }
  std::string out;
  ASSERT_EQ(testing::RunCommand(testing::CliPath() + " simulate --scenario " + dir +
                                    "/s.yaml --observations-out " + dir + "/obs.csv",
                                &out),
            0)
      << out;
  const ObservationSet obs = ReadObservationsCsv(dir + "/obs.csv");
  // 4 sample times x 14 river sections (not the 2 outfall monitors) x 4 species.
  EXPECT_EQ(obs.rows.size(), 4u * 14u * 4u);
  std::ifstream f(dir + "/obs.csv");
  std::string header, first;
  std::getline(f, header);
  std::getline(f, first);
  EXPECT_EQ(header, "time,station,species,value");
  EXPECT_EQ(first.substr(0, 26), "2024-04-15T00:00:00+08:00,");
  // Invalid scenario: exit code 2 and the located message.
  {
    std::ofstream g(dir + "/bad.yaml");
    g << "start: 2024-04-15T00:00+08:00\nend: 2024-04-15T12:00+08:00\nsampling: {noise: 2}\n";
  }
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " simulate --scenario " + dir +
                                    "/bad.yaml --observations-out " + dir + "/x.csv",
                                &out),
            2);
  EXPECT_NE(out.find("bad.yaml:3: sampling.noise"), std::string::npos) << out;
}

}  // namespace
}  // namespace qingshui::tracing
