#include "qingshui/calibration/apportion.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "qingshui/core/error.h"

namespace qingshui::calibration {

namespace {

struct Contributor {
  std::string id;
  std::vector<int> loads;       // indices into the base forcing's loads
  std::vector<int> boundaries;  // indices into the base forcing's boundaries
};

std::vector<Contributor> Contributors(const hydro::Simulation& sim) {
  std::vector<Contributor> out;
  for (const auto& s : sim.sources) out.push_back({s.id, s.load_index, {}});
  const auto& base = sim.problem.members.front();
  for (size_t b = 0; b < base.boundaries.size(); ++b) {
    const int seg = base.boundaries[b].segment;
    out.push_back({"headwater:" + sim.grid.segments[seg].reach, {}, {static_cast<int>(b)}});
  }
  // Loads added after BuildSimulation (tracer releases) are one more contributor.
  std::vector<bool> owned(base.loads.size(), false);
  for (const auto& c : out) {
    for (int i : c.loads) owned[i] = true;
  }
  Contributor extra{"other_loads", {}, {}};
  for (size_t i = 0; i < owned.size(); ++i) {
    if (!owned[i]) extra.loads.push_back(static_cast<int>(i));
  }
  if (!extra.loads.empty()) out.push_back(extra);
  return out;
}

transport::Forcing Scaled(const transport::Forcing& base, const Contributor& c, double f) {
  transport::Forcing m = base;
  for (int i : c.loads) {
    for (double& v : m.loads[i].load_g_s.values) v *= f;
  }
  for (int b : c.boundaries) {
    for (auto& s : m.boundaries[b].series) {
      for (double& v : s.values) v *= f;
    }
  }
  // Initial states: RunSimulation recomputes each member's steady state (which scales with
  // f); an explicitly given initial state is the caller's and stays as it is.
  return m;
}

}  // namespace

bool ApportionOptions::IsValid(std::string* error) const {
  if (!(relative_step > 0 && relative_step < 0.1)) {
    if (error) *error = "relative_step: expected in (0, 0.1)";
    return false;
  }
  return true;
}

Apportionment Apportion(const hydro::Simulation& sim, const ApportionOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("apportionment options: " + error);
  const std::vector<Contributor> all = Contributors(sim);
  std::vector<Contributor> use;
  if (options.only.empty()) {
    use = all;
  } else {
    for (const auto& id : options.only) {
      auto it =
          std::find_if(all.begin(), all.end(), [&](const Contributor& c) { return c.id == id; });
      if (it == all.end()) {
        throw ConfigError("apportionment: '" + id +
                          "' is not a contributor on these dates (a source with mass, "
                          "diffuse:<reach> or headwater:<reach>)");
      }
      use.push_back(*it);
    }
  }
  const double h = options.relative_step;
  hydro::Simulation run = sim;
  const transport::Forcing base = sim.problem.members.front();
  // The steady solve (the result, or the initial state of a time-stepped run): defect
  // correction converges slowly on some grids (238 iterations on the test river) and its
  // lagged limiter can stall at round-off for a member, so allow more iterations and stop
  // at options.steady_tolerance.
  run.transport_options.max_steady_iterations =
      std::max(run.transport_options.max_steady_iterations, 5000);
  run.transport_options.steady_tolerance =
      std::max(run.transport_options.steady_tolerance, options.steady_tolerance);
  // The adaptive positivity check (TransportOptions::adaptive_implicit) decides per member
  // whether a step is redone sub-stepped: members 1 +- h could take different paths, which
  // is not homogeneous. The a priori sub-stepped scheme takes the same path for all.
  run.transport_options.adaptive_implicit = false;
  // Members are run in groups of at most seven (the base and three pairs): with the
  // solver as it stands a member's result changes (by ~1e-3 relative) once a run has eight
  // members or more, and the two members of a pair must be computed alike. Every group
  // holds the base, so the groups agree with each other.
  constexpr int kPairsPerRun = 3;
  const int nc_all = static_cast<int>(use.size());
  std::vector<transport::TransportResult> runs;
  for (int first = 0; first < std::max(nc_all, 1); first += kPairsPerRun) {
    run.problem.members = {base};
    for (int c = first; c < std::min(nc_all, first + kPairsPerRun); ++c) {
      run.problem.members.push_back(Scaled(base, use[c], 1 + h));
      run.problem.members.push_back(Scaled(base, use[c], 1 - h));
    }
    if (options.steady_state) {
      transport::TransportOptions o = run.transport_options;
      o.steady_state = true;
      runs.push_back(transport::TransportSolver(o).Run(run.problem));
    } else {
      runs.push_back(hydro::RunSimulation(run));
    }
  }
  const transport::TransportResult& r = runs.front();
  auto member = [&](int c, int sign, int t, int s, int k) {
    const transport::TransportResult& rr = runs[c / kPairsPerRun];
    const int m = 1 + 2 * (c % kPairsPerRun) + (sign > 0 ? 0 : 1);
    return rr.StationConcentration(m, t, s, k);
  };
  Apportionment a;
  for (const auto& c : use) a.contributors.push_back(c.id);
  a.stations = sim.station_ids;
  a.species = sim.species;
  a.times_s = r.times_s;
  const int nt = r.num_times, ns = r.num_stations, nk = r.num_species;
  const int nc = static_cast<int>(use.size());
  a.contribution_g_m3.assign(static_cast<size_t>(nc) * nt * ns * nk, 0.0);
  a.total_g_m3.assign(static_cast<size_t>(nt) * ns * nk, 0.0);
  a.rest_g_m3.assign(a.total_g_m3.size(), 0.0);
  for (int t = 0; t < nt; ++t) {
    for (int s = 0; s < ns; ++s) {
      for (int k = 0; k < nk; ++k) {
        const size_t at = (static_cast<size_t>(t) * ns + s) * nk + k;
        const double total = r.StationConcentration(0, t, s, k);
        a.total_g_m3[at] = total;
        double sum = 0;
        for (int c = 0; c < nc; ++c) {
          const double up = member(c, +1, t, s, k);
          const double down = member(c, -1, t, s, k);
          const double v = (up - down) / (2 * h);
          a.contribution_g_m3[a.Index(c, t, s, k)] = v;
          sum += v;
        }
        a.rest_g_m3[at] = total - sum;
      }
    }
  }
  if (options.only.empty()) {
    // Closure and reconciliation: the remainder is distributed in proportion to |c_j|.
    std::vector<double> peak(nk, 0.0);
    for (size_t i = 0; i < a.total_g_m3.size(); ++i) {
      peak[i % nk] = std::max(peak[i % nk], std::abs(a.total_g_m3[i]));
    }
    for (int t = 0; t < nt; ++t) {
      for (int s = 0; s < ns; ++s) {
        for (int k = 0; k < nk; ++k) {
          const size_t at = (static_cast<size_t>(t) * ns + s) * nk + k;
          const double rest = a.rest_g_m3[at];
          if (peak[k] > 0)
            a.max_closure_error = std::max(a.max_closure_error, std::abs(rest) / peak[k]);
          double weight = 0;
          for (int c = 0; c < nc; ++c) weight += std::abs(a.contribution_g_m3[a.Index(c, t, s, k)]);
          if (weight > 0) {
            for (int c = 0; c < nc; ++c) {
              double& v = a.contribution_g_m3[a.Index(c, t, s, k)];
              v += rest * std::abs(v) / weight;
            }
            a.rest_g_m3[at] = 0.0;
          }
        }
      }
    }
    a.reconciled = true;
  }
  return a;
}

std::string FormatApportionment(const Apportionment& a) {
  std::ostringstream o;
  o << std::setprecision(10) << "time_s,station,species,contributor,concentration_mg_l,share\n";
  const int nc = static_cast<int>(a.contributors.size());
  for (int t = 0; t < a.num_times(); ++t) {
    for (size_t s = 0; s < a.stations.size(); ++s) {
      for (size_t k = 0; k < a.species.size(); ++k) {
        const double total = a.Total(t, static_cast<int>(s), static_cast<int>(k));
        auto row = [&](const std::string& who, double v) {
          o << a.times_s[t] << "," << a.stations[s] << "," << a.species[k] << "," << who << "," << v
            << ",";
          if (total != 0) o << v / total;
          o << "\n";
        };
        for (int c = 0; c < nc; ++c)
          row(a.contributors[c], a.Contribution(c, t, static_cast<int>(s), static_cast<int>(k)));
        if (!a.reconciled)
          row("rest",
              a.rest_g_m3[(static_cast<size_t>(t) * a.stations.size() + s) * a.species.size() + k]);
        row("total", total);
      }
    }
  }
  return o.str();
}

}  // namespace qingshui::calibration
