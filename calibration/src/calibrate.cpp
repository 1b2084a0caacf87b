#include "qingshui/calibration/calibrate.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "qingshui/core/error.h"
#include "yaml_util.h"

namespace qingshui::calibration {

namespace {

constexpr double kDay = 86400.0;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool Digits(const std::string& s, size_t from, size_t n) {
  if (from + n > s.size()) return false;
  for (size_t i = from; i < from + n; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

// UTC seconds of a civil date-time (proleptic Gregorian).
double Utc(int y, int mo, int d, int h, int mi, double s) {
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  return static_cast<double>(timegm(&tm)) + s;
}

std::vector<std::string> SplitCsv(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : line) {
    if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  out.push_back(cur);
  for (auto& s : out) {
    const size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
  }
  return out;
}

// Segments a parameter acts on: those of its reach (or lake), or all.
bool Selects(const hydro::Simulation& sim, const CalibrationParameter& p, int i) {
  return p.reach.empty() || sim.grid.segments[i].reach == p.reach;
}

int SpeciesIndex(const hydro::Simulation& sim, const std::string& id) {
  for (size_t k = 0; k < sim.species.size(); ++k) {
    if (sim.species[k] == id) return static_cast<int>(k);
  }
  return -1;
}

// The network's value of a parameter: mean over the wet segments it acts on.
double NetworkValue(const hydro::Simulation& sim, const CalibrationParameter& p) {
  const auto& seg = sim.problem.segments;
  const auto& area = sim.problem.flow.states.front().area_m2;
  double sum = 0;
  int n = 0;
  for (int i = 0; i < sim.num_segments(); ++i) {
    if (!Selects(sim, p, i)) continue;
    switch (p.kind) {
      case ParameterKind::kDispersion:
        if (seg[i].dispersion_m2s > 0) sum += seg[i].dispersion_m2s, ++n;
        break;
      case ParameterKind::kStorageAreaRatio:
        if (area[i] > 0 && !seg[i].well_mixed) sum += seg[i].storage_area_m2 / area[i], ++n;
        break;
      case ParameterKind::kExchange:
        if (seg[i].storage_area_m2 > 0) sum += seg[i].exchange_per_s, ++n;
        break;
      case ParameterKind::kDecay: {
        const int k = SpeciesIndex(sim, p.species);
        if (k >= 0 && !seg[i].decay_per_s.empty()) sum += seg[i].decay_per_s[k] * kDay, ++n;
        break;
      }
      case ParameterKind::kVelocityFactor:
        return 1.0;
    }
  }
  return n ? sum / n : 0.0;
}

void Apply(const hydro::Simulation& base, const std::vector<CalibrationParameter>& params,
           const std::vector<double>& x, hydro::Simulation* sim) {
  auto& seg = sim->problem.segments;
  const auto& base_area = base.problem.flow.states.front().area_m2;
  for (size_t j = 0; j < params.size(); ++j) {
    const CalibrationParameter& p = params[j];
    const double v = x[j];
    const int k = p.kind == ParameterKind::kDecay ? SpeciesIndex(*sim, p.species) : -1;
    for (int i = 0; i < sim->num_segments(); ++i) {
      if (!Selects(*sim, p, i)) continue;
      transport::Segment& s = seg[i];
      switch (p.kind) {
        case ParameterKind::kDispersion:
          if (base.problem.segments[i].dispersion_m2s > 0) s.dispersion_m2s = v;
          break;
        case ParameterKind::kStorageAreaRatio:
          if (!s.well_mixed && base_area[i] > 0) s.storage_area_m2 = v * base_area[i];
          if (s.exchange_per_s == 0 && v > 0 && !s.well_mixed && base_area[i] > 0) {
            s.exchange_per_s = 1e-5;  // a storage zone needs some exchange to matter
          }
          break;
        case ParameterKind::kExchange:
          if (s.storage_area_m2 > 0) s.exchange_per_s = v;
          break;
        case ParameterKind::kDecay:
          if (s.decay_per_s.empty()) s.decay_per_s.assign(sim->species.size(), 0.0);
          if (s.storage_decay_per_s.empty()) s.storage_decay_per_s.assign(sim->species.size(), 0.0);
          s.decay_per_s[k] = v / kDay;
          s.storage_decay_per_s[k] = v / kDay;  // network convention: LAMBDA2 = LAMBDA
          break;
        case ParameterKind::kVelocityFactor:
          if (!s.well_mixed) {
            for (auto& st : sim->problem.flow.states) {
              if (st.area_m2[i] > 0) st.area_m2[i] /= v;
            }
          }
          break;
      }
    }
  }
}

void Validate(const hydro::Simulation& sim, const CalibrationProblem& pb) {
  for (const auto& p : pb.parameters) {
    if (!p.reach.empty() && !sim.grid.reach_segments.count(p.reach) &&
        !sim.grid.lake_segment.count(p.reach)) {
      throw ConfigError("calibration: parameter " + p.Name() + ": unknown reach or lake '" +
                        p.reach + "'");
    }
    if (p.kind == ParameterKind::kDecay && SpeciesIndex(sim, p.species) < 0) {
      throw ConfigError("calibration: parameter " + p.Name() + ": unknown species '" + p.species +
                        "'");
    }
    if (p.kind != ParameterKind::kDecay && !p.species.empty()) {
      throw ConfigError("calibration: parameter " + p.Name() +
                        ": only decay_per_day takes a species");
    }
    if (p.kind == ParameterKind::kVelocityFactor && !(p.lower > 0)) {
      throw ConfigError("calibration: parameter " + p.Name() + ": lower bound must be > 0");
    }
  }
  const double end = sim.problem.end_time_s;
  for (const auto& o : pb.observations) {
    auto where = [&](const std::string& what) {
      return "observations line " + std::to_string(o.line) + ": " + what;
    };
    if (std::find(sim.station_ids.begin(), sim.station_ids.end(), o.station) ==
        sim.station_ids.end()) {
      throw ConfigError(where("unknown station '" + o.station + "'"));
    }
    if (SpeciesIndex(sim, o.species) < 0)
      throw ConfigError(where("unknown species '" + o.species + "'"));
    if (o.time_s < 0 || o.time_s > end) {
      throw DataError(where("time outside the simulated period (0 to " + std::to_string(end) +
                            " s after 00:00 UTC+8 of " + sim.options.start_date + ")"));
    }
  }
  for (const auto& [id, w] : pb.station_weights) {
    if (!(w >= 0)) throw ConfigError("calibration: weight of station '" + id + "' must be >= 0");
  }
  for (const auto& [id, w] : pb.species_weights) {
    if (!(w >= 0)) throw ConfigError("calibration: weight of species '" + id + "' must be >= 0");
  }
}

// Station values at the observations, linear in time between stored outputs.
std::vector<double> AtObservations(const hydro::Simulation& sim,
                                   const transport::TransportResult& r,
                                   const std::vector<Observation>& obs) {
  std::vector<double> out;
  out.reserve(obs.size());
  for (const auto& o : obs) {
    const int q =
        static_cast<int>(std::find(sim.station_ids.begin(), sim.station_ids.end(), o.station) -
                         sim.station_ids.begin());
    const int k = SpeciesIndex(sim, o.species);
    const auto& t = r.times_s;
    int i = static_cast<int>(std::upper_bound(t.begin(), t.end(), o.time_s) - t.begin()) - 1;
    i = std::clamp(i, 0, r.num_times - 1);
    const int i1 = std::min(i + 1, r.num_times - 1);
    const double c0 = r.StationConcentration(0, i, q, k), c1 = r.StationConcentration(0, i1, q, k);
    const double w = i1 > i ? (o.time_s - t[i]) / (t[i1] - t[i]) : 0.0;
    out.push_back(c0 + w * (c1 - c0));
  }
  return out;
}

double Weight(const CalibrationProblem& pb, const Observation& o) {
  double w = 1.0;
  if (auto it = pb.station_weights.find(o.station); it != pb.station_weights.end()) w *= it->second;
  if (auto it = pb.species_weights.find(o.species); it != pb.species_weights.end()) w *= it->second;
  return w;
}

}  // namespace

const char* ToString(ParameterKind k) {
  switch (k) {
    case ParameterKind::kDispersion:
      return "dispersion_m2s";
    case ParameterKind::kStorageAreaRatio:
      return "storage_area_ratio";
    case ParameterKind::kExchange:
      return "exchange_per_s";
    case ParameterKind::kDecay:
      return "decay_per_day";
    case ParameterKind::kVelocityFactor:
      return "velocity_factor";
  }
  return "?";
}

bool ParseParameterKind(const std::string& name, ParameterKind* kind) {
  for (ParameterKind k :
       {ParameterKind::kDispersion, ParameterKind::kStorageAreaRatio, ParameterKind::kExchange,
        ParameterKind::kDecay, ParameterKind::kVelocityFactor}) {
    if (name == ToString(k)) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::string CalibrationParameter::Name() const {
  std::string n = ToString(kind);
  std::string where = species;
  if (!reach.empty()) where += (where.empty() ? "" : "@") + reach;
  return where.empty() ? n : n + "[" + where + "]";
}

double SecondsSinceStart(const std::string& t, const std::string& start_date) {
  auto bad = [&](const std::string& why) -> DataError {
    return DataError("time '" + t + "': " + why +
                     " (expected ISO 8601 with an offset, e.g. 2024-04-01T08:00:00+08:00 or ...Z)");
  };
  if (!(Digits(t, 0, 4) && t.size() > 16 && t[4] == '-' && Digits(t, 5, 2) && t[7] == '-' &&
        Digits(t, 8, 2) && (t[10] == 'T' || t[10] == ' ') && Digits(t, 11, 2) && t[13] == ':' &&
        Digits(t, 14, 2))) {
    throw bad("not a date-time");
  }
  const int y = std::stoi(t.substr(0, 4)), mo = std::stoi(t.substr(5, 2)),
            d = std::stoi(t.substr(8, 2));
  const int h = std::stoi(t.substr(11, 2)), mi = std::stoi(t.substr(14, 2));
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59) throw bad("field out of range");
  size_t pos = 16;
  double sec = 0.0;
  if (pos < t.size() && t[pos] == ':') {
    if (!Digits(t, pos + 1, 2)) throw bad("seconds expected after ':'");
    size_t end = pos + 3;
    while (end < t.size() && (std::isdigit(static_cast<unsigned char>(t[end])) || t[end] == '.'))
      ++end;
    sec = std::stod(t.substr(pos + 1, end - pos - 1));
    if (sec >= 61) throw bad("seconds out of range");
    pos = end;
  }
  double offset_s = 0.0;
  if (pos >= t.size()) throw bad("no UTC offset");
  if (t[pos] == 'Z' && pos + 1 == t.size()) {
    offset_s = 0.0;
  } else if (t[pos] == '+' || t[pos] == '-') {
    const std::string o = t.substr(pos + 1);
    int oh = 0, om = 0;
    if (o.size() == 5 && Digits(o, 0, 2) && o[2] == ':' && Digits(o, 3, 2)) {
      oh = std::stoi(o.substr(0, 2)), om = std::stoi(o.substr(3, 2));
    } else if (o.size() == 4 && Digits(o, 0, 4)) {
      oh = std::stoi(o.substr(0, 2)), om = std::stoi(o.substr(2, 2));
    } else if (o.size() == 2 && Digits(o, 0, 2)) {
      oh = std::stoi(o);
    } else {
      throw bad("malformed UTC offset");
    }
    offset_s = (t[pos] == '-' ? -1 : 1) * (oh * 3600.0 + om * 60.0);
  } else {
    throw bad("unexpected '" + t.substr(pos) + "'");
  }
  const double utc = Utc(y, mo, d, h, mi, sec) - offset_s;
  if (!(start_date.size() == 10 && Digits(start_date, 0, 4) && Digits(start_date, 5, 2) &&
        Digits(start_date, 8, 2))) {
    throw ConfigError("start_date '" + start_date + "': expected YYYY-MM-DD");
  }
  const double start = Utc(std::stoi(start_date.substr(0, 4)), std::stoi(start_date.substr(5, 2)),
                           std::stoi(start_date.substr(8, 2)), 0, 0, 0.0) -
                       8 * 3600.0;
  return utc - start;
}

std::vector<Observation> ReadObservations(const std::string& path, const std::string& start_date) {
  std::ifstream in(path);
  if (!in) throw DataError(path + ": cannot open");
  std::string line;
  int n = 0;
  int ct = -1, cs = -1, csp = -1, cv = -1;
  size_t ncol = 0;
  std::vector<Observation> out;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#' || line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    const auto f = SplitCsv(line);
    if (ct < 0) {
      for (size_t c = 0; c < f.size(); ++c) {
        if (f[c] == "time") ct = static_cast<int>(c);
        if (f[c] == "station") cs = static_cast<int>(c);
        if (f[c] == "species") csp = static_cast<int>(c);
        if (f[c] == "value") cv = static_cast<int>(c);
      }
      if (ct < 0 || cs < 0 || csp < 0 || cv < 0) {
        throw DataError(
            Located(path, n, "header", "expected the columns time,station,species,value"));
      }
      ncol = f.size();
      continue;
    }
    if (f.size() != ncol) {
      throw DataError(Located(
          path, n, "",
          "expected " + std::to_string(ncol) + " columns, found " + std::to_string(f.size())));
    }
    Observation o;
    o.line = n;
    try {
      o.time_s = SecondsSinceStart(f[ct], start_date);
    } catch (const DataError& e) {
      throw DataError(Located(path, n, "time", e.what()));
    }
    o.station = f[cs];
    o.species = f[csp];
    char* end = nullptr;
    o.value_mg_l = std::strtod(f[cv].c_str(), &end);
    if (f[cv].empty() || *end != '\0' || !std::isfinite(o.value_mg_l)) {
      throw DataError(Located(path, n, "value", "expected a number, found '" + f[cv] + "'"));
    }
    if (o.value_mg_l < 0)
      throw DataError(Located(path, n, "value", "a concentration must be >= 0"));
    out.push_back(o);
  }
  if (ct < 0) throw DataError(Located(path, 0, "header", "empty file"));
  return out;
}

namespace {

hydro::Simulation BuildBase(const Network& net, const CalibrationProblem& pb) {
  hydro::Simulation sim = hydro::BuildSimulation(net, pb.simulation);
  // One thread per run: the runs are small and many; threads would only contend.
  sim.transport_options.num_threads = 1;
  for (const auto& r : pb.releases) {
    const int k = SpeciesIndex(sim, r.species);
    if (k < 0) throw ConfigError("calibration: release of unknown species '" + r.species + "'");
    sim.problem.members[0].loads.push_back(
        hydro::ReleaseLoad(sim, r.reach, r.km, k, r.start_s, r.duration_s, r.mass_kg * 1000.0));
  }
  return sim;
}

}  // namespace

hydro::Simulation CalibratedSimulation(const Network& net, const CalibrationProblem& pb,
                                       const std::vector<double>& x) {
  const hydro::Simulation base = BuildBase(net, pb);
  hydro::Simulation sim = base;
  Apply(base, pb.parameters, x, &sim);
  return sim;
}

CalibrationResult Calibrate(const Network& net, const CalibrationProblem& pb) {
  const hydro::Simulation base = BuildBase(net, pb);
  Validate(base, pb);
  CalibrationResult out;
  out.parameters = pb.parameters;
  std::vector<Observation> obs;
  for (const auto& o : pb.observations) {
    const double w = Weight(pb, o);
    if (w > 0) {
      obs.push_back(o);
      out.weights.push_back(w);
    }
  }
  if (obs.empty()) throw ConfigError("calibration: no observation with a weight > 0");
  out.observations = obs;
  std::vector<FitParameter> fp;
  for (auto& p : out.parameters) {
    if (std::isnan(p.initial)) p.initial = NetworkValue(base, p);
    FitParameter q;
    q.name = p.Name();
    q.initial = std::clamp(p.initial, p.lower, p.upper);
    q.lower = p.lower;
    q.upper = p.upper;
    q.prior_mean = p.prior_mean;
    q.prior_sd = p.prior_sd;
    q.scale = std::abs(q.initial) > 0 ? std::abs(q.initial)
                                      : (std::isfinite(p.upper) && p.upper > 0 ? p.upper : 1.0);
    fp.push_back(q);
  }
  std::vector<double> sw(out.weights.size());
  for (size_t i = 0; i < sw.size(); ++i) sw[i] = std::sqrt(out.weights[i]);
  ResidualModel model = [&](const std::vector<double>& x, std::vector<double>* r) {
    hydro::Simulation sim = base;
    Apply(base, out.parameters, x, &sim);
    const auto c = AtObservations(sim, hydro::RunSimulation(sim), obs);
    for (size_t i = 0; i < obs.size(); ++i) (*r)[i] = sw[i] * (c[i] - obs[i].value_mg_l);
  };
  out.fit = FitLeastSquares(fp, static_cast<int>(obs.size()), model, pb.fit);
  hydro::Simulation sim = base;
  Apply(base, out.parameters, out.fit.estimate, &sim);
  out.simulated_mg_l = AtObservations(sim, hydro::RunSimulation(sim), obs);
  return out;
}

std::string CalibrationResult::BriefReport() const {
  std::ostringstream o;
  o << observations.size() << " observations, " << parameters.size() << " parameters; "
    << fit.BriefReport() << "\n";
  for (size_t j = 0; j < parameters.size(); ++j) {
    o << "  " << std::left << std::setw(40) << parameters[j].Name() << std::right << std::setw(13)
      << std::setprecision(6) << fit.estimate[j] << " +- " << std::setprecision(3)
      << fit.std_error[j] << (fit.at_bound[j] ? "  (at bound)" : "") << "\n";
  }
  return o.str();
}

std::string FormatEstimates(const CalibrationResult& r) {
  std::ostringstream o;
  o << std::setprecision(10);
  o << "parameter,kind,reach,species,initial,estimate,std_error,lower,upper,at_bound\n";
  for (size_t j = 0; j < r.parameters.size(); ++j) {
    const auto& p = r.parameters[j];
    o << p.Name() << "," << ToString(p.kind) << "," << p.reach << "," << p.species << ","
      << r.fit.initial[j] << "," << r.fit.estimate[j] << ",";
    if (std::isfinite(r.fit.std_error[j])) o << r.fit.std_error[j];
    o << "," << p.lower << "," << p.upper << "," << (r.fit.at_bound[j] ? 1 : 0) << "\n";
  }
  return o.str();
}

std::string FormatCorrelation(const CalibrationResult& r) {
  std::ostringstream o;
  o << std::setprecision(6) << "parameter";
  const size_t n = r.parameters.size();
  for (const auto& p : r.parameters) o << "," << p.Name();
  o << "\n";
  for (size_t i = 0; i < n; ++i) {
    o << r.parameters[i].Name();
    for (size_t j = 0; j < n; ++j) {
      o << ",";
      const double c = r.fit.correlation[i * n + j];
      if (std::isfinite(c)) o << c;
    }
    o << "\n";
  }
  return o.str();
}

std::string FormatResiduals(const CalibrationResult& r) {
  std::ostringstream o;
  o << std::setprecision(10)
    << "time_s,station,species,observed,simulated,weight,weighted_residual\n";
  for (size_t i = 0; i < r.observations.size(); ++i) {
    const auto& ob = r.observations[i];
    o << ob.time_s << "," << ob.station << "," << ob.species << "," << ob.value_mg_l << ","
      << r.simulated_mg_l[i] << "," << r.weights[i] << ","
      << std::sqrt(r.weights[i]) * (r.simulated_mg_l[i] - ob.value_mg_l) << "\n";
  }
  return o.str();
}

CalibrationProblem ReadCalibrationFile(const std::string& path, std::string* network_path) {
  YamlDoc doc(path);
  const YAML::Node& root = doc.root();
  CalibrationProblem pb;
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  auto rel = [&](const std::string& p) {
    return std::filesystem::path(p).is_absolute() ? p : (dir / p).string();
  };
  if (network_path)
    *network_path = root["network"] ? rel(doc.String(root["network"], "network")) : "";
  const YAML::Node sim = doc.Required(root, "simulation", "simulation");
  pb.simulation.start_date =
      doc.String(doc.Required(sim, "start_date", "simulation.start_date"), "simulation.start_date");
  if (sim["days"])
    pb.simulation.days = static_cast<int>(doc.Number(sim["days"], "simulation.days"));
  if (sim["time_step_s"])
    pb.simulation.time_step_s = doc.Number(sim["time_step_s"], "simulation.time_step_s");
  if (sim["output_interval_s"]) {
    pb.simulation.output_interval_s =
        doc.Number(sim["output_interval_s"], "simulation.output_interval_s");
  }
  if (sim["temperature_c"])
    pb.simulation.temperature_c = doc.Number(sim["temperature_c"], "simulation.temperature_c");
  if (sim["season"]) pb.simulation.season = doc.String(sim["season"], "simulation.season");
  std::string error;
  if (!pb.simulation.IsValid(&error)) throw ConfigError(doc.Where(sim, "simulation") + error);
  const YAML::Node params = doc.Required(root, "parameters", "parameters");
  if (!params.IsSequence() || params.size() == 0) {
    throw ConfigError(doc.Where(params, "parameters") + "expected a list of parameters");
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const YAML::Node n = params[i];
    const std::string f = "parameters[" + std::to_string(i) + "]";
    CalibrationParameter p;
    const std::string kind = doc.String(doc.Required(n, "kind", f + ".kind"), f + ".kind");
    if (!ParseParameterKind(kind, &p.kind)) {
      throw ConfigError(
          doc.Where(n["kind"], f + ".kind") + "unknown kind '" + kind +
          "' (dispersion_m2s, storage_area_ratio, exchange_per_s, decay_per_day, velocity_factor)");
    }
    if (n["reach"]) p.reach = doc.String(n["reach"], f + ".reach");
    if (n["species"]) p.species = doc.String(n["species"], f + ".species");
    if (n["initial"]) p.initial = doc.Number(n["initial"], f + ".initial");
    p.lower = p.kind == ParameterKind::kVelocityFactor ? 0.1 : 0.0;
    if (n["lower"]) p.lower = doc.Number(n["lower"], f + ".lower");
    if (n["upper"]) p.upper = doc.Number(n["upper"], f + ".upper");
    if (p.kind == ParameterKind::kVelocityFactor && !n["upper"]) p.upper = 10.0;
    if (!(p.lower <= p.upper)) throw ConfigError(doc.Where(n, f) + "lower bound above upper bound");
    if (n["prior"]) {
      p.prior_mean =
          doc.Number(doc.Required(n["prior"], "mean", f + ".prior.mean"), f + ".prior.mean");
      p.prior_sd = doc.Number(doc.Required(n["prior"], "sd", f + ".prior.sd"), f + ".prior.sd");
      if (!(p.prior_sd > 0))
        throw ConfigError(doc.Where(n["prior"], f + ".prior.sd") + "must be > 0");
    }
    if (p.kind == ParameterKind::kDecay && p.species.empty()) {
      throw ConfigError(doc.Where(n, f) + "decay_per_day needs a species");
    }
    pb.parameters.push_back(p);
  }
  if (const YAML::Node rel_node = root["releases"]) {
    for (size_t i = 0; i < rel_node.size(); ++i) {
      const YAML::Node n = rel_node[i];
      const std::string f = "releases[" + std::to_string(i) + "]";
      TracerRelease r;
      r.reach = doc.String(doc.Required(n, "reach", f + ".reach"), f + ".reach");
      r.km = doc.Number(doc.Required(n, "km", f + ".km"), f + ".km");
      r.species = doc.String(doc.Required(n, "species", f + ".species"), f + ".species");
      r.start_s = doc.Number(doc.Required(n, "start_s", f + ".start_s"), f + ".start_s");
      if (n["duration_s"]) r.duration_s = doc.Number(n["duration_s"], f + ".duration_s");
      r.mass_kg = doc.Number(doc.Required(n, "mass_kg", f + ".mass_kg"), f + ".mass_kg");
      pb.releases.push_back(r);
    }
  }
  if (const YAML::Node w = root["weights"]) {
    for (const char* key : {"stations", "species"}) {
      if (!w[key]) continue;
      for (const auto& kv : w[key]) {
        const std::string id = doc.Key(kv.first, std::string("weights.") + key);
        const double v = doc.Number(kv.second, std::string("weights.") + key + "." + id);
        (std::string(key) == "stations" ? pb.station_weights : pb.species_weights)[id] = v;
      }
    }
  }
  if (const YAML::Node fit = root["fit"]) {
    if (fit["max_iterations"])
      pb.fit.max_iterations =
          static_cast<int>(doc.Number(fit["max_iterations"], "fit.max_iterations"));
    if (fit["function_tolerance"])
      pb.fit.function_tolerance = doc.Number(fit["function_tolerance"], "fit.function_tolerance");
    if (fit["parameter_tolerance"])
      pb.fit.parameter_tolerance =
          doc.Number(fit["parameter_tolerance"], "fit.parameter_tolerance");
  }
  if (root["observations"]) {
    pb.observations = ReadObservations(rel(doc.String(root["observations"], "observations")),
                                       pb.simulation.start_date);
  }
  return pb;
}

}  // namespace qingshui::calibration
