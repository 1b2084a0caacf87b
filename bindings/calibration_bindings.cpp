// Python face of qingshui::calibration: OTIS-P estimation, network calibration, load
// allocation and apportionment. Thin: converts the C++ results to dicts and numpy arrays;
// qingshui/calibration.py turns them into DataFrames.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "qingshui/calibration/allocation.h"
#include "qingshui/calibration/apportion.h"
#include "qingshui/calibration/calibrate.h"
#include "qingshui/calibration/otisp.h"
#include "qingshui/core/network.h"
#include "qingshui/core/otis.h"

namespace py = pybind11;

namespace qingshui::python {

namespace {

py::dict Fit(const calibration::FitResult& f) {
  py::dict d;
  d["names"] = f.names;
  d["initial"] = f.initial;
  d["estimate"] = f.estimate;
  d["std_error"] = f.std_error;
  d["at_bound"] = f.at_bound;
  d["correlation"] = f.correlation;
  d["covariance"] = f.covariance;
  d["covariance_ok"] = f.covariance_ok;
  d["covariance_message"] = f.covariance_message;
  d["sum_of_squares"] = f.sum_of_squares;
  d["residual_sd"] = f.residual_sd;
  d["degrees_of_freedom"] = f.degrees_of_freedom;
  d["converged"] = f.converged;
  d["termination"] = f.termination;
  d["iterations"] = f.iterations;
  d["model_calls"] = f.model_calls;
  d["report"] = f.BriefReport();
  return d;
}

}  // namespace

void BindCalibration(py::module_& m) {
  m.def(
      "estimate_otis",
      [](const std::string& deck_dir) {
        const OtisDeck deck = ReadOtisDeck(deck_dir);
        calibration::OtisEstimation est;
        {
          py::gil_scoped_release release;
          est = calibration::EstimateOtisParameters(deck);
        }
        py::list reaches;
        for (const auto& r : est.reaches) {
          py::dict d = Fit(r.fit);
          d["reach"] = r.reach + 1;
          d["first_reach"] = r.first_reach + 1;
          d["where"] = r.where;
          d["observed"] = r.observed;
          d["predicted"] = r.predicted;
          reaches.append(d);
        }
        py::dict out;
        out["reaches"] = reaches;
        out["estimates_csv"] = calibration::FormatOtisEstimates(est);
        out["report"] = est.BriefReport();
        return out;
      },
      py::arg("deck_dir"), "OTIS-P estimation of a deck (data.inp, star.inp), reach by reach.");

  m.def(
      "calibrate_file",
      [](const Network& net, const std::string& path) {
        std::string named;
        const calibration::CalibrationProblem pb = calibration::ReadCalibrationFile(path, &named);
        calibration::CalibrationResult r;
        {
          py::gil_scoped_release release;
          r = calibration::Calibrate(net, pb);
        }
        py::dict d = Fit(r.fit);
        py::list kinds, reaches, species, lower, upper;
        for (const auto& p : r.parameters) {
          kinds.append(calibration::ToString(p.kind));
          reaches.append(p.reach);
          species.append(p.species);
          lower.append(p.lower);
          upper.append(p.upper);
        }
        d["kind"] = kinds;
        d["reach"] = reaches;
        d["species"] = species;
        d["lower"] = lower;
        d["upper"] = upper;
        std::vector<double> t, obs;
        std::vector<std::string> st, sp;
        for (const auto& o : r.observations) {
          t.push_back(o.time_s);
          st.push_back(o.station);
          sp.push_back(o.species);
          obs.push_back(o.value_mg_l);
        }
        d["obs_time_s"] = t;
        d["obs_station"] = st;
        d["obs_species"] = sp;
        d["observed"] = obs;
        d["simulated"] = r.simulated_mg_l;
        d["weight"] = r.weights;
        d["start_date"] = pb.simulation.start_date;
        d["report"] = r.BriefReport();
        return d;
      },
      py::arg("network"), py::arg("path"), "Calibrate a network with a calibration file (YAML).");

  m.def(
      "allocate_file",
      [](const Network& net, const std::string& path, int scenarios, int verify,
         double probability) {
        calibration::AllocationProblem p = calibration::ReadAllocationFile(path);
        if (scenarios > 0) p.scenarios = scenarios;
        if (verify >= 0) p.verification_scenarios = verify;
        if (probability > 0) p.probability = probability;
        calibration::AllocationResult r;
        {
          py::gil_scoped_release release;
          r = calibration::Allocate(net, p);
        }
        py::dict d;
        d["limits_csv"] = calibration::FormatLimits(r);
        d["targets_csv"] = calibration::FormatTargets(r);
        d["feasible"] = r.feasible;
        d["message"] = r.message;
        d["notes"] = r.notes;
        d["objective"] = r.objective;
        d["objective_unit"] = r.objective_unit;
        d["probability"] = p.probability;
        d["date"] = p.date;
        d["scenarios"] = r.scenarios;
        d["discarded"] = r.discarded;
        d["in_sample_probability"] = r.in_sample_probability;
        d["verification_runs"] = r.verification_runs;
        d["verification_met"] = r.verification_met;
        d["verified_probability"] = r.verified_probability;
        d["verified_interval"] = py::make_tuple(r.verified_low, r.verified_high);
        d["current_probability"] = r.current_probability;
        d["max_linearization_error_mg_l"] = r.max_linearization_error_mg_l;
        d["report"] = r.BriefReport();
        return d;
      },
      py::arg("network"), py::arg("path"), py::arg("scenarios") = -1, py::arg("verify") = -1,
      py::arg("probability") = -1.0, "Load allocation from an allocation file (YAML).");

  m.def(
      "apportion",
      [](const Network& net, const std::string& date, int days, bool steady, double time_step_s,
         double output_interval_s, const std::vector<std::string>& only,
         const std::string& season) {
        hydro::SimulationOptions o;
        o.start_date = date;
        o.days = days;
        o.time_step_s = time_step_s;
        o.output_interval_s = output_interval_s;
        o.season = season;
        calibration::Apportionment a;
        {
          py::gil_scoped_release release;
          hydro::Simulation sim = hydro::BuildSimulation(net, o);
          sim.transport_options.num_threads = 1;
          calibration::ApportionOptions ao;
          ao.steady_state = steady;
          ao.only = only;
          a = calibration::Apportion(sim, ao);
        }
        const py::ssize_t nc = static_cast<py::ssize_t>(a.contributors.size()), nt = a.num_times(),
                          ns = static_cast<py::ssize_t>(a.stations.size()),
                          nk = static_cast<py::ssize_t>(a.species.size());
        py::array_t<double> c({nc, nt, ns, nk});
        std::copy(a.contribution_g_m3.begin(), a.contribution_g_m3.end(), c.mutable_data());
        py::array_t<double> total({nt, ns, nk}), rest({nt, ns, nk});
        std::copy(a.total_g_m3.begin(), a.total_g_m3.end(), total.mutable_data());
        std::copy(a.rest_g_m3.begin(), a.rest_g_m3.end(), rest.mutable_data());
        py::dict d;
        d["contributors"] = a.contributors;
        d["stations"] = a.stations;
        d["species"] = a.species;
        d["times_s"] = a.times_s;
        d["contribution"] = c;
        d["total"] = total;
        d["rest"] = rest;
        d["max_closure_error"] = a.max_closure_error;
        d["reconciled"] = a.reconciled;
        return d;
      },
      py::arg("network"), py::arg("date"), py::arg("days") = 1, py::arg("steady") = false,
      py::arg("time_step_s") = 1800.0, py::arg("output_interval_s") = 3600.0,
      py::arg("only") = std::vector<std::string>{}, py::arg("season") = "",
      "Contribution of each source to each station (Euler decomposition, see apportion.h).");
}

}  // namespace qingshui::python
