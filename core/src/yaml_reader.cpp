#include "yaml_reader.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "qingshui/core/error.h"

namespace qingshui::detail {

void ReadContext::Error(int line, const std::string& field, const std::string& what) {
  errors.push_back(Located(file, line, field, what));
}

void ReadContext::ThrowIfErrors() const {
  if (errors.empty()) return;
  std::string message;
  for (size_t i = 0; i < errors.size(); ++i) {
    if (i) message += "\n";
    message += errors[i];
  }
  throw ConfigError(message);
}

int LineOf(const YAML::Node& node) {
  if (!node.IsDefined()) return 0;
  const YAML::Mark mark = node.Mark();
  return mark.line >= 0 ? mark.line + 1 : 0;
}

namespace {

const char* TypeName(const YAML::Node& node) {
  // A missing key yields an invalid node whose Type() throws; it reads as "nothing".
  if (!node.IsDefined()) return "nothing";
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "nothing (null)";
    default:
      return "undefined";
  }
}

// Strict number parsing: the whole scalar must be a finite decimal number.
bool ParseDouble(const std::string& text, double* value) {
  if (text.empty()) return false;
  const char* begin = text.c_str();
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(begin, &end);
  if (end == begin || *end != '\0' || errno == ERANGE) return false;
  *value = v;
  return true;
}

const char* BoundText(Bound bound) {
  switch (bound) {
    case Bound::kNonNegative:
      return "a finite number >= 0";
    case Bound::kPositive:
      return "a finite number > 0";
    case Bound::kFraction:
      return "a fraction between 0 and 1";
    default:
      return "a finite number";
  }
}

bool InBound(double v, Bound bound) {
  switch (bound) {
    case Bound::kNonNegative:
      return v >= 0.0;
    case Bound::kPositive:
      return v > 0.0;
    case Bound::kFraction:
      return v >= 0.0 && v <= 1.0;
    default:
      return true;
  }
}

}  // namespace

MapReader::MapReader(const YAML::Node& node, std::string path, ReadContext* ctx)
    : node_(node), path_(std::move(path)), ctx_(ctx), line_(LineOf(node)) {
  if (!node.IsDefined()) {
    ctx_->Error(line_, path_, "required map is missing");
    return;
  }
  if (!node.IsMap()) {
    ctx_->Error(line_, path_, std::string("expected a map of keys, found ") + TypeName(node));
    return;
  }
  ok_ = true;
  // yaml-cpp keeps the last of duplicated keys silently; a hand-edited file with the same
  // key twice almost always means a mistake, so say so.
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      ctx_->Error(LineOf(kv.first), path_ + "." + key, "key appears twice in the same map");
    }
  }
}

YAML::Node MapReader::Get(const std::string& key) const {
  // Const access: a non-const operator[] would insert the key into the document.
  const YAML::Node& node = node_;
  YAML::Node value = node[key];
  if (ctx_->field_lines && value.IsDefined()) (*ctx_->field_lines)[ChildPath(key)] = LineOf(value);
  return value;
}

bool MapReader::Has(const std::string& key) const {
  return ok_ && Get(key).IsDefined() && !Get(key).IsNull();
}

YAML::Node MapReader::Child(const std::string& key) {
  used_.insert(key);
  if (!ok_) return YAML::Node(YAML::NodeType::Undefined);
  YAML::Node child = Get(key);
  return child;
}

std::string MapReader::Text(const std::string& key, bool required, const std::string& fallback) {
  used_.insert(key);
  if (!ok_) return fallback;
  YAML::Node v = Get(key);
  if (!v.IsDefined() || v.IsNull()) {
    if (required) ctx_->Error(line_, ChildPath(key), "required text is missing");
    return fallback;
  }
  if (!v.IsScalar()) {
    ctx_->Error(LineOf(v), ChildPath(key), std::string("expected text, found ") + TypeName(v));
    return fallback;
  }
  return v.Scalar();
}

double MapReader::ReadNumberNode(const YAML::Node& node, const std::string& field, Bound bound,
                                 double scale) {
  ctx_->numbers_total++;
  // yaml-cpp's Node::operator= writes through to the referenced node; reset() rebinds.
  YAML::Node value_node;
  value_node.reset(node);
  Provenance prov;
  prov.path = field;
  prov.line = LineOf(node);
  if (node.IsMap()) {
    MapReader inner(node, field, ctx_);
    // reset() on an invalid (missing-key) node throws, so check before rebinding.
    const YAML::Node value = inner.Child("value");
    std::string src = inner.Text("src", true);
    inner.RejectUnknownKeys();
    if (!value.IsDefined()) {
      ctx_->Error(LineOf(node), field + ".value", "required number is missing");
      return 0.0;
    }
    value_node.reset(value);
    if (!src.empty()) {
      if (src.size() >= 2 && (src[0] == 'S' || src[0] == 'E' || src[0] == 'M') &&
          src[1] == ':') {
        prov.kind = src[0];
        size_t start = src.find_first_not_of(' ', 2);
        prov.text = start == std::string::npos ? "" : src.substr(start);
      } else {
        ctx_->Error(LineOf(node), field + ".src",
                    "provenance must start with 'S:' (published), 'M:' (measured) or 'E:' "
                    "(estimated), found '" +
                        src + "'");
      }
    }
  }
  if (!value_node.IsScalar()) {
    ctx_->Error(LineOf(value_node), field,
                std::string("expected a number, found ") + TypeName(value_node));
    return 0.0;
  }
  double v = 0.0;
  if (!ParseDouble(value_node.Scalar(), &v)) {
    ctx_->Error(LineOf(value_node), field,
                std::string("expected ") + BoundText(bound) + ", found '" + value_node.Scalar() +
                    "'");
    return 0.0;
  }
  if (!std::isfinite(v) || !InBound(v, bound)) {
    ctx_->Error(LineOf(value_node), field,
                std::string("expected ") + BoundText(bound) + ", found " + value_node.Scalar());
    return 0.0;
  }
  if (ctx_->provenance) ctx_->provenance->push_back(prov);
  return v * scale;
}

double MapReader::Number(const std::string& key, bool required, double fallback, Bound bound,
                         double scale) {
  used_.insert(key);
  if (!ok_) return fallback;
  YAML::Node v = Get(key);
  if (!v.IsDefined() || v.IsNull()) {
    if (required) ctx_->Error(line_, ChildPath(key), "required number is missing");
    return fallback;
  }
  return ReadNumberNode(v, ChildPath(key), bound, scale);
}

std::optional<double> MapReader::OptionalNumber(const std::string& key, Bound bound,
                                                double scale) {
  if (!Has(key)) {
    used_.insert(key);
    return std::nullopt;
  }
  return Number(key, true, 0.0, bound, scale);
}

int MapReader::Integer(const std::string& key, bool required, int fallback) {
  used_.insert(key);
  if (!ok_) return fallback;
  YAML::Node v = Get(key);
  if (!v.IsDefined() || v.IsNull()) {
    if (required) ctx_->Error(line_, ChildPath(key), "required integer is missing");
    return fallback;
  }
  int out = 0;
  if (!v.IsScalar() || !YAML::convert<int>::decode(v, out)) {
    ctx_->Error(LineOf(v), ChildPath(key),
                "expected an integer, found '" + (v.IsScalar() ? v.Scalar() : TypeName(v)) + "'");
    return fallback;
  }
  return out;
}

std::map<std::string, double> MapReader::NumberMap(const std::string& key, Bound bound) {
  used_.insert(key);
  std::map<std::string, double> out;
  if (!ok_) return out;
  YAML::Node v = Get(key);
  if (!v.IsDefined() || v.IsNull()) return out;
  if (!v.IsMap()) {
    ctx_->Error(LineOf(v), ChildPath(key),
                std::string("expected a map species → number, found ") + TypeName(v));
    return out;
  }
  MapReader inner(v, ChildPath(key), ctx_);  // reports duplicated keys
  for (const auto& kv : v) {
    const std::string name = kv.first.Scalar();
    if (ctx_->field_lines) (*ctx_->field_lines)[ChildPath(key) + "." + name] = LineOf(kv.first);
    out[name] = ReadNumberNode(kv.second, ChildPath(key) + "." + name, bound, 1.0);
  }
  return out;
}

std::string MapReader::Date(const std::string& key) {
  std::string text = Text(key, false);
  if (!text.empty() && !IsValidDate(text)) {
    ctx_->Error(LineOf(Get(key)), ChildPath(key),
                "expected a date YYYY-MM-DD, found '" + text + "'");
    return "";
  }
  return text;
}

std::string MapReader::Choice(const std::string& key, const std::vector<std::string>& choices,
                              bool required, const std::string& fallback) {
  std::string text = Text(key, required, fallback);
  if (!ok_ || !Has(key)) return text;
  for (const auto& c : choices) {
    if (c == text) return text;
  }
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  ctx_->Error(LineOf(Get(key)), ChildPath(key),
              "unknown value '" + text + "' (expected one of: " + list + ")");
  return fallback;
}

void MapReader::RejectUnknownKeys() {
  if (!ok_) return;
  for (const auto& kv : node_) {
    const std::string key = kv.first.Scalar();
    if (used_.count(key)) continue;
    std::string known;
    for (const auto& k : used_) known += (known.empty() ? "" : ", ") + k;
    ctx_->Error(LineOf(kv.first), ChildPath(key), "unknown key (known keys here: " + known + ")");
  }
}

void ForEachItem(const YAML::Node& list, const std::string& path, ReadContext* ctx,
                 const std::function<void(const YAML::Node&, size_t)>& each) {
  if (!list.IsDefined() || list.IsNull()) return;
  if (!list.IsSequence()) {
    ctx->Error(LineOf(list), path, std::string("expected a list, found ") + TypeName(list));
    return;
  }
  for (size_t i = 0; i < list.size(); ++i) each(list[i], i);
}

YAML::Node ParseYaml(const std::string& text, const std::string& file) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(Located(file, e.mark.line >= 0 ? e.mark.line + 1 : 0, "",
                              "malformed YAML: " + e.msg));
  }
}

bool IsValidId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  if (!std::isalpha(static_cast<unsigned char>(id[0]))) return false;
  for (char c : id) {
    unsigned char u = static_cast<unsigned char>(c);
    if (!(std::isalnum(u) || c == '_' || c == '-')) return false;
  }
  return true;
}

bool IsValidDate(const std::string& date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return false;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (!std::isdigit(static_cast<unsigned char>(date[i]))) return false;
  }
  int y = std::stoi(date.substr(0, 4));
  int m = std::stoi(date.substr(5, 2));
  int d = std::stoi(date.substr(8, 2));
  if (m < 1 || m > 12 || d < 1) return false;
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  int max_day = kDays[m - 1] + (m == 2 && leap ? 1 : 0);
  return d <= max_day;
}

}  // namespace qingshui::detail
