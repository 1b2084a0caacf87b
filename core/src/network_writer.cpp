// Writes a Network back to the documented YAML format. Numbers keep the provenance they
// were read with ({value, src}), so that a round trip loses nothing an analyst wrote.
#include <yaml-cpp/yaml.h>

#include <map>

#include "qingshui/core/network.h"

namespace qingshui {

namespace {

class Writer {
 public:
  explicit Writer(const Network& net) {
    for (const auto& p : net.provenance) provenance_[p.path] = &p;
    out_.SetDoublePrecision(15);
    out_.SetIndent(2);
  }

  YAML::Emitter& out() { return out_; }

  // Emits `key: value` (value in file units), with provenance if it was recorded.
  void Number(const std::string& key, double value, const std::string& path) {
    out_ << YAML::Key << key << YAML::Value;
    auto it = provenance_.find(path);
    if (it == provenance_.end() || it->second->kind == '?') {
      out_ << value;
      return;
    }
    out_ << YAML::Flow << YAML::BeginMap << YAML::Key << "value" << YAML::Value << value
         << YAML::Key << "src" << YAML::Value
         << (std::string(1, it->second->kind) + ": " + it->second->text) << YAML::EndMap;
  }

  void NumberMap(const std::string& key, const std::map<std::string, double>& values,
                 const std::string& path) {
    if (values.empty()) return;
    out_ << YAML::Key << key << YAML::Value << YAML::BeginMap;
    for (const auto& [name, v] : values) Number(name, v, path + "." + name);
    out_ << YAML::EndMap;
  }

  void Text(const std::string& key, const std::string& value) {
    if (value.empty()) return;
    out_ << YAML::Key << key << YAML::Value << YAML::DoubleQuoted << value;
  }

  template <typename T>
  void Identity(const T& object) {
    out_ << YAML::Key << "id" << YAML::Value << object.id;
    Text("name_zh", object.name_zh);
    Text("name_en", object.name_en);
  }

 private:
  YAML::Emitter out_;
  std::map<std::string, const Provenance*> provenance_;
};

}  // namespace

std::string WriteNetworkYaml(const Network& net) {
  Writer w(net);
  YAML::Emitter& out = w.out();
  out << YAML::BeginMap;
  out << YAML::Key << "format" << YAML::Value << "qingshui-network";
  out << YAML::Key << "version" << YAML::Value << net.version;
  w.Text("name", net.name);
  w.Text("description", net.description);
  w.Text("standards", net.standards_path);

  out << YAML::Key << "species" << YAML::Value << YAML::BeginSeq;
  for (const auto& s : net.species) {
    const std::string p = "species[" + s.id + "]";
    out << YAML::BeginMap;
    w.Identity(s);
    w.Text("unit", s.unit);
    w.Number("decay_per_day_20c", s.decay_per_s * 86400.0, p + ".decay_per_day_20c");
    w.Number("theta", s.theta, p + ".theta");
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "rivers" << YAML::Value << YAML::BeginSeq;
  for (const auto& r : net.rivers) {
    out << YAML::BeginMap;
    w.Identity(r);
    w.Text("km_reference", r.km_reference);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "reaches" << YAML::Value << YAML::BeginSeq;
  for (const auto& r : net.reaches) {
    const std::string p = "reaches[" + r.id + "]";
    out << YAML::BeginMap;
    w.Identity(r);
    w.Text("river", r.river);
    w.Number("start_km", r.start_km, p + ".start_km");
    w.Number("length_km", r.length_m / 1000.0, p + ".length_km");
    w.Number("segment_length_m", r.segment_length_m, p + ".segment_length_m");
    w.Text("downstream", r.downstream);
    out << YAML::Key << "geometry" << YAML::Value << YAML::BeginMap;
    w.Number("bottom_width_m", r.geometry.bottom_width_m, p + ".geometry.bottom_width_m");
    w.Number("side_slope", r.geometry.side_slope, p + ".geometry.side_slope");
    w.Number("manning_n", r.geometry.manning_n, p + ".geometry.manning_n");
    w.Number("bed_slope", r.geometry.bed_slope, p + ".geometry.bed_slope");
    out << YAML::EndMap;
    if (r.storage) {
      out << YAML::Key << "storage" << YAML::Value << YAML::BeginMap;
      w.Number("area_ratio", r.storage->area_ratio, p + ".storage.area_ratio");
      w.Number("exchange_per_s", r.storage->exchange_per_s, p + ".storage.exchange_per_s");
      out << YAML::EndMap;
    }
    if (!r.headwater.empty()) {
      out << YAML::Key << "headwater" << YAML::Value << YAML::BeginMap;
      for (const auto& [season, state] : r.headwater) {
        const std::string hp = p + ".headwater." + season;
        out << YAML::Key << season << YAML::Value << YAML::BeginMap;
        w.Number("flow_m3s", state.flow_m3s, hp + ".flow_m3s");
        w.NumberMap("concentration_mg_l", state.concentration_mg_l, hp + ".concentration_mg_l");
        out << YAML::EndMap;
      }
      out << YAML::EndMap;
    }
    if (r.rating_curve) {
      out << YAML::Key << "rating_curve" << YAML::Value << YAML::BeginMap;
      w.Number("a", r.rating_curve->a, p + ".rating_curve.a");
      w.Number("b", r.rating_curve->b, p + ".rating_curve.b");
      out << YAML::EndMap;
    }
    if (r.dispersion_m2s) w.Number("dispersion_m2s", *r.dispersion_m2s, p + ".dispersion_m2s");
    if (r.dispersion_formula != "fischer") w.Text("dispersion_formula", r.dispersion_formula);
    if (!r.lateral_flow.empty()) {
      out << YAML::Key << "lateral_flow" << YAML::Value << YAML::BeginMap;
      for (const auto& [season, flow] : r.lateral_flow) {
        const std::string lp = p + ".lateral_flow." + season;
        out << YAML::Key << season << YAML::Value << YAML::BeginMap;
        w.Number("inflow_m3s_per_km", flow.inflow_m2s * 1000.0, lp + ".inflow_m3s_per_km");
        w.Number("loss_m3s_per_km", flow.loss_m2s * 1000.0, lp + ".loss_m3s_per_km");
        w.NumberMap("concentration_mg_l", flow.concentration_mg_l, lp + ".concentration_mg_l");
        out << YAML::EndMap;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  if (!net.lakes.empty()) {
    out << YAML::Key << "lakes" << YAML::Value << YAML::BeginSeq;
    for (const auto& l : net.lakes) {
      const std::string p = "lakes[" + l.id + "]";
      out << YAML::BeginMap;
      w.Identity(l);
      w.Text("src", l.src);
      w.Text("role", l.role);
      w.Number("area_km2", l.area_m2 / 1e6, p + ".area_km2");
      w.Number("mean_depth_m", l.mean_depth_m, p + ".mean_depth_m");
      w.Text("downstream", l.downstream);
      w.NumberMap("removal", l.removal, p + ".removal");
      w.Text("rule", l.rule);
      w.Text("rule_class", l.rule_class);
      if (!l.net_evaporation_m_s.empty()) {
        std::map<std::string, double> mm_day;
        for (const auto& [season, v] : l.net_evaporation_m_s) mm_day[season] = v * 86400.0 * 1000.0;
        w.NumberMap("net_evaporation_mm_day", mm_day, p + ".net_evaporation_mm_day");
      }
      if (!l.levels.empty()) {
        out << YAML::Key << "levels" << YAML::Value << YAML::BeginSeq;
        for (size_t k = 0; k < l.levels.size(); ++k) {
          const std::string lp = p + ".levels[" + std::to_string(k) + "]";
          out << YAML::Flow << YAML::BeginMap;
          w.Number("depth_m", l.levels[k].depth_m, lp + ".depth_m");
          w.Number("area_km2", l.levels[k].area_m2 / 1e6, lp + ".area_km2");
          w.Number("outflow_m3s", l.levels[k].outflow_m3s, lp + ".outflow_m3s");
          out << YAML::EndMap;
        }
        out << YAML::EndSeq;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }

  out << YAML::Key << "outlets" << YAML::Value << YAML::BeginSeq;
  for (const auto& o : net.outlets) {
    out << YAML::BeginMap;
    w.Identity(o);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  if (!net.sources.empty()) {
    out << YAML::Key << "sources" << YAML::Value << YAML::BeginSeq;
    for (const auto& s : net.sources) {
      const std::string p = "sources[" + s.id + "]";
      out << YAML::BeginMap;
      w.Identity(s);
      w.Text("src", s.src);
      w.Text("kind", ToString(s.kind));
      w.Text("reach", s.reach);
      w.Number("km", s.km, p + ".km");
      w.Number("design_flow_m3s", s.design_flow_m3s, p + ".design_flow_m3s");
      w.NumberMap("effluent_mg_l", s.effluent_mg_l, p + ".effluent_mg_l");
      w.Text("online", s.online);
      w.Text("offline", s.offline);
      w.Text("status", s.status);
      w.Text("via", s.via);
      w.Text("lake", s.lake);
      w.NumberMap("removal", s.removal, p + ".removal");
      if (s.capacity_m3s) w.Number("capacity_m3s", *s.capacity_m3s, p + ".capacity_m3s");
      w.Text("rule", s.rule);
      w.Text("rule_class", s.rule_class);
      w.Text("basin", s.basin);
      if (s.sewage_inflow_m3s)
        w.Number("sewage_inflow_m3s", *s.sewage_inflow_m3s, p + ".sewage_inflow_m3s");
      if (s.buffer_tank_m3) w.Number("buffer_tank_m3", *s.buffer_tank_m3, p + ".buffer_tank_m3");
      w.NumberMap("raw_sewage_mg_l", s.raw_sewage_mg_l, p + ".raw_sewage_mg_l");
      w.Text("overflow_at", s.overflow_at);
      if (!s.operations.empty()) {
        out << YAML::Key << "operations" << YAML::Value << YAML::BeginSeq;
        for (size_t k = 0; k < s.operations.size(); ++k) {
          const PlantOperation& op = s.operations[k];
          out << YAML::Flow << YAML::BeginMap;
          w.Text("from", op.from);
          w.Text("to", op.to);
          w.Number("capacity_factor", op.capacity_factor,
                   p + ".operations[" + std::to_string(k) + "].capacity_factor");
          out << YAML::EndMap;
        }
        out << YAML::EndSeq;
      }
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }

  if (!net.stations.empty()) {
    out << YAML::Key << "stations" << YAML::Value << YAML::BeginSeq;
    for (const auto& s : net.stations) {
      const std::string p = "stations[" + s.id + "]";
      out << YAML::BeginMap;
      w.Identity(s);
      w.Text("src", s.src);
      w.Text("kind", s.kind);
      w.Text("reach", s.reach);
      w.Number("km", s.km, p + ".km");
      w.Number("sampling_interval_h", s.sampling_interval_s / 3600.0, p + ".sampling_interval_h");
      w.Text("target_class", s.target_class);
      w.Text("monitors", s.monitors);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  if (!net.catchments.empty()) {
    out << YAML::Key << "catchments" << YAML::Value << YAML::BeginSeq;
    for (const auto& c : net.catchments) {
      const std::string p = "catchments[" + c.id + "]";
      out << YAML::BeginMap;
      w.Identity(c);
      w.Text("src", c.src);
      w.Text("reach", c.reach);
      w.Number("km_from", c.km_from, p + ".km_from");
      w.Number("km_to", c.km_to, p + ".km_to");
      w.Number("area_km2", c.area_m2 / 1e6, p + ".area_km2");
      w.Number("curve_number", c.curve_number, p + ".curve_number");
      w.Number("initial_abstraction_ratio", c.initial_abstraction_ratio,
               p + ".initial_abstraction_ratio");
      w.NumberMap("runoff_mg_l", c.runoff_mg_l, p + ".runoff_mg_l");
      w.Text("sewer_plant", c.sewer_plant);
      if (!c.sewer_plant.empty())
        w.Number("sewered_fraction", c.sewered_fraction, p + ".sewered_fraction");
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace qingshui
