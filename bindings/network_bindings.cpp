// Network → Python. Tables cross as lists of dicts (a few hundred rows at most); the
// Python layer turns them into pandas DataFrames.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "qingshui/core/network.h"
#include "qingshui/tracing/candidates.h"

namespace py = pybind11;

namespace qingshui::python {

namespace {

py::dict Names(const std::string& id, const std::string& zh, const std::string& en) {
  py::dict d;
  d["id"] = id;
  d["name"] = en;
  d["name_zh"] = zh;
  d["name_en"] = en;
  return d;
}

py::list SourceRows(const Network& net) {
  py::list rows;
  for (const auto& s : net.sources) {
    py::dict d = Names(s.id, s.name_zh, s.name_en);
    d["kind"] = ToString(s.kind);
    d["reach"] = s.reach;
    d["km"] = s.km;
    d["design_flow_m3s"] = s.design_flow_m3s;
    for (const auto& sp : net.species) {
      auto it = s.effluent_mg_l.find(sp.id);
      d[py::str(sp.id + "_mg_l")] =
          it == s.effluent_mg_l.end() ? py::object(py::none()) : py::object(py::float_(it->second));
    }
    d["status"] = s.status;
    d["online"] = s.online.empty() ? py::object(py::none()) : py::object(py::str(s.online));
    d["offline"] = s.offline.empty() ? py::object(py::none()) : py::object(py::str(s.offline));
    d["via"] = s.via.empty() ? py::object(py::none()) : py::object(py::str(s.via));
    d["rule"] = s.rule;
    d["src"] = s.src;
    rows.append(d);
  }
  return rows;
}

py::list StationRows(const Network& net) {
  py::list rows;
  for (const auto& s : net.stations) {
    py::dict d = Names(s.id, s.name_zh, s.name_en);
    d["kind"] = s.kind;
    d["reach"] = s.reach;
    d["km"] = s.km;
    d["sampling_interval_h"] = s.sampling_interval_s / 3600.0;
    d["target_class"] = s.target_class.empty() ? py::object(py::none()) : py::object(py::str(s.target_class));
    d["monitors"] = s.monitors.empty() ? py::object(py::none()) : py::object(py::str(s.monitors));
    d["src"] = s.src;
    rows.append(d);
  }
  return rows;
}

py::list ReachRows(const Network& net) {
  py::list rows;
  for (const auto& r : net.reaches) {
    py::dict d = Names(r.id, r.name_zh, r.name_en);
    d["river"] = r.river;
    d["start_km"] = r.start_km;
    d["end_km"] = r.end_km();
    d["length_km"] = r.length_m / 1000.0;
    d["segment_length_m"] = r.segment_length_m;
    d["segments"] = r.segment_count();
    d["downstream"] = r.downstream;
    d["bottom_width_m"] = r.geometry.bottom_width_m;
    d["side_slope"] = r.geometry.side_slope;
    d["manning_n"] = r.geometry.manning_n;
    d["bed_slope"] = r.geometry.bed_slope;
    rows.append(d);
  }
  return rows;
}

py::list LakeRows(const Network& net) {
  py::list rows;
  for (const auto& l : net.lakes) {
    py::dict d = Names(l.id, l.name_zh, l.name_en);
    d["role"] = l.role;
    d["area_km2"] = l.area_m2 / 1e6;
    d["mean_depth_m"] = l.mean_depth_m;
    d["volume_m3"] = l.volume_m3();
    d["downstream"] = l.downstream.empty() ? py::object(py::none()) : py::object(py::str(l.downstream));
    d["rule"] = l.rule;
    rows.append(d);
  }
  return rows;
}

py::list SpeciesRows(const Network& net) {
  py::list rows;
  for (const auto& s : net.species) {
    py::dict d = Names(s.id, s.name_zh, s.name_en);
    d["unit"] = s.unit;
    d["decay_per_day_20c"] = s.decay_per_s * 86400.0;
    d["theta"] = s.theta;
    rows.append(d);
  }
  return rows;
}

py::list ProvenanceRows(const Network& net) {
  py::list rows;
  for (const auto& p : net.provenance) {
    py::dict d;
    d["path"] = p.path;
    d["line"] = p.line;
    d["kind"] = std::string(1, p.kind);
    d["text"] = p.text;
    rows.append(d);
  }
  return rows;
}

}  // namespace

void BindNetwork(py::module_& m) {
  py::class_<Network>(m, "Network", "A validated river network (see qingshui.Network).")
      .def_readonly("name", &Network::name)
      .def_readonly("file", &Network::file)
      .def("source_rows", &SourceRows)
      .def("station_rows", &StationRows)
      .def("reach_rows", &ReachRows)
      .def("lake_rows", &LakeRows)
      .def("species_rows", &SpeciesRows)
      .def("provenance_rows", &ProvenanceRows)
      .def("summary_text", &FormatSummary)
      .def("standard_table",
           [](const Network& net) {
             py::dict d;
             if (!net.standard) return d;
             d["id"] = net.standard->id;
             d["classes"] = net.standard->classes;
             py::dict indicators;
             for (const auto& ind : net.standard->indicators) {
               py::dict row;
               row["sense"] = ind.sense;
               row["limits_mg_l"] = ind.limits_mg_l;
               indicators[py::str(ind.species)] = row;
             }
             d["indicators"] = indicators;
             return d;
           })
      .def("reaches_upstream_first", &Network::ReachesUpstreamFirst)
      .def("upstream_candidates", [](const Network& net, const std::string& station) {
        py::list rows;
        for (const auto& c : tracing::UpstreamCandidates(net, station)) {
          py::dict d;
          d["source"] = c.source_id;
          d["distance_km"] = c.distance_km;
          rows.append(d);
        }
        return rows;
      });
  m.def("load_network", &LoadNetwork, py::arg("path"),
        py::call_guard<py::gil_scoped_release>(),
        "Read and validate a network file; raises ConfigError naming file, line and field.");
  m.def("parse_network", &ParseNetwork, py::arg("text"), py::arg("file_name") = "<string>");
  m.def("write_network_yaml", &WriteNetworkYaml, py::arg("network"));
}

}  // namespace qingshui::python
