// The summary of a forecast as the command prints it: a fixed-width table, or JSON.
#include <cmath>
#include <cstdio>
#include <sstream>

#include "qingshui/core/text.h"
#include "qingshui/forecast/forecast.h"
#include "qingshui/forecast/time.h"

namespace qingshui::forecast {

namespace {

std::string Fixed(double x, int digits) {
  if (!std::isfinite(x)) return "nan";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, x);
  return buffer;
}

// Display width of UTF-8 text: CJK characters take two columns, the rest one.
size_t Width(const std::string& s) {
  size_t w = 0;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    w += len >= 3 ? 2 : 1;
    i += len;
  }
  return w;
}

std::string Pad(const std::string& s, size_t width) {
  const size_t w = Width(s);
  return w >= width ? s + " " : s + std::string(width - w, ' ');
}

std::string JsonNumber(double x) {
  if (!std::isfinite(x)) return "null";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", x);
  return buffer;
}

}  // namespace

std::string FormatSummaryTable(const ForecastResult& r) {
  std::ostringstream out;
  const std::vector<std::pair<std::string, size_t>> columns = {
      {"station", 22},          {"day", 12},    {"class", 6},
      {"P(class)", 9},          {"P(>III)", 8}, {"main pollutant", 22},
      {"top source (share)", 0}};
  for (const auto& [name, width] : columns) out << (width ? Pad(name, width) : name);
  out << "\n";
  std::string previous;
  for (const ForecastSummaryRow& row : r.summary) {
    if (!previous.empty() && row.station != previous) out << "\n";
    previous = row.station;
    std::string main = "-";
    if (!row.main_pollutant.empty()) {
      main = row.main_pollutant + " " + Fixed(row.main_ratio, 2) + "x III";
    } else if (!row.worst_indicator.empty()) {
      main = "- (" + row.worst_indicator + " " + Fixed(row.worst_ratio, 2) + "x)";
    }
    std::string top =
        row.top_source.empty() ? "-" : row.top_source + " (" + Fixed(100 * row.top_share, 0) + "%)";
    out << Pad(row.station, 22) << Pad(row.day, 12) << Pad(row.cls.empty() ? "-" : row.cls, 6)
        << Pad(Fixed(row.class_probability, 2), 9) << Pad(Fixed(row.p_worse_than_iii, 2), 8)
        << Pad(main, 22) << top << "\n";
  }
  return out.str();
}

std::string SummaryJson(const ForecastResult& r) {
  std::ostringstream out;
  const int ns = r.num_species(), n_st = r.num_stations();
  int median = -1;
  for (size_t q = 0; q < r.quantile_levels.size(); ++q) {
    if (r.quantile_levels[q] == 0.5) median = static_cast<int>(q);
  }
  int class_iii = -1;
  for (size_t c = 0; c < r.limit_classes.size(); ++c) {
    if (r.limit_classes[c] == "III") class_iii = static_cast<int>(c);
  }
  out << "{\n  \"filetype\": \"qingshui-forecast-summary\",\n  \"version\": [1, 0],\n";
  out << "  \"as_of\": " << JsonString(FormatIsoTime(r.as_of_utc_s)) << ",\n";
  out << "  \"members\": " << r.members << ",\n  \"groups\": " << r.groups << ",\n";
  out << "  \"seed\": " << r.seed << ",\n  \"hindcast_days\": " << r.hindcast_days << ",\n";
  out << "  \"days\": [";
  for (size_t j = 0; j < r.days.size(); ++j) out << (j ? ", " : "") << JsonString(r.days[j]);
  out << "],\n  \"indicators\": [";
  for (size_t k = 0; k < r.indicators.size(); ++k)
    out << (k ? ", " : "") << JsonString(r.indicators[k]);
  out << "],\n  \"rows\": [\n";
  for (size_t i = 0; i < r.summary.size(); ++i) {
    const ForecastSummaryRow& row = r.summary[i];
    int s = 0, j = 0;
    for (int x = 0; x < n_st; ++x) {
      if (r.stations[x] == row.station) s = x;
    }
    for (int x = 0; x < r.num_days(); ++x) {
      if (r.days[x] == row.day) j = x;
    }
    const size_t ds = static_cast<size_t>(j) * n_st + s;
    out << "    {\"station\": " << JsonString(row.station) << ", \"day\": " << JsonString(row.day)
        << ", \"class\": " << JsonString(row.cls)
        << ", \"class_probability\": " << JsonNumber(row.class_probability)
        << ", \"p_worse_than_iii\": " << JsonNumber(row.p_worse_than_iii)
        << ", \"main_pollutant\": "
        << (row.main_pollutant.empty() ? "null" : JsonString(row.main_pollutant))
        << ", \"main_pollutants\": [";
    const std::string& list = r.main_pollutants[ds];
    for (size_t a = 0, n = 0; a < list.size(); ++n) {
      const size_t b = std::min(list.find(',', a), list.size());
      out << (n ? ", " : "") << JsonString(list.substr(a, b - a));
      a = b + 1;
    }
    out << "], \"worst_indicator\": " << JsonString(row.worst_indicator)
        << ", \"worst_ratio_to_iii\": " << JsonNumber(row.worst_ratio)
        << ", \"top_source\": " << (row.top_source.empty() ? "null" : JsonString(row.top_source))
        << ", \"top_share\": " << JsonNumber(row.top_share);
    if (median >= 0) {
      out << ", \"median_daily_mg_l\": {";
      for (int k = 0; k < ns; ++k) {
        const size_t at = ((static_cast<size_t>(median) * r.num_days() + j) * n_st + s) * ns + k;
        out << (k ? ", " : "") << JsonString(r.species[k]) << ": "
            << JsonNumber(r.daily_quantiles[at]);
      }
      out << "}";
    }
    if (class_iii >= 0) {
      out << ", \"p_exceed_iii\": {";
      for (int k = 0; k < ns; ++k) {
        const size_t at = ((static_cast<size_t>(class_iii) * r.num_days() + j) * n_st + s) * ns + k;
        out << (k ? ", " : "") << JsonString(r.species[k]) << ": "
            << JsonNumber(r.daily_p_exceed[at]);
      }
      out << "}";
    }
    out << "}" << (i + 1 < r.summary.size() ? "," : "") << "\n";
  }
  out << "  ],\n  \"warnings\": [";
  for (size_t i = 0; i < r.warnings.size(); ++i) {
    const Issue& w = r.warnings[i];
    out << (i ? "," : "") << "\n    {\"code\": " << JsonString(w.code)
        << ", \"where\": " << JsonString(w.where) << ", \"message\": " << JsonString(w.message)
        << "}";
  }
  out << (r.warnings.empty() ? "" : "\n  ") << "],\n  \"defaults_used\": [";
  for (size_t i = 0; i < r.defaults_used.size(); ++i) {
    out << (i ? "," : "") << "\n    " << JsonString(r.defaults_used[i]);
  }
  out << (r.defaults_used.empty() ? "" : "\n  ") << "]\n}\n";
  return out.str();
}

}  // namespace qingshui::forecast
