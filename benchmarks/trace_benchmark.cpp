// Source-tracing performance (issue #6 item 9): one query on the default network — all
// registered candidates, COD, NH3N and TP, seven days of 4-hourly samples at every station —
// timed with its set-up (network and priors read, observations read, kernels computed by the
// transport engine, all fits), against a plain reference implementation over the same
// kernels (a brute-force grid posterior, ReferenceGridPosterior in reference_grid_posterior.h) in
// the same run. Figures and the command are in benchmarks/RESULTS.md.
//
//   qingshui_trace_bench --benchmark_repetitions=15 --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/priors.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"
#include "reference_grid_posterior.h"

using namespace qingshui;
using namespace qingshui::tracing;

namespace {

const std::string kNetwork = QINGSHUI_SOURCE_DIR "/data/yuncheng/network.yaml";
const std::string kPriors = QINGSHUI_SOURCE_DIR "/data/tracing/source_signatures.yaml";

struct Query {
  std::string name, source, file, team_at;
};

// Three events, one per river system, simulated once with perturbed hydraulics and 10%
// noise at all 16 stations; written as CSV so that a query reads them like the CLI does.
const std::vector<Query>& Queries() {
  static const std::vector<Query> queries = [] {
    const Network net = LoadNetwork(kNetwork);
    const std::string dir =
        (std::filesystem::temp_directory_path() / "qingshui_trace_bench").string();
    std::filesystem::create_directories(dir);
    std::vector<Query> q = {{"fen_jishan", "jishan_wwtp", "", "fen_jishan_hejin"},
                            {"sushui_chengxi", "chengxi_wwtp", "", "sushui_yanhu_linyi"},
                            {"yaoxian_xia", "xia_county_wwtp", "", "yaoxian_xia_yanhu"}};
    int i = 0;
    for (auto& x : q) {
      const std::string text =
          std::string("start: 2024-04-15T00:00+08:00\nend: 2024-04-22T00:00+08:00\n") +
          "hydrology: {velocity_factor: " + (i == 1 ? "0.85" : "1.12") +
          ", dispersion_factor: " + (i == 2 ? "1.4" : "0.7") + "}\n" +
          "events: [{source: " + x.source +
          ", start: 2024-04-16T03:00+08:00, duration_h: 3, mass_kg: {COD: 1500, NH3N: 90, TP: "
          "22}}]\n" +
          "sampling: {interval_h: 4, noise: 0.1, seed: " + std::to_string(11 + i) +
          ", stations: all}\n";
      const ScenarioRun run = RunScenario(net, ParseScenario(text, x.name, net));
      x.file = dir + "/" + x.name + ".csv";
      WriteObservationsCsv(x.file, run.observations);
      ++i;
    }
    return q;
  }();
  return queries;
}

// With `team`, a team in the field at the first section below the source (docs/tracing.md
// §7, "A team in the field"): recommendations also at river points, with their kernels.
TraceResult OneQuery(const Query& q, int threads, bool team = false) {
  const Network net = LoadNetwork(kNetwork);
  TraceOptions o;
  o.priors = LoadTracingPriors(kPriors);
  o.num_threads = threads;
  if (team) o.team_at = q.team_at;
  return Trace(net, ReadObservationsCsv(q.file), o);
}

void BM_TraceQuery(benchmark::State& state) {
  const Query& q = Queries()[state.range(0)];
  const int threads = static_cast<int>(state.range(1));
  const bool team = state.range(2) != 0;
  TraceResult r;
  for (auto _ : state) {
    r = OneQuery(q, threads, team);
    benchmark::DoNotOptimize(r.hypotheses.data());
  }
  state.SetLabel(q.name + " -> " + (r.hypotheses.empty() ? "" : r.hypotheses[0].label));
  state.counters["fits"] = r.summary.num_fits;
  state.counters["kernel_s"] = r.summary.kernel_seconds;
  state.counters["fit_s"] = r.summary.fit_seconds;
  int points = 0;
  for (const auto& n : r.next_samples) points += n.IsPoint();
  state.counters["point_recs"] = points;
}
// Third argument: 1 = with a team in the field (river points and their kernels).
BENCHMARK(BM_TraceQuery)
    ->ArgsProduct({{0, 1, 2}, {1, 2}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

void BM_ReferenceGridPosterior(benchmark::State& state) {
  const Query& q = Queries()[state.range(0)];
  GridPosterior g;
  for (auto _ : state) {
    const Network net = LoadNetwork(kNetwork);
    TraceOptions o;
    o.priors = LoadTracingPriors(kPriors);
    o.num_threads = static_cast<int>(state.range(1));
    g = ReferenceGridPosterior(net, ReadObservationsCsv(q.file), o);
    benchmark::DoNotOptimize(g.source_probability.data());
  }
  state.SetLabel(q.name + " -> " + g.source_probability[0].first);
  state.counters["evaluations"] = static_cast<double>(g.evaluations);
}
BENCHMARK(BM_ReferenceGridPosterior)
    ->ArgsProduct({{0, 1, 2}, {2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(1);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Queries();  // simulate the events before any timing
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // Agreement of the two: the source each ranks first and the probability each gives it.
  std::printf(
      "\nquery | tracer: first (p) | reference grid: first (p) | tracer P(reference's first)\n");
  for (const Query& q : Queries()) {
    const TraceResult r = OneQuery(q, 2);
    const Network net = LoadNetwork(kNetwork);
    TraceOptions o;
    o.priors = LoadTracingPriors(kPriors);
    const GridPosterior g = ReferenceGridPosterior(net, ReadObservationsCsv(q.file), o);
    std::string first;
    double p = 0.0;
    for (const auto& [label, prob] : r.source_probability) {
      if (label != "no release" && prob > p) {
        p = prob;
        first = label;
      }
    }
    auto it = r.source_probability.find(g.source_probability[0].first);
    std::printf("%s | %s (%.2f) | %s (%.2f) | %.2f\n", q.name.c_str(), first.c_str(), p,
                g.source_probability[0].first.c_str(), g.source_probability[0].second,
                it == r.source_probability.end() ? 0.0 : it->second);
  }
  return 0;
}
