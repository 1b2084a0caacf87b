// Synthetic events for drills and tests: a scenario YAML names the period, the hydrology
// (velocity and dispersion scaled against the network's estimates), releases at sources or
// at any point of a reach, and how the stations are sampled. RunScenario runs the network's
// full water-quality simulation (daily hydraulics, every source's loads, the releases) and
// samples the stations with relative noise from a seeded generator.
//
// File format (docs/tracing.md, "Scenario file"):
//
//   start: 2024-04-15T00:00+08:00
//   end: 2024-04-22T00:00+08:00
//   hydrology: {velocity_factor: 1.1, dispersion_factor: 0.7}
//   events:
//     - {source: chengxi_wwtp, start: 2024-04-16T02:00+08:00, duration_h: 3,
//        mass_kg: {COD: 800, NH3N: 50, TP: 10}}
//     - {reach: fen_lower, km: 42.5, start: ..., duration_h: 1, mass_kg: {COD: 300}}
//   sampling: {interval_h: 4, noise: 0.1, seed: 7, stations: all}   # or [ids], sections, none
//   sampling: {stations: sections, points: [{reach: sushui_middle, km: 12.5}]}  # mobile samples
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/hydro/rain.h"
#include "qingshui/tracing/observations.h"

namespace qingshui::tracing {

struct ScenarioEvent {
  std::string source;  // a network source id, or empty when reach/km are given
  std::string reach;
  double km = 0.0;
  double start_s = 0.0;                   // epoch seconds
  double duration_s = 0.0;                // 0 = within one time step
  std::map<std::string, double> mass_kg;  // species id -> kg
  int line = 0;
};

// A river point sampled like a station (mobile samples): rows with reach and km.
struct ScenarioPoint {
  std::string reach;
  double km = 0.0;
  int line = 0;
};

struct ScenarioSampling {
  double interval_s = 4 * 3600.0;
  double noise = 0.0;  // relative standard deviation of a sample
  std::uint64_t seed = 1;
  // "all" (every station), "sections" (every station except outfall monitors), "none", or a
  // list. Default "all" — "none" when points are given without stations.
  std::string stations_keyword = "all";
  std::vector<std::string> stations;
  std::vector<ScenarioPoint> points;  // sampled after the stations at each time
};

struct Scenario {
  std::string file;
  double start_s = 0.0;  // epoch seconds; the first sample
  double end_s = 0.0;    // the last sample is at or before it
  double velocity_factor = 1.0;
  double dispersion_factor = 1.0;
  double temperature_c = 20.0;
  std::string season;  // empty = from each date
  double time_step_s = 1800.0;
  // Daily rain per catchment (drills; none when it has no dates): runoff and combined-sewer
  // overflows enter the hydraulics of the days it covers, as with `qingshui hydro --rain`.
  // The series runs from its first day with the plants' buffer tanks empty.
  hydro::RainSeries rain;
  std::vector<ScenarioEvent> events;
  ScenarioSampling sampling;
};

// Reads and checks a scenario against the network (source, reach, station and species
// ids, km within the reach, event times); throws ConfigError "file:line: field: what".
Scenario LoadScenario(const std::string& path, const Network& network);
Scenario ParseScenario(const std::string& text, const std::string& file_name,
                       const Network& network);

struct ScenarioRun {
  std::vector<Observation> observations;  // noisy samples, time-major, then station (points
                                          // after the stations), species
  std::vector<double> exact_mg_l;         // the simulated values, same order
  double relative_mass_error = 0.0;       // of the transport run
  std::string start_date;                 // first simulated day (00:00 local)
  int days = 0;
};

// Runs the scenario. Samples are taken at start, start + interval, ... up to end, at the
// chosen stations and then the points (each in the segment it falls in, as a station), for
// every species of the network; value = exact · (1 + noise·z) with z
// standard normal (Box-Muller on mt19937_64, so the same seed gives the same numbers on
// every platform), clipped at 0.
ScenarioRun RunScenario(const Network& network, const Scenario& scenario);

// Standard normal numbers from a 64-bit Mersenne twister by the Box-Muller transform
// (std::normal_distribution is implementation-defined; this is not).
class NormalGenerator {
 public:
  explicit NormalGenerator(std::uint64_t seed);
  double Next();
  double Uniform();  // in (0, 1)

 private:
  std::mt19937_64 engine_;  // its output sequence is fixed by the C++ standard
  bool have_spare_ = false;
  double spare_ = 0.0;
};

}  // namespace qingshui::tracing
