// The `qingshui calibrate` and `qingshui allocate` commands: files written, exit codes,
// located messages. The numerics are tested in calibrate_test.cpp and allocation_test.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_paths.h"

namespace qingshui {
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

std::string Read(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(CalibrationCli, CalibrateWritesEstimatesCorrelationAndResiduals) {
  const std::string dir = testing::TempDir("cli-calibrate");
  std::ofstream(dir + "/river.yaml") << kRiver;
  std::ofstream(dir + "/obs.csv") << "time,station,species,value\n"
                                     "2024-04-01T06:00:00+08:00,end,COD,14.5\n"
                                     "2024-04-01T12:00:00+08:00,end,COD,14.4\n"
                                     "2024-04-01T18:00:00+08:00,mid,COD,14.9\n";
  std::ofstream(dir + "/cal.yaml")
      << "network: river.yaml\nobservations: obs.csv\n"
         "simulation: {start_date: 2024-04-01, days: 1, time_step_s: 1800}\n"
         "parameters:\n  - {kind: decay_per_day, species: COD, lower: 0, upper: 5}\n";
  std::string log;
  ASSERT_EQ(
      testing::RunCommand(
          testing::CliPath() + " calibrate " + dir + "/cal.yaml --out-dir " + dir + "/out", &log),
      0)
      << log;
  EXPECT_EQ(Read(dir + "/out/estimates.csv")
                .rfind("parameter,kind,reach,species,initial,estimate,std_error", 0),
            0u);
  EXPECT_NE(Read(dir + "/out/correlation.csv").find("decay_per_day[COD]"), std::string::npos);
  EXPECT_NE(Read(dir + "/out/residuals.csv").find("end,COD,14.5"), std::string::npos);
  std::ofstream(dir + "/bad.yaml")
      << "simulation: {start_date: 2024-04-01}\nparameters:\n  - {kind: decay_per_day}\n";
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " calibrate " + dir + "/bad.yaml --network " +
                                    dir + "/river.yaml",
                                &log),
            2);
  EXPECT_NE(log.find("bad.yaml:3: parameters[0]: decay_per_day needs a species"), std::string::npos)
      << log;
}

TEST(CalibrationCli, AllocateWritesLimitsAndTargets) {
  const std::string dir = testing::TempDir("cli-allocate");
  std::ofstream(dir + "/river.yaml") << kRiver;
  std::ofstream(dir + "/alloc.yaml")
      << "date: 2024-04-01\nscenarios: 10\nverification_scenarios: 5\n"
         "targets:\n  - {station: end, species: F, limit_mg_l: 0.8}\n"
         "sources:\n  - {id: a, min_mg_l: {F: 0.5}}\n  - {id: b, min_mg_l: {F: 0.5}}\n";
  std::string log;
  ASSERT_EQ(testing::RunCommand(testing::CliPath() + " allocate " + dir + "/alloc.yaml --network " +
                                    dir + "/river.yaml --out-dir " + dir + "/out",
                                &log),
            0)
      << log;
  EXPECT_NE(log.find("forward Monte Carlo"), std::string::npos) << log;
  EXPECT_EQ(
      Read(dir + "/out/limits.csv").rfind("source,species,flow_m3s,current_mg_l,limit_mg_l", 0),
      0u);
  EXPECT_NE(Read(dir + "/out/targets.csv").find("end,F,0.8,"), std::string::npos);
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " allocate " + dir + "/alloc.yaml --network " +
                                    dir + "/river.yaml --scenarios x",
                                &log),
            2);
}

}  // namespace
}  // namespace qingshui
