// Replays, in every build (fuzz build or not), the seed corpora and the crash inputs of the
// libFuzzer targets of the OTIS deck reader, the tracing scenario and observation readers
// and the HDF5 observation reader (tests/fuzz/corpus/<target>/, tests/fuzz/regressions/
// <target>/). Each input must parse or end in a ConfigError/DataError naming the file;
// nothing else may escape (the network and rain readers are replayed by
// tests/core/fuzz_regression_test.cpp).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/core/otis.h"
#include "qingshui/forecast/inputs.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/scenario.h"
#include "test_paths.h"

// For the sanitizer build (scripts/test --sanitize), as in tests/fuzz/fuzz_obs_hdf5.cpp:
// libhdf5 mallocs absurd sizes read from corrupt files (outside ASan malloc returns NULL and
// the read fails, as the test expects), and leaks on its own error paths. Ignored by other
// builds.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }
extern "C" const char* __lsan_default_suppressions() { return "leak:libhdf5_serial.so\n"; }

namespace qingshui {
namespace {

namespace fs = std::filesystem;

// Every file of the target's seed corpus and regressions folders.
std::vector<fs::path> Inputs(const std::string& target, int* regressions) {
  std::vector<fs::path> out;
  *regressions = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path dir = testing::SourcePath("tests/fuzz/" + std::string(kind) + "/" + target);
    if (!fs::exists(dir)) continue;
    for (const auto& e : fs::directory_iterator(dir)) {
      if (!e.is_regular_file()) continue;
      out.push_back(e.path());
      if (std::string(kind) == "regressions") ++*regressions;
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `parse` on each input; a qingshui::Error must start with `file` (the name the input
// was given), any other exception is a failure.
template <typename Parse>
void Replay(const std::string& target, const std::string& file, Parse parse) {
  int regressions = 0;
  const auto inputs = Inputs(target, &regressions);
  ASSERT_FALSE(inputs.empty()) << "no corpus for " << target;
  for (const auto& f : inputs) {
    try {
      parse(f);
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << f << ": " << e.what();
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << f << ": " << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << f << ": escaped as " << typeid(e).name() << ": " << e.what();
    }
  }
}

const Network& Default() {
  static const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  return net;
}

// tests/fuzz/fuzz_otis.cpp's format: the files of a deck, each after a line "@@@ NAME".
void WriteDeck(const std::string& text, const fs::path& dir) {
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::istringstream in(text);
  std::string line, name, body;
  auto flush = [&]() {
    if (!name.empty() && name.find('/') == std::string::npos) std::ofstream(dir / name) << body;
    body.clear();
  };
  while (std::getline(in, line)) {
    if (line.rfind("@@@ ", 0) == 0) {
      flush();
      name = line.substr(4);
    } else {
      body += line + "\n";
    }
  }
  flush();
}

TEST(ParserRegressions, OtisDecksParseOrFailWithALocatedError) {
  const fs::path dir = testing::TempDir("otis-replay");
  int decks_read = 0;
  Replay("otis", ":", [&](const fs::path& f) {  // "file:line: ..." (names come from the deck)
    WriteDeck(Read(f), dir);
    const OtisDeck deck = ReadOtisDeck(dir.string());
    ++decks_read;
    if (deck.NumSegments() <= 5000) (void)OtisProblem(deck);
  });
  EXPECT_GE(decks_read, 6);  // the seeds are the shipped OTIS decks: they must read
}

TEST(ParserRegressions, ScenariosParseOrFailWithALocatedError) {
  Replay("scenario", "scenario.yaml", [&](const fs::path& f) {
    (void)tracing::ParseScenario(Read(f), "scenario.yaml", Default());
  });
}

TEST(ParserRegressions, ObservationCsvParsesOrFailsWithALocatedError) {
  Replay("observations", "observations.csv", [&](const fs::path& f) {
    const auto set = tracing::ParseObservationsCsv(Read(f), "observations.csv");
    const auto again = tracing::ParseObservationsCsv(tracing::FormatObservationsCsv(set.rows), "x");
    EXPECT_EQ(again.rows.size(), set.rows.size()) << f;
  });
}

TEST(ParserRegressions, HdfObservationsReadOrFailWithAnErrorNamingTheFile) {
  int regressions = 0;
  (void)Inputs("obs_hdf5", &regressions);
  EXPECT_GE(regressions, 1);  // vlen_bad_heap_index.h5 crashed libhdf5 before the check
  Replay("obs_hdf5", ".h5", [&](const fs::path& f) { (void)forecast::ReadObservationsHdf5(f.string()); });
}

}  // namespace
}  // namespace qingshui
