// What the routine monitoring network can see (docs/tracing.md, "Detectability"): for each
// registered source and each season, the smallest release on a ladder of masses that raises
// an alarm under the first-alarm protocol of issue #21, at which section and how long after
// the release began.
//
// First-alarm protocol: every monitored section (every station but outfall monitors) is
// sampled every `sampling_interval_s` (4 h); an alarm is a sample of any released species
// above `alarm_ratio` (1.5) times the median of that station's samples of the previous
// `median_window_s` (24 h). Samples are the model's exact values (no measurement noise).
//
// Forward model: the tracer's own (kernels.h) — the transport engine's response at each
// station to a unit release at the source, on the day's steady hydraulics at the nominal
// velocity and dispersion — added to the baseline of the network's full water-quality
// simulation of that day (hydro::BuildSimulation: every source's loads, headwaters, steady
// initial state). A release of mass M of the reference species spread evenly over
// `duration_s`; the other species of the source's kind in their median ratios from the
// tracing priors (none without priors). Because a release may begin at any time of the
// sampling cycle, each mass is released at `phases` starts evenly spread over one sampling
// interval; a mass "always" raises an alarm when it does from every start, "sometimes"
// when from at least one.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/tracing/priors.h"

namespace qingshui::tracing {

struct DetectabilityOptions {
  // One day per season (YYYY-MM-DD); each gives its steady hydraulics, the sources that run
  // then and the season of its headwaters and lateral flows (hydro::SeasonOfDate).
  std::vector<std::string> dates = {"2024-04-15", "2024-06-15"};
  // Ladder of release masses of the reference species (kg), increasing; the default spans
  // the tracer's mass prior (10 kg-1000 t of COD) in half-decades.
  std::vector<double> masses_kg = {10,    30,    100,    300,    1000,   3000,
                                   10000, 30000, 100000, 300000, 1000000};
  std::string reference_species = "COD";
  // Other species released in their kind's median ratio to the reference species
  // (TracingPriors::Ratio). False: the reference species alone.
  bool use_priors = true;
  TracingPriors priors;
  double duration_s = 3 * 3600.0;           // each release spread evenly over this long
  double sampling_interval_s = 4 * 3600.0;  // routine sampling at every section
  double alarm_ratio = 1.5;                 // alarm: sample > ratio × median of the window
  double median_window_s = 24 * 3600.0;     // samples of this long before a sample
  int phases = 4;                           // release starts per sampling interval
  double horizon_s = 7 * 86400.0;           // an alarm counts up to this long after the start
  std::vector<std::string> sources;         // empty = every registered source
  std::vector<std::string> stations;        // empty = every station but outfall monitors
  double temperature_c = 20.0;
  double time_step_s = 1800.0;  // engine step of the kernels and the baseline
  int num_threads = 1;          // kernel runs in parallel (results do not depend on it)

  bool IsValid(std::string* error) const;
};

// One mass of the ladder at one source and season.
struct DetectabilityRung {
  double mass_kg = 0.0;      // reference species
  int phases_alarmed = 0;    // of DetectabilityOptions::phases release starts
  std::string station;       // first alarm's station (of the earliest start alarmed)
  std::string species;       // and species
  double delay_min_s = NAN;  // release start to first alarm, over the starts alarmed
  double delay_max_s = NAN;
};

struct DetectabilityRow {
  std::string source, kind, reach;
  double km = 0.0;
  std::string date, season;
  // The nearest monitored section the source's water passes (by plug-flow time), the time
  // to it, its flow and its baseline of the reference species; empty station = none.
  std::string first_section;
  double travel_time_s = NAN;
  double section_flow_m3s = NAN;
  double section_baseline_mg_l = NAN;
  std::vector<DetectabilityRung> rungs;  // by mass, as the ladder
  int always = -1;     // index of the smallest rung alarmed from every start; -1 none
  int sometimes = -1;  // index of the smallest rung alarmed from some start; -1 none
};

struct DetectabilityTable {
  DetectabilityOptions options;
  std::vector<std::string> stations;   // the monitored sections
  std::vector<DetectabilityRow> rows;  // by date, then source in network order
  // Samples where the baseline alone would raise an alarm (a varying baseline); they are
  // not counted as alarms.
  int baseline_alarms = 0;
  double elapsed_s = 0.0;
};

// The first-alarm rule at sample n of one station's series of one species (values[0..n]):
// values[n] > ratio × the median of the window_n samples before it (n >= window_n).
bool AlarmAt(const std::vector<double>& values, int n, int window_n, double ratio);

// Computes the table. Throws ConfigError for invalid options, unknown sources, stations or
// species, or a malformed date.
DetectabilityTable Detectability(const Network& network, const DetectabilityOptions& options);

// A readable table: one line per source and season (the text `qingshui check
// --detectability` prints).
std::string DetectabilityTableText(const DetectabilityTable& table);

}  // namespace qingshui::tracing
