// Results of the hydraulics: the water balance, depth, velocity and dispersion of every
// segment of a network grid for one steady day, and the flow field Q(x,t), A(x,t) of an
// unsteady routing run. Plain column arrays (one value per segment, segments numbered as
// in NetworkGrid: upstream-first), so that they cross to Python, CSV, HDF5 and the
// transport solver without reshaping.
//
// This header deliberately includes nothing from the network model, so that code which
// also needs the transport solver's types can include it (see flow_field.h).
#pragma once

#include <string>
#include <vector>

namespace qingshui::hydro {

// Where the water of one day goes, over the whole network (m³/s). For a steady day the
// inflows minus the outflows are zero; `residual_m3s` is what is left by round-off.
struct WaterBalance {
  double headwater_m3s = 0.0;             // through upstream boundaries
  double point_inflow_m3s = 0.0;          // sources (plants, outfalls, supplementation, ...)
  double diffuse_inflow_m3s = 0.0;        // lateral_flow inflow, catchment runoff
  double withdrawal_m3s = 0.0;            // taken by withdrawals (what was available)
  double withdrawal_shortfall_m3s = 0.0;  // asked for but not there (river too low)
  double loss_m3s = 0.0;                  // seepage, evaporation (what was available)
  double lake_evaporation_m3s = 0.0;      // net evaporation from in-line lakes
  double outlet_m3s = 0.0;                // leaving through the outlets
  double residual_m3s = 0.0;              // inflows − outflows
  double relative_residual = 0.0;         // |residual| / total inflow

  double inflow_m3s() const { return headwater_m3s + point_inflow_m3s + diffuse_inflow_m3s; }
  double outflow_m3s() const {
    return withdrawal_m3s + loss_m3s + lake_evaporation_m3s + outlet_m3s;
  }
};

// What one source does on the day.
struct SourceFlow {
  std::string id;
  std::string kind;  // treatment_plant, withdrawal, ...
  bool active = false;
  std::string reason;            // why (in)active: "operating", "plugged until 2025-12-31", ...
  int segment = -1;              // where its water enters (or is taken); -1 when inactive
  double flow_m3s = 0.0;         // water added (withdrawals: taken, ≤ design flow)
  double via_wetland_m3s = 0.0;  // part of it routed through its wetland
  std::string via;
  // Mass each species brings into the river (g/s), where it enters: the direct part at the
  // source's segment, the wetland-routed part (after the wetland's removal) at the
  // wetland's. Filled for every active source, whatever DayOptions::sources_as_loads says.
  struct Load {
    int segment = -1;
    int species = 0;
    double g_s = 0.0;
  };
  std::vector<Load> loads;               // the wetland it passed through, if any
};

// Hydraulic state of every segment for one day (steady flow).
struct NetworkHydraulics {
  std::string date;                  // YYYY-MM-DD (may be empty when only a season was given)
  std::string season;                // "dry", "wet", ...
  std::vector<std::string> species;  // ids, network order
  std::vector<double> species_decay_per_s;  // at 20 °C
  std::vector<double> species_theta;

  // Segment identity (as NetworkGrid).
  std::vector<std::string> reach;  // reach id, or lake id for an in-line lake
  std::vector<int> index_in_reach;
  std::vector<int> is_lake;  // 1 for an in-line lake segment
  // Fraction of each species removed by an in-line treatment lake (role: treatment),
  // [segment * num_species + species]; zero elsewhere. The transport applies it as a
  // treatment node (transport::Segment::removal_fraction).
  std::vector<double> treatment_removal;
  std::vector<double> km_start, km_end;
  std::vector<double> length_m;  // lakes: 0
  std::vector<int> downstream;   // -1 at an outlet

  // Water balance per segment (m³/s). flow_m3s is at the downstream face:
  // flow = headwater + Σ upstream flows + point + diffuse − withdrawal − loss − lake evap.
  std::vector<double> headwater_inflow_m3s;
  std::vector<double> upstream_inflow_m3s;
  std::vector<double> point_inflow_m3s;
  std::vector<double> diffuse_inflow_m3s;
  std::vector<double> withdrawal_m3s;
  std::vector<double> loss_m3s;  // includes the net evaporation of a lake
  // What withdrawals asked for plus the potential losses (seepage, lake evaporation): the
  // most the segment would take if water were there (used by unsteady routing).
  std::vector<double> loss_capacity_m3s;
  std::vector<double> flow_m3s;
  // Share of the water at the downstream face that is treated effluent (plants and
  // industrial outfalls), by conservative mixing; 0 in a dry segment.
  std::vector<double> effluent_fraction;

  // Channel hydraulics at the segment's mean flow ½(inflow + outflow); zero when dry.
  // Lakes: depth = mean depth, area = volume (per 1 m, see flow_field.h), velocity 0.
  std::vector<double> mean_flow_m3s;
  std::vector<double> depth_m;
  std::vector<double> area_m2;
  std::vector<double> top_width_m;
  std::vector<double> velocity_ms;
  std::vector<double> shear_velocity_ms;  // sqrt(g R S)
  std::vector<double> dispersion_m2s;
  std::vector<std::string> dispersion_method;  // fischer, ..., user, none
  std::vector<double> volume_m3;
  std::vector<double> storage_area_m2;  // transient storage A_s = ratio × A
  std::vector<double> exchange_per_s;

  // Concentration of the water entering each segment laterally (flow-weighted over its
  // point and diffuse inflows), [segment * species + k], g/m³; and of headwater inflow.
  std::vector<double> lateral_concentration_g_m3;
  std::vector<double> headwater_concentration_g_m3;

  std::vector<SourceFlow> sources;
  WaterBalance balance;
  std::vector<std::string> warnings;  // e.g. withdrawals that could not be met

  int size() const { return static_cast<int>(flow_m3s.size()); }
  int num_species() const { return static_cast<int>(species.size()); }
  int dry_segment_count() const;
  // One line per fact: date/season, balance, dry segments, warnings.
  std::string BriefReport() const;
};

// Q(x,t), A(x,t) from unsteady routing: flows and areas of every segment at each stored
// time, with the lateral flows that closed each segment's volume balance over the step
// that ended there.
struct RoutedFlow {
  std::vector<double> times_s;
  int num_segments = 0;
  // [time * num_segments + segment]
  std::vector<double> flow_m3s;  // downstream face
  // Volume / length (lakes: volume per 1 m). A channel segment that loses all the water it
  // receives within a step has volume 0 but reports the area carrying half its inflow (the
  // steady hydraulics' convention), so that no water enters a segment of zero area.
  std::vector<double> area_m2;
  std::vector<double> lateral_inflow_m3s;
  std::vector<double> lateral_outflow_m3s;  // losses actually taken
  std::vector<double> headwater_inflow_m3s;

  // Volume budget over the whole run (m³).
  double initial_volume_m3 = 0.0;
  double final_volume_m3 = 0.0;
  double inflow_volume_m3 = 0.0;    // headwater + lateral inflow
  double outflow_volume_m3 = 0.0;   // outlets
  double loss_volume_m3 = 0.0;      // lateral losses taken
  double volume_residual_m3 = 0.0;  // final − initial − (in − out − loss)
  double relative_volume_error = 0.0;
  int steps = 0;
  int max_newton_iterations = 0;
  // Range of the ratio of numerical to physical diffusion c(Δx + cΔt)/2 ÷ Q/(2 T S) over
  // channel segments carrying ≥ 0.01 m³/s (Cunge's criterion; 1 = the scheme diffuses like
  // the river, > 1 = it attenuates flood peaks more than the river would).
  double max_diffusion_ratio = 0.0;
  double min_diffusion_ratio = 0.0;

  double Flow(int time, int segment) const {
    return flow_m3s[static_cast<size_t>(time) * num_segments + segment];
  }
  double Area(int time, int segment) const {
    return area_m2[static_cast<size_t>(time) * num_segments + segment];
  }
  std::string BriefReport() const;
};

// One column of a per-segment table: numbers (integers flagged) or text, with its unit.
// The CLI writes these to CSV/HDF5 and Python turns them into a DataFrame, so that every
// output has the same columns in the same order.
struct Column {
  std::string name;  // with the unit suffix, e.g. "flow_m3s"
  std::string unit;  // "m3/s", "m", "-", "" for text and indices
  std::string description;
  bool integer = false;
  std::vector<double> values;     // numeric columns
  std::vector<std::string> text;  // text columns
  bool is_text() const { return values.empty() && !text.empty(); }
};

// segment, reach, index_in_reach, is_lake, km_start, km_end, length_m, downstream,
// flow_m3s, mean_flow_m3s, depth_m, area_m2, top_width_m, velocity_ms, shear_velocity_ms,
// dispersion_m2s, dispersion_method, volume_m3, headwater_inflow_m3s, upstream_inflow_m3s,
// point_inflow_m3s, diffuse_inflow_m3s, withdrawal_m3s, loss_m3s, effluent_fraction,
// storage_area_m2, exchange_per_s.
std::vector<Column> SegmentTable(const NetworkHydraulics& h);

}  // namespace qingshui::hydro
