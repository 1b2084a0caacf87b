// Fuzz target: the network YAML reader. Any input must either parse into a valid network
// or throw qingshui::ConfigError; anything else (another exception, a crash, a hang, a
// sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qingshui/core/error.h"
#include "qingshui/core/grid.h"
#include "qingshui/core/network.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const qingshui::Network net = qingshui::ParseNetwork(text, "fuzz.yaml");
    // A network that validated must also summarise, round-trip and grid without throwing.
    (void)qingshui::FormatSummary(net);
    const std::string again = qingshui::WriteNetworkYaml(net);
    (void)qingshui::ParseNetwork(again, "fuzz.yaml");
    (void)qingshui::BuildGrid(net);
  } catch (const qingshui::ConfigError&) {
  }
  return 0;
}
