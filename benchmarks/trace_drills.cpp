// Verification drills of the source tracer (issue #6 item 8; docs/tracing.md,
// "Verification"): N seeded drills per river with one release, two-release drills and
// no-release drills on the default network; prints one line per drill and the statistics
// the issue asks for, as Markdown for benchmarks/RESULTS.md.
//
//   qingshui_trace_drills [--drills 30] [--two 20] [--none 10] [--seed 1] [--threads 1]
//                         [--network N] [--priors P] [--rivers fen,sushui] [--start ISO]
//                         [--dump DIR] [--team]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"
#include "qingshui/core/network.h"
#include "qingshui/tracing/drill.h"
#include "qingshui/tracing/priors.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"

using namespace qingshui;
using namespace qingshui::tracing;
using qingshui::bench::Median;

namespace {

double Fraction(const std::vector<bool>& v) {
  if (v.empty()) return NAN;
  return static_cast<double>(std::count(v.begin(), v.end(), true)) / v.size();
}

struct Tally {
  std::vector<bool> in_set, first, top3, start_cov, mass_cov, mass_cov_all;
  std::vector<double> set_size, start_err, mass_err, elapsed;
  std::vector<bool> far_flags;
  int n = 0;
};

}  // namespace

int main(int argc, char** argv) {
  int drills = 30, two = 20, none = 10, threads = 1;
  std::uint64_t seed = 1;
  std::string network = QINGSHUI_SOURCE_DIR "/data/yuncheng/network.yaml";
  std::string priors_path = QINGSHUI_SOURCE_DIR "/data/tracing/source_signatures.yaml";
  std::vector<std::string> rivers = {"fen", "sushui"};
  std::string start = DrillOptions().start;  // window start (ISO 8601 with offset)
  std::string dump;  // directory: each drill's observations and true releases, to re-trace
  bool team = false;  // --team: each drill traced with a team at its first source
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return bench::NextValue(argc, argv, &i); };
    const std::string a = argv[i];
    if (a == "--drills") {
      drills = std::atoi(next().c_str());
    } else if (a == "--two") {
      two = std::atoi(next().c_str());
    } else if (a == "--none") {
      none = std::atoi(next().c_str());
    } else if (a == "--seed") {
      seed = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--threads") {
      threads = std::atoi(next().c_str());
    } else if (a == "--network") {
      network = next();
    } else if (a == "--priors") {
      priors_path = next();
    } else if (a == "--dump") {
      dump = next();
    } else if (a == "--start") {
      start = next();
    } else if (a == "--team") {
      team = true;
    } else if (a == "--rivers") {
      rivers.clear();
      std::stringstream ss(next());
      std::string r;
      while (std::getline(ss, r, ',')) rivers.push_back(r);
    } else {
      std::fprintf(stderr,
                   "usage: %s [--drills N] [--two N] [--none N] [--seed S] [--threads T] [--rivers "
                   "fen,sushui] [--start ISO] [--dump DIR] [--team]\n",
                   argv[0]);
      return 2;
    }
  }
  const Network net = LoadNetwork(network);
  TraceOptions to;
  to.priors = LoadTracingPriors(priors_path);
  to.num_threads = threads;

  auto run = [&](const DrillOptions& o, DrillTruth* truth) {
    *truth = MakeDrill(net, to.priors, o);
    const ScenarioRun sim = RunScenario(net, truth->scenario);
    ObservationSet obs;
    obs.rows = sim.observations;
    if (!dump.empty()) {
      const std::string stem = dump + "/drill_" + std::to_string(o.seed);
      WriteObservationsCsv(stem + ".csv", obs.rows);
      std::FILE* f = std::fopen((stem + ".txt").c_str(), "w");
      if (f) {
        std::fprintf(f, "velocity_factor %.4f dispersion_factor %.4f\n",
                     truth->scenario.velocity_factor, truth->scenario.dispersion_factor);
        for (const auto& e : truth->scenario.events) {
          std::fprintf(f, "%s start %s duration_h %.3f", e.source.c_str(),
                       FormatIsoTime(e.start_s).c_str(), e.duration_s / 3600.0);
          for (const auto& [sp, kg] : e.mass_kg) std::fprintf(f, " %s_kg %.1f", sp.c_str(), kg);
          std::fprintf(f, "\n");
        }
        std::fclose(f);
      }
    }
    TraceOptions drill_options = to;
    if (team && !truth->sources.empty()) {
      // A team at the first true source (docs/tracing.md §7): recommendations at river
      // points too, with their kernels — what --team costs a query.
      const Source* src = net.FindSource(truth->sources[0]);
      if (src) drill_options.team_at = PointLabel(src->reach, src->km);
    }
    return ScoreDrill(*truth, Trace(net, obs, drill_options));
  };

  std::printf("## Drills (seed %llu, %d per river, %d two-source, %d no-release; threads %d)\n\n",
              static_cast<unsigned long long>(seed), drills, two, none, threads);
  std::printf(
      "| drill | river | source | km to 1st station | v x | D x | top (p) | rank | in 90%% set | "
      "set size | start err h | start in CI | mass err COD/NH3N/TP | mass in CI | s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<Tally> tallies(rivers.size() + 1);  // per river, then all
  for (size_t ri = 0; ri < rivers.size(); ++ri) {
    for (int i = 0; i < drills; ++i) {
      DrillOptions o;
      o.river = rivers[ri];
      o.num_sources = 1;
      o.start = start;
      o.seed = seed * 100000 + ri * 1000 + i;
      DrillTruth truth;
      const DrillScore s = run(o, &truth);
      const bool far = s.first_station_km[0] >= 10.0;
      std::string merr, mcov;
      bool all_cov = true;
      for (const char* sp : {"COD", "NH3N", "TP"}) {
        auto it = s.mass_relative_error[0].find(sp);
        char b[32];
        std::snprintf(b, sizeof b, "%s%.2f", merr.empty() ? "" : "/",
                      it == s.mass_relative_error[0].end() ? NAN : it->second);
        merr += b;
        auto ct = s.mass_covered[0].find(sp);
        const bool cv = ct != s.mass_covered[0].end() && ct->second;
        mcov += cv ? "y" : "n";
        all_cov = all_cov && cv;
      }
      std::printf(
          "| %d | %s | %s | %.1f | %.2f | %.2f | %s (%.2f) | %d | %s | %d | %.1f | %s | %s | %s | "
          "%.2f |\n",
          i, rivers[ri].c_str(), s.sources[0].c_str(), s.first_station_km[0],
          truth.scenario.velocity_factor, truth.scenario.dispersion_factor, s.top_label.c_str(),
          s.top_probability, s.rank[0], s.in_set[0] ? "yes" : "no", s.set_size, s.start_error_h[0],
          s.start_covered[0] ? "yes" : "no", merr.c_str(), mcov.c_str(), s.elapsed_s);
      std::fflush(stdout);
      for (Tally* t : {&tallies[ri], &tallies.back()}) {
        ++t->n;
        t->in_set.push_back(s.in_set[0]);
        t->first.push_back(s.rank[0] == 1);
        t->top3.push_back(s.rank[0] >= 1 && s.rank[0] <= 3);
        t->set_size.push_back(s.set_size);
        t->elapsed.push_back(s.elapsed_s);
        if (far) {
          t->start_err.push_back(s.start_error_h[0]);
          t->start_cov.push_back(s.start_covered[0]);
          for (const auto& [sp, e] : s.mass_relative_error[0]) t->mass_err.push_back(e);
          for (const auto& [sp, c] : s.mass_covered[0]) t->mass_cov.push_back(c);
          t->mass_cov_all.push_back(all_cov);
        }
      }
    }
  }
  std::printf(
      "\n| one-release drills | n | truth in 90%% set | median set size | ranked first | in top 3 "
      "| median start error h (>= 10 km) | median mass error (>= 10 km) | start in 90%% CI | mass "
      "in 90%% CI (per species) | all 3 masses in CI | median time s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (size_t ri = 0; ri <= rivers.size(); ++ri) {
    const Tally& t = tallies[ri];
    std::printf(
        "| %s | %d | %.0f%% | %.1f | %.0f%% | %.0f%% | %.2f (n=%zu) | %.0f%% | %.0f%% | %.0f%% | "
        "%.0f%% | %.2f |\n",
        ri < rivers.size() ? rivers[ri].c_str() : "all", t.n, 100 * Fraction(t.in_set),
        Median(t.set_size), 100 * Fraction(t.first), 100 * Fraction(t.top3), Median(t.start_err),
        t.start_err.size(), 100 * Median(t.mass_err), 100 * Fraction(t.start_cov),
        100 * Fraction(t.mass_cov), 100 * Fraction(t.mass_cov_all), Median(t.elapsed));
  }

  if (two > 0) {
    std::printf(
        "\n| two-release drill | sources | top (p) | both in 90%% set | set size | s "
        "|\n|---|---|---|---|---|---|\n");
    std::vector<bool> both;
    for (int i = 0; i < two; ++i) {
      DrillOptions o;
      o.river = rivers[i % rivers.size()];
      o.num_sources = 2;
      o.start = start;
      o.seed = seed * 100000 + 50000 + i;
      DrillTruth truth;
      const DrillScore s = run(o, &truth);
      const bool b = s.in_set[0] && s.in_set[1];
      both.push_back(b);
      std::printf("| %d | %s + %s | %s (%.2f) | %s | %d | %.2f |\n", i, s.sources[0].c_str(),
                  s.sources[1].c_str(), s.top_label.c_str(), s.top_probability, b ? "yes" : "no",
                  s.set_size, s.elapsed_s);
      std::fflush(stdout);
    }
    std::printf("\nTwo-release drills: both sources in the 90%% set in %.0f%% (%d drills).\n",
                100 * Fraction(both), two);
  }
  if (none > 0) {
    std::vector<bool> first;
    std::vector<double> p;
    for (int i = 0; i < none; ++i) {
      DrillOptions o;
      o.river = rivers[i % rivers.size()];
      o.num_sources = 0;
      o.start = start;
      o.seed = seed * 100000 + 90000 + i;
      DrillTruth truth;
      const DrillScore s = run(o, &truth);
      first.push_back(s.no_release_first);
      p.push_back(s.no_release_probability);
    }
    std::printf(
        "\nNo-release drills: \"no release\" ranked first in %.0f%% (%d drills), median P(no "
        "release) %.2f.\n",
        100 * Fraction(first), none, Median(p));
  }
  return 0;
}
