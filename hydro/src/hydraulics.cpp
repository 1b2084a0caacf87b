#include "qingshui/hydro/hydraulics.h"

#include <iomanip>
#include <sstream>

namespace qingshui::hydro {

namespace {

template <typename T>
Column Numbers(const std::string& name, const std::string& unit, const std::string& what,
               const std::vector<T>& v, bool integer = false) {
  Column c;
  c.name = name;
  c.unit = unit;
  c.description = what;
  c.integer = integer;
  c.values.assign(v.begin(), v.end());
  return c;
}

Column Text(const std::string& name, const std::string& what, const std::vector<std::string>& v) {
  Column c;
  c.name = name;
  c.description = what;
  c.text = v;
  return c;
}

}  // namespace

std::vector<Column> SegmentTable(const NetworkHydraulics& h) {
  std::vector<int> index(h.size());
  for (int i = 0; i < h.size(); ++i) index[i] = i;
  return {
      Numbers("segment", "", "segment index, upstream-first", index, true),
      Text("reach", "reach id, or lake id for an in-line lake", h.reach),
      Numbers("index_in_reach", "", "position in the reach from its upstream end", h.index_in_reach,
              true),
      Numbers("is_lake", "", "1 for an in-line lake (one well-mixed segment)", h.is_lake, true),
      Numbers("km_start", "km", "river-km of the upstream face", h.km_start),
      Numbers("km_end", "km", "river-km of the downstream face", h.km_end),
      Numbers("length_m", "m", "segment length (lakes 0)", h.length_m),
      Numbers("downstream", "", "index of the next segment, -1 at an outlet", h.downstream, true),
      Numbers("flow_m3s", "m3/s", "flow through the downstream face", h.flow_m3s),
      Numbers("mean_flow_m3s", "m3/s", "mean of inflow and outflow; the depth carries it",
              h.mean_flow_m3s),
      Numbers("depth_m", "m", "flow depth (lakes: mean depth)", h.depth_m),
      Numbers("area_m2", "m2", "wetted cross-section", h.area_m2),
      Numbers("top_width_m", "m", "water-surface width", h.top_width_m),
      Numbers("velocity_ms", "m/s", "mean velocity", h.velocity_ms),
      Numbers("shear_velocity_ms", "m/s", "sqrt(g R S)", h.shear_velocity_ms),
      Numbers("dispersion_m2s", "m2/s", "longitudinal dispersion coefficient", h.dispersion_m2s),
      Text("dispersion_method", "fischer, kashefipour_falconer, deng, user, dry, well_mixed",
           h.dispersion_method),
      Numbers("volume_m3", "m3", "water volume", h.volume_m3),
      Numbers("headwater_inflow_m3s", "m3/s", "upstream boundary inflow", h.headwater_inflow_m3s),
      Numbers("upstream_inflow_m3s", "m3/s", "inflow from upstream segments",
              h.upstream_inflow_m3s),
      Numbers("point_inflow_m3s", "m3/s", "sources discharging here", h.point_inflow_m3s),
      Numbers("diffuse_inflow_m3s", "m3/s", "distributed inflow and runoff", h.diffuse_inflow_m3s),
      Numbers("withdrawal_m3s", "m3/s", "water taken by withdrawals", h.withdrawal_m3s),
      Numbers("loss_m3s", "m3/s", "seepage and evaporation losses taken", h.loss_m3s),
      Numbers("effluent_fraction", "-", "share of treated effluent in the outflow",
              h.effluent_fraction),
      Numbers("storage_area_m2", "m2", "transient storage zone area", h.storage_area_m2),
      Numbers("exchange_per_s", "1/s", "storage zone exchange rate", h.exchange_per_s),
  };
}

std::string RoutedFlow::BriefReport() const {
  std::ostringstream out;
  out << std::setprecision(6);
  out << "routing: " << steps << " steps, " << num_segments << " segments, " << times_s.size()
      << " stored times, at most " << max_newton_iterations << " Newton iterations per segment\n";
  out << "volume in " << inflow_volume_m3 << " m3, out " << outflow_volume_m3 << " m3, lost "
      << loss_volume_m3 << " m3, storage " << initial_volume_m3 << " -> " << final_volume_m3
      << " m3, residual " << volume_residual_m3 << " m3 (relative " << relative_volume_error
      << ")\n";
  out << "numerical/physical diffusion (Cunge): " << min_diffusion_ratio << " to "
      << max_diffusion_ratio << "\n";
  return out.str();
}

}  // namespace qingshui::hydro
