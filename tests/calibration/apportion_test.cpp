// Source apportionment. Physics checked: for a conservative species at steady state below
// all inflows, each contributor's share is its flux over the flow, Q_j C_j / Q (complete
// mixing), to the solver's tolerance; the contributions add up to the simulated
// concentration (Euler's theorem for the homogeneous-of-degree-one transport map) before
// any reconciliation to a closure error far below the solver's own accuracy, in steady and
// time-stepped runs; a source's contribution doubles when its load doubles.
#include "qingshui/calibration/apportion.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "qingshui/core/error.h"
#include "test_paths.h"

namespace qingshui::calibration {
namespace {

constexpr const char* kRiver = R"(format: qingshui-network
version: 1
name: apportionment test river
species:
  - {id: F, name_zh: 氟化物, name_en: fluoride, decay_per_day_20c: 0}
  - {id: COD, name_zh: 化学需氧量, name_en: chemical oxygen demand, decay_per_day_20c: 0.3}
rivers:
  - {id: main, name_zh: 主河, name_en: Main river}
  - {id: trib, name_zh: 支流, name_en: Tributary}
reaches:
  - id: upper
    name_zh: 上游
    name_en: upper
    river: main
    length_km: 12
    segment_length_m: 500
    downstream: lower
    geometry: {bottom_width_m: 10, side_slope: 1, manning_n: 0.03, bed_slope: 0.001}
    headwater:
      dry: {flow_m3s: 0.8, concentration_mg_l: {F: 0.5, COD: 12}}
  - id: side
    name_zh: 支流
    name_en: tributary
    river: trib
    length_km: 5
    segment_length_m: 500
    downstream: lower
    geometry: {bottom_width_m: 5, side_slope: 1, manning_n: 0.03, bed_slope: 0.002}
    headwater:
      dry: {flow_m3s: 0.3, concentration_mg_l: {F: 0.9, COD: 8}}
  - id: lower
    name_zh: 下游
    name_en: lower
    river: main
    start_km: 12
    length_km: 10
    segment_length_m: 500
    downstream: mouth
    geometry: {bottom_width_m: 12, side_slope: 1, manning_n: 0.03, bed_slope: 0.0008}
    storage: {area_ratio: 0.2, exchange_per_s: 1.0e-4}
outlets:
  - {id: mouth, name_zh: 河口, name_en: mouth}
sources:
  - {id: a, name_zh: 甲厂, name_en: plant a, src: "E: test", kind: treatment_plant, reach: upper, km: 3, design_flow_m3s: 0.2, effluent_mg_l: {F: 1.5, COD: 40}}
  - {id: b, name_zh: 乙厂, name_en: plant b, src: "E: test", kind: treatment_plant, reach: lower, km: 15, design_flow_m3s: 0.1, effluent_mg_l: {F: 3.0, COD: 60}}
stations:
  - {id: end, name_zh: 末端, name_en: end, src: "E: test", kind: assessment_section, reach: lower, km: 21.5, sampling_interval_h: 4}
  - {id: mid, name_zh: 中间, name_en: middle, src: "E: test", kind: assessment_section, reach: lower, km: 13, sampling_interval_h: 4}
)";

hydro::Simulation Sim(const Network& net, int days) {
  hydro::SimulationOptions o;
  o.start_date = "2024-04-01";
  o.days = days;
  o.time_step_s = 900;
  o.output_interval_s = 3600;
  hydro::Simulation sim = hydro::BuildSimulation(net, o);
  sim.transport_options.num_threads = 1;
  return sim;
}

int Find(const std::vector<std::string>& v, const std::string& id) {
  return static_cast<int>(std::find(v.begin(), v.end(), id) - v.begin());
}

TEST(Apportion, ConservativeSharesAreFluxOverFlowAtSteadyState) {
  const Network net = ParseNetwork(kRiver, "river.yaml");
  const hydro::Simulation sim = Sim(net, 1);
  ApportionOptions o;
  o.steady_state = true;
  const Apportionment a = Apportion(sim, o);
  const int end = Find(a.stations, "end"), f = Find(a.species, "F");
  const double q = 0.8 + 0.3 + 0.2 + 0.1;
  const std::map<std::string, double> flux = {{"headwater:upper", 0.8 * 0.5},
                                              {"headwater:side", 0.3 * 0.9},
                                              {"a", 0.2 * 1.5},
                                              {"b", 0.1 * 3.0}};
  // The steady solver stops at a relative change of 1e-11 per iteration while converging
  // at a rate of ~0.9 per iteration on this grid: ~1e-9 relative is what it delivers.
  const double tol = 1e-8;
  EXPECT_NEAR(a.Total(0, end, f), (0.4 + 0.27 + 0.3 + 0.3) / q, tol);
  for (const auto& [id, j] : flux) {
    const int c = Find(a.contributors, id);
    ASSERT_LT(c, static_cast<int>(a.contributors.size())) << id;
    EXPECT_NEAR(a.Contribution(c, 0, end, f), j / q, tol) << id;
  }
  std::printf("steady closure before reconciliation: %.2e\n", a.max_closure_error);
  EXPECT_LT(a.max_closure_error, 1e-8);
}

TEST(Apportion, ContributionsAddUpInATimeSteppedRunAndScaleWithTheLoad) {
  Network net = ParseNetwork(kRiver, "river.yaml");
  ApportionOptions o;
  const Apportionment a = Apportion(Sim(net, 1), o);
  std::printf("time-stepped closure before reconciliation: %.2e\n", a.max_closure_error);
  EXPECT_LT(a.max_closure_error, 1e-6);
  const int mid = Find(a.stations, "mid"), cod = Find(a.species, "COD"),
            ca = Find(a.contributors, "a");
  for (int t = 0; t < a.num_times(); ++t) {
    double sum = 0;
    for (size_t c = 0; c < a.contributors.size(); ++c)
      sum += a.Contribution(static_cast<int>(c), t, mid, cod);
    EXPECT_NEAR(sum, a.Total(t, mid, cod), 1e-12 * a.Total(t, mid, cod));
  }
  // Plant a's load doubled: its contribution doubles, up to the flux limiter's
  // nonlinearity (the map is homogeneous in all forcing together, not in one source's;
  // measured 1.1e-4 relative here).
  net.sources[0].effluent_mg_l["COD"] *= 2;
  const Apportionment b = Apportion(Sim(net, 1), o);
  const int t = a.num_times() - 1;
  EXPECT_NEAR(b.Contribution(ca, t, mid, cod), 2 * a.Contribution(ca, t, mid, cod),
              1e-3 * a.Contribution(ca, t, mid, cod));
}

TEST(Apportion, DefaultNetworkSteadyStateClosesAndIsQuick) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  hydro::SimulationOptions so;
  so.start_date = "2024-05-15";
  hydro::Simulation sim = hydro::BuildSimulation(net, so);
  sim.transport_options.num_threads = 1;
  ApportionOptions o;
  o.steady_state = true;
  const auto t0 = std::chrono::steady_clock::now();
  const Apportionment a = Apportion(sim, o);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("default network, %zu contributors, steady: closure %.2e, %.2f s\n",
              a.contributors.size(), a.max_closure_error, s);
  EXPECT_LT(a.max_closure_error, 1e-6);
  const int z = Find(a.stations, "zhangliuzhuang");
  for (size_t k = 0; k < a.species.size(); ++k) {
    for (size_t c = 0; c < a.contributors.size(); ++c) {
      EXPECT_GE(a.Contribution(static_cast<int>(c), 0, z, static_cast<int>(k)),
                -1e-9 * a.Total(0, z, static_cast<int>(k)))
          << a.contributors[c] << " " << a.species[k];
    }
  }
  ApportionOptions bad;
  bad.only = {"no_such_source"};
  EXPECT_THROW(Apportion(sim, bad), ConfigError);
}

}  // namespace
}  // namespace qingshui::calibration
