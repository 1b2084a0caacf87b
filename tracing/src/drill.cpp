#include "qingshui/tracing/drill.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "qingshui/core/error.h"
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

DrillTruth MakeDrill(const Network& net, const TracingPriors& priors, const DrillOptions& o) {
  if (o.num_sources < 0 || o.num_sources > 3)
    throw ConfigError("drill: num_sources must be 0 to 3");
  DrillTruth t;
  t.options = o;
  NormalGenerator rng(o.seed * 7919 + 17);
  double start;
  if (!ParseIsoTime(o.start, &start)) throw ConfigError("drill: bad start '" + o.start + "'");
  Scenario& sc = t.scenario;
  sc.start_s = start;
  sc.end_s = start + o.window_days * 86400.0;
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
    for (const auto& sp : net.species) {
      if (sp.id == priors.reference_species) {
        e.mass_kg[sp.id] = cod;
        continue;
      }
      auto kt = priors.kinds.find(kind);
      if (kt == priors.kinds.end() || !kt->second.ratios.count(sp.id)) continue;  // not released
      const SpeciesRatio r = kt->second.ratios.at(sp.id);
      e.mass_kg[sp.id] = cod * r.median * std::exp(r.log_sd * rng.Next());
    }
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
