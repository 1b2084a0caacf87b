#include "qingshui/hydro/rain.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "qingshui/core/error.h"

namespace qingshui::hydro {

namespace {

constexpr double kSecondsPerDay = 86400.0;

// Days since 1970-01-01 of a valid YYYY-MM-DD (Howard Hinnant's days_from_civil).
long DaysFromCivil(const std::string& date) {
  int y = std::stoi(date.substr(0, 4));
  const int m = std::stoi(date.substr(5, 2)), d = std::stoi(date.substr(8, 2));
  y -= m <= 2;
  const long era = (y >= 0 ? y : y - 399) / 400;
  const long yoe = y - era * 400;
  const long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

bool ValidDate(const std::string& date) {
  try {
    return SeasonOfDate(date).size() > 0;
  } catch (const ConfigError&) {
    return false;
  }
}

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) {
    const size_t a = field.find_first_not_of(" \t\r");
    const size_t b = field.find_last_not_of(" \t\r");
    out.push_back(a == std::string::npos ? "" : field.substr(a, b - a + 1));
  }
  if (!line.empty() && line.back() == ',') out.push_back("");
  return out;
}

std::string Mg(const std::map<std::string, double>& m) {
  std::ostringstream out;
  for (const auto& [k, v] : m) out << (out.tellp() > 0 ? ", " : "") << k << " " << v;
  return out.str();
}

}  // namespace

int RainSeries::DayIndex(const std::string& date) const {
  auto it = std::find(dates.begin(), dates.end(), date);
  return it == dates.end() ? -1 : static_cast<int>(it - dates.begin());
}

double RainSeries::RainMm(int day, const std::string& id) const {
  auto it = std::find(catchments.begin(), catchments.end(), id);
  if (it == catchments.end()) return 0.0;
  return rain_mm[static_cast<size_t>(day) * catchments.size() + (it - catchments.begin())];
}

RainSeries ReadRainCsv(const std::string& path, const Network& net) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(Located(path, 0, "", "cannot open rain file"));
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParseRainCsv(buffer.str(), path, net);
}

RainSeries ParseRainCsv(const std::string& text, const std::string& file, const Network& net) {
  RainSeries rain;
  rain.file = file;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  bool header = false;
  long last_day = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos || line[0] == '#') continue;
    const std::vector<std::string> f = SplitCsv(line);
    if (!header) {
      if (f.empty() || f[0] != "date") {
        throw DataError(Located(file, line_no, "header",
                                "expected 'date,<catchment id>,...' as the first line"));
      }
      for (size_t c = 1; c < f.size(); ++c) {
        if (!net.FindCatchment(f[c])) {
          std::string known;
          for (const auto& k : net.catchments) known += (known.empty() ? "" : ", ") + k.id;
          throw ConfigError(
              Located(file, line_no, f[c],
                      "unknown catchment (known: " + (known.empty() ? "none" : known) + ")"));
        }
        if (std::count(f.begin() + 1, f.end(), f[c]) > 1) {
          throw DataError(Located(file, line_no, f[c], "column appears twice"));
        }
        rain.catchments.push_back(f[c]);
      }
      header = true;
      continue;
    }
    if (f.size() != rain.catchments.size() + 1) {
      throw DataError(Located(file, line_no, "",
                              "expected " + std::to_string(rain.catchments.size() + 1) +
                                  " fields, found " + std::to_string(f.size())));
    }
    if (!ValidDate(f[0])) {
      throw DataError(Located(file, line_no, "date", "expected YYYY-MM-DD, found '" + f[0] + "'"));
    }
    const long day = DaysFromCivil(f[0]);
    if (!rain.dates.empty()) {
      if (day <= last_day) {
        throw DataError(Located(
            file, line_no, "date",
            f[0] + " does not follow " + rain.dates.back() + " (dates must increase by one day)"));
      }
      if (day != last_day + 1) {
        throw DataError(Located(file, line_no, "date",
                                "gap: " + f[0] + " follows " + rain.dates.back() + " (" +
                                    std::to_string(day - last_day - 1) + " missing day(s))"));
      }
    }
    last_day = day;
    rain.dates.push_back(f[0]);
    for (size_t c = 1; c < f.size(); ++c) {
      const std::string& v = f[c];
      char* end = nullptr;
      errno = 0;
      const double mm = v.empty() ? std::nan("") : std::strtod(v.c_str(), &end);
      if (v.empty() || end == v.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(mm)) {
        throw DataError(Located(
            file, line_no, rain.catchments[c - 1],
            "expected rain in mm/day, found '" + v + "'" + (v.empty() ? " (missing value)" : "")));
      }
      if (mm < 0) {
        throw DataError(
            Located(file, line_no, rain.catchments[c - 1], "rain must be >= 0 mm/day, found " + v));
      }
      rain.rain_mm.push_back(mm);
    }
  }
  if (!header) throw DataError(Located(file, 0, "", "empty rain file"));
  if (rain.dates.empty()) throw DataError(Located(file, 0, "", "no days in the rain file"));
  return rain;
}

double ScsRunoffMm(double rain_mm, double curve_number, double ratio) {
  if (!(curve_number > 0 && curve_number <= 100) || !(ratio >= 0 && ratio <= 1) ||
      !(rain_mm >= 0) || !std::isfinite(rain_mm)) {
    throw ConfigError("SCS runoff: expected rain >= 0, 0 < CN <= 100, 0 <= lambda <= 1");
  }
  const double s = 25400.0 / curve_number - 254.0;  // potential retention, mm
  const double ia = ratio * s;
  if (rain_mm <= ia) return 0.0;
  return (rain_mm - ia) * (rain_mm - ia) / (rain_mm - ia + s);
}

std::vector<RainDay> RainDays(const Network& net, const RainSeries& rain) {
  std::map<std::string, double> tank;  // m³ at the start of the day; empty at the start
  std::vector<RainDay> days;
  for (int d = 0; d < rain.num_days(); ++d) {
    RainDay day;
    day.date = rain.dates[d];
    // Runoff of every catchment; storm water collected by each plant's sewers.
    std::map<std::string, double> storm;                              // plant → m³/s
    std::map<std::string, std::map<std::string, double>> storm_load;  // plant → g/s
    for (const auto& c : net.catchments) {
      CatchmentRunoff cr;
      cr.id = c.id;
      cr.rain_mm = rain.RainMm(d, c.id);
      cr.runoff_mm = ScsRunoffMm(cr.rain_mm, c.curve_number, c.initial_abstraction_ratio);
      cr.runoff_m3s = cr.runoff_mm / 1000.0 * c.area_m2 / kSecondsPerDay;
      cr.to_sewer_m3s = c.sewer_plant.empty() ? 0.0 : c.sewered_fraction * cr.runoff_m3s;
      cr.to_river_m3s = cr.runoff_m3s - cr.to_sewer_m3s;
      if (cr.to_sewer_m3s > 0) {
        storm[c.sewer_plant] += cr.to_sewer_m3s;
        for (const auto& [sp, v] : c.runoff_mg_l)
          storm_load[c.sewer_plant][sp] += cr.to_sewer_m3s * v;
      }
      if (cr.to_river_m3s > 0) {
        day.distributed_inflows.push_back(
            {"runoff:" + c.id, c.reach, c.km_from, c.km_to, cr.to_river_m3s, c.runoff_mg_l});
      }
      day.catchments.push_back(cr);
    }
    // Plants with combined sewers or a buffer tank.
    for (const auto& s : net.sources) {
      if (s.kind != SourceKind::kTreatmentPlant) continue;
      const bool sewered = storm.count(s.id) > 0 ||
                           std::any_of(net.catchments.begin(), net.catchments.end(),
                                       [&](const Catchment& c) { return c.sewer_plant == s.id; });
      if (!sewered && !s.buffer_tank_m3) continue;
      PlantStorm p;
      p.id = s.id;
      const bool active = SourceActivityOn(net, s, day.date).active;
      double capacity = s.capacity_m3s ? *s.capacity_m3s : s.design_flow_m3s;
      for (const auto& op : s.operations) {
        if (day.date >= op.from && day.date <= op.to) capacity *= op.capacity_factor;
      }
      p.sewage_m3s =
          active ? (s.sewage_inflow_m3s ? *s.sewage_inflow_m3s
                                        : (s.design_flow_m3s > 0 ? s.design_flow_m3s : capacity))
                 : 0.0;
      p.capacity_m3s = active ? capacity : 0.0;
      p.storm_m3s = storm[s.id];
      const double inflow = p.sewage_m3s + p.storm_m3s;
      const double room = s.buffer_tank_m3 ? *s.buffer_tank_m3 : 0.0;
      p.tank_start_m3 = tank[s.id];
      if (inflow > p.capacity_m3s) {
        const double excess = (inflow - p.capacity_m3s) * kSecondsPerDay;
        const double fill = std::min(excess, room - p.tank_start_m3);
        p.tank_end_m3 = p.tank_start_m3 + fill;
        p.overflow_m3s = (excess - fill) / kSecondsPerDay;
        p.treated_m3s = p.capacity_m3s;
      } else {
        const double drain = std::min(p.tank_start_m3, (p.capacity_m3s - inflow) * kSecondsPerDay);
        p.tank_end_m3 = p.tank_start_m3 - drain;
        p.treated_m3s = inflow + drain / kSecondsPerDay;
      }
      tank[s.id] = p.tank_end_m3;
      // A plant that discharges to the river sends the treated storm water with its
      // effluent; one whose effluent is reused (design flow 0) does not.
      if (s.design_flow_m3s > 0 && p.treated_m3s > p.sewage_m3s) {
        p.extra_effluent_m3s = p.treated_m3s - p.sewage_m3s;
        day.point_inflows.push_back({"treated storm water:" + s.id, s.reach, s.km,
                                     p.extra_effluent_m3s, s.effluent_mg_l, true});
      }
      if (p.overflow_m3s > 0) {
        // The overflow is the sewer's mix: raw sewage and the storm water it collected.
        std::map<std::string, double> c;
        for (const auto& [sp, v] : s.raw_sewage_mg_l) c[sp] += p.sewage_m3s * v / inflow;
        for (const auto& [sp, load] : storm_load[s.id]) c[sp] += load / inflow;
        const Source* at = s.overflow_at.empty() ? &s : net.FindSource(s.overflow_at);
        day.point_inflows.push_back(
            {"overflow:" + s.id, at->reach, at->km, p.overflow_m3s, c, true});
      }
      day.plants.push_back(p);
    }
    days.push_back(day);
  }
  return days;
}

RainDay RainOnDay(const Network& net, const RainSeries& rain, const std::string& date) {
  const int d = rain.DayIndex(date);
  if (d < 0) {
    throw DataError(Located(rain.file, 0, "date",
                            date + " is not in the rain file (" + rain.dates.front() + " to " +
                                rain.dates.back() + ")"));
  }
  return RainDays(net, rain)[d];
}

void AddRain(const RainDay& day, DayOptions* options) {
  options->point_inflows.insert(options->point_inflows.end(), day.point_inflows.begin(),
                                day.point_inflows.end());
  options->distributed_inflows.insert(options->distributed_inflows.end(),
                                      day.distributed_inflows.begin(),
                                      day.distributed_inflows.end());
}

std::string RainDay::BriefReport() const {
  std::ostringstream out;
  out << std::setprecision(4);
  out << "rain " << date << ":\n";
  for (const auto& c : catchments) {
    out << "  catchment " << c.id << ": rain " << c.rain_mm << " mm, runoff " << c.runoff_mm
        << " mm = " << c.runoff_m3s << " m3/s (" << c.to_sewer_m3s << " to sewers)\n";
  }
  for (const auto& p : plants) {
    out << "  plant " << p.id << ": sewage " << p.sewage_m3s << " + storm " << p.storm_m3s
        << " m3/s, capacity " << p.capacity_m3s << ", tank " << p.tank_start_m3 << " -> "
        << p.tank_end_m3 << " m3, overflow " << p.overflow_m3s << " m3/s\n";
  }
  for (const auto& q : point_inflows) {
    if (q.label.rfind("overflow:", 0) == 0) {
      out << "  " << q.label << " at " << q.reach << " km " << q.km << ": " << q.flow_m3s
          << " m3/s (" << Mg(q.concentration_mg_l) << " mg/L)\n";
    }
  }
  return out.str();
}

}  // namespace qingshui::hydro
