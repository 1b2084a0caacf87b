// Reading the calibration and allocation files (YAML) with located messages: every error
// names the file, the line and the field ("allocation.yaml:12: sources[0].cost: ...").
// Numbers are plain or, as in the network file, {value: X, src: "S/M/E: ..."}.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <string>

#include "qingshui/core/error.h"

namespace qingshui::calibration {

class YamlDoc {
 public:
  explicit YamlDoc(const std::string& path) : path_(path) {
    try {
      root_ = YAML::LoadFile(path);
    } catch (const YAML::BadFile&) {
      throw ConfigError(Located(path, 0, "", "cannot open"));
    } catch (const YAML::Exception& e) {
      throw ConfigError(Located(path, e.mark.line + 1, "", e.msg));
    }
    if (!root_.IsMap()) throw ConfigError(Located(path, 1, "", "expected a mapping at the top"));
  }
  const YAML::Node& root() const { return root_; }
  const std::string& path() const { return path_; }

  std::string Where(const YAML::Node& n, const std::string& field) const {
    const int line = n && n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
    return Located(path_, line, field, "");
  }
  YAML::Node Required(const YAML::Node& parent, const std::string& key,
                      const std::string& field) const {
    if (!parent || !parent.IsMap() || !parent[key]) {
      throw ConfigError(Located(
          path_, parent && parent.Mark().line >= 0 ? parent.Mark().line + 1 : 0, field, "missing"));
    }
    return parent[key];
  }
  double Number(const YAML::Node& n, const std::string& field) const {
    // (Initialised, never assigned: assigning one YAML::Node to another overwrites the
    // node in the document.)
    if (n.IsMap() && !n["value"])
      throw ConfigError(Where(n, field) + "expected a number or {value: X, src: ...}");
    const YAML::Node v = n.IsMap() ? n["value"] : n;
    if (!v.IsScalar()) throw ConfigError(Where(n, field) + "expected a number");
    const std::string s = v.Scalar();
    char* end = nullptr;
    const double x = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(x)) {
      if (s == ".inf" || s == "inf") return INFINITY;
      throw ConfigError(Where(n, field) + "expected a number, found '" + s + "'");
    }
    return x;
  }
  std::string String(const YAML::Node& n, const std::string& field) const {
    if (!n.IsScalar()) throw ConfigError(Where(n, field) + "expected text");
    return n.Scalar();
  }
  // The provenance text of a {value, src} number, empty for a plain number.
  std::string Source(const YAML::Node& n) const {
    return n.IsMap() && n["src"] ? String(n["src"], "src") : std::string();
  }
  // The text of a map key (YAML also allows a sequence or a map as a key, which
  // yaml-cpp's as<string>() would answer with its own exception, unlocated).
  std::string Key(const YAML::Node& key, const std::string& field) const {
    if (!key.IsScalar()) {
      throw ConfigError(Where(key, field) + "expected a key (text), found a sequence or a map");
    }
    return key.Scalar();
  }

 private:
  std::string path_;
  YAML::Node root_;
};

}  // namespace qingshui::calibration
