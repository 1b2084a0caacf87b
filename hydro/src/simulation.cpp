#include "qingshui/hydro/simulation.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <map>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/hydro/flow_field.h"

namespace qingshui::hydro {

namespace {

constexpr double kDay = 86400.0;

// The date `offset` days after `date` (YYYY-MM-DD), by the proleptic Gregorian calendar.
std::string AddDays(const std::string& date, int offset) {
  std::tm tm{};
  tm.tm_year = std::stoi(date.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(date.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(date.substr(8, 2)) + offset;
  tm.tm_hour = 12;  // noon: immune to any DST rule of the host's zone
  std::time_t t = timegm(&tm);
  std::tm out{};
  gmtime_r(&t, &out);
  char buffer[16];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d", &out);
  return buffer;
}

bool ValidDate(const std::string& d) {
  if (d.size() != 10 || d[4] != '-' || d[7] != '-') return false;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(d[i]))) return false;
  }
  const int m = std::stoi(d.substr(5, 2)), day = std::stoi(d.substr(8, 2));
  return m >= 1 && m <= 12 && day >= 1 && day <= 31 && AddDays(d, 0) == d;
}

}  // namespace

bool SimulationOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (!ValidDate(start_date)) return fail("start_date: expected a date YYYY-MM-DD, got '" + start_date + "'");
  if (days < 1 || days > 3660) return fail("days: expected 1 to 3660, got " + std::to_string(days));
  if (!(time_step_s > 0) || !std::isfinite(time_step_s)) return fail("time_step_s: expected > 0");
  if (!(output_interval_s > 0) || !std::isfinite(output_interval_s)) {
    return fail("output_interval_s: expected > 0");
  }
  if (!(velocity_factor > 0) || !std::isfinite(velocity_factor)) {
    return fail("velocity_factor: expected > 0");
  }
  if (!(dispersion_factor >= 0) || !std::isfinite(dispersion_factor)) {
    return fail("dispersion_factor: expected >= 0");
  }
  if (!std::isfinite(temperature_c) || temperature_c < -5 || temperature_c > 45) {
    return fail("temperature_c: expected a water temperature between -5 and 45 °C");
  }
  return true;
}

Simulation BuildSimulation(const Network& net, const SimulationOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("simulation options: " + error);
  Simulation sim;
  sim.options = options;
  sim.grid = BuildGrid(net);
  const int n = sim.grid.size();
  for (const auto& s : net.species) sim.species.push_back(s.id);
  const int ns = static_cast<int>(sim.species.size());

  // Daily hydraulics, sources kept apart from the lateral concentration.
  for (int d = 0; d < options.days; ++d) {
    DayOptions day;
    day.date = AddDays(options.start_date, d);
    day.season = options.season;
    day.point_inflows = options.point_inflows;
    day.sources_as_loads = true;
    if (auto rain = options.rain_days.find(day.date); rain != options.rain_days.end()) {
      AddRain(rain->second, &day);
    }
    sim.days.push_back(SteadyHydraulics(net, sim.grid, day));
  }

  transport::TransportProblem& p = sim.problem;
  p.num_species = ns;
  p.segments = ToTransportSegments(sim.days.front());
  for (auto& seg : p.segments) seg.dispersion_m2s *= options.dispersion_factor;
  p.temperature_c = transport::TimeSeries::Constant(options.temperature_c);
  for (const auto& s : net.species) p.theta.push_back(s.theta);

  // One flow state per day, placed at the day's midpoint; the solver interpolates
  // linearly in between and holds the first/last state before/after.
  for (int d = 0; d < options.days; ++d) {
    transport::FlowField f = ToFlowField(sim.days[d]);
    transport::FlowState state = f.states.front();
    if (options.velocity_factor != 1.0) {
      for (int i = 0; i < n; ++i) {
        if (!p.segments[i].well_mixed) state.area_m2[i] /= options.velocity_factor;
      }
    }
    // Diffuse inflow's mass becomes point loads (below); its water keeps C_L = 0.
    std::fill(state.lateral_concentration_g_m3.begin(), state.lateral_concentration_g_m3.end(),
              0.0);
    p.flow.times_s.push_back((d + 0.5) * kDay);
    p.flow.states.push_back(std::move(state));
  }

  // Baseline forcing: headwater concentrations (step per day) and source loads.
  transport::Forcing base;
  for (int seg : sim.grid.HeadwaterSegments()) {
    transport::UpstreamBoundary b;
    b.segment = seg;
    b.kind = transport::UpstreamBoundary::Kind::kConcentration;
    for (int k = 0; k < ns; ++k) {
      transport::TimeSeries series;
      series.interpolation = transport::TimeSeries::Interpolation::kStep;
      for (int d = 0; d < options.days; ++d) {
        series.times_s.push_back(d * kDay);
        series.values.push_back(sim.days[d].headwater_concentration_g_m3[seg * ns + k]);
      }
      b.series.push_back(series);
    }
    base.boundaries.push_back(b);
  }
  // Each (source, segment, species) becomes one step-per-day point load.
  std::map<std::string, std::map<std::pair<int, int>, std::vector<double>>> loads;
  for (int d = 0; d < options.days; ++d) {
    for (const auto& s : sim.days[d].sources) {
      for (const auto& l : s.loads) {
        auto& v = loads[s.id][{l.segment, l.species}];
        v.resize(options.days, 0.0);
        v[d] += l.g_s;
      }
    }
  }
  // Diffuse inflow (and any scenario extras) per reach: lateral concentration × lateral
  // water, which with sources_as_loads holds no source mass.
  std::vector<std::string> contributors;
  for (const auto& src : net.sources) contributors.push_back(src.id);
  for (int d = 0; d < options.days; ++d) {
    const NetworkHydraulics& h = sim.days[d];
    for (int i = 0; i < n; ++i) {
      const double q = h.point_inflow_m3s[i] + h.diffuse_inflow_m3s[i];
      for (int k = 0; k < ns; ++k) {
        const double g_s = h.lateral_concentration_g_m3[i * ns + k] * q;
        if (g_s == 0.0) continue;
        const std::string id = "diffuse:" + sim.grid.segments[i].reach;
        if (!loads.count(id)) contributors.push_back(id);
        auto& v = loads[id][{i, k}];
        v.resize(options.days, 0.0);
        v[d] += g_s;
      }
    }
  }
  for (const auto& contributor : contributors) {
    auto it = loads.find(contributor);
    if (it == loads.end()) continue;
    SourceLoads entry;
    entry.id = contributor;
    for (const auto& [where, per_day] : it->second) {
      transport::PointLoad load;
      load.segment = where.first;
      load.species = where.second;
      load.load_g_s.interpolation = transport::TimeSeries::Interpolation::kStep;
      for (int d = 0; d < options.days; ++d) {
        load.load_g_s.times_s.push_back(d * kDay);
        load.load_g_s.values.push_back(per_day[d]);
      }
      entry.load_index.push_back(static_cast<int>(base.loads.size()));
      base.loads.push_back(load);
    }
    sim.sources.push_back(entry);
  }
  p.members = {base};

  p.start_time_s = 0.0;
  p.end_time_s = options.days * kDay;
  p.time_step_s = options.time_step_s;
  for (double t = 0.0; t <= p.end_time_s + 1e-9; t += options.output_interval_s) {
    p.output_times_s.push_back(std::min(t, p.end_time_s));
  }
  if (p.output_times_s.back() < p.end_time_s) p.output_times_s.push_back(p.end_time_s);

  for (const auto& st : net.stations) {
    const int seg = sim.grid.SegmentAt(st.reach, st.km);
    sim.station_ids.push_back(st.id);
    sim.station_segments.push_back(seg);
    p.stations.push_back(transport::Station{seg, -1, 0.0});
  }
  sim.transport_options.store_fields = false;
  return sim;
}

std::vector<std::string> AddContributionMembers(Simulation* sim) {
  transport::TransportProblem& p = sim->problem;
  const transport::Forcing base = p.members.front();
  transport::Forcing zero = base;
  zero.loads.clear();
  for (auto& b : zero.boundaries) {
    for (auto& series : b.series) series = transport::TimeSeries::Constant(0.0);
  }
  std::vector<std::string> names;
  for (const auto& src : sim->sources) {
    transport::Forcing f = zero;
    for (int i : src.load_index) f.loads.push_back(base.loads[i]);
    p.members.push_back(std::move(f));
    names.push_back(src.id);
  }
  transport::Forcing headwater = base;
  headwater.loads.clear();
  p.members.push_back(std::move(headwater));
  names.push_back("headwater");
  return names;
}

transport::TransportResult RunSimulation(const Simulation& sim) {
  transport::TransportProblem problem = sim.problem;
  if (sim.options.steady_initial_state) {
    // The steady state of the first day's flow and forcing, for every member: the engine's
    // own initial-state rule (Forcing::initial_steady_state, as for OTIS decks).
    for (transport::Forcing& f : problem.members) f.initial_steady_state = true;
  }
  return transport::TransportSolver(sim.transport_options).Run(problem);
}

transport::PointLoad ReleaseLoad(const Simulation& sim, const std::string& reach, double km,
                                 int species, double start_s, double duration_s, double mass_g) {
  if (species < 0 || species >= static_cast<int>(sim.species.size())) {
    throw ConfigError("release: species index " + std::to_string(species) + " out of range");
  }
  if (!(mass_g >= 0) || !std::isfinite(mass_g) || !(duration_s >= 0) || !std::isfinite(start_s)) {
    throw ConfigError("release: expected mass >= 0 g, duration >= 0 s and a finite start");
  }
  transport::PointLoad load;
  load.segment = sim.grid.SegmentAt(reach, km);
  load.species = species;
  // A duration shorter than a step would fall between the solver's time-averaged samples
  // only if it were sampled at points; TimeSeries::Average integrates exactly, so any
  // duration > 0 delivers exactly mass_g. Duration 0 is spread over one time step.
  const double d = duration_s > 0 ? duration_s : sim.problem.time_step_s;
  load.load_g_s.interpolation = transport::TimeSeries::Interpolation::kStep;
  // A step series holds its first value before its first time, so lead with a zero.
  load.load_g_s.times_s = {start_s - kDay, start_s, start_s + d};
  load.load_g_s.values = {0.0, mass_g / d, 0.0};
  return load;
}

}  // namespace qingshui::hydro
