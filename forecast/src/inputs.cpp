#include "qingshui/core/text.h"
#include "qingshui/forecast/inputs.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/forecast/time.h"
#include "src_internal.h"

namespace qingshui::forecast {

namespace fs = std::filesystem;

std::string Issue::Format() const {
  std::string out = "warning[" + code + "]";
  if (!where.empty()) out += " " + where + ":";
  return out + " " + message;
}

const char* ToString(ScheduleEvent::Kind kind) {
  switch (kind) {
    case ScheduleEvent::Kind::kOutage:
      return "outage";
    case ScheduleEvent::Kind::kUpgrade:
      return "upgrade";
    case ScheduleEvent::Kind::kFlow:
      return "flow";
    case ScheduleEvent::Kind::kOnline:
      return "online";
    case ScheduleEvent::Kind::kOffline:
      return "offline";
  }
  return "?";
}

namespace detail {

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(Located(path, 0, "", "cannot open the file"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw ConfigError(Located(path, 0, "", "cannot read the file"));
  return buffer.str();
}


std::string Trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) --b;
  return s.substr(a, b - a);
}

bool ParseNumber(const std::string& text, double* value) {
  if (text.empty()) return false;
  const char* begin = text.c_str();
  char* end = nullptr;
  *value = std::strtod(begin, &end);
  return end == begin + text.size();
}

// Lines of a CSV text with their numbers, skipping blank and '#' comment lines; the BOM
// of a UTF-8 file is dropped.
std::vector<std::pair<int, std::string>> CsvLines(const std::string& text) {
  std::vector<std::pair<int, std::string>> lines;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line = line.substr(3);
    const std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    lines.emplace_back(number, line);
  }
  return lines;
}

}  // namespace detail

using detail::CsvLines;
using detail::ParseNumber;
using qingshui::SplitCsvLine;  // core/text.h

namespace {

// Column positions of a header; every name in `required` must be there, every column must
// be one of `required` or `optional`.
std::map<std::string, size_t> Header(const std::vector<std::string>& names, const std::string& file,
                                     int line, const std::vector<std::string>& required,
                                     const std::vector<std::string>& optional) {
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < names.size(); ++i) {
    const bool known = std::count(required.begin(), required.end(), names[i]) ||
                       std::count(optional.begin(), optional.end(), names[i]);
    if (!known) {
      std::string expected;
      for (const auto& n : required) expected += (expected.empty() ? "" : ",") + n;
      for (const auto& n : optional) expected += ",[" + n + "]";
      throw DataError(
          Located(file, line, "header",
                  "[bad-header] unknown column '" + names[i] + "' (expected " + expected + ")"));
    }
    if (at.count(names[i])) {
      throw DataError(
          Located(file, line, "header", "[bad-header] column '" + names[i] + "' appears twice"));
    }
    at[names[i]] = i;
  }
  for (const auto& n : required) {
    if (!at.count(n)) {
      throw DataError(Located(file, line, "header", "[bad-header] missing column '" + n + "'"));
    }
  }
  return at;
}

}  // namespace

std::vector<Observation> ParseObservationsCsv(const std::string& text, const std::string& file) {
  const auto lines = CsvLines(text);
  if (lines.empty()) {
    throw DataError(Located(file, 0, "",
                            "[bad-header] empty file: expected a header "
                            "time,station,species,value[,flag]"));
  }
  const auto col = Header(SplitCsvLine(lines[0].second), file, lines[0].first,
                          {"time", "station", "species", "value"}, {"flag"});
  std::vector<Observation> out;
  out.reserve(lines.size());
  for (size_t i = 1; i < lines.size(); ++i) {
    const auto& [number, line] = lines[i];
    const auto f = SplitCsvLine(line);
    if (f.size() != col.size()) {
      throw DataError(Located(file, number, "",
                              "[bad-row] expected " + std::to_string(col.size()) + " fields, got " +
                                  std::to_string(f.size())));
    }
    Observation o;
    o.where = file + ":" + std::to_string(number);
    std::string error;
    if (!ParseIsoTime(f[col.at("time")], &o.time_utc_s, &error)) {
      throw DataError(Located(file, number, "time", "[bad-time] " + error));
    }
    o.station = f[col.at("station")];
    o.species = f[col.at("species")];
    const std::string& v = f[col.at("value")];
    if (col.count("flag")) o.flag = f[col.at("flag")];
    if (v.empty()) {
      // A missing value is as good as no row; the gap check will see it.
      o.value_mg_l = std::nan("");
      o.flag = o.flag.empty() ? "missing" : o.flag;
    } else if (!ParseNumber(v, &o.value_mg_l)) {
      throw DataError(Located(file, number, "value", "[bad-value] '" + v + "' is not a number"));
    }
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<Observation> ReadObservationsCsv(const std::string& path) {
  return ParseObservationsCsv(detail::ReadTextFile(path), path);
}

std::vector<PlantRecord> ParsePlantRecordsCsv(const std::string& text, const std::string& file) {
  const auto lines = CsvLines(text);
  if (lines.empty()) {
    throw DataError(Located(
        file, 0, "", "[bad-header] empty file: expected a header date,source,quantity,value"));
  }
  const auto col = Header(SplitCsvLine(lines[0].second), file, lines[0].first,
                          {"date", "source", "quantity", "value"}, {});
  std::vector<PlantRecord> out;
  for (size_t i = 1; i < lines.size(); ++i) {
    const auto& [number, line] = lines[i];
    const auto f = SplitCsvLine(line);
    if (f.size() != col.size()) {
      throw DataError(Located(file, number, "",
                              "[bad-row] expected " + std::to_string(col.size()) + " fields, got " +
                                  std::to_string(f.size())));
    }
    PlantRecord r;
    r.where = file + ":" + std::to_string(number);
    if (!ParseDate(f[col.at("date")], &r.day)) {
      throw DataError(
          Located(file, number, "date",
                  "[bad-time] expected a date YYYY-MM-DD, got '" + f[col.at("date")] + "'"));
    }
    r.source = f[col.at("source")];
    r.quantity = f[col.at("quantity")];
    if (!ParseNumber(f[col.at("value")], &r.value)) {
      throw DataError(Located(file, number, "value",
                              "[bad-value] '" + f[col.at("value")] + "' is not a number"));
    }
    out.push_back(std::move(r));
  }
  return out;
}

namespace {

int LineOf(const YAML::Node& n) { return n.Mark().line >= 0 ? n.Mark().line + 1 : 0; }

// A number written plainly or as {value: x, src: "..."} (provenance, docs/network-format.md).
double YamlNumber(const YAML::Node& n, const std::string& file, const std::string& field) {
  YAML::Node v = n;
  if (n.IsMap()) {
    for (const auto& kv : n) {
      const std::string key = kv.first.Scalar();
      if (key != "value" && key != "src") {
        throw ConfigError(
            Located(file, LineOf(n), field, "unknown key '" + key + "' (expected value, src)"));
      }
    }
    v = n["value"];
  }
  double x;
  if (!v.IsDefined() || !v.IsScalar() || !ParseNumber(v.Scalar(), &x) || !std::isfinite(x)) {
    throw ConfigError(Located(file, LineOf(n), field, "expected a number"));
  }
  return x;
}

std::string YamlText(const YAML::Node& n, const std::string& file, const std::string& field) {
  if (!n.IsScalar()) throw ConfigError(Located(file, LineOf(n), field, "expected text"));
  return n.Scalar();
}

void CheckKeys(const YAML::Node& map, const std::set<std::string>& known, const std::string& file,
               const std::string& path) {
  if (!map.IsMap()) throw ConfigError(Located(file, LineOf(map), path, "expected a map"));
  for (const auto& kv : map) {
    const std::string key = kv.first.Scalar();
    if (!known.count(key)) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError(Located(file, LineOf(kv.first), path.empty() ? key : path + "." + key,
                                "unknown key (expected one of: " + list + ")"));
    }
  }
}

YAML::Node LoadYaml(const std::string& path) {
  try {
    return YAML::Load(detail::ReadTextFile(path));
  } catch (const YAML::Exception& e) {
    throw ConfigError(Located(path, e.mark.line + 1, "", e.msg));
  }
}

void CheckFormat(const YAML::Node& root, const std::string& file, const std::string& format) {
  if (!root.IsMap()) throw ConfigError(Located(file, 0, "", "expected a YAML map"));
  if (!root["format"].IsDefined() || !root["format"].IsScalar() ||
      root["format"].Scalar() != format) {
    throw ConfigError(Located(file, LineOf(root), "format", "expected '" + format + "'"));
  }
  if (!root["version"].IsDefined() || root["version"].Scalar() != "1") {
    throw ConfigError(
        Located(file, LineOf(root), "version", "expected 1 (the version this program reads)"));
  }
}

std::int64_t YamlDate(const YAML::Node& n, const std::string& file, const std::string& field) {
  std::int64_t day;
  if (!n.IsScalar() || !ParseDate(n.Scalar(), &day)) {
    throw ConfigError(Located(file, LineOf(n), field, "expected a date YYYY-MM-DD"));
  }
  return day;
}

std::vector<ScheduleEvent> ReadEvents(const std::string& path, const std::string& format,
                                      const Network& net) {
  const YAML::Node root = LoadYaml(path);
  CheckFormat(root, path, format);
  CheckKeys(root, {"format", "version", "description", "events"}, path, "");
  std::vector<ScheduleEvent> out;
  const YAML::Node events = root["events"];
  if (!events.IsDefined() || events.IsNull()) return out;
  if (!events.IsSequence())
    throw ConfigError(Located(path, LineOf(events), "events", "expected a list"));
  for (size_t i = 0; i < events.size(); ++i) {
    const YAML::Node e = events[i];
    const std::string p = "events[" + std::to_string(i) + "]";
    CheckKeys(e,
              {"source", "kind", "from", "to", "effluent_mg_l", "flow_m3s", "flow_factor", "note"},
              path, p);
    ScheduleEvent ev;
    ev.where = path + ":" + std::to_string(LineOf(e));
    if (!e["source"].IsDefined())
      throw ConfigError(Located(path, LineOf(e), p + ".source", "required"));
    ev.source = YamlText(e["source"], path, p + ".source");
    if (!net.FindSource(ev.source)) {
      throw ConfigError(
          Located(path, LineOf(e["source"]), p + ".source",
                  "[unknown-source] '" + ev.source + "' is not a source of the network"));
    }
    if (!e["kind"].IsDefined())
      throw ConfigError(Located(path, LineOf(e), p + ".kind", "required"));
    const std::string kind = YamlText(e["kind"], path, p + ".kind");
    using K = ScheduleEvent::Kind;
    const std::map<std::string, K> kinds = {{"outage", K::kOutage},
                                            {"upgrade", K::kUpgrade},
                                            {"flow", K::kFlow},
                                            {"online", K::kOnline},
                                            {"offline", K::kOffline}};
    if (!kinds.count(kind)) {
      throw ConfigError(
          Located(path, LineOf(e["kind"]), p + ".kind",
                  "'" + kind + "' (expected outage, upgrade, flow, online, offline)"));
    }
    ev.kind = kinds.at(kind);
    if (!e["from"].IsDefined())
      throw ConfigError(Located(path, LineOf(e), p + ".from", "required"));
    ev.from_day = YamlDate(e["from"], path, p + ".from");
    if (e["to"].IsDefined()) {
      ev.to_day = YamlDate(e["to"], path, p + ".to");
      if (ev.to_day < ev.from_day) {
        throw ConfigError(Located(path, LineOf(e["to"]), p + ".to", "is before 'from'"));
      }
    } else if (ev.kind == K::kOutage) {
      throw ConfigError(Located(path, LineOf(e), p + ".to", "an outage needs an end date"));
    }
    if (e["effluent_mg_l"].IsDefined()) {
      const YAML::Node m = e["effluent_mg_l"];
      if (!m.IsMap()) {
        throw ConfigError(Located(path, LineOf(m), p + ".effluent_mg_l", "expected species: mg/L"));
      }
      for (const auto& kv : m) {
        const std::string sp = kv.first.Scalar();
        if (!net.FindSpecies(sp)) {
          throw ConfigError(Located(path, LineOf(kv.first), p + ".effluent_mg_l." + sp,
                                    "[unknown-species] not a species of the network"));
        }
        const double v = YamlNumber(kv.second, path, p + ".effluent_mg_l." + sp);
        if (v < 0) {
          throw ConfigError(Located(path, LineOf(kv.second), p + ".effluent_mg_l." + sp,
                                    "[value-out-of-range] expected >= 0"));
        }
        ev.effluent_mg_l[sp] = v;
      }
    }
    if (e["flow_m3s"].IsDefined()) {
      ev.flow_m3s = YamlNumber(e["flow_m3s"], path, p + ".flow_m3s");
      if (*ev.flow_m3s < 0) {
        throw ConfigError(Located(path, LineOf(e["flow_m3s"]), p + ".flow_m3s", "expected >= 0"));
      }
    }
    if (e["flow_factor"].IsDefined()) {
      ev.flow_factor = YamlNumber(e["flow_factor"], path, p + ".flow_factor");
      if (ev.flow_factor < 0) {
        throw ConfigError(
            Located(path, LineOf(e["flow_factor"]), p + ".flow_factor", "expected >= 0"));
      }
    }
    if (e["note"].IsDefined()) ev.note = YamlText(e["note"], path, p + ".note");
    if ((ev.kind == K::kOutage || ev.kind == K::kUpgrade) && ev.effluent_mg_l.empty() &&
        ev.flow_factor == 1.0) {
      throw ConfigError(Located(path, LineOf(e), p,
                                std::string("a") +
                                    (ev.kind == K::kUpgrade ? "n upgrade" : "n outage") +
                                    " needs effluent_mg_l (or flow_factor)"));
    }
    if (ev.kind == K::kFlow && !ev.flow_m3s) {
      throw ConfigError(Located(path, LineOf(e), p + ".flow_m3s", "a flow event needs flow_m3s"));
    }
    out.push_back(std::move(ev));
  }
  return out;
}

Climatology ReadClimatology(const std::string& path) {
  const YAML::Node root = LoadYaml(path);
  CheckFormat(root, path, "qingshui-climatology");
  CheckKeys(root,
            {"format", "version", "name", "description", "src", "water_temperature_c",
             "wet_day_probability", "mean_wet_day_rain_mm"},
            path, "");
  Climatology c;
  c.file = path;
  auto monthly = [&](const std::string& key, std::array<double, 12>* out, double lo, double hi) {
    const YAML::Node n = root[key];
    if (!n.IsDefined())
      throw ConfigError(Located(path, LineOf(root), key, "required (12 monthly values)"));
    const YAML::Node v = n.IsMap() ? n["values"] : n;
    if (n.IsMap()) CheckKeys(n, {"values", "src"}, path, key);
    if (!v.IsSequence() || v.size() != 12) {
      throw ConfigError(
          Located(path, LineOf(n), key, "expected 12 monthly values (January first)"));
    }
    for (size_t m = 0; m < 12; ++m) {
      const double x = YamlNumber(v[m], path, key + "[" + std::to_string(m) + "]");
      if (x < lo || x > hi) {
        throw ConfigError(
            Located(path, LineOf(v[m]), key + "[" + std::to_string(m) + "]", "out of range"));
      }
      (*out)[m] = x;
    }
  };
  monthly("water_temperature_c", &c.water_temperature_c, -5, 45);
  monthly("wet_day_probability", &c.wet_day_probability, 0, 1);
  monthly("mean_wet_day_rain_mm", &c.mean_wet_day_rain_mm, 0, 500);
  return c;
}

// weather.csv: `date[,water_temperature_c][,<catchment>...]`. The rain columns are handed to
// hydro's rain reader line for line, so its checks (consecutive days, values) and its line
// numbers apply unchanged.
Weather ReadWeather(const std::string& path, const Network& net) {
  Weather w;
  w.file = path;
  const std::string text = detail::ReadTextFile(path);
  std::istringstream in(text);
  std::string line, rain_text;
  int number = 0;
  long temperature_column = -1;
  bool header = false;
  size_t columns = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string t = detail::Trim(line);
    if (t.empty() || t[0] == '#') {
      rain_text += line + "\n";
      continue;
    }
    auto f = SplitCsvLine(line);
    if (!header) {
      header = true;
      columns = f.size();
      if (f.empty() || f[0] != "date") {
        throw DataError(Located(path, number, "header", "[bad-header] expected 'date' first"));
      }
      for (size_t i = 1; i < f.size(); ++i) {
        if (f[i] == "water_temperature_c") temperature_column = static_cast<long>(i);
      }
    } else {
      if (f.size() != columns) {
        throw DataError(Located(path, number, "",
                                "[bad-row] expected " + std::to_string(columns) + " fields, got " +
                                    std::to_string(f.size())));
      }
      if (temperature_column >= 0) {
        std::int64_t day;
        if (!ParseDate(f[0], &day)) {
          throw DataError(Located(path, number, "date", "[bad-time] expected YYYY-MM-DD"));
        }
        const std::string& v = f[temperature_column];
        double x;
        if (!v.empty()) {
          if (!ParseNumber(v, &x)) {
            throw DataError(
                Located(path, number, "water_temperature_c", "[bad-value] not a number"));
          }
          if (!(x >= -5 && x <= 45)) {
            throw DataError(Located(path, number, "water_temperature_c",
                                    "[value-out-of-range] expected -5 to 45 °C"));
          }
          w.water_temperature_c[day] = x;
        }
      }
    }
    if (temperature_column >= 0) f.erase(f.begin() + temperature_column);
    std::string joined;
    for (size_t i = 0; i < f.size(); ++i) joined += (i ? "," : "") + f[i];
    rain_text += joined + "\n";
  }
  if (!header) throw DataError(Located(path, 0, "", "[bad-header] empty file"));
  const size_t rain_columns = columns - 1 - (temperature_column >= 0 ? 1 : 0);
  if (rain_columns > 0) w.rain = hydro::ParseRainCsv(rain_text, path, net);
  return w;
}

std::string Resolve(const std::string& base_dir, const std::string& name) {
  if (name.empty()) return "";
  fs::path p(name);
  if (p.is_relative()) p = fs::path(base_dir) / p;
  return p.lexically_normal().string();
}

}  // namespace

std::string DefaultInputsDir() {
  if (const char* env = std::getenv("QINGSHUI_FORECAST_INPUTS"); env && *env) return env;
  return QINGSHUI_DEFAULT_FORECAST_INPUTS;
}

std::string ManifestNetworkPath(const std::string& dir) {
  const fs::path manifest = fs::path(dir) / "forecast.yaml";
  if (!fs::exists(manifest)) return "";
  const YAML::Node root = LoadYaml(manifest.string());
  if (root.IsMap() && root["network"].IsDefined() && root["network"].IsScalar()) {
    return Resolve(dir, root["network"].Scalar());
  }
  return "";
}

ForecastInputs ReadInputs(const std::string& dir, const Network& net) {
  if (!fs::is_directory(dir)) {
    throw ConfigError(Located(dir, 0, "", "expected an inputs directory (docs/forecast.md)"));
  }
  ForecastInputs in;
  in.dir = dir;
  const fs::path manifest = fs::path(dir) / "forecast.yaml";
  YAML::Node root;
  if (fs::exists(manifest)) {
    in.manifest = manifest.string();
    root = LoadYaml(in.manifest);
    CheckFormat(root, in.manifest, "qingshui-forecast-inputs");
    CheckKeys(root,
              {"format", "version", "description", "synthetic", "as_of", "network", "observations",
               "plant_records", "schedule", "scenario", "weather", "climatology", "settings",
               "indicators"},
              in.manifest, "");
  }
  const std::string& mf = in.manifest;
  auto named = [&](const std::string& key, const std::vector<std::string>& conventional) {
    if (root.IsMap() && root[key].IsDefined()) {
      const std::string p = Resolve(dir, YamlText(root[key], mf, key));
      if (!fs::exists(p)) {
        throw ConfigError(Located(mf, LineOf(root[key]), key, "file not found: " + p));
      }
      return p;
    }
    for (const auto& c : conventional) {
      const fs::path p = fs::path(dir) / c;
      if (fs::exists(p)) return p.lexically_normal().string();
    }
    return std::string();
  };
  if (root.IsMap()) {
    if (root["description"].IsDefined())
      in.description = YamlText(root["description"], mf, "description");
    if (root["synthetic"].IsDefined()) {
      const std::string s = YamlText(root["synthetic"], mf, "synthetic");
      if (s != "true" && s != "false") {
        throw ConfigError(
            Located(mf, LineOf(root["synthetic"]), "synthetic", "expected true or false"));
      }
      in.synthetic = s == "true";
    }
    if (root["as_of"].IsDefined()) {
      std::int64_t t;
      std::string error;
      if (!ParseIsoTime(YamlText(root["as_of"], mf, "as_of"), &t, &error)) {
        throw ConfigError(Located(mf, LineOf(root["as_of"]), "as_of", "[bad-time] " + error));
      }
      in.as_of_utc_s = t;
    }
    if (root["network"].IsDefined())
      in.network_path = Resolve(dir, YamlText(root["network"], mf, "network"));
    if (root["settings"].IsDefined()) {
      const YAML::Node s = root["settings"];
      CheckKeys(s, {"hindcast_days", "days", "members", "groups", "seed"}, mf, "settings");
      auto integer = [&](const char* key, long lo, long hi) -> std::optional<long> {
        if (!s[key].IsDefined()) return std::nullopt;
        const double x = YamlNumber(s[key], mf, std::string("settings.") + key);
        if (x != std::floor(x) || x < lo || x > hi) {
          throw ConfigError(Located(
              mf, LineOf(s[key]), std::string("settings.") + key,
              "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi)));
        }
        return static_cast<long>(x);
      };
      if (auto v = integer("hindcast_days", 0, 60))
        in.settings.hindcast_days = static_cast<int>(*v);
      if (auto v = integer("days", 1, 30)) in.settings.days = static_cast<int>(*v);
      if (auto v = integer("members", 1, 100000)) in.settings.members = static_cast<int>(*v);
      if (auto v = integer("groups", 1, 10000)) in.settings.groups = static_cast<int>(*v);
      if (auto v = integer("seed", 0, 2147483647L))
        in.settings.seed = static_cast<std::uint64_t>(*v);
    }
    if (root["indicators"].IsDefined()) {
      const YAML::Node list = root["indicators"];
      if (!list.IsSequence()) {
        throw ConfigError(
            Located(mf, LineOf(list), "indicators", "expected a list of species ids"));
      }
      for (const auto& x : list) in.settings.indicators.push_back(YamlText(x, mf, "indicators"));
      try {
        AssessedIndicators(net, in.settings.indicators);
      } catch (const ConfigError& e) {
        throw ConfigError(Located(mf, LineOf(list), "indicators", e.what()));
      }
    }
  }

  in.observations_file = named("observations", {"observations.csv", "observations.h5"});
  if (!in.observations_file.empty()) {
    const std::string ext = fs::path(in.observations_file).extension().string();
    in.observations = (ext == ".h5" || ext == ".hdf5") ? ReadObservationsHdf5(in.observations_file)
                                                       : ReadObservationsCsv(in.observations_file);
  }
  in.plant_records_file = named("plant_records", {"plant_records.csv"});
  if (!in.plant_records_file.empty()) {
    const auto records =
        ParsePlantRecordsCsv(detail::ReadTextFile(in.plant_records_file), in.plant_records_file);
    // Ids are errors; values outside the physical range and duplicates are warnings.
    std::map<std::tuple<std::int64_t, std::string, std::string>, size_t> seen;
    std::set<size_t> dropped;
    for (size_t i = 0; i < records.size(); ++i) {
      const PlantRecord& r = records[i];
      const std::string file_line = r.where;
      if (!net.FindSource(r.source)) {
        throw ConfigError(file_line + ": source: [unknown-source] '" + r.source +
                          "' is not a source of the network");
      }
      if (r.quantity != "flow_m3s" && !net.FindSpecies(r.quantity)) {
        throw ConfigError(file_line + ": quantity: [unknown-species] '" + r.quantity +
                          "' (expected flow_m3s or a species id of the network)");
      }
      const double ceiling = r.quantity == "flow_m3s" ? 1000.0 : 1.0e5;
      if (!std::isfinite(r.value) || r.value < 0 || r.value > ceiling) {
        in.warnings.push_back({"value-out-of-range", file_line,
                               r.source + " " + r.quantity + " = " + std::to_string(r.value) +
                                   " is outside [0, " + std::to_string(ceiling) +
                                   "]; the record is not used"});
        dropped.insert(i);
        continue;
      }
      auto key = std::make_tuple(r.day, r.source, r.quantity);
      auto it = seen.find(key);
      if (it != seen.end()) {
        const bool same = records[it->second].value == r.value;
        in.warnings.push_back({"duplicate-timestamp", file_line,
                               r.source + " " + r.quantity + " on " + FormatDate(r.day) +
                                   " repeats " + records[it->second].where +
                                   (same ? " with the same value; one is kept"
                                         : " with a different value; neither is used")});
        dropped.insert(i);
        if (!same) dropped.insert(it->second);
        continue;
      }
      seen[key] = i;
    }
    for (size_t i = 0; i < records.size(); ++i) {
      if (!dropped.count(i)) in.plant_records.push_back(records[i]);
    }
  }
  in.schedule_file = named("schedule", {"schedule.yaml"});
  if (!in.schedule_file.empty()) {
    in.schedule = ReadEvents(in.schedule_file, "qingshui-forecast-schedule", net);
  }
  in.scenario_file = named("scenario", {"scenario.yaml"});
  if (!in.scenario_file.empty()) {
    in.scenario = ReadEvents(in.scenario_file, "qingshui-forecast-scenario", net);
  }
  const std::string weather = named("weather", {"weather.csv"});
  if (!weather.empty()) in.weather = ReadWeather(weather, net);

  std::string climatology = named("climatology", {});
  if (climatology.empty() && !net.file.empty()) {
    const fs::path beside = fs::path(net.file).parent_path() / "climatology.yaml";
    if (fs::exists(beside)) climatology = beside.lexically_normal().string();
  }
  if (!climatology.empty()) {
    in.climatology = ReadClimatology(climatology);
  }
  return in;
}

std::vector<std::string> AssessedIndicators(const Network& net,
                                            const std::vector<std::string>& wanted) {
  std::vector<std::string> out;
  if (!net.standard) {
    if (!wanted.empty()) throw ConfigError("indicators: the network has no standards table");
    return out;
  }
  if (wanted.empty()) {
    for (const auto& s : net.species) {
      if (net.standard->Find(s.id)) out.push_back(s.id);
    }
    return out;
  }
  for (const auto& w : wanted) {
    if (!net.FindSpecies(w)) throw ConfigError("'" + w + "' is not a species of the network");
    if (!net.standard->Find(w)) {
      throw ConfigError("'" + w + "' has no indicator in the standard " + net.standard->id);
    }
    if (std::count(out.begin(), out.end(), w)) throw ConfigError("'" + w + "' is listed twice");
    out.push_back(w);
  }
  return out;
}

std::vector<Observation> ValidateObservations(const std::vector<Observation>& observations,
                                              const Network& net, std::int64_t window_start,
                                              std::int64_t as_of, std::vector<Issue>* issues) {
  std::vector<Observation> kept;
  int after = 0, before = 0;
  std::set<std::string> monitors_reported;
  for (const Observation& o : observations) {
    const Station* st = net.FindStation(o.station);
    if (!st) {
      std::string known;
      for (const auto& s : net.stations) known += (known.empty() ? "" : ", ") + s.id;
      throw ConfigError(o.where + ": station: [unknown-station] '" + o.station +
                        "' is not a station of the network (known: " + known + ")");
    }
    if (!net.FindSpecies(o.species)) {
      std::string known;
      for (const auto& s : net.species) known += (known.empty() ? "" : ", ") + s.id;
      throw ConfigError(o.where + ": species: [unknown-species] '" + o.species +
                        "' is not a species of the network (known: " + known + ")");
    }
    if (o.flag == "invalid" || o.flag == "missing") continue;
    if (!o.flag.empty() && o.flag != "ok" && o.flag != "suspect" && o.flag != "below_detection") {
      issues->push_back({"invalid-flag", o.where,
                         "flag '" + o.flag +
                             "' is not one of ok, suspect, below_detection, invalid, missing; the "
                             "value is not used"});
      continue;
    }
    if (o.time_utc_s > as_of) {
      ++after;
      continue;
    }
    if (o.time_utc_s < window_start) {
      ++before;
      continue;
    }
    if (st->kind == "outfall_monitor") {
      if (monitors_reported.insert(st->id).second) {
        issues->push_back({"outfall-monitor-not-assimilated", st->id,
                           "samples of an outfall monitor describe the discharge of '" +
                               st->monitors + "', not the river; they are not assimilated"});
      }
      continue;
    }
    double ceiling = 1.0e4;
    if (net.standard) {
      if (const Indicator* ind = net.standard->Find(o.species);
          ind && ind->sense == "max" && !ind->limits_mg_l.empty()) {
        ceiling = 100.0 * ind->limits_mg_l.back();
      }
    }
    if (!std::isfinite(o.value_mg_l) || o.value_mg_l < 0 || o.value_mg_l > ceiling) {
      std::ostringstream msg;
      msg << o.station << " " << o.species << " = " << o.value_mg_l
          << " mg/L is outside the physical range [0, " << ceiling
          << "] (100x the Class V limit); the value is not used";
      issues->push_back({"value-out-of-range", o.where, msg.str()});
      continue;
    }
    kept.push_back(o);
  }
  if (after > 0) {
    issues->push_back({"observation-after-as-of", "",
                       std::to_string(after) + " observation(s) after the as-of time " +
                           FormatIsoTime(as_of) + " are not used"});
  }
  (void)before;  // older than the hindcast: simply outside the window, not a problem

  std::stable_sort(kept.begin(), kept.end(), [](const Observation& a, const Observation& b) {
    return std::tie(a.station, a.species, a.time_utc_s) <
           std::tie(b.station, b.species, b.time_utc_s);
  });
  // Duplicate timestamps: identical values keep one, conflicting values drop both (nothing
  // says which one is right).
  std::vector<Observation> unique;
  for (size_t i = 0; i < kept.size();) {
    size_t j = i + 1;
    while (j < kept.size() && kept[j].station == kept[i].station &&
           kept[j].species == kept[i].species && kept[j].time_utc_s == kept[i].time_utc_s) {
      ++j;
    }
    if (j - i == 1) {
      unique.push_back(kept[i]);
    } else {
      bool same = true;
      std::string lines;
      for (size_t k = i; k < j; ++k) {
        same = same && kept[k].value_mg_l == kept[i].value_mg_l;
        lines += (k > i ? ", " : "") + kept[k].where;
      }
      issues->push_back({"duplicate-timestamp", kept[i].where,
                         kept[i].station + " " + kept[i].species + " at " +
                             FormatIsoTime(kept[i].time_utc_s) + " appears " +
                             std::to_string(j - i) + " times (" + lines + ")" +
                             (same ? " with the same value; one is kept"
                                   : " with different values; none is used")});
      if (same) unique.push_back(kept[i]);
    }
    i = j;
  }

  // Gaps and stations without observations, per river station and species observed there.
  std::map<std::string, std::map<std::string, std::vector<std::int64_t>>> times;
  for (const auto& o : unique) times[o.station][o.species].push_back(o.time_utc_s);
  for (const Station& st : net.stations) {
    if (st.kind == "outfall_monitor") continue;
    auto it = times.find(st.id);
    if (it == times.end()) {
      issues->push_back({"station-without-observations", st.id,
                         "no usable observation from " + FormatIsoTime(window_start) + " to " +
                             FormatIsoTime(as_of) +
                             "; the station is forecast but its values are not assimilated"});
      continue;
    }
    const double interval = std::max(3600.0, st.sampling_interval_s);
    for (const auto& [species, t] : it->second) {
      std::vector<std::int64_t> points = {window_start};
      points.insert(points.end(), t.begin(), t.end());
      points.push_back(as_of);
      for (size_t k = 1; k < points.size(); ++k) {
        const double gap = static_cast<double>(points[k] - points[k - 1]);
        if (gap > 2.0 * interval + 1e-9) {
          const bool leading = k == 1, trailing = k + 1 == points.size();
          std::ostringstream msg;
          msg << "no value " << (leading ? "from the start of the hindcast " : "from ")
              << FormatIsoTime(points[k - 1]) << " to " << FormatIsoTime(points[k])
              << (trailing ? " (the as-of time)" : "") << ", " << gap / 3600.0
              << " h (sampled every " << interval / 3600.0 << " h)";
          issues->push_back({"observation-gap", st.id + "/" + species, msg.str()});
        }
      }
    }
  }
  return unique;
}

}  // namespace qingshui::forecast
