// Hydraulics → Python.
#include <pybind11/pybind11.h>

#include "qingshui/hydro/channel.h"

namespace py = pybind11;

namespace qingshui::python {

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
}

}  // namespace qingshui::python
