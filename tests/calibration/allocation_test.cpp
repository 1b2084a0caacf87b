// Load allocation. Checked against closed forms: for a conservative species at steady
// state (complete mixing, C = sum Q_j c_j / Q) with no uncertainty, the cost-optimal
// allocation removes at the cheapest source first, exactly the excess flux, and the target's
// shadow price is 86.4 Q cost_cheapest (CNY/d per mg/L); the forward Monte Carlo of full
// model runs confirms the stated probability under flow uncertainty; targets that no
// allowed effluent can meet are reported as infeasible with the best probability.
#include "qingshui/calibration/allocation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "qingshui/core/error.h"
#include "test_paths.h"

namespace qingshui::calibration {
namespace {

// The shared test river (tests/data/calibration_river.yaml).
const std::string kRiver = qingshui::testing::ReadSourceFile("tests/data/calibration_river.yaml");

AllocationProblem Problem() {
  AllocationProblem p;
  p.date = "2024-04-01";
  p.probability = 0.9;
  p.targets = {{"end", "F", 0.8, ""}};
  ControllableSource a, b;
  a.id = "a";
  b.id = "b";
  a.min_mg_l = {{"F", 0.5}};
  b.min_mg_l = {{"F", 0.5}};
  a.cost_per_kg = {{"F", 10.0}};
  b.cost_per_kg = {{"F", 20.0}};
  p.sources = {a, b};
  p.objective = "cost";
  p.scenarios = 10;
  p.verification_scenarios = 5;
  return p;
}

TEST(Allocate, CheapestSourceFirstWithTheClosedFormShadowPrice) {
  const Network net = ParseNetwork(kRiver, "river.yaml");
  const AllocationResult r = Allocate(net, Problem());
  std::printf("%s", r.BriefReport().c_str());
  ASSERT_TRUE(r.feasible) << r.message;
  const double q = 1.4, background = 0.8 * 0.5 + 0.3 * 0.9;            // headwater fluxes, g/s
  const double excess = background + 0.2 * 1.5 + 0.1 * 3.0 - 0.8 * q;  // g/s to remove
  ASSERT_EQ(r.limits.size(), 2u);
  // Steady solver tolerance (1e-11 per iteration, slow convergence): ~1e-8 relative.
  EXPECT_NEAR(r.limits[0].limit_mg_l, 1.5 - excess / 0.2, 1e-6);
  EXPECT_NEAR(r.limits[1].limit_mg_l, 3.0, 1e-9);
  EXPECT_NEAR(r.objective, excess * 86.4 * 10.0, 1e-4);
  ASSERT_EQ(r.targets.size(), 1u);
  EXPECT_TRUE(r.targets[0].binding);
  EXPECT_NEAR(r.targets[0].shadow_price, 86.4 * q * 10.0, 1e-3);
  EXPECT_NEAR(r.targets[0].margin_mg_l, 0.0, 1e-7);
  // Deterministic: the full model at the limits sits on the target (met up to 1e-8).
  EXPECT_LT(r.max_linearization_error_mg_l, 1e-7);
}

TEST(Allocate, ForwardMonteCarloConfirmsTheProbability) {
  const Network net = ParseNetwork(kRiver, "river.yaml");
  AllocationProblem p = Problem();
  p.objective = "removal";
  p.headwater_flow = {Uncertain::Kind::kLognormal, 1.0, 0.3, "test"};
  p.source_flow = {Uncertain::Kind::kNormal, 1.0, 0.1, "test"};
  p.scenarios = 100;
  p.verification_scenarios = 200;
  const AllocationResult r = Allocate(net, p);
  std::printf("%s", r.BriefReport().c_str());
  ASSERT_TRUE(r.feasible) << r.message;
  // The in-sample level is p plus a one-sided 95% binomial margin; fresh months must meet
  // the target at least as often as p up to the sampling error of 200 runs (Wilson upper
  // bound above p).
  EXPECT_GE(r.in_sample_probability, p.probability);
  EXPECT_GE(r.verified_high, p.probability);
  EXPECT_LT(r.current_probability, p.probability);  // today's effluents fail
  for (const auto& l : r.limits) EXPECT_LE(l.limit_mg_l, l.current_mg_l + 1e-12);
}

TEST(Allocate, UnreachableTargetsAreReported) {
  const Network net = ParseNetwork(kRiver, "river.yaml");
  AllocationProblem p = Problem();
  p.targets[0].limit_mg_l = 0.3;  // below the headwaters' own mix (0.48 mg/L)
  const AllocationResult r = Allocate(net, p);
  EXPECT_FALSE(r.feasible);
  EXPECT_NE(r.message.find("cannot be met"), std::string::npos) << r.message;
  for (const auto& l : r.limits) EXPECT_DOUBLE_EQ(l.limit_mg_l, l.min_mg_l);
}

TEST(Allocate, ReadsTheShippedAllocationFile) {
  const AllocationProblem p =
      ReadAllocationFile(testing::SourcePath("data/yuncheng/allocation.yaml"));
  EXPECT_EQ(p.date, "2024-05-15");
  EXPECT_DOUBLE_EQ(p.probability, 0.9);
  ASSERT_EQ(p.targets.size(), 3u);
  EXPECT_EQ(p.targets[2].species, "TP");
  EXPECT_EQ(p.targets[2].target_class, "III");
  EXPECT_GE(p.sources.size(), 9u);
  // Every number carries its provenance.
  for (const auto& s : p.sources) {
    for (const auto& [key, src] : s.src) EXPECT_FALSE(src.empty()) << s.id << " " << key;
  }
  EXPECT_EQ(p.temperature_c.kind, Uncertain::Kind::kUniform);
  EXPECT_FALSE(p.decay.at("NH3N").src.empty());
  const std::string dir = testing::TempDir("alloc-bad");
  std::ofstream(dir + "/a.yaml")
      << "date: 2024-05-15\ntargets:\n  - {station: x, species: COD}\nsources: []\n";
  try {
    ReadAllocationFile(dir + "/a.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("a.yaml:3: targets[0]: give a class"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace qingshui::calibration
