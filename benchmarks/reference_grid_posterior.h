// A plain reference implementation of the tracer's posterior, for the benchmark
// (trace_benchmark.cpp; benchmarks/RESULTS.md, "Source tracing"): the posterior of one
// release at each registered source by brute force — the same kernels, noise model and
// misfit with the masses solved inside, evaluated on a full grid of midpoint (hourly over
// the release window), duration (0.5, 1.5, 4, 12 h), velocity and dispersion factors (five
// each) and summed with the priors' weights; no optimizer, no Laplace approximation, no mass
// prior. Probabilities are among single releases at registered sources. It uses the tracer's
// internals (tracing/src/trace_context.h), so it lives beside the benchmark, not in the
// library's public header.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "qingshui/core/network.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/tracer.h"

namespace qingshui::tracing {

struct GridPosterior {
  std::vector<std::pair<std::string, double>> source_probability;  // most probable first
  long long evaluations = 0;
  double elapsed_s = 0.0;
};
GridPosterior ReferenceGridPosterior(const Network& network, const ObservationSet& observations,
                                     const TraceOptions& options);

}  // namespace qingshui::tracing
