// The forecast end to end on the built-in network and the shipped demo inputs (short
// runs): determinism whatever the thread count, the consistency of the statistics
// (quantiles ordered, probabilities in [0, 1] and summing to 1, the class rule, an exact
// apportionment), the atomic file write, and the twin experiment of issue #5 item 7.
#include "qingshui/forecast/forecast.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "qingshui/core/error.h"
#include "qingshui/forecast/forecast_file.h"
#include "qingshui/forecast/time.h"
#include "qingshui/forecast/twin.h"
#include "test_paths.h"

namespace qingshui::forecast {
namespace {

const Network& Default() {
  static const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  return net;
}

const ForecastInputs& Demo() {
  static const ForecastInputs in = ReadInputs(testing::SourcePath("data/yuncheng/demo"), Default());
  return in;
}

// A short forecast of the demo: 2 hindcast days, 2 forecast days, 12 members in 3 groups.
ForecastOptions Short(int threads) {
  ForecastOptions o = OptionsFromInputs(Demo(), nullptr);
  o.hindcast_days = 2;
  o.days = 2;
  o.members = 12;
  o.groups = 3;
  o.time_step_s = 3600;
  o.threads = threads;
  o.store_members = true;
  return o;
}

const ForecastResult& ShortRun() {
  static const ForecastResult r = RunForecast(Default(), Demo(), Short(2));
  return r;
}

TEST(Forecast, SameSeedSameNumbersWhateverTheThreadCount) {
  const ForecastResult& a = ShortRun();
  const ForecastResult b = RunForecast(Default(), Demo(), Short(1));
  const ForecastResult c = RunForecast(Default(), Demo(), Short(3));
  for (const ForecastResult* r : {&b, &c}) {
    // Bitwise: every dataset of the file.
    EXPECT_EQ(a.member_values, r->member_values);
    EXPECT_EQ(a.quantiles, r->quantiles);
    EXPECT_EQ(a.p_exceed, r->p_exceed);
    EXPECT_EQ(a.mean, r->mean);
    EXPECT_EQ(a.daily_quantiles, r->daily_quantiles);
    EXPECT_EQ(a.daily_p_exceed, r->daily_p_exceed);
    EXPECT_EQ(a.daily_class, r->daily_class);
    EXPECT_EQ(a.class_probability, r->class_probability);
    EXPECT_EQ(a.control, r->control);
    EXPECT_EQ(a.contribution, r->contribution);
    EXPECT_EQ(a.analysis.factor, r->analysis.factor);
    EXPECT_EQ(a.analysis.hindcast_analysis, r->analysis.hindcast_analysis);
    EXPECT_EQ(a.top_source, r->top_source);
  }
  ForecastOptions other = Short(2);
  other.seed += 1;
  EXPECT_NE(RunForecast(Default(), Demo(), other).member_values, a.member_values);
}

TEST(Forecast, StatisticsAreConsistent) {
  const ForecastResult& r = ShortRun();
  const int T = r.num_times(), S = r.num_stations(), K = r.num_species(), D = r.num_days();
  const int Q = static_cast<int>(r.quantile_levels.size()),
            L = static_cast<int>(r.limit_classes.size());
  ASSERT_EQ(D, 2);
  ASSERT_EQ(r.days.front(), "2024-05-21");
  EXPECT_EQ(r.times_utc_s.front(), r.as_of_utc_s);
  EXPECT_EQ(r.times_utc_s.back(), LocalMidnightUtc(LocalDay(r.as_of_utc_s) + 3));
  const size_t per = static_cast<size_t>(S) * K;
  for (int t = 0; t < T; ++t) {
    for (size_t sk = 0; sk < per; ++sk) {
      for (int q = 1; q < Q; ++q) {
        ASSERT_LE(r.quantiles[((q - 1) * T + t) * per + sk], r.quantiles[(q * T + t) * per + sk]);
      }
      for (int c = 0; c < L; ++c) {
        const double p = r.p_exceed[(c * T + t) * per + sk];
        ASSERT_GE(p, 0.0);
        ASSERT_LE(p, 1.0);
        // Limits do not decrease with the class (GB 3838 "max" indicators).
        if (c > 0) ASSERT_LE(p, r.p_exceed[((c - 1) * T + t) * per + sk]);
      }
      ASSERT_GE(r.quantiles[sk], 0.0);  // positive scheme: no negative concentration
    }
  }
  int class_iii = 2;
  ASSERT_EQ(r.limit_classes[class_iii], "III");
  const int C = static_cast<int>(r.classes.size());
  for (int j = 0; j < D; ++j) {
    for (int s = 0; s < S; ++s) {
      const size_t ds = static_cast<size_t>(j) * S + s;
      double sum = 0.0;
      for (int c = 0; c < C; ++c) sum += r.class_probability[c * D * S + ds];
      EXPECT_NEAR(sum, 1.0, 1e-12);
      // Median class: worse than III exactly when P(worse than III) > 1/2.
      const double p_worse = r.p_class_worse[class_iii * D * S + ds];
      EXPECT_EQ(r.daily_class[ds] > class_iii, p_worse > 0.5) << r.stations[s] << " " << r.days[j];
      EXPECT_NEAR(r.daily_class_probability[ds],
                  r.class_probability[r.daily_class[ds] * D * S + ds], 1e-15);
      // Apportionment is exact: the contributions add up to the control's daily mean.
      for (int k = 0; k < K; ++k) {
        const int n = static_cast<int>(r.contributors.size());
        double total = 0.0;
        for (int c = 0; c < n; ++c) {
          const double x = r.contribution[((ds * K) + k) * n + c];
          EXPECT_GE(x, 0.0);
          total += x;
        }
        double control = 0.0;  // trapezoid of the control run over the day
        const double d0 = LocalMidnightUtc(LocalDay(r.as_of_utc_s) + 1 + j), d1 = d0 + 86400;
        for (int t = 0; t + 1 < T; ++t) {
          if (r.times_utc_s[t] < d0 || r.times_utc_s[t + 1] > d1) continue;
          control += 0.5 * (r.control[t * per + s * K + k] + r.control[(t + 1) * per + s * K + k]) *
                     (r.times_utc_s[t + 1] - r.times_utc_s[t]) / 86400.0;
        }
        EXPECT_NEAR(total, control, 1e-12 * std::max(1.0, control));
      }
    }
  }
  // Superposition error of the limited advection, before reconciling: small.
  EXPECT_LT(r.apportionment_closure, 0.01);
  EXPECT_EQ(r.summary.size(), static_cast<size_t>(S * D));
  EXPECT_TRUE(r.analysis.assimilated);
}

TEST(Forecast, InvalidOptionsAreNamed) {
  ForecastOptions o = Short(1);
  o.members = 0;
  try {
    RunForecast(Default(), Demo(), o);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("members"), std::string::npos);
  }
  o = Short(1);
  o.output_interval_s = 7 * 3600;  // does not divide a day
  EXPECT_THROW(RunForecast(Default(), Demo(), o), ConfigError);
}

TEST(ForecastFile, AFailedWriteLeavesThePreviousFileUntouched) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir("forecast-file");
  const std::string path = dir + "/forecast.h5";
  ForecastFileInfo info;
  info.software_version = "test";
  WriteForecastFile(path, ShortRun(), Default(), info);
  std::ifstream in(path, std::ios::binary);
  const std::string before((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_GT(before.size(), 1000u);
  ASSERT_EQ(before.substr(1, 3), "HDF");
  // A stale temporary file of a dead process is cleaned up; a live one is not touched.
  std::ofstream(path + ".tmp-999999999") << "stale";
  setenv("QINGSHUI_FORECAST_TEST_FAIL_WRITE", "1", 1);
  EXPECT_THROW(WriteForecastFile(path, ShortRun(), Default(), info), Error);
  unsetenv("QINGSHUI_FORECAST_TEST_FAIL_WRITE");
  std::ifstream again(path, std::ios::binary);
  const std::string after((std::istreambuf_iterator<char>(again)),
                          std::istreambuf_iterator<char>());
  EXPECT_EQ(before, after);
  for (const auto& e : fs::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename(), "forecast.h5") << "left behind: " << e.path();
  }
}

// Issue #5 item 7: a synthetic truth with perturbed loads; its observations over the
// hindcast are assimilated. The forecast error at the two assessment sections must be at
// least 50% lower than without assimilation, and the truth inside the 5-95% band at least
// 80% of the time. Fixed seeds; a shorter time step and fewer members than the default
// keep it quick (truth and forecast use the same step).
TEST(Forecast, TwinExperimentAssimilationHalvesTheErrorAndTheBandHoldsTheTruth) {
  const Network& net = Default();
  ForecastInputs in = ReadInputs(testing::SourcePath("data/yuncheng/demo"), net);
  in.observations.clear();
  std::int64_t as_of;
  std::string error;
  ASSERT_TRUE(ParseIsoTime("2024-05-20T08:00:00+08:00", &as_of, &error));
  const int H = 10, N = 7;
  TruthOptions to;
  to.first_day = LocalDay(as_of) - H;
  to.days = H + N + 1;
  to.seed = 11;
  to.time_step_s = 3600;
  const Truth truth = SimulateTruth(net, in, to);
  AssimilationOptions errors;
  in.observations =
      SampleObservations(truth, net, LocalMidnightUtc(to.first_day), as_of, 12, errors);
  ASSERT_GT(in.observations.size(), 500u);

  double squared[2] = {0, 0};
  int inside = 0, count = 0;
  for (int assimilate : {1, 0}) {
    ForecastOptions o;
    o.as_of_utc_s = as_of;
    o.hindcast_days = H;
    o.days = N;
    o.members = 40;
    o.groups = 8;
    o.seed = 7;
    o.time_step_s = 3600;
    o.indicators = {"COD", "NH3N", "TP"};
    o.assimilation.enabled = assimilate == 1;
    const ForecastResult r = RunForecast(net, in, o);
    const int T = r.num_times(), S = r.num_stations(), K = r.num_species();
    const int median = 2, q05 = 0, q95 = 4;
    for (const std::string station : {"zhangliuzhuang", "miaoqian"}) {
      const int s = static_cast<int>(std::find(r.stations.begin(), r.stations.end(), station) -
                                     r.stations.begin());
      for (int k = 0; k < 3; ++k) {  // COD, NH3N, TP, each relative to its Class III limit
        const double limit = r.limits_mg_l[2 * K + k];
        for (int t = 0; t < T; ++t) {
          const double x = truth.At(r.times_utc_s[t], s, k);
          auto q = [&](int level) { return r.quantiles[((level * T + t) * S + s) * K + k]; };
          squared[assimilate] += std::pow((q(median) - x) / limit, 2);
          if (assimilate) {
            inside += x >= q(q05) && x <= q(q95);
            ++count;
          }
        }
      }
    }
  }
  const double ratio = std::sqrt(squared[1] / squared[0]);
  const double coverage = static_cast<double>(inside) / count;
  std::cout << "twin: error with / without assimilation " << ratio << ", truth inside 5-95% "
            << coverage << "\n";
  EXPECT_LE(ratio, 0.5);
  EXPECT_GE(coverage, 0.8);
}

}  // namespace
}  // namespace qingshui::forecast
