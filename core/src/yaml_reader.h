// Strict YAML reading with located errors: every value read through MapReader knows its
// file, line and field path, unknown keys are reported, and numbers may carry their
// provenance as {value: X, src: "S: ..."}. Private to the core library.
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "qingshui/core/network.h"

namespace qingshui::detail {

// Collects errors (one line each, "file:line: field: what") and provenance records while a
// file is read, so that one pass reports every problem it can.
struct ReadContext {
  std::string file;
  std::vector<std::string> errors;
  std::vector<Provenance>* provenance = nullptr;  // may be null (standards files)
  std::map<std::string, int>* field_lines = nullptr;  // path → line of every key read
  int numbers_total = 0;

  void Error(int line, const std::string& field, const std::string& what);
  // Throws ConfigError with all collected errors, if any.
  void ThrowIfErrors() const;
};

int LineOf(const YAML::Node& node);  // 1-based, 0 if unknown

enum class Bound { kAny, kNonNegative, kPositive, kFraction };

class MapReader {
 public:
  // `node` must be a map; otherwise an error is recorded and every read returns defaults.
  MapReader(const YAML::Node& node, std::string path, ReadContext* ctx);

  bool ok() const { return ok_; }
  int line() const { return line_; }
  const std::string& path() const { return path_; }
  bool Has(const std::string& key) const;

  std::string Text(const std::string& key, bool required, const std::string& fallback = "");
  // A number, plain or {value, src}; scaled by `scale` (e.g. 1000 for km → m). Records
  // provenance under path.key.
  double Number(const std::string& key, bool required, double fallback, Bound bound,
                double scale = 1.0);
  std::optional<double> OptionalNumber(const std::string& key, Bound bound, double scale = 1.0);
  int Integer(const std::string& key, bool required, int fallback);
  // A map of species id → number (e.g. effluent_mg_l).
  std::map<std::string, double> NumberMap(const std::string& key, Bound bound);
  // Node of a nested map or list; undefined node if absent.
  YAML::Node Child(const std::string& key);
  std::string ChildPath(const std::string& key) const { return path_ + "." + key; }
  // A date YYYY-MM-DD (or empty when absent and not required).
  std::string Date(const std::string& key);
  // A text from a fixed set of choices.
  std::string Choice(const std::string& key, const std::vector<std::string>& choices,
                     bool required, const std::string& fallback);

  // Records an error for every key that was never read.
  void RejectUnknownKeys();

  ReadContext* context() const { return ctx_; }

 private:
  YAML::Node Get(const std::string& key) const;
  double ReadNumberNode(const YAML::Node& node, const std::string& field, Bound bound,
                        double scale);

  YAML::Node node_;
  std::string path_;
  ReadContext* ctx_;
  bool ok_ = false;
  int line_ = 0;
  std::set<std::string> used_;
};

// Iterates a list node, calling `each(item, index)`; records an error if it is not a list.
void ForEachItem(const YAML::Node& list, const std::string& path, ReadContext* ctx,
                 const std::function<void(const YAML::Node&, size_t)>& each);

// Parses YAML text; malformed YAML becomes a located ConfigError.
YAML::Node ParseYaml(const std::string& text, const std::string& file);

bool IsValidId(const std::string& id);
bool IsValidDate(const std::string& date);

}  // namespace qingshui::detail
