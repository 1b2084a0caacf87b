#include "qingshui/core/network.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iomanip>
#include <set>
#include <sstream>

namespace qingshui {

namespace {

struct KindName {
  SourceKind kind;
  const char* name;
};

constexpr KindName kKindNames[] = {
    {SourceKind::kTreatmentPlant, "treatment_plant"},
    {SourceKind::kIndustrialOutfall, "industrial_outfall"},
    {SourceKind::kWetland, "wetland"},
    {SourceKind::kLakeOutflow, "lake_outflow"},
    {SourceKind::kFarmlandDrainage, "farmland_drainage"},
    {SourceKind::kStormOverflow, "storm_overflow"},
    {SourceKind::kTributary, "tributary"},
    {SourceKind::kWithdrawal, "withdrawal"},
    {SourceKind::kSupplementation, "supplementation"},
};

template <typename T>
const T* FindById(const std::vector<T>& items, const std::string& id) {
  for (const auto& item : items) {
    if (item.id == id) return &item;
  }
  return nullptr;
}

}  // namespace

const char* ToString(SourceKind kind) {
  for (const auto& k : kKindNames) {
    if (k.kind == kind) return k.name;
  }
  return "unknown";
}

bool ParseSourceKind(const std::string& name, SourceKind* kind) {
  for (const auto& k : kKindNames) {
    if (name == k.name) {
      *kind = k.kind;
      return true;
    }
  }
  return false;
}

const std::vector<std::string>& SourceKindNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& k : kKindNames) out.push_back(k.name);
    return out;
  }();
  return names;
}

int Reach::segment_count() const {
  if (segment_length_m <= 0.0) return 0;
  // A reach of 1000.0000001 m with 500 m segments is two segments, not three: allow a
  // relative rounding slack of 1e-9 before taking the ceiling.
  return std::max(1, static_cast<int>(std::ceil(length_m / segment_length_m - 1e-9)));
}

const Indicator* Standard::Find(const std::string& species) const {
  for (const auto& ind : indicators) {
    if (ind.species == species) return &ind;
  }
  return nullptr;
}

int Standard::Classify(const std::string& species, double value_mg_l) const {
  const Indicator* ind = Find(species);
  if (!ind) return -1;
  for (size_t k = 0; k < ind->limits_mg_l.size(); ++k) {
    bool meets = ind->sense == "max" ? value_mg_l <= ind->limits_mg_l[k]
                                     : value_mg_l >= ind->limits_mg_l[k];
    if (meets) return static_cast<int>(k);
  }
  return static_cast<int>(ind->limits_mg_l.size());
}

const Reach* Network::FindReach(const std::string& id) const { return FindById(reaches, id); }
const Lake* Network::FindLake(const std::string& id) const { return FindById(lakes, id); }
const Source* Network::FindSource(const std::string& id) const { return FindById(sources, id); }
const Station* Network::FindStation(const std::string& id) const {
  return FindById(stations, id);
}
const Catchment* Network::FindCatchment(const std::string& id) const {
  return FindById(catchments, id);
}
const Species* Network::FindSpecies(const std::string& id) const {
  return FindById(species, id);
}
bool Network::IsOutlet(const std::string& id) const { return FindById(outlets, id) != nullptr; }

namespace {

// The next reach downstream of `reach_id`, passing through lakes; empty at an outlet.
std::string NextReach(const Network& net, const std::string& reach_id) {
  const Reach* r = net.FindReach(reach_id);
  std::string node = r ? r->downstream : "";
  for (int guard = 0; guard < 1000 && !node.empty(); ++guard) {
    if (net.FindReach(node)) return node;
    const Lake* lake = net.FindLake(node);
    if (!lake) return "";
    node = lake->downstream;
  }
  return "";
}

}  // namespace

std::vector<std::string> Network::ReachesUpstreamFirst() const {
  // Depth-first post-order from the outlets' side: a reach is emitted after everything
  // that drains into it. The network is validated as a tree, so this terminates.
  std::map<std::string, std::vector<std::string>> inflows;
  for (const auto& r : reaches) inflows[NextReach(*this, r.id)].push_back(r.id);
  std::vector<std::string> order;
  std::function<void(const std::string&)> visit = [&](const std::string& id) {
    for (const auto& up : inflows[id]) visit(up);
    order.push_back(id);
  };
  for (const auto& last : inflows[""]) visit(last);
  return order;
}

std::vector<std::string> Network::UpstreamReaches(const std::string& reach_id) const {
  std::vector<std::string> out;
  for (const auto& r : reaches) {
    std::string node = r.id;
    for (int guard = 0; guard < 1000 && !node.empty(); ++guard) {
      if (node == reach_id) {
        out.push_back(r.id);
        break;
      }
      node = NextReach(*this, node);
    }
  }
  return out;
}

bool Network::FlowsTo(const std::string& reach_a, double km_a, const std::string& reach_b,
                      double km_b) const {
  if (reach_a == reach_b) return km_a <= km_b;
  std::string node = NextReach(*this, reach_a);
  for (int guard = 0; guard < 1000 && !node.empty(); ++guard) {
    if (node == reach_b) return true;
    node = NextReach(*this, node);
  }
  return false;
}

NetworkSummary Network::Summary() const {
  NetworkSummary s;
  s.reach_count = static_cast<int>(reaches.size());
  for (const auto& r : reaches) {
    s.total_length_km += r.length_m / 1000.0;
    s.segment_count += r.segment_count();
  }
  for (const auto& src : sources) s.sources_by_kind[ToString(src.kind)]++;
  s.station_count = static_cast<int>(stations.size());
  for (const auto& sp : species) s.species.push_back(sp.id);
  s.lake_count = static_cast<int>(lakes.size());
  s.outlet_count = static_cast<int>(outlets.size());
  s.numbers_total = static_cast<int>(provenance.size());
  for (const auto& p : provenance) s.numbers_without_provenance += p.kind == '?';
  return s;
}

std::string FormatSummary(const Network& net) {
  const NetworkSummary s = net.Summary();
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  out << "network: " << net.name << "  (" << net.file << ")\n";
  out << "reaches: " << s.reach_count << ", total length " << s.total_length_km << " km, "
      << s.segment_count << " segments\n";
  for (const auto& id : net.ReachesUpstreamFirst()) {
    const Reach& r = *net.FindReach(id);
    out << "  " << std::left << std::setw(16) << r.id << std::right << " " << r.river << " km "
        << r.start_km << "-" << r.end_km() << ", " << r.segment_count() << " segments -> "
        << r.downstream << "   " << r.name_zh << " / " << r.name_en << "\n";
  }
  out << "lakes: " << s.lake_count;
  for (const auto& l : net.lakes) out << (l.id == net.lakes.front().id ? " (" : ", ") << l.id;
  out << (net.lakes.empty() ? "" : ")") << "\n";
  out << "outlets: " << s.outlet_count << "\n";
  out << "sources: " << net.sources.size() << "\n";
  for (const auto& [kind, count] : s.sources_by_kind) {
    out << "  " << std::left << std::setw(20) << kind << std::right << count << "\n";
  }
  out << "stations: " << s.station_count << "\n";
  for (const auto& st : net.stations) {
    out << "  " << std::left << std::setw(28) << st.id << std::setw(26) << st.kind << std::right
        << st.reach << " km " << st.km << "   " << st.name_zh << " / " << st.name_en << "\n";
  }
  out << "species:";
  for (const auto& sp : net.species) out << " " << sp.id << " [" << sp.unit << "]";
  out << "\n";
  if (net.standard) {
    out << "standard: " << net.standard->id << " (" << net.standard->indicators.size()
        << " indicators, classes";
    for (const auto& c : net.standard->classes) out << " " << c;
    out << ")\n";
  }
  out << "numbers: " << s.numbers_total << ", without provenance: "
      << s.numbers_without_provenance << "\n";
  return out.str();
}

}  // namespace qingshui
