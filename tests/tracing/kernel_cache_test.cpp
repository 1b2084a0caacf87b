// Kernels kept between traces (KernelCache, a trace session's): a hit is the very table a
// fresh build gives, so a trace through the cache answers bit for bit as one without it; a
// changed hydraulics date, species or sampling point is a miss, never a stale table.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "qingshui/tracing/drill.h"
#include "qingshui/tracing/kernels.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;
using fixtures::Priors;

// The observations of the first Fen drill of benchmarks/trace_drills.cpp.
ObservationSet DrillObservations() {
  DrillOptions o;
  o.river = "fen";
  o.num_sources = 1;
  o.seed = 100000;
  const DrillTruth truth = MakeDrill(Default(), Priors(), o);
  ObservationSet obs;
  obs.rows = RunScenario(Default(), truth.scenario).observations;
  return obs;
}

// Everything a trace answers, compared exactly (not the timings).
void ExpectSameAnswer(const TraceResult& a, const TraceResult& b) {
  ASSERT_EQ(a.hypotheses.size(), b.hypotheses.size());
  for (size_t i = 0; i < a.hypotheses.size(); ++i) {
    const Hypothesis &x = a.hypotheses[i], &y = b.hypotheses[i];
    EXPECT_EQ(x.label, y.label);
    EXPECT_EQ(x.probability, y.probability) << x.label;
    EXPECT_EQ(x.log_evidence, y.log_evidence) << x.label;
    EXPECT_EQ(x.velocity_factor, y.velocity_factor) << x.label;
    EXPECT_EQ(x.dispersion_factor, y.dispersion_factor) << x.label;
    ASSERT_EQ(x.sources.size(), y.sources.size());
    for (size_t j = 0; j < x.sources.size(); ++j) {
      EXPECT_EQ(x.sources[j].release_start_s, y.sources[j].release_start_s);
      EXPECT_EQ(x.sources[j].duration_s, y.sources[j].duration_s);
      EXPECT_EQ(x.sources[j].mass_kg, y.sources[j].mass_kg);
      EXPECT_EQ(x.sources[j].start_ci90, y.sources[j].start_ci90);
    }
  }
  EXPECT_EQ(a.credible_set_90, b.credible_set_90);
  EXPECT_EQ(a.source_probability, b.source_probability);
  ASSERT_EQ(a.next_samples.size(), b.next_samples.size());
  for (size_t i = 0; i < a.next_samples.size(); ++i) {
    EXPECT_EQ(a.next_samples[i].station, b.next_samples[i].station);
    EXPECT_EQ(a.next_samples[i].time_s, b.next_samples[i].time_s);
    EXPECT_EQ(a.next_samples[i].expected_information_nats,
              b.next_samples[i].expected_information_nats);
  }
  EXPECT_EQ(a.summary.num_fits, b.summary.num_fits);
  EXPECT_EQ(a.summary.num_evaluations, b.summary.num_evaluations);
}

TEST(KernelCache, AHitAnswersAsAFreshTrace) {
  const ObservationSet all = DrillObservations();
  // The session's first look: the samples up to a day before the last.
  ObservationSet early = all;
  double t_last = -1e300;
  for (const auto& o : all.rows) t_last = std::max(t_last, o.time_s);
  early.rows.clear();
  for (const auto& o : all.rows) {
    if (o.time_s <= t_last - 86400.0) early.rows.push_back(o);
  }
  TraceOptions o;
  o.priors = Priors();
  o.kernel_horizon_round_s = 2 * 86400.0;
  const TraceResult fresh = Trace(Default(), all, o);  // no cache

  o.kernel_cache = std::make_shared<KernelCache>();
  Trace(Default(), early, o);  // builds (a window a day shorter: the same rounded horizon)
  EXPECT_EQ(o.kernel_cache->misses(), 1);
  const TraceResult hit = Trace(Default(), all, o);
  EXPECT_EQ(o.kernel_cache->hits(), 1);
  EXPECT_EQ(o.kernel_cache->misses(), 1);
  ExpectSameAnswer(fresh, hit);
}

TEST(KernelCache, AChangedDateSpeciesOrPointMisses) {
  const Network& net = Default();
  KernelOptions ko;
  ko.date = "2024-04-15";
  ko.species = {"COD", "NH3N"};
  ko.horizon_s = 2 * 86400.0;
  const std::vector<KernelPoint> points = DefaultKernelPoints(net, 0.0);
  KernelCache cache;
  const auto a = cache.Get(net, points, ko);
  EXPECT_EQ(cache.Get(net, points, ko), a);  // the same tables, not a copy
  KernelOptions threads = ko;
  threads.num_threads = 2;  // does not change the tables
  EXPECT_EQ(cache.Get(net, points, threads), a);
  EXPECT_EQ(cache.hits(), 2);

  KernelOptions july = ko;
  july.date = "2024-07-15";  // another season's flows
  const auto b = cache.Get(net, points, july);
  EXPECT_NE(b, a);
  EXPECT_EQ(b->options.date, "2024-07-15");
  KernelOptions species = july;
  species.species = {"COD"};
  EXPECT_NE(cache.Get(net, points, species), b);
  KernelOptions point = species;
  point.sampling_points.push_back({"fen_lower:55", "fen_lower", 55.0});
  const auto c = cache.Get(net, points, point);
  EXPECT_EQ(c->num_stations(), c->num_network_stations + 1);
  EXPECT_EQ(cache.misses(), 4);
  EXPECT_EQ(cache.hits(), 2);
  // The caller's handle outlives the entry it replaced.
  EXPECT_EQ(a->options.date, "2024-04-15");
  cache.Clear();
  EXPECT_NE(cache.Get(net, points, point), c);
  EXPECT_EQ(cache.misses(), 5);
}

}  // namespace
}  // namespace qingshui::tracing
