// What several tracing test files load: the default network and the tracing priors, each
// read once per test binary.
#pragma once

#include "qingshui/core/network.h"
#include "qingshui/tracing/priors.h"
#include "test_paths.h"

namespace qingshui::tracing::fixtures {

inline const Network& Default() {
  static const Network net = LoadNetwork(testing::SourcePath("data/yuncheng/network.yaml"));
  return net;
}

inline const TracingPriors& Priors() {
  static const TracingPriors p =
      LoadTracingPriors(testing::SourcePath("data/tracing/source_signatures.yaml"));
  return p;
}

}  // namespace qingshui::tracing::fixtures
