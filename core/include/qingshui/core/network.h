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

// Stage-discharge relation of a reach, Q = a·h^b with h the flow depth (m) and Q in m³/s;
// used instead of Manning's equation where a gauged rating exists. a > 0 and b > 0, so
// that Q increases with h.
struct RatingCurve {
  double a = 0.0;  // m^(3-b)/s
  double b = 0.0;  // –
};

// Water that enters or leaves a reach along its length in one season: diffuse and
// groundwater inflow, and losses (seepage, evaporation, small irrigation abstractions).
// Losses are potential: a segment cannot lose more water than reaches it, so a reach whose
// losses exceed its inflow runs dry.
struct LateralFlow {
  double inflow_m2s = 0.0;                           // m³/s per m of channel
  double loss_m2s = 0.0;                             // m³/s per m of channel
  std::map<std::string, double> concentration_mg_l;  // of the inflow, by species
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
  std::optional<RatingCurve> rating_curve;          // none = Manning normal depth
  std::optional<double> dispersion_m2s;             // user value; none = formula
  std::string dispersion_formula = "fischer";       // fischer, kashefipour_falconer, deng
  std::map<std::string, LateralFlow> lateral_flow;  // by season
  int line = 0;

  double end_km() const { return start_km + length_m / 1000.0; }
  // Segments the reach is divided into: ceil(length / segment length).
  int segment_count() const;
};

// One row of a lake's volume-area-outflow relation (level pool).
struct LakeLevel {
  double depth_m = 0.0;      // water depth at the deepest point (or above a datum)
  double area_m2 = 0.0;      // water-surface area at that depth
  double outflow_m3s = 0.0;  // outflow over the outlet at that depth
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
  // Evaporation minus rain on the lake surface, by season (m/s; may be negative).
  std::map<std::string, double> net_evaporation_m_s;
  std::vector<LakeLevel> levels;  // empty: no level-pool relation
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

// A pre-flood-season (or any) operating window of a treatment plant: between `from` and
// `to` (inclusive) its treatment capacity is multiplied by `capacity_factor` (seed §15:
// before the flood season plants raise throughput and empty their buffer tanks).
struct PlantOperation {
  std::string from;  // YYYY-MM-DD
  std::string to;
  double capacity_factor = 1.0;
};

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
  // Combined sewers (treatment plants): the dry-weather sewage reaching the plant (none =
  // design flow, or capacity when the design flow is 0), its buffer tank, the
  // concentration of raw sewage, the storm_overflow source where it spills (none = at the
  // plant), and operating windows.
  std::optional<double> sewage_inflow_m3s;
  std::optional<double> buffer_tank_m3;
  std::map<std::string, double> raw_sewage_mg_l;
  std::string overflow_at;
  std::vector<PlantOperation> operations;
  int line = 0;
};

// A sub-catchment whose rain runs off into a stretch of a reach (SCS curve number); the
// part collected by combined sewers goes to a treatment plant instead.
struct Catchment {
  std::string id;
  std::string name_zh;
  std::string name_en;
  std::string src;
  std::string reach;
  double km_from = 0.0;  // river-km of the stretch receiving the runoff
  double km_to = 0.0;
  double area_m2 = 0.0;
  double curve_number = 0.0;                  // SCS CN for average antecedent moisture
  double initial_abstraction_ratio = 0.2;     // I_a = λ S
  std::map<std::string, double> runoff_mg_l;  // event-mean concentration of the runoff
  std::string sewer_plant;                    // treatment plant its combined sewers drain to
  double sewered_fraction = 0.0;              // share of the runoff the sewers collect
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
  std::vector<Catchment> catchments;
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
  const Catchment* FindCatchment(const std::string& id) const;
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
