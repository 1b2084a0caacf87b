// The mass prior bounds every fit (issue #21 item 1, "absurd masses decide answers";
// docs/tracing.md §6, "Mass bound").
//  * The field failure: a release at the Xia county plant on the Yaoxian canal in June, seen
//    at one station of the canal (yaoxian_yanhu_yongji) among four sampled 6-hourly. Before
//    the bound, the leading hypotheses (together 0.90) paired the true source with a
//    release whose kernel barely reaches any station (beimentan_wetland 9.7e55 kg COD,
//    yazichi_outflow 4.5e88 kg, xiyuan_lake_outflow 3.6e10 kg): an unbounded mass fitted a
//    few samples, and the evidence counted that fit without the prior's penalty. The truth
//    alone had 0.06. Every hypothesis must now stay inside the prior's support, and the
//    single release the data show must lead.
//  * The bounded least squares behind it, against a brute-force minimization.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../../tracing/src/tracer_model.h"
#include "qingshui/tracing/scenario.h"
#include "qingshui/tracing/tracer.h"
#include "test_paths.h"
#include "tracing_fixtures.h"

namespace qingshui::tracing {
namespace {

using fixtures::Default;  // tests/tracing/tracing_fixtures.h

using fixtures::Priors;

TEST(TracerMassBound, NoAbsurdMassWithAWeaklySeenRelease) {
  const std::string text = R"(
start: 2024-06-15T00:00+08:00
end: 2024-06-20T00:00+08:00
hydrology: {velocity_factor: 0.764, dispersion_factor: 0.763}
events:
  - {source: xia_county_wwtp, start: 2024-06-16T05:43+08:00, duration_h: 10.16,
     mass_kg: {COD: 4872, NH3N: 243.5, TP: 67.9}}
sampling: {interval_h: 6, noise: 0.1, seed: 489,
           stations: [yaoxian_yanhu_yongji, miaoqian, zhangliuzhuang, fen_xinjiang_jishan]}
)";
  const Scenario sc = ParseScenario(text, "june_yaoxian.yaml", Default());
  ObservationSet obs;
  obs.rows = RunScenario(Default(), sc).observations;
  TraceOptions o;
  o.priors = Priors();
  const TraceResult r = Trace(Default(), obs, o);
  ASSERT_FALSE(r.hypotheses.empty());

  // The bound of the reference species is the end of its log-uniform prior (1000 t).
  const double bound_kg = Priors().mass_max_kg;
  for (const auto& h : r.hypotheses) {
    for (const auto& s : h.sources) {
      std::printf("%.4f %-45s %-22s COD %.3g kg\n", h.probability, h.label.c_str(), s.id.c_str(),
                  s.mass_kg.at("COD"));
      if (h.probability >= 0.01) {
        EXPECT_LE(s.mass_kg.at("COD"), bound_kg) << h.label << " (P " << h.probability << ")";
      }
      // Every hypothesis kept, likely or not, and every interval stay inside the support.
      EXPECT_LE(s.mass_kg.at("COD"), bound_kg * (1 + 1e-12)) << h.label;
      EXPECT_LE(s.mass_kg_ci90.at("COD")[1], bound_kg * (1 + 1e-12)) << h.label;
    }
  }
  // The data show one plume at one station: a single release leads, and the source that
  // made it is in the 90% set.
  EXPECT_EQ(r.hypotheses[0].sources.size(), 1u) << r.hypotheses[0].label;
  bool truth_in_set = false;
  for (const auto& l : r.credible_set_90) truth_in_set = truth_in_set || l == "xia_county_wwtp";
  EXPECT_TRUE(truth_in_set);
}

// min m'Gm − 2h'm over the box 0 <= m <= u, n = 1-3: the enumeration of zero / free / upper
// states is exact for this convex problem; checked against projected gradient descent run
// to convergence (a different method reaching the same unique minimum).
TEST(TracerMassBound, BoundedLeastSquaresIsExact) {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> z(0.0, 1.0);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + trial % 3;
    double A[9], G[9] = {0}, h[3], u[3], m[3];
    for (double& a : A) a = z(rng);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < n; ++j) {
        for (int k = 0; k < n; ++k) G[i * n + j] += A[k * n + i] * A[k * n + j];
      }
      G[i * n + i] += 0.05;  // positive definite
      h[i] = 3 * z(rng);
      u[i] = trial % 5 == 0 && i == 0 ? INFINITY : std::fabs(z(rng));
    }
    const double q = detail::SmallBoundedLs(n, G, h, u, m);
    for (int i = 0; i < n; ++i) {
      EXPECT_GE(m[i], 0.0);
      EXPECT_LE(m[i], u[i]);
    }
    // Projected gradient descent with step 1/λ_max (λ_max <= trace).
    double x[3] = {0, 0, 0}, tr = 0;
    for (int i = 0; i < n; ++i) tr += G[i * n + i];
    for (int it = 0; it < 200000; ++it) {
      for (int i = 0; i < n; ++i) {
        double g = -h[i];
        for (int j = 0; j < n; ++j) g += G[i * n + j] * x[j];
        x[i] = std::clamp(x[i] - g / tr, 0.0, u[i]);
      }
    }
    double qx = 0;
    for (int i = 0; i < n; ++i) {
      qx -= 2 * h[i] * x[i];
      for (int j = 0; j < n; ++j) qx += x[i] * G[i * n + j] * x[j];
    }
    EXPECT_NEAR(q, qx, 1e-8 * (1 + std::fabs(qx))) << "trial " << trial;
    EXPECT_LE(q, qx + 1e-9 * (1 + std::fabs(qx))) << "trial " << trial;
  }
}

}  // namespace
}  // namespace qingshui::tracing
