// The river network: reaches joined into a tree that drains to outlets, lakes as storage
// or treatment nodes, point sources and monitoring stations placed by (reach, river-km),
// species with their kinetics, and the water-quality standard they are judged by.
//
// Units are SI inside (m, s, m³/s, g/m³ = mg/L) with the unit in every field name; the
// file format (docs/network-format.md) uses km and days where people think in them, and
// the reader converts.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace qingshui {

// Where a number came from: 'S' published, 'M' measured, 'E' estimated, '?' not stated.
struct Provenance {
  std::string path;  // e.g. "sources[chengxi_wwtp].design_flow_m3s"
  int line = 0;      // line in the network file
  char kind = '?';
  std::string text;  // the rest of the `src` string
};

struct Species {
  std::string id;  // "COD", "NH3N", "TP", "F"
  std::string name_zh;
  std::string name_en;
  std::string unit = "mg/L";
  double decay_per_s = 0.0;  // first-order loss rate at 20 °C
  double theta = 1.0;        // temperature coefficient, k(T) = k20 · θ^(T−20)
  int line = 0;
};

struct River {
  std::string id;
  std::string name_zh;
  std::string name_en;
  std::string km_reference;  // where river-km 0 is
  int line = 0;
};

struct ChannelGeometry {
  double bottom_width_m = 0.0;
  double side_slope = 0.0;  // horizontal per vertical; 0 = rectangular
  double manning_n = 0.0;   // s/m^(1/3)
  double bed_slope = 0.0;   // m/m
};

struct StorageZone {
  double area_ratio = 0.0;      // A_s / A
  double exchange_per_s = 0.0;  // α
};

// Upstream boundary of a headwater reach for one season.
struct HeadwaterState {
  double flow_m3s = 0.0;
  std::map<std::string, double> concentration_mg_l;  // by species id
};

struct Reach {
  std::string id;
  std::string name_zh;
  std::string name_en;
  std::string river;
  double start_km = 0.0;  // river-km of the upstream end
  double length_m = 0.0;
  double segment_length_m = 0.0;
  std::string downstream;  // id of a reach, lake or outlet
  ChannelGeometry geometry;
  std::optional<StorageZone> storage;
  std::map<std::string, HeadwaterState> headwater;  // by season ("dry", "wet")
  int line = 0;

  double end_km() const { return start_km + length_m / 1000.0; }
  // Segments the reach is divided into: ceil(length / segment length).
  int segment_count() const;
};

struct Lake {
  std::string id;
  std::string name_zh;
  std::string name_en;
  std::string src;
  std::string role = "storage";  // "storage" or "treatment"
  double area_m2 = 0.0;
  double mean_depth_m = 0.0;
  std::string downstream;                // empty for an off-line lake
  std::map<std::string, double> removal;  // species → fraction removed
  std::string rule;
  std::string rule_class;
  int line = 0;

  double volume_m3() const { return area_m2 * mean_depth_m; }
};

struct Outlet {
  std::string id;
  std::string name_zh;
  std::string name_en;
  int line = 0;
};

enum class SourceKind {
  kTreatmentPlant,
  kIndustrialOutfall,
  kWetland,
  kLakeOutflow,
  kFarmlandDrainage,
  kStormOverflow,
  kTributary,
  kWithdrawal,
  kSupplementation,
};

// "treatment_plant" ... and back; ParseSourceKind returns false on unknown names.
const char* ToString(SourceKind kind);
bool ParseSourceKind(const std::string& name, SourceKind* kind);
const std::vector<std::string>& SourceKindNames();

struct Source {
  std::string id;
  std::string name_zh;
  std::string name_en;
  std::string src;
  SourceKind kind = SourceKind::kTreatmentPlant;
  std::string reach;
  double km = 0.0;  // river-km
  double design_flow_m3s = 0.0;
  std::map<std::string, double> effluent_mg_l;  // species → concentration
  std::string online;                           // YYYY-MM-DD or empty
  std::string offline;
  std::string status = "operating";  // operating, planned, plugged, under_construction
  std::string via;                   // wetland source it discharges through
  std::string lake;                  // for lake_outflow
  std::map<std::string, double> removal;  // for wetland
  std::optional<double> capacity_m3s;
  std::string rule;
  std::string rule_class;
  std::string basin;
  int line = 0;
};

struct Station {
  std::string id;
  std::string name_zh;
  std::string name_en;
  std::string src;
  std::string kind;  // assessment_section, former_national_section, ...
  std::string reach;
  double km = 0.0;
  double sampling_interval_s = 86400.0;
  std::string target_class;
  std::string monitors;  // source id, for outfall monitors
  int line = 0;
};

// One indicator of a standard: the limit of each class, upper bounds ("max") or lower
// bounds ("min", e.g. dissolved oxygen).
struct Indicator {
  std::string species;
  std::string sense = "max";
  std::vector<double> limits_mg_l;  // one per class, in class order
  std::string src;
};

struct Standard {
  std::string id;  // "GB3838-2002"
  std::string name_en;
  std::string name_zh;
  std::vector<std::string> classes;  // "I" ... "V"
  std::vector<Indicator> indicators;
  std::string file;

  const Indicator* Find(const std::string& species) const;
  // The best class whose limit `value_mg_l` meets, or classes.size() (worse than the last
  // class, "劣V") when it meets none.
  int Classify(const std::string& species, double value_mg_l) const;
};

// Counts for `qingshui check` and the Python summary.
struct NetworkSummary {
  int reach_count = 0;
  double total_length_km = 0.0;
  int segment_count = 0;
  std::map<std::string, int> sources_by_kind;
  int station_count = 0;
  std::vector<std::string> species;
  int lake_count = 0;
  int outlet_count = 0;
  int numbers_total = 0;
  int numbers_without_provenance = 0;
};

class Network {
 public:
  std::string name;
  std::string description;
  std::string file;  // path it was read from
  int version = 1;
  std::vector<Species> species;
  std::vector<River> rivers;
  std::vector<Reach> reaches;
  std::vector<Lake> lakes;
  std::vector<Outlet> outlets;
  std::vector<Source> sources;
  std::vector<Station> stations;
  std::optional<Standard> standard;
  std::string standards_path;  // as written in the file (relative to it)
  std::vector<Provenance> provenance;
  // Line of every field read, by path ("sources[chengxi_wwtp].reach"), so that checks run
  // after parsing can still point at the line to fix.
  std::map<std::string, int> field_lines;

  const Reach* FindReach(const std::string& id) const;
  const Lake* FindLake(const std::string& id) const;
  const Source* FindSource(const std::string& id) const;
  const Station* FindStation(const std::string& id) const;
  const Species* FindSpecies(const std::string& id) const;
  bool IsOutlet(const std::string& id) const;

  // Reach ids ordered upstream-first: every reach comes before the reach it drains into
  // (through lakes as well).
  std::vector<std::string> ReachesUpstreamFirst() const;
  // The reach ids whose water passes through `reach_id` (including itself).
  std::vector<std::string> UpstreamReaches(const std::string& reach_id) const;
  // True if water at (reach_a, km_a) flows past (reach_b, km_b).
  bool FlowsTo(const std::string& reach_a, double km_a, const std::string& reach_b,
               double km_b) const;

  NetworkSummary Summary() const;
};

// Reads and validates a network file; throws ConfigError naming file, line and field.
Network LoadNetwork(const std::string& path);
// Same from text; `file_name` is used in messages and to resolve `standards`.
Network ParseNetwork(const std::string& text, const std::string& file_name);
// Reads a standards table (docs/network-format.md, "Standards file").
Standard LoadStandard(const std::string& path);
// Writes a network back to YAML in the documented format, keeping provenance. Reading
// the result gives an equal network.
std::string WriteNetworkYaml(const Network& network);

// The summary as `qingshui check` prints it.
std::string FormatSummary(const Network& network);

}  // namespace qingshui
