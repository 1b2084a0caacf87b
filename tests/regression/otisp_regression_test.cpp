// OTIS-P (parameter estimation) on the decks shipped with OTIS: app5 (Clackamas River,
// rhodamine; D, A, A_s, alpha of two reaches, Laenen & Risley 1997) and app6 (St. Kevin
// Gulch, iron; first-order decay of six reach groups at steady state, Kimball et al. 1991),
// each with the variants run2/run3 that restart from the previous run's estimates.
//
// What is checked, and against what:
//  1. the forward model is OTIS-P's: with OTIS-P's own estimates (star.out, 8 digits) our
//     predicted values at the observations equal STARPAC's "PREDICTED VALUE" column to
//     1e-5 of the largest prediction (OTIS prints 8 digits there) and the residual sum of
//     squares equals STARPAC's to 1e-4 relative;
//  2. the estimates (Levenberg-Marquardt to tight tolerances) lie within one of OTIS-P's
//     reported standard errors of OTIS-P's estimates, and our standard errors agree with
//     OTIS-P's to 10% (both are s (J'J)^-1/2; STARPAC's Jacobian is a forward difference);
//  3. known parameters are recovered from synthetic observations: exactly (1e-5) without
//     noise, within two standard errors with noise.
// The numbers are printed side by side (docs/calibration.md quotes them).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "qingshui/calibration/otisp.h"
#include "qingshui/core/error.h"
#include "qingshui/core/otis.h"
#include "test_paths.h"

namespace qingshui {
namespace {

using calibration::EstimateOtisParameters;
using calibration::OtisEstimation;

std::string Deck(const std::string& app) {
  return testing::SourcePath("tests/regression/otis/" + app);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// OTIS-P's reported results for one reach, read from star.out.
struct StarReach {
  int reach = 0;
  std::vector<double> estimate, std_error;  // unfixed parameters, std_error NaN if absent
  std::vector<double> predicted;
  double rss = 0.0;
  bool singular = false;
};

double Number(const std::string& s) {
  std::string t = s;
  for (char& c : t) {
    if (c == 'D') c = 'E';
  }
  return std::stod(t);
}

std::vector<StarReach> ReadStarOut(const std::string& path) {
  std::vector<StarReach> out;
  std::istringstream in(ReadFile(path));
  std::string line;
  static const std::regex header(R"(STARPAC output for Reach #\s*(\d+))");
  static const std::regex est(R"(^\s+\d+\s+NO\s+(\S+)\s*(\S*))");
  enum { kNone, kEstimates, kTable } mode = kNone;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, header)) {
      out.push_back(StarReach{});
      out.back().reach = std::stoi(m[1]);
      mode = kNone;
      continue;
    }
    if (out.empty()) continue;
    StarReach& r = out.back();
    if (line.find("SINGULAR CONVERGENCE") != std::string::npos) r.singular = true;
    if (line.find("ESTIMATES FROM LEAST SQUARES FIT") != std::string::npos) {
      mode = kEstimates;
      r.estimate.clear();
      r.std_error.clear();
      continue;
    }
    if (line.find("ROW             PREDICTOR VALUES") != std::string::npos) {
      mode = kTable;
      r.predicted.clear();
      continue;
    }
    if (line.rfind(" RESIDUAL SUM OF SQUARES  ", 0) == 0 &&
        line.find("INPUT") == std::string::npos) {
      std::istringstream ls(line.substr(line.find("SQUARES") + 7));
      std::string tok;
      ls >> tok;
      r.rss = Number(tok);
    }
    if (mode == kEstimates && std::regex_search(line, m, est)) {
      r.estimate.push_back(Number(m[1]));
      r.std_error.push_back(m[2].length() ? Number(m[2]) : std::nan(""));
    } else if (mode == kTable) {
      std::istringstream ls(line);
      std::vector<std::string> tok;
      std::string t;
      while (ls >> t) tok.push_back(t);
      if (tok.size() >= 4 && std::isdigit(static_cast<unsigned char>(tok[0][0]))) {
        r.predicted.push_back(Number(tok[3]));
      } else if (!tok.empty() && tok[0] != "1" && !r.predicted.empty()) {
        mode = kNone;
      }
    }
  }
  return out;
}

const StarReach& Find(const std::vector<StarReach>& v, int reach) {
  for (const auto& r : v) {
    if (r.reach == reach) return r;
  }
  throw std::runtime_error("reach not in star.out");
}

TEST(OtisPReaderTest, ReadsDataAndStarpacFiles) {
  OtisDeck d = ReadOtisDeck(Deck("app5"));
  ASSERT_TRUE(d.has_estimation);
  EXPECT_EQ(d.estimation.data_file, "data.inp");
  EXPECT_EQ(d.estimation.star_output_file, "star.out");
  EXPECT_EQ(d.solute_outputs, std::vector<std::string>{"solute.out"});
  ASSERT_EQ(d.estimation.observations.size(), 2u);
  EXPECT_EQ(d.estimation.observations[0].size(), 27u);
  EXPECT_EQ(d.estimation.observations[1].size(), 18u);
  EXPECT_DOUBLE_EQ(d.estimation.observations[0][6].where, 11.67);
  EXPECT_DOUBLE_EQ(d.estimation.observations[0][6].concentration, 12.35);
  for (int k = 0; k < 4; ++k) EXPECT_FALSE(d.estimation.fixed[k]) << k;
  for (int k = 4; k < 10; ++k) EXPECT_TRUE(d.estimation.fixed[k]) << k;
  EXPECT_EQ(d.estimation.max_iterations, 100);
  EXPECT_DOUBLE_EQ(d.estimation.parameter_tolerance, 1e-5);

  OtisDeck d6 = ReadOtisDeck(Deck("app6"));
  ASSERT_TRUE(d6.has_estimation);
  EXPECT_EQ(d6.estimation.observations.size(), 7u);
  EXPECT_TRUE(d6.estimation.observations[0].empty());
  EXPECT_EQ(d6.estimation.observations[2].size(), 7u);
  EXPECT_FALSE(d6.estimation.fixed[4]);  // LAMBDA only
}

// A deck written by the test (control, params and flow copied from app5, data given).
std::string WriteDeck(const std::string& tag, const std::string& data, const std::string& star) {
  std::string dir = testing::TempDir(tag);
  for (const char* f : {"control.inp", "params.inp", "q.inp"}) {
    std::ofstream(dir + "/" + f) << ReadFile(Deck("app5") + "/" + f);
  }
  std::ofstream(dir + "/data.inp") << data;
  std::ofstream(dir + "/star.inp") << star;
  return dir;
}

TEST(OtisPReaderTest, ChecksObservationsAsOtisPDoes) {
  const std::string star = ReadFile(Deck("app5") + "/star.inp");
  // DATACHK: the first observation must come after TSTART + TSTEP (10.09 + 0.02 h).
  std::string dir =
      WriteDeck("otisp-early", "2\n    10.10       1.0\n    11.00       2.0\n0\n", star);
  try {
    ReadOtisDeck(dir);
    FAIL() << "accepted an observation before TSTART + TSTEP";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("data.inp:2: reach 1, observation 1"), std::string::npos)
        << e.what();
  }
  // ...and observations must increase.
  dir = WriteDeck("otisp-order", "2\n    11.00       1.0\n    10.50       2.0\n0\n", star);
  EXPECT_THROW(ReadOtisDeck(dir), ConfigError);
  // Values must sit in their F15.0 columns.
  dir = WriteDeck("otisp-columns", "1\n11.0 1.0 2.0 3.0 4.0 5.0\n0\n", star);
  EXPECT_THROW(ReadOtisDeck(dir), ConfigError);
  // IWEIGHT = 1 is refused with the file and line.
  std::string star1 = star;
  star1.replace(star1.find("\n0\n1\n100"), 8, "\n1\n1\n100");
  dir = WriteDeck("otisp-weight", ReadFile(Deck("app5") + "/data.inp"), star1);
  try {
    ReadOtisDeck(dir);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("star.inp:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("IWEIGHT"), std::string::npos) << e.what();
  }
}

// (1) With OTIS-P's estimates in place, the predictions are STARPAC's.
void CheckForwardModel(const std::string& app) {
  OtisDeck d = ReadOtisDeck(Deck(app));
  const auto star = ReadStarOut(Deck(app) + "/star.out");
  // Reach by reach as OTIS-P went: a reach is predicted with its own estimate and those of
  // the reaches above it in place, the reaches below still at their starting values.
  int first = 0;
  for (size_t r = 0; r < d.reaches.size(); ++r) {
    if (d.estimation.observations[r].empty()) continue;
    const StarReach& s = Find(star, static_cast<int>(r) + 1);
    int j = 0;
    for (int k = 0; k < kOtisNumParameters; ++k) {
      if (!d.estimation.fixed[k]) {
        calibration::SetOtisParameter(&d, first, static_cast<int>(r), k, s.estimate[j++]);
      }
    }
    first = static_cast<int>(r) + 1;
    const auto pv = calibration::OtisPredictions(d, static_cast<int>(r));
    ASSERT_EQ(pv.size(), s.predicted.size()) << app << " reach " << r + 1;
    double peak = 0, worst = 0, rss = 0;
    for (size_t i = 0; i < pv.size(); ++i) {
      peak = std::max(peak, std::abs(s.predicted[i]));
      worst = std::max(worst, std::abs(pv[i] - s.predicted[i]));
      const double res = pv[i] - d.estimation.observations[r][i].concentration;
      rss += res * res;
    }
    std::printf("%s reach %zu: max |ours - STARPAC| = %.2e of peak %.4g; RSS %.7g (STARPAC %.7g)\n",
                app.c_str(), r + 1, worst, peak, rss, s.rss);
    EXPECT_LE(worst, 1e-5 * peak) << app << " reach " << r + 1;
    EXPECT_NEAR(rss, s.rss, 1e-4 * s.rss + 1e-9) << app << " reach " << r + 1;
  }
}

TEST(OtisPForwardModelTest, App5PredictionsAreStarpacs) { CheckForwardModel("app5"); }
TEST(OtisPForwardModelTest, App5Run3PredictionsAreStarpacs) { CheckForwardModel("app5/run3"); }
TEST(OtisPForwardModelTest, App5Run2PredictionsAreStarpacs) { CheckForwardModel("app5/run2"); }
TEST(OtisPForwardModelTest, App6PredictionsAreStarpacs) { CheckForwardModel("app6"); }
TEST(OtisPForwardModelTest, App6Run2PredictionsAreStarpacs) { CheckForwardModel("app6/run2"); }
TEST(OtisPForwardModelTest, App6Run3PredictionsAreStarpacs) { CheckForwardModel("app6/run3"); }

// (2) Our estimates against OTIS-P's: within one of OTIS-P's standard errors.
void CheckEstimates(const std::string& app, const std::vector<int>& skip_reaches = {}) {
  OtisDeck d = ReadOtisDeck(Deck(app));
  const OtisEstimation est = EstimateOtisParameters(d);
  const auto star = ReadStarOut(Deck(app) + "/star.out");
  std::printf(
      "%s: reach parameter     OTIS-P       +- SE        | Qingshui     +- SE        | "
      "|diff|/SE\n",
      app.c_str());
  for (const auto& r : est.reaches) {
    const StarReach& s = Find(star, r.reach + 1);
    ASSERT_EQ(s.estimate.size(), r.parameters.size());
    const bool skip =
        std::find(skip_reaches.begin(), skip_reaches.end(), r.reach + 1) != skip_reaches.end();
    for (size_t j = 0; j < r.parameters.size(); ++j) {
      const double ours = r.fit.estimate[j], theirs = s.estimate[j], se = s.std_error[j];
      std::printf("%s: %5d %-8s %12.6g +- %-10.4g | %12.6g +- %-10.4g | %s\n", app.c_str(),
                  r.reach + 1, kOtisParameterNames[r.parameters[j]], theirs, se, ours,
                  r.fit.std_error[j],
                  std::isfinite(se) ? std::to_string(std::abs(ours - theirs) / se).c_str()
                                    : "(OTIS-P: no SE)");
      if (skip) continue;
      ASSERT_TRUE(std::isfinite(se)) << app << " reach " << r.reach + 1;
      EXPECT_LE(std::abs(ours - theirs), se)
          << app << " reach " << r.reach + 1 << " " << kOtisParameterNames[r.parameters[j]];
      EXPECT_NEAR(r.fit.std_error[j], se, 0.10 * se)
          << app << " reach " << r.reach + 1 << " " << kOtisParameterNames[r.parameters[j]];
    }
    std::printf("%s: %5d RSS OTIS-P %.7g, Qingshui %.7g (%s)\n", app.c_str(), r.reach + 1, s.rss,
                r.fit.sum_of_squares, r.fit.termination.c_str());
  }
}

TEST(OtisPEstimationTest, App5ClackamasRiver) {
  // Reach 2 of the first run ended in STARPAC's "singular convergence" (RSS 1.658, no
  // standard errors); OTIS-P's own restarts (run2, run3) found RSS 0.3412. We must not be
  // worse than 1.658 (checked) and land on the run3 minimum (next test).
  CheckEstimates("app5", {2});
}
TEST(OtisPEstimationTest, App5Run2) { CheckEstimates("app5/run2"); }
TEST(OtisPEstimationTest, App5Run3) { CheckEstimates("app5/run3"); }
TEST(OtisPEstimationTest, App6StKevinGulch) { CheckEstimates("app6"); }
TEST(OtisPEstimationTest, App6Run2) { CheckEstimates("app6/run2"); }
TEST(OtisPEstimationTest, App6Run3) { CheckEstimates("app6/run3"); }

TEST(OtisPEstimationTest, App5FromTheFirstRunLandsOnTheRestartMinimum) {
  // Starting from app5's initial guesses, reach 2 must end where OTIS-P's restarts did.
  const OtisEstimation est = EstimateOtisParameters(ReadOtisDeck(Deck("app5")));
  const auto star3 = ReadStarOut(Deck("app5/run3") + "/star.out");
  const StarReach& s = Find(star3, 2);
  const auto& r = est.reaches.at(1);
  for (size_t j = 0; j < r.parameters.size(); ++j) {
    EXPECT_LE(std::abs(r.fit.estimate[j] - s.estimate[j]), s.std_error[j])
        << kOtisParameterNames[r.parameters[j]];
  }
  // RSS 0.3395 here against run3's 0.3412: reach 2 is fitted on top of reach 1's estimate,
  // which differs slightly between the runs (within its standard error).
  EXPECT_LE(r.fit.sum_of_squares, s.rss * (1 + 1e-3));
}

// The CLI writes estimates.csv and the solute file at the optimum; for app5/run3 the
// latter matches OTIS-P's own solute.out (made with OTIS-P's estimates) to 1% of each
// column's peak (the estimates differ by a fraction of their standard errors).
TEST(OtisPCliTest, WritesEstimatesAndOutputs) {
  const std::string out = testing::TempDir("otisp-cli");
  std::string log;
  const int rc = testing::RunCommand(
      testing::CliPath() + " otis " + Deck("app5/run3") + " --out-dir " + out, &log);
  ASSERT_EQ(rc, 0) << log;
  const std::string csv = ReadFile(out + "/estimates.csv");
  std::istringstream in(csv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "reach,parameter,estimate,std_error");
  std::vector<std::string> rows;
  while (std::getline(in, line)) rows.push_back(line);
  ASSERT_EQ(rows.size(), 8u) << csv;
  EXPECT_EQ(rows[0].substr(0, 7), "1,DISP,");
  EXPECT_EQ(rows[6].substr(0, 8), "2,AREA2,");
  // solute.out: same times as OTIS-P's, values within 1% of the column peak.
  auto table = [](const std::string& text) {
    std::vector<std::vector<double>> t;
    std::istringstream s(text);
    std::string l;
    while (std::getline(s, l)) {
      std::istringstream ls(l);
      std::vector<double> v;
      std::string tok;
      while (ls >> tok) v.push_back(std::stod(tok));
      if (!v.empty()) t.push_back(v);
    }
    return t;
  };
  const auto ours = table(ReadFile(out + "/solute.out"));
  const auto theirs = table(ReadFile(Deck("app5/run3") + "/solute.out"));
  ASSERT_EQ(ours.size(), theirs.size());
  for (size_t c = 1; c < theirs[0].size(); ++c) {
    double peak = 0, worst = 0;
    for (size_t i = 0; i < theirs.size(); ++i) {
      EXPECT_NEAR(ours[i][0], theirs[i][0], 1e-9);
      peak = std::max(peak, std::abs(theirs[i][c]));
      worst = std::max(worst, std::abs(ours[i][c] - theirs[i][c]));
    }
    std::printf("app5/run3 solute.out column %zu: max |diff| %.3g of peak %.4g\n", c, worst, peak);
    EXPECT_LE(worst, 0.01 * peak) << "column " << c;
  }
}

// (3) Synthetic observations from known parameters at app5's observation times.
TEST(OtisPSyntheticTest, RecoversKnownParameters) {
  OtisDeck d = ReadOtisDeck(Deck("app5"));
  const std::vector<std::array<double, 4>> truth = {{1.5, 30.0, 7.5, 2.2e-4},
                                                    {0.8, 47.0, 13.0, 1.5e-4}};
  // OTIS-P fits reach 1 with reach 2 still at its starting values over the 15 segments
  // the model extends into it (centred differences let them act upstream), so reach 1's
  // data come from that deck and reach 2's from the deck with both reaches true.
  OtisDeck t1 = d, t2 = d;
  for (int k = 0; k < 4; ++k) {
    calibration::SetOtisParameter(&t1, 0, 0, k, truth[0][k]);
    calibration::SetOtisParameter(&t2, 0, 0, k, truth[0][k]);
    calibration::SetOtisParameter(&t2, 1, 1, k, truth[1][k]);
  }
  for (double noise : {0.0, 0.1}) {
    OtisDeck synth = d;  // starts from app5's initial guesses
    std::mt19937 rng(20240524);
    std::normal_distribution<double> normal(0.0, 1.0);
    for (int r = 0; r < 2; ++r) {
      const auto pv = calibration::OtisPredictions(r == 0 ? t1 : t2, r);
      for (size_t i = 0; i < pv.size(); ++i) {
        synth.estimation.observations[r][i].concentration = pv[i] + noise * normal(rng);
      }
    }
    const OtisEstimation est = EstimateOtisParameters(synth);
    for (int r = 0; r < 2; ++r) {
      const auto& f = est.reaches[r].fit;
      for (int k = 0; k < 4; ++k) {
        const double z = std::abs(f.estimate[k] - truth[r][k]) / f.std_error[k];
        std::printf(
            "synthetic (noise %.2f) reach %d %-6s true %-10.4g estimate %-10.4g +- %-9.3g "
            "|error|/SE %.2f\n",
            noise, r + 1, kOtisParameterNames[k], truth[r][k], f.estimate[k], f.std_error[k], z);
        if (noise == 0.0) {
          EXPECT_NEAR(f.estimate[k], truth[r][k], 1e-5 * truth[r][k]);
        } else {
          EXPECT_LE(z, 2.0) << "reach " << r + 1 << " " << kOtisParameterNames[k];
        }
      }
    }
  }
}

}  // namespace
}  // namespace qingshui
