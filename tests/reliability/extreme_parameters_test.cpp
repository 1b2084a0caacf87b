// Extreme but legal parameters (issue #9, item 4): zero flow, very high dispersion, tiny
// and huge time steps, a reach of one segment, and randomized networks mixing them. Each
// case states the behaviour the engine guarantees (docs/reliability.md, "Numerical
// robustness"): finite, non-negative concentrations within the bounds of the data
// (maximum principle of advection-dispersion-decay without sources), and the mass balance
// closed to round-off. NaN and infinite values in an OTIS deck are rejected with their
// file, line and field.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "qingshui/core/error.h"
#include "qingshui/core/otis.h"
#include "qingshui/core/transport.h"
#include "transport_fixtures.h"
#include "test_paths.h"

namespace qingshui::transport {
namespace {

// Mass balance: the engine closes it to round-off on steady flow (transport_test.cpp uses
// the same bound).
constexpr double kMassTolerance = 1e-10;

using fixtures::Channel;  // tests/transport_fixtures.h

void Boundary(TransportProblem* p, double c) {
  UpstreamBoundary b;
  b.segment = 0;
  b.kind = UpstreamBoundary::Kind::kConcentration;
  b.series = {TimeSeries::Constant(c)};
  p->members[0].boundaries = {b};
}

// Every stored value finite and within [lo, hi] (relative round-off allowed).
void ExpectBounded(const TransportResult& r, double lo, double hi, const std::string& what) {
  const double slack = 1e-12 * std::max(1.0, std::fabs(hi));
  for (double c : r.concentration_g_m3) {
    ASSERT_TRUE(std::isfinite(c)) << what;
    ASSERT_GE(c, lo - slack) << what;
    ASSERT_LE(c, hi + slack) << what;
  }
}

// One segment: inflow at C0 flushes the only cell; the steady state is C0 exactly and the
// approach is monotone (residence time V/Q = 100 s, run 1 day: e^-864 of the start left).
TEST(ExtremeParameters, OneSegmentReachFlushesToTheInflowConcentration) {
  TransportProblem p = Channel(1, 100.0, 1.0, 1.0, 1.0);
  Boundary(&p, 5.0);
  p.end_time_s = 86400.0;
  p.time_step_s = 600.0;
  for (int k = 0; k <= 24; ++k) p.output_times_s.push_back(3600.0 * k);
  const TransportResult r = TransportSolver(TransportOptions()).Run(p);
  ExpectBounded(r, 0.0, 5.0, "one segment");
  EXPECT_NEAR(r.Concentration(0, r.num_times - 1, 0, 0), 5.0, 1e-9);
  for (int k = 1; k < r.num_times; ++k) {
    EXPECT_GE(r.Concentration(0, k, 0, 0), r.Concentration(0, k - 1, 0, 0) - 1e-12);
  }
  EXPECT_LT(r.summary.max_relative_mass_error, kMassTolerance);
}

// Zero flow everywhere: a still pond. Dispersion alone spreads a spike; nothing leaves, so
// the mass stays the same, and the maximum principle holds. Without dispersion nothing
// moves at all.
TEST(ExtremeParameters, ZeroFlowConservesMassAndWithoutDispersionNothingMoves) {
  for (double D : {0.5, 0.0}) {
    TransportProblem p = Channel(20, 10.0, 0.0, 1.0, D);
    p.members[0].initial_concentration_g_m3.assign(20, 0.0);
    p.members[0].initial_concentration_g_m3[10] = 100.0;
    p.end_time_s = 1e5;
    p.time_step_s = 500.0;
    const TransportResult r = TransportSolver(TransportOptions()).Run(p);
    ExpectBounded(r, 0.0, 100.0, "zero flow, D = " + std::to_string(D));
    double mass = 0.0;
    for (int i = 0; i < 20; ++i) mass += r.Concentration(0, r.num_times - 1, i, 0) * 10.0;
    EXPECT_NEAR(mass, 1000.0, 1000.0 * kMassTolerance) << "D = " << D;
    if (D == 0.0) {
      for (int i = 0; i < 20; ++i) {
        EXPECT_EQ(r.Concentration(0, r.num_times - 1, i, 0), i == 10 ? 100.0 : 0.0);
      }
    } else {
      EXPECT_LT(r.Concentration(0, r.num_times - 1, 10, 0), 100.0);  // it did spread
    }
  }
}

// Dispersion far above advection (Peclet number u L / D = 1 * 500 / 1e6 = 5e-4): the reach
// mixes almost instantly, so the profile is flat to O(Pe) while inflow at C0 fills it.
TEST(ExtremeParameters, VeryHighDispersionGivesAFlatBoundedProfile) {
  const double D = 1e6, L = 500.0, u = 1.0;
  TransportProblem p = Channel(50, 10.0, 1.0, 1.0, D);
  Boundary(&p, 2.0);
  p.end_time_s = 3600.0;
  p.time_step_s = 60.0;
  const TransportResult r = TransportSolver(TransportOptions()).Run(p);
  ExpectBounded(r, 0.0, 2.0, "D = 1e6");
  double lo = 1e300, hi = 0.0;
  for (int i = 0; i < 50; ++i) {
    lo = std::min(lo, r.Concentration(0, r.num_times - 1, i, 0));
    hi = std::max(hi, r.Concentration(0, r.num_times - 1, i, 0));
  }
  EXPECT_GT(hi, 1.9);  // 7 residence times: 2 (1 - e^-7.2) = 1.9985 when fully mixed
  EXPECT_LT((hi - lo) / hi, 10 * u * L / D);
  // The implicit dispersion solve loses digits in proportion to its diffusion number
  // D dt / dx^2 = 6e5 (condition number): round-off is ~ 6e5 * 2.2e-16 = 1.3e-10 per
  // step here (measured 1.6e-10), so the bound is 10 eps D dt / dx^2 instead of 1e-10.
  const double diffusion_number = D * 60.0 / (10.0 * 10.0);
  EXPECT_LT(r.summary.max_relative_mass_error,
            std::max(kMassTolerance, 10 * 2.2e-16 * diffusion_number));
}

// Tiny step (1 ms, 10 000 steps) and a step longer than the whole run (1e7 s > 1e6 s):
// both are legal. The tiny step gives the same answer as a 1 s step to the scheme's
// second-order time error; the huge step is shortened to land on the end time and the
// reach, flushed 10^4 times over, holds the inflow concentration.
TEST(ExtremeParameters, TinyAndHugeTimeSteps) {
  auto run = [](double dt, double end) {
    TransportProblem p = Channel(30, 10.0, 1.0, 2.0, 1.0);
    p.members[0].initial_concentration_g_m3.assign(30, 0.0);
    for (int i = 5; i < 10; ++i) p.members[0].initial_concentration_g_m3[i] = 4.0;
    Boundary(&p, 0.0);
    p.end_time_s = end;
    p.time_step_s = dt;
    return TransportSolver(TransportOptions()).Run(p);
  };
  const TransportResult tiny = run(1e-3, 10.0), coarse = run(1.0, 10.0);
  ExpectBounded(tiny, 0.0, 4.0, "dt = 1 ms");
  EXPECT_EQ(tiny.summary.num_steps, 10000);
  EXPECT_LT(tiny.summary.max_relative_mass_error, kMassTolerance);
  double diff = 0.0;
  for (int i = 0; i < 30; ++i) {
    diff = std::max(diff, std::fabs(tiny.Concentration(0, 1, i, 0) - coarse.Concentration(0, 1, i, 0)));
  }
  // Courant 0.05 per second: the 1 s run's splitting/time error is a few per cent of the
  // 4 g/m3 front at most; the runs must agree to that, not to round-off.
  EXPECT_LT(diff, 0.2);

  TransportProblem p = Channel(30, 10.0, 1.0, 2.0, 1.0);
  Boundary(&p, 3.0);
  p.end_time_s = 1e6;
  p.time_step_s = 1e7;
  const TransportResult huge = TransportSolver(TransportOptions()).Run(p);
  ExpectBounded(huge, 0.0, 3.0, "dt = 1e7 s");
  for (int i = 0; i < 30; ++i) EXPECT_NEAR(huge.Concentration(0, 1, i, 0), 3.0, 1e-9);
  EXPECT_LT(huge.summary.max_relative_mass_error, kMassTolerance);
}

// Property test: random chains with dispersion log-uniform in [1e-6, 1e6] m2/s, time steps
// log-uniform in [1, 1e5] s, some segments without flow, decay, a step-pulse inflow. No
// NaN, no negative value, nothing above the largest input, mass balance closed to
// round-off scaled by the implicit solve's diffusion number (see above).
//
// Defined limit: the positive implicit step sub-steps until the diffusion number of a
// sub-step is small enough to be provably positive; when D dt / dx^2 asks for more than
// TransportOptions::max_substeps (10^6) sub-steps, the run stops with a SolverError naming
// the count (CLI exit code 1) instead of running for hours. Such trials are counted.
TEST(ExtremeParameters, RandomizedExtremesStayFiniteNonNegativeAndBounded) {
  int completed = 0, refused = 0;
  std::mt19937 rng(20261129);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  auto log_uniform = [&](double lo, double hi) { return lo * std::pow(hi / lo, U(rng)); };
  for (int trial = 0; trial < 12; ++trial) {
    const int n = 1 + static_cast<int>(U(rng) * 25);
    const double Q = U(rng) < 0.25 ? 0.0 : log_uniform(1e-3, 10.0);
    TransportProblem p = Channel(n, log_uniform(1.0, 500.0), Q, log_uniform(0.1, 50.0),
                                 log_uniform(1e-6, 1e6));
    for (auto& s : p.segments) {
      s.length_m = log_uniform(1.0, 500.0);
      s.dispersion_m2s = log_uniform(1e-6, 1e6);
      s.decay_per_s = {U(rng) < 0.5 ? 0.0 : log_uniform(1e-8, 1e-3)};
    }
    const double c = 100.0 * U(rng);
    UpstreamBoundary b;
    b.kind = UpstreamBoundary::Kind::kConcentration;
    TimeSeries pulse;
    pulse.times_s = {0.0, 3600.0, 7200.0};
    pulse.values = {c, 0.0, 0.0};
    pulse.interpolation = TimeSeries::Interpolation::kStep;
    b.series = {pulse};
    p.members[0].boundaries = {b};
    p.members[0].initial_concentration_g_m3.resize(n);
    double cmax = c;
    for (double& x : p.members[0].initial_concentration_g_m3) {
      x = 50.0 * U(rng);
      cmax = std::max(cmax, x);
    }
    p.end_time_s = 6 * 3600.0;
    p.time_step_s = log_uniform(1.0, 1e5);
    double diffusion_number = 0.0;
    for (const auto& s : p.segments) {
      diffusion_number = std::max(diffusion_number,
                                  s.dispersion_m2s * p.time_step_s / (s.length_m * s.length_m));
    }
    TransportResult r;
    try {
      r = TransportSolver(TransportOptions()).Run(p);
    } catch (const SolverError& e) {
      EXPECT_NE(std::string(e.what()).find("sub-steps"), std::string::npos) << e.what();
      ++refused;
      continue;
    }
    ++completed;
    ExpectBounded(r, 0.0, cmax, "trial " + std::to_string(trial));
    EXPECT_LT(r.summary.max_relative_mass_error,
              std::max(kMassTolerance, 10 * 2.2e-16 * diffusion_number))
        << "trial " << trial;
  }
  std::printf("randomized extremes: %d completed, %d refused (sub-step limit)\n", completed,
              refused);
  EXPECT_GE(completed, 2 * refused);
}

}  // namespace
}  // namespace qingshui::transport

namespace qingshui {
namespace {

// OTIS decks: "nan", "inf" and 1e999 (which strtod turns into infinity) are rejected where
// they stand, with the file, line and field.
TEST(ExtremeParameters, NonFiniteNumbersInAnOtisDeckAreLocatedConfigErrors) {
  const std::filesystem::path app1 = testing::SourcePath("tests/regression/otis/app1");
  for (const char* bad : {"nan", "inf", "-Infinity", "1e999"}) {
    const std::filesystem::path dir = testing::TempDir("otis-nan");
    for (const char* f : {"control.inp", "q.inp"}) std::filesystem::copy_file(app1 / f, dir / f);
    std::ifstream in(app1 / "params.inp");
    std::ofstream out(dir / "params.inp");
    std::string line;
    int line_no = 0, replaced_at = 0;
    while (std::getline(in, line)) {
      ++line_no;
      // TSTEP, the time step: the third non-comment record of params.inp.
      if (!replaced_at && line.find("TSTEP") != std::string::npos) {
        line = std::string(bad) + "   | TSTEP";
        replaced_at = line_no;
      }
      out << line << "\n";
    }
    out.close();
    ASSERT_GT(replaced_at, 0);
    try {
      (void)ReadOtisDeck(dir.string());
      ADD_FAILURE() << bad << " accepted";
    } catch (const ConfigError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind("params.inp:" + std::to_string(replaced_at) + ":", 0), 0u) << what;
      EXPECT_NE(what.find("finite"), std::string::npos) << what;
    }
  }
}

}  // namespace
}  // namespace qingshui
