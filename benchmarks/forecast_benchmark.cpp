// Benchmark of the daily forecast (issue #5 item 6): the default job — the built-in
// Yuncheng network at its default resolution (500-1000 m segments, 30-min steps, hourly
// output), the shipped demo inputs, 10 hindcast days, 7 forecast days, 200 members — on 1
// and on 2 threads, interleaved, several repetitions. Prints wall and CPU time per run,
// the best and median of each thread count, the speedup (best 1-thread / best 2-thread),
// the machine's load average before each run (the machine is shared: other processes'
// load lowers the speedup), and checks that both thread counts give identical numbers.
//
//   build-fc/bin/qingshui_forecast_bench [repetitions=3] [members=200] [days=7]
//   build-fc/bin/qingshui_forecast_bench --twin [seed=11]
//
// --twin runs the twin experiment of tests/forecast/forecast_test.cpp at the default
// settings (200 members, 30-min steps) instead of the test's reduced ones.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/forecast/forecast.h"
#include "qingshui/forecast/time.h"
#include "qingshui/forecast/twin.h"

namespace {

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a;
  in >> a;
  return a;
}

// Makespan of tasks handed out in order to the first free of `workers` (OpenMP's
// schedule(dynamic, 1)).
double Makespan(const std::vector<double>& tasks, int workers) {
  std::vector<double> free_at(workers, 0.0);
  for (double t : tasks) {
    auto it = std::min_element(free_at.begin(), free_at.end());
    *it += t;
  }
  return *std::max_element(free_at.begin(), free_at.end());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

// Twin experiment at the default settings: error ratio and coverage at the two sections.
int Twin(std::uint64_t seed) {
  using namespace qingshui;
  using namespace qingshui::forecast;
  const std::string inputs_dir = DefaultInputsDir();
  const Network net = LoadNetwork(ManifestNetworkPath(inputs_dir));
  ForecastInputs in = ReadInputs(inputs_dir, net);
  in.observations.clear();
  const std::int64_t as_of = *in.as_of_utc_s;
  const int H = 10, N = 7;
  TruthOptions to;
  to.first_day = LocalDay(as_of) - H;
  to.days = H + N + 1;
  to.seed = seed;
  const Truth truth = SimulateTruth(net, in, to);
  in.observations = SampleObservations(truth, net, LocalMidnightUtc(to.first_day), as_of, seed + 1,
                                       AssimilationOptions());
  double squared[2] = {0, 0};
  int inside = 0, count = 0;
  for (int assimilate : {1, 0}) {
    ForecastOptions o = OptionsFromInputs(in, nullptr);
    o.assimilation.enabled = assimilate == 1;
    o.indicators = {"COD", "NH3N", "TP"};
    const ForecastResult r = RunForecast(net, in, o);
    const int T = r.num_times(), S = r.num_stations(), K = r.num_species();
    for (const std::string station : {"zhangliuzhuang", "miaoqian"}) {
      const int s = static_cast<int>(std::find(r.stations.begin(), r.stations.end(), station) -
                                     r.stations.begin());
      for (int k = 0; k < 3; ++k) {
        double sq = 0.0;
        int in_band = 0;
        for (int t = 0; t < T; ++t) {
          const double x = truth.At(r.times_utc_s[t], s, k);
          auto q = [&](int level) { return r.quantiles[((level * T + t) * S + s) * K + k]; };
          sq += std::pow((q(2) - x) / r.limits_mg_l[2 * K + k], 2);
          in_band += x >= q(0) && x <= q(4);
        }
        squared[assimilate] += sq;
        if (assimilate) {
          inside += in_band;
          count += T;
        }
        std::printf(
            "%-15s %-5s %s: rmse/limit %.3f%s\n", station.c_str(), r.species[k].c_str(),
            assimilate ? "assimilated" : "prior      ", std::sqrt(sq / T),
            assimilate
                ? (", inside 5-95% " + std::to_string(static_cast<double>(in_band) / T)).c_str()
                : "");
      }
    }
  }
  std::printf(
      "twin (seed %llu, %zu observations, 200 members, dt 1800 s): error ratio %.3f, truth inside "
      "5-95%% band %.3f\n",
      static_cast<unsigned long long>(seed), in.observations.size(),
      std::sqrt(squared[1] / squared[0]), static_cast<double>(inside) / count);
  return 0;
}

int main(int argc, char** argv) {
  using namespace qingshui;
  if (argc > 1 && std::string(argv[1]) == "--twin") return Twin(argc > 2 ? std::atoi(argv[2]) : 11);
  const int repetitions = argc > 1 ? std::atoi(argv[1]) : 3;
  const int members = argc > 2 ? std::atoi(argv[2]) : 200;
  const int days = argc > 3 ? std::atoi(argv[3]) : 7;
  const std::string inputs_dir = forecast::DefaultInputsDir();
  const Network net = LoadNetwork(forecast::ManifestNetworkPath(inputs_dir));
  const forecast::ForecastInputs inputs = forecast::ReadInputs(inputs_dir, net);
  forecast::ForecastOptions options = forecast::OptionsFromInputs(inputs, nullptr);
  options.members = members;
  options.days = days;
  std::printf(
      "forecast benchmark: %s, %d segments... %d members, %d days, %d hindcast days, dt %.0f s\n",
      net.name.c_str(), net.Summary().segment_count, members, days, options.hindcast_days,
      options.time_step_s);
  std::printf("%-4s %-8s %8s %8s %10s %10s %s\n", "rep", "threads", "wall_s", "cpu_s", "hindcast_s",
              "ensemble_s", "loadavg_before");
  std::vector<double> wall[3];
  std::vector<double> reference, model_speedup;
  bool identical = true;
  for (int r = 0; r < repetitions; ++r) {
    for (int threads : {1, 2}) {
      options.threads = threads;
      const std::string load = LoadAverage();
      const double cpu0 = CpuSeconds();
      const auto t0 = std::chrono::steady_clock::now();
      const forecast::ForecastResult result = forecast::RunForecast(net, inputs, options);
      const double w = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double cpu = CpuSeconds() - cpu0;
      wall[threads].push_back(w);
      std::printf("%-4d %-8d %8.2f %8.2f %10.2f %10.2f %s\n", r, threads, w, cpu,
                  result.hindcast_time_s, result.ensemble_time_s, load.c_str());
      std::fflush(stdout);
      if (threads == 1) {
        // The schedule model: serial CPU + each phase's makespan on 1 and 2 workers, from
        // the tasks' own CPU clocks (unaffected by other processes' load, unlike wall time).
        double t1 = result.serial_cpu_s, t2 = result.serial_cpu_s;
        std::printf("     serial part %.2f s CPU;", result.serial_cpu_s);
        for (const auto& phase : result.phases) {
          t1 += Makespan(phase.task_cpu_s, 1);
          t2 += Makespan(phase.task_cpu_s, 2);
          std::printf(" %s: %zu tasks %.2f s;", phase.name.c_str(), phase.task_cpu_s.size(),
                      Makespan(phase.task_cpu_s, 1));
        }
        std::printf("\n     schedule model: 1 thread %.2f s, 2 threads %.2f s, speedup %.2fx\n", t1,
                    t2, t1 / t2);
        model_speedup.push_back(t1 / t2);
      }
      if (reference.empty()) {
        reference = result.quantiles;
      } else if (reference != result.quantiles) {
        identical = false;
      }
    }
  }
  const double best1 = *std::min_element(wall[1].begin(), wall[1].end());
  const double best2 = *std::min_element(wall[2].begin(), wall[2].end());
  std::printf("1 thread:  best %.2f s, median %.2f s\n", best1, Median(wall[1]));
  std::printf("2 threads: best %.2f s, median %.2f s\n", best2, Median(wall[2]));
  std::printf("speedup (best/best): %.2fx; median/median: %.2fx\n", best1 / best2,
              Median(wall[1]) / Median(wall[2]));
  std::printf("schedule-model speedup (median over repetitions): %.2fx\n", Median(model_speedup));
  std::printf("quantiles identical across thread counts and repetitions: %s\n",
              identical ? "yes" : "NO");
  return identical ? 0 : 1;
}
