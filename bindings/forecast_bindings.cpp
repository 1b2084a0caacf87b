// The daily forecast → Python (thin): run a forecast the way `qingshui forecast` does and
// write its file, and make a synthetic truth for twin experiments and demo data. The
// Python layer (qingshui/forecast.py) reads the file with xarray.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/forecast/forecast.h"
#include "qingshui/forecast/forecast_file.h"
#include "qingshui/forecast/inputs.h"
#include "qingshui/forecast/time.h"
#include "qingshui/forecast/twin.h"

namespace py = pybind11;

namespace qingshui::python {

namespace {

std::string NetworkPath(const std::string& network, const std::string& inputs,
                        const std::string& fallback) {
  if (!network.empty()) return network;
  const std::string from_manifest = forecast::ManifestNetworkPath(inputs);
  return from_manifest.empty() ? fallback : from_manifest;
}

py::list Issues(const std::vector<forecast::Issue>& issues) {
  py::list out;
  for (const auto& i : issues) {
    py::dict d;
    d["code"] = i.code;
    d["where"] = i.where;
    d["message"] = i.message;
    out.append(d);
  }
  return out;
}

}  // namespace

void BindForecast(py::module_& m) {
  m.def("forecast_default_inputs", &forecast::DefaultInputsDir);
  m.def(
      "forecast_read_observations_hdf5",
      [](const std::string& path) {
        std::vector<forecast::Observation> rows;
        {
          py::gil_scoped_release release;
          rows = forecast::ReadObservationsHdf5(path);  // checked, in a child process
        }
        py::dict d;
        py::list time, station, species, value, flag;
        for (const auto& o : rows) {
          time.append(o.time_utc_s);
          station.append(o.station);
          species.append(o.species);
          value.append(o.value_mg_l);
          flag.append(o.flag);
        }
        d["time_utc_s"] = time;
        d["station"] = station;
        d["species"] = species;
        d["value"] = value;
        d["flag"] = flag;
        return d;
      },
      py::arg("path"),
      "Observations of an HDF5 file in the forecast's layout, read by the checked C++ reader "
      "(a corrupt file raises DataError instead of crashing libhdf5).");

  m.def(
      "forecast_run",
      [](const std::string& network, const std::string& inputs_dir,
         const std::string& default_network, const std::string& start, std::optional<int> days,
         std::optional<int> members, std::optional<int> hindcast_days,
         std::optional<std::uint64_t> seed, int threads, const std::string& out) {
        const std::string inputs = inputs_dir.empty() ? forecast::DefaultInputsDir() : inputs_dir;
        const std::string path = NetworkPath(network, inputs, default_network);
        forecast::ForecastResult result;
        forecast::ForecastInputs in;
        Network net;
        {
          py::gil_scoped_release release;
          net = LoadNetwork(path);
          in = forecast::ReadInputs(inputs, net);
          std::vector<std::string> defaults;
          forecast::ForecastOptions o = forecast::OptionsFromInputs(in, &defaults);
          if (!start.empty()) {
            std::string error;
            std::int64_t t = 0;
            if (!forecast::ParseIsoTime(start, &t, &error)) throw ConfigError("start: " + error);
            o.as_of_utc_s = t;
          }
          if (o.as_of_utc_s <= 0)
            throw ConfigError("no as-of time: give start, as_of in the manifest, or observations");
          if (days) o.days = *days;
          if (members) o.members = *members;
          if (hindcast_days) o.hindcast_days = *hindcast_days;
          if (seed) o.seed = *seed;
          o.threads = threads;
          result = forecast::RunForecast(net, in, o);
          result.defaults_used.insert(result.defaults_used.begin(), defaults.begin(),
                                      defaults.end());
          forecast::ForecastFileInfo info;
          info.network_file = path;
          info.inputs_dir = inputs;
          info.software_version = QINGSHUI_VERSION;
          info.synthetic_inputs = in.synthetic;
          info.inputs_description = in.description;
          forecast::WriteForecastFile(out, result, net, info);
        }
        py::dict d;
        d["path"] = out;
        d["warnings"] = Issues(result.warnings);
        d["defaults_used"] = result.defaults_used;
        d["report"] = result.BriefReport();
        d["table"] = forecast::FormatSummaryTable(result);
        d["json"] = forecast::SummaryJson(result);
        return d;
      },
      py::arg("network"), py::arg("inputs"), py::arg("default_network"), py::arg("start"),
      py::arg("days"), py::arg("members"), py::arg("hindcast_days"), py::arg("seed"),
      py::arg("threads"), py::arg("out"));

  m.def(
      "forecast_synthetic_truth",
      [](const std::string& network, const std::string& inputs_dir, const std::string& first_date,
         int days, std::uint64_t seed, double factor_scale, double daily_sigma) {
        const Network net = LoadNetwork(network);
        const forecast::ForecastInputs in = forecast::ReadInputs(inputs_dir, net);
        forecast::TruthOptions o;
        if (!forecast::ParseDate(first_date, &o.first_day)) {
          throw ConfigError("first_date: expected YYYY-MM-DD, got '" + first_date + "'");
        }
        o.days = days;
        o.seed = seed;
        o.factor_scale = factor_scale;
        o.daily_sigma = daily_sigma;
        forecast::Truth t;
        {
          py::gil_scoped_release release;
          t = forecast::SimulateTruth(net, in, o);
        }
        const py::ssize_t T = static_cast<py::ssize_t>(t.times_utc_s.size());
        const py::ssize_t S = static_cast<py::ssize_t>(t.stations.size());
        const py::ssize_t K = static_cast<py::ssize_t>(t.species.size());
        py::array_t<double> values({T, S, K});
        std::copy(t.values.begin(), t.values.end(), values.mutable_data());
        py::array_t<std::int64_t> times(T);
        std::copy(t.times_utc_s.begin(), t.times_utc_s.end(), times.mutable_data());
        py::array_t<double> factors({static_cast<py::ssize_t>(t.components.size()), K});
        std::copy(t.factors.begin(), t.factors.end(), factors.mutable_data());
        py::dict d;
        d["times_utc_s"] = times;
        d["stations"] = t.stations;
        d["species"] = t.species;
        d["values"] = values;
        d["components"] = t.components;
        d["factors"] = factors;
        return d;
      },
      py::arg("network"), py::arg("inputs"), py::arg("first_date"), py::arg("days"),
      py::arg("seed"), py::arg("factor_scale") = 1.0, py::arg("daily_sigma") = 0.1);
}

}  // namespace qingshui::python
