// Phase 9 of a trace (docs/tracing.md §7, "Next sample"): where and when a sample would best
// separate the leading hypotheses.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <utility>

#include "trace_context.h"

namespace qingshui::tracing::detail {

namespace {

// The leading hypotheses whose predictions are compared: those holding kLeadingMass of the
// posterior, at most kMaxLeads (the rest cannot change where to sample).
constexpr double kLeadingMass = 0.99;
constexpr int kMaxLeads = 6;
// Candidate sample times: hourly after the last sample (trace_context.h).
constexpr double kSampleStepS = kRecommendStepS;
// At most this many stations recommended, each expected to bring at least kMinInformationNats.
constexpr int kRecommendations = 3;
constexpr double kMinInformationNats = 0.01;

}  // namespace

void RecommendNextSamples(TraceRun& run) {
  const Context& c = run.c;
  const TraceOptions& options = c.options;
  const Model& model = *run.model;
  const auto& fits = run.fits;
  const auto& best_mode = run.best_mode;
  const std::vector<double>& species_median = run.prep.species_median;
  const double w_end = run.prep.w_end;
  TraceResult& result = run.result;
  // Next sample: the station and time (after the last sample) where the leading
  // hypotheses' predictions differ most relative to the measurement noise; expected
  // information ≈ Σ_species ½ ln(1 + between-hypothesis variance / noise variance).
  {
    struct Lead {
      std::string label;
      double p;
      int fit;  // -1: no release
    };
    std::vector<Lead> leads;
    double acc = 0.0;
    for (const auto& h : result.hypotheses) {
      if (acc >= kLeadingMass || static_cast<int>(leads.size()) >= kMaxLeads) break;
      acc += h.probability;
      leads.push_back({h.label, h.probability, h.sources.empty() ? -1 : best_mode.at(h.label)});
    }
    double ptot = 0.0;
    for (const auto& l : leads) ptot += l.p;
    const int S = c.kernels.num_stations(), Ks = static_cast<int>(c.species.size());
    std::vector<std::vector<double>> base(S, std::vector<double>(Ks, -1.0));
    std::vector<std::vector<double>> species_bases(Ks);
    for (const Block& B : c.table.blocks) {
      base[B.station][B.species] = B.h0_baseline;
      species_bases[B.species].push_back(B.h0_baseline);
    }
    for (int k = 0; k < Ks; ++k) {
      auto& v = species_bases[k];
      std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
      for (int s = 0; s < S; ++s) {
        if (base[s][k] < 0) base[s][k] = v.empty() ? species_median[k] : v[v.size() / 2];
      }
    }
    struct Candidate {
      double info;
      int s;
      double t;
    };
    std::vector<Candidate> cands;
    if (leads.size() >= 2 && ptot > 0) {
      // Network stations only: the points of mobile samples are kernel stations too, but
      // recommending points is a separate feature (issue #16, "Recommendations anywhere").
      for (int s = 0; s < c.kernels.num_network_stations; ++s) {
        for (double dt = kSampleStepS; dt <= options.recommend_horizon_s + 1e-9;
             dt += kSampleStepS) {
          const double t = w_end + dt;
          double info = 0.0;
          for (int k = 0; k < Ks; ++k) {
            std::vector<double> mu(leads.size(), 0.0);
            double mean = 0.0;
            for (size_t l = 0; l < leads.size(); ++l) {
              if (leads[l].fit >= 0) {
                const Fit& f = fits[leads[l].fit];
                const int P = f.spec.num_params();
                for (size_t j = 0; j < f.spec.releases.size(); ++j) {
                  mu[l] += f.eval.mass[j][k] *
                           model.Response(f.spec.releases[j],
                                          f.theta.data() + f.spec.offset(static_cast<int>(j)),
                                          f.theta[P - 2], f.theta[P - 1], s, k, t);
                }
              }
              mean += leads[l].p / ptot * mu[l];
            }
            double var = 0.0;
            for (size_t l = 0; l < leads.size(); ++l)
              var += leads[l].p / ptot * std::pow(mu[l] - mean, 2);
            const double level = base[s][k] + mean;
            const double noise2 = std::pow(options.noise_relative * level, 2) +
                                  std::pow(0.01 * species_median[k] + 1e-6, 2);
            info += 0.5 * std::log1p(var / noise2);
          }
          cands.push_back({info, s, t});
        }
      }
    }
    auto recommend = [&](const Candidate& cd, bool within_window) {
      SampleRecommendation r;
      r.station = c.kernels.station_ids[cd.s];
      r.time_s = cd.t;
      r.expected_information_nats = cd.info;
      r.within_window = within_window;
      for (const auto& l : leads) {
        std::map<std::string, double> pred;
        for (int k = 0; k < Ks; ++k) {
          double v = base[cd.s][k];
          if (l.fit >= 0) {
            const Fit& f = fits[l.fit];
            const int P = f.spec.num_params();
            for (size_t j = 0; j < f.spec.releases.size(); ++j) {
              v += f.eval.mass[j][k] *
                   model.Response(f.spec.releases[j],
                                  f.theta.data() + f.spec.offset(static_cast<int>(j)),
                                  f.theta[P - 2], f.theta[P - 1], cd.s, k, cd.t);
            }
          }
          pred[c.species[k]] = v;
        }
        r.predictions.push_back({l.label, pred});
      }
      result.next_samples.push_back(r);
    };

    // Without a window: each station's best time up to the horizon. With one (a team in the
    // field, issue #21 item 2): each station's best time within it. Times are after the last
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
      if (used.count(cd.s)) continue;
      used.insert(cd.s);
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
      const std::string none = "no station sample within " + std::string(hours) + " h of " +
                               FormatIsoTime(w_end) + " separates the leading hypotheses";
      if (earliest) {
        char later[32];
        std::snprintf(later, sizeof later, "%.0f", (earliest->t - w_end) / 3600.0);
        result.next_samples_note =
            none + "; the earliest that does: " + c.kernels.station_ids[earliest->s] + " at " +
            FormatIsoTime(earliest->t) + " (+" + later + " h)";
        recommend(*earliest, false);
      } else {
        char horizon[32];
        std::snprintf(horizon, sizeof horizon, "%g", options.recommend_horizon_s / 3600.0);
        result.next_samples_note = none + ", nor any up to " + horizon +
                                   " h ahead (their plumes have passed the stations, or they "
                                   "predict the same at every station)";
      }
    }
  }
}

}  // namespace qingshui::tracing::detail
