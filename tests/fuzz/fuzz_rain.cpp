// Fuzz target: the daily rain CSV reader, against the default network's catchments. Any
// input must parse (and then turn into rain days without error) or throw a located
// ConfigError/DataError; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/hydro/rain.h"

#ifndef QINGSHUI_SOURCE_DIR
#error "QINGSHUI_SOURCE_DIR must name the repository"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const qingshui::Network net =
      qingshui::LoadNetwork(QINGSHUI_SOURCE_DIR "/data/yuncheng/network.yaml");
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const qingshui::hydro::RainSeries rain = qingshui::hydro::ParseRainCsv(text, "rain.csv", net);
    (void)qingshui::hydro::RainDays(net, rain);
  } catch (const qingshui::ConfigError&) {
  } catch (const qingshui::DataError&) {
  }
  return 0;
}
