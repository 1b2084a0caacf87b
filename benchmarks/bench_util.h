// Small helpers the drill benchmarks share (trace_drills, trace_coverage, trace_protocol):
// medians of per-drill figures and the value of a command-line option.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace qingshui::bench {

// Median of the finite values (NaN when there are none); with `keep_infinite`, +inf counts
// as the largest value ("never"), so the median is infinite when fewer than half get there.
inline double Median(std::vector<double> v, bool keep_infinite = false) {
  v.erase(
      std::remove_if(v.begin(), v.end(),
                     [&](double x) { return std::isnan(x) || (!keep_infinite && std::isinf(x)); }),
      v.end());
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The value after option argv[*i] (advancing *i); exits with status 2 when it is missing.
inline std::string NextValue(int argc, char** argv, int* i) {
  if (*i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[*i]);
    std::exit(2);
  }
  return argv[++*i];
}

}  // namespace qingshui::bench
