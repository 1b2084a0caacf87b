// Tracing → Python: synthetic scenarios, source tracing and release histories. Results cross
// as dicts and lists; qingshui/tracing.py turns them into objects and pandas DataFrames.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <limits>
#include <memory>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/tracing/history.h"
#include "qingshui/tracing/kernels.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/priors.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"

namespace py = pybind11;

namespace qingshui::python {

namespace {

using namespace qingshui::tracing;

// Rows as the Python layer passes them; `lines` (may be empty) are the rows' lines in the
// file they were read from, so that messages point at them. `reach` and `km` (empty, or one
// per row: "" and NaN at a station) carry point samples; a row fills either station or
// reach and km, as in the CSV.
ObservationSet MakeObservations(const std::vector<double>& time_s,
                                const std::vector<std::string>& station,
                                const std::vector<std::string>& species,
                                const std::vector<double>& value, const std::string& label,
                                const std::vector<int>& lines,
                                const std::vector<std::string>& reach = {},
                                const std::vector<double>& km = {}) {
  if (time_s.size() != station.size() || time_s.size() != species.size() ||
      time_s.size() != value.size()) {
    throw DataError(label + ": columns time, station, species, value differ in length");
  }
  const bool points = !reach.empty() || !km.empty();
  if (points && (reach.size() != time_s.size() || km.size() != time_s.size())) {
    throw DataError(label + ": columns reach and km differ in length from time");
  }
  ObservationSet set;
  set.file = label;
  for (size_t i = 0; i < time_s.size(); ++i) {
    const int line = i < lines.size() ? lines[i] : static_cast<int>(i) + 1;
    if (!std::isfinite(time_s[i])) throw DataError(Located(label, line, "time", "not a time"));
    if (!std::isfinite(value[i]) || value[i] < 0) {
      throw DataError(Located(label, line, "value", "expected a finite concentration >= 0 (mg/L)"));
    }
    Observation o;
    o.time_s = time_s[i];
    o.station = station[i];
    o.species = species[i];
    o.value_mg_l = value[i];
    o.line = line;
    if (points) {
      const bool has_reach = !reach[i].empty(), has_km = !std::isnan(km[i]);
      if (!o.station.empty() && (has_reach || has_km)) {
        throw DataError(Located(
            label, line, has_reach ? "reach" : "km",
            "give either a station or reach and km, not both (station '" + o.station + "')"));
      }
      if (o.station.empty()) {
        if (!has_reach && !has_km) {
          throw DataError(
              Located(label, line, "station", "empty: give a station, or reach and km"));
        }
        if (!has_reach)
          throw DataError(
              Located(label, line, "reach", "empty (a point sample needs reach and km)"));
        if (!has_km)
          throw DataError(Located(label, line, "km", "empty (a point sample needs reach and km)"));
        if (!std::isfinite(km[i]))
          throw DataError(Located(label, line, "km", "expected a finite number (river-km)"));
        o.reach = reach[i];
        o.km = km[i];
      }
    } else if (o.station.empty()) {
      // Not a point sample: the message the tracer gives for any unknown station.
      throw ConfigError(Located(label, line, "station", "unknown station '' (not in the network)"));
    }
    set.rows.push_back(o);
  }
  return set;
}

// Point columns of rows for Python: reach ("" at a station) and km (NaN at a station).
void PointColumns(const std::vector<Observation>& rows, py::dict* d) {
  std::vector<std::string> reach;
  std::vector<double> km;
  for (const auto& o : rows) {
    reach.push_back(o.reach);
    km.push_back(o.IsPoint() ? o.km : std::numeric_limits<double>::quiet_NaN());
  }
  (*d)["reach"] = reach;
  (*d)["km"] = km;
}

py::dict SourceDict(const SourceEstimate& s) {
  py::dict d;
  d["id"] = s.id;
  d["kind"] = s.kind;
  d["reach"] = s.reach;
  d["km"] = s.km;
  d["km_ci90"] = py::make_tuple(s.km_ci90[0], s.km_ci90[1]);
  d["release_start"] = FormatIsoTime(s.release_start_s);
  d["release_end"] = FormatIsoTime(s.release_end_s);
  d["release_start_s"] = s.release_start_s;
  d["release_end_s"] = s.release_end_s;
  d["release_start_ci90"] =
      py::make_tuple(FormatIsoTime(s.start_ci90[0]), FormatIsoTime(s.start_ci90[1]));
  d["duration_h"] = s.duration_s / 3600.0;
  d["duration_h_ci90"] = py::make_tuple(s.duration_ci90[0] / 3600.0, s.duration_ci90[1] / 3600.0);
  py::dict mass, ci;
  for (const auto& [sp, kg] : s.mass_kg) mass[py::str(sp)] = kg;
  for (const auto& [sp, c] : s.mass_kg_ci90) ci[py::str(sp)] = py::make_tuple(c[0], c[1]);
  d["mass_kg"] = mass;
  d["mass_kg_ci90"] = ci;
  return d;
}

py::dict ResultDict(const TraceResult& r) {
  py::dict out;
  py::list hyps;
  for (const auto& h : r.hypotheses) {
    py::dict d;
    d["probability"] = h.probability;
    d["label"] = h.label;
    d["log_evidence"] = h.log_evidence;
    d["misfit"] = h.misfit;
    d["modes"] = h.modes;
    d["velocity_factor"] = h.velocity_factor;
    d["velocity_factor_ci90"] =
        py::make_tuple(h.velocity_factor_ci90[0], h.velocity_factor_ci90[1]);
    d["dispersion_factor"] = h.dispersion_factor;
    d["dispersion_factor_ci90"] =
        py::make_tuple(h.dispersion_factor_ci90[0], h.dispersion_factor_ci90[1]);
    py::list srcs;
    for (const auto& s : h.sources) srcs.append(SourceDict(s));
    d["sources"] = srcs;
    hyps.append(d);
  }
  out["hypotheses"] = hyps;
  out["groups"] = py::cast(r.groups);
  out["indistinguishable"] = py::cast(r.indistinguishable);
  out["source_probability"] = py::cast(r.source_probability);
  out["credible_set_90"] = py::cast(r.credible_set_90);
  py::list ident;
  for (const auto& i : r.identifiability) {
    py::dict d;
    d["parameter"] = i.parameter;
    d["estimate"] = i.estimate;
    d["posterior_sd"] = i.posterior_sd;
    d["prior_sd"] = i.prior_sd;
    d["contraction"] = i.contraction;
    d["status"] = i.status;
    ident.append(d);
  }
  out["identifiability"] = ident;
  py::list next;
  for (const auto& n : r.next_samples) {
    py::dict d;
    if (n.IsPoint()) {  // a river point, as in the JSON
      d["reach"] = n.reach;
      d["km"] = n.km;
    } else {
      d["station"] = n.station;
    }
    d["time"] = FormatIsoTime(n.time_s);
    d["expected_information_nats"] = n.expected_information_nats;
    d["within_window"] = n.within_window;
    if (std::isfinite(n.team_distance_km)) d["team_distance_km"] = n.team_distance_km;
    py::dict pred;
    for (const auto& [label, m] : n.predictions) pred[py::str(label)] = py::cast(m);
    d["predictions"] = pred;
    next.append(d);
  }
  out["next_samples"] = next;
  const TraceSummary& s = r.summary;
  py::dict sum;
  sum["observations"] = s.num_observations;
  sum["stations"] = s.num_stations;
  sum["points"] = s.num_points;
  sum["species"] = py::cast(s.species);
  sum["window_start"] = FormatIsoTime(s.window_start_s);
  sum["window_end"] = FormatIsoTime(s.window_end_s);
  sum["hydraulics_date"] = s.hydraulics_date;
  sum["candidates"] = s.num_candidates;
  sum["kernel_points"] = s.num_kernel_points;
  sum["fits"] = s.num_fits;
  sum["evaluations"] = s.num_evaluations;
  sum["noise_scale"] = s.noise_scale;
  sum["kernel_s"] = s.kernel_seconds;
  sum["fit_s"] = s.fit_seconds;
  sum["unobservable"] = py::cast(s.unobservable);
  sum["warnings"] = py::cast(s.warnings);
  sum["report"] = s.BriefReport();
  out["summary"] = sum;
  out["elapsed_s"] = r.elapsed_s;
  out["json"] = TraceResultJson(r);
  out["table"] = TraceResultTable(r);
  return out;
}

}  // namespace

void BindTracing(py::module_& m) {
  py::class_<KernelCache, std::shared_ptr<KernelCache>>(
      m, "KernelCache",
      "Response kernels kept between traces (a trace session's): reused while the network, "
      "hydraulics date, season, species, kernel options and sampling points stay the same.")
      .def(py::init<>())
      .def_property_readonly("hits", &KernelCache::hits, "Traces that reused the kernels.")
      .def_property_readonly("misses", &KernelCache::misses, "Traces that built them.")
      .def("clear", &KernelCache::Clear, "Drops the kernels held.");
  m.def(
      "check_observations",
      [](const Network& net, const std::vector<double>& time_s,
         const std::vector<std::string>& station, const std::vector<std::string>& species,
         const std::vector<double>& value, const std::string& label, const std::vector<int>& lines,
         const std::vector<std::string>& reach, const std::vector<double>& km) {
        CheckObservationsAgainst(
            net, MakeObservations(time_s, station, species, value, label, lines, reach, km));
      },
      py::arg("network"), py::arg("time_s"), py::arg("station"), py::arg("species"),
      py::arg("value"), py::arg("label"), py::arg("lines"),
      py::arg("reach") = std::vector<std::string>{}, py::arg("km") = std::vector<double>{});
  m.def(
      "parse_iso_time",
      [](const std::string& text) {
        double t;
        if (!ParseIsoTime(text, &t)) throw DataError("not an ISO-8601 time: '" + text + "'");
        return t;
      },
      py::arg("text"));
  m.def("format_iso_time", &FormatIsoTime, py::arg("epoch_s"));
  m.def(
      "run_scenario",
      [](const Network& net, const std::string& text, const std::string& file_name) {
        const Scenario sc = ParseScenario(text, file_name, net);
        ScenarioRun run;
        {
          py::gil_scoped_release release;
          run = RunScenario(net, sc);
        }
        std::vector<double> t;
        std::vector<std::string> iso, station, species;
        std::vector<double> value;
        for (const auto& o : run.observations) {
          t.push_back(o.time_s);
          iso.push_back(FormatIsoTime(o.time_s));
          station.push_back(o.station);
          species.push_back(o.species);
          value.push_back(o.value_mg_l);
        }
        py::dict d;
        d["time_s"] = t;
        d["time"] = iso;
        d["station"] = station;
        d["species"] = species;
        d["value"] = value;
        d["exact"] = run.exact_mg_l;
        PointColumns(run.observations, &d);
        d["start_date"] = run.start_date;
        d["days"] = run.days;
        d["relative_mass_error"] = run.relative_mass_error;
        d["csv"] = FormatObservationsCsv(run.observations);
        return d;
      },
      py::arg("network"), py::arg("text"), py::arg("file_name") = "<scenario>");
  m.def(
      "read_observations_csv",
      [](const std::string& path) {
        const ObservationSet set = ReadObservationsCsv(path);
        std::vector<double> t;
        std::vector<std::string> station, species;
        std::vector<double> value;
        std::vector<int> line;
        for (const auto& o : set.rows) {
          t.push_back(o.time_s);
          station.push_back(o.station);
          species.push_back(o.species);
          value.push_back(o.value_mg_l);
          line.push_back(o.line);
        }
        py::dict d;
        d["line"] = line;
        d["time_s"] = t;
        d["station"] = station;
        d["species"] = species;
        d["value"] = value;
        PointColumns(set.rows, &d);
        return d;
      },
      py::arg("path"));
  m.def(
      "load_tracing_priors",
      [](const std::string& path) {
        const TracingPriors p = LoadTracingPriors(path);
        py::dict d;
        d["file"] = p.file;
        d["reference_species"] = p.reference_species;
        d["mass_min_kg"] = p.mass_min_kg;
        d["mass_max_kg"] = p.mass_max_kg;
        d["duration_min_h"] = p.duration_min_s / 3600.0;
        d["duration_max_h"] = p.duration_max_s / 3600.0;
        d["p_no_release"] = p.p_no_release;
        d["p_sources"] = p.p_sources;
        d["p_unregistered"] = p.p_unregistered;
        return d;
      },
      py::arg("path"));
  m.def(
      "trace",
      [](const Network& net, const std::vector<double>& time_s,
         const std::vector<std::string>& station, const std::vector<std::string>& species,
         const std::vector<double>& value, const std::string& label, const std::vector<int>& lines,
         const std::string& priors_path, double start_s, double end_s, int max_sources,
         double noise, const std::vector<std::string>& trace_species, bool unregistered,
         const std::string& date, int threads, double within_h,
         const std::vector<std::string>& reach, const std::vector<double>& km,
         const std::string& team_at, double team_speed_kmh,
         std::shared_ptr<KernelCache> kernel_cache, double kernel_horizon_round_h) {
        const ObservationSet obs =
            MakeObservations(time_s, station, species, value, label, lines, reach, km);
        TraceOptions o;
        o.kernel_cache = std::move(kernel_cache);
        o.kernel_horizon_round_s = kernel_horizon_round_h * 3600.0;
        o.recommend_within_s = within_h * 3600.0;  // NaN: each station's best time
        if (!team_at.empty()) CheckTeamAt(net, team_at, "team_at");
        o.team_at = team_at;
        o.team_speed_kmh = team_speed_kmh;
        o.priors = LoadTracingPriors(priors_path);
        o.start_s = start_s;
        o.end_s = end_s;
        o.max_sources = max_sources;
        o.noise_relative = noise;
        o.species = trace_species;
        o.unregistered = unregistered;
        o.date = date;
        o.num_threads = threads;
        TraceResult r;
        {
          py::gil_scoped_release release;
          r = Trace(net, obs, o);
        }
        return ResultDict(r);
      },
      py::arg("network"), py::arg("time_s"), py::arg("station"), py::arg("species"),
      py::arg("value"), py::arg("label"), py::arg("lines"), py::arg("priors"), py::arg("start_s"),
      py::arg("end_s"), py::arg("max_sources"), py::arg("noise"), py::arg("species_traced"),
      py::arg("unregistered"), py::arg("date"), py::arg("threads"),
      py::arg("within_h") = std::numeric_limits<double>::quiet_NaN(),
      py::arg("reach") = std::vector<std::string>{}, py::arg("km") = std::vector<double>{},
      py::arg("team_at") = std::string(), py::arg("team_speed_kmh") = 30.0,
      py::arg("kernel_cache") = std::shared_ptr<KernelCache>(),
      py::arg("kernel_horizon_round_h") = 0.0);
  m.def(
      "release_history",
      [](const Network& net, const std::vector<double>& time_s,
         const std::vector<std::string>& station, const std::vector<std::string>& species,
         const std::vector<double>& value, const std::string& label, const std::vector<int>& lines,
         const std::string& source, double start_s, double end_s, double bin_h,
         const std::string& regularization, const std::string& alpha_rule, double noise,
         const std::string& date, const std::vector<std::string>& reach,
         const std::vector<double>& km) {
        const ObservationSet obs =
            MakeObservations(time_s, station, species, value, label, lines, reach, km);
        HistoryOptions o;
        o.source_id = source;
        o.start_s = start_s;
        o.end_s = end_s;
        o.bin_s = bin_h * 3600.0;
        o.regularization = regularization;
        o.alpha_rule = alpha_rule;
        o.noise_relative = noise;
        o.date = date;
        HistoryResult r;
        {
          py::gil_scoped_release release;
          r = ReconstructHistory(net, obs, o);
        }
        py::dict d;
        d["source"] = r.source_id;
        d["regularization"] = r.regularization;
        d["alpha_rule"] = r.alpha_rule;
        d["bin_h"] = r.bin_s / 3600.0;
        std::vector<std::string> iso;
        for (double t : r.bin_start_s) iso.push_back(FormatIsoTime(t));
        d["bin_start"] = iso;
        d["bin_start_s"] = r.bin_start_s;
        py::list series;
        for (const auto& s : r.series) {
          py::dict e;
          e["species"] = s.species;
          e["load_kg_h"] = s.load_kg_h;
          e["total_kg"] = s.total_kg;
          e["alpha"] = s.alpha;
          e["chi2"] = s.chi2;
          e["num_data"] = s.num_data;
          e["curve_alpha"] = s.curve_alpha;
          e["curve_chi2"] = s.curve_chi2;
          e["curve_seminorm"] = s.curve_seminorm;
          e["corner_index"] = s.corner_index;
          series.append(e);
        }
        d["series"] = series;
        d["elapsed_s"] = r.elapsed_s;
        return d;
      },
      py::arg("network"), py::arg("time_s"), py::arg("station"), py::arg("species"),
      py::arg("value"), py::arg("label"), py::arg("lines"), py::arg("source"), py::arg("start_s"),
      py::arg("end_s"), py::arg("bin_h"), py::arg("regularization"), py::arg("alpha_rule"),
      py::arg("noise"), py::arg("date"), py::arg("reach") = std::vector<std::string>{},
      py::arg("km") = std::vector<double>{});
  m.def(
      "solve_regularized",
      [](const std::vector<double>& G, int rows, int cols, const std::vector<double>& d,
         const std::vector<double>& sigma, const std::string& kind, int order,
         const std::string& alpha_rule, const std::vector<double>& alphas) {
        RegularizationOptions o;
        o.kind = kind;
        o.order = order;
        o.alpha_rule = alpha_rule;
        o.alphas = alphas;
        const RegularizedSolution s = SolveRegularized(G, rows, cols, d, sigma, o);
        py::dict out;
        out["x"] = s.x;
        out["alpha"] = s.alpha;
        out["chi2"] = s.chi2;
        out["seminorm"] = s.seminorm;
        out["curve_alpha"] = s.curve_alpha;
        out["curve_chi2"] = s.curve_chi2;
        out["curve_seminorm"] = s.curve_seminorm;
        out["corner_index"] = s.corner_index;
        return out;
      },
      py::arg("G"), py::arg("rows"), py::arg("cols"), py::arg("d"), py::arg("sigma"),
      py::arg("kind") = "tikhonov", py::arg("order") = 2, py::arg("alpha_rule") = "discrepancy",
      py::arg("alphas") = std::vector<double>{});
}

}  // namespace qingshui::python
