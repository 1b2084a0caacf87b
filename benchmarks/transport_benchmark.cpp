// Throughput of the transport engine (issue #3 item 5). The problem is OTIS's app3
// (Runkel 1996: u = 0.1 m/s, D = 5 m2/s, lambda = 1e-4 /s, 10 m segments, 144 s steps, so
// Courant 1.44 and dispersion number D dt / dx^2 = 7.2; a 100 mg/L pulse from 1 h to 3 h)
// on a longer channel. Counters:
//   segment_updates/s         segments x steps per second (all species of a segment)
//   species_updates/s         segments x steps x species per second
//   member_segment_updates/s  members x segments x steps per second (ensembles)
// RESULTS.md has the figures and the exact commands.
#include <benchmark/benchmark.h>

#include <sys/resource.h>

#include <cmath>
#include <string>
#include <vector>

#include "qingshui/core/transport.h"

namespace qt = qingshui::transport;

namespace {

// CPU time of the whole process (all threads), s.
double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

// app3 on n segments, species with decay rates 1e-4, 5e-5, 2e-4 /s, members whose pulses
// differ in height and timing (so that they are really different runs).
qt::TransportProblem App3Channel(int n, int species, int members, int steps,
                                 double dispersion_m2s = 5.0) {
  qt::TransportProblem p;
  p.num_species = species;
  p.segments.resize(n);
  const double rates[3] = {1e-4, 5e-5, 2e-4};
  for (int i = 0; i < n; ++i) {
    qt::Segment& s = p.segments[i];
    s.downstream = i + 1 < n ? i + 1 : -1;
    s.length_m = 10.0;
    s.dispersion_m2s = dispersion_m2s;
    for (int k = 0; k < species; ++k) s.decay_per_s.push_back(rates[k % 3]);
  }
  qt::FlowState f;
  f.flow_m3s.assign(n, 0.1);
  f.area_m2.assign(n, 1.0);
  f.headwater_inflow_m3s.assign(n, 0.0);
  f.headwater_inflow_m3s[0] = 0.1;
  p.flow.times_s = {0.0};
  p.flow.states = {f};
  for (int m = 0; m < members; ++m) {
    qt::Forcing fo;
    qt::UpstreamBoundary b;
    b.segment = 0;
    for (int k = 0; k < species; ++k) {
      qt::TimeSeries ts;
      ts.interpolation = qt::TimeSeries::Interpolation::kStep;
      const double start = 3600.0 + 60.0 * m;
      ts.times_s = {0.0, start, start + 7200.0};
      ts.values = {0.0, 100.0 * (1.0 + 0.01 * m) / (k + 1), 0.0};
      b.series.push_back(ts);
    }
    fo.boundaries = {b};
    p.members.push_back(fo);
  }
  p.start_time_s = 0.0;
  p.time_step_s = 144.0;
  p.end_time_s = steps * 144.0;
  // A station record every step, as the OTIS decks print.
  for (int k = 0; k <= steps; ++k) p.output_times_s.push_back(k * 144.0);
  p.stations = {qt::Station{9, 10, 0.5}, qt::Station{n / 2 - 1, n / 2, 0.5}};
  return p;
}

qt::TransportOptions Options(int threads, bool independent = true) {
  qt::TransportOptions o;
  o.store_fields = false;
  o.num_threads = threads;
  o.independent_members = independent;
  return o;
}

void Report(benchmark::State& state, const qt::TransportProblem& p, const qt::TransportResult& r) {
  const double seg_steps = static_cast<double>(p.segments.size()) * r.summary.num_steps;
  state.counters["segment_updates/s"] = benchmark::Counter(
      seg_steps * p.members.size(), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["species_updates/s"] = benchmark::Counter(
      seg_steps * p.members.size() * p.num_species, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fallbacks"] = static_cast<double>(r.summary.implicit_fallbacks);
  state.counters["mass_error"] = r.summary.max_relative_mass_error;
}

// Args: segments, steps, species. One member, one thread.
void BM_Channel(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), steps = static_cast<int>(state.range(1)),
            species = static_cast<int>(state.range(2));
  qt::TransportProblem p = App3Channel(n, species, 1, steps);
  qt::TransportSolver solver(Options(1));
  qt::TransportResult r;
  for (auto _ : state) {
    r = solver.Run(p);
    benchmark::DoNotOptimize(r.station_concentration_g_m3.data());
  }
  Report(state, p, r);
}
BENCHMARK(BM_Channel)
    ->ArgNames({"segments", "steps", "species"})
    ->Args({5000, 2000, 1})
    ->Args({5000, 2000, 3})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same, always sub-stepping to the a-priori positivity bound (the engine before the
// adaptive check): what the adaptive check saves.
void BM_ChannelAlwaysSubstep(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0)), steps = static_cast<int>(state.range(1)),
            species = static_cast<int>(state.range(2));
  qt::TransportProblem p = App3Channel(n, species, 1, steps);
  qt::TransportOptions o = Options(1);
  o.adaptive_implicit = false;
  qt::TransportSolver solver(o);
  qt::TransportResult r;
  for (auto _ : state) {
    r = solver.Run(p);
    benchmark::DoNotOptimize(r.station_concentration_g_m3.data());
  }
  Report(state, p, r);
}
BENCHMARK(BM_ChannelAlwaysSubstep)
    ->ArgNames({"segments", "steps", "species"})
    ->Args({5000, 2000, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Ensembles sharing one flow field. Args: members, threads, segments, 10 x dispersion
// (m2/s), independent members (1) or joint fallback (0). members = 1 is the single run
// whose per-member throughput the batch is compared with (64 separate runs take 64 times
// as long as one). D = 5 m2/s is app3 (dispersion number 7.2: every step checked, ~12% of
// the member-steps of this window fall back); D = 0.3 m2/s keeps Crank-Nicolson within its
// positivity bound (no check, no fallback). 1e6 segment-steps per member.
void BM_Ensemble(benchmark::State& state) {
  const int members = static_cast<int>(state.range(0)), threads = static_cast<int>(state.range(1));
  const int n = static_cast<int>(state.range(2)), steps = 1000000 / n;
  const double d = state.range(3) / 10.0;
  qt::TransportProblem p = App3Channel(n, 1, members, steps, d);
  qt::TransportSolver solver(Options(threads, state.range(4) != 0));
  qt::TransportResult r;
  const double cpu0 = ProcessCpuSeconds();
  for (auto _ : state) {
    r = solver.Run(p);
    benchmark::DoNotOptimize(r.station_concentration_g_m3.data());
  }
  // All threads' CPU per run: with two threads, wall = this / 2 on two idle cores if the
  // work splits evenly (the items never wait for each other).
  state.counters["process_cpu_ms"] =
      1e3 * (ProcessCpuSeconds() - cpu0) / static_cast<double>(state.iterations());
  state.counters["member_segment_updates/s"] =
      benchmark::Counter(static_cast<double>(members) * n * r.summary.num_steps,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fallbacks"] = static_cast<double>(r.summary.implicit_fallbacks);
}
BENCHMARK(BM_Ensemble)
    ->ArgNames({"members", "threads", "segments", "D_x10", "independent"})
    ->Args({1, 1, 2000, 3, 1})
    ->Args({64, 1, 2000, 3, 1})
    ->Args({64, 2, 2000, 3, 1})
    ->Args({1, 1, 2000, 50, 1})
    ->Args({64, 1, 2000, 50, 1})
    ->Args({64, 2, 2000, 50, 1})
    ->Args({64, 1, 2000, 50, 0})
    ->Args({64, 2, 2000, 50, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same ensembles on a flow field that changes in time, as the forecast's does (daily
// hydraulic states, linearly interpolated): flow rising from 0.1 to 0.15 m3/s (area from
// 1 to 1.3 m2) over the run, so every step has its own hydraulic state and a single run
// rebuilds its coefficients and factorization every step; a batch does it once per step
// for all its members. Args: members, segments, 10 x dispersion.
void BM_EnsembleUnsteady(benchmark::State& state) {
  const int members = static_cast<int>(state.range(0)), n = static_cast<int>(state.range(1));
  const int steps = 1000000 / n;
  const double d = state.range(2) / 10.0;
  qt::TransportProblem p = App3Channel(n, 1, members, steps, d);
  qt::FlowState later = p.flow.states[0];
  later.flow_m3s.assign(n, 0.15);
  later.area_m2.assign(n, 1.3);
  later.headwater_inflow_m3s[0] = 0.15;
  p.flow.times_s = {0.0, p.end_time_s};
  p.flow.states.push_back(later);
  qt::TransportSolver solver(Options(1, true));
  qt::TransportResult r;
  for (auto _ : state) {
    r = solver.Run(p);
    benchmark::DoNotOptimize(r.station_concentration_g_m3.data());
  }
  state.counters["member_segment_updates/s"] =
      benchmark::Counter(static_cast<double>(members) * n * r.summary.num_steps,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["fallbacks"] = static_cast<double>(r.summary.implicit_fallbacks);
  state.counters["mass_error"] = r.summary.max_relative_mass_error;
}
BENCHMARK(BM_EnsembleUnsteady)
    ->ArgNames({"members", "segments", "D_x10"})
    ->Args({1, 2000, 3})
    ->Args({64, 2000, 3})
    ->Args({1, 2000, 50})
    ->Args({64, 2000, 50})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime();

}  // namespace

BENCHMARK_MAIN();
