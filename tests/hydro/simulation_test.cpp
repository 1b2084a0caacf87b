// Water-quality runs on the default network. Physics checked: the sources' mass enters
// exactly once whether it rides in the lateral inflow or as separate point loads; a
// release delivers exactly its mass; the run conserves mass to round-off, stays
// non-negative and finite; a conservative species stays between its inputs.
#include "qingshui/hydro/simulation.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
#include <vector>

#include "qingshui/core/error.h"
#include "test_paths.h"

namespace qingshui::hydro {
namespace {

const Network& Default() {
  static const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  return net;
}

TEST(Simulation, SourceLoadsCarryExactlyTheMassTheLateralInflowWouldHave) {
  const Network& net = Default();
  const NetworkGrid grid = BuildGrid(net);
  DayOptions mixed, apart;
  mixed.date = apart.date = "2024-04-15";
  apart.sources_as_loads = true;
  const NetworkHydraulics a = SteadyHydraulics(net, grid, mixed);
  const NetworkHydraulics b = SteadyHydraulics(net, grid, apart);
  const int ns = static_cast<int>(net.species.size());
  std::vector<double> from_loads(static_cast<size_t>(grid.size()) * ns, 0.0);
  int active_with_mass = 0;
  for (const auto& s : b.sources) {
    active_with_mass += !s.loads.empty();
    for (const auto& l : s.loads) from_loads[l.segment * ns + l.species] += l.g_s;
  }
  EXPECT_GT(active_with_mass, 5);
  for (int i = 0; i < grid.size(); ++i) {
    const double q = a.point_inflow_m3s[i] + a.diffuse_inflow_m3s[i];
    EXPECT_EQ(q, b.point_inflow_m3s[i] + b.diffuse_inflow_m3s[i]) << "water must not change";
    for (int k = 0; k < ns; ++k) {
      const double total = a.lateral_concentration_g_m3[i * ns + k] * q;
      const double rest = b.lateral_concentration_g_m3[i * ns + k] * q;
      EXPECT_NEAR(total, rest + from_loads[i * ns + k], 1e-12 * std::max(1.0, total)) << i;
    }
  }
}

TEST(Simulation, TwoDryDaysConserveMassAndStayWithinTheInputs) {
  SimulationOptions o;
  o.start_date = "2024-04-15";
  o.days = 2;
  o.time_step_s = 1800;
  const Simulation sim = BuildSimulation(Default(), o);
  ASSERT_EQ(sim.station_ids.size(), Default().stations.size());
  const transport::TransportResult r = RunSimulation(sim);
  EXPECT_LT(r.summary.max_relative_mass_error, 1e-10) << r.summary.BriefReport();
  EXPECT_EQ(r.num_times, 49);
  double max_input = 0.0;
  const int k_f = static_cast<int>(std::find(sim.species.begin(), sim.species.end(), "F") -
                                   sim.species.begin());
  for (const auto& s : Default().sources) {
    auto it = s.effluent_mg_l.find("F");
    if (it != s.effluent_mg_l.end()) max_input = std::max(max_input, it->second);
  }
  for (const auto& r2 : Default().reaches) {
    for (const auto& [season, hw] : r2.headwater) {
      auto it = hw.concentration_mg_l.find("F");
      if (it != hw.concentration_mg_l.end()) max_input = std::max(max_input, it->second);
    }
  }
  for (int t = 0; t < r.num_times; ++t) {
    for (int s = 0; s < r.num_stations; ++s) {
      for (int k = 0; k < r.num_species; ++k) {
        const double c = r.StationConcentration(0, t, s, k);
        ASSERT_TRUE(std::isfinite(c));
        ASSERT_GE(c, 0.0);
        // Fluoride is conservative in the network: no value above the largest input.
        if (k == k_f) ASSERT_LE(c, max_input * (1 + 1e-12));
      }
    }
  }
}

TEST(Simulation, ReleaseDeliversExactlyItsMass) {
  SimulationOptions o;
  o.start_date = "2024-04-15";
  o.days = 1;
  o.steady_initial_state = false;
  Simulation sim = BuildSimulation(Default(), o);
  const double before = RunSimulation(sim).summary.mass_balance[0].point_load_g;
  sim.problem.members[0].loads.push_back(
      ReleaseLoad(sim, "fen_lower", 40.0, 0, 3 * 3600.0, 2 * 3600.0, 5.0e5));
  const transport::TransportResult r = RunSimulation(sim);
  EXPECT_NEAR(r.summary.mass_balance[0].point_load_g - before, 5.0e5, 1e-9 * 5.0e5);
  EXPECT_LT(r.summary.max_relative_mass_error, 1e-10);
}

// Issue #14: a release whose start and end fall inside time steps (the default 1800 s)
// enters with its whole mass and at the right time. The release runs alone in a member
// with clean boundaries; its centroid arrival time at each station it reaches is compared
// with a run on 120 s steps. That lag also holds the transport's own timing error over the
// reach (about -0.17 step at 1800 s steps, 5 km below the release in April, for releases on
// the step grid too), so the test demands that an off-grid release lags exactly as much as
// one on the step grid, to within 0.1 step. Before the loads were split around the
// advection halves a release inside one step entered at the step's midpoint: -0.33 against
// -0.17 steps here.
TEST(Simulation, ReleaseOffTheStepGridArrivesWithItsCentroid) {
  auto run = [](double dt, double start_s, double duration_s) {
    SimulationOptions o;
    o.start_date = "2024-04-15";
    o.days = 1;
    o.time_step_s = dt;
    o.output_interval_s = 1800.0;  // outputs shorten steps: keep them on the coarse grid
    o.steady_initial_state = false;
    Simulation sim = BuildSimulation(Default(), o);
    transport::Forcing alone;
    alone.boundaries = sim.problem.members[0].boundaries;
    for (auto& b : alone.boundaries) {
      for (auto& series : b.series) series = transport::TimeSeries::Constant(0.0);
    }
    alone.loads = {ReleaseLoad(sim, "fen_lower", 25.0, 0, start_s, duration_s, 5.0e5)};
    sim.problem.members = {alone};
    return RunSimulation(sim);
  };
  const double dt = 1800.0;
  // Lag (in steps) of the coarse run behind the 120 s run at every station the plume
  // reaches and leaves within the day.
  auto lags = [&](double start, double duration) {
    const transport::TransportResult coarse = run(dt, start, duration);
    const transport::TransportResult fine = run(120.0, start, duration);
    EXPECT_NEAR(coarse.summary.mass_balance[0].point_load_g, 5.0e5, 1e-9 * 5.0e5);
    EXPECT_LT(coarse.summary.max_relative_mass_error, 1e-10);
    std::vector<std::pair<int, double>> out;
    for (int q = 0; q < coarse.num_stations; ++q) {
      double m = 0, mt = 0, mf = 0, mtf = 0, peak = 0;
      for (int t = 0; t < coarse.num_times; ++t) {
        const double c = coarse.StationConcentration(0, t, q, 0);
        const double f = fine.StationConcentration(0, t, q, 0);
        m += c;
        mt += c * coarse.times_s[t];
        mf += f;
        mtf += f * fine.times_s[t];
        peak = std::max(peak, f);
      }
      const double last = fine.StationConcentration(0, fine.num_times - 1, q, 0);
      if (!(peak > 1e-3) || last > 1e-3 * peak) continue;
      out.push_back({q, (mt / m - mtf / mf) / dt});
    }
    return out;
  };
  const auto on_grid = lags(10800.0, 1800.0);
  ASSERT_GE(on_grid.size(), 1u);
  for (const auto& [start, duration] : {std::pair{11500.0, 1000.0}, std::pair{11500.0, 4500.0}}) {
    const auto off = lags(start, duration);
    ASSERT_EQ(off.size(), on_grid.size());
    for (size_t k = 0; k < off.size(); ++k) {
      std::printf("station %d: release %.0f s + %.0f s lags %+.3f steps, one on the grid %+.3f\n",
                  off[k].first, start, duration, off[k].second, on_grid[k].second);
      EXPECT_LT(std::fabs(off[k].second - on_grid[k].second), 0.1)
          << "station " << off[k].first << ", release " << start << " s + " << duration << " s";
    }
  }
}

TEST(Simulation, InvalidOptionsAreNamed) {
  SimulationOptions o;
  o.start_date = "2024-13-01";
  EXPECT_THROW(BuildSimulation(Default(), o), ConfigError);
  o.start_date = "2024-04-15";
  o.velocity_factor = 0;
  try {
    BuildSimulation(Default(), o);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("velocity_factor"), std::string::npos);
  }
}

}  // namespace
}  // namespace qingshui::hydro
