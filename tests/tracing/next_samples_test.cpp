// Recommendations a team in the field can use (issue #21 item 2; docs/tracing.md §7, "Next
// sample"): with a window (`--within-h`), only samples within it after the last one; when
// none of them separates the leaders, the earliest that does, said so; never empty while no
// source holds 0.9 and some station sample in the next day separates the leaders; a sample
// just taken is not recommended again; without the option, nothing changes.
//
// The drill of the README (2000 kg COD from the Jishan plant, 02:00-05:00 on 2024-04-16,
// velocity x1.1, dispersion x0.7), sampled hourly at the sections with 10% noise; the
// routine data are the 4-hourly samples, traced at several times after the alarm.
#include <gtest/gtest.h>

#include <cmath>

#include "qingshui/core/error.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;  // tests/tracing/tracing_fixtures.h
using fixtures::Priors;

const ScenarioRun& HourlyDrill() {
  static const ScenarioRun run = RunScenario(Default(), ParseScenario(R"(
start: 2024-04-15T00:00+08:00
end: 2024-04-18T12:00+08:00
hydrology: {velocity_factor: 1.1, dispersion_factor: 0.7}
events:
  - {source: jishan_wwtp, start: 2024-04-16T02:00+08:00, duration_h: 3,
     mass_kg: {COD: 2000, NH3N: 120, TP: 30}}
sampling: {interval_h: 1, noise: 0.1, seed: 7, stations: sections}
)",
                                                                      "drill.yaml", Default()));
  return run;
}

double At(const std::string& iso) {
  double t = 0;
  EXPECT_TRUE(ParseIsoTime(iso, &t)) << iso;
  return t;
}

// The routine 4-hourly samples up to `end`, and any extra (station, time) samples a team took.
ObservationSet Routine(double end_s, const std::vector<std::pair<std::string, double>>& team = {}) {
  ObservationSet obs;
  const double t0 = At("2024-04-15T00:00+08:00");
  for (const auto& o : HourlyDrill().observations) {
    if (o.time_s > end_s + 1) continue;
    const bool routine = std::fmod(o.time_s - t0, 4 * 3600.0) < 1;
    bool taken = false;
    for (const auto& [station, t] : team) taken = taken || (o.station == station && o.time_s == t);
    if (routine || taken) obs.rows.push_back(o);
  }
  return obs;
}

TraceOptions Options(double within_h) {
  TraceOptions o;
  o.priors = Priors();
  o.recommend_within_s = within_h * 3600.0;
  return o;
}

double LeadingSourceProbability(const TraceResult& r) {
  double p = 0.0;
  for (const auto& kv : r.source_probability) p = std::max(p, kv.second);
  return p;
}

TEST(NextSamples, WithinTheWindowOrTheEarliestBeyondItSaidSo) {
  int within = 0, beyond = 0;
  for (const char* end : {"2024-04-16T12:00+08:00", "2024-04-16T16:00+08:00",
                          "2024-04-17T00:00+08:00", "2024-04-17T08:00+08:00"}) {
    SCOPED_TRACE(end);
    const double now = At(end);
    const ObservationSet obs = Routine(now);
    const TraceResult plain = Trace(Default(), obs, Options(NAN));
    const TraceResult team = Trace(Default(), obs, Options(2));
    // Without the option: each station's best time in the next day, no note.
    EXPECT_TRUE(plain.next_samples_note.empty());
    for (const auto& n : plain.next_samples) EXPECT_TRUE(n.within_window);
    // The ranking does not depend on the option.
    ASSERT_EQ(plain.hypotheses.size(), team.hypotheses.size());
    EXPECT_EQ(plain.hypotheses[0].label, team.hypotheses[0].label);
    EXPECT_DOUBLE_EQ(plain.hypotheses[0].probability, team.hypotheses[0].probability);

    if (LeadingSourceProbability(team) < 0.9 && !plain.next_samples.empty()) {
      EXPECT_FALSE(team.next_samples.empty()) << "uncertain, and a sample would separate";
    }
    for (const auto& n : team.next_samples) {
      EXPECT_GT(n.time_s, now);
      EXPECT_GE(n.expected_information_nats, 0.01);
      if (n.within_window) {
        ++within;
        EXPECT_LE(n.time_s, now + 2 * 3600.0 + 1);
        EXPECT_TRUE(team.next_samples_note.empty()) << team.next_samples_note;
      } else {
        ++beyond;
        EXPECT_EQ(team.next_samples.size(), 1u);
        EXPECT_GT(n.time_s, now + 2 * 3600.0);
        EXPECT_NE(team.next_samples_note.find("the earliest that does: " + n.station),
                  std::string::npos)
            << team.next_samples_note;
        // The earliest: no later than the day's best time at any station.
        for (const auto& p : plain.next_samples) EXPECT_LE(n.time_s, p.time_s);
      }
    }
    if (team.next_samples.empty() && plain.hypotheses.size() > 1) {
      EXPECT_NE(team.next_samples_note.find("nor any up to 24 h ahead"), std::string::npos)
          << team.next_samples_note;
    }
    const std::string json = TraceResultJson(team);
    EXPECT_NE(json.find("\"next_samples_note\": "), std::string::npos);
  }
  // The drill has both: a recommendation within two hours, and a time when none is.
  EXPECT_GT(within, 0);
  EXPECT_GT(beyond, 0);
}

TEST(NextSamples, ASampleJustTakenIsNotRecommendedAgain) {
  const double now = At("2024-04-17T08:00+08:00");
  const TraceResult first = Trace(Default(), Routine(now), Options(2));
  ASSERT_FALSE(first.next_samples.empty());
  const SampleRecommendation& taken = first.next_samples[0];
  // The team takes it; the trace runs again with it.
  const TraceResult second =
      Trace(Default(), Routine(taken.time_s, {{taken.station, taken.time_s}}), Options(2));
  for (const auto& n : second.next_samples) {
    EXPECT_FALSE(n.station == taken.station && std::abs(n.time_s - taken.time_s) < 1)
        << n.station << " " << FormatIsoTime(n.time_s);
    EXPECT_GT(n.time_s, taken.time_s);
  }
}

TEST(NextSamples, AWindowShorterThanTheStepOrLongerThanTheHorizonIsRefused) {
  const ObservationSet obs = Routine(At("2024-04-16T12:00+08:00"));
  for (double h : {0.5, 0.0, -1.0, 48.0}) {
    try {
      Trace(Default(), obs, Options(h));
      ADD_FAILURE() << "no error for " << h << " h";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("recommend_within_s"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace qingshui::tracing
