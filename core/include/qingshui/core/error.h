// Error hierarchy shared by every Qingshui library. The library never prints or exits:
// it throws one of these, and the CLI or the Python bindings decide what the user sees.
#pragma once

#include <stdexcept>
#include <string>

namespace qingshui {

// Root of every error Qingshui throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Invalid user configuration: network files, decks, options. The message names the file,
// line and field and says what was expected ("network.yaml:12: reaches[2].length_km: ...").
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Invalid or inconsistent data series: observations, loads, flows.
class DataError : public Error {
 public:
  using Error::Error;
};

// A numerical method failed (no convergence, singular system, budget exhausted).
class SolverError : public Error {
 public:
  using Error::Error;
};

// "file:line: field: what" — the one format every located message uses. line <= 0 omits it.
std::string Located(const std::string& file, int line, const std::string& field,
                    const std::string& what);

}  // namespace qingshui
