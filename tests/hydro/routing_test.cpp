// Unsteady routing (kinematic wave, implicit finite volumes).
// Physics checked:
//  - a single segment with Q = c A is a linear reservoir, dV/dt = I − kV (k = c/Δx): the
//    step response follows the backward-Euler solution exactly and converges to the
//    analytic I(1 − e^(−kt)) at first order in Δt;
//  - a channel of n such segments routes an impulse with exactly the first two moments of
//    the linear convection-diffusion equation (Hayami): mean delay L/c and variance
//    2 D L / c³ with D = c (Δx + c Δt)/2 — the scheme's numerical diffusion, which
//    Cunge (1969) matches to the river's Q/(2 T S);
//  - volume is conserved to round-off on a network with a junction, a level-pool lake,
//    losses and a bed that runs dry;
//  - a steady state stays steady; a small wave on a Manning channel travels at the
//    kinematic celerity dQ/dA (5/3 of the velocity in a wide rectangle);
//  - a lake held back by its rule stores its inflow, and releases once allowed.
#include "qingshui/hydro/routing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "qingshui/core/error.h"
#include "qingshui/hydro/channel.h"
#include "test_paths.h"

namespace qingshui::hydro {
namespace {

// A chain of n segments of length dx with Q = c A.
RoutingProblem LinearChannel(int n, double dx, double c) {
  RoutingProblem p;
  for (int i = 0; i < n; ++i) {
    p.downstream.push_back(i + 1 < n ? i + 1 : -1);
    p.length_m.push_back(dx);
    OutflowRelation r;
    r.kind = OutflowRelation::Kind::kLinear;
    r.celerity_ms = c;
    p.relation.push_back(r);
    p.initial_area_m2.push_back(0.0);
  }
  return p;
}

// Headwater inflow `q` into segment 0 during [t0, t1), nothing else.
StepForcing Pulse(int n, double t0, double t1, double q) {
  StepForcing f;
  std::vector<double> on(n, 0.0), off(n, 0.0);
  on[0] = q;
  f.times_s = {t0, t1};
  f.values = {on, off};
  if (t0 > 0) {
    f.times_s.insert(f.times_s.begin(), 0.0);
    f.values.insert(f.values.begin(), off);
  }
  return f;
}

TEST(Routing, SingleSegmentIsALinearReservoir) {
  const double dx = 1000.0, c = 0.5, k = c / dx, inflow = 2.0, t_end = 4.0 * 3600.0;
  auto max_error = [&](double dt) {
    RoutingProblem p = LinearChannel(1, dx, c);
    p.headwater_m3s = Pulse(1, 0.0, 1e30, inflow);
    p.end_time_s = t_end;
    RoutingOptions o;
    o.time_step_s = dt;
    const RoutedFlow r = Route(p, o);
    double err = 0.0;
    for (size_t m = 1; m < r.times_s.size(); ++m) {
      // Backward Euler: Q_m = I (1 − (1 + kΔt)^(−m)), exactly.
      const double be = inflow * (1.0 - std::pow(1.0 + k * dt, -static_cast<double>(m)));
      EXPECT_NEAR(r.Flow(static_cast<int>(m), 0), be, 1e-12 * inflow);
      err = std::max(err, std::abs(r.Flow(static_cast<int>(m), 0) -
                                   inflow * (1.0 - std::exp(-k * r.times_s[m]))));
    }
    return err;
  };
  const double e1 = max_error(600.0), e2 = max_error(300.0), e3 = max_error(150.0);
  // First order: halving Δt halves the error (ratio → 2 as kΔt → 0; kΔt = 0.3 here).
  EXPECT_NEAR(e1 / e2, 2.0, 0.15);
  EXPECT_NEAR(e2 / e3, 2.0, 0.1);
  // Leading error term of backward Euler for this ODE: max |e| ≈ (kΔt/2) I / e.
  EXPECT_NEAR(e3, 0.5 * k * 150.0 * inflow * std::exp(-1.0), 0.1 * e3);
}

TEST(Routing, ImpulseMomentsAreThoseOfConvectionDiffusionWithCungesDiffusion) {
  for (double dt : {60.0, 300.0}) {
    const int n = 40;
    const double dx = 250.0, c = 0.8, length = n * dx;
    RoutingProblem p = LinearChannel(n, dx, c);
    const double volume = 1000.0;  // m³ entering during the first step
    p.headwater_m3s = Pulse(n, 0.0, dt, volume / dt);
    p.end_time_s = 40.0 * length / c;  // long enough that the tail is below 1e-14
    RoutingOptions o;
    o.time_step_s = dt;
    const RoutedFlow r = Route(p, o);
    // Outflow volume in step m is centred at (m − ½)Δt, as the input at ½Δt.
    double m0 = 0.0, m1 = 0.0, m2 = 0.0;
    for (size_t m = 1; m < r.times_s.size(); ++m) {
      const double v = r.Flow(static_cast<int>(m), n - 1) * dt;
      const double t = r.times_s[m] - 0.5 * dt - 0.5 * dt;
      m0 += v;
      m1 += v * t;
      m2 += v * t * t;
    }
    const double mean = m1 / m0, var = m2 / m0 - mean * mean;
    const double d_num = c * (dx + c * dt) / 2.0;
    EXPECT_NEAR(m0 / volume, 1.0, 1e-12) << dt;
    EXPECT_NEAR(mean / (length / c), 1.0, 1e-10) << dt;
    EXPECT_NEAR(var / (2.0 * d_num * length / (c * c * c)), 1.0, 1e-9) << dt;
  }
}

TEST(Routing, VolumeIsConservedOnANetworkWithALakeLossesAndDrying) {
  // Two Manning reaches join into a third that drains into a lake and on to an outlet.
  // Reach A runs dry between waves (losses exceed its base flow).
  Reach a, b, m;
  a.geometry = {8.0, 1.5, 0.035, 0.003};
  b.geometry = {5.0, 0.0, 0.03, 0.002};
  m.geometry = {15.0, 2.0, 0.03, 0.001};
  RoutingProblem p;
  auto add = [&](const Reach* reach, int downstream, double dx) {
    p.downstream.push_back(downstream);
    p.length_m.push_back(dx);
    OutflowRelation r;
    r.kind = OutflowRelation::Kind::kReach;
    r.reach = reach;
    p.relation.push_back(r);
    p.initial_area_m2.push_back(0.0);
  };
  for (int i = 0; i < 10; ++i) add(&a, i < 9 ? i + 1 : 20, 500.0);    // 0-9
  for (int i = 10; i < 20; ++i) add(&b, i < 19 ? i + 1 : 20, 400.0);  // 10-19
  for (int i = 20; i < 30; ++i) add(&m, i + 1, 800.0);                // 20-29
  OutflowRelation lake;
  lake.kind = OutflowRelation::Kind::kLevelPool;
  lake.pool = LevelPool({{0.0, 1e6, 0.0}, {1.0, 1.2e6, 0.0}, {2.0, 1.5e6, 5.0}, {3.0, 2e6, 40.0}},
                        "test lake");
  p.downstream.push_back(30 + 1);
  p.length_m.push_back(1.0);
  p.relation.push_back(lake);
  p.initial_area_m2.push_back(lake.pool.Volume(1.5));                 // 30
  for (int i = 31; i < 35; ++i) add(&m, i < 34 ? i + 1 : -1, 800.0);  // 31-34
  const int n = 35;
  // Hourly hydrographs: a flood on A, a smaller one on B, losses everywhere.
  for (int h = 0; h <= 48; ++h) {
    std::vector<double> head(n, 0.0), lat(n, 0.0), loss(n, 0.0);
    head[0] = 0.05 + 20.0 * std::exp(-std::pow((h - 6) / 3.0, 2));
    head[10] = 0.5 + 5.0 * std::exp(-std::pow((h - 10) / 4.0, 2));
    for (int i = 0; i < n; ++i) loss[i] = i < 10 ? 0.01 : 0.002;
    lat[25] = h < 24 ? 0.3 : 0.0;
    p.headwater_m3s.times_s.push_back(3600.0 * h);
    p.headwater_m3s.values.push_back(head);
    p.lateral_inflow_m3s.times_s.push_back(3600.0 * h);
    p.lateral_inflow_m3s.values.push_back(lat);
    p.loss_m3s.times_s.push_back(3600.0 * h);
    p.loss_m3s.values.push_back(loss);
  }
  p.end_time_s = 72 * 3600.0;
  RoutingOptions o;
  o.time_step_s = 600.0;
  o.output_interval_s = 3600.0;
  const RoutedFlow r = Route(p, o);
  // Round-off of ~n × steps additions of terms as large as the inflow volume.
  const double bound = n * r.steps * std::numeric_limits<double>::epsilon();
  EXPECT_LE(r.relative_volume_error, bound) << r.BriefReport();
  EXPECT_GT(r.loss_volume_m3, 0.0);
  // Reach A's bed runs dry once the flood has passed (base flow 0.05 < losses 0.1).
  EXPECT_EQ(r.Flow(static_cast<int>(r.times_s.size()) - 1, 9), 0.0);
  for (double v : r.flow_m3s) EXPECT_TRUE(std::isfinite(v) && v >= 0.0);
  for (double v : r.area_m2) EXPECT_TRUE(std::isfinite(v) && v >= 0.0);
  std::cout << r.BriefReport();
}

TEST(Routing, SteadyStateStaysSteadyAndASmallWaveTravelsAtTheKinematicCelerity) {
  // Wide rectangle (b = 200 m): c = dQ/dA → (5/3) u.
  Reach wide;
  wide.geometry = {200.0, 0.0, 0.03, 0.0005};
  const int n = 50;
  const double dx = 500.0, q0 = 40.0;
  RoutingProblem p;
  for (int i = 0; i < n; ++i) {
    p.downstream.push_back(i + 1 < n ? i + 1 : -1);
    p.length_m.push_back(dx);
    OutflowRelation r;
    r.kind = OutflowRelation::Kind::kReach;
    r.reach = &wide;
    p.relation.push_back(r);
    p.initial_area_m2.push_back(NormalDepth(wide.geometry, q0).area_m2);
  }
  // 1% bump for one hour after an hour of steady inflow.
  const double bump = 0.01 * q0;
  std::vector<double> base(n, 0.0), up(n, 0.0);
  base[0] = q0;
  up[0] = q0 + bump;
  p.headwater_m3s.times_s = {0.0, 3600.0, 7200.0};
  p.headwater_m3s.values = {base, up, base};
  p.end_time_s = 30 * 3600.0;
  RoutingOptions o;
  o.time_step_s = 60.0;
  const RoutedFlow r = Route(p, o);
  for (int i = 0; i < n; ++i) EXPECT_NEAR(r.Flow(60, i) / q0, 1.0, 1e-12) << i;  // t = 1 h
  // Centroid of the outflow excess against the inflow's (at 1.5 h).
  double m0 = 0, m1 = 0;
  for (size_t m = 1; m < r.times_s.size(); ++m) {
    const double v = (r.Flow(static_cast<int>(m), n - 1) - q0) * o.time_step_s;
    m0 += v;
    m1 += v * (r.times_s[m] - 0.5 * o.time_step_s);
  }
  const SectionState s = NormalDepth(wide.geometry, q0);
  const double a = s.area_m2, h = 1e-6 * a;
  const double c = (ReachFlowFromArea(wide, a + h) - ReachFlowFromArea(wide, a - h)) / (2 * h);
  EXPECT_NEAR(c / s.velocity_ms, 5.0 / 3.0, 0.01);  // R ≈ h: 5/3 up to 2h/b
  const double travel = m1 / m0 - 1.5 * 3600.0 - 0.5 * o.time_step_s;
  // Exact for a linear channel; the 1% bump changes the celerity by ~(2/3)·1%.
  EXPECT_NEAR(travel / (n * dx / c), 1.0, 0.02) << travel;
}

TEST(Routing, LakeHeldBackByItsRuleStoresThenReleases) {
  RoutingProblem p;
  OutflowRelation lake;
  lake.kind = OutflowRelation::Kind::kLevelPool;
  lake.pool = LevelPool({{0.0, 1e6, 0.0}, {2.0, 1e6, 0.0}, {3.0, 1e6, 30.0}}, "test lake");
  p.downstream = {-1};
  p.length_m = {1.0};
  p.relation = {lake};
  p.initial_area_m2 = {lake.pool.VolumeForOutflow(2.0)};  // steady at 2 m³/s: 2.0667 m
  EXPECT_NEAR(lake.pool.Depth(p.initial_area_m2[0]), 2.0 + 2.0 / 30.0, 1e-12);
  p.headwater_m3s.times_s = {0.0};
  p.headwater_m3s.values = {{2.0}};
  // Class III not met on day 2: store.
  p.gate_open.times_s = {0.0, 86400.0, 2 * 86400.0};
  p.gate_open.values = {{1.0}, {0.0}, {1.0}};
  p.end_time_s = 4 * 86400.0;
  RoutingOptions o;
  o.time_step_s = 3600.0;
  const RoutedFlow r = Route(p, o);
  EXPECT_NEAR(r.Flow(24, 0), 2.0, 1e-9);  // steady on day 1
  for (int m = 25; m <= 48; ++m) EXPECT_EQ(r.Flow(m, 0), 0.0) << m;
  EXPECT_NEAR(r.Area(48, 0) - r.Area(24, 0), 2.0 * 86400.0, 1e-6);  // stored it all
  EXPECT_GT(r.Flow(49, 0), 2.0);                                    // released after
  EXPECT_LE(r.relative_volume_error, 1e-13);
}

TEST(Routing, LevelPoolTablesAreValidated) {
  EXPECT_THROW(LevelPool({{0.0, 1e6, 0.0}}, "one row"), ConfigError);
  EXPECT_THROW(LevelPool({{0.0, 1e6, 0.0}, {0.0, 1e6, 1.0}}, "flat depth"), ConfigError);
  EXPECT_THROW(LevelPool({{0.0, 1e6, 0.0}, {1.0, 1e6, 5.0}, {2.0, 1e6, 4.0}}, "falling outflow"),
               ConfigError);
  EXPECT_THROW(LevelPool({{0.0, 1e6, 1.0}, {1.0, 1e6, 5.0}}, "outflow at the bottom"), ConfigError);
  const LevelPool pool({{0.0, 1e6, 0.0}, {1.0, 2e6, 0.0}, {2.0, 2e6, 10.0}}, "ok");
  EXPECT_NEAR(pool.Volume(1.0), 1.5e6, 1e-6);  // trapezoid rule
  EXPECT_NEAR(pool.Volume(2.0), 3.5e6, 1e-6);
  EXPECT_NEAR(pool.Outflow(pool.VolumeForOutflow(5.0)), 5.0, 1e-9);
}

TEST(Routing, DefaultNetworkStartsSteadyAndConservesVolumeOverASupplementationRelease) {
  const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  const NetworkGrid grid = BuildGrid(net);
  // Three dry days; on the second the Xiaolangdi supplementation releases 5 m³/s for the
  // day (a scenario lever) instead of 0.5.
  std::vector<DayOptions> days(3);
  for (int d = 0; d < 3; ++d) days[d].date = "2024-04-1" + std::to_string(4 + d);
  days[1].point_inflows.push_back({"release", "sushui_middle", 48.0, 4.5, {}, false});
  RoutingOptions o;
  o.time_step_s = 1800.0;
  o.output_interval_s = 3 * 3600.0;
  NetworkHydraulics first;
  const RoutedFlow r = RouteDays(net, grid, days, o, &first);
  const Station* z = net.FindStation("zhangliuzhuang");
  const int iz = grid.SegmentAt(z->reach, z->km);
  // The first day (t ≤ 1 day) is steady at the steady flow.
  EXPECT_NEAR(r.Flow(8, iz), first.flow_m3s[iz], 1e-9 * first.flow_m3s[iz]);
  // The release raises the Sushui below Wenxi within the day, the lake buffers it.
  const int iw = grid.SegmentAt("sushui_middle", 60.0);
  EXPECT_GT(r.Flow(16, iw), first.flow_m3s[iw] + 3.0);
  const double bound = grid.size() * r.steps * std::numeric_limits<double>::epsilon();
  EXPECT_LE(r.relative_volume_error, bound) << r.BriefReport();
  std::cout << r.BriefReport();
}

}  // namespace
}  // namespace qingshui::hydro
