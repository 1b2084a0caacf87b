// Fuzz target: the observation CSV reader of the tracer (ParseObservationsCsv): station,
// point (reach, km) and mixed layouts. Any input must parse or throw a located
// DataError/ConfigError. What parses must survive the round trip through
// FormatObservationsCsv (what `qingshui simulate` writes): same rows, stations, points,
// species and values, times to the second.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "qingshui/core/error.h"
#include "qingshui/tracing/observations.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qingshui::tracing;
  const std::string text(reinterpret_cast<const char*>(data), size);
  ObservationSet set;
  try {
    set = ParseObservationsCsv(text, "observations.csv");
  } catch (const qingshui::DataError&) {
    return 0;
  } catch (const qingshui::ConfigError&) {
    return 0;
  }
  const ObservationSet again = ParseObservationsCsv(FormatObservationsCsv(set.rows), "again.csv");
  if (again.rows.size() != set.rows.size()) __builtin_trap();
  for (size_t i = 0; i < set.rows.size(); ++i) {
    const Observation& a = set.rows[i];
    const Observation& b = again.rows[i];
    if (a.station != b.station || a.species != b.species || a.value_mg_l != b.value_mg_l ||
        std::fabs(a.time_s - b.time_s) > 0.5 || a.reach != b.reach ||
        a.IsPoint() != b.IsPoint() || (a.IsPoint() && a.km != b.km)) {
      __builtin_trap();
    }
  }
  return 0;
}
