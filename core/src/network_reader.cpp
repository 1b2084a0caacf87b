// Reading and validating network files (docs/network-format.md). Parsing collects every
// located error it can in one pass; the semantic checks (references, placement, topology)
// run only on a file that parsed, so that one typo does not cascade into ten messages.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "yaml_reader.h"

namespace qingshui {

using detail::Bound;
using detail::ForEachItem;
using detail::LineOf;
using detail::MapReader;
using detail::ReadContext;

namespace {

constexpr double kSecondsPerDay = 86400.0;
constexpr double kMetresPerKm = 1000.0;

const std::vector<std::string>& StationKinds() {
  static const std::vector<std::string> kinds = {"assessment_section",
                                                 "former_national_section",
                                                 "county_boundary_section", "outfall_monitor",
                                                 "river_station"};
  return kinds;
}

std::string ReadFile(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(Located(path, 0, "", std::string("cannot open ") + what));
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw ConfigError(Located(path, 0, "", std::string("cannot read ") + what));
  return buffer.str();
}

// Id and both names, common to every object.
template <typename T>
void ReadIdentity(MapReader& r, T* object) {
  object->id = r.Text("id", true);
  if (!object->id.empty() && !detail::IsValidId(object->id)) {
    r.context()->Error(r.line(), r.path() + ".id",
                       "'" + object->id +
                           "' is not a valid id (ASCII letter first, then letters, digits, _ or -)");
  }
  object->name_zh = r.Text("name_zh", true);
  object->name_en = r.Text("name_en", true);
}

// "sources[3]" becomes "sources[chengxi_wwtp]" once the id is known, so that provenance
// paths survive reordering and round trips.
std::string ItemPath(const std::string& list, size_t index, const YAML::Node& item) {
  if (item.IsMap() && item["id"].IsDefined() && item["id"].IsScalar()) {
    return list + "[" + item["id"].Scalar() + "]";
  }
  return list + "[" + std::to_string(index) + "]";
}

void ReadSpecies(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "species", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("species", i, item), ctx);
    Species s;
    s.line = r.line();
    ReadIdentity(r, &s);
    s.unit = r.Choice("unit", {"mg/L"}, false, "mg/L");
    s.decay_per_s =
        r.Number("decay_per_day_20c", false, 0.0, Bound::kNonNegative, 1.0 / kSecondsPerDay);
    s.theta = r.Number("theta", false, 1.0, Bound::kPositive);
    r.RejectUnknownKeys();
    net->species.push_back(s);
  });
}

void ReadRivers(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "rivers", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("rivers", i, item), ctx);
    River river;
    river.line = r.line();
    ReadIdentity(r, &river);
    river.km_reference = r.Text("km_reference", false);
    r.RejectUnknownKeys();
    net->rivers.push_back(river);
  });
}

void ReadHeadwater(const YAML::Node& node, const std::string& path, ReadContext* ctx,
                   Reach* reach) {
  if (!node.IsDefined() || node.IsNull()) return;
  MapReader seasons(node, path, ctx);
  if (!seasons.ok()) return;
  for (const auto& kv : node) {
    const std::string season = kv.first.Scalar();
    MapReader r(kv.second, path + "." + season, ctx);
    HeadwaterState state;
    state.flow_m3s = r.Number("flow_m3s", true, 0.0, Bound::kNonNegative);
    state.concentration_mg_l = r.NumberMap("concentration_mg_l", Bound::kNonNegative);
    r.RejectUnknownKeys();
    reach->headwater[season] = state;
  }
}

// `lateral_flow`: per season, distributed inflow and losses in m³/s per km of channel.
void ReadLateralFlow(const YAML::Node& node, const std::string& path, ReadContext* ctx,
                     Reach* reach) {
  if (!node.IsDefined() || node.IsNull()) return;
  MapReader seasons(node, path, ctx);
  if (!seasons.ok()) return;
  for (const auto& kv : node) {
    const std::string season = kv.first.Scalar();
    MapReader r(kv.second, path + "." + season, ctx);
    LateralFlow flow;
    flow.inflow_m2s =
        r.Number("inflow_m3s_per_km", false, 0.0, Bound::kNonNegative, 1.0 / kMetresPerKm);
    flow.loss_m2s =
        r.Number("loss_m3s_per_km", false, 0.0, Bound::kNonNegative, 1.0 / kMetresPerKm);
    flow.concentration_mg_l = r.NumberMap("concentration_mg_l", Bound::kNonNegative);
    r.RejectUnknownKeys();
    reach->lateral_flow[season] = flow;
  }
}

const std::vector<std::string>& DispersionFormulas() {
  static const std::vector<std::string> names = {"fischer", "kashefipour_falconer", "deng"};
  return names;
}

void ReadReaches(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "reaches", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("reaches", i, item), ctx);
    Reach reach;
    reach.line = r.line();
    ReadIdentity(r, &reach);
    reach.river = r.Text("river", true);
    reach.start_km = r.Number("start_km", false, 0.0, Bound::kNonNegative);
    reach.length_m = r.Number("length_km", true, 0.0, Bound::kPositive, kMetresPerKm);
    reach.segment_length_m = r.Number("segment_length_m", true, 0.0, Bound::kPositive);
    if (reach.length_m > 0 && reach.segment_length_m > reach.length_m) {
      ctx->Error(LineOf(item["segment_length_m"]), r.ChildPath("segment_length_m"),
                 "segment length " + std::to_string(reach.segment_length_m) +
                     " m exceeds the reach length " + std::to_string(reach.length_m) + " m");
    }
    reach.downstream = r.Text("downstream", true);
    MapReader g(r.Child("geometry"), r.ChildPath("geometry"), ctx);
    reach.geometry.bottom_width_m = g.Number("bottom_width_m", true, 0.0, Bound::kPositive);
    reach.geometry.side_slope = g.Number("side_slope", false, 0.0, Bound::kNonNegative);
    reach.geometry.manning_n = g.Number("manning_n", true, 0.0, Bound::kPositive);
    reach.geometry.bed_slope = g.Number("bed_slope", true, 0.0, Bound::kPositive);
    g.RejectUnknownKeys();
    YAML::Node storage = r.Child("storage");
    if (storage.IsDefined() && !storage.IsNull()) {
      MapReader s(storage, r.ChildPath("storage"), ctx);
      StorageZone zone;
      zone.area_ratio = s.Number("area_ratio", true, 0.0, Bound::kPositive);
      zone.exchange_per_s = s.Number("exchange_per_s", true, 0.0, Bound::kNonNegative);
      s.RejectUnknownKeys();
      reach.storage = zone;
    }
    ReadHeadwater(r.Child("headwater"), r.ChildPath("headwater"), ctx, &reach);
    YAML::Node rating = r.Child("rating_curve");
    if (rating.IsDefined() && !rating.IsNull()) {
      // Both coefficients > 0: a rating whose flow does not increase with depth has no
      // unique depth for a flow.
      MapReader rc(rating, r.ChildPath("rating_curve"), ctx);
      RatingCurve curve;
      curve.a = rc.Number("a", true, 0.0, Bound::kPositive);
      curve.b = rc.Number("b", true, 0.0, Bound::kPositive);
      rc.RejectUnknownKeys();
      reach.rating_curve = curve;
    }
    reach.dispersion_m2s = r.OptionalNumber("dispersion_m2s", Bound::kNonNegative);
    reach.dispersion_formula =
        r.Choice("dispersion_formula", DispersionFormulas(), false, "fischer");
    ReadLateralFlow(r.Child("lateral_flow"), r.ChildPath("lateral_flow"), ctx, &reach);
    r.RejectUnknownKeys();
    net->reaches.push_back(reach);
  });
}

void ReadLakes(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "lakes", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("lakes", i, item), ctx);
    Lake lake;
    lake.line = r.line();
    ReadIdentity(r, &lake);
    lake.src = r.Text("src", true);
    lake.role = r.Choice("role", {"storage", "treatment"}, false, "storage");
    lake.area_m2 = r.Number("area_km2", true, 0.0, Bound::kPositive, 1e6);
    lake.mean_depth_m = r.Number("mean_depth_m", true, 0.0, Bound::kPositive);
    lake.downstream = r.Text("downstream", false);
    lake.removal = r.NumberMap("removal", Bound::kFraction);
    lake.rule = r.Text("rule", false);
    lake.rule_class = r.Text("rule_class", false);
    for (const auto& [season, mm_day] : r.NumberMap("net_evaporation_mm_day", Bound::kAny)) {
      lake.net_evaporation_m_s[season] = mm_day / 1000.0 / kSecondsPerDay;
    }
    ForEachItem(
        r.Child("levels"), r.ChildPath("levels"), ctx, [&](const YAML::Node& row, size_t k) {
          MapReader lr(row, r.ChildPath("levels") + "[" + std::to_string(k) + "]", ctx);
          LakeLevel level;
          level.depth_m = lr.Number("depth_m", true, 0.0, Bound::kNonNegative);
          level.area_m2 = lr.Number("area_km2", true, 0.0, Bound::kPositive, 1e6);
          level.outflow_m3s = lr.Number("outflow_m3s", true, 0.0, Bound::kNonNegative);
          lr.RejectUnknownKeys();
          // A relation that does not rise with the level has no unique level for a
          // volume or an outflow.
          if (!lake.levels.empty()) {
            const LakeLevel& prev = lake.levels.back();
            if (!(level.depth_m > prev.depth_m)) {
              ctx->Error(lr.line(), lr.path() + ".depth_m", "depths must increase from row to row");
            }
            if (level.outflow_m3s < prev.outflow_m3s) {
              ctx->Error(lr.line(), lr.path() + ".outflow_m3s",
                         "outflow must not decrease as the level rises");
            }
          } else if (level.outflow_m3s != 0.0) {
            ctx->Error(lr.line(), lr.path() + ".outflow_m3s",
                       "the first (lowest) row must have outflow 0");
          }
          lake.levels.push_back(level);
        });
    r.RejectUnknownKeys();
    net->lakes.push_back(lake);
  });
}

void ReadOutlets(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "outlets", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("outlets", i, item), ctx);
    Outlet outlet;
    outlet.line = r.line();
    ReadIdentity(r, &outlet);
    r.RejectUnknownKeys();
    net->outlets.push_back(outlet);
  });
}

void ReadSources(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "sources", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("sources", i, item), ctx);
    Source s;
    s.line = r.line();
    ReadIdentity(r, &s);
    s.src = r.Text("src", true);
    std::string kind = r.Choice("kind", SourceKindNames(), true, "");
    if (!kind.empty()) ParseSourceKind(kind, &s.kind);
    s.reach = r.Text("reach", true);
    s.km = r.Number("km", true, 0.0, Bound::kNonNegative);
    s.design_flow_m3s = r.Number("design_flow_m3s", true, 0.0, Bound::kNonNegative);
    s.effluent_mg_l = r.NumberMap("effluent_mg_l", Bound::kNonNegative);
    s.online = r.Date("online");
    s.offline = r.Date("offline");
    s.status = r.Choice("status", {"operating", "planned", "plugged", "under_construction"}, false,
                        "operating");
    s.via = r.Text("via", false);
    s.lake = r.Text("lake", false);
    s.removal = r.NumberMap("removal", Bound::kFraction);
    s.capacity_m3s = r.OptionalNumber("capacity_m3s", Bound::kNonNegative);
    s.rule = r.Text("rule", false);
    s.rule_class = r.Text("rule_class", false);
    s.basin = r.Text("basin", false);
    s.sewage_inflow_m3s = r.OptionalNumber("sewage_inflow_m3s", Bound::kNonNegative);
    s.buffer_tank_m3 = r.OptionalNumber("buffer_tank_m3", Bound::kNonNegative);
    s.raw_sewage_mg_l = r.NumberMap("raw_sewage_mg_l", Bound::kNonNegative);
    s.overflow_at = r.Text("overflow_at", false);
    ForEachItem(
        r.Child("operations"), r.ChildPath("operations"), ctx,
        [&](const YAML::Node& row, size_t k) {
          MapReader orow(row, r.ChildPath("operations") + "[" + std::to_string(k) + "]", ctx);
          PlantOperation op;
          op.from = orow.Date("from");
          op.to = orow.Date("to");
          if (orow.ok() && (!orow.Has("from") || !orow.Has("to"))) {
            ctx->Error(orow.line(), orow.path(), "an operation needs `from` and `to` dates");
          }
          if (!op.from.empty() && !op.to.empty() && op.to < op.from) {
            ctx->Error(orow.line(), orow.path() + ".to",
                       "end date " + op.to + " is before start date " + op.from);
          }
          op.capacity_factor = orow.Number("capacity_factor", false, 1.0, Bound::kPositive);
          orow.RejectUnknownKeys();
          s.operations.push_back(op);
        });
    r.RejectUnknownKeys();
    net->sources.push_back(s);
  });
}

void ReadCatchments(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "catchments", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("catchments", i, item), ctx);
    Catchment c;
    c.line = r.line();
    ReadIdentity(r, &c);
    c.src = r.Text("src", true);
    c.reach = r.Text("reach", true);
    c.km_from = r.Number("km_from", true, 0.0, Bound::kNonNegative);
    c.km_to = r.Number("km_to", true, 0.0, Bound::kNonNegative);
    if (c.km_to < c.km_from) {
      ctx->Error(LineOf(item["km_to"]), r.ChildPath("km_to"), "km_to must be >= km_from");
    }
    c.area_m2 = r.Number("area_km2", true, 0.0, Bound::kPositive, 1e6);
    c.curve_number = r.Number("curve_number", true, 0.0, Bound::kPositive);
    if (c.curve_number > 100.0) {
      ctx->Error(LineOf(item["curve_number"]), r.ChildPath("curve_number"),
                 "a curve number lies in (0, 100]");
    }
    c.initial_abstraction_ratio =
        r.Number("initial_abstraction_ratio", false, 0.2, Bound::kFraction);
    c.runoff_mg_l = r.NumberMap("runoff_mg_l", Bound::kNonNegative);
    c.sewer_plant = r.Text("sewer_plant", false);
    c.sewered_fraction = r.Number("sewered_fraction", false, 0.0, Bound::kFraction);
    r.RejectUnknownKeys();
    net->catchments.push_back(c);
  });
}

void ReadStations(const YAML::Node& list, ReadContext* ctx, Network* net) {
  ForEachItem(list, "stations", ctx, [&](const YAML::Node& item, size_t i) {
    MapReader r(item, ItemPath("stations", i, item), ctx);
    Station s;
    s.line = r.line();
    ReadIdentity(r, &s);
    s.src = r.Text("src", true);
    s.kind = r.Choice("kind", StationKinds(), true, "");
    s.reach = r.Text("reach", true);
    s.km = r.Number("km", true, 0.0, Bound::kNonNegative);
    s.sampling_interval_s = r.Number("sampling_interval_h", false, 24.0, Bound::kPositive, 3600.0);
    s.target_class = r.Text("target_class", false);
    s.monitors = r.Text("monitors", false);
    r.RejectUnknownKeys();
    net->stations.push_back(s);
  });
}

// ---------------------------------------------------------------------------------------
// Semantic checks on a parsed network.

struct Validator {
  const Network& net;
  ReadContext* ctx;

  // Prefers the line of the field itself over the line of the object holding it.
  void Err(int line, const std::string& field, const std::string& what) {
    auto it = net.field_lines.find(field);
    ctx->Error(it != net.field_lines.end() ? it->second : line, field, what);
  }

  template <typename T>
  void Unique(const std::vector<T>& items, const std::string& list,
              std::map<std::string, std::string>* seen_in) {
    for (const auto& item : items) {
      auto [it, fresh] = seen_in->emplace(item.id, list);
      if (!fresh) {
        Err(item.line, list + "[" + item.id + "].id",
            "duplicate id '" + item.id + "' (already used in " + it->second + ")");
      }
    }
  }

  void CheckSpeciesMap(const std::map<std::string, double>& m, int line,
                       const std::string& field) {
    for (const auto& [species, value] : m) {
      (void)value;
      if (!net.FindSpecies(species)) {
        Err(line, field + "." + species, "unknown species '" + species + "' (known: " +
                                             SpeciesList() + ")");
      }
    }
  }

  std::string SpeciesList() const {
    std::string out;
    for (const auto& s : net.species) out += (out.empty() ? "" : ", ") + s.id;
    return out;
  }

  std::string ReachList() const {
    std::string out;
    for (const auto& r : net.reaches) out += (out.empty() ? "" : ", ") + r.id;
    return out;
  }

  void CheckPlacement(const std::string& reach_id, double km, int line, const std::string& path) {
    const Reach* reach = net.FindReach(reach_id);
    if (!reach) {
      Err(line, path + ".reach", "unknown reach '" + reach_id + "' (known: " + ReachList() + ")");
      return;
    }
    // Placement tolerance: 1 mm, far below any segment length, only to forgive rounding.
    const double tol_km = 1e-6;
    if (km < reach->start_km - tol_km || km > reach->end_km() + tol_km) {
      std::ostringstream what;
      what << "km " << km << " lies outside reach '" << reach->id << "' (river-km "
           << reach->start_km << " to " << reach->end_km() << ")";
      Err(line, path + ".km", what.str());
    }
  }

  void Run() {
    // Ids: reaches, lakes and outlets form one namespace (they are the nodes that
    // `downstream` refers to); species, rivers, sources, stations each have their own.
    std::map<std::string, std::string> nodes, species, rivers, sources, stations, catchments;
    Unique(net.species, "species", &species);
    Unique(net.rivers, "rivers", &rivers);
    Unique(net.reaches, "reaches", &nodes);
    Unique(net.lakes, "lakes", &nodes);
    Unique(net.outlets, "outlets", &nodes);
    Unique(net.sources, "sources", &sources);
    Unique(net.stations, "stations", &stations);
    Unique(net.catchments, "catchments", &catchments);
    if (net.species.empty()) Err(0, "species", "at least one species is required");
    if (net.reaches.empty()) Err(0, "reaches", "at least one reach is required");
    if (net.outlets.empty()) Err(0, "outlets", "at least one outlet is required");

    for (const auto& reach : net.reaches) {
      const std::string path = "reaches[" + reach.id + "]";
      if (!rivers.count(reach.river)) {
        Err(reach.line, path + ".river", "unknown river '" + reach.river + "'");
      }
      if (reach.downstream == reach.id) {
        Err(reach.line, path + ".downstream", "a reach cannot drain into itself");
      } else if (!nodes.count(reach.downstream)) {
        Err(reach.line, path + ".downstream",
            "unknown reach, lake or outlet '" + reach.downstream + "'");
      }
      for (const auto& [season, state] : reach.headwater) {
        CheckSpeciesMap(state.concentration_mg_l, reach.line,
                        path + ".headwater." + season + ".concentration_mg_l");
      }
      for (const auto& [season, flow] : reach.lateral_flow) {
        CheckSpeciesMap(flow.concentration_mg_l, reach.line,
                        path + ".lateral_flow." + season + ".concentration_mg_l");
      }
    }
    for (const auto& lake : net.lakes) {
      const std::string path = "lakes[" + lake.id + "]";
      if (lake.downstream == lake.id) {
        Err(lake.line, path + ".downstream", "a lake cannot drain into itself");
      } else if (!lake.downstream.empty() && !nodes.count(lake.downstream)) {
        Err(lake.line, path + ".downstream",
            "unknown reach, lake or outlet '" + lake.downstream + "'");
      }
      CheckSpeciesMap(lake.removal, lake.line, path + ".removal");
      if (lake.role == "treatment" && !lake.downstream.empty()) {
        for (const auto& [sp, f] : lake.removal) {
          if (f >= 1.0) {
            Err(lake.line, path + ".removal." + sp,
                "an in-line treatment lake passes on 1 - removal of what flows in: removal "
                "must be below 1");
          }
        }
      }
    }
    for (const auto& s : net.sources) {
      const std::string path = "sources[" + s.id + "]";
      CheckPlacement(s.reach, s.km, s.line, path);
      CheckSpeciesMap(s.effluent_mg_l, s.line, path + ".effluent_mg_l");
      CheckSpeciesMap(s.removal, s.line, path + ".removal");
      if (!s.via.empty()) {
        const Source* w = net.FindSource(s.via);
        if (!w) {
          Err(s.line, path + ".via", "unknown source '" + s.via + "'");
        } else if (w->kind != SourceKind::kWetland) {
          Err(s.line, path + ".via",
              "'" + s.via + "' is a " + ToString(w->kind) + ", expected a wetland");
        }
      }
      if (s.kind == SourceKind::kLakeOutflow && s.lake.empty()) {
        Err(s.line, path + ".lake", "a lake_outflow source must name its lake");
      }
      if (!s.lake.empty() && !net.FindLake(s.lake)) {
        Err(s.line, path + ".lake", "unknown lake '" + s.lake + "'");
      }
      CheckSpeciesMap(s.raw_sewage_mg_l, s.line, path + ".raw_sewage_mg_l");
      if (!s.overflow_at.empty()) {
        const Source* o = net.FindSource(s.overflow_at);
        if (!o) {
          Err(s.line, path + ".overflow_at", "unknown source '" + s.overflow_at + "'");
        } else if (o->kind != SourceKind::kStormOverflow) {
          Err(s.line, path + ".overflow_at",
              "'" + s.overflow_at + "' is a " + ToString(o->kind) + ", expected a storm_overflow");
        }
      }
      if (!s.online.empty() && !s.offline.empty() && s.offline < s.online) {
        Err(s.line, path + ".offline",
            "offline date " + s.offline + " is before online date " + s.online);
      }
    }
    for (const auto& c : net.catchments) {
      const std::string path = "catchments[" + c.id + "]";
      CheckPlacement(c.reach, c.km_from, c.line, path);
      const Reach* reach = net.FindReach(c.reach);
      if (reach && (c.km_to > reach->end_km() + 1e-6)) {
        std::ostringstream what;
        what << "km " << c.km_to << " lies outside reach '" << reach->id << "' (river-km "
             << reach->start_km << " to " << reach->end_km() << ")";
        Err(c.line, path + ".km_to", what.str());
      }
      CheckSpeciesMap(c.runoff_mg_l, c.line, path + ".runoff_mg_l");
      if (!c.sewer_plant.empty()) {
        const Source* plant = net.FindSource(c.sewer_plant);
        if (!plant) {
          Err(c.line, path + ".sewer_plant", "unknown source '" + c.sewer_plant + "'");
        } else if (plant->kind != SourceKind::kTreatmentPlant) {
          Err(c.line, path + ".sewer_plant",
              "'" + c.sewer_plant + "' is a " + ToString(plant->kind) +
                  ", expected a treatment_plant");
        }
      } else if (c.sewered_fraction > 0) {
        Err(c.line, path + ".sewered_fraction",
            "a sewered fraction needs `sewer_plant` (the plant the sewers drain to)");
      }
    }
    for (const auto& st : net.stations) {
      const std::string path = "stations[" + st.id + "]";
      CheckPlacement(st.reach, st.km, st.line, path);
      if (!st.monitors.empty() && !net.FindSource(st.monitors)) {
        Err(st.line, path + ".monitors", "unknown source '" + st.monitors + "'");
      }
    }
    if (!ctx->errors.empty()) return;  // topology needs valid references
    CheckTopology();
  }

  std::string DownstreamOf(const std::string& node) const {
    if (const Reach* r = net.FindReach(node)) return r->downstream;
    if (const Lake* l = net.FindLake(node)) return l->downstream;
    return "";
  }

  void CheckTopology() {
    // Follow `downstream` from every reach. A walk that returns to a node it has seen is a
    // cycle; a walk that ends anywhere but an outlet means water has nowhere to go.
    for (const auto& reach : net.reaches) {
      std::set<std::string> seen;
      std::string node = reach.id;
      std::string chain = node;
      while (!net.IsOutlet(node)) {
        if (!seen.insert(node).second) {
          Err(reach.line, "reaches[" + reach.id + "].downstream",
              "cycle in downstream links: " + chain);
          break;
        }
        std::string next = DownstreamOf(node);
        if (next.empty()) {
          Err(reach.line, "reaches[" + reach.id + "]",
              "disconnected: reach drains into '" + node +
                  "', which drains nowhere (expected a path to an outlet)");
          break;
        }
        node = next;
        chain += " -> " + node;
      }
    }
    for (const auto& outlet : net.outlets) {
      bool fed = false;
      for (const auto& r : net.reaches) fed = fed || r.downstream == outlet.id;
      for (const auto& l : net.lakes) fed = fed || l.downstream == outlet.id;
      if (!fed) {
        Err(outlet.line, "outlets[" + outlet.id + "]",
            "disconnected: no reach or lake drains into this outlet");
      }
    }
  }
};

}  // namespace

Standard LoadStandard(const std::string& path) {
  const std::string text = ReadFile(path, "standards file");
  YAML::Node root = detail::ParseYaml(text, path);
  ReadContext ctx;
  ctx.file = path;
  MapReader r(root, "standards", &ctx);
  Standard standard;
  standard.file = path;
  r.Choice("format", {"qingshui-standards"}, true, "");
  int version = r.Integer("version", true, 1);
  if (version != 1) {
    ctx.Error(LineOf(root["version"]), "version",
              "unsupported standards version " + std::to_string(version) + " (expected 1)");
  }
  standard.id = r.Text("id", true);
  standard.name_en = r.Text("name_en", false);
  standard.name_zh = r.Text("name_zh", false);
  YAML::Node classes = r.Child("classes");
  ForEachItem(classes, "classes", &ctx, [&](const YAML::Node& item, size_t) {
    standard.classes.push_back(item.IsScalar() ? item.Scalar() : "");
  });
  if (standard.classes.empty()) ctx.Error(r.line(), "classes", "at least one class is required");
  ForEachItem(r.Child("indicators"), "indicators", &ctx, [&](const YAML::Node& item, size_t i) {
    MapReader ir(item, "indicators[" + std::to_string(i) + "]", &ctx);
    Indicator ind;
    ind.species = ir.Text("species", true);
    ind.sense = ir.Choice("sense", {"max", "min"}, false, "max");
    ind.src = ir.Text("src", true);
    ForEachItem(ir.Child("limits_mg_l"), ir.ChildPath("limits_mg_l"), &ctx,
                [&](const YAML::Node& limit, size_t) {
                  double v = 0;
                  if (!limit.IsScalar() || !YAML::convert<double>::decode(limit, v) ||
                      !std::isfinite(v) || v < 0) {
                    ctx.Error(LineOf(limit), ir.ChildPath("limits_mg_l"),
                              "expected a finite number >= 0");
                  }
                  ind.limits_mg_l.push_back(v);
                });
    if (ind.limits_mg_l.size() != standard.classes.size()) {
      ctx.Error(ir.line(), ir.ChildPath("limits_mg_l"),
                "expected " + std::to_string(standard.classes.size()) +
                    " limits (one per class), found " + std::to_string(ind.limits_mg_l.size()));
    }
    for (size_t k = 1; k < ind.limits_mg_l.size(); ++k) {
      bool ordered = ind.sense == "max" ? ind.limits_mg_l[k] >= ind.limits_mg_l[k - 1]
                                        : ind.limits_mg_l[k] <= ind.limits_mg_l[k - 1];
      if (!ordered) {
        ctx.Error(ir.line(), ir.ChildPath("limits_mg_l"),
                  "limits must get weaker from class to class");
        break;
      }
    }
    ir.RejectUnknownKeys();
    standard.indicators.push_back(ind);
  });
  r.RejectUnknownKeys();
  ctx.ThrowIfErrors();
  return standard;
}

Network ParseNetwork(const std::string& text, const std::string& file_name) {
  YAML::Node root = detail::ParseYaml(text, file_name);
  Network net;
  net.file = file_name;
  ReadContext ctx;
  ctx.file = file_name;
  ctx.provenance = &net.provenance;
  ctx.field_lines = &net.field_lines;
  MapReader r(root, "network", &ctx);
  if (!r.ok()) ctx.ThrowIfErrors();
  r.Choice("format", {"qingshui-network"}, true, "");
  net.version = r.Integer("version", true, 1);
  if (net.version != 1) {
    ctx.Error(LineOf(root["version"]), "version",
              "unsupported network format version " + std::to_string(net.version) +
                  " (this program reads version 1)");
  }
  net.name = r.Text("name", true);
  net.description = r.Text("description", false);
  net.standards_path = r.Text("standards", false);
  ReadSpecies(r.Child("species"), &ctx, &net);
  ReadRivers(r.Child("rivers"), &ctx, &net);
  ReadReaches(r.Child("reaches"), &ctx, &net);
  ReadLakes(r.Child("lakes"), &ctx, &net);
  ReadOutlets(r.Child("outlets"), &ctx, &net);
  ReadSources(r.Child("sources"), &ctx, &net);
  ReadStations(r.Child("stations"), &ctx, &net);
  ReadCatchments(r.Child("catchments"), &ctx, &net);
  for (const char* key : {"species", "rivers", "reaches", "outlets"}) {
    if (r.ok() && !r.Has(key)) ctx.Error(r.line(), key, "required list is missing");
  }
  r.RejectUnknownKeys();
  ctx.ThrowIfErrors();

  Validator{net, &ctx}.Run();
  ctx.ThrowIfErrors();

  if (!net.standards_path.empty()) {
    std::filesystem::path p(net.standards_path);
    if (p.is_relative()) p = std::filesystem::path(file_name).parent_path() / p;
    if (!std::filesystem::exists(p)) {
      throw ConfigError(Located(file_name, LineOf(root["standards"]), "standards",
                                "standards file '" + p.string() + "' does not exist"));
    }
    net.standard = LoadStandard(p.string());
  }
  return net;
}

Network LoadNetwork(const std::string& path) {
  if (std::filesystem::is_directory(path)) {
    throw ConfigError(Located(path, 0, "", "is a directory, expected a network YAML file"));
  }
  return ParseNetwork(ReadFile(path, "network file"), path);
}

}  // namespace qingshui
