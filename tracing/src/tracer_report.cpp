// Output of the tracer: the JSON of `qingshui trace --json` and the readable table.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "qingshui/core/text.h"
#include "qingshui/tracing/tracer.h"

namespace qingshui::tracing {

namespace {

std::string Num(double x, int digits = 6) {
  if (!std::isfinite(x)) return "null";
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", digits, x);
  return b;
}

std::string Str(const std::string& s) { return JsonString(s); }

std::string Time(double t) { return Str(FormatIsoTime(t)); }

// A recommended place in the table: the station, or "REACH:KM" for a river point; with a
// team, how far along the rivers it is.
std::string Place(const SampleRecommendation& n) {
  std::string name = n.IsPoint() ? PointLabel(n.reach, n.km) : n.station;
  if (std::isfinite(n.team_distance_km)) name += " (" + Num(n.team_distance_km, 3) + " km away)";
  return name;
}

template <typename T, typename F>
std::string List(const std::vector<T>& v, F f) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + f(v[i]);
  return out + "]";
}

std::string StrList(const std::vector<std::string>& v) {
  return List(v, [](const std::string& s) { return Str(s); });
}

std::string Pair(const std::array<double, 2>& a, int digits = 6) {
  return "[" + Num(a[0], digits) + ", " + Num(a[1], digits) + "]";
}

std::string Hours(double s) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", s / 3600.0);
  return b;
}

}  // namespace

std::string TraceSummary::BriefReport() const {
  std::ostringstream o;
  if (num_points > 0) {
    o << num_observations << " samples at " << num_stations - num_points << " station(s) and "
      << num_points << " river point(s), ";
  } else {
    o << num_observations << " samples at " << num_stations << " station(s), ";
  }
  o << FormatIsoTime(window_start_s) << " to " << FormatIsoTime(window_end_s) << "; "
    << num_candidates << " candidate sources, " << num_kernel_points
    << " kernel points (hydraulics of " << hydraulics_date << "); " << num_fits << " fits, "
    << num_evaluations << " evaluations; kernels " << Num(kernel_seconds, 3) << " s, fits "
    << Num(fit_seconds, 3) << " s, total " << Num(total_seconds, 3) << " s; noise scale "
    << Num(noise_scale, 3);
  return o.str();
}

std::string TraceResultJson(const TraceResult& r) {
  std::ostringstream o;
  o << "{\n  \"hypotheses\": [";
  for (size_t i = 0; i < r.hypotheses.size(); ++i) {
    const Hypothesis& h = r.hypotheses[i];
    o << (i ? "," : "") << "\n    {\"probability\": " << Num(h.probability)
      << ", \"label\": " << Str(h.label) << ", \"sources\": [";
    for (size_t j = 0; j < h.sources.size(); ++j) {
      const SourceEstimate& s = h.sources[j];
      o << (j ? ", " : "") << "{\"id\": " << Str(s.id) << ", \"kind\": " << Str(s.kind)
        << ", \"release_start\": " << Time(s.release_start_s)
        << ", \"release_end\": " << Time(s.release_end_s) << ", \"mass_kg\": {";
      bool first = true;
      for (const auto& [sp, kg] : s.mass_kg) {
        o << (first ? "" : ", ") << Str(sp) << ": " << Num(kg, 5);
        first = false;
      }
      o << "}, \"mass_kg_ci90\": {";
      first = true;
      for (const auto& [sp, ci] : s.mass_kg_ci90) {
        o << (first ? "" : ", ") << Str(sp) << ": " << Pair(ci, 5);
        first = false;
      }
      o << "}, \"release_start_ci90\": [" << Time(s.start_ci90[0]) << ", " << Time(s.start_ci90[1])
        << "], \"duration_h\": " << Num(s.duration_s / 3600.0, 4) << ", \"duration_h_ci90\": "
        << Pair({s.duration_ci90[0] / 3600.0, s.duration_ci90[1] / 3600.0}, 4)
        << ", \"reach\": " << Str(s.reach) << ", \"km\": " << Num(s.km, 6)
        << ", \"km_ci90\": " << Pair(s.km_ci90) << "}";
    }
    o << "], \"velocity_factor\": " << Num(h.velocity_factor, 4)
      << ", \"velocity_factor_ci90\": " << Pair(h.velocity_factor_ci90, 4)
      << ", \"dispersion_factor\": " << Num(h.dispersion_factor, 4)
      << ", \"dispersion_factor_ci90\": " << Pair(h.dispersion_factor_ci90, 4)
      << ", \"misfit\": " << Num(h.misfit, 6) << ", \"log_evidence\": " << Num(h.log_evidence, 8)
      << ", \"modes\": " << h.modes << "}";
  }
  o << "\n  ],\n  \"groups\": "
    << List(r.groups, [](const std::vector<std::string>& g) { return StrList(g); });
  const TraceSummary& s = r.summary;
  o << ",\n  \"diagnostics\": {\n";
  o << "    \"window\": {\"start\": " << Time(s.window_start_s)
    << ", \"end\": " << Time(s.window_end_s) << "},\n";
  o << "    \"observations\": " << s.num_observations << ", \"stations\": " << s.num_stations;
  if (s.num_points > 0) o << ", \"points\": " << s.num_points;  // mobile samples (reach, km)
  o << ", \"species\": " << StrList(s.species) << ",\n";
  o << "    \"hydraulics_date\": " << Str(s.hydraulics_date)
    << ", \"candidates\": " << s.num_candidates << ", \"unobservable\": " << StrList(s.unobservable)
    << ",\n";
  o << "    \"source_probability\": {";
  {
    std::vector<std::pair<double, std::string>> sp;
    for (const auto& [l, p] : r.source_probability) sp.push_back({-p, l});
    std::sort(sp.begin(), sp.end());
    for (size_t i = 0; i < sp.size(); ++i)
      o << (i ? ", " : "") << Str(sp[i].second) << ": " << Num(-sp[i].first);
  }
  o << "},\n";
  o << "    \"credible_set_90\": " << StrList(r.credible_set_90) << ",\n";
  o << "    \"indistinguishable\": "
    << List(r.indistinguishable, [](const std::vector<std::string>& g) { return StrList(g); })
    << ",\n";
  o << "    \"identifiability\": [";
  for (size_t i = 0; i < r.identifiability.size(); ++i) {
    const auto& id = r.identifiability[i];
    o << (i ? "," : "") << "\n      {\"parameter\": " << Str(id.parameter)
      << ", \"estimate\": " << Num(id.estimate) << ", \"posterior_sd\": " << Num(id.posterior_sd, 4)
      << ", \"prior_sd\": " << Num(id.prior_sd, 4)
      << ", \"contraction\": " << Num(id.contraction, 3) << ", \"status\": " << Str(id.status)
      << "}";
  }
  o << "],\n    \"next_samples\": [";
  for (size_t i = 0; i < r.next_samples.size(); ++i) {
    const auto& n = r.next_samples[i];
    o << (i ? "," : "") << "\n      {";
    if (n.IsPoint()) {
      o << "\"reach\": " << Str(n.reach) << ", \"km\": " << Num(n.km);
    } else {
      o << "\"station\": " << Str(n.station);
    }
    o << ", \"time\": " << Time(n.time_s)
      << ", \"expected_information_nats\": " << Num(n.expected_information_nats, 4)
      << ", \"within_window\": " << (n.within_window ? "true" : "false");
    if (std::isfinite(n.team_distance_km))
      o << ", \"team_distance_km\": " << Num(n.team_distance_km, 4);
    o << ", \"predictions\": {";
    for (size_t j = 0; j < n.predictions.size(); ++j) {
      o << (j ? ", " : "") << Str(n.predictions[j].first) << ": {";
      bool first = true;
      for (const auto& [sp, v] : n.predictions[j].second) {
        o << (first ? "" : ", ") << Str(sp) << ": " << Num(v, 4);
        first = false;
      }
      o << "}";
    }
    o << "}}";
  }
  o << "],\n    \"next_samples_note\": " << Str(r.next_samples_note);
  if (!s.team_at.empty()) {
    o << ",\n    \"team\": {\"at\": " << Str(s.team_at)
      << ", \"speed_kmh\": " << Num(s.team_speed_kmh)
      << ", \"within_h\": " << Num(s.team_within_s / 3600.0) << "}";
  }
  o << ",\n    \"noise_scale\": " << Num(s.noise_scale, 4) << ", \"fits\": " << s.num_fits
    << ", \"evaluations\": " << s.num_evaluations << ", \"kernel_s\": " << Num(s.kernel_seconds, 4)
    << ", \"fit_s\": " << Num(s.fit_seconds, 4) << ",\n    \"warnings\": " << StrList(s.warnings)
    << "\n  },\n";
  o << "  \"elapsed_s\": " << Num(r.elapsed_s, 4) << "\n}\n";
  return o.str();
}

std::string TraceResultTable(const TraceResult& r) {
  std::ostringstream o;
  const TraceSummary& s = r.summary;
  o << "Source tracing: " << s.num_observations << " samples at ";
  if (s.num_points > 0) {
    o << s.num_stations - s.num_points << " stations and " << s.num_points << " river points, ";
  } else {
    o << s.num_stations << " stations, ";
  }
  o << FormatIsoTime(s.window_start_s) << " to " << FormatIsoTime(s.window_end_s) << "\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "%-5s %-7s %-34s %-26s %-9s %s\n", "rank", "prob", "hypothesis",
                "release start (90%)", "dur h", "mass kg (90% interval)");
  o << line;
  int rank = 0;
  for (const auto& h : r.hypotheses) {
    // The leading hypotheses: at least three, then those above half a per cent.
    if (++rank > 12 || (rank > 3 && h.probability < 0.005)) break;
    char prob[16];
    std::snprintf(prob, sizeof prob, "%.3f", h.probability);
    if (h.sources.empty()) {
      std::snprintf(line, sizeof line, "%-5d %-7s %-34s\n", rank, prob, "no release");
      o << line;
      continue;
    }
    for (size_t j = 0; j < h.sources.size(); ++j) {
      const auto& e = h.sources[j];
      std::string who =
          e.id == "unregistered" ? "unregistered " + e.reach + " km " + Num(e.km, 4) : e.id;
      std::string start = FormatIsoTime(e.release_start_s).substr(5, 11) + " (" +
                          FormatIsoTime(e.start_ci90[0]).substr(8, 8) + "-" +
                          FormatIsoTime(e.start_ci90[1]).substr(8, 8) + ")";
      std::string mass;
      for (const auto& [sp, kg] : e.mass_kg) {
        const auto ci = e.mass_kg_ci90.at(sp);
        mass += (mass.empty() ? "" : "  ") + sp + " " + Num(kg, 3) + " (" + Num(ci[0], 2) + "-" +
                Num(ci[1], 2) + ")";
      }
      std::snprintf(line, sizeof line, "%-5s %-7s %-34s %-26s %-9s %s\n",
                    j == 0 ? std::to_string(rank).c_str() : "", j == 0 ? prob : "",
                    ((j ? "+ " : "") + who).c_str(), start.c_str(), Hours(e.duration_s).c_str(),
                    mass.c_str());
      o << line;
    }
  }
  o << "\n90% credible set: ";
  for (size_t i = 0; i < r.credible_set_90.size(); ++i) {
    const auto& l = r.credible_set_90[i];
    auto it = r.source_probability.find(l);
    o << (i ? ", " : "") << l << " (" << Num(it == r.source_probability.end() ? 0.0 : it->second, 2)
      << ")";
  }
  o << "\n";
  // Groups that concern the answer (a member with a marginal probability of 1% or more);
  // the JSON lists them all.
  std::vector<const std::vector<std::string>*> relevant;
  for (const auto& g : r.groups) {
    bool matters = false;
    for (const auto& id : g) {
      auto it = r.source_probability.find(id);
      matters = matters || (it != r.source_probability.end() && it->second >= 0.01);
    }
    if (matters) relevant.push_back(&g);
  }
  if (!relevant.empty()) {
    o << "Cannot be told apart by travel time (groups):";
    for (const auto* g : relevant) {
      o << " [";
      for (size_t i = 0; i < g->size(); ++i) o << (i ? ", " : "") << (*g)[i];
      o << "]";
    }
    o << "\n";
  }
  if (!r.indistinguishable.empty()) {
    o << "Fit the data alike:";
    for (const auto& g : r.indistinguishable) {
      o << " [";
      for (size_t i = 0; i < g.size(); ++i) o << (i ? ", " : "") << g[i];
      o << "]";
    }
    o << "\n";
  }
  if (!r.hypotheses.empty() && !r.hypotheses[0].sources.empty()) {
    const auto& h = r.hypotheses[0];
    o << "Leading hypothesis: velocity x" << Num(h.velocity_factor, 3) << " ("
      << Num(h.velocity_factor_ci90[0], 3) << "-" << Num(h.velocity_factor_ci90[1], 3)
      << "), dispersion x" << Num(h.dispersion_factor, 3) << " ("
      << Num(h.dispersion_factor_ci90[0], 3) << "-" << Num(h.dispersion_factor_ci90[1], 3) << ")\n";
  }
  if (!r.identifiability.empty()) {
    o << "Identifiability:";
    for (const auto& id : r.identifiability) o << " " << id.parameter << " " << id.status << ";";
    o << "\n";
  }
  if (r.next_samples.empty() && r.hypotheses.size() > 1 && r.next_samples_note.empty()) {
    o << "Next sample: none in the next 24 h separates the leading hypotheses (their plumes "
         "have passed, or they predict the same everywhere)\n";
  }
  if (!r.next_samples_note.empty()) o << "Next sample: " << r.next_samples_note << "\n";
  if (!r.next_samples.empty()) {
    const auto& n = r.next_samples[0];
    if (n.within_window) {  // else the note names it
      o << "Next sample: " << Place(n) << " at " << FormatIsoTime(n.time_s)
        << " (expected information " << Num(n.expected_information_nats, 3) << " nats)";
      for (size_t i = 1; i < r.next_samples.size(); ++i) {
        o << "; then " << Place(r.next_samples[i]) << " at "
          << FormatIsoTime(r.next_samples[i].time_s).substr(0, 16);
      }
      o << "\n";
    }
    for (const auto& [label, pred] : n.predictions) {
      o << "    if " << label << ":";
      for (const auto& [sp, v] : pred) o << " " << sp << " " << Num(v, 3);
      o << " mg/L\n";
    }
  }
  for (const auto& w : s.warnings) o << "warning: " << w << "\n";
  o << s.BriefReport() << "\n";
  return o.str();
}

}  // namespace qingshui::tracing
