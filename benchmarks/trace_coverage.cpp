// Calibration of the source tracer in every season (issue #16, "Calibrated in every
// season"): one-release drills in every month of the year with the issue's distributions —
// COD 0.2-5 t, NH3-N/TP ratios from the kind's prior or independent of the kind, durations
// 0.5-24 h, velocity ×0.75-1.25, dispersion ×0.4-1.6, storage zones mismatched, rain days in
// some windows, the truth simulated on a 4× finer grid at a smaller step — each traced with
// the default options (as `qingshui trace`), scored by the nominal 50/80/90/95% sets.
//
//   qingshui_trace_coverage [--months 1,...,12] [--drills-per-month 8] [--seed 1] [--threads 1]
//       [--out coverage.csv] [--rain-share 0.33] [--atypical-share 0.5] [--refine 4]
//       [--truth-step 450] [--storage-spread 2] [--network N] [--priors P]
//
// Writes one CSV row per drill (--out) and prints Markdown tables per month and per stratum
// for benchmarks/RESULTS.md. Drills run in parallel over --threads (each trace on one
// thread); the results do not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
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

const double kLevels[4] = {0.5, 0.8, 0.9, 0.95};
constexpr double kConfident = 0.9;  // a wrong label with this posterior is a confident miss

struct Row {
  int month = 0, index = 0;
  std::uint64_t seed = 0;
  std::string river, start, source, kind;
  DrillStratum stratum;
  double cod_kg = 0, ratio_z = NAN, km_first = NAN, duration_h = 0;
  double velocity_factor = 1, dispersion_factor = 1, storage_area = 1, storage_exchange = 1;
  int rain_days = 0;
  int rank = 0;
  double p_truth = 0;
  bool in[4] = {false, false, false, false};
  int size[4] = {0, 0, 0, 0};
  std::string top_label;
  double top_p = 0, max_wrong_p = 0;
  bool confident_miss = false;
  bool miss_is_overflow = false;  // the confidently named source spilled in the rain
  int overflowing = 0;            // sources spilling in the window
  double query_s = 0, truth_s = 0;
  std::string error;  // a drill that threw (counted apart)
};

std::string Label(const SourceEstimate& s) {
  return s.id == "unregistered" ? "unregistered:" + s.reach : s.id;
}

// The smallest set of leading hypotheses holding `level`, as labels — the same walk as
// TraceResult::credible_set_90 (tracing/src/trace_diagnostics.cpp).
std::set<std::string> CredibleSet(const TraceResult& r, double level) {
  double acc = 0.0;
  std::set<std::string> set;
  for (const auto& h : r.hypotheses) {
    if (acc >= level) break;
    acc += h.probability;
    if (h.sources.empty()) set.insert("no release");
    for (const auto& s : h.sources) set.insert(Label(s));
  }
  return set;
}

void PrintTable(const std::string& title, const std::vector<Row>& rows,
                const std::function<std::string(const Row&)>& key,
                const std::vector<std::string>& order) {
  std::map<std::string, std::vector<const Row*>> groups;
  for (const auto& r : rows) {
    if (r.error.empty()) groups[key(r)].push_back(&r);
  }
  std::printf(
      "\n| %s | n | in 50%% set | in 80%% set | in 90%% set | in 95%% set | top-1 | top-3 | "
      "confident misses (of which a rain overflow) | median 90%% set | median query s |\n",
      title.c_str());
  std::printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
  std::vector<std::string> keys = order;
  for (const auto& [k, v] : groups) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  }
  for (const auto& k : keys) {
    auto it = groups.find(k);
    if (it == groups.end()) continue;
    const auto& g = it->second;
    const double n = static_cast<double>(g.size());
    int in[4] = {0, 0, 0, 0}, top1 = 0, top3 = 0, miss = 0, overflow = 0;
    std::vector<double> size90, query;
    for (const Row* r : g) {
      for (int l = 0; l < 4; ++l) in[l] += r->in[l];
      top1 += r->rank == 1;
      top3 += r->rank >= 1 && r->rank <= 3;
      miss += r->confident_miss;
      overflow += r->miss_is_overflow;
      size90.push_back(r->size[2]);
      query.push_back(r->query_s);
    }
    std::printf(
        "| %s | %zu | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %.0f%% | %d (%.1f%%; %d) | "
        "%.1f | %.2f |\n",
        k.c_str(), g.size(), 100 * in[0] / n, 100 * in[1] / n, 100 * in[2] / n, 100 * in[3] / n,
        100 * top1 / n, 100 * top3 / n, miss, 100 * miss / n, overflow, Median(size90),
        Median(query));
  }
}

std::string Csv(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void WriteCsv(const std::string& path, const std::vector<Row>& rows) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write " + tmp);
    out << "month,drill,seed,river,start,source,kind,mass_class,cod_kg,ratio,ratio_z,distance,"
           "km_to_first_station,rain,rain_days,duration_h,velocity_factor,dispersion_factor,"
           "storage_area_factor,storage_exchange_factor,rank,p_truth,in50,in80,in90,in95,size50,"
           "size80,size90,size95,top_label,top_p,max_wrong_p,confident_miss,miss_is_overflow,"
           "overflowing_sources,query_s,truth_s,"
           "error\n";
    char b[1024];
    for (const auto& r : rows) {
      std::snprintf(b, sizeof b,
                    "%d,%d,%llu,%s,%s,%s,%s,%s,%.1f,%s,%.2f,%s,%.2f,%d,%d,%.3f,%.4f,%.4f,%.4f,%.4f,"
                    "%d,%.4g,%d,%d,%d,%d,%d,%d,%d,%d,%s,%.4g,%.4g,%d,%d,%d,%.3f,%.2f,%s\n",
                    r.month, r.index, static_cast<unsigned long long>(r.seed), r.river.c_str(),
                    r.start.c_str(), r.source.c_str(), r.kind.c_str(), r.stratum.mass.c_str(),
                    r.cod_kg, r.stratum.ratio.c_str(), r.ratio_z, r.stratum.distance.c_str(),
                    r.km_first, r.stratum.rain ? 1 : 0, r.rain_days, r.duration_h,
                    r.velocity_factor, r.dispersion_factor, r.storage_area, r.storage_exchange,
                    r.rank, r.p_truth, r.in[0], r.in[1], r.in[2], r.in[3], r.size[0], r.size[1],
                    r.size[2], r.size[3], Csv(r.top_label).c_str(), r.top_p, r.max_wrong_p,
                    r.confident_miss ? 1 : 0, r.miss_is_overflow ? 1 : 0, r.overflowing, r.query_s,
                    r.truth_s, Csv(r.error).c_str());
      out << b;
    }
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error("cannot rename " + tmp);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> months = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  int per_month = 8, threads = 1, refine = 4;
  std::uint64_t seed = 1;
  double rain_share = 1.0 / 3.0, atypical_share = 0.5, truth_step = 450.0, storage_spread = 2.0;
  std::string out_path;
  std::string network = QINGSHUI_SOURCE_DIR "/data/yuncheng/network.yaml";
  std::string priors_path = QINGSHUI_SOURCE_DIR "/data/tracing/source_signatures.yaml";
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return bench::NextValue(argc, argv, &i); };
    const std::string a = argv[i];
    if (a == "--months") {
      months.clear();
      std::stringstream ss(next());
      std::string m;
      while (std::getline(ss, m, ',')) months.push_back(std::atoi(m.c_str()));
    } else if (a == "--drills-per-month") {
      per_month = std::atoi(next().c_str());
    } else if (a == "--seed") {
      seed = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--threads") {
      threads = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--out") {
      out_path = next();
    } else if (a == "--rain-share") {
      rain_share = std::atof(next().c_str());
    } else if (a == "--atypical-share") {
      atypical_share = std::atof(next().c_str());
    } else if (a == "--refine") {
      refine = std::atoi(next().c_str());
    } else if (a == "--truth-step") {
      truth_step = std::atof(next().c_str());
    } else if (a == "--storage-spread") {
      storage_spread = std::atof(next().c_str());
    } else if (a == "--network") {
      network = next();
    } else if (a == "--priors") {
      priors_path = next();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--months 1,...,12] [--drills-per-month N] [--seed S] [--threads T] "
                   "[--out CSV] [--rain-share P] [--atypical-share P] [--refine K] "
                   "[--truth-step S] [--storage-spread X] [--network N] [--priors P]\n",
                   argv[0]);
      return 2;
    }
  }
  for (int m : months) {
    if (m < 1 || m > 12) {
      std::fprintf(stderr, "--months: expected 1 to 12, got %d\n", m);
      return 2;
    }
  }
  const Network net = LoadNetwork(network);
  TraceOptions to;  // the defaults `qingshui trace` uses
  to.priors = LoadTracingPriors(priors_path);
  to.num_threads = 1;
  const std::vector<std::string> rivers = {"fen", "sushui"};

  std::vector<Row> rows(months.size() * per_month);
  std::atomic<size_t> next_job{0};
  std::mutex print;
  auto work = [&]() {
    for (size_t job; (job = next_job++) < rows.size();) {
      Row& row = rows[job];
      row.month = months[job / per_month];
      row.index = static_cast<int>(job % per_month);
      row.seed = seed * 1000000 + row.month * 1000 + row.index;
      row.river = rivers[row.index % rivers.size()];
      DrillOptions o;
      o.river = row.river;
      o.num_sources = 1;
      o.seed = row.seed;
      o.month = row.month;
      o.cod_min_kg = 200.0;
      o.cod_max_kg = 5000.0;
      o.duration_min_h = 0.5;
      o.duration_max_h = 24.0;
      o.velocity_spread = 0.25;
      o.dispersion_spread = 0.6;
      o.independent_ratio_share = atypical_share;
      o.truth_refine = refine;
      o.truth_time_step_s = truth_step;
      o.storage_area_spread = storage_spread;
      o.storage_exchange_spread = storage_spread;
      // Rain in a share of the windows, 1 or 2 days (its own seeded stream).
      NormalGenerator dice(row.seed * 31 + 7);
      if (dice.Uniform() < rain_share) o.rain_days = dice.Uniform() < 0.5 ? 1 : 2;
      row.rain_days = o.rain_days;
      try {
        const DrillTruth truth = MakeDrill(net, to.priors, o);
        row.stratum = StratumOf(truth);
        row.start = LocalDate(truth.scenario.start_s);
        row.source = truth.sources[0];
        row.kind = ToString(net.FindSource(row.source)->kind);
        row.cod_kg = truth.cod_kg[0];
        row.ratio_z = truth.ratio_z[0];
        row.km_first = truth.first_station_km[0];
        row.duration_h = truth.scenario.events[0].duration_s / 3600.0;
        row.velocity_factor = truth.scenario.velocity_factor;
        row.dispersion_factor = truth.scenario.dispersion_factor;
        row.storage_area = truth.storage_area_factor;
        row.storage_exchange = truth.storage_exchange_factor;
        const auto t0 = std::chrono::steady_clock::now();
        const ScenarioRun sim = RunDrill(net, truth);
        row.truth_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ObservationSet obs;
        obs.rows = sim.observations;
        const TraceResult r = Trace(net, obs, to);
        row.query_s = r.elapsed_s;
        std::vector<std::pair<double, std::string>> ranked;
        for (const auto& [l, p] : r.source_probability) ranked.push_back({-p, l});
        std::sort(ranked.begin(), ranked.end());
        for (size_t k = 0; k < ranked.size(); ++k) {
          if (ranked[k].second == row.source) row.rank = static_cast<int>(k) + 1;
          if (ranked[k].second != row.source)
            row.max_wrong_p = std::max(row.max_wrong_p, -ranked[k].first);
        }
        auto pt = r.source_probability.find(row.source);
        row.p_truth = pt == r.source_probability.end() ? 0.0 : pt->second;
        for (int l = 0; l < 4; ++l) {
          const std::set<std::string> set = CredibleSet(r, kLevels[l]);
          row.in[l] = set.count(row.source) > 0;
          row.size[l] = static_cast<int>(set.size());
        }
        if (!ranked.empty()) {
          row.top_label = ranked[0].second;
          row.top_p = -ranked[0].first;
        }
        row.confident_miss = row.max_wrong_p >= kConfident;
        row.overflowing = static_cast<int>(truth.overflow_sources.size());
        for (const auto& [l, p] : r.source_probability) {
          if (l != row.source && p >= kConfident &&
              std::count(truth.overflow_sources.begin(), truth.overflow_sources.end(), l)) {
            row.miss_is_overflow = true;
          }
        }
      } catch (const std::exception& e) {
        row.error = e.what();
      }
      std::lock_guard<std::mutex> lock(print);
      std::fprintf(stderr,
                   "month %2d drill %2d %-7s %-28s %-9s %-8s %5.1f km rain %d: rank %d p %.2f "
                   "in90 %d size90 %d top %s (%.2f)%s overflows %d truth %.1f s query %.2f s%s%s\n",
                   row.month, row.index, row.river.c_str(), row.source.c_str(),
                   row.stratum.mass.c_str(), row.stratum.ratio.c_str(), row.km_first, row.rain_days,
                   row.rank, row.p_truth, row.in[2], row.size[2], row.top_label.c_str(), row.top_p,
                   row.confident_miss ? " CONFIDENT MISS" : "", row.overflowing, row.truth_s,
                   row.query_s, row.error.empty() ? "" : " ERROR: ", row.error.c_str());
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(work);
  for (auto& t : pool) t.join();

  int errors = 0;
  for (const auto& r : rows) errors += !r.error.empty();
  std::printf(
      "## Coverage by season (seed %llu, %d drills per month, rain share %.2f, atypical "
      "ratios %.2f, truth %dx finer at %.0f s, storage x1/%.1f-%.1f)\n",
      static_cast<unsigned long long>(seed), per_month, rain_share, atypical_share, refine,
      truth_step, storage_spread, storage_spread);
  if (errors) std::printf("\n%d drills failed (see the CSV's error column).\n", errors);
  const std::vector<std::string> none;
  PrintTable(
      "month", rows,
      [](const Row& r) {
        char b[8];
        std::snprintf(b, sizeof b, "%02d", r.month);
        return std::string(b);
      },
      none);
  PrintTable(
      "all", rows, [](const Row&) { return std::string("all"); }, none);
  PrintTable(
      "season", rows,
      [](const Row& r) {
        return std::string(r.month >= 6 && r.month <= 9 ? "wet (Jun-Sep)" : "dry (Oct-May)");
      },
      none);
  PrintTable("COD mass", rows, [](const Row& r) { return r.stratum.mass; },
             {"0.2-0.6 t", "0.6-1.7 t", "1.7-5 t"});
  PrintTable("NH3-N/TP ratio", rows, [](const Row& r) { return r.stratum.ratio; },
             {"typical", "atypical"});
  PrintTable("km to first section", rows, [](const Row& r) { return r.stratum.distance; },
             {"< 10 km", "10-30 km", ">= 30 km"});
  PrintTable("rain in window", rows,
             [](const Row& r) { return std::string(r.stratum.rain ? "rain" : "no rain"); },
             {"no rain", "rain"});
  PrintTable(
      "river", rows, [](const Row& r) { return r.river; }, none);
  if (!out_path.empty()) WriteCsv(out_path, rows);
  return 0;
}
