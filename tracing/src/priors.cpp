#include "qingshui/tracing/priors.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "yaml_util.h"

namespace qingshui::tracing {

SpeciesRatio TracingPriors::Ratio(const std::string& kind, const std::string& species,
                                  const std::string& reference) const {
  SpeciesRatio broad{0.01, unknown_ratio_log_sd};
  if (species == reference) return {1.0, 0.0};
  auto it = kinds.find(kind);
  auto lookup = [&](const std::string& s, SpeciesRatio* r) {
    if (s == reference_species) {
      *r = {1.0, 0.0};
      return true;
    }
    if (it == kinds.end()) return false;
    auto jt = it->second.ratios.find(s);
    if (jt == it->second.ratios.end()) return false;
    *r = jt->second;
    return true;
  };
  SpeciesRatio a, b;
  if (!lookup(species, &a) || !lookup(reference, &b)) return broad;
  // species/reference = (species/file_ref) / (reference/file_ref); log-sds add in quadrature.
  return {a.median / b.median, std::sqrt(a.log_sd * a.log_sd + b.log_sd * b.log_sd)};
}

double TracingPriors::KindWeight(const std::string& kind) const {
  auto it = kinds.find(kind);
  return it == kinds.end() ? 1.0 : it->second.prior_weight;
}

bool TracingPriors::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (!(mass_min_kg > 0) || !(mass_max_kg > mass_min_kg))
    return fail("mass_kg: expected 0 < min < max");
  if (!(duration_min_s > 0) || !(duration_max_s > duration_min_s)) {
    return fail("duration_h: expected 0 < min < max");
  }
  if (!(lead_s >= 0)) return fail("lead_h: expected >= 0");
  if (!(velocity_log_sd > 0) || !(dispersion_log_sd > 0)) {
    return fail("velocity_factor_log_sd, dispersion_factor_log_sd: expected > 0");
  }
  if (!(model_error_relative >= 0)) return fail("model_error_relative: expected >= 0");
  if (!(timing_error_relative >= 0)) return fail("timing_error_relative: expected >= 0");
  if (!(p_no_release >= 0)) return fail("hypotheses.no_release: expected >= 0");
  double total = p_no_release;
  for (double p : p_sources) {
    if (!(p >= 0)) return fail("hypotheses.sources: expected probabilities >= 0");
    total += p;
  }
  if (p_sources.empty() || !(p_sources[0] > 0))
    return fail("hypotheses.sources: expected at least one entry > 0");
  if (!(total > 0)) return fail("hypotheses: probabilities sum to 0");
  if (!(p_unregistered >= 0 && p_unregistered < 1))
    return fail("hypotheses.unregistered: expected a fraction in [0, 1)");
  if (!(unknown_ratio_log_sd > 0)) return fail("unknown_ratio_log_sd: expected > 0");
  if (!(atypical_composition >= 0 && atypical_composition < 1))
    return fail("atypical_composition: expected 0 <= value < 1");
  for (const auto& [kind, sig] : kinds) {
    if (!(sig.prior_weight >= 0)) return fail("kinds." + kind + ".prior_weight: expected >= 0");
    for (const auto& [sp, r] : sig.ratios) {
      if (!(r.median > 0) || !(r.log_sd > 0)) {
        return fail("kinds." + kind + ".ratios." + sp + ": expected median > 0 and log_sd > 0");
      }
    }
  }
  return true;
}

TracingPriors ParseTracingPriors(const std::string& text, const std::string& file) {
  detail::YamlReader r(file);
  const YAML::Node root = detail::ParseYaml(text, file);
  if (!root.IsMap()) r.FailAt(1, "", "expected a map with format: qingshui-tracing-priors");
  r.CheckKeys(
      root, "",
      {"format", "version", "reference_species", "mass_kg", "duration_h", "lead_h",
       "velocity_factor_log_sd", "dispersion_factor_log_sd", "model_error_relative",
       "timing_error_relative", "hypotheses", "unknown_ratio_log_sd", "atypical_composition", "kinds",
       "description"});
  if (!root["format"].IsDefined() ||
      r.Text(root["format"], "format") != "qingshui-tracing-priors") {
    r.Fail(root["format"], "format", "expected qingshui-tracing-priors");
  }
  if (!root["version"].IsDefined() || r.Number(root["version"], "version") != 1) {
    r.Fail(root["version"], "version", "expected 1 (this reader's format version)");
  }
  TracingPriors p;
  p.file = file;
  if (root["reference_species"].IsDefined()) {
    p.reference_species = r.Text(root["reference_species"], "reference_species");
  }
  auto range = [&](const char* key, double scale, double* lo, double* hi) {
    const YAML::Node n = root[key];
    if (!n.IsDefined()) return;
    r.CheckKeys(n, key, {"min", "max"});
    if (n["min"].IsDefined()) *lo = scale * r.Number(n["min"], std::string(key) + ".min");
    if (n["max"].IsDefined()) *hi = scale * r.Number(n["max"], std::string(key) + ".max");
    if (!(*lo > 0) || !(*hi > *lo)) r.Fail(n, key, "expected 0 < min < max");
  };
  range("mass_kg", 1.0, &p.mass_min_kg, &p.mass_max_kg);
  range("duration_h", 3600.0, &p.duration_min_s, &p.duration_max_s);
  auto number = [&](const char* key, double scale, double* out) {
    if (root[key].IsDefined()) *out = scale * r.Number(root[key], key);
  };
  number("lead_h", 3600.0, &p.lead_s);
  number("velocity_factor_log_sd", 1.0, &p.velocity_log_sd);
  number("dispersion_factor_log_sd", 1.0, &p.dispersion_log_sd);
  number("model_error_relative", 1.0, &p.model_error_relative);
  number("timing_error_relative", 1.0, &p.timing_error_relative);
  number("unknown_ratio_log_sd", 1.0, &p.unknown_ratio_log_sd);
  number("atypical_composition", 1.0, &p.atypical_composition);
  if (const YAML::Node h = root["hypotheses"]; h.IsDefined()) {
    r.CheckKeys(h, "hypotheses", {"no_release", "sources", "unregistered"});
    if (h["no_release"].IsDefined())
      p.p_no_release = r.Number(h["no_release"], "hypotheses.no_release");
    if (h["unregistered"].IsDefined()) {
      p.p_unregistered = r.Number(h["unregistered"], "hypotheses.unregistered");
    }
    if (const YAML::Node s = h["sources"]; s.IsDefined()) {
      if (!s.IsSequence() || s.size() == 0)
        r.Fail(s, "hypotheses.sources", "expected a list of probabilities");
      p.p_sources.clear();
      for (size_t i = 0; i < s.size(); ++i) {
        p.p_sources.push_back(r.Number(s[i], "hypotheses.sources[" + std::to_string(i) + "]"));
      }
    }
  }
  if (const YAML::Node kinds = root["kinds"]; kinds.IsDefined()) {
    if (!kinds.IsMap()) r.Fail(kinds, "kinds", "expected a map kind -> {ratios, prior_weight}");
    for (const auto& kv : kinds) {
      const std::string kind = r.Key(kv.first, "kinds");
      const std::string field = "kinds." + kind;
      SourceKind parsed;
      if (!ParseSourceKind(kind, &parsed)) {
        std::string known;
        for (const auto& n : SourceKindNames()) known += (known.empty() ? "" : ", ") + n;
        r.Fail(kv.first, field, "unknown source kind (known: " + known + ")");
      }
      r.CheckKeys(kv.second, field, {"src", "ratios", "prior_weight"});
      KindSignature sig;
      if (kv.second["prior_weight"].IsDefined()) {
        sig.prior_weight = r.Number(kv.second["prior_weight"], field + ".prior_weight");
      }
      if (const YAML::Node ratios = kv.second["ratios"]; ratios.IsDefined()) {
        if (!ratios.IsMap())
          r.Fail(ratios, field + ".ratios", "expected a map species -> {median, log_sd}");
        for (const auto& sr : ratios) {
          const std::string sp = r.Key(sr.first, field + ".ratios");
          const std::string f = field + ".ratios." + sp;
          r.CheckKeys(sr.second, f, {"median", "log_sd"});
          if (!sr.second["median"].IsDefined() || !sr.second["log_sd"].IsDefined()) {
            r.Fail(sr.second, f, "expected median and log_sd");
          }
          SpeciesRatio ratio;
          ratio.median = r.Number(sr.second["median"], f + ".median");
          ratio.log_sd = r.Number(sr.second["log_sd"], f + ".log_sd");
          if (!(ratio.median > 0) || !(ratio.log_sd > 0)) {
            r.Fail(sr.second, f, "expected median > 0 and log_sd > 0");
          }
          sig.ratios[sp] = ratio;
        }
      }
      p.kinds[kind] = sig;
    }
  }
  std::string error;
  if (!p.IsValid(&error)) r.FailAt(0, "", error);
  return p;
}

TracingPriors LoadTracingPriors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(Located(path, 0, "", "cannot open the tracing priors file"));
  std::ostringstream text;
  text << in.rdbuf();
  return ParseTracingPriors(text.str(), path);
}

}  // namespace qingshui::tracing
