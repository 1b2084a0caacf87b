// Strict YAML helpers shared by the tracing readers (scenario, priors): every error names
// the file, line and field; unknown keys are errors; numbers may carry provenance
// ({value: X, src: "E: ..."}).
#pragma once

#include <yaml-cpp/yaml.h>

#include <set>
#include <string>

#include "qingshui/core/error.h"

namespace qingshui::tracing::detail {

inline int LineOf(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  const YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

class YamlReader {
 public:
  explicit YamlReader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void Fail(const YAML::Node& node, const std::string& field,
                         const std::string& what) const {
    throw ConfigError(Located(file_, LineOf(node), field, what));
  }
  [[noreturn]] void FailAt(int line, const std::string& field, const std::string& what) const {
    throw ConfigError(Located(file_, line, field, what));
  }

  // The text of a map key. YAML allows a sequence or a map as a key ("{[a]: 1}", or an
  // entry without a value inside a flow map, "{a: 1, {b: 2}}"); yaml-cpp's as<string>()
  // would throw its own exception past the located errors (found by fuzz_scenario).
  std::string Key(const YAML::Node& key, const std::string& field) const {
    if (!key.IsScalar()) Fail(key, field, "expected a key (text), found a sequence or a map");
    return key.Scalar();
  }

  void CheckKeys(const YAML::Node& map, const std::string& field,
                 const std::set<std::string>& allowed) const {
    if (!map.IsMap()) Fail(map, field, "expected a map");
    for (const auto& kv : map) {
      const std::string key = Key(kv.first, field);
      if (!allowed.count(key)) {
        std::string known;
        for (const auto& a : allowed) known += (known.empty() ? "" : ", ") + a;
        Fail(kv.first, field.empty() ? key : field + "." + key,
             "unknown key (known: " + known + ")");
      }
    }
  }

  // A finite number, plain or {value: X, src: "..."}.
  double Number(const YAML::Node& node, const std::string& field) const {
    YAML::Node v = node;
    if (node.IsMap()) {
      CheckKeys(node, field, {"value", "src"});
      v = node["value"];
      if (!v.IsDefined()) Fail(node, field, "expected {value: X, src: \"...\"}");
    }
    if (!v.IsScalar()) Fail(node, field, "expected a number");
    const std::string text = v.Scalar();
    char* end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(x)) {
      Fail(v, field, "expected a finite number, got '" + text + "'");
    }
    return x;
  }

  std::string Text(const YAML::Node& node, const std::string& field) const {
    if (!node.IsScalar()) Fail(node, field, "expected text");
    return node.Scalar();
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

inline YAML::Node ParseYaml(const std::string& text, const std::string& file) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(
        Located(file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "", "malformed YAML: " + e.msg));
  }
}

}  // namespace qingshui::tracing::detail
