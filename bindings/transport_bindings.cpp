// Transport solver → Python (the `qingshui.transport` module). Problem structs are plain
// read-write attributes; result arrays are numpy views on the C++ result (no copy), kept
// alive by the Python result object; the GIL is released while the solver runs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "qingshui/core/otis.h"
#include "qingshui/core/transport.h"

namespace py = pybind11;

namespace qingshui::python {

namespace {

using namespace qingshui::transport;

// A numpy view of `data` shaped (members, times, where, species); `owner` keeps it alive.
py::array View(const TransportResult& r, const std::vector<double>& data, int num_where,
               py::handle owner) {
  if (data.empty()) return py::array_t<double>(std::vector<py::ssize_t>{0, 0, 0, 0});
  std::vector<py::ssize_t> shape = {r.num_members, r.num_times, num_where, r.num_species};
  std::vector<py::ssize_t> strides(4);
  strides[3] = sizeof(double);
  strides[2] = strides[3] * r.num_species;
  strides[1] = strides[2] * num_where;
  strides[0] = strides[1] * r.num_times;
  py::array out(py::dtype::of<double>(), shape, strides, data.data(), owner);
  // Results are read-only: a view must not silently change the solver's record.
  out.attr("setflags")(py::arg("write") = false);
  return out;
}

}  // namespace

void BindTransport(py::module_& parent) {
  py::module_ m = parent.def_submodule("transport", "Transport solver (see qingshui.transport)");

  py::class_<TimeSeries> ts(m, "TimeSeries", "A scalar time series (times in s).");
  py::enum_<TimeSeries::Interpolation>(ts, "Interpolation")
      .value("STEP", TimeSeries::Interpolation::kStep)
      .value("LINEAR", TimeSeries::Interpolation::kLinear);
  ts.def(py::init<>())
      .def(py::init([](std::vector<double> times_s, std::vector<double> values,
                       TimeSeries::Interpolation interpolation) {
             TimeSeries t;
             t.times_s = std::move(times_s);
             t.values = std::move(values);
             t.interpolation = interpolation;
             return t;
           }),
           py::arg("times_s"), py::arg("values"),
           py::arg("interpolation") = TimeSeries::Interpolation::kLinear)
      .def_static("constant", &TimeSeries::Constant, py::arg("value"))
      .def_readwrite("times_s", &TimeSeries::times_s)
      .def_readwrite("values", &TimeSeries::values)
      .def_readwrite("interpolation", &TimeSeries::interpolation)
      .def("at", &TimeSeries::At, py::arg("t_s"))
      .def("average", &TimeSeries::Average, py::arg("t0_s"), py::arg("t1_s"));

  py::class_<Sorption>(m, "Sorption")
      .def(py::init<>())
      .def_readwrite("main_rate_per_s", &Sorption::main_rate_per_s)
      .def_readwrite("storage_rate_per_s", &Sorption::storage_rate_per_s)
      .def_readwrite("sediment_kg_per_m3", &Sorption::sediment_kg_per_m3)
      .def_readwrite("kd_m3_per_kg", &Sorption::kd_m3_per_kg)
      .def_readwrite("storage_background_g_m3", &Sorption::storage_background_g_m3);

  py::class_<Segment>(m, "Segment", "One finite volume; downstream index > own index or -1.")
      .def(py::init<>())
      .def_readwrite("downstream", &Segment::downstream)
      .def_readwrite("length_m", &Segment::length_m)
      .def_readwrite("dispersion_m2s", &Segment::dispersion_m2s)
      .def_readwrite("storage_area_m2", &Segment::storage_area_m2)
      .def_readwrite("exchange_per_s", &Segment::exchange_per_s)
      .def_readwrite("well_mixed", &Segment::well_mixed)
      .def_readwrite("decay_per_s", &Segment::decay_per_s)
      .def_readwrite("storage_decay_per_s", &Segment::storage_decay_per_s)
      .def_readwrite("sorption", &Segment::sorption)
      .def_readwrite("removal_fraction", &Segment::removal_fraction,
                     "Treatment node (well_mixed only): fraction of each species removed at "
                     "steady flow, 0 <= f < 1; empty = none.");

  py::class_<FlowState>(m, "FlowState", "Hydraulic state of every segment at one time.")
      .def(py::init<>())
      .def_readwrite("flow_m3s", &FlowState::flow_m3s)
      .def_readwrite("area_m2", &FlowState::area_m2)
      .def_readwrite("lateral_inflow_m2s", &FlowState::lateral_inflow_m2s)
      .def_readwrite("lateral_outflow_m2s", &FlowState::lateral_outflow_m2s)
      .def_readwrite("headwater_inflow_m3s", &FlowState::headwater_inflow_m3s)
      .def_readwrite("lateral_concentration_g_m3", &FlowState::lateral_concentration_g_m3);

  py::class_<FlowField>(m, "FlowField")
      .def(py::init<>())
      .def_readwrite("times_s", &FlowField::times_s)
      .def_readwrite("states", &FlowField::states);

  py::class_<UpstreamBoundary> ub(m, "UpstreamBoundary");
  py::enum_<UpstreamBoundary::Kind>(ub, "Kind")
      .value("CONCENTRATION", UpstreamBoundary::Kind::kConcentration)
      .value("MASS_FLUX", UpstreamBoundary::Kind::kMassFlux)
      .value("OTIS_FLUX", UpstreamBoundary::Kind::kOtisFlux);
  ub.def(py::init<>())
      .def_readwrite("segment", &UpstreamBoundary::segment)
      .def_readwrite("kind", &UpstreamBoundary::kind)
      .def_readwrite("series", &UpstreamBoundary::series);

  py::class_<PointLoad>(m, "PointLoad", "A load (g/s) of one species into one segment.")
      .def(py::init<>())
      .def(py::init([](int segment, int species, TimeSeries load) {
             return PointLoad{segment, species, std::move(load)};
           }),
           py::arg("segment"), py::arg("species"), py::arg("load_g_s"))
      .def_readwrite("segment", &PointLoad::segment)
      .def_readwrite("species", &PointLoad::species)
      .def_readwrite("load_g_s", &PointLoad::load_g_s);

  py::class_<Forcing>(m, "Forcing", "What differs between members sharing a flow field.")
      .def(py::init<>())
      .def_readwrite("boundaries", &Forcing::boundaries)
      .def_readwrite("loads", &Forcing::loads)
      .def_readwrite("initial_concentration_g_m3", &Forcing::initial_concentration_g_m3)
      .def_readwrite("initial_storage_g_m3", &Forcing::initial_storage_g_m3)
      .def_readwrite("initial_sorbed_g_kg", &Forcing::initial_sorbed_g_kg)
      .def_readwrite("initial_steady_state", &Forcing::initial_steady_state)
      .def_readwrite("initial_steady_time_s", &Forcing::initial_steady_time_s);

  py::class_<Station>(m, "Station")
      .def(py::init<>())
      .def(py::init([](int segment, int next_segment, double weight) {
             return Station{segment, next_segment, weight};
           }),
           py::arg("segment"), py::arg("next_segment") = -1, py::arg("weight") = 0.0)
      .def_readwrite("segment", &Station::segment)
      .def_readwrite("next_segment", &Station::next_segment)
      .def_readwrite("weight", &Station::weight);

  py::class_<TransportProblem>(m, "TransportProblem")
      .def(py::init<>())
      .def_readwrite("num_species", &TransportProblem::num_species)
      .def_readwrite("segments", &TransportProblem::segments)
      .def_readwrite("flow", &TransportProblem::flow)
      .def_readwrite("temperature_c", &TransportProblem::temperature_c)
      .def_readwrite("theta", &TransportProblem::theta)
      .def_readwrite("reaction_matrix_per_s", &TransportProblem::reaction_matrix_per_s)
      .def_readwrite("members", &TransportProblem::members)
      .def_readwrite("start_time_s", &TransportProblem::start_time_s)
      .def_readwrite("end_time_s", &TransportProblem::end_time_s)
      .def_readwrite("time_step_s", &TransportProblem::time_step_s)
      .def_readwrite("output_times_s", &TransportProblem::output_times_s)
      .def_readwrite("stations", &TransportProblem::stations);

  py::class_<TransportOptions> options(m, "TransportOptions");
  py::enum_<TransportOptions::Advection>(options, "Advection")
      .value("LIMITED_LAX_WENDROFF", TransportOptions::Advection::kLimitedLaxWendroff)
      .value("SSP_RK2", TransportOptions::Advection::kSspRk2);
  options.def(py::init<>())
      .def_readwrite("advection", &TransportOptions::advection)
      .def_readwrite("max_courant", &TransportOptions::max_courant)
      .def_readwrite("positive_implicit", &TransportOptions::positive_implicit)
      .def_readwrite("adaptive_implicit", &TransportOptions::adaptive_implicit)
      .def_readwrite("independent_members", &TransportOptions::independent_members)
      .def_readwrite("reuse_factorizations", &TransportOptions::reuse_factorizations)
      .def_readwrite("max_substeps", &TransportOptions::max_substeps)
      .def_readwrite("num_threads", &TransportOptions::num_threads)
      .def_readwrite("steady_state", &TransportOptions::steady_state)
      .def_readwrite("steady_tolerance", &TransportOptions::steady_tolerance)
      .def_readwrite("max_steady_iterations", &TransportOptions::max_steady_iterations)
      .def_readwrite("store_fields", &TransportOptions::store_fields)
      .def("is_valid",
           [](const TransportOptions& o) {
             std::string error;
             bool ok = o.IsValid(&error);
             return py::make_tuple(ok, error);
           },
           "(ok, message)");

  py::class_<MassBalance>(m, "MassBalance", "Mass budget of one species over a run (g).")
      .def_readonly("initial_mass_g", &MassBalance::initial_mass_g)
      .def_readonly("final_mass_g", &MassBalance::final_mass_g)
      .def_readonly("boundary_inflow_g", &MassBalance::boundary_inflow_g)
      .def_readonly("lateral_inflow_g", &MassBalance::lateral_inflow_g)
      .def_readonly("point_load_g", &MassBalance::point_load_g)
      .def_readonly("outlet_outflow_g", &MassBalance::outlet_outflow_g)
      .def_readonly("flow_closure_g", &MassBalance::flow_closure_g)
      .def_readonly("decay_main_g", &MassBalance::decay_main_g)
      .def_readonly("decay_storage_g", &MassBalance::decay_storage_g)
      .def_readonly("storage_background_g", &MassBalance::storage_background_g)
      .def_readonly("reaction_g", &MassBalance::reaction_g)
      .def_readonly("residual_g", &MassBalance::residual_g)
      .def_readonly("relative_error", &MassBalance::relative_error);

  py::class_<TransportSummary>(m, "TransportSummary")
      .def_readonly("num_steps", &TransportSummary::num_steps)
      .def_readonly("advection_substeps", &TransportSummary::advection_substeps)
      .def_readonly("max_advection_substeps", &TransportSummary::max_advection_substeps)
      .def_readonly("implicit_substeps", &TransportSummary::implicit_substeps)
      .def_readonly("max_implicit_substeps", &TransportSummary::max_implicit_substeps)
      .def_readonly("max_courant_requested", &TransportSummary::max_courant_requested)
      .def_readonly("steady_iterations", &TransportSummary::steady_iterations)
      .def_readonly("mass_balance", &TransportSummary::mass_balance)
      .def_readonly("max_relative_mass_error", &TransportSummary::max_relative_mass_error)
      .def_readonly("wall_time_s", &TransportSummary::wall_time_s)
      .def("brief_report", &TransportSummary::BriefReport)
      .def("__repr__", &TransportSummary::BriefReport);

  py::class_<TransportResult>(m, "TransportResult",
                              "Arrays are read-only numpy views shaped (member, time, "
                              "segment|station, species), concentrations in g/m3 = mg/L.")
      .def_readonly("num_members", &TransportResult::num_members)
      .def_readonly("num_times", &TransportResult::num_times)
      .def_readonly("num_segments", &TransportResult::num_segments)
      .def_readonly("num_species", &TransportResult::num_species)
      .def_readonly("num_stations", &TransportResult::num_stations)
      .def_readonly("summary", &TransportResult::summary)
      .def_property_readonly("times_s",
                             [](py::object self) {
                               const auto& r = self.cast<const TransportResult&>();
                               return py::array(py::dtype::of<double>(),
                                                {static_cast<py::ssize_t>(r.times_s.size())},
                                                {sizeof(double)}, r.times_s.data(), self);
                             })
      .def_property_readonly("concentration_g_m3",
                             [](py::object self) {
                               const auto& r = self.cast<const TransportResult&>();
                               return View(r, r.concentration_g_m3, r.num_segments, self);
                             })
      .def_property_readonly("storage_g_m3",
                             [](py::object self) {
                               const auto& r = self.cast<const TransportResult&>();
                               return View(r, r.storage_g_m3, r.num_segments, self);
                             })
      .def_property_readonly("sorbed_g_kg",
                             [](py::object self) {
                               const auto& r = self.cast<const TransportResult&>();
                               return View(r, r.sorbed_g_kg, r.num_segments, self);
                             })
      .def_property_readonly("station_concentration_g_m3",
                             [](py::object self) {
                               const auto& r = self.cast<const TransportResult&>();
                               return View(r, r.station_concentration_g_m3, r.num_stations, self);
                             })
      .def_property_readonly("station_storage_g_m3",
                             [](py::object self) {
                               const auto& r = self.cast<const TransportResult&>();
                               return View(r, r.station_storage_g_m3, r.num_stations, self);
                             })
      .def_property_readonly("station_sorbed_g_kg", [](py::object self) {
        const auto& r = self.cast<const TransportResult&>();
        return View(r, r.station_sorbed_g_kg, r.num_stations, self);
      });

  py::class_<TransportSolver>(m, "TransportSolver")
      .def(py::init<const TransportOptions&>(), py::arg("options") = TransportOptions())
      .def("run", &TransportSolver::Run, py::arg("problem"),
           py::call_guard<py::gil_scoped_release>(),
           "Runs the problem; raises ConfigError, DataError or SolverError.");

  // OTIS decks: the problem and options OTIS would solve, and OTIS-format outputs.
  py::class_<OtisDeck>(m, "OtisDeck")
      .def_readonly("dir", &OtisDeck::dir)
      .def_readonly("title", &OtisDeck::title)
      .def_readonly("print_locations_m", &OtisDeck::print_locations_m)
      .def_readonly("solute_outputs", &OtisDeck::solute_outputs)
      .def_readonly("sorption_outputs", &OtisDeck::sorption_outputs)
      .def_readonly("num_solutes", &OtisDeck::num_solutes)
      .def_readonly("print_option", &OtisDeck::print_option)
      .def_property_readonly("steady_state", &OtisDeck::SteadyState)
      .def_property_readonly("num_segments", &OtisDeck::NumSegments);
  m.def("read_otis_deck", &ReadOtisDeck, py::arg("deck_dir"));
  m.def("otis_problem", &OtisProblem, py::arg("deck"));
  m.def("otis_options", &OtisOptions, py::arg("deck"));
  m.def(
      "format_otis_outputs",
      [](const OtisDeck& deck, const TransportResult& r) {
        py::dict out;
        for (const auto& f : FormatOtisOutputs(deck, r)) out[py::str(f.name)] = f.contents;
        return out;
      },
      py::arg("deck"), py::arg("result"), "{file name: contents} in OTIS's format");
}

}  // namespace qingshui::python
