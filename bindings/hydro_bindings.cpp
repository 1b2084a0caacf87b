// Hydraulics → Python. Per-segment tables cross as columns (lists); the Python layer
// (qingshui/hydro.py) turns them into pandas DataFrames and numpy arrays.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "qingshui/core/error.h"
#include "qingshui/hydro/channel.h"
#include "qingshui/hydro/dispersion.h"
#include "qingshui/hydro/flow_balance.h"
#include "qingshui/hydro/rain.h"
#include "qingshui/hydro/routing.h"

namespace py = pybind11;

namespace qingshui::python {

namespace {

py::list Columns(const std::vector<hydro::Column>& columns) {
  py::list out;
  for (const auto& c : columns) {
    py::dict d;
    d["name"] = c.name;
    d["unit"] = c.unit;
    d["description"] = c.description;
    d["integer"] = c.integer;
    if (c.is_text()) {
      d["values"] = py::cast(c.text);
    } else {
      d["values"] = py::cast(c.values);
    }
    out.append(d);
  }
  return out;
}

py::dict Balance(const hydro::WaterBalance& b) {
  py::dict d;
  d["headwater_m3s"] = b.headwater_m3s;
  d["point_inflow_m3s"] = b.point_inflow_m3s;
  d["diffuse_inflow_m3s"] = b.diffuse_inflow_m3s;
  d["withdrawal_m3s"] = b.withdrawal_m3s;
  d["withdrawal_shortfall_m3s"] = b.withdrawal_shortfall_m3s;
  d["loss_m3s"] = b.loss_m3s;
  d["lake_evaporation_m3s"] = b.lake_evaporation_m3s;
  d["outlet_m3s"] = b.outlet_m3s;
  d["inflow_m3s"] = b.inflow_m3s();
  d["outflow_m3s"] = b.outflow_m3s();
  d["residual_m3s"] = b.residual_m3s;
  d["relative_residual"] = b.relative_residual;
  return d;
}

py::list Sources(const std::vector<hydro::SourceFlow>& sources) {
  py::list out;
  for (const auto& s : sources) {
    py::dict d;
    d["id"] = s.id;
    d["kind"] = s.kind;
    d["active"] = s.active;
    d["reason"] = s.reason;
    d["segment"] = s.segment;
    d["flow_m3s"] = s.flow_m3s;
    d["via"] = s.via.empty() ? py::object(py::none()) : py::object(py::str(s.via));
    d["via_wetland_m3s"] = s.via_wetland_m3s;
    out.append(d);
  }
  return out;
}

hydro::DayOptions Day(const Network& net, const std::string& date, const std::string& season,
                      const std::string& rain_path, std::string* rain_report) {
  hydro::DayOptions o;
  o.date = date;
  o.season = season;
  std::string error;
  if (!o.IsValid(&error)) throw ConfigError(error);
  if (!rain_path.empty()) {
    const hydro::RainSeries series = hydro::ReadRainCsv(rain_path, net);
    const hydro::RainDay day = hydro::RainOnDay(net, series, date);
    hydro::AddRain(day, &o);
    if (rain_report) *rain_report = day.BriefReport();
  }
  return o;
}

}  // namespace

void BindHydro(py::module_& m) {
  m.def(
      "normal_depth",
      [](double flow_m3s, double bottom_width_m, double side_slope, double manning_n,
         double bed_slope) {
        ChannelGeometry g{bottom_width_m, side_slope, manning_n, bed_slope};
        const hydro::SectionState s = hydro::NormalDepth(g, flow_m3s);
        py::dict d;
        d["depth_m"] = s.depth_m;
        d["area_m2"] = s.area_m2;
        d["top_width_m"] = s.top_width_m;
        d["velocity_ms"] = s.velocity_ms;
        d["hydraulic_radius_m"] = s.hydraulic_radius_m();
        return d;
      },
      py::arg("flow_m3s"), py::arg("bottom_width_m"), py::arg("side_slope"), py::arg("manning_n"),
      py::arg("bed_slope"),
      "Manning normal depth of a trapezoidal channel; returns depth, area, top width, velocity.");

  m.def(
      "daily_hydraulics",
      [](const Network& net, const std::string& date, const std::string& season,
         const std::string& rain_path) {
        std::string rain_report;
        const hydro::DayOptions o = Day(net, date, season, rain_path, &rain_report);
        const hydro::NetworkHydraulics h = hydro::SteadyHydraulics(net, o);
        py::dict d;
        d["columns"] = Columns(hydro::SegmentTable(h));
        d["balance"] = Balance(h.balance);
        d["sources"] = Sources(h.sources);
        d["date"] = h.date;
        d["season"] = h.season;
        d["warnings"] = py::cast(h.warnings);
        d["report"] = h.BriefReport() + rain_report;
        return d;
      },
      py::arg("network"), py::arg("date"), py::arg("season") = "", py::arg("rain") = "",
      "Steady hydraulics of one day: per-segment columns, the volume balance, sources.");

  m.def(
      "route_days",
      [](const Network& net, const std::vector<std::string>& dates, double time_step_s,
         double output_interval_s, const std::string& rain_path) {
        std::vector<hydro::DayOptions> days;
        for (const auto& date : dates) days.push_back(Day(net, date, "", rain_path, nullptr));
        hydro::RoutingOptions o;
        o.time_step_s = time_step_s;
        o.output_interval_s = output_interval_s;
        const NetworkGrid grid = BuildGrid(net);
        const hydro::RoutedFlow r = hydro::RouteDays(net, grid, days, o);
        py::dict d;
        d["times_s"] = py::cast(r.times_s);
        d["num_segments"] = r.num_segments;
        d["flow_m3s"] = py::cast(r.flow_m3s);
        d["area_m2"] = py::cast(r.area_m2);
        d["relative_volume_error"] = r.relative_volume_error;
        d["volume_residual_m3"] = r.volume_residual_m3;
        d["report"] = r.BriefReport();
        return d;
      },
      py::arg("network"), py::arg("dates"), py::arg("time_step_s") = 3600.0,
      py::arg("output_interval_s") = 3600.0, py::arg("rain") = "",
      "Unsteady routing (kinematic wave) over consecutive days from the first day's steady state.");

  m.def(
      "catchment_rows",
      [](const Network& net) {
        py::list rows;
        for (const auto& c : net.catchments) {
          py::dict d;
          d["id"] = c.id;
          d["name"] = c.name_en;
          d["name_zh"] = c.name_zh;
          d["reach"] = c.reach;
          d["km_from"] = c.km_from;
          d["km_to"] = c.km_to;
          d["area_km2"] = c.area_m2 / 1e6;
          d["curve_number"] = c.curve_number;
          d["initial_abstraction_ratio"] = c.initial_abstraction_ratio;
          d["sewer_plant"] =
              c.sewer_plant.empty() ? py::object(py::none()) : py::object(py::str(c.sewer_plant));
          d["sewered_fraction"] = c.sewered_fraction;
          d["src"] = c.src;
          rows.append(d);
        }
        return rows;
      },
      py::arg("network"), "Rain catchments of a network, one dict per catchment.");

  m.def("scs_runoff_mm", &hydro::ScsRunoffMm, py::arg("rain_mm"), py::arg("curve_number"),
        py::arg("initial_abstraction_ratio") = 0.2, "SCS curve-number runoff depth (mm).");

  m.def(
      "dispersion_coefficient",
      [](const std::string& formula, double velocity_ms, double depth_m, double width_m,
         double shear_velocity_ms) {
        hydro::SectionFlow f;
        f.velocity_ms = velocity_ms;
        f.depth_m = depth_m;
        f.width_m = width_m;
        f.shear_velocity_ms = shear_velocity_ms;
        return hydro::DispersionCoefficient(hydro::ParseDispersionFormula(formula), f);
      },
      py::arg("formula"), py::arg("velocity_ms"), py::arg("depth_m"), py::arg("width_m"),
      py::arg("shear_velocity_ms"),
      "Longitudinal dispersion (m2/s): fischer, kashefipour_falconer or deng.");
}

}  // namespace qingshui::python
