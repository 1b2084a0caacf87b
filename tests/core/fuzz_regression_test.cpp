// Inputs that once crashed a parser under libFuzzer (tests/fuzz/regressions/<parser>/).
// Each must now end in a located ConfigError (or parse), never another exception.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "test_paths.h"

namespace qingshui {
namespace {

std::vector<std::filesystem::path> Files(const std::string& parser) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(
           testing::SourcePath("tests/fuzz/regressions/" + parser))) {
    out.push_back(e.path());
  }
  return out;
}

std::string Read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(FuzzRegressions, NetworkParserRejectsEveryCrasherWithALocatedError) {
  const auto files = Files("network");
  ASSERT_FALSE(files.empty());
  for (const auto& f : files) {
    try {
      ParseNetwork(Read(f), "fuzz.yaml");
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("fuzz.yaml", 0), 0u) << f << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << f << ": escaped as " << typeid(e).name() << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace qingshui
