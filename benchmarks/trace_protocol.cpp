// The first-alarm protocol of issues #16 ("measured protocol") and #21: a trace starts when a
// routine sample first looks wrong, not a week later with the whole plume seen.
//
// Per drill (tracing/drill.h: a release at a registered source of one river, perturbed
// hydraulics, the full network simulation):
//  * routine sampling: the river sections every 4 h with 10% noise;
//  * alarm: the first routine sample at a section above 1.5x that station's median of the
//    previous 24 h (at least three samples) for any species;
//  * from the alarm, every hour: a trace with everything sampled so far; with a team, it
//    takes the top recommendation within the next `--within-h` hours that it can reach at
//    `--team-speed-kmh` from its last place (TraceOptions::team_at: stations and river
//    points; it starts at the section that raised the alarm; the sample's value is the
//    simulated one with the same noise) while the routine sampling goes on. The same drill is
//    also run with routine sampling only.
// Scores per arm: the truth's place (registered sources within 1.5 km of it on its reach count
// as one place) at P >= 0.9 within 6 h and within 12 h of the alarm; median time to that;
// drills ever confidently wrong (another place at P >= 0.9 at some step); steps where the
// truth's place loses more than 0.3 from one hour to the next (issue #21 item 3).
//
//   qingshui_trace_protocol [--drills 12] [--months 2024-06-01,2024-04-15] [--seed 1]
//                           [--hours 12] [--within-h 2] [--team-speed-kmh 30] [--threads 1]
//                           [--csv FILE] [--dump DIR] [--only I]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
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

constexpr double kHour = 3600.0;
constexpr double kRoutineIntervalS = 4 * kHour;
constexpr double kNoise = 0.1;
constexpr double kAlarmFactor = 1.5;     // over the station's median of the previous 24 h
constexpr double kPlaceKm = 1.5;         // sources this close on one reach are one place
constexpr double kConfident = 0.9;
constexpr double kDriftDrop = 0.3;

// Simulated (noise-free) values at every station, hourly: [station][species] -> by hour.
struct Truth {
  double t0 = 0.0;
  std::map<std::pair<std::string, std::string>, std::vector<double>> series;
  double At(const std::string& station, const std::string& species, double t) const {
    auto it = series.find({station, species});
    if (it == series.end()) return NAN;
    const long i = std::lround((t - t0) / kHour);
    if (i < 0 || i >= static_cast<long>(it->second.size())) return NAN;
    return it->second[i];
  }
};

// Every station hourly; a river point (reach, km) on first use, by its own run of the same
// scenario (keyed by PointLabel, as the tracer names points).
Truth SimulateHourly(const Network& net, Scenario sc, const std::string& reach = "",
                     double km = NAN) {
  sc.sampling.interval_s = kHour;
  sc.sampling.noise = 0.0;
  sc.sampling.stations.clear();
  sc.sampling.points.clear();
  if (reach.empty()) {
    sc.sampling.stations_keyword = "all";
  } else {
    sc.sampling.stations_keyword = "none";
    ScenarioPoint p;
    p.reach = reach;
    p.km = km;
    sc.sampling.points.push_back(p);
  }
  const ScenarioRun run = RunScenario(net, sc);
  Truth t;
  t.t0 = sc.start_s;
  for (size_t i = 0; i < run.observations.size(); ++i) {
    const Observation& o = run.observations[i];
    t.series[{SiteLabel(o), o.species}].push_back(run.exact_mg_l[i]);
  }
  return t;
}

struct PointTruths {
  const Network* net = nullptr;
  const Scenario* scenario = nullptr;
  std::map<std::string, Truth> by_label;
  double At(const std::string& reach, double km, const std::string& species, double t) {
    const std::string label = PointLabel(reach, km);
    auto it = by_label.find(label);
    if (it == by_label.end()) it = by_label.emplace(label, SimulateHourly(*net, *scenario, reach, km)).first;
    return it->second.At(label, species, t);
  }
};

struct Place {
  std::set<std::string> labels;  // source ids that count as the truth's place
};

Place PlaceOf(const Network& net, const std::string& id) {
  Place p;
  const Source* s = net.FindSource(id);
  for (const auto& o : net.sources) {
    if (o.reach == s->reach && std::fabs(o.km - s->km) <= kPlaceKm) p.labels.insert(o.id);
  }
  return p;
}

// The place of a source label: the set of labels within kPlaceKm on its reach.
bool SamePlace(const Network& net, const std::string& a, const std::string& b) {
  const Source* sa = net.FindSource(a);
  const Source* sb = net.FindSource(b);
  if (!sa || !sb) return a == b;
  return sa->reach == sb->reach && std::fabs(sa->km - sb->km) <= kPlaceKm;
}

struct StepRecord {
  double hours_after_alarm = 0.0;
  double p_truth_place = 0.0;
  std::string top;
  double p_top = 0.0;
  bool confident_wrong = false;
  std::string recommendation;
  double elapsed_s = 0.0;
};

struct ArmResult {
  bool detected = false;
  double alarm_delay_h = NAN;  // alarm time after the release began
  std::vector<StepRecord> steps;
};

// Marginal probability of each place (labels of registered sources summed per place).
double PlaceProbability(const TraceResult& r, const Place& place) {
  double p = 0.0;
  for (const auto& [label, prob] : r.source_probability) {
    if (place.labels.count(label)) p += prob;
  }
  return std::min(1.0, p);
}

ArmResult RunArm(const Network& net, const TraceOptions& base, const DrillTruth& drill,
                 const Truth& truth, bool team, double hours, double within_h,
                 double team_speed_kmh, std::uint64_t seed, const std::string& dump_dir) {
  ArmResult out;
  const Scenario& sc = drill.scenario;
  std::vector<std::string> sections;
  for (const auto& st : net.stations) {
    if (st.kind != "outfall_monitor") sections.push_back(st.id);
  }
  std::vector<std::string> species;
  for (const auto& sp : net.species) species.push_back(sp.id);
  NormalGenerator noise(seed);
  auto sample = [&](const std::string& station, const std::string& sp, double t) {
    const double v = truth.At(station, sp, t);
    return std::max(0.0, v * (1.0 + kNoise * noise.Next()));
  };
  // Routine samples for the whole window, drawn up front so that both arms see the same ones
  // (the team's samples come from their own generator).
  std::vector<Observation> routine;
  for (double t = sc.start_s; t <= sc.end_s + 1e-6; t += kRoutineIntervalS) {
    for (const auto& st : sections) {
      for (const auto& sp : species) {
        Observation o;
        o.time_s = t;
        o.station = st;
        o.species = sp;
        o.value_mg_l = sample(st, sp, t);
        routine.push_back(o);
      }
    }
  }
  // Alarm.
  double t_alarm = NAN;
  std::string alarm_station;
  for (size_t i = 0; i < routine.size() && !std::isfinite(t_alarm); ++i) {
    const Observation& o = routine[i];
    std::vector<double> prev;
    for (const auto& q : routine) {
      if (q.station == o.station && q.species == o.species && q.time_s < o.time_s &&
          q.time_s >= o.time_s - 24 * kHour)
        prev.push_back(q.value_mg_l);
    }
    if (prev.size() >= 3 && o.value_mg_l > kAlarmFactor * Median(prev)) {
      t_alarm = o.time_s;
      alarm_station = o.station;
    }
  }
  if (!std::isfinite(t_alarm)) return out;
  out.detected = true;
  out.alarm_delay_h = (t_alarm - sc.events[0].start_s) / kHour;
  const Place place = PlaceOf(net, drill.sources[0]);
  NormalGenerator team_noise(seed * 31 + 7);
  std::vector<Observation> team_samples;
  PointTruths points;
  points.net = &net;
  points.scenario = &sc;
  // The team starts at the section that raised the alarm and moves with each sample.
  std::string team_at = alarm_station;
  for (int k = 0; k <= static_cast<int>(hours); ++k) {
    const double now = t_alarm + k * kHour;
    if (now > sc.end_s) break;
    ObservationSet obs;
    for (const auto& o : routine) {
      if (o.time_s <= now + 1e-6) obs.rows.push_back(o);
    }
    for (const auto& o : team_samples) {
      if (o.time_s <= now + 1e-6) obs.rows.push_back(o);
    }
    if (!dump_dir.empty()) {
      WriteObservationsCsv(dump_dir + "/drill_" + std::to_string(seed) + (team ? "_team" : "_routine") +
                               "_h" + std::to_string(k) + ".csv",
                           obs.rows);
    }
    TraceOptions to = base;
    to.start_s = sc.start_s;
    to.end_s = now;
    if (team) {
      to.recommend_within_s = within_h * kHour;
      to.team_at = team_at;
      to.team_speed_kmh = team_speed_kmh;
    }
    const TraceResult r = Trace(net, obs, to);
    StepRecord s;
    s.hours_after_alarm = k;
    s.p_truth_place = PlaceProbability(r, place);
    s.elapsed_s = r.elapsed_s;
    double best = -1.0;
    for (const auto& [label, prob] : r.source_probability) {
      if (prob > best) {
        best = prob;
        s.top = label;
      }
    }
    s.p_top = best;
    // Confidently wrong: some label's place (the labels within kPlaceKm of it on its reach;
    // "no release" and unregistered reaches alone) holds P >= 0.9 and shares nothing with the
    // truth's place.
    for (const auto& [label, prob] : r.source_probability) {
      double p_place = 0.0;
      bool touches_truth = false;
      for (const auto& [other, p2] : r.source_probability) {
        if (!SamePlace(net, label, other)) continue;
        p_place += p2;
        touches_truth = touches_truth || place.labels.count(other) > 0;
      }
      if (p_place >= kConfident && !touches_truth) s.confident_wrong = true;
    }
    if (team) {
      for (const auto& rec : r.next_samples) {
        if (!rec.within_window) continue;
        // The team samples there at the recommended (hourly) time.
        for (const auto& sp : species) {
          const double v = rec.IsPoint() ? points.At(rec.reach, rec.km, sp, rec.time_s)
                                         : truth.At(rec.station, sp, rec.time_s);
          if (!std::isfinite(v)) continue;
          Observation o;
          o.time_s = rec.time_s;
          o.station = rec.station;
          o.reach = rec.reach;
          o.km = rec.km;
          o.species = sp;
          o.value_mg_l = std::max(0.0, v * (1.0 + kNoise * team_noise.Next()));
          team_samples.push_back(o);
        }
        team_at = rec.IsPoint() ? PointLabel(rec.reach, rec.km) : rec.station;
        s.recommendation =
            team_at + "@+" + std::to_string(static_cast<int>(std::lround((rec.time_s - now) / kHour))) +
            "h";
        break;
      }
    }
    out.steps.push_back(s);
  }
  return out;
}

struct Tally {
  int drills = 0, detected = 0, within6 = 0, within12 = 0, ever_wrong = 0, steps = 0, drops = 0;
  std::vector<double> time_to_confident, alarm_delay, elapsed;
};

void Score(const ArmResult& a, Tally* t) {
  ++t->drills;
  if (!a.detected) return;
  ++t->detected;
  t->alarm_delay.push_back(a.alarm_delay_h);
  double first = INFINITY;
  bool wrong = false;
  for (size_t i = 0; i < a.steps.size(); ++i) {
    const StepRecord& s = a.steps[i];
    if (s.p_truth_place >= kConfident && !std::isfinite(first)) first = s.hours_after_alarm;
    wrong = wrong || s.confident_wrong;
    t->elapsed.push_back(s.elapsed_s);
    if (i > 0) {
      ++t->steps;
      if (a.steps[i - 1].p_truth_place - s.p_truth_place > kDriftDrop) ++t->drops;
    }
  }
  if (first <= 6) ++t->within6;
  if (first <= 12) ++t->within12;
  t->time_to_confident.push_back(first);
  if (wrong) ++t->ever_wrong;
}

}  // namespace

int main(int argc, char** argv) {
  int drills = 12, threads = 1;
  double hours = 12, within_h = 2, team_speed_kmh = 30;
  std::uint64_t seed = 1;
  std::vector<std::string> months = {"2024-06-01T00:00:00+08:00", "2024-04-15T00:00:00+08:00"};
  std::string network = QINGSHUI_SOURCE_DIR "/data/yuncheng/network.yaml";
  std::string priors_path = QINGSHUI_SOURCE_DIR "/data/tracing/source_signatures.yaml";
  std::string csv_path, dump_dir;
  int only = -1;  // run only this drill index (with --dump, to look at one)
  for (int i = 1; i < argc; ++i) {
    auto next = [&] { return bench::NextValue(argc, argv, &i); };
    const std::string a = argv[i];
    if (a == "--drills") {
      drills = std::atoi(next().c_str());
    } else if (a == "--seed") {
      seed = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--hours") {
      hours = std::atof(next().c_str());
    } else if (a == "--within-h") {
      within_h = std::atof(next().c_str());
    } else if (a == "--team-speed-kmh") {
      team_speed_kmh = std::atof(next().c_str());
    } else if (a == "--threads") {
      threads = std::atoi(next().c_str());
    } else if (a == "--months") {
      months.clear();
      std::stringstream ss(next());
      std::string m;
      while (std::getline(ss, m, ',')) months.push_back(m.size() == 10 ? m + "T00:00:00+08:00" : m);
    } else if (a == "--network") {
      network = next();
    } else if (a == "--priors") {
      priors_path = next();
    } else if (a == "--dump") {
      dump_dir = next();
    } else if (a == "--only") {
      only = std::atoi(next().c_str());
    } else if (a == "--csv") {
      csv_path = next();
    } else {
      std::fprintf(stderr,
                   "usage: %s [--drills N] [--months 2024-06-01,2024-04-15] [--seed S] [--hours H] "
                   "[--within-h H] [--team-speed-kmh V] [--threads T] [--csv FILE] [--dump DIR --only I]\n",
                   argv[0]);
      return 2;
    }
  }
  const Network net = LoadNetwork(network);
  TraceOptions base;
  base.priors = LoadTracingPriors(priors_path);
  base.num_threads = threads;
  std::FILE* csv = csv_path.empty() ? nullptr : std::fopen(csv_path.c_str(), "w");
  if (csv) {
    std::fprintf(csv,
                 "month,drill,source,arm,alarm_delay_h,hours_after_alarm,p_truth_place,top,p_top,"
                 "confident_wrong,recommendation,elapsed_s\n");
  }
  std::printf("## First-alarm protocol (seed %llu, %d drills per month, %g h after the alarm, "
              "team window %g h)\n\n",
              static_cast<unsigned long long>(seed), drills, hours, within_h);
  std::printf("| month | arm | drills | alarm raised | truth's place P >= 0.9 within 6 h | within "
              "12 h | median h to it | ever confidently wrong | steps losing > 0.3 | median "
              "alarm delay h | median trace s |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& month : months) {
    Tally tallies[2];
    for (int i = 0; i < drills; ++i) {
      if (only >= 0 && i != only) continue;
      DrillOptions o;
      o.river = i % 2 ? "sushui" : "fen";
      o.num_sources = 1;
      o.start = month;
      o.seed = seed * 100000 + 70000 + i;
      const DrillTruth drill = MakeDrill(net, base.priors, o);
      const Truth truth = SimulateHourly(net, drill.scenario);
      for (int arm = 0; arm < 2; ++arm) {
        const ArmResult a = RunArm(net, base, drill, truth, arm == 1, hours, within_h,
                                   team_speed_kmh, o.seed, dump_dir);
        Score(a, &tallies[arm]);
        if (csv) {
          for (const auto& s : a.steps) {
            std::fprintf(csv, "%s,%d,%s,%s,%.2f,%.0f,%.4f,%s,%.4f,%d,%s,%.3f\n",
                         month.substr(0, 10).c_str(), i, drill.sources[0].c_str(),
                         arm ? "team" : "routine", a.alarm_delay_h, s.hours_after_alarm,
                         s.p_truth_place, s.top.c_str(), s.p_top, s.confident_wrong ? 1 : 0,
                         s.recommendation.c_str(), s.elapsed_s);
          }
          if (!a.detected) {
            std::fprintf(csv, "%s,%d,%s,%s,,,,,,,,\n", month.substr(0, 10).c_str(), i,
                         drill.sources[0].c_str(), arm ? "team" : "routine");
          }
          std::fflush(csv);
        }
      }
    }
    for (int arm = 0; arm < 2; ++arm) {
      const Tally& t = tallies[arm];
      const double d = std::max(1, t.detected);
      std::printf("| %s | %s | %d | %d | %.0f%% | %.0f%% | %.1f | %.0f%% | %.1f%% | %.1f | %.2f |\n",
                  month.substr(0, 10).c_str(), arm ? "routine + team" : "routine only", t.drills,
                  t.detected, 100.0 * t.within6 / d, 100.0 * t.within12 / d,
                  Median(t.time_to_confident, /*keep_infinite=*/true), 100.0 * t.ever_wrong / d,
                  100.0 * t.drops / std::max(1, t.steps), Median(t.alarm_delay),
                  Median(t.elapsed));
      std::fflush(stdout);
    }
  }
  if (csv) std::fclose(csv);
  return 0;
}
