#include "qingshui/hydro/flow_balance.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/hydro/channel.h"
#include "qingshui/hydro/dispersion.h"
#include "qingshui/hydro/routing.h"

namespace qingshui::hydro {

namespace {

bool IsValidDate(const std::string& date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return false;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (date[i] < '0' || date[i] > '9') return false;
  }
  const int y = std::stoi(date.substr(0, 4)), m = std::stoi(date.substr(5, 2));
  const int d = std::stoi(date.substr(8, 2));
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= kDays[m - 1] + (m == 2 && leap ? 1 : 0);
}

std::string Seasons(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

template <typename Map>
std::vector<std::string> Keys(const Map& m) {
  std::vector<std::string> out;
  for (const auto& kv : m) out.push_back(kv.first);
  return out;
}

int FieldLine(const Network& net, const std::string& field, int fallback) {
  auto it = net.field_lines.find(field);
  return it != net.field_lines.end() ? it->second : fallback;
}

bool IsEffluentKind(SourceKind kind) {
  return kind == SourceKind::kTreatmentPlant || kind == SourceKind::kIndustrialOutfall ||
         kind == SourceKind::kStormOverflow;
}

}  // namespace

bool MeetsClass(const Standard& standard, const std::map<std::string, double>& c,
                const std::string& cls, std::string* failed) {
  auto it = std::find(standard.classes.begin(), standard.classes.end(), cls);
  if (it == standard.classes.end()) return true;  // unknown class: the rule cannot be judged
  const size_t k = static_cast<size_t>(it - standard.classes.begin());
  for (const auto& ind : standard.indicators) {
    auto v = c.find(ind.species);
    if (v == c.end() || k >= ind.limits_mg_l.size()) continue;
    const double limit = ind.limits_mg_l[k];
    const bool ok = ind.sense == "min" ? v->second >= limit : v->second <= limit;
    if (!ok) {
      std::ostringstream what;
      what << ind.species << " " << v->second << " mg/L against the Class " << cls << " limit "
           << limit;
      if (failed) *failed = what.str();
      return false;
    }
  }
  return true;
}

bool DayOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (!IsValidDate(date)) return fail("date: expected YYYY-MM-DD, found '" + date + "'");
  for (int m : wet_months) {
    if (m < 1 || m > 12) return fail("wet_months: expected months 1-12");
  }
  for (const auto& p : point_inflows) {
    if (!std::isfinite(p.flow_m3s) || p.flow_m3s < 0) {
      return fail(p.label + ": flow_m3s must be finite and >= 0");
    }
  }
  for (const auto& d : distributed_inflows) {
    if (!std::isfinite(d.flow_m3s) || d.flow_m3s < 0) {
      return fail(d.label + ": flow_m3s must be finite and >= 0");
    }
    if (!(d.km_to >= d.km_from)) return fail(d.label + ": km_to must be >= km_from");
  }
  return true;
}

std::string SeasonOfDate(const std::string& date, const std::vector<int>& wet_months) {
  if (!IsValidDate(date)) throw ConfigError("date: expected YYYY-MM-DD, found '" + date + "'");
  const int month = std::stoi(date.substr(5, 2));
  return std::find(wet_months.begin(), wet_months.end(), month) != wet_months.end() ? "wet" : "dry";
}

SourceActivity SourceActivityOn(const Network& net, const Source& s, const std::string& date) {
  if (s.kind == SourceKind::kStormOverflow) {
    return {false, "spills only in storms (rain)"};
  }
  if (s.status == "plugged") {
    if (s.offline.empty()) return {false, "plugged"};
    if (date <= s.offline) return {false, "plugged until " + s.offline};
  } else {
    if (!s.online.empty() && date < s.online)
      return {false, s.status + ", online from " + s.online};
    if ((s.status == "planned" || s.status == "under_construction") && s.online.empty()) {
      return {false, s.status + ", no online date"};
    }
    if (!s.offline.empty() && date > s.offline) return {false, "offline since " + s.offline};
  }
  if (s.kind == SourceKind::kLakeOutflow && !s.rule_class.empty() && net.standard) {
    std::string failed;
    if (!MeetsClass(*net.standard, s.effluent_mg_l, s.rule_class, &failed)) {
      return {false, "stores: outflow does not meet Class " + s.rule_class + " (" + failed + ")"};
    }
  }
  return {true, s.status == "plugged" ? "unplugged after " + s.offline : "operating"};
}

NetworkHydraulics SteadyHydraulics(const Network& net, const DayOptions& options) {
  return SteadyHydraulics(net, BuildGrid(net), options);
}

NetworkHydraulics SteadyHydraulics(const Network& net, const NetworkGrid& grid,
                                   const DayOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("hydraulics: " + error);
  NetworkHydraulics h;
  h.date = options.date;
  h.season =
      options.season.empty() ? SeasonOfDate(options.date, options.wet_months) : options.season;
  const int n = grid.size();
  const int ns = static_cast<int>(net.species.size());
  std::map<std::string, int> species_index;
  for (int k = 0; k < ns; ++k) {
    h.species.push_back(net.species[k].id);
    h.species_decay_per_s.push_back(net.species[k].decay_per_s);
    h.species_theta.push_back(net.species[k].theta);
    species_index[net.species[k].id] = k;
  }
  auto resize = [n](auto* v) { v->assign(n, {}); };
  for (auto* v : {&h.km_start,
                  &h.km_end,
                  &h.length_m,
                  &h.headwater_inflow_m3s,
                  &h.upstream_inflow_m3s,
                  &h.point_inflow_m3s,
                  &h.diffuse_inflow_m3s,
                  &h.withdrawal_m3s,
                  &h.loss_m3s,
                  &h.loss_capacity_m3s,
                  &h.flow_m3s,
                  &h.effluent_fraction,
                  &h.mean_flow_m3s,
                  &h.depth_m,
                  &h.area_m2,
                  &h.top_width_m,
                  &h.velocity_ms,
                  &h.shear_velocity_ms,
                  &h.dispersion_m2s,
                  &h.volume_m3,
                  &h.storage_area_m2,
                  &h.exchange_per_s}) {
    resize(v);
  }
  resize(&h.reach);
  resize(&h.dispersion_method);
  resize(&h.index_in_reach);
  resize(&h.is_lake);
  resize(&h.downstream);
  h.lateral_concentration_g_m3.assign(static_cast<size_t>(n) * ns, 0.0);
  h.headwater_concentration_g_m3.assign(static_cast<size_t>(n) * ns, 0.0);
  std::vector<double> lateral_load(static_cast<size_t>(n) * ns, 0.0);  // g/s
  std::vector<double> effluent_in(n, 0.0);     // m³/s of wastewater entering laterally
  std::vector<double> withdrawal_ask(n, 0.0);  // m³/s
  std::vector<double> loss_potential(n, 0.0);  // m³/s

  for (int i = 0; i < n; ++i) {
    const GridSegment& g = grid.segments[i];
    h.reach[i] = g.reach;
    h.index_in_reach[i] = g.index_in_reach;
    h.is_lake[i] = g.is_lake ? 1 : 0;
    h.km_start[i] = g.km_start;
    h.km_end[i] = g.km_end;
    h.length_m[i] = g.length_m;
    h.downstream[i] = g.downstream;
  }
  // Adds flow × c (less a wetland's removal) to the segment's lateral load; with a
  // SourceFlow, records it there as well and leaves it out of the lateral load when the
  // caller takes sources as separate point loads.
  auto add_load = [&](int seg, double flow, const std::map<std::string, double>& c,
                      const std::map<std::string, double>* removal,
                      SourceFlow* source = nullptr) {
    for (const auto& [sp, value] : c) {
      auto it = species_index.find(sp);
      if (it == species_index.end()) continue;
      double v = value;
      if (removal) {
        auto r = removal->find(sp);
        if (r != removal->end()) v *= 1.0 - r->second;
      }
      if (source) {
        if (flow * v != 0.0) source->loads.push_back({seg, it->second, flow * v});
        if (options.sources_as_loads) continue;
      }
      lateral_load[static_cast<size_t>(seg) * ns + it->second] += flow * v;
    }
  };

  // Headwater boundaries of the season.
  for (int i : grid.HeadwaterSegments()) {
    const Reach* r = net.FindReach(grid.segments[i].reach);
    if (!r || r->headwater.empty()) continue;  // nothing upstream and no boundary: dry start
    auto it = r->headwater.find(h.season);
    if (it == r->headwater.end()) {
      const std::string field = "reaches[" + r->id + "].headwater";
      throw ConfigError(Located(
          net.file, FieldLine(net, field, r->line), field,
          "no entry for season '" + h.season + "' (has: " + Seasons(Keys(r->headwater)) + ")"));
    }
    h.headwater_inflow_m3s[i] = it->second.flow_m3s;
    for (const auto& [sp, c] : it->second.concentration_mg_l) {
      auto k = species_index.find(sp);
      if (k != species_index.end()) h.headwater_concentration_g_m3[i * ns + k->second] = c;
    }
  }

  // Distributed inflow and losses of the season, and lake evaporation.
  for (const auto& r : net.reaches) {
    if (r.lateral_flow.empty()) continue;
    auto it = r.lateral_flow.find(h.season);
    if (it == r.lateral_flow.end()) {
      const std::string field = "reaches[" + r.id + "].lateral_flow";
      throw ConfigError(Located(
          net.file, FieldLine(net, field, r.line), field,
          "no entry for season '" + h.season + "' (has: " + Seasons(Keys(r.lateral_flow)) + ")"));
    }
    const auto [first, count] = grid.reach_segments.at(r.id);
    for (int i = first; i < first + count; ++i) {
      const double q = it->second.inflow_m2s * h.length_m[i];
      h.diffuse_inflow_m3s[i] += q;
      add_load(i, q, it->second.concentration_mg_l, nullptr);
      loss_potential[i] += it->second.loss_m2s * h.length_m[i];
    }
  }
  h.treatment_removal.assign(static_cast<size_t>(n) * ns, 0.0);
  for (const auto& lake : net.lakes) {
    auto seg = grid.lake_segment.find(lake.id);
    if (seg == grid.lake_segment.end() || lake.role != "treatment") continue;
    for (const auto& [sp, f] : lake.removal) {
      auto k = species_index.find(sp);
      if (k != species_index.end()) {
        h.treatment_removal[static_cast<size_t>(seg->second) * ns + k->second] = f;
      }
    }
  }
  for (const auto& lake : net.lakes) {
    auto seg = grid.lake_segment.find(lake.id);
    if (seg == grid.lake_segment.end() || lake.net_evaporation_m_s.empty()) continue;
    auto it = lake.net_evaporation_m_s.find(h.season);
    if (it == lake.net_evaporation_m_s.end()) {
      const std::string field = "lakes[" + lake.id + "].net_evaporation_mm_day";
      throw ConfigError(Located(net.file, FieldLine(net, field, lake.line), field,
                                "no entry for season '" + h.season +
                                    "' (has: " + Seasons(Keys(lake.net_evaporation_m_s)) + ")"));
    }
    const double q = it->second * lake.area_m2;
    if (q >= 0) {
      loss_potential[seg->second] += q;
    } else {
      h.diffuse_inflow_m3s[seg->second] += -q;  // rain exceeds evaporation: rain water, clean
    }
  }

  // Sources active on the date; wetland routing up to each wetland's capacity.
  std::map<std::string, double> wetland_room;  // remaining capacity, m³/s
  for (const auto& s : net.sources) {
    if (s.kind == SourceKind::kWetland) {
      wetland_room[s.id] =
          s.capacity_m3s ? *s.capacity_m3s : std::numeric_limits<double>::infinity();
    }
  }
  for (const auto& s : net.sources) {
    SourceFlow out;
    out.id = s.id;
    out.kind = ToString(s.kind);
    const SourceActivity act = SourceActivityOn(net, s, options.date);
    out.active = act.active;
    out.reason = act.reason;
    if (act.active) {
      const int seg = grid.SegmentAt(s.reach, s.km);
      out.segment = seg;
      if (s.kind == SourceKind::kWithdrawal) {
        withdrawal_ask[seg] += s.design_flow_m3s;
        out.flow_m3s = s.design_flow_m3s;  // corrected below if the river cannot supply it
      } else {
        double direct = s.design_flow_m3s;
        if (!s.via.empty()) {
          const Source* w = net.FindSource(s.via);
          const SourceActivity wact = SourceActivityOn(net, *w, options.date);
          if (wact.active) {
            double routed = std::min(direct, wetland_room[w->id]);
            wetland_room[w->id] -= routed;
            direct -= routed;
            if (routed > 0) {
              const int wseg = grid.SegmentAt(w->reach, w->km);
              h.point_inflow_m3s[wseg] += routed;
              add_load(wseg, routed, s.effluent_mg_l, &w->removal, &out);
              if (IsEffluentKind(s.kind)) effluent_in[wseg] += routed;
              out.via = w->id;
              out.via_wetland_m3s = routed;
            }
          }
        }
        h.point_inflow_m3s[seg] += direct;
        add_load(seg, direct, s.effluent_mg_l, nullptr, &out);
        if (IsEffluentKind(s.kind)) effluent_in[seg] += direct;
        out.flow_m3s = s.design_flow_m3s;
      }
    }
    h.sources.push_back(out);
  }
  for (const auto& p : options.point_inflows) {
    const int seg = grid.SegmentAt(p.reach, p.km);
    h.point_inflow_m3s[seg] += p.flow_m3s;
    add_load(seg, p.flow_m3s, p.concentration_mg_l, nullptr);
    if (p.is_effluent) effluent_in[seg] += p.flow_m3s;
    SourceFlow out;
    out.id = p.label;
    out.kind = "extra_point_inflow";
    out.active = true;
    out.reason = "given for the day";
    out.segment = seg;
    out.flow_m3s = p.flow_m3s;
    h.sources.push_back(out);
  }
  for (const auto& d : options.distributed_inflows) {
    // Share the flow among the segments by their overlap with [km_from, km_to]; a
    // zero-length stretch is a point inflow.
    const int a = grid.SegmentAt(d.reach, d.km_from), b = grid.SegmentAt(d.reach, d.km_to);
    const double span = d.km_to - d.km_from;
    for (int i = a; i <= b; ++i) {
      const double overlap =
          span > 0 ? (std::min(d.km_to, h.km_end[i]) - std::max(d.km_from, h.km_start[i])) / span
                   : 1.0;
      if (overlap <= 0) continue;
      const double q = d.flow_m3s * overlap;
      h.diffuse_inflow_m3s[i] += q;
      add_load(i, q, d.concentration_mg_l, nullptr);
    }
  }

  // Sweep upstream-first: each segment's inflow is complete when it is reached.
  std::vector<double> effluent_from_upstream(n, 0.0);  // m³/s of wastewater
  WaterBalance& bal = h.balance;
  for (int i = 0; i < n; ++i) {
    const double in = h.headwater_inflow_m3s[i] + h.upstream_inflow_m3s[i] + h.point_inflow_m3s[i] +
                      h.diffuse_inflow_m3s[i];
    const double taken = std::min(withdrawal_ask[i], in);
    double lost = std::min(loss_potential[i], in - taken);
    // A remainder at the round-off level of the inflow is a dry segment, not a trickle of
    // 1e-18 m³/s: the losses take it, so the balance stays exact.
    if (in - taken - lost <= 64 * std::numeric_limits<double>::epsilon() * in &&
        loss_potential[i] > 0) {
      lost = in - taken;
    }
    h.withdrawal_m3s[i] = taken;
    h.loss_m3s[i] = lost;
    h.loss_capacity_m3s[i] = withdrawal_ask[i] + loss_potential[i];
    const double out = std::max(0.0, in - taken - lost);
    h.flow_m3s[i] = out;
    const double eff = effluent_from_upstream[i] + effluent_in[i];
    h.effluent_fraction[i] = in > 0 && out > 0 ? std::min(1.0, eff / in) : 0.0;
    if (h.downstream[i] >= 0) {
      h.upstream_inflow_m3s[h.downstream[i]] += out;
      effluent_from_upstream[h.downstream[i]] += out * h.effluent_fraction[i];
    } else {
      bal.outlet_m3s += out;
    }
    const double lateral = h.point_inflow_m3s[i] + h.diffuse_inflow_m3s[i];
    for (int k = 0; k < ns; ++k) {
      h.lateral_concentration_g_m3[i * ns + k] =
          lateral > 0 ? lateral_load[static_cast<size_t>(i) * ns + k] / lateral : 0.0;
    }
    if (withdrawal_ask[i] > taken) {
      std::ostringstream w;
      w << "segment " << i << " (" << h.reach[i] << " km " << h.km_start[i] << "-" << h.km_end[i]
        << "): withdrawals asked " << withdrawal_ask[i] << " m3/s, the river had " << taken;
      h.warnings.push_back(w.str());
      bal.withdrawal_shortfall_m3s += withdrawal_ask[i] - taken;
    }
    bal.headwater_m3s += h.headwater_inflow_m3s[i];
    bal.point_inflow_m3s += h.point_inflow_m3s[i];
    bal.diffuse_inflow_m3s += h.diffuse_inflow_m3s[i];
    bal.withdrawal_m3s += taken;
    if (h.is_lake[i]) {
      bal.lake_evaporation_m3s += lost;
    } else {
      bal.loss_m3s += lost;
    }
  }
  // Withdrawals report what they actually took: shared in proportion to what they asked.
  for (auto& s : h.sources) {
    if (s.active && s.kind == "withdrawal" && withdrawal_ask[s.segment] > 0) {
      s.flow_m3s *= h.withdrawal_m3s[s.segment] / withdrawal_ask[s.segment];
    }
  }
  bal.residual_m3s = bal.inflow_m3s() - bal.outflow_m3s();
  bal.relative_residual =
      bal.inflow_m3s() > 0 ? std::abs(bal.residual_m3s) / bal.inflow_m3s() : 0.0;

  // Channel hydraulics at each segment's mean flow.
  for (int i = 0; i < n; ++i) {
    if (h.is_lake[i]) {
      const Lake* lake = net.FindLake(h.reach[i]);
      h.depth_m[i] = lake->mean_depth_m;
      h.volume_m3[i] = lake->volume_m3();
      if (lake->levels.size() >= 2) {
        // A level pool stands at the level whose outflow is the day's flow.
        const LevelPool pool(lake->levels, net.file + ": lakes[" + lake->id + "].levels");
        if (pool.has_outflow()) {
          h.volume_m3[i] = pool.VolumeForOutflow(h.flow_m3s[i]);
          h.depth_m[i] = pool.Depth(h.volume_m3[i]);
        }
      }
      h.mean_flow_m3s[i] = h.flow_m3s[i];
      h.dispersion_method[i] = "well_mixed";
      continue;
    }
    const Reach& r = *net.FindReach(h.reach[i]);
    const double in = h.headwater_inflow_m3s[i] + h.upstream_inflow_m3s[i] + h.point_inflow_m3s[i] +
                      h.diffuse_inflow_m3s[i];
    const double qm = 0.5 * (in + h.flow_m3s[i]);
    h.mean_flow_m3s[i] = qm;
    const SectionState s = ReachSection(r, qm);
    h.depth_m[i] = s.depth_m;
    h.area_m2[i] = s.area_m2;
    h.top_width_m[i] = s.top_width_m;
    h.velocity_ms[i] = s.velocity_ms;
    h.volume_m3[i] = s.area_m2 * h.length_m[i];
    h.shear_velocity_ms[i] =
        std::sqrt(GRAVITY_M_S2 * s.hydraulic_radius_m() * r.geometry.bed_slope);
    if (qm <= 0.0) {
      h.dispersion_method[i] = "dry";
    } else if (r.dispersion_m2s) {
      h.dispersion_m2s[i] = *r.dispersion_m2s;
      h.dispersion_method[i] = "user";
    } else {
      const DispersionFormula f = ParseDispersionFormula(r.dispersion_formula);
      SectionFlow sf;
      sf.velocity_ms = s.velocity_ms;
      sf.depth_m = s.top_width_m > 0 ? s.area_m2 / s.top_width_m : 0.0;
      sf.width_m = s.top_width_m;
      sf.shear_velocity_ms = h.shear_velocity_ms[i];
      h.dispersion_m2s[i] = DispersionCoefficient(f, sf);
      h.dispersion_method[i] = ToString(f);
    }
    if (r.storage && s.area_m2 > 0) {
      h.storage_area_m2[i] = r.storage->area_ratio * s.area_m2;
      h.exchange_per_s[i] = r.storage->exchange_per_s;
    }
  }
  return h;
}

int NetworkHydraulics::dry_segment_count() const {
  int dry = 0;
  for (int i = 0; i < size(); ++i) dry += (!is_lake[i] && flow_m3s[i] <= 0.0) ? 1 : 0;
  return dry;
}

std::string NetworkHydraulics::BriefReport() const {
  std::ostringstream out;
  out << std::setprecision(6);
  out << "hydraulics " << (date.empty() ? "" : date + " ") << "(season " << season
      << "): " << size() << " segments, " << dry_segment_count() << " dry\n";
  const WaterBalance& b = balance;
  out << "water in  " << b.inflow_m3s() << " m3/s: headwaters " << b.headwater_m3s << ", sources "
      << b.point_inflow_m3s << ", diffuse " << b.diffuse_inflow_m3s << "\n";
  out << "water out " << b.outflow_m3s() << " m3/s: outlets " << b.outlet_m3s << ", withdrawals "
      << b.withdrawal_m3s << ", losses " << b.loss_m3s << ", lake evaporation "
      << b.lake_evaporation_m3s << "\n";
  out << "volume balance residual " << b.residual_m3s << " m3/s (relative " << b.relative_residual
      << ")\n";
  for (const auto& w : warnings) out << "warning: " << w << "\n";
  return out.str();
}

}  // namespace qingshui::hydro
