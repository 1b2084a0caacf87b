// Inputs of the forecast: ISO 8601 times with offsets, the observation and plant-record
// files, schedules, and the named warnings and errors for data that cannot be used as
// written (unknown ids, gaps, duplicate timestamps, values outside the physical range,
// stations without observations).
#include "qingshui/forecast/inputs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "../../forecast/src/period.h"
#include "qingshui/core/error.h"
#include "qingshui/forecast/time.h"
#include "qingshui/hydro/flow_balance.h"
#include "test_paths.h"

namespace qingshui::forecast {
namespace {

const Network& Default() {
  static const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  return net;
}

std::int64_t T(const std::string& iso) {
  std::int64_t t = 0;
  std::string error;
  EXPECT_TRUE(ParseIsoTime(iso, &t, &error)) << error;
  return t;
}

int Count(const std::vector<Issue>& issues, const std::string& code) {
  return static_cast<int>(
      std::count_if(issues.begin(), issues.end(), [&](const Issue& i) { return i.code == code; }));
}

TEST(ForecastTime, OffsetsNameTheSameInstant) {
  EXPECT_EQ(T("2024-05-20T08:00:00+08:00"), T("2024-05-20T00:00:00Z"));
  EXPECT_EQ(T("2024-05-20T08:00+08:00"), T("2024-05-20 00:00:00+00:00"));
  EXPECT_EQ(T("2024-05-20T08:00:00+0800"), T("2024-05-20T00:00:00z"));
  EXPECT_EQ(T("2024-05-20T00:00:00Z"), 1716163200);  // date -u -d 2024-05-20 +%s
  EXPECT_EQ(T("2024-05-19T20:30:00.4-03:30"), T("2024-05-20T00:00:00Z"));
  EXPECT_EQ(FormatIsoTime(1716163200), "2024-05-20T08:00:00+08:00");
  EXPECT_EQ(FormatIsoTime(1716163200, 0), "2024-05-20T00:00:00Z");
  EXPECT_EQ(LocalDate(T("2024-05-19T16:00:00Z")), "2024-05-20");  // 00:00 local
  EXPECT_EQ(LocalDate(T("2024-05-19T15:59:59Z")), "2024-05-19");
  EXPECT_EQ(LocalMidnightUtc(LocalDay(T("2024-05-20T13:00:00+08:00"))),
            T("2024-05-20T00:00:00+08:00"));
  EXPECT_EQ(AddDays("2024-02-28", 1), "2024-02-29");  // leap year
  EXPECT_EQ(AddDays("2023-02-28", 1), "2023-03-01");
}

TEST(ForecastTime, MalformedTimesSayWhy) {
  std::int64_t t;
  std::string error;
  EXPECT_FALSE(ParseIsoTime("2024-05-20T08:00:00", &t, &error));
  EXPECT_NE(error.find("no UTC offset"), std::string::npos) << error;
  EXPECT_FALSE(ParseIsoTime("2024-02-30T08:00Z", &t, &error));
  EXPECT_NE(error.find("no such date"), std::string::npos) << error;
  EXPECT_FALSE(ParseIsoTime("2024-05-20T25:00Z", &t, &error));
  EXPECT_FALSE(ParseIsoTime("2024-05-20", &t, &error));
  EXPECT_FALSE(ParseIsoTime("2024-05-20T08:00Z junk", &t, &error));
}

TEST(ForecastInputs, ObservationCsvErrorsNameFileLineAndProblem) {
  try {
    ParseObservationsCsv("time,station,species,value\n2024-05-20T08:00,miaoqian,TP,0.1\n",
                         "obs.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("obs.csv:2: time: [bad-time]"), std::string::npos)
        << e.what();
  }
  try {
    ParseObservationsCsv("time,station,kind,value\n", "obs.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("[bad-header] unknown column 'kind'"), std::string::npos);
  }
  try {
    ParseObservationsCsv("# c\ntime,station,species,value\n2024-05-20T08:00Z,miaoqian,TP,abc\n",
                         "obs.csv");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("obs.csv:3: value: [bad-value]"), std::string::npos)
        << e.what();
  }
  // Columns in any order, flag optional, comments and blank lines skipped.
  const auto obs = ParseObservationsCsv(
      "\xEF\xBB\xBF# comment\nvalue,flag,species,station,time\n\n0.25,suspect,TP,miaoqian,"
      "2024-05-20T08:00:00+08:00\n",
      "obs.csv");
  ASSERT_EQ(obs.size(), 1u);
  EXPECT_EQ(obs[0].station, "miaoqian");
  EXPECT_EQ(obs[0].flag, "suspect");
  EXPECT_DOUBLE_EQ(obs[0].value_mg_l, 0.25);
  EXPECT_EQ(obs[0].where, "obs.csv:4");
}

TEST(ForecastInputs, UnknownStationOrSpeciesIsAnError) {
  const std::int64_t as_of = T("2024-05-20T08:00:00+08:00");
  std::vector<Issue> issues;
  auto obs = ParseObservationsCsv(
      "time,station,species,value\n2024-05-20T04:00+08:00,miaoqain,TP,0.1\n", "o.csv");
  try {
    ValidateObservations(obs, Default(), as_of - 86400, as_of, &issues);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("o.csv:2: station: [unknown-station] 'miaoqain'"),
              std::string::npos);
  }
  obs = ParseObservationsCsv("time,station,species,value\n2024-05-20T04:00+08:00,miaoqian,TN,0.1\n",
                             "o.csv");
  EXPECT_THROW(ValidateObservations(obs, Default(), as_of - 86400, as_of, &issues), ConfigError);
}

TEST(ForecastInputs, BadDataAreNamedWarningsAndLeftOut) {
  const std::int64_t as_of = T("2024-05-20T08:00:00+08:00");
  const std::int64_t start = T("2024-05-19T00:00:00+08:00");
  std::string csv = "time,station,species,value,flag\n";
  // Zhangliuzhuang every 4 h except a 16-h gap; a duplicate with the same value and one
  // with a different value; a negative and an absurd value; one after the as-of time.
  for (const char* h : {"00", "04", "08", "12", "16", "20"}) {
    csv += std::string("2024-05-19T") + h + ":00:00+08:00,zhangliuzhuang,TP,0.15,\n";
  }
  csv += "2024-05-20T08:00:00+08:00,zhangliuzhuang,TP,0.16,\n";  // gap 20:00 -> 08:00
  csv += "2024-05-19T04:00:00+08:00,zhangliuzhuang,TP,0.15,\n";  // same value: keep one
  csv += "2024-05-19T08:00:00+08:00,zhangliuzhuang,NH3N,0.5,\n";
  csv += "2024-05-19T08:00:00+08:00,zhangliuzhuang,NH3N,0.9,\n";  // conflicting: drop both
  csv += "2024-05-19T10:00:00+08:00,miaoqian,COD,-1,\n";
  csv += "2024-05-19T10:00:00+08:00,miaoqian,TP,500,\n";           // > 100 x Class V (0.4)
  csv += "2024-05-19T10:00:00+08:00,miaoqian,NH3N,0.4,invalid\n";  // not used, no warning
  csv += "2024-05-19T10:00:00+08:00,miaoqian,COD,nan,\n";
  csv += "2024-05-20T09:00:00+08:00,miaoqian,COD,10,\n";               // after the as-of time
  csv += "2024-05-19T10:00:00+08:00,hejin_bridge,COD,10,estimated\n";  // unknown flag
  csv += "2024-05-19T10:00:00+08:00,chengxi_inlet_monitor,COD,300,\n";
  std::vector<Issue> issues;
  const auto kept =
      ValidateObservations(ParseObservationsCsv(csv, "o.csv"), Default(), start, as_of, &issues);
  EXPECT_EQ(Count(issues, "duplicate-timestamp"), 2);
  EXPECT_EQ(Count(issues, "value-out-of-range"), 3);  // -1, 500, nan
  EXPECT_EQ(Count(issues, "observation-after-as-of"), 1);
  EXPECT_EQ(Count(issues, "invalid-flag"), 1);
  EXPECT_EQ(Count(issues, "outfall-monitor-not-assimilated"), 1);
  // Every river station but Zhangliuzhuang has no usable value.
  EXPECT_EQ(Count(issues, "station-without-observations"), 13);
  // The gap: 20:00 to 08:00 at a 4-hourly station.
  ASSERT_EQ(Count(issues, "observation-gap"), 1);
  for (const auto& i : issues) {
    if (i.code == "observation-gap") {
      EXPECT_EQ(i.where, "zhangliuzhuang/TP");
      EXPECT_NE(i.message.find("2024-05-19T20:00:00+08:00 to 2024-05-20T08:00:00+08:00"),
                std::string::npos)
          << i.message;
    }
    EXPECT_EQ(i.Format().rfind("warning[" + i.code + "]", 0), 0u);
  }
  ASSERT_EQ(kept.size(), 7u);  // the 7 TP values at Zhangliuzhuang
  for (const auto& o : kept) EXPECT_EQ(o.species, "TP");
  EXPECT_TRUE(std::is_sorted(
      kept.begin(), kept.end(),
      [](const Observation& a, const Observation& b) { return a.time_utc_s < b.time_utc_s; }));
}

TEST(ForecastInputs, DirectoryWithManifestRecordsScheduleAndWeather) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir("forecast-inputs");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(fs::path(dir) / name) << text;
  };
  write("forecast.yaml",
        "format: qingshui-forecast-inputs\nversion: 1\nas_of: 2024-05-20T08:00:00+08:00\n"
        "settings: {members: 12, days: 3, seed: 5}\nindicators: [COD, TP]\n");
  write("observations.csv", "time,station,species,value\n2024-05-20T04:00+08:00,miaoqian,TP,0.2\n");
  write("plant_records.csv",
        "date,source,quantity,value\n2024-05-18,chengxi_wwtp,flow_m3s,0.8\n2024-05-18,chengxi_wwtp,"
        "NH3N,1.2\n"
        "2024-05-19,chengxi_wwtp,NH3N,1.4\n2024-05-19,chengxi_wwtp,NH3N,1.4\n"
        "2024-05-19,wenxi_county_wwtp,TP,-2\n");
  write("schedule.yaml",
        "format: qingshui-forecast-schedule\nversion: 1\nevents:\n"
        "  - {source: chengxi_wwtp, kind: outage, from: 2024-05-22, to: 2024-05-23, effluent_mg_l: "
        "{NH3N: 6}}\n"
        "  - {source: wanrong_rongbi_wwtp, kind: upgrade, from: 2024-05-25, effluent_mg_l: {TP: "
        "0.25}}\n"
        "  - {source: jishan_wwtp, kind: offline, from: 2024-05-21, to: 2024-05-21}\n"
        "  - {source: chengxi_jidian_wwtp, kind: online, from: 2024-05-21}\n");
  write(
      "weather.csv",
      "# "
      "demo\ndate,water_temperature_c,yuncheng_city_east\n2024-05-19,21.5,0\n2024-05-20,22,12.5\n");
  const Network& net = Default();
  const ForecastInputs in = ReadInputs(dir, net);
  EXPECT_EQ(*in.as_of_utc_s, T("2024-05-20T08:00:00+08:00"));
  EXPECT_EQ(*in.settings.members, 12);
  EXPECT_EQ(in.settings.indicators, (std::vector<std::string>{"COD", "TP"}));
  EXPECT_EQ(in.observations.size(), 1u);
  EXPECT_EQ(in.plant_records.size(), 3u);  // the duplicate keeps one, the negative is dropped
  EXPECT_EQ(Count(in.warnings, "duplicate-timestamp"), 1);
  EXPECT_EQ(Count(in.warnings, "value-out-of-range"), 1);
  EXPECT_EQ(in.schedule.size(), 4u);
  ASSERT_TRUE(in.weather.rain.has_value());
  EXPECT_EQ(in.weather.rain->num_days(), 2);
  std::int64_t d20;
  ASSERT_TRUE(ParseDate("2024-05-20", &d20));
  EXPECT_DOUBLE_EQ(in.weather.water_temperature_c.at(d20), 22.0);
  EXPECT_EQ(in.climatology.file.empty(), false);  // found beside the network
  EXPECT_DOUBLE_EQ(in.climatology.water_temperature_c[4], 20.5);

  // Records persist; the schedule changes the days it covers.
  auto day_net = [&](const std::string& date) {
    std::int64_t d;
    EXPECT_TRUE(ParseDate(date, &d));
    return detail::DayNetwork(net, in, d);
  };
  const Source* design = net.FindSource("chengxi_wwtp");
  EXPECT_DOUBLE_EQ(day_net("2024-05-17").FindSource("chengxi_wwtp")->design_flow_m3s,
                   design->design_flow_m3s);
  EXPECT_DOUBLE_EQ(day_net("2024-05-18").FindSource("chengxi_wwtp")->effluent_mg_l.at("NH3N"), 1.2);
  EXPECT_DOUBLE_EQ(day_net("2024-05-21").FindSource("chengxi_wwtp")->effluent_mg_l.at("NH3N"), 1.4);
  EXPECT_DOUBLE_EQ(day_net("2024-05-21").FindSource("chengxi_wwtp")->design_flow_m3s, 0.8);
  EXPECT_DOUBLE_EQ(day_net("2024-05-22").FindSource("chengxi_wwtp")->effluent_mg_l.at("NH3N"), 6.0);
  EXPECT_DOUBLE_EQ(day_net("2024-05-24").FindSource("chengxi_wwtp")->effluent_mg_l.at("NH3N"), 1.4);
  EXPECT_DOUBLE_EQ(day_net("2024-05-30").FindSource("wanrong_rongbi_wwtp")->effluent_mg_l.at("TP"),
                   0.25);
  const Network n21 = day_net("2024-05-21"), n22 = day_net("2024-05-22");
  EXPECT_FALSE(hydro::SourceActivityOn(n21, *n21.FindSource("jishan_wwtp"), "2024-05-21").active);
  EXPECT_TRUE(hydro::SourceActivityOn(n22, *n22.FindSource("jishan_wwtp"), "2024-05-22").active);
  EXPECT_TRUE(
      hydro::SourceActivityOn(n21, *n21.FindSource("chengxi_jidian_wwtp"), "2024-05-21").active);
}

TEST(ForecastInputs, BadScheduleAndManifestKeysAreConfigErrors) {
  namespace fs = std::filesystem;
  const std::string dir = testing::TempDir("forecast-badinputs");
  std::ofstream(fs::path(dir) / "schedule.yaml")
      << "format: qingshui-forecast-schedule\nversion: 1\nevents:\n"
         "  - {source: chengxi_wwtpp, kind: outage, from: 2024-05-22, to: 2024-05-23, "
         "effluent_mg_l: {NH3N: 6}}\n";
  try {
    ReadInputs(dir, Default());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("schedule.yaml:4: events[0].source: [unknown-source]"),
              std::string::npos)
        << e.what();
  }
  std::ofstream(fs::path(dir) / "schedule.yaml", std::ios::trunc)
      << "format: qingshui-forecast-schedule\nversion: 1\nevents: []\n";
  std::ofstream(fs::path(dir) / "forecast.yaml")
      << "format: qingshui-forecast-inputs\nversion: 1\nmembers: 3\n";
  try {
    ReadInputs(dir, Default());
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("forecast.yaml:3: members: unknown key"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace qingshui::forecast
