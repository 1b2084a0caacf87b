#include "qingshui/tracing/scenario.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/hydro/simulation.h"
#include "reach_km.h"
#include "yaml_util.h"

namespace qingshui::tracing {

NormalGenerator::NormalGenerator(std::uint64_t seed) : engine_(seed) {}

double NormalGenerator::Uniform() {
  // 53 random bits, shifted by half a unit so that 0 never occurs.
  return (static_cast<double>(engine_() >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

double NormalGenerator::Next() {
  if (have_spare_) {
    have_spare_ = false;
    return spare_;
  }
  const double u1 = Uniform(), u2 = Uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double a = 2.0 * M_PI * u2;
  spare_ = r * std::sin(a);
  have_spare_ = true;
  return r * std::cos(a);
}

namespace {

double Time(const detail::YamlReader& r, const YAML::Node& n, const std::string& field) {
  if (!n.IsDefined()) r.Fail(n, field, "required");
  double t;
  if (!n.IsScalar() || !ParseIsoTime(n.Scalar(), &t)) {
    r.Fail(n, field,
           "expected an ISO-8601 time such as 2024-04-15T08:00+08:00, got '" +
               (n.IsScalar() ? n.Scalar() : std::string("a non-scalar")) + "'");
  }
  return t;
}

int SpeciesIndex(const Network& net, const std::string& id) {
  for (size_t i = 0; i < net.species.size(); ++i) {
    if (net.species[i].id == id) return static_cast<int>(i);
  }
  return -1;
}

std::string SpeciesList(const Network& net) {
  std::string s;
  for (const auto& sp : net.species) s += (s.empty() ? "" : ", ") + sp.id;
  return s;
}

}  // namespace

Scenario ParseScenario(const std::string& text, const std::string& file, const Network& net) {
  detail::YamlReader r(file);
  const YAML::Node root = detail::ParseYaml(text, file);
  if (!root.IsMap()) r.FailAt(1, "", "expected a map with start, end, events, sampling");
  r.CheckKeys(
      root, "",
      {"name", "description", "start", "end", "hydrology", "events", "sampling", "time_step_s"});
  Scenario sc;
  sc.file = file;
  sc.start_s = Time(r, root["start"], "start");
  sc.end_s = Time(r, root["end"], "end");
  if (!(sc.end_s > sc.start_s)) r.Fail(root["end"], "end", "expected a time after start");
  if (sc.end_s - sc.start_s > 366 * 86400.0)
    r.Fail(root["end"], "end", "expected at most one year after start");
  if (const YAML::Node n = root["time_step_s"]; n.IsDefined()) {
    sc.time_step_s = r.Number(n, "time_step_s");
    if (!(sc.time_step_s > 0) || sc.time_step_s > 86400) {
      r.Fail(n, "time_step_s", "expected a step in (0, 86400] s");
    }
  }
  if (const YAML::Node h = root["hydrology"]; h.IsDefined()) {
    r.CheckKeys(h, "hydrology",
                {"velocity_factor", "dispersion_factor", "temperature_c", "season"});
    if (h["velocity_factor"].IsDefined()) {
      sc.velocity_factor = r.Number(h["velocity_factor"], "hydrology.velocity_factor");
      if (!(sc.velocity_factor > 0))
        r.Fail(h["velocity_factor"], "hydrology.velocity_factor", "expected > 0");
    }
    if (h["dispersion_factor"].IsDefined()) {
      sc.dispersion_factor = r.Number(h["dispersion_factor"], "hydrology.dispersion_factor");
      if (!(sc.dispersion_factor >= 0)) {
        r.Fail(h["dispersion_factor"], "hydrology.dispersion_factor", "expected >= 0");
      }
    }
    if (h["temperature_c"].IsDefined()) {
      sc.temperature_c = r.Number(h["temperature_c"], "hydrology.temperature_c");
      if (sc.temperature_c < -5 || sc.temperature_c > 45) {
        r.Fail(h["temperature_c"], "hydrology.temperature_c", "expected -5 to 45 °C");
      }
    }
    if (h["season"].IsDefined()) sc.season = r.Text(h["season"], "hydrology.season");
  }
  if (const YAML::Node events = root["events"]; events.IsDefined() && !events.IsNull()) {
    if (!events.IsSequence()) r.Fail(events, "events", "expected a list of releases");
    for (size_t i = 0; i < events.size(); ++i) {
      const YAML::Node e = events[i];
      const std::string f = "events[" + std::to_string(i) + "]";
      r.CheckKeys(e, f, {"source", "reach", "km", "start", "duration_h", "mass_kg", "name"});
      ScenarioEvent ev;
      ev.line = detail::LineOf(e);
      if (e["source"].IsDefined()) {
        ev.source = r.Text(e["source"], f + ".source");
        const Source* s = net.FindSource(ev.source);
        if (!s) {
          r.Fail(e["source"], f + ".source",
                 "unknown source '" + ev.source + "' (see `qingshui check` for the list)");
        }
        if (e["reach"].IsDefined() || e["km"].IsDefined()) {
          r.Fail(e, f, "give either source or reach and km, not both");
        }
        ev.reach = s->reach;
        ev.km = s->km;
      } else {
        if (!e["reach"].IsDefined() || !e["km"].IsDefined()) {
          r.Fail(e, f + ".source", "required (or reach and km of an unregistered point)");
        }
        ev.reach = r.Text(e["reach"], f + ".reach");
        const Reach* reach = net.FindReach(ev.reach);
        if (!reach) r.Fail(e["reach"], f + ".reach", "unknown reach '" + ev.reach + "'");
        ev.km = r.Number(e["km"], f + ".km");
        const std::string outside = detail::KmOutsideReach(*reach, ev.km, 1e-9);
        if (!outside.empty()) r.Fail(e["km"], f + ".km", outside);
      }
      ev.start_s = Time(r, e["start"], f + ".start");
      if (e["duration_h"].IsDefined()) {
        ev.duration_s = 3600.0 * r.Number(e["duration_h"], f + ".duration_h");
        if (!(ev.duration_s >= 0)) r.Fail(e["duration_h"], f + ".duration_h", "expected >= 0");
      }
      if (ev.start_s < sc.start_s - 30 * 86400.0 || ev.start_s > sc.end_s) {
        r.Fail(e["start"], f + ".start", "expected a time between 30 days before start and end");
      }
      const YAML::Node m = e["mass_kg"];
      if (!m.IsDefined() || !m.IsMap() || m.size() == 0) {
        r.Fail(e, f + ".mass_kg",
               "required: a map species -> kg, e.g. {COD: 500, NH3N: 40, TP: 6}");
      }
      for (const auto& kv : m) {
        const std::string sp = r.Key(kv.first, f + ".mass_kg");
        if (SpeciesIndex(net, sp) < 0) {
          r.Fail(kv.first, f + ".mass_kg." + sp,
                 "unknown species (network has: " + SpeciesList(net) + ")");
        }
        const double kg = r.Number(kv.second, f + ".mass_kg." + sp);
        if (!(kg >= 0)) r.Fail(kv.second, f + ".mass_kg." + sp, "expected a mass >= 0 kg");
        ev.mass_kg[sp] = kg;
      }
      sc.events.push_back(ev);
    }
  }
  if (const YAML::Node s = root["sampling"]; s.IsDefined()) {
    r.CheckKeys(s, "sampling", {"interval_h", "noise", "seed", "stations", "points"});
    if (s["interval_h"].IsDefined()) {
      sc.sampling.interval_s = 3600.0 * r.Number(s["interval_h"], "sampling.interval_h");
      if (!(sc.sampling.interval_s >= 60))
        r.Fail(s["interval_h"], "sampling.interval_h", "expected >= 1 minute");
    }
    if (s["noise"].IsDefined()) {
      sc.sampling.noise = r.Number(s["noise"], "sampling.noise");
      if (!(sc.sampling.noise >= 0 && sc.sampling.noise < 1)) {
        r.Fail(s["noise"], "sampling.noise", "expected a relative standard deviation in [0, 1)");
      }
    }
    if (s["seed"].IsDefined()) {
      const double seed = r.Number(s["seed"], "sampling.seed");
      if (seed < 0 || seed != std::floor(seed) || seed > 9.0e15) {
        r.Fail(s["seed"], "sampling.seed", "expected a whole number >= 0");
      }
      sc.sampling.seed = static_cast<std::uint64_t>(seed);
    }
    if (const YAML::Node st = s["stations"]; st.IsDefined()) {
      if (st.IsScalar()) {
        sc.sampling.stations_keyword = st.Scalar();
        if (sc.sampling.stations_keyword != "all" && sc.sampling.stations_keyword != "sections" &&
            sc.sampling.stations_keyword != "none") {
          r.Fail(st, "sampling.stations", "expected all, sections, none or a list of station ids");
        }
      } else if (st.IsSequence()) {
        sc.sampling.stations_keyword.clear();
        for (size_t i = 0; i < st.size(); ++i) {
          const std::string id = r.Text(st[i], "sampling.stations[" + std::to_string(i) + "]");
          if (!net.FindStation(id)) {
            r.Fail(st[i], "sampling.stations[" + std::to_string(i) + "]",
                   "unknown station '" + id + "'");
          }
          sc.sampling.stations.push_back(id);
        }
        if (sc.sampling.stations.empty()) r.Fail(st, "sampling.stations", "empty list");
      } else {
        r.Fail(st, "sampling.stations", "expected all, sections, none or a list of station ids");
      }
    }
    if (const YAML::Node pts = s["points"]; pts.IsDefined()) {
      if (!pts.IsSequence() || pts.size() == 0) {
        r.Fail(pts, "sampling.points", "expected a list of {reach: R, km: X}");
      }
      for (size_t i = 0; i < pts.size(); ++i) {
        const YAML::Node p = pts[i];
        const std::string f = "sampling.points[" + std::to_string(i) + "]";
        if (!p.IsMap()) r.Fail(p, f, "expected {reach: R, km: X}");
        r.CheckKeys(p, f, {"reach", "km"});
        if (!p["reach"].IsDefined()) r.Fail(p, f + ".reach", "required");
        if (!p["km"].IsDefined()) r.Fail(p, f + ".km", "required");
        ScenarioPoint sp;
        sp.line = detail::LineOf(p);
        sp.reach = r.Text(p["reach"], f + ".reach");
        const Reach* reach = net.FindReach(sp.reach);
        if (!reach) r.Fail(p["reach"], f + ".reach", "unknown reach '" + sp.reach + "'");
        sp.km = r.Number(p["km"], f + ".km");
        const std::string outside = detail::KmOutsideReach(*reach, sp.km, 1e-9);
        if (!outside.empty()) r.Fail(p["km"], f + ".km", outside);
        sc.sampling.points.push_back(sp);
      }
      // Points alone sample only the points; `stations` adds stations beside them.
      if (!s["stations"].IsDefined()) sc.sampling.stations_keyword = "none";
    }
  }
  if (sc.sampling.stations_keyword == "none" && sc.sampling.points.empty()) {
    r.Fail(root["sampling"]["stations"], "sampling.stations",
           "none and no points: nothing would be sampled");
  }
  if ((sc.end_s - sc.start_s) / sc.sampling.interval_s > 1e6) {
    r.Fail(root["sampling"], "sampling.interval_h", "too many samples (more than a million times)");
  }
  return sc;
}

Scenario LoadScenario(const std::string& path, const Network& net) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(Located(path, 0, "", "cannot open the scenario file"));
  std::ostringstream text;
  text << in.rdbuf();
  return ParseScenario(text.str(), path, net);
}

ScenarioRun RunScenario(const Network& net, const Scenario& sc) {
  double first = sc.start_s;
  for (const auto& e : sc.events) first = std::min(first, e.start_s);
  ScenarioRun out;
  out.start_date = LocalDate(first);
  double t0 = 0.0;
  LocalMidnight(out.start_date, &t0);
  out.days = std::max(1, static_cast<int>(std::ceil((sc.end_s - t0) / 86400.0 - 1e-9)));

  hydro::SimulationOptions o;
  o.start_date = out.start_date;
  o.days = out.days;
  o.time_step_s = sc.time_step_s;
  o.output_interval_s = sc.sampling.interval_s;
  o.velocity_factor = sc.velocity_factor;
  o.dispersion_factor = sc.dispersion_factor;
  o.temperature_c = sc.temperature_c;
  o.season = sc.season;
  if (!sc.rain.dates.empty()) {
    for (hydro::RainDay& day : hydro::RainDays(net, sc.rain)) {
      o.rain_days[day.date] = std::move(day);
    }
  }
  hydro::Simulation sim = hydro::BuildSimulation(net, o);

  for (const auto& e : sc.events) {
    for (const auto& [sp, kg] : e.mass_kg) {
      if (kg <= 0) continue;
      const int k = SpeciesIndex(net, sp);
      sim.problem.members[0].loads.push_back(
          hydro::ReleaseLoad(sim, e.reach, e.km, k, e.start_s - t0, e.duration_s, kg * 1000.0));
    }
  }
  std::vector<double> sample_times;
  for (double t = sc.start_s; t <= sc.end_s + 1e-6; t += sc.sampling.interval_s) {
    sample_times.push_back(t);
  }
  sim.problem.output_times_s.clear();
  for (double t : sample_times) sim.problem.output_times_s.push_back(t - t0);

  std::vector<int> stations;
  for (size_t i = 0; i < sim.station_ids.size(); ++i) {
    const Station* st = net.FindStation(sim.station_ids[i]);
    const bool wanted =
        sc.sampling.stations_keyword == "all" ||
        (sc.sampling.stations_keyword == "sections" && st->kind != "outfall_monitor") ||
        std::find(sc.sampling.stations.begin(), sc.sampling.stations.end(), st->id) !=
            sc.sampling.stations.end();
    if (wanted) stations.push_back(static_cast<int>(i));
  }

  // Points: reported like stations, after the network's.
  const int num_network_stations = static_cast<int>(sim.station_ids.size());
  for (const auto& p : sc.sampling.points) {
    sim.problem.stations.push_back(transport::Station{sim.grid.SegmentAt(p.reach, p.km), -1, 0.0});
    stations.push_back(static_cast<int>(sim.problem.stations.size()) - 1);
  }

  const transport::TransportResult res = hydro::RunSimulation(sim);
  out.relative_mass_error = res.summary.max_relative_mass_error;
  NormalGenerator noise(sc.sampling.seed);
  for (int j = 0; j < res.num_times; ++j) {
    for (int s : stations) {
      for (int k = 0; k < res.num_species; ++k) {
        Observation obs;
        obs.time_s = sample_times[j];
        if (s < num_network_stations) {
          obs.station = sim.station_ids[s];
        } else {
          const ScenarioPoint& p = sc.sampling.points[s - num_network_stations];
          obs.reach = p.reach;
          obs.km = p.km;
        }
        obs.species = sim.species[k];
        const double exact = std::max(0.0, res.StationConcentration(0, j, s, k));
        const double z = noise.Next();
        obs.value_mg_l = std::max(0.0, exact * (1.0 + sc.sampling.noise * z));
        out.observations.push_back(obs);
        out.exact_mg_l.push_back(exact);
      }
    }
  }
  return out;
}

}  // namespace qingshui::tracing
