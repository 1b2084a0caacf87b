#include "qingshui/tracing/observations.h"
#include "qingshui/core/text.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

#include "qingshui/core/error.h"
#include "reach_km.h"

namespace qingshui::tracing {

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-compatible
// low-level date algorithms", days_from_civil).
long long DaysFromCivil(long long y, unsigned m, unsigned d) {
  y -= m <= 2;
  const long long era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<long long>(doe) - 719468;
}

void CivilFromDays(long long z, int* year, int* month, int* day) {
  z += 719468;
  const long long era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const long long y = static_cast<long long>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<int>(y + (m <= 2));
  *month = static_cast<int>(m);
  *day = static_cast<int>(d);
}

int DaysInMonth(int y, int m) {
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return days[m - 1];
}

bool Digits(const std::string& s, size_t pos, size_t n, int* value) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *value = v;
  return true;
}

std::string Trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// One CSV record (RFC 4180 quoting within a line); ok = false for an open quote.
std::vector<std::string> SplitCsv(const std::string& line, bool* ok) {
  bool open_quote = false;
  std::vector<std::string> out = SplitCsvLine(line, &open_quote);
  *ok = !open_quote;
  return out;
}

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

bool ParseIsoTime(const std::string& raw, double* epoch_s) {
  const std::string s = Trim(raw);
  int y, mo, d, h = 0, mi = 0;
  double sec = 0.0;
  if (s.size() < 10 || s[4] != '-' || s[7] != '-') return false;
  if (!Digits(s, 0, 4, &y) || !Digits(s, 5, 2, &mo) || !Digits(s, 8, 2, &d)) return false;
  if (mo < 1 || mo > 12 || d < 1 || d > DaysInMonth(y, mo)) return false;
  size_t pos = 10;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ')) {
    ++pos;
    if (!Digits(s, pos, 2, &h) || pos + 2 >= s.size() || s[pos + 2] != ':' ||
        !Digits(s, pos + 3, 2, &mi)) {
      return false;
    }
    pos += 5;
    if (pos < s.size() && s[pos] == ':') {
      int whole;
      if (!Digits(s, pos + 1, 2, &whole)) return false;
      sec = whole;
      pos += 3;
      if (pos < s.size() && s[pos] == '.') {
        size_t end = pos + 1;
        while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
        if (end == pos + 1) return false;
        sec += std::stod("0" + s.substr(pos, end - pos));
        pos = end;
      }
    }
    if (h > 24 || mi > 59 || sec >= 61.0 || (h == 24 && (mi != 0 || sec != 0))) return false;
  }
  double offset = kLocalOffsetS;
  if (pos < s.size()) {
    if (s[pos] == 'Z' || s[pos] == 'z') {
      offset = 0.0;
      ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
      const int sign = s[pos] == '+' ? 1 : -1;
      int oh, om = 0;
      if (!Digits(s, pos + 1, 2, &oh)) return false;
      pos += 3;
      if (pos < s.size()) {
        if (s[pos] == ':') ++pos;
        if (!Digits(s, pos, 2, &om)) return false;
        pos += 2;
      }
      if (oh > 14 || om > 59) return false;
      offset = sign * (oh * 3600.0 + om * 60.0);
    } else {
      return false;
    }
  }
  if (pos != s.size()) return false;
  *epoch_s = DaysFromCivil(y, mo, d) * 86400.0 + h * 3600.0 + mi * 60.0 + sec - offset;
  return true;
}

std::string FormatIsoTime(double epoch_s) {
  const long long local = static_cast<long long>(std::llround(epoch_s + kLocalOffsetS));
  long long days = local / 86400;
  long long rem = local % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d+08:00", y, m, d,
                static_cast<int>(rem / 3600), static_cast<int>(rem / 60 % 60),
                static_cast<int>(rem % 60));
  return buffer;
}

std::string LocalDate(double epoch_s) { return FormatIsoTime(epoch_s).substr(0, 10); }

bool LocalMidnight(const std::string& date, double* epoch_s) {
  if (date.size() != 10) return false;
  return ParseIsoTime(date, epoch_s);
}

ObservationSet ParseObservationsCsv(const std::string& text, const std::string& file) {
  ObservationSet set;
  set.file = file;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  std::map<std::string, int> column;
  bool have_header = false;
  bool has_station = false, has_point = false;  // columns station / reach and km
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line_no == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) {
      line = line.substr(3);  // UTF-8 byte-order mark
    }
    const std::string trimmed = Trim(line);
    if (trimmed.empty() || trimmed[0] == '#') continue;
    bool ok;
    std::vector<std::string> fields = SplitCsv(line, &ok);
    if (!ok) throw DataError(Located(file, line_no, "", "unterminated quoted field"));
    if (!have_header) {
      for (size_t i = 0; i < fields.size(); ++i) column[fields[i]] = static_cast<int>(i);
      if (!column.count("value") && column.count("value_mg_l"))
        column["value"] = column["value_mg_l"];
      // Point samples when both reach and km are columns; with a station column too, each
      // row is one or the other. A lone reach or km beside station is an extra column, as
      // before point samples existed.
      has_station = column.count("station") > 0;
      has_point = column.count("reach") > 0 && column.count("km") > 0;
      const bool half_point = !has_station && (column.count("reach") || column.count("km"));
      for (const char* need : {"time", "station", "reach", "km", "species", "value"}) {
        const std::string name = need;
        if (column.count(name)) continue;
        if (name == "station" && (has_point || half_point)) continue;
        if ((name == "reach" || name == "km") && !has_point && !half_point) continue;
        const std::string what =
            half_point ? "missing column; point samples need both reach and km (header "
                         "time,reach,km,species,value, or time,station,reach,km,species,value "
                         "with station samples too)"
                       : "missing column; expected a header time,station,species,value (or "
                         "time,reach,km,species,value for point samples)";
        throw DataError(Located(file, line_no, name, what));
      }
      have_header = true;
      continue;
    }
    auto get = [&](const char* name) -> std::string {
      const int c = column[name];
      if (c >= static_cast<int>(fields.size())) {
        throw DataError(Located(file, line_no, name,
                                "missing field (line has " + std::to_string(fields.size()) + ")"));
      }
      return fields[c];
    };
    Observation o;
    o.line = line_no;
    const std::string time = get("time");
    if (!ParseIsoTime(time, &o.time_s)) {
      throw DataError(Located(
          file, line_no, "time",
          "expected an ISO-8601 time such as 2024-04-15T08:00:00+08:00, got '" + time + "'"));
    }
    if (has_station) o.station = get("station");
    if (!has_point) {
      if (o.station.empty()) throw DataError(Located(file, line_no, "station", "empty"));
    } else {
      const std::string reach = get("reach");
      const std::string km = get("km");
      if (!o.station.empty()) {
        if (!reach.empty() || !km.empty()) {
          throw DataError(Located(
              file, line_no, reach.empty() ? "km" : "reach",
              "give either a station or reach and km, not both (station '" + o.station + "')"));
        }
      } else {
        if (reach.empty() && km.empty()) {
          throw DataError(
              Located(file, line_no, has_station ? "station" : "reach",
                      has_station ? "empty: give a station, or reach and km" : "empty"));
        }
        if (reach.empty()) {
          throw DataError(
              Located(file, line_no, "reach", "empty (a point sample needs reach and km)"));
        }
        if (km.empty()) {
          throw DataError(
              Located(file, line_no, "km", "empty (a point sample needs reach and km)"));
        }
        char* km_end = nullptr;
        o.km = std::strtod(km.c_str(), &km_end);
        if (km_end != km.c_str() + km.size() || !std::isfinite(o.km)) {
          throw DataError(
              Located(file, line_no, "km",
                      "expected a finite number (river-km along the reach), got '" + km + "'"));
        }
        o.reach = reach;
      }
    }
    o.species = get("species");
    if (o.species.empty()) throw DataError(Located(file, line_no, "species", "empty"));
    const std::string value = get("value");
    const char* begin = value.c_str();
    char* end = nullptr;
    o.value_mg_l = value.empty() ? NAN : std::strtod(begin, &end);
    if (value.empty() || end != begin + value.size() || !std::isfinite(o.value_mg_l) ||
        o.value_mg_l < 0) {
      throw DataError(Located(file, line_no, "value",
                              "expected a finite concentration >= 0 (mg/L), got '" + value + "'"));
    }
    set.rows.push_back(o);
  }
  if (!have_header)
    throw DataError(
        Located(file, 0, "", "empty file; expected a header time,station,species,value"));
  return set;
}

ObservationSet ReadObservationsCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(Located(path, 0, "", "cannot open observations file"));
  std::ostringstream text;
  text << in.rdbuf();
  return ParseObservationsCsv(text.str(), path);
}

std::string PointLabel(const std::string& reach, double km) {
  char number[64];
  const auto end = std::to_chars(number, number + sizeof number, km).ptr;
  return reach + ":" + std::string(number, end);
}

std::string SiteLabel(const Observation& o) {
  return o.IsPoint() ? PointLabel(o.reach, o.km) : o.station;
}

std::string FormatObservationsCsv(const std::vector<Observation>& rows) {
  bool any_station = false, any_point = false;
  for (const auto& o : rows) (o.IsPoint() ? any_point : any_station) = true;
  const bool station_column = any_station || !any_point;
  std::string out = station_column ? (any_point ? "time,station,reach,km,species,value\n"
                                                : "time,station,species,value\n")
                                   : "time,reach,km,species,value\n";
  char number[64];
  for (const auto& o : rows) {
    out += FormatIsoTime(o.time_s);
    out += ',';
    if (station_column) {
      out += CsvField(o.station);
      out += ',';
    }
    if (any_point) {
      if (o.IsPoint()) {
        out += CsvField(o.reach);
        out += ',';
        const auto end = std::to_chars(number, number + sizeof number, o.km).ptr;
        out.append(number, end);
      } else {
        out += ',';
      }
      out += ',';
    }
    out += CsvField(o.species);
    out += ',';
    const auto end = std::to_chars(number, number + sizeof number, o.value_mg_l).ptr;
    out.append(number, end);
    out += '\n';
  }
  return out;
}

void WriteObservationsCsv(const std::string& path, const std::vector<Observation>& rows) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  fs::path tmp = target;
  tmp += ".tmp" + std::to_string(::getpid());
  // A failed write (unwritable folder, full disk) removes its temporary: only the previous
  // file, if any, remains.
  auto fail = [&](const std::string& why) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw std::runtime_error("cannot write " + path + ": " + why +
                             " (the previous file, if any, is unchanged)");
  };
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_regular_file(target, ec)) {
    throw std::runtime_error("cannot write " + path +
                             ": it exists and is not a regular file (not replaced)");
  }
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(std::strerror(errno));
    f << FormatObservationsCsv(rows);
    f.flush();
    if (!f) fail(std::strerror(errno));
    f.close();
    if (!f) fail(std::strerror(errno));
  }
  fs::rename(tmp, target, ec);
  if (ec) fail(ec.message());
}

void CheckObservationsAgainst(const Network& net, const ObservationSet& obs) {
  for (const auto& o : obs.rows) {
    if (!net.FindSpecies(o.species)) {
      throw ConfigError(Located(obs.file, o.line, "species",
                                "unknown species '" + o.species + "' (not in the network)"));
    }
    if (o.IsPoint()) {
      const Reach* reach = net.FindReach(o.reach);
      if (!reach) {
        throw ConfigError(Located(obs.file, o.line, "reach",
                                  "unknown reach '" + o.reach + "' (not in the network)"));
      }
      const std::string outside = detail::KmOutsideReach(*reach, o.km, 1e-6);
      if (!outside.empty()) throw ConfigError(Located(obs.file, o.line, "km", outside));
    } else if (!net.FindStation(o.station)) {
      throw ConfigError(Located(obs.file, o.line, "station",
                                "unknown station '" + o.station + "' (not in the network)"));
    }
  }
}

}  // namespace qingshui::tracing
