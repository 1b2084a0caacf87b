// Phase 9 of a trace (docs/tracing.md §7, "Next sample" and "A team in the field"): where
// and when a sample would best separate the leading hypotheses — at the network's stations
// and, with a team in the field, at river points below the leading candidates that the team
// can reach by then.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "river_places.h"
#include "trace_context.h"

namespace qingshui::tracing::detail {

namespace {

// The leading hypotheses whose predictions are compared: those holding kLeadingMass of the
// posterior, at most kMaxLeads (the rest cannot change where to sample).
constexpr double kLeadingMass = 0.99;
constexpr int kMaxLeads = 6;
// Candidate sample times: hourly after the last sample (trace_context.h).
constexpr double kSampleStepS = kRecommendStepS;
// At most this many places recommended, each expected to bring at least kMinInformationNats.
constexpr int kRecommendations = 3;
constexpr double kMinInformationNats = 0.01;
// River points (a team only) are looked for this far down the rivers below each leading
// release: a plume at 0.2-0.5 m/s (April to June) travels 17-43 km a day, so this covers
// the next day's plume of a release found at its first alarm, and the reach between
// neighbouring outfalls that no station separates. Farther down, the stations see the
// leaders as well as points would.
constexpr double kPointsBelowKm = 40.0;

// The point kernels run only as far as the recommendations read them, times this margin:
// above the engine's largest dispersion factor the tables spread travel times by dilations
// (kernels.h), which read the step response somewhat beyond the time they are for.
constexpr double kHorizonMargin = 1.5;

struct Lead {
  std::string label;
  double p;
  int fit;  // -1: no release
};

// A place a sample may be taken: a network station, or a river point whose responses come
// from the point kernels (virtual stations of a second kernel run).
struct Place {
  int model = 0;  // 0: the trace's kernels, 1: the point kernels
  int s = 0;      // station index in that model's kernels
  std::string station;
  std::string reach;
  double km = NAN;
  double team_km = NAN;  // distance from the team along the rivers
};

// A lead's releases prepared once per model (its parameters decoded), with the spec the
// model's kernels index.
struct PreparedLead {
  std::vector<ReleaseSpec> releases;
  std::vector<Model::Prepared> prepared;
};

}  // namespace

void RecommendNextSamples(TraceRun& run) {
  const Context& c = run.c;
  const TraceOptions& options = c.options;
  const Network& net = *c.net;
  const auto& fits = run.fits;
  const auto& best_mode = run.best_mode;
  const std::vector<double>& species_median = run.prep.species_median;
  const double w_end = run.prep.w_end;
  TraceResult& result = run.result;
  const bool team = !options.team_at.empty();
  // Next sample: the place and time (after the last sample) where the leading hypotheses'
  // predictions differ most relative to the measurement noise; expected information ≈
  // Σ_species ½ ln(1 + between-hypothesis variance / noise variance).
  std::vector<Lead> leads;
  double acc = 0.0;
  for (const auto& h : result.hypotheses) {
    if (acc >= kLeadingMass || static_cast<int>(leads.size()) >= kMaxLeads) break;
    acc += h.probability;
    leads.push_back({h.label, h.probability, h.sources.empty() ? -1 : best_mode.at(h.label)});
  }
  double ptot = 0.0;
  for (const auto& l : leads) ptot += l.p;
  const int Ks = static_cast<int>(c.species.size());

  // Places: the network's stations (outfall monitors included), then with a team the river
  // points below the leading releases, in a second kernel run of just those releases' kernel
  // points with the points as virtual stations (docs/tracing.md §7).
  std::vector<const Model*> models = {run.model.get()};
  std::vector<Place> places;
  RiverPlace team_place;
  if (team) team_place = ParseTeamAt(net, options.team_at);
  for (int s = 0; s < c.kernels->num_network_stations; ++s) {
    Place pl;
    pl.s = s;
    pl.station = c.kernels->station_ids[s];
    if (team) {
      pl.team_km =
          RiverDistanceKm(net, team_place, {c.kernels->station_reach[s], c.kernels->station_km[s]});
    }
    places.push_back(pl);
  }
  ResponseKernels point_kernels;
  std::unique_ptr<Model> point_model;
  // The leads' releases as the point kernels index them: [lead][release].
  std::vector<std::vector<ReleaseSpec>> point_specs(leads.size());
  if (team && leads.size() >= 2 && ptot > 0 && options.recommend_point_spacing_km > 0) {
    std::vector<RiverPlace> below;
    std::vector<KernelPoint> kpoints;
    std::map<int, int> point_index;  // trace kernel point -> point-kernel point
    auto use_point = [&](int p) {
      if (!point_index.count(p)) {
        point_index[p] = static_cast<int>(kpoints.size());
        kpoints.push_back(c.kernels->points[p]);
      }
      return point_index[p];
    };
    // The kernels need to reach as far in reference time as the latest hour looked at
    // (Model::Unit's argument f (t − t0) − shift); beyond that nothing is read.
    double needed_s = 0.0;
    const double t_last = w_end + options.recommend_horizon_s;
    for (size_t l = 0; l < leads.size(); ++l) {
      if (leads[l].fit < 0) continue;
      const Fit& f = fits[leads[l].fit];
      const int P = f.spec.num_params();
      for (size_t j = 0; j < f.spec.releases.size(); ++j) {
        const ReleaseSpec& r = f.spec.releases[j];
        const double* th = f.theta.data() + f.spec.offset(static_cast<int>(j));
        Model::Prepared q;
        run.model->Prepare(r, th, f.theta[P - 2], f.theta[P - 1], &q);
        ReleaseSpec pr = r;
        RiverPlace at;
        double shift = 0.0;
        if (r.unregistered()) {
          // Only the two kernel points around the release's km are read (Model::Prepare):
          // the same interpolation from a spec of just those two.
          pr.reach_points.clear();
          pr.reach_km.clear();
          pr.reach_tau.clear();
          for (int i : {q.lo, q.hi}) {
            if (i < 0) continue;
            pr.reach_points.push_back(use_point(r.reach_points[i]));
            pr.reach_km.push_back(r.reach_km[i]);
            pr.reach_tau.push_back(r.reach_tau[i]);
          }
          shift = std::min({0.0, q.lo >= 0 ? q.shift_lo : 0.0, q.hi >= 0 ? q.shift_hi : 0.0});
          at = {r.reach, th[2]};
        } else {
          pr.point = use_point(r.point);
          at = {c.kernels->points[r.point].reach, c.kernels->points[r.point].km};
        }
        point_specs[l].push_back(std::move(pr));
        needed_s = std::max(needed_s, q.f * (t_last - q.t0) - shift);
        for (const RiverPlace& p :
             PointsBelow(net, at, options.recommend_point_spacing_km, kPointsBelowKm))
          below.push_back(p);
      }
    }
    KernelOptions ko = c.kernels->options;
    ko.sampling_points.clear();
    ko.horizon_s = std::min(ko.horizon_s, kHorizonMargin * needed_s + 2 * ko.time_step_s);
    std::set<std::string> seen_labels;
    for (const RiverPlace& q : below) {
      SamplingPoint sp;
      sp.reach = q.reach;
      sp.km = q.km;
      sp.id = PointLabel(q.reach, q.km);
      if (seen_labels.insert(sp.id).second) ko.sampling_points.push_back(sp);
    }
    if (!kpoints.empty() && !ko.sampling_points.empty()) {
      const auto t_points = Clock::now();
      point_kernels = BuildKernels(net, kpoints, ko);
      result.summary.kernel_seconds += Seconds(t_points);
      point_model = std::make_unique<Model>(point_kernels, c.table, 1);
      models.push_back(point_model.get());
      // A point in a station's segment, or in one a point before it took, has the same
      // kernels: the station (or that point) stands for it.
      std::set<int> segments(c.kernels->station_segment.begin(),
                             c.kernels->station_segment.begin() + c.kernels->num_network_stations);
      for (int s = point_kernels.num_network_stations; s < point_kernels.num_stations(); ++s) {
        if (!segments.insert(point_kernels.station_segment[s]).second) continue;
        Place pl;
        pl.model = 1;
        pl.s = s;
        pl.reach = point_kernels.station_reach[s];
        pl.km = point_kernels.station_km[s];
        pl.team_km = RiverDistanceKm(net, team_place, {pl.reach, pl.km});
        places.push_back(pl);
      }
    }
  }

  // The leads' releases, prepared for each model (the point kernels index their own points).
  std::vector<std::vector<PreparedLead>> prepared(models.size(),
                                                  std::vector<PreparedLead>(leads.size()));
  for (size_t m = 0; m < models.size(); ++m) {
    for (size_t l = 0; l < leads.size(); ++l) {
      if (leads[l].fit < 0) continue;
      const Fit& f = fits[leads[l].fit];
      const int P = f.spec.num_params();
      PreparedLead& pl = prepared[m][l];
      for (size_t j = 0; j < f.spec.releases.size(); ++j) {
        ReleaseSpec r = m == 1 ? point_specs[l][j] : f.spec.releases[j];
        Model::Prepared q;
        models[m]->Prepare(r, f.theta.data() + f.spec.offset(static_cast<int>(j)), f.theta[P - 2],
                           f.theta[P - 1], &q);
        pl.releases.push_back(std::move(r));
        pl.prepared.push_back(std::move(q));
      }
    }
  }
  // Concentration of lead l's releases at a place (g/m³ above the baseline).
  auto signal = [&](size_t l, const Place& pl, int k, double t) {
    double v = 0.0;
    if (leads[l].fit < 0) return v;
    const Fit& f = fits[leads[l].fit];
    const PreparedLead& pr = prepared[pl.model][l];
    for (size_t j = 0; j < pr.releases.size(); ++j) {
      v += f.eval.mass[j][k] *
           models[pl.model]->ResponsePrepared(pr.releases[j], pr.prepared[j], pl.s, k, t);
    }
    return v;
  };

  // Baselines: an observed station's own; elsewhere the median of the observed ones.
  const int S = c.kernels->num_stations();
  std::vector<std::vector<double>> base(S, std::vector<double>(Ks, -1.0));
  std::vector<std::vector<double>> species_bases(Ks);
  for (const Block& B : c.table.blocks) {
    base[B.station][B.species] = B.h0_baseline;
    species_bases[B.species].push_back(B.h0_baseline);
  }
  std::vector<double> other_base(Ks);
  for (int k = 0; k < Ks; ++k) {
    auto& v = species_bases[k];
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    other_base[k] = v.empty() ? species_median[k] : v[v.size() / 2];
    for (int s = 0; s < S; ++s) {
      if (base[s][k] < 0) base[s][k] = other_base[k];
    }
  }
  auto base_at = [&](const Place& pl, int k) {
    return pl.model == 0 ? base[pl.s][k] : other_base[k];
  };

  // A team can be at a place by time t when the river distance at its speed takes no longer
  // than the time from the last sample (now) to t.
  auto reachable = [&](const Place& pl, double t) {
    if (!team) return true;
    return pl.team_km / options.team_speed_kmh * 3600.0 <= (t - w_end) + 1e-6;
  };

  struct Candidate {
    double info;
    int place;
    double t;
  };
  std::vector<Candidate> cands;
  if (leads.size() >= 2 && ptot > 0) {
    for (int i = 0; i < static_cast<int>(places.size()); ++i) {
      const Place& pl = places[i];
      for (double dt = kSampleStepS; dt <= options.recommend_horizon_s + 1e-9; dt += kSampleStepS) {
        const double t = w_end + dt;
        if (!reachable(pl, t)) continue;
        double info = 0.0;
        for (int k = 0; k < Ks; ++k) {
          std::vector<double> mu(leads.size(), 0.0);
          double mean = 0.0;
          for (size_t l = 0; l < leads.size(); ++l) {
            mu[l] = signal(l, pl, k, t);
            mean += leads[l].p / ptot * mu[l];
          }
          double var = 0.0;
          for (size_t l = 0; l < leads.size(); ++l)
            var += leads[l].p / ptot * std::pow(mu[l] - mean, 2);
          const double level = base_at(pl, k) + mean;
          const double noise2 = std::pow(options.noise_relative * level, 2) +
                                std::pow(0.01 * species_median[k] + 1e-6, 2);
          info += 0.5 * std::log1p(var / noise2);
        }
        cands.push_back({info, i, t});
      }
    }
  }
  auto name = [&](const Place& pl) {
    return pl.station.empty() ? PointLabel(pl.reach, pl.km) : pl.station;
  };
  auto recommend = [&](const Candidate& cd, bool within_window) {
    const Place& pl = places[cd.place];
    SampleRecommendation r;
    r.station = pl.station;
    r.reach = pl.reach;
    r.km = pl.km;
    r.team_distance_km = pl.team_km;
    r.time_s = cd.t;
    r.expected_information_nats = cd.info;
    r.within_window = within_window;
    for (size_t l = 0; l < leads.size(); ++l) {
      std::map<std::string, double> pred;
      for (int k = 0; k < Ks; ++k) {
        double v = base_at(pl, k);
        if (leads[l].fit >= 0) {
          const Fit& f = fits[leads[l].fit];
          const PreparedLead& pr = prepared[pl.model][l];
          for (size_t j = 0; j < pr.releases.size(); ++j) {
            v += f.eval.mass[j][k] *
                 models[pl.model]->ResponsePrepared(pr.releases[j], pr.prepared[j], pl.s, k, cd.t);
          }
        }
        pred[c.species[k]] = v;
      }
      r.predictions.push_back({leads[l].label, pred});
    }
    result.next_samples.push_back(r);
  };

  // Without a window: each place's best time up to the horizon. With one (a team in the
  // field, issue #21 item 2): each place's best time within it. Times are after the last
  // sample, so a sample just taken (the previous recommendation) is never given again.
  const bool windowed = !std::isnan(options.recommend_within_s);
  const double window_end = w_end + (windowed ? options.recommend_within_s : INFINITY) + 1e-6;
  std::vector<Candidate> pool;
  for (const auto& cd : cands) {
    if (cd.t <= window_end) pool.push_back(cd);
  }
  std::sort(pool.begin(), pool.end(),
            [](const Candidate& a, const Candidate& b) { return a.info > b.info; });
  std::set<int> used;
  for (const auto& cd : pool) {
    if (static_cast<int>(result.next_samples.size()) >= kRecommendations ||
        cd.info < kMinInformationNats)
      break;
    if (used.count(cd.place)) continue;
    used.insert(cd.place);
    recommend(cd, true);
  }
  if (windowed && result.next_samples.empty() && leads.size() >= 2) {
    // Never silent while the leaders differ somewhere: the earliest sample beyond the
    // window that separates them (the most informative at that hour).
    const Candidate* earliest = nullptr;
    for (const auto& cd : cands) {
      if (cd.t <= window_end || cd.info < kMinInformationNats) continue;
      if (!earliest || cd.t < earliest->t - 1e-6 ||
          (std::abs(cd.t - earliest->t) <= 1e-6 && cd.info > earliest->info))
        earliest = &cd;
    }
    char hours[32];
    std::snprintf(hours, sizeof hours, "%g", options.recommend_within_s / 3600.0);
    std::string none;
    if (team) {
      char speed[32];
      std::snprintf(speed, sizeof speed, "%g", options.team_speed_kmh);
      none = "no sample the team (at " + options.team_at + ", " + speed +
             " km/h) can take within " + hours + " h of " + FormatIsoTime(w_end) +
             " separates the leading hypotheses";
    } else {
      none = "no station sample within " + std::string(hours) + " h of " + FormatIsoTime(w_end) +
             " separates the leading hypotheses";
    }
    if (earliest) {
      char later[32];
      std::snprintf(later, sizeof later, "%.0f", (earliest->t - w_end) / 3600.0);
      result.next_samples_note = none +
                                 "; the earliest that does: " + name(places[earliest->place]) +
                                 " at " + FormatIsoTime(earliest->t) + " (+" + later + " h)";
      recommend(*earliest, false);
    } else {
      char horizon[32];
      std::snprintf(horizon, sizeof horizon, "%g", options.recommend_horizon_s / 3600.0);
      result.next_samples_note =
          none + ", nor any up to " + horizon + " h ahead" +
          (team ? " (nothing the team can reach along the rivers by then tells them apart: "
                  "their plumes have passed, or it drains to another outlet)"
                : " (their plumes have passed the stations, or they predict the same at every "
                  "station)");
    }
  }
}

}  // namespace qingshui::tracing::detail
