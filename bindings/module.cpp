// _qingshui: the private extension behind the `qingshui` Python package. Thin: it converts
// C++ structs to Python objects and library exceptions to qingshui.Error subclasses; all
// behaviour lives in the C++ libraries.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "qingshui/core/error.h"

namespace py = pybind11;

namespace qingshui::python {
void BindNetwork(py::module_& m);
void BindHydro(py::module_& m);
void BindTransport(py::module_& m);
void BindTracing(py::module_& m);
void BindSimulation(py::module_& m);
void BindForecast(py::module_& m);
void BindCalibration(py::module_& m);  // calibration_bindings.cpp
}  // namespace qingshui::python

PYBIND11_MODULE(_qingshui, m) {
  m.doc() = "Qingshui engine (private extension; use the qingshui package)";
  m.attr("__version__") = QINGSHUI_VERSION;
  // Base first, then subclasses: pybind11 tries the most recently registered translator
  // first, so each C++ subclass maps to its own Python class.
  static py::exception<qingshui::Error> error(m, "Error");
  static py::exception<qingshui::ConfigError> config_error(m, "ConfigError", error.ptr());
  static py::exception<qingshui::DataError> data_error(m, "DataError", error.ptr());
  static py::exception<qingshui::SolverError> solver_error(m, "SolverError", error.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const qingshui::ConfigError& e) {
      config_error(e.what());
    } catch (const qingshui::DataError& e) {
      data_error(e.what());
    } catch (const qingshui::SolverError& e) {
      solver_error(e.what());
    } catch (const qingshui::Error& e) {
      error(e.what());
    }
  });
  qingshui::python::BindNetwork(m);
  qingshui::python::BindHydro(m);
  qingshui::python::BindTransport(m);
  qingshui::python::BindTracing(m);
  qingshui::python::BindCalibration(m);
  qingshui::python::BindSimulation(m);
  qingshui::python::BindForecast(m);
}
