// The source tracer.
//  * Exactness of the inversion: observations made by the kernel model itself (a known
//    release, velocity and dispersion factors, baselines, 2% noise) are traced back to the
//    source, its start, mass and the factors.
//  * Drills (the first seeds of the benchmark's sequence, benchmarks/trace_drills.cpp):
//    releases simulated by the full network run with perturbed hydraulics and 10% noise;
//    each drill is held to the issue's criteria (truth in the 90% set and in the top three,
//    start in its 90% interval). The statistics over many drills are in
//    benchmarks/RESULTS.md.
//  * No signal: "no release" comes first. Two releases: both in the 90% set.
//  * Output: JSON keys, ISO times with offset, probabilities sorted and summing to one.
#include "qingshui/tracing/tracer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "qingshui/core/error.h"
#include "qingshui/tracing/drill.h"
#include "qingshui/tracing/kernels.h"
#include "qingshui/tracing/scenario.h"
#include "test_paths.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;  // tests/tracing/tracing_fixtures.h

using fixtures::Priors;

TraceOptions Options() {
  TraceOptions o;
  o.priors = Priors();
  return o;
}

TEST(Tracer, RecoversAReleaseMadeByItsOwnModel) {
  const Network& net = Default();
  double w0;
  ParseIsoTime("2024-04-15T00:00:00+08:00", &w0);
  const double w1 = w0 + 5 * 86400.0;
  KernelOptions ko;
  ko.date = "2024-04-15";
  ko.species = {"COD", "NH3N", "TP"};
  ko.horizon_s = w1 - (w0 - 86400.0) + 3600.0;
  const ResponseKernels K = BuildKernels(net, DefaultKernelPoints(net, 0.0), ko);
  int p = -1;
  for (size_t i = 0; i < K.points.size(); ++i) {
    if (K.points[i].source_id == "hejin_2_wwtp") p = static_cast<int>(i);
  }
  ASSERT_GE(p, 0);
  const double t0 = w0 + 30 * 3600.0, d = 2 * 3600.0, f = 1.1, g = 0.8;
  const std::vector<double> mass_g = {1.5e6, 9.0e4, 2.4e4};
  ObservationSet obs;
  NormalGenerator noise(11);
  for (int s = 0; s < K.num_stations(); ++s) {
    if (K.station_ids[s] == "xinjiang_ez_outfall_monitor" ||
        K.station_ids[s] == "chengxi_inlet_monitor")
      continue;
    for (double t = w0; t <= w1 + 1; t += 4 * 3600.0) {
      for (int k = 0; k < 3; ++k) {
        const double u = t - t0;
        const double vmid = std::max(0.0, f * (u - d / 2));
        const double c =
            mass_g[k] / d *
            (K.Cumulative(p, s, k, g / f, f * u) - K.Cumulative(p, s, k, g / f, f * (u - d))) *
            std::exp(-K.decay_per_s[k] * (1 / f - 1) * vmid);
        const double base = k == 0 ? 20.0 : k == 1 ? 1.0 : 0.2;
        obs.rows.push_back(
            {t, K.station_ids[s], K.species[k], (base + c) * (1 + 0.02 * noise.Next()), 0});
      }
    }
  }
  TraceOptions o = Options();
  o.noise_relative = 0.02;
  const TraceResult r = Trace(net, obs, o);
  ASSERT_FALSE(r.hypotheses.empty());
  const Hypothesis& h = r.hypotheses[0];
  ASSERT_EQ(h.sources.size(), 1u) << h.label;
  // hejin_2_wwtp (km 93) and hejin_ez_wwtp (km 97) both lie between the same sections;
  // the exact model should still prefer the truth.
  EXPECT_EQ(h.sources[0].id, "hejin_2_wwtp");
  EXPECT_GT(h.probability, 0.5);
  const SourceEstimate& e = h.sources[0];
  // Midpoint fixed by the data to well under the 1 h kernel resolution; the start trades
  // off against the duration within the interval.
  EXPECT_NEAR(0.5 * (e.release_start_s + e.release_end_s), t0 + d / 2, 1800.0);
  EXPECT_LE(e.start_ci90[0], t0);
  EXPECT_GE(e.start_ci90[1], t0);
  EXPECT_NEAR(e.mass_kg.at("COD"), 1500.0, 0.05 * 1500.0);
  EXPECT_NEAR(e.mass_kg.at("NH3N"), 90.0, 0.05 * 90.0);
  EXPECT_NEAR(e.mass_kg.at("TP"), 24.0, 0.05 * 24.0);
  for (const auto& [sp, ci] : e.mass_kg_ci90) {
    const double truth_kg = mass_g[sp == "COD" ? 0 : sp == "NH3N" ? 1 : 2] / 1000.0;
    EXPECT_LE(ci[0], truth_kg) << sp;
    EXPECT_GE(ci[1], truth_kg) << sp;
  }
  EXPECT_NEAR(h.velocity_factor, f, 0.03);
  EXPECT_NEAR(h.dispersion_factor, g, 0.25);
}

struct DrillCase {
  std::string river;
  int sources;
  std::uint64_t seed;
};

DrillScore RunDrill(const DrillCase& dc, TraceResult* result = nullptr) {
  DrillOptions o;
  o.river = dc.river;
  o.num_sources = dc.sources;
  o.seed = dc.seed;
  const DrillTruth truth = MakeDrill(Default(), Priors(), o);
  const ScenarioRun sim = RunScenario(Default(), truth.scenario);
  ObservationSet obs;
  obs.rows = sim.observations;
  const TraceResult r = Trace(Default(), obs, Options());
  if (result) *result = r;
  return ScoreDrill(truth, r);
}

// The first three one-release drills of each river in benchmarks/trace_drills.cpp (seed 1:
// 100000 + river index * 1000 + i, rivers fen then sushui). The issue's criteria are rates
// over many drills (benchmarks/RESULTS.md: 30 per river); six drills are held to the
// honesty criteria with the slack six need — the truth in the 90% set and the start in its
// 90% interval (rates of 85% and 80%: one miss), in the top three (80%: two misses), and
// never a confident wrong source (the leader above 0.9 when the truth is not first). Which
// rank the truth gets depends on the drill: the first Sushui seeds all fall among the six
// city plants between the same two sections, the hardest group on the network.
TEST(TracerDrills, OneReleaseDrillsAreHonest) {
  int in_set = 0, top3 = 0, covered = 0, n = 0;
  for (const auto& [river, base] :
       {std::pair<std::string, std::uint64_t>{"fen", 100000}, {"sushui", 101000}}) {
    for (std::uint64_t i = 0; i < 3; ++i) {
      const DrillScore s = RunDrill({river, 1, base + i});
      ++n;
      in_set += s.in_set[0];
      top3 += s.rank[0] >= 1 && s.rank[0] <= 3;
      covered += s.start_covered[0];
      if (s.rank[0] != 1)
        EXPECT_LT(s.top_probability, 0.9) << "confident wrong source: " << s.top_label;
      std::printf("drill %s %llu: %s rank %d, set of %d, top %s (%.2f), start error %.1f h%s\n",
                  river.c_str(), static_cast<unsigned long long>(base + i), s.sources[0].c_str(),
                  s.rank[0], s.set_size, s.top_label.c_str(), s.top_probability, s.start_error_h[0],
                  s.start_covered[0] ? "" : " (outside CI)");
    }
  }
  EXPECT_GE(in_set, n - 1);
  EXPECT_GE(covered, n - 1);
  EXPECT_GE(top3, n - 2);
}

TEST(TracerDrills, NoReleaseComesFirstWithoutASignal) {
  const DrillScore s = RunDrill({"fen", 0, 190000});
  EXPECT_TRUE(s.no_release_first) << s.top_label;
  EXPECT_GT(s.no_release_probability, 0.5);
}

TEST(TracerDrills, TwoReleasesBothInTheSet) {
  TraceResult r;
  const DrillScore s = RunDrill({"fen", 2, 150000}, &r);
  EXPECT_TRUE(s.in_set[0] && s.in_set[1])
      << s.sources[0] << " + " << s.sources[1] << " top " << s.top_label;
  EXPECT_EQ(r.hypotheses[0].sources.size(), 2u);
}

TEST(TracerOutput, JsonAndTableCarryTheIssueShape) {
  TraceResult r;
  RunDrill({"fen", 1, 100001}, &r);
  double total = 0.0, last = 1.0;
  for (const auto& h : r.hypotheses) {
    EXPECT_LE(h.probability, last + 1e-12);
    last = h.probability;
    total += h.probability;
  }
  EXPECT_LE(total, 1.0 + 1e-9);
  EXPECT_GT(total, 0.99);  // the hypotheses left out (< 1e-4 each) hold almost nothing
  const std::string json = TraceResultJson(r);
  for (const char* key :
       {"\"hypotheses\": [", "\"probability\": ", "\"sources\": [",
        "\"id\": ", "\"kind\": ", "\"release_start\": \"2024-04-", "+08:00\"",
        "\"release_end\": ", "\"mass_kg\": {\"COD\": ", "\"mass_kg_ci90\": {\"COD\": [",
        "\"groups\": [[", "\"diagnostics\": {", "\"elapsed_s\": ", "\"next_samples\"",
        "\"identifiability\"", "\"credible_set_90\""}) {
    EXPECT_NE(json.find(key), std::string::npos) << key;
  }
  const std::string table = TraceResultTable(r);
  EXPECT_NE(table.find("90% credible set:"), std::string::npos);
  EXPECT_NE(table.find("rank"), std::string::npos);
}

TEST(TracerOutput, UnknownStationsAndSpeciesAreNamed) {
  ObservationSet obs;
  obs.file = "o.csv";
  obs.rows.push_back({1.7e9, "miaoqian", "COD", 20, 2});
  obs.rows.push_back({1.7e9 + 3600, "nowhere", "COD", 20, 3});
  try {
    Trace(Default(), obs, Options());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "o.csv:3: station: unknown station 'nowhere' (not in the network)");
  }
  obs.rows[1].station = "miaoqian";
  obs.rows[1].species = "BOD";
  EXPECT_THROW(Trace(Default(), obs, Options()), ConfigError);
  TraceOptions o = Options();
  o.max_sources = 4;
  obs.rows[1].species = "COD";
  EXPECT_THROW(Trace(Default(), obs, o), ConfigError);
}

}  // namespace
}  // namespace qingshui::tracing
