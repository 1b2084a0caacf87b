// Detectability of releases by the routine sampling (detectability.h, docs/tracing.md
// "Detectability"): the tracer's response kernels on the baseline of the full simulation,
// sampled as the first-alarm protocol samples the sections.
#include "qingshui/tracing/detectability.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "qingshui/core/error.h"
#include "qingshui/hydro/flow_balance.h"
#include "qingshui/hydro/simulation.h"
#include "qingshui/tracing/kernels.h"

namespace qingshui::tracing {

namespace {

// Median of v (copied; even sizes take the mean of the two middle values).
double Median(std::vector<double> v) {
  const size_t n = v.size();
  std::nth_element(v.begin(), v.begin() + n / 2, v.end());
  const double hi = v[n / 2];
  if (n % 2) return hi;
  return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + n / 2));
}

std::string Format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// A mass in tonnes, short: 0.01, 0.3, 10, 1000.
std::string Tonnes(double kg) { return Format("%g", kg / 1000.0); }

}  // namespace

bool AlarmAt(const std::vector<double>& values, int n, int window_n, double ratio) {
  if (window_n < 1 || n < window_n || n >= static_cast<int>(values.size())) {
    throw std::invalid_argument("AlarmAt: sample " + std::to_string(n) + " of " +
                                std::to_string(values.size()) + " has no window of " +
                                std::to_string(window_n) + " samples before it");
  }
  std::vector<double> window(values.begin() + (n - window_n), values.begin() + n);
  return values[n] > ratio * Median(std::move(window));
}

bool DetectabilityOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (dates.empty()) return fail("dates: expected at least one day (YYYY-MM-DD)");
  if (masses_kg.empty()) return fail("masses_kg: expected at least one mass");
  for (size_t i = 0; i < masses_kg.size(); ++i) {
    if (!(masses_kg[i] > 0) || !std::isfinite(masses_kg[i]))
      return fail("masses_kg: expected finite masses > 0");
    if (i > 0 && !(masses_kg[i] > masses_kg[i - 1]))
      return fail("masses_kg: expected increasing masses");
  }
  if (reference_species.empty()) return fail("reference_species: required");
  if (!(duration_s > 0) || duration_s > 48 * 3600.0)
    return fail("duration_s: expected more than 0 and at most 48 h");
  if (!(sampling_interval_s >= 600) || sampling_interval_s > 86400.0)
    return fail("sampling_interval_s: expected 10 min to 24 h");
  if (!(alarm_ratio > 1) || !std::isfinite(alarm_ratio))
    return fail("alarm_ratio: expected a finite ratio > 1");
  if (!(median_window_s >= sampling_interval_s) || median_window_s > 30 * 86400.0)
    return fail("median_window_s: expected one sampling interval to 30 days");
  if (phases < 1 || phases > 24) return fail("phases: expected 1 to 24 starts per interval");
  if (!(horizon_s >= sampling_interval_s) || horizon_s > 60 * 86400.0)
    return fail("horizon_s: expected one sampling interval to 60 days");
  if (!(time_step_s >= 60) || time_step_s > 3600.0)
    return fail("time_step_s: expected 60 s to 1 h");
  if (!(temperature_c > -5 && temperature_c < 45))
    return fail("temperature_c: expected -5 to 45 degrees C");
  if (num_threads < 0) return fail("num_threads: expected >= 0");
  return true;
}

DetectabilityTable Detectability(const Network& net, const DetectabilityOptions& options) {
  const auto t_begin = std::chrono::steady_clock::now();
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("detectability options: " + error);
  DetectabilityTable table;
  table.options = options;

  // Sources and stations.
  std::vector<const Source*> sources;
  if (options.sources.empty()) {
    for (const auto& s : net.sources) sources.push_back(&s);
  } else {
    for (const auto& id : options.sources) {
      const Source* s = net.FindSource(id);
      if (!s) throw ConfigError("detectability options: sources: unknown source '" + id + "'");
      sources.push_back(s);
    }
  }
  for (const auto& id : options.stations) {
    if (!net.FindStation(id))
      throw ConfigError("detectability options: stations: unknown station '" + id + "'");
  }
  // Species released: the reference species and, with priors, those its ratios name.
  std::vector<std::string> species;
  for (const auto& sp : net.species) {
    if (sp.id == options.reference_species) species.insert(species.begin(), sp.id);
  }
  if (species.empty()) {
    throw ConfigError("detectability options: reference_species: '" + options.reference_species +
                      "' is not a species of the network");
  }
  if (options.use_priors) {
    for (const auto& sp : net.species) {
      if (sp.id == options.reference_species) continue;
      bool named = false;
      for (const auto& kv : options.priors.kinds) named = named || kv.second.ratios.count(sp.id);
      if (named) species.push_back(sp.id);
    }
  }
  const int Ks = static_cast<int>(species.size());

  const double dt = options.sampling_interval_s;
  const int window_n =
      std::max(1, static_cast<int>(std::floor(options.median_window_s / dt + 1e-9)));
  // Samples at n·dt from 00:00 of the day; releases start at window_n·dt + phase.
  const double release0_s = window_n * dt;
  const double end_s = release0_s + dt + options.horizon_s;
  const int num_samples = static_cast<int>(std::floor(end_s / dt + 1e-9)) + 1;

  for (const auto& date : options.dates) {
    const std::string season = hydro::SeasonOfDate(date);  // throws for a malformed date

    // The baseline: the full simulation of the day, no release.
    hydro::SimulationOptions so;
    so.start_date = date;
    so.days = static_cast<int>(std::ceil(((num_samples - 1) * dt) / 86400.0 + 1e-9));
    so.time_step_s = options.time_step_s;
    so.output_interval_s = dt;
    so.temperature_c = options.temperature_c;
    hydro::Simulation sim = hydro::BuildSimulation(net, so);
    sim.problem.output_times_s.clear();
    for (int n = 0; n < num_samples; ++n) sim.problem.output_times_s.push_back(n * dt);
    const transport::TransportResult base = hydro::RunSimulation(sim);

    // Monitored stations (indices into the simulation's and the kernels' station order).
    std::vector<int> stations;
    for (size_t i = 0; i < sim.station_ids.size(); ++i) {
      const Station* st = net.FindStation(sim.station_ids[i]);
      const bool wanted = options.stations.empty()
                              ? st->kind != "outfall_monitor"
                              : std::find(options.stations.begin(), options.stations.end(),
                                          st->id) != options.stations.end();
      if (wanted) stations.push_back(static_cast<int>(i));
    }
    if (table.stations.empty()) {
      for (int s : stations) table.stations.push_back(sim.station_ids[s]);
    }
    std::vector<int> sim_species(Ks);
    for (int k = 0; k < Ks; ++k) {
      sim_species[k] = static_cast<int>(
          std::find(sim.species.begin(), sim.species.end(), species[k]) - sim.species.begin());
    }
    auto baseline = [&](int n, int s, int k) {
      return std::max(0.0, base.StationConcentration(0, n, s, sim_species[k]));
    };

    // Kernels at the sources: nominal velocity and dispersion, one engine run.
    std::vector<KernelPoint> points;
    for (const Source* src : sources) {
      KernelPoint p;
      p.reach = src->reach;
      p.km = src->km;
      p.source_id = src->id;
      p.kind = ToString(src->kind);
      points.push_back(p);
    }
    KernelOptions ko;
    ko.date = date;
    ko.temperature_c = options.temperature_c;
    ko.time_step_s = options.time_step_s;
    ko.horizon_s = options.horizon_s + dt + options.duration_s;
    ko.direct_dispersion_factors = {1.0};
    ko.dispersion_factors = {1.0};
    ko.grid_spacing_km = 0.0;
    ko.species = species;
    ko.num_threads = options.num_threads;
    const ResponseKernels kernels = BuildKernels(net, points, ko);

    // Baseline alarms (a varying baseline alone): such samples are not counted.
    std::vector<char> base_alarm(static_cast<size_t>(num_samples) * stations.size() * Ks, 0);
    auto base_alarm_at = [&](int n, size_t si, int k) -> char& {
      return base_alarm[(static_cast<size_t>(n) * stations.size() + si) * Ks + k];
    };
    std::vector<double> vals(static_cast<size_t>(num_samples));
    for (size_t si = 0; si < stations.size(); ++si) {
      for (int k = 0; k < Ks; ++k) {
        for (int n = 0; n < num_samples; ++n) vals[n] = baseline(n, stations[si], k);
        for (int n = window_n; n < num_samples; ++n) {
          if (AlarmAt(vals, n, window_n, options.alarm_ratio)) {
            base_alarm_at(n, si, k) = 1;
            ++table.baseline_alarms;
          }
        }
      }
    }

    for (size_t pi = 0; pi < sources.size(); ++pi) {
      const Source* src = sources[pi];
      DetectabilityRow row;
      row.source = src->id;
      row.kind = ToString(src->kind);
      row.reach = src->reach;
      row.km = src->km;
      row.date = date;
      row.season = season;
      const int p = static_cast<int>(pi);
      for (size_t si = 0; si < stations.size(); ++si) {
        const int s = stations[si];
        if (!kernels.Sees(p, s)) continue;
        const double tt = kernels.TravelTime(p, s);
        if (std::isnan(row.travel_time_s) || tt < row.travel_time_s) {
          row.first_section = kernels.station_ids[s];
          row.travel_time_s = tt;
          row.section_flow_m3s = kernels.StationFlow(s);
          row.section_baseline_mg_l = baseline(window_n, s, 0);
        }
      }
      // Mass of each species per kg of the reference species.
      std::vector<double> ratio(Ks, 1.0);
      for (int k = 1; k < Ks; ++k) {
        ratio[k] = options.priors.Ratio(row.kind, species[k], options.reference_species).median;
      }
      for (double mass_kg : options.masses_kg) {
        DetectabilityRung rung;
        rung.mass_kg = mass_kg;
        double best_start_delay = INFINITY;
        for (int ph = 0; ph < options.phases; ++ph) {
          const double r = release0_s + ph * dt / options.phases;
          double first = INFINITY;  // first alarm time
          std::string first_station, first_species;
          for (size_t si = 0; si < stations.size(); ++si) {
            const int s = stations[si];
            if (!kernels.Sees(p, s)) continue;
            for (int k = 0; k < Ks; ++k) {
              const double load_g_s = mass_kg * ratio[k] * 1000.0 / options.duration_s;
              for (int n = 0; n < num_samples; ++n) {
                const double t = n * dt;
                const double signal =
                    t <= r
                        ? 0.0
                        : load_g_s * (kernels.Cumulative(p, s, k, 0, t - r) -
                                      kernels.Cumulative(p, s, k, 0, t - r - options.duration_s));
                vals[n] = baseline(n, s, k) + std::max(0.0, signal);
              }
              for (int n = window_n; n < num_samples; ++n) {
                const double t = n * dt;
                if (t <= r || t > r + options.horizon_s + 1e-6 || t >= first) continue;
                if (base_alarm_at(n, si, k)) continue;
                if (AlarmAt(vals, n, window_n, options.alarm_ratio)) {
                  first = t;
                  first_station = kernels.station_ids[s];
                  first_species = species[k];
                  break;
                }
              }
            }
          }
          if (std::isfinite(first)) {
            ++rung.phases_alarmed;
            const double delay = first - r;
            if (std::isnan(rung.delay_min_s) || delay < rung.delay_min_s) rung.delay_min_s = delay;
            if (std::isnan(rung.delay_max_s) || delay > rung.delay_max_s) rung.delay_max_s = delay;
            if (delay < best_start_delay) {  // the quickest alarm's station (ties: first start)
              best_start_delay = delay;
              rung.station = first_station;
              rung.species = first_species;
            }
          }
        }
        row.rungs.push_back(rung);
      }
      for (size_t i = 0; i < row.rungs.size(); ++i) {
        if (row.sometimes < 0 && row.rungs[i].phases_alarmed > 0)
          row.sometimes = static_cast<int>(i);
        if (row.always < 0 && row.rungs[i].phases_alarmed == options.phases)
          row.always = static_cast<int>(i);
      }
      table.rows.push_back(row);
    }
  }
  table.elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_begin).count();
  return table;
}

std::string DetectabilityTableText(const DetectabilityTable& t) {
  const DetectabilityOptions& o = t.options;
  std::ostringstream out;
  out << "Detectability by the routine sampling (first-alarm protocol): sections sampled every "
      << Format("%g", o.sampling_interval_s / 3600.0) << " h; alarm = a sample above "
      << Format("%g", o.alarm_ratio) << " x the station's median of the previous "
      << Format("%g", o.median_window_s / 3600.0) << " h, within "
      << Format("%g", o.horizon_s / 86400.0) << " days of the release start.\n";
  out << "Releases of " << o.reference_species << " over " << Format("%g", o.duration_s / 3600.0)
      << " h";
  out << (o.use_priors ? " with the kind's median species ratios" : " alone") << ", from "
      << o.phases << " starts per sampling interval; masses (t):";
  for (double m : o.masses_kg) out << " " << Tonnes(m);
  out << "\n";
  out << "'always' = smallest mass alarmed from every start (delay range, first station); "
         "'sometimes' = from some start.\n";
  out << "Sections: ";
  for (size_t i = 0; i < t.stations.size(); ++i) out << (i ? ", " : "") << t.stations[i];
  out << "\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-30s %-11s %-22s %-6s %-10s %-10s %-10s %-26s %-24s %s\n",
                "source", "season", "first section", "h", "flow m3/s",
                (o.reference_species + " mg/L").c_str(), "sometimes", "always", "alarm at",
                "delay h");
  out << line;
  for (const auto& r : t.rows) {
    const std::string season = r.season + " " + r.date.substr(5);
    std::string sometimes = r.sometimes < 0 ? "-" : Tonnes(r.rungs[r.sometimes].mass_kg) + " t";
    std::string always, station, delay;
    if (r.always >= 0) {
      const DetectabilityRung& g = r.rungs[r.always];
      always = Tonnes(g.mass_kg) + " t";
      station = g.station + " " + g.species;
      delay = Format("%.0f", g.delay_min_s / 3600.0) + "-" + Format("%.0f", g.delay_max_s / 3600.0);
    } else {
      always = "not seen up to " + Tonnes(o.masses_kg.back()) + " t";
      if (r.sometimes >= 0) {
        const DetectabilityRung& g = r.rungs[r.sometimes];
        station = g.station + " " + g.species;
        delay =
            Format("%.0f", g.delay_min_s / 3600.0) + "-" + Format("%.0f", g.delay_max_s / 3600.0);
      }
    }
    if (r.first_section.empty()) {
      always = "no section downstream";
    }
    std::snprintf(line, sizeof line, "%-30s %-11s %-22s %-6s %-10s %-10s %-10s %-26s %-24s %s\n",
                  r.source.c_str(), season.c_str(),
                  r.first_section.empty() ? "-" : r.first_section.c_str(),
                  r.first_section.empty() ? "-" : Format("%.0f", r.travel_time_s / 3600.0).c_str(),
                  r.first_section.empty() ? "-" : Format("%.3g", r.section_flow_m3s).c_str(),
                  r.first_section.empty() ? "-" : Format("%.3g", r.section_baseline_mg_l).c_str(),
                  sometimes.c_str(), always.c_str(), station.c_str(), delay.c_str());
    out << line;
  }
  if (t.baseline_alarms > 0) {
    out << "\n"
        << t.baseline_alarms
        << " sample(s) where the baseline alone exceeds the alarm level were not counted.\n";
  }
  return out.str();
}

}  // namespace qingshui::tracing
