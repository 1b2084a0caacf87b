// Verification of the transport engine against closed-form solutions. Each test states
// the physics it checks; tolerances follow from the method's second order (error ~ C
// dx^2 with the constant measured once on the coarsest grid, plus a margin) and are never
// fitted to pass.
#include "qingshui/core/transport.h"
#include "transport_fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "qingshui/core/error.h"

namespace qingshui::transport {
namespace {

constexpr double kPi = 3.14159265358979323846;

using fixtures::Channel;  // tests/transport_fixtures.h

void SetDecay(TransportProblem* p, double lambda, double lambda_s = 0.0) {
  for (auto& s : p->segments) {
    s.decay_per_s = {lambda};
    s.storage_decay_per_s = {lambda_s};
  }
}

UpstreamBoundary ConcentrationBoundary(TimeSeries series) {
  UpstreamBoundary b;
  b.segment = 0;
  b.kind = UpstreamBoundary::Kind::kConcentration;
  b.series = {series};
  return b;
}

double Centre(int i, double dx) { return (i + 0.5) * dx; }

using fixtures::StepResponse;  // tests/transport_fixtures.h

double MaxRelativeMassError(const TransportResult& r) {
  return r.summary.max_relative_mass_error;
}

// ---------------------------------------------------------------------------------------
// Physics: an instantaneous slug of mass M in an infinite channel spreads as a Gaussian
// of variance 2 D t centred at x0 + u t, and decays as exp(-lambda t):
// C = M / (A sqrt(4 pi D t)) exp(-(x - x0 - u t)^2 / (4 D t)) exp(-lambda t).
// We start from the Gaussian at t0 and compare at t0 + T.
struct SlugCase {
  double u = 0.5, D = 2.0, A = 2.0, lambda = 2e-4, mass = 1000.0, x0 = 300.0, t0 = 400.0,
         T = 1600.0, L = 2400.0;
  double Exact(double x, double t) const {
    return mass / (A * std::sqrt(4 * kPi * D * t)) *
           std::exp(-(x - x0 - u * t) * (x - x0 - u * t) / (4 * D * t)) * std::exp(-lambda * t);
  }
};

// Runs the slug with n segments and the time step at a fixed Courant number; returns
// the L1 error (relative to the exact L1 norm) and the mass-balance error.
std::pair<double, double> RunSlug(const SlugCase& c, int n, double courant) {
  double dx = c.L / n;
  TransportProblem p = Channel(n, dx, c.u * c.A, c.A, c.D);
  SetDecay(&p, c.lambda);
  p.members[0].initial_concentration_g_m3.resize(n);
  for (int i = 0; i < n; ++i) p.members[0].initial_concentration_g_m3[i] = c.Exact(Centre(i, dx), c.t0);
  p.members[0].boundaries = {ConcentrationBoundary(TimeSeries::Constant(0.0))};
  p.start_time_s = 0.0;
  p.end_time_s = c.T;
  p.time_step_s = courant * dx / c.u;
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  double err = 0, norm = 0;
  for (int i = 0; i < n; ++i) {
    double e = c.Exact(Centre(i, dx), c.t0 + c.T);
    err += std::fabs(r.Concentration(0, 1, i, 0) - e) * dx;
    norm += std::fabs(e) * dx;
  }
  return {err / norm, MaxRelativeMassError(r)};
}

TEST(TransportTest, GaussianSlugWithDecayMatchesClosedForm) {
  SlugCase c;
  auto [err, mass] = RunSlug(c, 480, 0.9);  // dx = 5 m, Peclet dx u / D = 1.25
  // Second order: with the constant measured in the convergence test (~0.8 per dx^2 in
  // relative L1 at dx = 5 m it is ~1e-3), 5e-3 leaves a factor-5 margin.
  EXPECT_LT(err, 5e-3);
  EXPECT_LT(mass, 1e-10);
}

// Physics: smooth solutions converge at second order in space and time. Halving dx and
// dt together (fixed Courant number) must divide the error by >= 2^1.8.
TEST(TransportTest, ObservedOrderIsAtLeast1Point8) {
  SlugCase c;
  std::vector<double> errors;
  for (int n : {240, 480, 960}) errors.push_back(RunSlug(c, n, 0.9).first);
  double p1 = std::log2(errors[0] / errors[1]);
  double p2 = std::log2(errors[1] / errors[2]);
  RecordProperty("order_240_480", std::to_string(p1));
  RecordProperty("order_480_960", std::to_string(p2));
  std::printf("slug L1 errors %.3e %.3e %.3e, observed orders %.3f %.3f\n", errors[0],
              errors[1], errors[2], p1, p2);
  EXPECT_GE(p1, 1.8);
  EXPECT_GE(p2, 1.8);
}

// Physics: Ogata-Banks. A continuous injection C0 at x = 0 into a clean semi-infinite
// channel: C = C0/2 [erfc((x-ut)/2sqrt(Dt)) + exp(ux/D) erfc((x+ut)/2sqrt(Dt))].
TEST(TransportTest, OgataBanksContinuousInjection) {
  const double u = 0.4, D = 1.5, A = 1.0, dx = 4.0, L = 2000.0, T = 3000.0, c0 = 10.0;
  int n = static_cast<int>(L / dx);
  TransportProblem p = Channel(n, dx, u * A, A, D);
  p.members[0].boundaries = {ConcentrationBoundary(TimeSeries::Constant(c0))};
  p.end_time_s = T;
  p.time_step_s = 20.0;  // Courant 2.0: each half step is sub-stepped to <= 0.75 (reported)
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  EXPECT_EQ(r.summary.max_advection_substeps, 2);
  EXPECT_EQ(r.summary.num_steps, 150);
  double max_err = 0, min_c = 1e300;
  for (int i = 0; i < n; ++i) {
    double e = StepResponse(Centre(i, dx), T, u, D, 0.0, c0);
    max_err = std::max(max_err, std::fabs(r.Concentration(0, 1, i, 0) - e));
    min_c = std::min(min_c, r.Concentration(0, 1, i, 0));
  }
  // The front is ~2 sqrt(D T) = 134 m wide, 33 cells: second-order error ~1e-3 of C0.
  EXPECT_LT(max_err / c0, 4e-3);
  EXPECT_GE(min_c, 0.0);
  EXPECT_LT(MaxRelativeMassError(r), 1e-10);
}

// Physics: steady point source with decay in an infinite channel. A load W into the
// middle of the channel gives C = W / (A w) exp((u -/+ w) x / (2 D)), w = sqrt(u^2 + 4
// lambda D), downstream (-) and upstream (+) of the source. Solved by the steady-state
// option and checked against the closed form away from the source cell.
TEST(TransportTest, SteadyPointSourceWithDecayClosedForm) {
  const double u = 0.2, D = 4.0, A = 3.0, lambda = 1e-4, W = 5.0;
  for (double dx : {10.0, 5.0}) {
    int n = static_cast<int>(6000.0 / dx);
    TransportProblem p = Channel(n, dx, u * A, A, D);
    SetDecay(&p, lambda);
    int src = n / 3;
    p.members[0].loads = {PointLoad{src, 0, TimeSeries::Constant(W)}};
    TransportOptions o;
    o.steady_state = true;
    TransportResult r = TransportSolver(o).Run(p);
    double w = std::sqrt(u * u + 4 * lambda * D);
    double x_src = Centre(src, dx);
    double max_err = 0, peak = W / (A * w);
    for (int i = 0; i < n; ++i) {
      double x = Centre(i, dx) - x_src;
      if (std::fabs(x) < 100.0 || Centre(i, dx) < 200 || Centre(i, dx) > 5500) continue;
      double e = peak * std::exp((u - (x > 0 ? w : -w)) * x / (2 * D));
      max_err = std::max(max_err, std::fabs(r.Concentration(0, 0, i, 0) - e));
    }
    std::printf("steady point source dx=%.1f: max error %.3e of peak %.3e\n", dx, max_err, peak);
    // A point load is spread over one cell: O(dx^2) relative error, ~(dx/L_decay)^2.
    EXPECT_LT(max_err / peak, 2e-3 * (dx / 10.0) * (dx / 10.0) * 4);
    EXPECT_LT(MaxRelativeMassError(r), 1e-9);
  }
}

// Physics: Runkel (1996) finite-duration pulse with first-order decay: C(x,t) =
// B(x, t - t1) - B(x, t - t2) with B the Bear step response, the app3 problem of OTIS
// (u = 0.1 m/s, D = 5 m2/s, lambda = 1e-4 /s, 100 mg/L from 1 h to 3 h).
TEST(TransportTest, FiniteDurationPulseWithDecayRunkel1996) {
  const double u = 0.1, D = 5.0, A = 1.0, lambda = 1e-4, dx = 10.0, c0 = 100.0;
  int n = 220;
  TransportProblem p = Channel(n, dx, u * A, A, D);
  SetDecay(&p, lambda);
  TimeSeries bc;
  bc.times_s = {0.0, 3600.0, 10800.0};
  bc.values = {0.0, c0, 0.0};
  bc.interpolation = TimeSeries::Interpolation::kStep;
  p.members[0].boundaries = {ConcentrationBoundary(bc)};
  p.end_time_s = 12 * 3600.0;
  p.time_step_s = 144.0;  // OTIS's app3 step (Courant 1.44): sub-stepped here
  for (int k = 0; k <= 300; ++k) p.output_times_s.push_back(k * 144.0);
  p.stations = {Station{9, 10, 0.5}, Station{199, 200, 0.5}};  // 100 m and 2000 m
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  double err100 = 0, err2000 = 0, min_c = 0;
  for (int k = 0; k <= 300; ++k) {
    double t = k * 144.0;
    auto exact = [&](double x) {
      return StepResponse(x, t - 3600, u, D, lambda, c0) - StepResponse(x, t - 10800, u, D, lambda, c0);
    };
    err100 = std::max(err100, std::fabs(r.StationConcentration(0, k, 0, 0) - exact(100.0)));
    err2000 = std::max(err2000, std::fabs(r.StationConcentration(0, k, 1, 0) - exact(2000.0)));
    for (int q = 0; q < 2; ++q) min_c = std::min(min_c, r.StationConcentration(0, k, q, 0));
  }
  std::printf("Runkel 1996 pulse: max error 100 m %.4f, 2000 m %.4f mg/L\n", err100, err2000);
  // OTIS on the same grid and step: ~8 mg/L at 100 m (overshoot), see the regression test.
  EXPECT_LT(err100, 1.0);   // 1% of the 100 mg/L pulse, at the sharp step near the source
  EXPECT_LT(err2000, 0.05);
  EXPECT_GE(min_c, 0.0);
  EXPECT_LT(MaxRelativeMassError(r), 1e-10);
}

// Physics: transient storage at steady state. With a constant upstream C0, decay lambda
// in the channel and lambda_s in the storage zone, the storage zone sits at S = a C /
// (a + lambda_s), a = alpha A / A_s, so the channel sees an effective decay lambda_eff =
// lambda + alpha lambda_s / (a + lambda_s) and C = C0 exp((u - w) x / 2D), w = sqrt(u^2 +
// 4 lambda_eff D) (semi-infinite channel). Checked by time stepping to steady state and by
// the steady-state solver. The time-stepped steady state carries the Strang splitting
// error, which concentrates in the first cells next to a Dirichlet boundary and shrinks
// with dt (measured: 1.4e-2, 6.6e-3, 1.7e-3 of C0 at dt = 60, 30, 15 s here), so the
// time stepping runs at dt = 15 s (Courant 0.9) and its bound is 5e-4 of C0; the
// steady solver has no splitting and is held to 1e-5.
TEST(TransportTest, TransientStorageSteadyState) {
  const double u = 0.3, D = 2.0, A = 1.5, As = 0.6, alpha = 5e-4, lambda = 5e-5,
               lambda_s = 2e-4, c0 = 8.0, dx = 5.0;
  int n = 800;
  TransportProblem p = Channel(n, dx, u * A, A, D);
  SetDecay(&p, lambda, lambda_s);
  for (auto& s : p.segments) {
    s.storage_area_m2 = As;
    s.exchange_per_s = alpha;
  }
  p.members[0].boundaries = {ConcentrationBoundary(TimeSeries::Constant(c0))};
  double a = alpha * A / As;
  double lambda_eff = lambda + alpha * lambda_s / (a + lambda_s);
  double w = std::sqrt(u * u + 4 * lambda_eff * D);
  for (bool steady : {false, true}) {
    TransportOptions o;
    o.steady_state = steady;
    p.end_time_s = 200000.0;
    p.time_step_s = 15.0;
    TransportResult r = TransportSolver(o).Run(p);
    int t = r.num_times - 1;
    double max_err = 0, max_err_s = 0;
    for (int i = 0; i < n - 20; ++i) {
      double e = c0 * std::exp((u - w) * Centre(i, dx) / (2 * D));
      max_err = std::max(max_err, std::fabs(r.Concentration(0, t, i, 0) - e));
      double es = a * e / (a + lambda_s);
      max_err_s = std::max(max_err_s, std::fabs(r.storage_g_m3[r.Index(0, t, i, n, 0)] - es));
    }
    std::printf("storage steady state (%s): max error C %.3e, S %.3e\n",
                steady ? "solver" : "time stepping", max_err, max_err_s);
    double bound = steady ? 1e-5 : 5e-4;
    EXPECT_LT(max_err / c0, bound);
    EXPECT_LT(max_err_s / c0, bound);
    EXPECT_LT(MaxRelativeMassError(r), 1e-9);
  }
}

// A Y-shaped network: two tributaries of different flow and concentration meet; the
// junction must mix by flow (C = (Q1 C1 + Q2 C2) / (Q1 + Q2) at steady state without
// dispersion) and the whole run must conserve mass to round-off.
TransportProblem YNetwork(int n_branch, double dx) {
  TransportProblem p;
  int n = 3 * n_branch;
  p.segments.resize(n);
  FlowState f;
  f.flow_m3s.resize(n);
  f.area_m2.resize(n);
  f.headwater_inflow_m3s.assign(n, 0.0);
  for (int i = 0; i < n; ++i) {
    Segment& s = p.segments[i];
    s.length_m = dx;
    s.dispersion_m2s = 1.0;
    int branch = i / n_branch;
    bool last = (i % n_branch) == n_branch - 1;
    s.downstream = last ? (branch < 2 ? 2 * n_branch : -1) : i + 1;
    f.flow_m3s[i] = branch == 0 ? 1.0 : branch == 1 ? 3.0 : 4.0;
    f.area_m2[i] = branch == 0 ? 2.0 : branch == 1 ? 5.0 : 8.0;
  }
  f.headwater_inflow_m3s[0] = 1.0;
  f.headwater_inflow_m3s[n_branch] = 3.0;
  p.flow.times_s = {0.0};
  p.flow.states = {f};
  p.members.resize(1);
  return p;
}

TEST(TransportTest, JunctionMixesByFlowAndConservesMass) {
  TransportProblem p = YNetwork(100, 10.0);
  UpstreamBoundary b1 = ConcentrationBoundary(TimeSeries::Constant(10.0));
  UpstreamBoundary b2 = ConcentrationBoundary(TimeSeries::Constant(2.0));
  b2.segment = 100;
  p.members[0].boundaries = {b1, b2};
  p.end_time_s = 40000.0;
  p.time_step_s = 30.0;
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  double mixed = (1.0 * 10.0 + 3.0 * 2.0) / 4.0;
  EXPECT_NEAR(r.Concentration(0, 1, 250, 0), mixed, 1e-6 * mixed);
  EXPECT_LT(MaxRelativeMassError(r), 1e-10);
  const MassBalance& mb = r.summary.mass_balance[0];
  EXPECT_GT(mb.boundary_inflow_g, 0);
  EXPECT_GT(mb.outlet_outflow_g, 0);
}

// Physics: a treatment node (a well-mixed lake or wetland removing a fraction f of what
// flows in) between two river stretches. At steady flow a stirred tank with first-order
// removal k = f/(1-f) Q/V passes C_in (1 - f): river water at 10 mg/L must leave the node
// at 10 (1 - f) and stay so downstream (no decay in the river), in the steady-state solve
// and after time stepping to steady state; the removed mass f Q C_in is booked with decay
// and the budget closes. Two species with f = 0.5 and 0 (fluoride is not removed).
TEST(TransportTest, TreatmentNodeRemovesItsFractionAtSteadyFlow) {
  const int n = 41, node = 20;
  TransportProblem p = Channel(n, 50.0, 2.0, 4.0, 1.0);
  p.num_species = 2;
  p.segments[node].well_mixed = true;
  p.segments[node].length_m = 1.0;
  p.flow.states[0].area_m2[node] = 2.0e5;  // 200,000 m3: residence time ~28 h
  p.segments[node].removal_fraction = {0.5, 0.0};
  UpstreamBoundary b = ConcentrationBoundary(TimeSeries::Constant(10.0));
  b.series = {TimeSeries::Constant(10.0), TimeSeries::Constant(10.0)};
  p.members[0].boundaries = {b};
  TransportOptions steady;
  steady.steady_state = true;
  TransportResult rs = TransportSolver(steady).Run(p);
  for (int i : {node, node + 1, n - 1}) {
    EXPECT_NEAR(rs.Concentration(0, 0, i, 0), 5.0, 1e-9) << "segment " << i;
    EXPECT_NEAR(rs.Concentration(0, 0, i, 1), 10.0, 1e-9) << "segment " << i;
  }
  const MassBalance& ms = rs.summary.mass_balance[0];
  EXPECT_NEAR(ms.decay_main_g, 0.5 * 2.0 * 10.0, 1e-9);  // f Q C_in, g/s
  EXPECT_LT(rs.summary.max_relative_mass_error, 1e-10);

  // Time stepping from clean water: 20 residence times later the node is at the steady
  // state of the split scheme, which differs from the exact one by the splitting error
  // (advection apart from removal), O(dt^2): halving the step must quarter it.
  p.end_time_s = 20 * 1e5;
  double error[2];
  TransportResult rt;
  for (int k = 0; k < 2; ++k) {
    p.time_step_s = k == 0 ? 1200.0 : 600.0;
    rt = TransportSolver(TransportOptions()).Run(p);
    error[k] = std::fabs(rt.Concentration(0, 1, n - 1, 0) - 5.0);
    EXPECT_NEAR(rt.Concentration(0, 1, n - 1, 1), 10.0, 10.0 * 1e-8);  // e^-20 of the start
  }
  std::printf("treatment node, split steady state error: dt 1200 s %.3g, 600 s %.3g mg/L\n",
              error[0], error[1]);
  EXPECT_LT(error[0], 1e-3);
  EXPECT_GT(std::log2(error[0] / error[1]), 1.8);
  EXPECT_GT(rt.summary.mass_balance[0].decay_main_g, 0.0);
  EXPECT_EQ(rt.summary.mass_balance[1].decay_main_g, 0.0);
  EXPECT_LT(MaxRelativeMassError(rt), 1e-10);

  // A removal fraction outside [0, 1), or on a segment that is not well mixed, is refused.
  TransportProblem bad = p;
  bad.segments[node].removal_fraction = {1.0, 0.0};
  EXPECT_THROW(TransportSolver(TransportOptions()).Run(bad), ConfigError);
  bad.segments[node].removal_fraction = {0.5, 0.0};
  bad.segments[node].well_mixed = false;
  EXPECT_THROW(TransportSolver(TransportOptions()).Run(bad), ConfigError);
}

// Positivity and no new extrema: random trees, random (consistent) flows, areas,
// dispersion, storage and step-pulse boundaries at random Courant numbers up to 3. Every
// concentration must stay within [0, max boundary value] and mass must balance, with
// either advection (the SSP Runge-Kutta one's stages at Courant <= 0.5).
TEST(TransportTest, PositivityOnRandomizedNetworks) {
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  for (int trial = 0; trial < 20; ++trial) {
    int n = 30 + static_cast<int>(U(rng) * 60);
    TransportProblem p;
    p.segments.resize(n);
    // Random tree, upstream-first: segment i drains to a random later segment.
    for (int i = 0; i < n - 1; ++i) {
      p.segments[i].downstream = i + 1 + static_cast<int>(U(rng) * std::min(4, n - 1 - i));
      if (p.segments[i].downstream >= n) p.segments[i].downstream = n - 1;
    }
    p.segments[n - 1].downstream = -1;
    FlowState f;
    f.flow_m3s.assign(n, 0.0);
    f.area_m2.resize(n);
    f.headwater_inflow_m3s.assign(n, 0.0);
    f.lateral_inflow_m2s.assign(n, 0.0);
    f.lateral_concentration_g_m3.assign(n, 0.0);
    std::vector<double> qin(n, 0.0);
    std::vector<bool> has_up(n, false);
    for (int i = 0; i < n - 1; ++i) has_up[p.segments[i].downstream] = true;
    p.members.resize(1);
    double cmax = 0;
    for (int i = 0; i < n; ++i) {
      Segment& s = p.segments[i];
      s.length_m = 5.0 + 20.0 * U(rng);
      s.dispersion_m2s = 5.0 * U(rng);
      if (U(rng) < 0.5) {
        s.storage_area_m2 = U(rng);
        s.exchange_per_s = 1e-3 * U(rng);
      }
      s.decay_per_s = {1e-4 * U(rng)};
      s.well_mixed = U(rng) < 0.05;
      if (!has_up[i]) {
        double q = 0.1 + U(rng);
        f.headwater_inflow_m3s[i] = q;
        qin[i] += q;
        TimeSeries bc;
        double c = 100.0 * U(rng);
        cmax = std::max(cmax, c);
        bc.times_s = {0.0, 600.0 * U(rng), 3000.0 * U(rng) + 600.0};
        bc.values = {0.0, c, 0.0};
        bc.interpolation = TimeSeries::Interpolation::kStep;
        UpstreamBoundary b = ConcentrationBoundary(bc);
        b.segment = i;
        p.members[0].boundaries.push_back(b);
      }
      if (U(rng) < 0.3) {
        f.lateral_inflow_m2s[i] = 1e-3 * U(rng);
        f.lateral_concentration_g_m3[i] = 50.0 * U(rng);
        cmax = std::max(cmax, f.lateral_concentration_g_m3[i]);
      }
      f.flow_m3s[i] = qin[i] + f.lateral_inflow_m2s[i] * s.length_m;
      if (s.downstream >= 0) qin[s.downstream] += f.flow_m3s[i];
      f.area_m2[i] = 0.2 + 2.0 * U(rng);
    }
    p.flow.times_s = {0.0};
    p.flow.states = {f};
    p.end_time_s = 7200.0;
    p.time_step_s = 20.0 + 200.0 * U(rng);
    for (int k = 0; k <= 24; ++k) p.output_times_s.push_back(k * 300.0);
    for (auto advection : {TransportOptions::Advection::kLimitedLaxWendroff,
                           TransportOptions::Advection::kSspRk2}) {
      TransportOptions o;
      o.advection = advection;
      TransportResult r = TransportSolver(o).Run(p);
      double lo = 0, hi = 0;
      for (double c : r.concentration_g_m3) {
        lo = std::min(lo, c);
        hi = std::max(hi, c);
      }
      const int scheme = static_cast<int>(advection);
      EXPECT_GE(lo, -1e-12 * cmax) << "trial " << trial << ", advection " << scheme;
      EXPECT_LE(hi, cmax * (1 + 1e-12)) << "trial " << trial << ", advection " << scheme;
      EXPECT_LT(MaxRelativeMassError(r), 1e-10) << "trial " << trial << ", advection " << scheme;
    }
  }
}

// Unsteady flow with time-varying area and flows that do not close the water balance:
// the non-conservative (OTIS) form keeps a uniform concentration uniform, and the flow-
// closure term keeps the mass balance exact.
TEST(TransportTest, UnsteadyInconsistentFlowKeepsUniformFieldAndBalancesMass) {
  TransportProblem p = Channel(50, 10.0, 1.0, 2.0, 1.0);
  FlowState f2 = p.flow.states[0];
  for (int i = 0; i < 50; ++i) {
    f2.flow_m3s[i] = 2.0 - 0.01 * i;
    f2.area_m2[i] = 3.0 + 0.02 * i;
  }
  f2.headwater_inflow_m3s[0] = 2.0;
  p.flow.times_s = {0.0, 3000.0};
  p.flow.states.push_back(f2);
  p.members[0].initial_concentration_g_m3.assign(50, 5.0);
  p.members[0].boundaries = {ConcentrationBoundary(TimeSeries::Constant(5.0))};
  p.end_time_s = 3000.0;
  p.time_step_s = 25.0;
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  for (int i = 0; i < 50; ++i) EXPECT_NEAR(r.Concentration(0, 1, i, 0), 5.0, 1e-12);
  EXPECT_LT(MaxRelativeMassError(r), 1e-10);
}

// Dry segments: a tributary with zero flow and zero area must neither produce NaN nor
// disturb the rest; a zero-flow pond with water keeps its concentration.
TEST(TransportTest, DrySegmentsStayFinite) {
  TransportProblem p = YNetwork(20, 10.0);
  FlowState& f = p.flow.states[0];
  for (int i = 20; i < 40; ++i) {
    f.flow_m3s[i] = 0.0;
    f.area_m2[i] = i < 30 ? 0.0 : 1.0;
  }
  f.headwater_inflow_m3s[20] = 0.0;
  for (int i = 40; i < 60; ++i) f.flow_m3s[i] = 1.0;
  p.members[0].boundaries = {ConcentrationBoundary(TimeSeries::Constant(3.0))};
  p.members[0].loads = {PointLoad{25, 0, TimeSeries::Constant(1.0)}};
  p.end_time_s = 5000.0;
  p.time_step_s = 50.0;
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  for (double c : r.concentration_g_m3) ASSERT_TRUE(std::isfinite(c));
  // The still pond (segments 30-39) exchanges by dispersion with the main stem only.
  for (int i = 30; i < 60; ++i) {
    EXPECT_GE(r.Concentration(0, 1, i, 0), 0.0);
    EXPECT_LE(r.Concentration(0, 1, i, 0), 3.0);
  }
  EXPECT_NEAR(r.Concentration(0, 1, 5, 0), 3.0, 1e-6);
  EXPECT_LT(MaxRelativeMassError(r), 1e-10);
}

// Coupled reactions and temperature: in a closed well-mixed tank, organic N -> NH3 ->
// NO3 with rates k1, k2 (corrected by theta^(T-20)) follows the Bateman solution, and
// total N is conserved.
TEST(TransportTest, ReactionChainFollowsBatemanWithTemperatureCorrection) {
  TransportProblem p = Channel(1, 10.0, 0.0, 1.0, 0.0);
  p.num_species = 3;
  p.flow.states[0].headwater_inflow_m3s[0] = 0.0;
  p.segments[0].well_mixed = true;
  const double k1 = 2e-4, k2 = 1e-4, theta = 1.047, T = 12.0;
  p.reaction_matrix_per_s = {-k1, 0, 0, k1, -k2, 0, 0, k2, 0};
  p.theta = {theta, theta, theta};
  p.temperature_c = TimeSeries::Constant(T);
  p.members[0].initial_concentration_g_m3 = {10.0, 0.0, 0.0};
  p.end_time_s = 20000.0;
  p.time_step_s = 500.0;
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  double f = std::pow(theta, T - 20.0), a = k1 * f, b = k2 * f, t = 20000.0;
  double c1 = 10.0 * std::exp(-a * t);
  double c2 = 10.0 * a / (b - a) * (std::exp(-a * t) - std::exp(-b * t));
  EXPECT_NEAR(r.Concentration(0, 1, 0, 0), c1, 1e-9 * 10);
  EXPECT_NEAR(r.Concentration(0, 1, 0, 1), c2, 1e-9 * 10);
  EXPECT_NEAR(r.Concentration(0, 1, 0, 0) + r.Concentration(0, 1, 0, 1) + r.Concentration(0, 1, 0, 2),
              10.0, 1e-10);
  EXPECT_LT(MaxRelativeMassError(r), 1e-10);
}

// Batched members: an ensemble run gives exactly what separate runs give, per member.
TEST(TransportTest, EnsembleMembersMatchSingleRuns) {
  TransportProblem p = Channel(100, 10.0, 1.0, 2.0, 1.0);
  p.end_time_s = 4000.0;
  p.time_step_s = 40.0;
  std::vector<Forcing> members;
  for (int m = 0; m < 5; ++m) {
    Forcing fo;
    fo.boundaries = {ConcentrationBoundary(TimeSeries::Constant(1.0 + m))};
    fo.loads = {PointLoad{30 + m, 0, TimeSeries::Constant(0.1 * m)}};
    members.push_back(fo);
  }
  p.members = members;
  TransportOptions o;
  o.num_threads = 2;
  TransportResult all = TransportSolver(o).Run(p);
  for (int m = 0; m < 5; ++m) {
    TransportProblem one = p;
    one.members = {members[m]};
    TransportResult r = TransportSolver(TransportOptions()).Run(one);
    for (int i = 0; i < 100; ++i) {
      EXPECT_DOUBLE_EQ(all.Concentration(m, 1, i, 0), r.Concentration(0, 1, i, 0));
    }
  }
  EXPECT_LT(MaxRelativeMassError(all), 1e-10);
}

// ---------------------------------------------------------------------------------------
// Adaptive positivity (docs/methods.md, "Positivity of the implicit step"). The app3 grid
// and step (dx = 10 m, D = 5 m2/s, dt = 144 s: dispersion number 7.2, far beyond the
// Crank-Nicolson positivity bound) with a 100 mg/L pulse switched on and off at the
// upstream face.
TransportProblem App3Pulse(int n, double start_s = 3600.0, double height = 100.0) {
  TransportProblem p = Channel(n, 10.0, 0.1, 1.0, 5.0);
  SetDecay(&p, 1e-4);
  TimeSeries bc;
  bc.times_s = {0.0, start_s, start_s + 7200.0};
  bc.values = {0.0, height, 0.0};
  bc.interpolation = TimeSeries::Interpolation::kStep;
  p.members[0].boundaries = {ConcentrationBoundary(bc)};
  p.end_time_s = 6 * 3600.0;
  p.time_step_s = 144.0;
  for (int k = 0; k <= 150; ++k) p.output_times_s.push_back(k * 144.0);
  return p;
}

std::pair<double, double> Range(const std::vector<double>& v) {
  double lo = 1e300, hi = -1e300;
  for (double c : v) {
    lo = std::min(lo, c);
    hi = std::max(hi, c);
  }
  return {lo, hi};
}

// Number of strict local extrema (beyond tol) of a chain profile.
int CountExtrema(const std::vector<double>& c, double tol) {
  int n = 0;
  for (size_t i = 1; i + 1 < c.size(); ++i) {
    bool mx = c[i] > c[i - 1] + tol && c[i] > c[i + 1] + tol;
    bool mn = c[i] < c[i - 1] - tol && c[i] < c[i + 1] - tol;
    n += mx || mn;
  }
  return n;
}

// Physics: a concentration that jumps at the boundary is a front; the pulse has a single
// maximum, and the Runkel (1996) solution gives it exactly. Crank-Nicolson at a dispersion
// number of 7 puts oscillations on its flanks (shown with positive_implicit off: extra
// local extrema). The adaptive check must catch every such step (fallbacks > 0), and the
// result must have no more extrema than the always-sub-stepped (provably positive) one,
// stay within [0, 100], balance mass exactly, and be as accurate as the sub-stepped one.
TEST(TransportTest, AdaptiveFallbackIsExercisedAndStaysPositive) {
  const int n = 150;
  TransportProblem p = App3Pulse(n);
  auto extrema = [&](const TransportResult& r) {
    int worst = 0;
    for (int t = 0; t < r.num_times; ++t) {
      std::vector<double> c(r.concentration_g_m3.begin() + static_cast<size_t>(t) * n,
                            r.concentration_g_m3.begin() + static_cast<size_t>(t + 1) * n);
      worst = std::max(worst, CountExtrema(c, 1e-9 * 100.0));
    }
    return worst;
  };
  auto max_error = [&](const TransportResult& r) {
    double e = 0;
    for (int t = 0; t < r.num_times; ++t) {
      for (int i = 0; i < n - 10; ++i) {
        double x = Centre(i, 10.0), tt = r.times_s[t];
        double exact = StepResponse(x, tt - 3600, 0.1, 5.0, 1e-4, 100.0) -
                       StepResponse(x, tt - 10800, 0.1, 5.0, 1e-4, 100.0);
        e = std::max(e, std::fabs(r.Concentration(0, t, i, 0) - exact));
      }
    }
    return e;
  };
  TransportOptions plain;
  plain.positive_implicit = false;
  TransportResult rp = TransportSolver(plain).Run(p);
  TransportResult ra = TransportSolver(TransportOptions()).Run(p);
  TransportOptions always;
  always.adaptive_implicit = false;
  TransportResult rs = TransportSolver(always).Run(p);
  std::printf("extrema: plain CN %d, adaptive %d, sub-stepped %d; max error vs Runkel (1996): "
              "plain %.3f, adaptive %.3f, sub-stepped %.3f mg/L; adaptive: %lld fallbacks in %d "
              "steps, %lld implicit solves (sub-stepped: %lld)\n",
              extrema(rp), extrema(ra), extrema(rs), max_error(rp), max_error(ra), max_error(rs),
              ra.summary.implicit_fallbacks, ra.summary.num_steps, ra.summary.implicit_substeps,
              rs.summary.implicit_substeps);
  EXPECT_GT(extrema(rp), extrema(rs)) << "plain CN should oscillate here";
  EXPECT_LE(extrema(ra), extrema(rs));
  EXPECT_GT(ra.summary.implicit_fallbacks, 0);
  EXPECT_GE(ra.summary.implicit_checked_steps, ra.summary.num_steps);
  EXPECT_GT(ra.summary.max_implicit_substeps, 1);
  EXPECT_LT(ra.summary.implicit_substeps, rs.summary.implicit_substeps / 3);
  auto [lo, hi] = Range(ra.concentration_g_m3);
  EXPECT_GE(lo, 0.0);
  EXPECT_LE(hi, 100.0 * (1 + 1e-12));
  EXPECT_LT(MaxRelativeMassError(ra), 1e-10);
  EXPECT_EQ(rs.summary.implicit_checked_steps, 0);
  EXPECT_EQ(rs.summary.implicit_substeps,
            static_cast<long long>(rs.summary.num_steps) * rs.summary.max_implicit_substeps);
  // Both errors peak (~6% of the pulse) in the first cell right after the switch, where the
  // step resolves the jump; there the bisected and the sub-stepped steps differ slightly.
  EXPECT_LE(max_error(ra), 1.1 * max_error(rs));
  // At the Runkel stations (100 m, 2000 m) the adaptive result matches the sub-stepped one.
  for (int t = 0; t < ra.num_times; ++t) {
    for (int i : {9, 10, 100}) {
      EXPECT_NEAR(ra.Concentration(0, t, i, 0), rs.Concentration(0, t, i, 0), 0.5);
    }
  }
}

// Physics: pure dispersion of two plateaus (50 and 100 mg/L) in still water. Diffusion
// never creates a local extremum (a maximum on each plateau and the minimum between them
// at most: 3), so a step that adds one is an oscillation. At a dispersion number of 20 plain
// Crank-Nicolson adds several; the adaptive scheme must add none, at every output time.
TEST(TransportTest, NoNewExtremaAtFronts) {
  const int n = 200;
  TransportProblem p = Channel(n, 1.0, 0.0, 1.0, 2.0);
  p.flow.states[0].headwater_inflow_m3s[0] = 0.0;
  std::vector<double> c0(n, 0.0);
  for (int i = 40; i < 80; ++i) c0[i] = 50.0;
  for (int i = 120; i < 130; ++i) c0[i] = 100.0;
  p.members[0].initial_concentration_g_m3 = c0;
  p.end_time_s = 100.0;
  p.time_step_s = 10.0;  // D dt / dx^2 = 20
  for (int k = 0; k <= 10; ++k) p.output_times_s.push_back(k * 10.0);
  auto max_extrema = [&](const TransportResult& r) {
    int worst = 0;
    for (int t = 0; t < r.num_times; ++t) {
      std::vector<double> c(r.concentration_g_m3.begin() + static_cast<size_t>(t) * n,
                            r.concentration_g_m3.begin() + static_cast<size_t>(t + 1) * n);
      worst = std::max(worst, CountExtrema(c, 1e-9 * 100.0));
    }
    return worst;
  };
  TransportOptions plain;
  plain.positive_implicit = false;
  EXPECT_GT(max_extrema(TransportSolver(plain).Run(p)), 3);
  TransportResult r = TransportSolver(TransportOptions()).Run(p);
  EXPECT_LE(max_extrema(r), 3);
  EXPECT_GE(Range(r.concentration_g_m3).first, 0.0);
  EXPECT_LE(Range(r.concentration_g_m3).second, 100.0 * (1 + 1e-12));
  EXPECT_LT(MaxRelativeMassError(r), 1e-10);
}

// With a steady flow field the coefficients and the tree factorizations are computed once
// and reused; recomputing them every step must give bit-identical results. The problem
// exercises storage, sorption, decay, lateral inflow, a point load, fallbacks and two
// species with a temperature correction.
TEST(TransportTest, SteadyFlowFactorizationReuseIsIdenticalToRefactorizing) {
  TransportProblem p = App3Pulse(120);
  p.num_species = 2;
  for (auto& s : p.segments) {
    s.storage_area_m2 = 0.4;
    s.exchange_per_s = 2e-4;
    s.decay_per_s = {1e-4, 3e-5};
    s.storage_decay_per_s = {5e-5, 0.0};
    Sorption so;
    so.main_rate_per_s = 1e-4;
    so.storage_rate_per_s = 5e-5;
    so.sediment_kg_per_m3 = 2.0;
    so.kd_m3_per_kg = 0.1;
    so.storage_background_g_m3 = 0.5;
    s.sorption = {so, so};
  }
  p.theta = {1.02, 1.05};
  p.temperature_c = TimeSeries::Constant(15.0);
  FlowState& f = p.flow.states[0];
  f.lateral_inflow_m2s.assign(120, 0.0);
  f.lateral_concentration_g_m3.assign(240, 0.0);
  for (int i = 60; i < 120; ++i) {
    f.lateral_inflow_m2s[i] = 1e-4;
    f.lateral_concentration_g_m3[2 * i] = 3.0;
    f.flow_m3s[i] = 0.1 + 1e-4 * 10.0 * (i - 59);
  }
  UpstreamBoundary b = p.members[0].boundaries[0];
  b.series.push_back(b.series[0]);
  p.members[0].boundaries = {b};
  p.members[0].loads = {PointLoad{30, 1, TimeSeries::Constant(0.2)}};
  TransportOptions reuse, fresh;
  fresh.reuse_factorizations = false;
  TransportResult a = TransportSolver(reuse).Run(p);
  TransportResult c = TransportSolver(fresh).Run(p);
  EXPECT_GT(a.summary.implicit_fallbacks, 0);
  EXPECT_EQ(a.summary.implicit_fallbacks, c.summary.implicit_fallbacks);
  EXPECT_EQ(a.summary.implicit_substeps, c.summary.implicit_substeps);
  ASSERT_EQ(a.concentration_g_m3.size(), c.concentration_g_m3.size());
  for (size_t k = 0; k < a.concentration_g_m3.size(); ++k) {
    ASSERT_EQ(a.concentration_g_m3[k], c.concentration_g_m3[k]) << k;
    ASSERT_EQ(a.storage_g_m3[k], c.storage_g_m3[k]) << k;
    ASSERT_EQ(a.sorbed_g_kg[k], c.sorbed_g_kg[k]) << k;
  }
  for (int s = 0; s < 2; ++s) {
    EXPECT_EQ(a.summary.mass_balance[s].final_mass_g, c.summary.mass_balance[s].final_mass_g);
    EXPECT_EQ(a.summary.mass_balance[s].decay_main_g, c.summary.mass_balance[s].decay_main_g);
  }
  EXPECT_LT(MaxRelativeMassError(a), 1e-10);
  EXPECT_GE(Range(a.concentration_g_m3).first, 0.0);
}

// Ensembles are batched in chunks of 8 members with their own kernels, and a member that
// fails the positivity check falls back alone. 17 members (two full chunks and a
// remainder, on two threads; pairs of members start their pulses together, so that
// several members of a chunk fall back in the same step) must give exactly what 17
// separate runs give, fallbacks included.
TEST(TransportTest, BatchedEnsembleWithFallbacksMatchesSingleRuns) {
  TransportProblem p = App3Pulse(150);
  std::vector<Forcing> members;
  for (int m = 0; m < 17; ++m) {
    const int k = m / 2;
    TransportProblem one = App3Pulse(150, 1800.0 + 144.0 * k + 37.0 * (k % 3), 60.0 + 5.0 * m);
    Forcing fo = one.members[0];
    if (m % 4 == 1) fo.loads = {PointLoad{40 + m, 0, TimeSeries::Constant(0.05 * m)}};
    members.push_back(fo);
  }
  p.members = members;
  TransportOptions o;
  o.num_threads = 2;
  o.independent_members = true;
  TransportResult all = TransportSolver(o).Run(p);
  long long fallbacks = 0;
  for (int m = 0; m < 17; ++m) {
    TransportProblem one = p;
    one.members = {members[m]};
    TransportResult r = TransportSolver(TransportOptions()).Run(one);
    fallbacks += r.summary.implicit_fallbacks;
    for (int t = 0; t < r.num_times; ++t) {
      for (int i = 0; i < 150; ++i) {
        ASSERT_DOUBLE_EQ(all.Concentration(m, t, i, 0), r.Concentration(0, t, i, 0))
            << "member " << m << " time " << t << " segment " << i;
      }
    }
  }
  EXPECT_GT(fallbacks, 0);
  EXPECT_EQ(all.summary.implicit_fallbacks, fallbacks);
  EXPECT_LT(MaxRelativeMassError(all), 1e-10);
}

// A block of fewer than 8 members whose members fail the positivity check in the same step
// is redone on an 8-lane copy padded with inactive columns; the item's scratch must be that
// wide (regression: the forecast's 2-member runs wrote past it and crashed). Two and three
// members, all starting the same pulse, on one thread: each must equal its single run.
TEST(TransportTest, SmallIndependentBlocksFallingBackTogetherMatchSingleRuns) {
  for (int count : {2, 3}) {
    TransportProblem p = App3Pulse(150);
    std::vector<Forcing> members;
    for (int m = 0; m < count; ++m) {
      TransportProblem one = App3Pulse(150, 1800.0, 60.0 + 5.0 * m);
      members.push_back(one.members[0]);
    }
    p.members = members;
    TransportOptions o;
    o.num_threads = 1;
    o.independent_members = true;
    TransportResult all = TransportSolver(o).Run(p);
    EXPECT_GT(all.summary.implicit_fallbacks, count);
    for (int m = 0; m < count; ++m) {
      TransportProblem one = p;
      one.members = {members[m]};
      TransportResult r = TransportSolver(TransportOptions()).Run(one);
      for (int t = 0; t < r.num_times; ++t) {
        for (int i = 0; i < 150; ++i) {
          ASSERT_DOUBLE_EQ(all.Concentration(m, t, i, 0), r.Concentration(0, t, i, 0))
              << count << " members: member " << m << " time " << t << " segment " << i;
        }
      }
    }
    EXPECT_LT(MaxRelativeMassError(all), 1e-10);
  }
}

// With 16 or more members, two chunks of 8 share each implicit solve (their elimination
// recurrences overlap), the run kernels skip the right-hand-side array where a run has no
// entries in it and the old state where nothing reads it, and failing members are redone
// in groups of up to 8. None of this may change a member's result. A branched network (two
// tributaries and a junction), flow closure on one tributary (lateral inflow while the flow
// stays constant), point loads in some members, 37 members (two pairs and a remainder)
// whose pulses start in groups of 12 (so that more than 8 members of a pair fail the check
// in the same step), without and with a storage zone and sorption, on one and on two
// threads: every member must equal its single run exactly, with either advection scheme.
TEST(TransportTest, PairedChunksMatchSingleRunsOnABranchedNetwork) {
  const int nb = 40, n = 3 * nb, members = 37;
  for (int variant = 0; variant < 4; ++variant) {
    const bool storage = variant % 2 == 1;
    const auto advection = variant < 2 ? TransportOptions::Advection::kLimitedLaxWendroff
                                        : TransportOptions::Advection::kSspRk2;
    TransportProblem p = YNetwork(nb, 10.0);
    for (auto& s : p.segments) {
      s.dispersion_m2s = 20.0;  // dispersion number 2.4: the check fails at fronts
      s.decay_per_s = {1e-4};
      if (storage) {
        s.storage_area_m2 = 0.8;
        s.exchange_per_s = 3e-4;
        s.storage_decay_per_s = {5e-5};
        Sorption so;
        so.main_rate_per_s = 1e-4;
        so.storage_rate_per_s = 5e-5;
        so.sediment_kg_per_m3 = 2.0;
        so.kd_m3_per_kg = 0.1;
        s.sorption = {so};
      }
    }
    FlowState& f = p.flow.states[0];
    f.lateral_inflow_m2s.assign(n, 0.0);
    f.lateral_concentration_g_m3.assign(n, 0.0);
    for (int i = nb + 5; i < 2 * nb; ++i) {  // closure: inflow without a rise in flow
      f.lateral_inflow_m2s[i] = 2e-3;
      f.lateral_concentration_g_m3[i] = 4.0;
    }
    p.time_step_s = 12.0;
    p.end_time_s = 5400.0;
    p.output_times_s.clear();
    for (int k = 0; k <= 45; ++k) p.output_times_s.push_back(k * 120.0);
    std::vector<Forcing> forcings;
    for (int m = 0; m < members; ++m) {
      TimeSeries bc;
      const double start = 600.0 + 240.0 * (m / 12);
      bc.times_s = {0.0, start, start + 1200.0};
      bc.values = {0.0, 50.0 + m, 0.0};
      bc.interpolation = TimeSeries::Interpolation::kStep;
      UpstreamBoundary b1 = ConcentrationBoundary(bc);
      UpstreamBoundary b2 = ConcentrationBoundary(TimeSeries::Constant(2.0));
      b2.segment = nb;
      Forcing fo;
      fo.boundaries = {b1, b2};
      if (m % 3 == 1) fo.loads = {PointLoad{10 + m % 25, 0, TimeSeries::Constant(0.02 * m)}};
      if (m % 5 == 2) fo.loads.push_back(PointLoad{2 * nb + 7, 0, TimeSeries::Constant(0.3)});
      forcings.push_back(fo);
    }
    p.members = forcings;
    std::vector<TransportResult> singles;
    long long fallbacks = 0;
    TransportOptions single;
    single.advection = advection;
    for (int m = 0; m < members; ++m) {
      TransportProblem one = p;
      one.members = {forcings[m]};
      singles.push_back(TransportSolver(single).Run(one));
      fallbacks += singles.back().summary.implicit_fallbacks;
    }
    EXPECT_GT(fallbacks, 2 * members);
    for (int threads : {1, 2}) {
      TransportOptions o;
      o.advection = advection;
      o.num_threads = threads;
      o.independent_members = true;
      TransportResult all = TransportSolver(o).Run(p);
      EXPECT_EQ(all.summary.implicit_fallbacks, fallbacks);
      EXPECT_LT(MaxRelativeMassError(all), 1e-10);
      for (int m = 0; m < members; ++m) {
        const TransportResult& r = singles[m];
        for (int t = 0; t < r.num_times; ++t) {
          for (int i = 0; i < n; ++i) {
            ASSERT_EQ(all.Concentration(m, t, i, 0), r.Concentration(0, t, i, 0))
                << "advection " << static_cast<int>(advection) << ", storage " << storage
                << ", " << threads << " threads: member " << m
                << " time " << t << " segment " << i;
            if (storage) {
              const size_t a = ((static_cast<size_t>(m) * all.num_times + t) * n + i),
                           b = (static_cast<size_t>(t) * n + i);
              ASSERT_EQ(all.storage_g_m3[a], r.storage_g_m3[b]) << "member " << m;
              ASSERT_EQ(all.sorbed_g_kg[a], r.sorbed_g_kg[b]) << "member " << m;
            }
          }
        }
      }
    }
  }
}

TEST(TransportTest, InvalidProblemsAreConfigErrors) {
  TransportProblem p = Channel(10, 10.0, 1.0, 1.0, 1.0);
  p.time_step_s = 0.0;
  p.end_time_s = 10.0;
  EXPECT_THROW(TransportSolver(TransportOptions()).Run(p), ConfigError);
  p.time_step_s = 1.0;
  p.segments[3].downstream = 2;
  EXPECT_THROW(TransportSolver(TransportOptions()).Run(p), ConfigError);
  TransportOptions bad;
  bad.max_courant = 1.5;
  std::string error;
  EXPECT_FALSE(bad.IsValid(&error));
  EXPECT_THROW(TransportSolver{bad}, ConfigError);
}

// NaN passes every "< 0" test: each number given through the API must be checked to be
// finite, with a message that names the field and the index.
TEST(TransportTest, NonFiniteNumbersAreConfigErrorsNamingTheField) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto expect_error = [](const TransportProblem& q, const std::string& fragment) {
    try {
      TransportSolver(TransportOptions()).Run(q);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  TransportProblem p = Channel(10, 10.0, 1.0, 1.0, 1.0);
  p.time_step_s = 1.0;
  p.end_time_s = 10.0;
  TransportProblem q = p;
  q.segments[4].dispersion_m2s = nan;
  expect_error(q, "segment 4: dispersion");
  q = p;
  q.flow.states[0].flow_m3s[6] = nan;
  expect_error(q, "flow_m3s[6]");
  q = p;
  q.flow.states[0].area_m2[2] = -1.0;
  expect_error(q, "area_m2[2]");
  q = p;
  SetDecay(&q, 1e-4);
  q.segments[1].decay_per_s[0] = nan;
  expect_error(q, "segment 1: decay_per_s[0]");
  q = p;
  q.time_step_s = inf;
  expect_error(q, "time_step_s");
  q = p;
  q.members[0].initial_concentration_g_m3.assign(10, 0.0);
  q.members[0].initial_concentration_g_m3[3] = inf;
  expect_error(q, "initial_concentration_g_m3[3]");
}

// Issue #14: a release of mass M over [t0, t1] with t0 and t1 off the step grid puts exactly
// M into the river, and the plume's centroid is where a release centred on (t0 + t1) / 2
// puts it. The reference is the same release on steps of 10 s (60x finer); the measure is
// the centroid of the mass in the channel, x_c = sum x C V / sum C V, at common output
// times, converted to a time through the velocity. Before the load split (EdgeLoads) the
// 600 s step put a release inside one step at the step's midpoint: 0.25 step late here.
TEST(TransportTest, ReleaseOffTheStepGridEntersWithItsMassAndCentroid) {
  const double dx = 50.0, Q = 2.0, A = 4.0, u = Q / A, M = 5.0e5;  // g
  auto run = [&](double dt, double t0, double t1) {
    TransportProblem p = Channel(400, dx, Q, A, 5.0);  // 20 km, 0.5 m/s
    PointLoad l;
    l.segment = 40;  // centre 2025 m
    l.load_g_s.interpolation = TimeSeries::Interpolation::kStep;
    l.load_g_s.times_s = {0.0, t0, t1};
    l.load_g_s.values = {0.0, M / (t1 - t0), 0.0};
    p.members[0].loads = {l};
    p.start_time_s = 0.0;
    p.end_time_s = 6 * 3600.0;
    p.time_step_s = dt;
    for (double t = 1800.0; t <= p.end_time_s + 1; t += 1800.0) p.output_times_s.push_back(t);
    return TransportSolver(TransportOptions{}).Run(p);
  };
  auto centroid_x = [&](const TransportResult& r, int t) {
    double m = 0, mx = 0;
    for (int i = 0; i < r.num_segments; ++i) {
      const double c = r.Concentration(0, t, i, 0) * A * dx;
      m += c;
      mx += c * (i + 0.5) * dx;
    }
    return std::make_pair(m, mx / m);
  };
  const double dt = 600.0;
  // Releases inside one step, across step boundaries, and starting on a step.
  const double cases[][2] = {{60.0, 240.0}, {1300.0, 1500.0}, {1290.0, 3010.0}, {1800.0, 2100.0}};
  for (const auto& c : cases) {
    const TransportResult coarse = run(dt, c[0], c[1]), fine = run(10.0, c[0], c[1]);
    EXPECT_NEAR(coarse.summary.mass_balance[0].point_load_g, M, 1e-9 * M);
    for (int t = 2; t < coarse.num_times; ++t) {  // from 1.5 h on: every release is in
      const auto [m, xc] = centroid_x(coarse, t);
      const auto [mf, xf] = centroid_x(fine, t);
      EXPECT_NEAR(m, M, 1e-9 * M) << "release " << c[0] << "-" << c[1] << " s";
      const double lag_s = (xf - xc) / u;  // > 0: the coarse plume entered late
      EXPECT_LT(std::fabs(lag_s), 0.1 * dt)
          << "release " << c[0] << "-" << c[1] << " s, output " << coarse.times_s[t] << " s";
      if (t == coarse.num_times - 1) {
        std::printf("release %.0f-%.0f s, step %.0f s: centroid %+.2f s from the 10 s run\n",
                    c[0], c[1], dt, lag_s);
      }
    }
  }
}

// OTIS starts every dynamic run from the steady state of TSTART's forcing
// (Forcing::initial_steady_state): a run whose forcing never changes stays there, with
// storage, decay and lateral inflow (to the steady solver's tolerance).
TEST(TransportTest, SteadyInitialStateIsStationary) {
  TransportProblem p = Channel(120, 10.0, 0.5, 1.0, 2.0);
  for (Segment& g : p.segments) {
    g.decay_per_s = {3e-5};
    g.storage_decay_per_s = {1e-5};
    g.storage_area_m2 = 0.4;
    g.exchange_per_s = 2e-4;
  }
  p.flow.states[0].lateral_inflow_m2s.assign(120, 1e-4);
  p.flow.states[0].lateral_concentration_g_m3.assign(120, 0.3);
  for (int i = 0; i < 120; ++i) p.flow.states[0].flow_m3s[i] = 0.5 + 1e-4 * 10.0 * (i + 1);
  UpstreamBoundary b;
  b.series = {TimeSeries::Constant(4.0)};
  p.members[0].boundaries = {b};
  p.members[0].initial_steady_state = true;
  p.start_time_s = 0.0;
  p.end_time_s = 7200.0;
  p.time_step_s = 30.0;
  for (auto advection :
       {TransportOptions::Advection::kLimitedLaxWendroff, TransportOptions::Advection::kSspRk2}) {
    TransportOptions o;
    o.advection = advection;
    const TransportResult r = TransportSolver(o).Run(p);
    ASSERT_EQ(r.num_times, 2);
    double drift = 0, peak = 0;
    for (int i = 0; i < 120; ++i) {
      peak = std::max(peak, r.Concentration(0, 0, i, 0));
      drift =
          std::max(drift, std::fabs(r.Concentration(0, 1, i, 0) - r.Concentration(0, 0, i, 0)));
    }
    EXPECT_GT(r.Concentration(0, 0, 0, 0), r.Concentration(0, 0, 119, 0) + 0.5);  // not uniform
    // Time stepping keeps the split scheme's own steady state up to its splitting error,
    // O(dt^2): 30 s steps here (docs/methods.md section 3, "Known limitation").
    std::printf("steady start, advection %d: largest drift over 2 h %.3e of the peak %.3f\n",
                static_cast<int>(advection), drift / peak, peak);
    EXPECT_LT(drift / peak, 2e-3);
  }
}

// Issue #14, the step problem: one reach, u = 0.4 m/s, D = 2 m2/s, decay 5e-5 /s, a
// concentration boundary 0 -> 40 mg/L at 0.5 h (1800 s) and back to 0 at 1.5 h, stations at
// 500 / 2500 / 4500 m (interpolated between centres), printed every 36 s to 5.5 h.
struct StepDeck {
  static constexpr double u = 0.4, D = 2.0, lam = 5e-5, length = 6000.0, every = 36.0;
  static constexpr double xs[3] = {500.0, 2500.0, 4500.0};
  // Runkel's (1996) exact solution at station q and time t.
  static double Exact(int q, double t) {
    return StepResponse(xs[q], t - 1800.0, u, D, lam, 40.0) -
           StepResponse(xs[q], t - 5400.0, u, D, lam, 40.0);
  }
  // The default scheme with n segments and step dt: the result (3 stations).
  static TransportResult Run(int n, double dt, TransportOptions o = TransportOptions()) {
    const double dx = length / n;
    TransportProblem p = Channel(n, dx, 0.4, 1.0, D);
    for (Segment& g : p.segments) g.decay_per_s = {lam};
    UpstreamBoundary b;
    TimeSeries ts;
    ts.interpolation = TimeSeries::Interpolation::kStep;
    ts.times_s = {0.0, 1800.0, 5400.0};
    ts.values = {0.0, 40.0, 0.0};
    b.series = {ts};
    p.members[0].boundaries = {b};
    p.start_time_s = 0.0;
    p.end_time_s = 5.5 * 3600.0;
    p.time_step_s = dt;
    for (double t = every; t <= p.end_time_s + 1e-9; t += every) p.output_times_s.push_back(t);
    for (double x : xs) {
      const int k = static_cast<int>(x / dx - 0.5);
      p.stations.push_back(Station{k, k + 1, (x - Centre(k, dx)) / dx});
    }
    o.store_fields = false;
    return TransportSolver(o).Run(p);
  }
};

// Grid and step refined together at Courant 0.72 (dx = 20 .. 2.5 m, dt = 36 .. 4.5 s). The
// pulse's centroid arrival time must be within 0.1 step of the exact one at every level
// (the boundary enters at the right time); the L1 error (over the print times, all
// stations) and its observed order are printed.
TEST(TransportTest, StepBoundaryCentroidArrivesOnTime) {
  double prev = 0.0;
  for (int level = 0; level < 4; ++level) {
    const int n = 300 << level;
    const double dx = StepDeck::length / n, dt = 36.0 / (1 << level);
    const TransportResult r = StepDeck::Run(n, dt);
    double l1 = 0.0;
    for (int q = 0; q < 3; ++q) {
      double m = 0, mt = 0, me = 0, mte = 0;
      for (int t = 0; t < r.num_times; ++t) {
        const double tt = r.times_s[t];
        const double exact = StepDeck::Exact(q, tt);
        const double c = r.StationConcentration(0, t, q, 0);
        l1 += std::fabs(c - exact) * StepDeck::every;
        m += c;
        mt += c * tt;
        me += exact;
        mte += exact * tt;
      }
      const double lag = (mt / m - mte / me) / dt;  // in steps
      EXPECT_LT(std::fabs(lag), 0.1) << "dx " << dx << " m, station " << StepDeck::xs[q] << " m";
      std::printf("step problem dx %5.2f m dt %5.2f s: centroid %+.3f steps at %.0f m\n", dx, dt,
                  lag, StepDeck::xs[q]);
    }
    std::printf("step problem dx %5.2f m dt %5.2f s: L1 error %.4g mg/L s", dx, dt, l1);
    if (prev > 0) std::printf(", observed order %.2f", std::log2(prev / l1));
    std::printf("\n");
    prev = l1;
  }
}

// Issue #14: the time error at a fixed grid for the piecewise-constant boundary. The
// issue's grid (10 m, 600 segments), the step halved from 18 s (Courant 0.72) to 2.25 s;
// the time error is the L1 distance (print times x stations) to the same grid's
// converged-in-time run (dt = 18/64 s, whose own time error is ~1/8 of the finest level's
// at first order). Measured 2026-12-07: 317, 176, 91, 44 mg/L s, orders 0.85, 0.95, 1.05.
// The target, order >= 1.8, is NOT met by this (default) scheme (the opt-in
// Advection::kSspRk2 meets it: StepBoundaryTimeErrorAtAFixedGridSspRk2), and this test
// pins what the method does deliver, first order, so that a change that loses it fails: the limited Lax-Wendroff
// step couples its time and space errors (van Leer: a dx dt term; even unlimited
// Lax-Wendroff has a dt dx^2 term), and the Dirichlet face's dispersive flux, split from
// the advection, adds a first-order term of its own (docs/methods.md section 4). The
// pulse's centroid must arrive within 0.1 step of the converged-in-time run's at every
// step: the boundary's timing is not where the time error comes from.
TEST(TransportTest, StepBoundaryTimeErrorAtAFixedGrid) {
  const int n = 600;
  const TransportResult ref = StepDeck::Run(n, 18.0 / 64);
  double ref_centroid[3];
  for (int q = 0; q < 3; ++q) {
    double m = 0, mt = 0;
    for (int t = 0; t < ref.num_times; ++t) {
      m += ref.StationConcentration(0, t, q, 0);
      mt += ref.StationConcentration(0, t, q, 0) * ref.times_s[t];
    }
    ref_centroid[q] = mt / m;
  }
  double prev = 0.0;
  for (double dt : {18.0, 9.0, 4.5, 2.25}) {
    const TransportResult r = StepDeck::Run(n, dt);
    ASSERT_EQ(r.num_times, ref.num_times);
    double l1 = 0.0;
    for (int q = 0; q < 3; ++q) {
      double m = 0, mt = 0;
      for (int t = 0; t < r.num_times; ++t) {
        const double c = r.StationConcentration(0, t, q, 0);
        l1 += std::fabs(c - ref.StationConcentration(0, t, q, 0)) * StepDeck::every;
        m += c;
        mt += c * r.times_s[t];
      }
      const double lag = (mt / m - ref_centroid[q]) / dt;
      EXPECT_LT(std::fabs(lag), 0.1) << "dt " << dt << " s, station " << StepDeck::xs[q] << " m";
    }
    std::printf("step problem, fixed 10 m grid, dt %5.2f s: time error (L1) %.4g mg/L s", dt, l1);
    if (prev > 0) {
      const double order = std::log2(prev / l1);
      std::printf(", observed order %.2f", order);
      EXPECT_GE(order, 0.8) << "dt " << 2 * dt << " -> " << dt << " s";
    }
    std::printf("\n");
    prev = l1;
  }
}


// Issue #14, order in time at a fixed grid, the reason Advection::kSspRk2 exists: the
// same deck, grid, steps and reference as StepBoundaryTimeErrorAtAFixedGrid (the reference
// is this scheme's own run at dt = 18/64 s). Method of lines with Heun's method and a
// Strang split second-order in time: the L1 time error must fall at least as 2^1.8 per
// halving (measured 2026-12-08: 165.9, 42.61, 10.74, 2.747 mg/L s, orders 1.96, 1.99,
// 1.97), and the pulse's centroid must arrive within 0.1 step of the reference's and of
// the exact one (Runkel 1996) at every step. The error against the exact solution is
// printed: it is the semi-discrete scheme's spatial error (~490 mg/L s at this grid),
// larger than the default scheme's at Courant 0.72 (217), docs/methods.md section 4.
TEST(TransportTest, StepBoundaryTimeErrorAtAFixedGridSspRk2) {
  TransportOptions o;
  o.advection = TransportOptions::Advection::kSspRk2;
  const int n = 600;
  const TransportResult ref = StepDeck::Run(n, 18.0 / 64, o);
  double ref_centroid[3], exact_centroid[3];
  for (int q = 0; q < 3; ++q) {
    double m = 0, mt = 0, me = 0, mte = 0;
    for (int t = 0; t < ref.num_times; ++t) {
      const double tt = ref.times_s[t], exact = StepDeck::Exact(q, tt);
      m += ref.StationConcentration(0, t, q, 0);
      mt += ref.StationConcentration(0, t, q, 0) * tt;
      me += exact;
      mte += exact * tt;
    }
    ref_centroid[q] = mt / m;
    exact_centroid[q] = mte / me;
  }
  double prev = 0.0;
  for (double dt : {18.0, 9.0, 4.5, 2.25}) {
    const TransportResult r = StepDeck::Run(n, dt, o);
    ASSERT_EQ(r.num_times, ref.num_times);
    EXPECT_LT(MaxRelativeMassError(r), 1e-10);
    double l1 = 0.0, l1_exact = 0.0;
    for (int q = 0; q < 3; ++q) {
      double m = 0, mt = 0;
      for (int t = 0; t < r.num_times; ++t) {
        const double c = r.StationConcentration(0, t, q, 0);
        l1 += std::fabs(c - ref.StationConcentration(0, t, q, 0)) * StepDeck::every;
        l1_exact += std::fabs(c - StepDeck::Exact(q, r.times_s[t])) * StepDeck::every;
        m += c;
        mt += c * r.times_s[t];
      }
      const double lag = (mt / m - ref_centroid[q]) / dt;
      const double lag_exact = (mt / m - exact_centroid[q]) / dt;
      EXPECT_LT(std::fabs(lag), 0.1) << "dt " << dt << " s, station " << StepDeck::xs[q] << " m";
      std::printf("step problem, SSP-RK2, dt %5.2f s: centroid %+.4f steps (reference), %+.4f "
                  "steps (exact) at %.0f m\n", dt, lag, lag_exact, StepDeck::xs[q]);
    }
    std::printf("step problem, SSP-RK2, fixed 10 m grid, dt %5.2f s: time error (L1) %.4g mg/L s,"
                " error against the exact solution %.4g mg/L s", dt, l1, l1_exact);
    if (prev > 0) {
      const double order = std::log2(prev / l1);
      std::printf(", observed order %.2f", order);
      EXPECT_GE(order, 1.8) << "dt " << 2 * dt << " -> " << dt << " s";
    }
    std::printf("\n");
    prev = l1;
  }
}

}  // namespace
}  // namespace qingshui::transport
