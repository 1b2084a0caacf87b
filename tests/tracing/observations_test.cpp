// ISO-8601 times with offsets, the observations CSV (round trip, errors that name the file,
// line and column), the tracing priors file and the seeded normal generator.
#include "qingshui/tracing/observations.h"

#include <gtest/gtest.h>

#include <cmath>

#include "qingshui/core/error.h"
#include "qingshui/tracing/priors.h"
#include "qingshui/tracing/scenario.h"
#include "test_paths.h"

namespace qingshui::tracing {
namespace {

TEST(IsoTime, ParsesOffsetsAndLocalTime) {
  double t;
  ASSERT_TRUE(ParseIsoTime("2024-04-15T08:00:00+08:00", &t));
  EXPECT_EQ(t, 1713139200.0);  // 2024-04-15T00:00:00Z
  double u;
  ASSERT_TRUE(ParseIsoTime("2024-04-15T00:00:00Z", &u));
  EXPECT_EQ(t, u);
  ASSERT_TRUE(ParseIsoTime("2024-04-15 08:00", &u));  // no offset: local (+08:00)
  EXPECT_EQ(t, u);
  ASSERT_TRUE(ParseIsoTime("2024-04-14T19:30-0430", &u));
  EXPECT_EQ(t, u);
  ASSERT_TRUE(ParseIsoTime("2024-04-15", &u));
  EXPECT_EQ(u, t - 8 * 3600.0);
  ASSERT_TRUE(ParseIsoTime("2024-02-29T12:00:00.5+08:00", &u));  // leap day, fraction
  EXPECT_EQ(FormatIsoTime(u - 0.5), "2024-02-29T12:00:00+08:00");
}

TEST(IsoTime, RejectsMalformedTimes) {
  double t;
  for (const char* bad : {"2024-13-01", "2023-02-29", "2024-04-15T25:00", "2024-04-15T08:00+8",
                          "15/04/2024", "2024-04-15T08:00:00+08:00x", ""}) {
    EXPECT_FALSE(ParseIsoTime(bad, &t)) << bad;
  }
}

TEST(IsoTime, FormatsWithTheChinaStandardTimeOffset) {
  double t;
  ASSERT_TRUE(ParseIsoTime("2023-12-31T23:30:00Z", &t));
  EXPECT_EQ(FormatIsoTime(t), "2024-01-01T07:30:00+08:00");
  EXPECT_EQ(LocalDate(t), "2024-01-01");
  double m;
  ASSERT_TRUE(LocalMidnight("2024-01-01", &m));
  EXPECT_EQ(FormatIsoTime(m), "2024-01-01T00:00:00+08:00");
}

TEST(ObservationsCsv, RoundTripsExactly) {
  std::vector<Observation> rows;
  double t;
  ParseIsoTime("2024-04-15T04:00:00+08:00", &t);
  rows.push_back({t, "miaoqian", "COD", 21.123456789012345, 0});
  rows.push_back({t + 3600, "hejin, bridge", "NH3N", 0.1 + 0.2, 0});
  const ObservationSet back = ParseObservationsCsv(FormatObservationsCsv(rows), "x.csv");
  ASSERT_EQ(back.rows.size(), 2u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(back.rows[i].time_s, rows[i].time_s);
    EXPECT_EQ(back.rows[i].station, rows[i].station);
    EXPECT_EQ(back.rows[i].species, rows[i].species);
    EXPECT_EQ(back.rows[i].value_mg_l, rows[i].value_mg_l);  // shortest round-trip text
  }
}

TEST(ObservationsCsv, ErrorsNameFileLineAndColumn) {
  auto message = [](const std::string& text) {
    try {
      ParseObservationsCsv(text, "obs.csv");
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message("time,station,species,value\n2024-04-15T04:00+08:00,miaoqian,COD,-1\n"),
            "obs.csv:2: value: expected a finite concentration >= 0 (mg/L), got '-1'");
  EXPECT_NE(message("time,station,species,value\n# comment\n\n2024-04-15T4:00,miaoqian,COD,1\n")
                .find("obs.csv:4: time:"),
            std::string::npos);
  EXPECT_NE(message("time,station,value\n").find("obs.csv:1: species: missing column"),
            std::string::npos);
  EXPECT_NE(message("time,station,species,value\n2024-04-15,miaoqian,COD\n")
                .find("obs.csv:2: value: missing field"),
            std::string::npos);
  EXPECT_NE(
      message("time,station,species,value\n2024-04-15,miaoqian,COD,nan\n").find("obs.csv:2: value"),
      std::string::npos);
  EXPECT_THROW(ReadObservationsCsv("/nonexistent/obs.csv"), DataError);
}

TEST(TracingPriors, ShippedFileLoadsAndGivesRatiosThroughTheReference) {
  const TracingPriors p =
      LoadTracingPriors(testing::SourcePath("data/tracing/source_signatures.yaml"));
  std::string error;
  EXPECT_TRUE(p.IsValid(&error)) << error;
  EXPECT_EQ(p.reference_species, "COD");
  const SpeciesRatio nh3 = p.Ratio("treatment_plant", "NH3N", "COD");
  EXPECT_NEAR(nh3.median, 25.0 / 430.0, 1e-3);
  // TP per NH3N derived through COD: medians divide, log-sds add in quadrature.
  const SpeciesRatio tp_per_n = p.Ratio("treatment_plant", "TP", "NH3N");
  const SpeciesRatio tp = p.Ratio("treatment_plant", "TP", "COD");
  EXPECT_NEAR(tp_per_n.median, tp.median / nh3.median, 1e-12);
  EXPECT_NEAR(tp_per_n.log_sd, std::hypot(tp.log_sd, nh3.log_sd), 1e-12);
  EXPECT_EQ(p.KindWeight("withdrawal"), 0.0);
  EXPECT_EQ(p.Ratio("treatment_plant", "F", "COD").log_sd, p.unknown_ratio_log_sd);
}

TEST(TracingPriors, ErrorsNameLineAndField) {
  const std::string head = "format: qingshui-tracing-priors\nversion: 1\n";
  auto message = [&](const std::string& body) {
    try {
      ParseTracingPriors(head + body, "p.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      message("mass_kg: {min: 10, max: 5}\n").find("p.yaml:3: mass_kg: expected 0 < min < max"),
      std::string::npos);
  EXPECT_NE(message("kinds:\n  treatment_plnt: {}\n")
                .find("p.yaml:4: kinds.treatment_plnt: unknown source kind"),
            std::string::npos);
  EXPECT_NE(message("kinds:\n  wetland:\n    ratios:\n      NH3N: {median: -1, log_sd: 1}\n")
                .find("p.yaml:6: kinds.wetland.ratios.NH3N"),
            std::string::npos);
  EXPECT_NE(message("lead: 3\n").find("p.yaml:3: lead: unknown key"), std::string::npos);
}

TEST(NormalGenerator, IsSeededAndStandardNormal) {
  NormalGenerator a(42), b(42), c(43);
  double s = 0, s2 = 0;
  const int n = 200000;
  bool differs = false;
  for (int i = 0; i < n; ++i) {
    const double x = a.Next();
    EXPECT_EQ(x, b.Next());
    differs = differs || x != c.Next();
    s += x;
    s2 += x * x;
  }
  EXPECT_TRUE(differs);
  // Mean within 5 standard errors of 0, variance within 5 standard errors of 1.
  EXPECT_NEAR(s / n, 0.0, 5 / std::sqrt(n));
  EXPECT_NEAR(s2 / n, 1.0, 5 * std::sqrt(2.0 / n));
}

}  // namespace
}  // namespace qingshui::tracing
