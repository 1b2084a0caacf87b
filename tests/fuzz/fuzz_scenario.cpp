// Fuzz target: the tracing scenario YAML reader (ParseScenario) against the default
// Yuncheng network. Any input must either parse or throw a located ConfigError; anything
// else (another exception, a crash, a hang, a sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/tracing/scenario.h"

#ifndef QINGSHUI_SOURCE_DIR
#error "QINGSHUI_SOURCE_DIR must name the repository"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const qingshui::Network net =
      qingshui::LoadNetwork(QINGSHUI_SOURCE_DIR "/data/yuncheng/network.yaml");
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)qingshui::tracing::ParseScenario(text, "scenario.yaml", net);
  } catch (const qingshui::ConfigError&) {
  }
  return 0;
}
