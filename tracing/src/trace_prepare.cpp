// PrepareContext (docs/tracing.md §1-4): the species traced, the window, the response
// kernels, the observation table with its noise model, the baseline-only misfit of each
// block, the candidates and the reaches an unregistered release may sit on.
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <tuple>

#include "qingshui/core/error.h"
#include "trace_context.h"

namespace qingshui::tracing::detail {

Prepared PrepareContext(Context& c, const Network& net, const ObservationSet& obs,
                        const TraceOptions& options, TraceSummary& sum) {
  c.net = &net;
  c.options = options;
  const auto& pr = options.priors;
  Prepared out;
  std::vector<double>& species_median = out.species_median;
  std::set<int>& observed_stations = out.observed_stations;
  // Species traced.
  CheckObservationsAgainst(net, obs);
  std::set<std::string> observed_species;
  for (const auto& o : obs.rows) observed_species.insert(o.species);
  if (!options.species.empty()) {
    for (const auto& s : options.species) {
      if (!net.FindSpecies(s))
        throw ConfigError("trace options: species: unknown species '" + s + "'");
      if (observed_species.count(s)) c.species.push_back(s);
    }
  } else {
    std::set<std::string> known = {pr.reference_species};
    for (const auto& [kind, sig] : pr.kinds) {
      for (const auto& [sp, r] : sig.ratios) known.insert(sp);
    }
    for (const auto& sp : net.species) {
      if (observed_species.count(sp.id) && known.count(sp.id)) c.species.push_back(sp.id);
    }
    if (c.species.empty()) {
      for (const auto& sp : net.species) {
        if (observed_species.count(sp.id)) c.species.push_back(sp.id);
      }
    }
  }
  if (c.species.empty())
    throw DataError(Located(obs.file, 0, "species", "no observations of a traced species"));
  c.reference = c.species[0];
  for (size_t k = 0; k < c.species.size(); ++k) {
    if (c.species[k] == pr.reference_species) c.reference = c.species[k];
  }
  c.reference_index = static_cast<int>(std::find(c.species.begin(), c.species.end(), c.reference) -
                                       c.species.begin());

  // Window.
  double t_min = INFINITY, t_max = -INFINITY;
  for (const auto& o : obs.rows) {
    if (std::isfinite(options.start_s) && o.time_s < options.start_s) continue;
    if (std::isfinite(options.end_s) && o.time_s > options.end_s) continue;
    if (std::find(c.species.begin(), c.species.end(), o.species) == c.species.end()) continue;
    t_min = std::min(t_min, o.time_s);
    t_max = std::max(t_max, o.time_s);
  }
  if (!std::isfinite(t_min)) {
    throw DataError(Located(obs.file, 0, "time", "no observations in the window"));
  }
  const double w_start = std::isfinite(options.start_s) ? options.start_s : t_min;
  const double w_end = std::isfinite(options.end_s) ? options.end_s : t_max;
  out.w_start = w_start;
  out.w_end = w_end;
  sum.window_start_s = w_start;
  sum.window_end_s = w_end;
  c.table.t_ref = w_start;
  c.t_lo_h = -pr.lead_s / 3600.0;
  c.t_hi_h = (w_end - w_start) / 3600.0;
  c.lnd_lo = std::log(pr.duration_min_s / 3600.0);
  c.lnd_hi = std::log(pr.duration_max_s / 3600.0);

  // Kernels.
  const auto t_kernels = Clock::now();
  KernelOptions ko;
  ko.date = options.date.empty() ? LocalDate(w_start) : options.date;
  ko.season = options.season;
  ko.temperature_c = options.temperature_c;
  ko.time_step_s = options.kernel_step_s;
  ko.horizon_s =
      (w_end + options.recommend_horizon_s) - (w_start - pr.lead_s) + options.kernel_step_s;
  if (options.kernel_horizon_round_s > 0) {
    ko.horizon_s = std::ceil(ko.horizon_s / options.kernel_horizon_round_s - 1e-9) *
                   options.kernel_horizon_round_s;
  }
  ko.grid_spacing_km = options.unregistered ? options.grid_spacing_km : 0.0;
  ko.species = c.species;
  ko.num_threads = options.num_threads;
  sum.hydraulics_date = ko.date;
  std::vector<KernelPoint> points;
  for (const auto& kp : DefaultKernelPoints(net, ko.grid_spacing_km)) {
    if (!kp.source_id.empty() && pr.KindWeight(kp.kind) <= 0) continue;
    points.push_back(kp);
  }
  // Point samples: each distinct (reach, km) is a virtual station after the network's, in
  // network order of the reaches, then by km (whatever the rows' order).
  {
    std::map<std::string, int> reach_order;
    for (size_t i = 0; i < net.reaches.size(); ++i)
      reach_order[net.reaches[i].id] = static_cast<int>(i);
    std::set<std::tuple<int, double, std::string>> sites;
    for (const auto& o : obs.rows) {
      if (o.IsPoint()) sites.insert({reach_order.at(o.reach), o.km, o.reach});
    }
    for (const auto& site : sites) {
      SamplingPoint sp;
      sp.reach = std::get<2>(site);
      sp.km = std::get<1>(site);
      sp.id = PointLabel(sp.reach, sp.km);
      ko.sampling_points.push_back(sp);
    }
  }
  c.kernels = options.kernel_cache
                  ? options.kernel_cache->Get(net, points, ko)
                  : std::make_shared<const ResponseKernels>(BuildKernels(net, points, ko));
  sum.kernel_seconds = Seconds(t_kernels);
  sum.num_kernel_points = static_cast<int>(c.kernels->points.size());
  if (c.kernels->max_relative_mass_error > 1e-8) {
    sum.warnings.push_back("kernel mass balance error " +
                           std::to_string(c.kernels->max_relative_mass_error));
  }

  // Observation table: blocks by station (network order) and species, rows by time.
  std::map<std::string, int> station_index;
  for (int s = 0; s < c.kernels->num_stations(); ++s) station_index[c.kernels->station_ids[s]] = s;
  struct Row {
    int s, k;
    double t, y;
  };
  std::vector<Row> rows;
  for (const auto& o : obs.rows) {
    if (o.time_s < w_start || o.time_s > w_end) continue;
    auto it = std::find(c.species.begin(), c.species.end(), o.species);
    if (it == c.species.end()) continue;
    rows.push_back({station_index.at(SiteLabel(o)), static_cast<int>(it - c.species.begin()),
                    o.time_s, o.value_mg_l});
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.s, a.k, a.t) < std::tie(b.s, b.k, b.t);
  });
  species_median.assign(c.species.size(), 0.0);
  for (size_t k = 0; k < c.species.size(); ++k) {
    std::vector<double> v;
    for (const auto& r : rows) {
      if (r.k == static_cast<int>(k)) v.push_back(r.y);
    }
    if (!v.empty()) {
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      species_median[k] = v[v.size() / 2];
    }
  }
  for (size_t i = 0; i < rows.size();) {
    size_t j = i;
    while (j < rows.size() && rows[j].s == rows[i].s && rows[j].k == rows[i].k) ++j;
    // Baseline guess for the model-error term: the lower quartile of the block.
    std::vector<double> v;
    for (size_t r = i; r < j; ++r) v.push_back(rows[r].y);
    std::nth_element(v.begin(), v.begin() + v.size() / 4, v.end());
    const double base = v[v.size() / 4];
    Block B;
    B.station = rows[i].s;
    B.species = rows[i].k;
    B.begin = c.table.num_rows();
    const double floor = 0.01 * species_median[rows[i].k] + 1e-6;
    for (size_t r = i; r < j; ++r) {
      const double y = rows[r].y;
      const double excess = std::max(0.0, y - base);
      const double sd2 = std::pow(options.noise_relative * y, 2) +
                         std::pow(pr.model_error_relative * excess, 2) + floor * floor;
      c.table.t.push_back(rows[r].t);
      c.table.y.push_back(y);
      c.table.w.push_back(1.0 / sd2);
    }
    B.end = c.table.num_rows();
    if (B.end - B.begin >= 2) {
      c.table.blocks.push_back(B);
      observed_stations.insert(B.station);
    }
    i = j;
  }
  if (c.table.blocks.empty()) {
    throw DataError(Located(obs.file, 0, "",
                            "need at least two samples of a station and species in the window"));
  }
  sum.num_observations = c.table.num_rows();
  sum.num_stations = static_cast<int>(observed_stations.size());
  for (int s : observed_stations) sum.num_points += s >= c.kernels->num_network_stations;
  sum.species = c.species;

  const Model model(*c.kernels, c.table, kFitReweightingPasses);
  // Baseline-only misfit of every block.
  {
    Evaluation e;
    c.table.h0_cost = 0.0;
    for (size_t b = 0; b < c.table.blocks.size(); ++b) {
      HypothesisSpec s;
      s.blocks = {static_cast<int>(b)};
      double th[2] = {0, 0};
      model.Evaluate(s, th, &e, false);
      c.table.blocks[b].h0_cost = e.cost;
      c.table.blocks[b].h0_baseline = e.baseline[0];
      c.table.h0_cost += e.cost;
    }
  }

  // Candidates and unregistered reaches.
  c.candidate_weight.assign(c.kernels->points.size(), 0.0);
  for (size_t p = 0; p < c.kernels->points.size(); ++p) {
    const KernelPoint& kp = c.kernels->points[p];
    if (kp.source_id.empty()) continue;
    bool seen = false;
    for (const Block& B : c.table.blocks)
      seen = seen || c.kernels->Sees(static_cast<int>(p), B.station);
    if (seen) {
      c.candidates.push_back(static_cast<int>(p));
      c.candidate_weight[p] = pr.KindWeight(kp.kind);
      c.candidate_weight_total += c.candidate_weight[p];
    } else {
      sum.unobservable.push_back(kp.source_id);
    }
  }
  sum.num_candidates = static_cast<int>(c.candidates.size());
  if (options.unregistered && pr.p_unregistered > 0) {
    for (const auto& reach : net.reaches) {
      UReach u;
      u.reach = reach.id;
      std::vector<std::pair<double, int>> pts;
      for (size_t p = 0; p < c.kernels->points.size(); ++p) {
        if (c.kernels->points[p].reach == reach.id)
          pts.push_back({c.kernels->points[p].km, static_cast<int>(p)});
      }
      std::sort(pts.begin(), pts.end());
      bool seen = false;
      for (const Block& B : c.table.blocks)
        seen = seen || c.kernels->PointSees(reach.id, reach.start_km, B.station);
      if (!seen || pts.empty()) continue;
      u.spec.reach = reach.id;
      u.spec.km_lo = reach.start_km;
      u.spec.km_hi = reach.end_km();
      for (const auto& [km, p] : pts) {
        // Points in one segment add nothing (identical kernels); keep the first.
        if (!u.spec.reach_km.empty() &&
            c.kernels->points[p].segment == c.kernels->points[u.spec.reach_points.back()].segment)
          continue;
        u.spec.reach_points.push_back(p);
        u.spec.reach_km.push_back(km);
        u.spec.reach_tau.push_back(c.kernels->TravelTimeOnReach(reach.id, km));
      }
      u.length_km = reach.length_m / 1000.0;
      c.unreg_length_km += u.length_km;
      c.ureaches.push_back(u);
    }
  }
  {
    double total = pr.p_no_release;
    for (int K = 1; K <= options.max_sources && K <= static_cast<int>(pr.p_sources.size()); ++K)
      total += pr.p_sources[K - 1];
    c.log_p_norm = std::log(total);
  }
  return out;
}

}  // namespace qingshui::tracing::detail
