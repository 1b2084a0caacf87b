// The `qingshui calibrate` and `qingshui allocate` commands: files written, exit codes,
// located messages. The numerics are tested in calibrate_test.cpp and allocation_test.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "test_paths.h"

namespace qingshui {
namespace {

// The shared test river (tests/data/calibration_river.yaml).
const std::string kRiver = qingshui::testing::ReadSourceFile("tests/data/calibration_river.yaml");

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
