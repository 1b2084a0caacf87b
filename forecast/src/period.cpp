#include "period.h"

#include <algorithm>
#include <cmath>

#include "qingshui/core/error.h"
#include "qingshui/forecast/time.h"
#include "qingshui/hydro/flow_balance.h"
#include "qingshui/hydro/flow_field.h"

namespace qingshui::forecast::detail {

namespace {
constexpr double kDay = 86400.0;
}

Network DayNetwork(const Network& base, const ForecastInputs& in, std::int64_t day) {
  Network net = base;
  // Records: the latest record of each (source, quantity) at or before the day.
  // plant_records is small (days × sources × quantities); a linear pass is enough.
  std::map<std::pair<std::string, std::string>, const PlantRecord*> latest;
  for (const PlantRecord& r : in.plant_records) {
    if (r.day > day) continue;
    auto& slot = latest[{r.source, r.quantity}];
    if (!slot || slot->day < r.day) slot = &r;
  }
  for (Source& s : net.sources) {
    for (const auto& [key, record] : latest) {
      if (key.first != s.id) continue;
      if (key.second == "flow_m3s") {
        s.design_flow_m3s = record->value;
      } else {
        s.effluent_mg_l[key.second] = record->value;
      }
    }
    auto apply = [&](const std::vector<ScheduleEvent>& events) {
      for (const ScheduleEvent& e : events) {
        if (e.source != s.id || !e.Covers(day)) continue;
        switch (e.kind) {
          case ScheduleEvent::Kind::kOutage:
          case ScheduleEvent::Kind::kUpgrade:
            for (const auto& [k, v] : e.effluent_mg_l) s.effluent_mg_l[k] = v;
            s.design_flow_m3s *= e.flow_factor;
            break;
          case ScheduleEvent::Kind::kFlow:
            s.design_flow_m3s = *e.flow_m3s;
            break;
          case ScheduleEvent::Kind::kOnline:
            s.status = "operating";
            s.online = FormatDate(e.from_day);
            s.offline.clear();
            break;
          case ScheduleEvent::Kind::kOffline:
            // Plugged until the end of the window: SourceActivityOn says why it is off.
            s.status = "plugged";
            s.offline = FormatDate(e.to_day == INT64_MAX ? day + 36500 : e.to_day);
            break;
        }
      }
    };
    apply(in.schedule);
    apply(in.scenario);
  }
  return net;
}

Period BuildPeriod(const std::vector<Network>& day_networks, const NetworkGrid& grid,
                   const std::vector<int>& station_segments, const PeriodSpec& spec) {
  if (static_cast<int>(day_networks.size()) != spec.days) {
    throw ConfigError("forecast: one network per day expected");
  }
  Period p;
  p.spec = spec;
  const Network& first = day_networks.front();
  const int ns = static_cast<int>(first.species.size());
  const int n = grid.size();

  for (int d = 0; d < spec.days; ++d) {
    const std::string date = FormatDate(spec.first_day + d);
    hydro::DayOptions day;
    day.date = date;
    day.sources_as_loads = true;
    if (spec.rain) {
      auto it = spec.rain->find(spec.first_day + d);
      if (it != spec.rain->end()) hydro::AddRain(it->second, &day);
    }
    if (spec.flow_factor != 1.0) {
      Network scaled = day_networks[d];
      for (Reach& r : scaled.reaches) {
        for (auto& [season, hw] : r.headwater) hw.flow_m3s *= spec.flow_factor;
        for (auto& [season, lf] : r.lateral_flow) lf.inflow_m2s *= spec.flow_factor;
      }
      for (auto& e : day.distributed_inflows) e.flow_m3s *= spec.flow_factor;
      p.hydraulics.push_back(hydro::SteadyHydraulics(scaled, grid, day));
    } else {
      p.hydraulics.push_back(hydro::SteadyHydraulics(day_networks[d], grid, day));
    }
  }

  transport::TransportProblem& tp = p.problem;
  tp.num_species = ns;
  tp.segments = hydro::ToTransportSegments(p.hydraulics.front());
  for (auto& seg : tp.segments) {
    seg.dispersion_m2s *= spec.dispersion_factor;
    if (!spec.decay_factor.empty()) {
      for (int k = 0; k < ns; ++k) {
        seg.decay_per_s[k] *= spec.decay_factor[k];
        seg.storage_decay_per_s[k] *= spec.decay_factor[k];
      }
    }
  }
  for (const auto& s : first.species) tp.theta.push_back(s.theta);
  tp.temperature_c.interpolation = transport::TimeSeries::Interpolation::kLinear;
  for (int d = 0; d < spec.days; ++d) {
    tp.temperature_c.times_s.push_back((d + 0.5) * kDay);
    tp.temperature_c.values.push_back(spec.temperature_c.at(d));
  }
  for (int d = 0; d < spec.days; ++d) {
    transport::FlowField f = hydro::ToFlowField(p.hydraulics[d]);
    transport::FlowState state = f.states.front();
    if (spec.velocity_factor != 1.0) {
      for (int i = 0; i < n; ++i) {
        if (!tp.segments[i].well_mixed) state.area_m2[i] /= spec.velocity_factor;
      }
    }
    if (spec.zero_lateral_concentration) {
      std::fill(state.lateral_concentration_g_m3.begin(), state.lateral_concentration_g_m3.end(),
                0.0);
    }
    tp.flow.times_s.push_back((d + 0.5) * kDay);
    tp.flow.states.push_back(std::move(state));
  }

  for (int seg : grid.HeadwaterSegments()) {
    p.headwater_segments.push_back(seg);
    p.headwater_reaches.push_back(grid.segments[seg].reach);
    std::vector<double> c(static_cast<size_t>(spec.days) * ns);
    for (int d = 0; d < spec.days; ++d) {
      for (int k = 0; k < ns; ++k) {
        c[d * ns + k] = p.hydraulics[d].headwater_concentration_g_m3[seg * ns + k];
      }
    }
    p.headwater_g_m3.push_back(std::move(c));
  }
  for (int d = 0; d < spec.days; ++d) {
    for (const auto& s : p.hydraulics[d].sources) {
      for (const auto& l : s.loads) {
        auto& list = p.loads[s.id];
        auto it = std::find_if(list.begin(), list.end(), [&](const DayLoad& x) {
          return x.segment == l.segment && x.species == l.species;
        });
        if (it == list.end()) {
          list.push_back(DayLoad{l.segment, l.species, std::vector<double>(spec.days, 0.0)});
          it = list.end() - 1;
        }
        it->g_s[d] += l.g_s;
      }
    }
  }

  tp.start_time_s = spec.start_s;
  tp.end_time_s = spec.end_s;
  tp.time_step_s = spec.time_step_s;
  tp.output_times_s = spec.output_times_s;
  for (int seg : station_segments) tp.stations.push_back(transport::Station{seg, -1, 0.0});
  return p;
}

transport::Forcing MakeForcing(const Period& p, const ComponentSet& components,
                               const std::vector<std::vector<double>>& factors) {
  const int ns = p.problem.num_species;
  const int days = p.spec.days;
  transport::Forcing f;
  const int nh = static_cast<int>(components.headwater_reaches.size());
  for (size_t h = 0; h < p.headwater_segments.size(); ++h) {
    const int c =
        static_cast<int>(std::find(components.headwater_reaches.begin(),
                                   components.headwater_reaches.end(), p.headwater_reaches[h]) -
                         components.headwater_reaches.begin());
    transport::UpstreamBoundary b;
    b.segment = p.headwater_segments[h];
    b.kind = transport::UpstreamBoundary::Kind::kConcentration;
    for (int k = 0; k < ns; ++k) {
      transport::TimeSeries s;
      s.interpolation = transport::TimeSeries::Interpolation::kStep;
      for (int d = 0; d < days; ++d) {
        const double factor = c < nh ? factors[c][d * ns + k] : 1.0;
        s.times_s.push_back(d * kDay);
        s.values.push_back(p.headwater_g_m3[h][d * ns + k] * factor);
      }
      b.series.push_back(std::move(s));
    }
    f.boundaries.push_back(std::move(b));
  }
  for (size_t j = 0; j < components.sources.size(); ++j) {
    auto it = p.loads.find(components.sources[j]);
    if (it == p.loads.end()) continue;
    const std::vector<double>& factor = factors[nh + j];
    for (const DayLoad& l : it->second) {
      transport::PointLoad load;
      load.segment = l.segment;
      load.species = l.species;
      load.load_g_s.interpolation = transport::TimeSeries::Interpolation::kStep;
      bool any = false;
      for (int d = 0; d < days; ++d) {
        const double v = l.g_s[d] * factor[d * ns + l.species];
        load.load_g_s.times_s.push_back(d * kDay);
        load.load_g_s.values.push_back(v);
        any = any || v != 0.0;
      }
      if (any) f.loads.push_back(std::move(load));
    }
  }
  return f;
}

}  // namespace qingshui::forecast::detail
