// Network water-quality runs → Python (behind qingshui.Scenario). One call builds and runs
// a simulation and returns plain arrays; the Python layer makes DataFrames and xarray.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "qingshui/core/network.h"
#include "qingshui/hydro/simulation.h"

namespace py = pybind11;

namespace qingshui::python {

namespace {

// Moves a vector into a numpy array without copying: a capsule owns the buffer.
py::array_t<double> Adopt(std::vector<double>&& data, std::vector<py::ssize_t> shape) {
  auto* owned = new std::vector<double>(std::move(data));
  py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<double>*>(p); });
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = sizeof(double);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return py::array_t<double>(shape, strides, owned->data(), owner);
}

}  // namespace

void BindSimulation(py::module_& m) {
  m.def(
      "simulate",
      [](const Network& net, const std::string& start_date, int days, double time_step_s,
         double output_interval_s, const std::string& season, double velocity_factor,
         double dispersion_factor, double temperature_c, bool fields, bool contributions) {
        hydro::SimulationOptions o;
        o.start_date = start_date;
        o.days = days;
        o.time_step_s = time_step_s;
        o.output_interval_s = output_interval_s;
        o.season = season;
        o.velocity_factor = velocity_factor;
        o.dispersion_factor = dispersion_factor;
        o.temperature_c = temperature_c;
        std::vector<std::string> members = {"total"};
        transport::TransportResult r;
        hydro::Simulation sim;
        {
          py::gil_scoped_release release;
          sim = hydro::BuildSimulation(net, o);
          sim.transport_options.store_fields = fields;
          if (contributions) {
            for (auto& name : hydro::AddContributionMembers(&sim)) members.push_back(name);
          }
          r = hydro::RunSimulation(sim);
        }
        py::dict out;
        out["times_s"] = py::array_t<double>(r.times_s.size(), r.times_s.data());
        out["species"] = sim.species;
        out["stations"] = sim.station_ids;
        out["members"] = members;
        out["station_concentration"] =
            Adopt(std::move(r.station_concentration_g_m3),
                  {r.num_members, r.num_times, r.num_stations, r.num_species});
        if (fields) {
          out["concentration"] = Adopt(std::move(r.concentration_g_m3),
                                       {r.num_members, r.num_times, r.num_segments, r.num_species});
        }
        std::vector<std::string> reach;
        std::vector<double> km_start, km_end;
        std::vector<int> is_lake;
        for (const auto& s : sim.grid.segments) {
          reach.push_back(s.reach);
          km_start.push_back(s.km_start);
          km_end.push_back(s.km_end);
          is_lake.push_back(s.is_lake);
        }
        out["segment_reach"] = reach;
        out["segment_km_start"] = km_start;
        out["segment_km_end"] = km_end;
        out["segment_is_lake"] = is_lake;
        out["station_segments"] = sim.station_segments;
        std::vector<double> flow;
        for (const auto& d : sim.days) flow.insert(flow.end(), d.flow_m3s.begin(), d.flow_m3s.end());
        out["daily_flow_m3s"] = Adopt(std::move(flow), {static_cast<py::ssize_t>(sim.days.size()),
                                                        static_cast<py::ssize_t>(sim.grid.size())});
        out["summary"] = r.summary.BriefReport();
        out["max_relative_mass_error"] = r.summary.max_relative_mass_error;
        return out;
      },
      py::arg("network"), py::arg("start_date"), py::arg("days") = 1,
      py::arg("time_step_s") = 1800.0, py::arg("output_interval_s") = 3600.0,
      py::arg("season") = "", py::arg("velocity_factor") = 1.0, py::arg("dispersion_factor") = 1.0,
      py::arg("temperature_c") = 20.0, py::arg("fields") = false, py::arg("contributions") = false,
      "Run the network for whole days; returns arrays (member, time, station|segment, species).");
}

}  // namespace qingshui::python
