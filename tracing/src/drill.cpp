#include "qingshui/tracing/drill.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "qingshui/core/error.h"
#include "qingshui/hydro/rain.h"
#include "qingshui/tracing/candidates.h"

namespace qingshui::tracing {

std::vector<std::string> DrillRiverSources(const Network& net, const TracingPriors& priors,
                                           const std::string& river) {
  std::set<std::string> rivers;
  if (river == "sushui") {
    rivers = {"sushui", "yaoxian"};
  } else if (river == "fen") {
    rivers = {"fen", "kuai"};
  } else {
    rivers = {river};
  }
  std::vector<std::string> out;
  for (const auto& s : net.sources) {
    const Reach* r = net.FindReach(s.reach);
    if (!r || !rivers.count(r->river)) continue;
    if (priors.KindWeight(ToString(s.kind)) <= 0) continue;
    out.push_back(s.id);
  }
  return out;
}

bool DrillOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = "drill: " + what;
    return false;
  };
  if (num_sources < 0 || num_sources > 3) return fail("num_sources: expected 0 to 3");
  if (month < 0 || month > 12) return fail("month: expected 0 (use start) or 1 to 12");
  if (year < 1900 || year > 2200) return fail("year: expected 1900 to 2200");
  if (!(window_days > 0 && window_days <= 60)) return fail("window_days: expected (0, 60]");
  if (!(independent_ratio_share >= 0 && independent_ratio_share <= 1))
    return fail("independent_ratio_share: expected 0 to 1");
  if (!(independent_nh3n_min >= 0 && independent_nh3n_min <= independent_nh3n_max) ||
      !(independent_tp_min >= 0 && independent_tp_min <= independent_tp_max))
    return fail("independent ratio ranges: expected 0 <= min <= max");
  if (rain_days < 0 || rain_days > std::ceil(window_days))
    return fail("rain_days: expected 0 to the window's days");
  if (!(rain_mm_min > 0 && rain_mm_min <= rain_mm_max))
    return fail("rain_mm_min/max: expected 0 < min <= max");
  if (truth_refine < 1 || truth_refine > 16) return fail("truth_refine: expected 1 to 16");
  if (!(truth_time_step_s > 0 && truth_time_step_s <= 86400))
    return fail("truth_time_step_s: expected (0, 86400] s");
  if (!(storage_area_spread >= 1) || !(storage_exchange_spread >= 1))
    return fail("storage spreads: expected >= 1 (1 = no mismatch)");
  if (!(cod_min_kg > 0 && cod_min_kg <= cod_max_kg)) return fail("cod_min/max_kg: 0 < min <= max");
  if (!(duration_min_h > 0 && duration_min_h <= duration_max_h))
    return fail("duration_min/max_h: expected 0 < min <= max");
  return true;
}

namespace {

// A factor log-uniform in [1/spread, spread] from u in (0, 1).
double LogUniformFactor(double spread, double u) { return std::pow(spread, 2 * u - 1); }

int DaysInMonth(int year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return kDays[month - 1] + (month == 2 && leap ? 1 : 0);
}

}  // namespace

DrillTruth MakeDrill(const Network& net, const TracingPriors& priors, const DrillOptions& o) {
  std::string error;
  if (!o.IsValid(&error)) throw ConfigError(error);
  DrillTruth t;
  t.options = o;
  NormalGenerator rng(o.seed * 7919 + 17);
  // The calibration options draw from their own stream, so that the default drills keep
  // the numbers they always had.
  NormalGenerator rng2(o.seed * 104729 + 29);
  std::string start_text = o.start;
  {
    const double u = rng2.Uniform();
    if (o.month > 0) {
      const int day = 1 + std::min(DaysInMonth(o.year, o.month) - 1,
                                   static_cast<int>(u * DaysInMonth(o.year, o.month)));
      char b[64];
      std::snprintf(b, sizeof b, "%04d-%02d-%02dT00:00:00+08:00", o.year, o.month, day);
      start_text = b;
    }
  }
  double start;
  if (!ParseIsoTime(start_text, &start)) throw ConfigError("drill: bad start '" + start_text + "'");
  t.month = std::stoi(LocalDate(start).substr(5, 2));
  Scenario& sc = t.scenario;
  sc.start_s = start;
  sc.end_s = start + o.window_days * 86400.0;
  sc.time_step_s = o.truth_time_step_s;
  t.storage_area_factor = LogUniformFactor(o.storage_area_spread, rng2.Uniform());
  t.storage_exchange_factor = LogUniformFactor(o.storage_exchange_spread, rng2.Uniform());
  {
    const double u_first = rng2.Uniform();
    if (o.rain_days > 0) {
      // A series from the first simulated day (the window's, as no release precedes it)
      // to the window's end; 0 mm except the rain days.
      const int window = static_cast<int>(std::ceil(o.window_days - 1e-9));
      const int first =
          std::min(window - o.rain_days, static_cast<int>(u_first * (window - o.rain_days + 1)));
      hydro::RainSeries& rain = sc.rain;
      rain.file = "drill rain";
      for (const auto& c : net.catchments) rain.catchments.push_back(c.id);
      double t0;
      LocalMidnight(LocalDate(start), &t0);
      for (int d = 0; d <= window; ++d) {
        rain.dates.push_back(LocalDate(t0 + (d + 0.5) * 86400.0));
        const bool wet = d >= first && d < first + o.rain_days;
        const double mm =
            wet ? o.rain_mm_min * std::pow(o.rain_mm_max / o.rain_mm_min, rng2.Uniform()) : 0.0;
        for (size_t c = 0; c < rain.catchments.size(); ++c) rain.rain_mm.push_back(mm);
        if (wet) t.rain_dates.push_back(rain.dates.back());
      }
      std::set<std::string> spilling;
      for (const hydro::RainDay& day : hydro::RainDays(net, rain)) {
        for (const hydro::PlantStorm& p : day.plants) {
          if (p.overflow_m3s <= 0) continue;
          spilling.insert(p.id);
          const Source* plant = net.FindSource(p.id);
          if (plant && !plant->overflow_at.empty()) spilling.insert(plant->overflow_at);
        }
      }
      t.overflow_sources.assign(spilling.begin(), spilling.end());
    }
  }
  sc.velocity_factor = 1.0 + o.velocity_spread * (2 * rng.Uniform() - 1);
  sc.dispersion_factor = 1.0 + o.dispersion_spread * (2 * rng.Uniform() - 1);
  sc.sampling.interval_s = o.sampling_interval_h * 3600.0;
  sc.sampling.noise = o.noise;
  sc.sampling.seed = o.seed;
  sc.sampling.stations_keyword = "sections";
  const std::vector<std::string> pool = DrillRiverSources(net, priors, o.river);
  if (pool.size() < static_cast<size_t>(o.num_sources))
    throw ConfigError("drill: river has too few sources");
  std::vector<std::string> chosen;
  while (static_cast<int>(chosen.size()) < o.num_sources) {
    const std::string id =
        pool[std::min<size_t>(pool.size() - 1, static_cast<size_t>(rng.Uniform() * pool.size()))];
    if (std::find(chosen.begin(), chosen.end(), id) == chosen.end()) chosen.push_back(id);
  }
  for (const auto& id : chosen) {
    const Source* s = net.FindSource(id);
    ScenarioEvent e;
    e.source = id;
    e.reach = s->reach;
    e.km = s->km;
    e.start_s = start + 3600.0 * (o.release_earliest_h +
                                  (o.release_latest_h - o.release_earliest_h) * rng.Uniform());
    e.start_s = std::round(e.start_s / 60.0) * 60.0;
    e.duration_s =
        3600.0 * o.duration_min_h * std::pow(o.duration_max_h / o.duration_min_h, rng.Uniform());
    const double cod = o.cod_min_kg * std::pow(o.cod_max_kg / o.cod_min_kg, rng.Uniform());
    const std::string kind = ToString(s->kind);
    const bool independent = rng2.Uniform() < o.independent_ratio_share;
    auto kt = priors.kinds.find(kind);
    double z_max = NAN;
    for (const auto& sp : net.species) {
      if (sp.id == priors.reference_species) {
        e.mass_kg[sp.id] = cod;
        continue;
      }
      if (independent && (sp.id == "NH3N" || sp.id == "TP")) {
        const double lo = sp.id == "NH3N" ? o.independent_nh3n_min : o.independent_tp_min;
        const double hi = sp.id == "NH3N" ? o.independent_nh3n_max : o.independent_tp_max;
        e.mass_kg[sp.id] = cod * (lo + (hi - lo) * rng2.Uniform());
      } else {
        if (kt == priors.kinds.end() || !kt->second.ratios.count(sp.id)) continue;  // not released
        const SpeciesRatio r = kt->second.ratios.at(sp.id);
        e.mass_kg[sp.id] = cod * r.median * std::exp(r.log_sd * rng.Next());
      }
      if (kt != priors.kinds.end() && kt->second.ratios.count(sp.id)) {
        const SpeciesRatio r = kt->second.ratios.at(sp.id);
        if (r.median > 0 && r.log_sd > 0) {
          const double z = std::fabs(std::log(e.mass_kg[sp.id] / cod / r.median)) / r.log_sd;
          if (!(z <= z_max)) z_max = z;
        }
      }
    }
    t.cod_kg.push_back(cod);
    t.independent_ratio.push_back(independent);
    t.ratio_z.push_back(z_max);
    sc.events.push_back(e);
    // First sampled station downstream.
    double first = NAN;
    for (const auto& st : net.stations) {
      if (st.kind == "outfall_monitor") continue;
      for (const auto& cand : UpstreamCandidates(net, st.id)) {
        if (cand.source_id == id && !(cand.distance_km >= first)) first = cand.distance_km;
      }
    }
    t.first_station_km.push_back(first);
  }
  t.sources = chosen;
  return t;
}

Network DrillTruthNetwork(const Network& net, const DrillTruth& t) {
  Network truth = net;
  for (Reach& r : truth.reaches) {
    r.segment_length_m /= t.options.truth_refine;
    if (r.storage) {
      r.storage->area_ratio *= t.storage_area_factor;
      r.storage->exchange_per_s *= t.storage_exchange_factor;
    }
  }
  return truth;
}

ScenarioRun RunDrill(const Network& net, const DrillTruth& t) {
  const bool same = t.options.truth_refine == 1 && t.storage_area_factor == 1.0 &&
                    t.storage_exchange_factor == 1.0;
  return same ? RunScenario(net, t.scenario) : RunScenario(DrillTruthNetwork(net, t), t.scenario);
}

DrillStratum StratumOf(const DrillTruth& t) {
  DrillStratum s;
  s.month = t.month;
  s.rain = !t.rain_dates.empty();
  if (t.sources.empty()) return s;
  const double cod_t = t.cod_kg[0] / 1000.0;
  // Thirds of 0.2-5 t in log: 0.2·25^(1/3) = 0.585 t, 0.2·25^(2/3) = 1.71 t.
  s.mass = cod_t < 0.585 ? "0.2-0.6 t" : cod_t < 1.71 ? "0.6-1.7 t" : "1.7-5 t";
  s.ratio = t.independent_ratio[0] ? "atypical" : "typical";
  const double km = t.first_station_km[0];
  s.distance = !(km >= 0) ? "none" : km < 10 ? "< 10 km" : km < 30 ? "10-30 km" : ">= 30 km";
  return s;
}

DrillScore ScoreDrill(const DrillTruth& truth, const TraceResult& r) {
  DrillScore s;
  s.elapsed_s = r.elapsed_s;
  s.set_size = static_cast<int>(r.credible_set_90.size());
  if (!r.hypotheses.empty()) {
    s.top_label = r.hypotheses[0].label;
    s.top_probability = r.hypotheses[0].probability;
    s.no_release_first = r.hypotheses[0].sources.empty();
  }
  auto it0 = r.source_probability.find("no release");
  s.no_release_probability = it0 == r.source_probability.end() ? 0.0 : it0->second;
  // Ranking of labels by marginal probability.
  std::vector<std::pair<double, std::string>> ranked;
  for (const auto& [l, p] : r.source_probability) ranked.push_back({-p, l});
  std::sort(ranked.begin(), ranked.end());
  const int n_true = static_cast<int>(truth.sources.size());
  for (int j = 0; j < n_true; ++j) {
    const std::string& id = truth.sources[j];
    const ScenarioEvent& ev = truth.scenario.events[j];
    s.sources.push_back(id);
    s.first_station_km.push_back(truth.first_station_km[j]);
    s.in_set.push_back(std::find(r.credible_set_90.begin(), r.credible_set_90.end(), id) !=
                       r.credible_set_90.end());
    int rank = 0;
    for (size_t i = 0; i < ranked.size(); ++i) {
      if (ranked[i].second == id) rank = static_cast<int>(i) + 1;
    }
    s.rank.push_back(rank);
    const SourceEstimate* est = nullptr;
    for (const auto& h : r.hypotheses) {
      if (static_cast<int>(h.sources.size()) != n_true) continue;
      for (const auto& e : h.sources) {
        if (e.id == id) est = &e;
      }
      if (est) break;
    }
    if (!est) {
      s.start_error_h.push_back(NAN);
      s.start_covered.push_back(false);
      s.mass_relative_error.push_back({});
      s.mass_covered.push_back({});
      continue;
    }
    s.start_error_h.push_back(std::fabs(est->release_start_s - ev.start_s) / 3600.0);
    s.start_covered.push_back(est->start_ci90[0] <= ev.start_s && ev.start_s <= est->start_ci90[1]);
    std::map<std::string, double> err;
    std::map<std::string, bool> cov;
    for (const auto& [sp, kg] : est->mass_kg) {
      auto t = ev.mass_kg.find(sp);
      const double m = t == ev.mass_kg.end() ? 0.0 : t->second;
      if (m <= 0) continue;
      err[sp] = std::fabs(kg - m) / m;
      const auto ci = est->mass_kg_ci90.at(sp);
      cov[sp] = ci[0] <= m && m <= ci[1];
    }
    s.mass_relative_error.push_back(err);
    s.mass_covered.push_back(cov);
  }
  return s;
}

}  // namespace qingshui::tracing
