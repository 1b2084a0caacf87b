// Priors of the source tracer, read from data/tracing/source_signatures.yaml (format
// `qingshui-tracing-priors`, documented in docs/tracing.md): species ratios typical of each
// kind of source, the ranges of release mass and duration, the uncertainty of velocity and
// dispersion, and the prior probability of each kind of hypothesis. Every number in the
// file carries its provenance (S/M/E), as in the network file.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace qingshui::tracing {

// Mass of a species per unit mass of the reference species in a release: log-normal.
struct SpeciesRatio {
  double median = 0.01;
  double log_sd = 2.0;  // standard deviation of ln(ratio)
};

struct KindSignature {
  std::map<std::string, SpeciesRatio> ratios;  // species -> ratio to the reference species
  double prior_weight = 1.0;  // relative prior of a candidate of this kind (0 = never)
};

struct TracingPriors {
  std::string file;
  std::string reference_species = "COD";
  double mass_min_kg = 10.0, mass_max_kg = 1e6;                 // reference species, log-uniform
  double duration_min_s = 900.0, duration_max_s = 48 * 3600.0;  // log-uniform
  double lead_s = 24 * 3600.0;  // a release may start this long before the first sample
  double velocity_log_sd = 0.15;
  double dispersion_log_sd = 0.5;
  double model_error_relative = 0.1;
  // Timing error of the kernels relative to the travel time to the first station: widens
  // the release time's interval (not the fit).
  double timing_error_relative = 0.05;
  double p_no_release = 0.2;
  std::vector<double> p_sources = {0.6, 0.15, 0.05};  // 1, 2, 3 simultaneous releases
  double p_unregistered = 0.1;  // share of one release's prior off the registered sources
  double unknown_ratio_log_sd = 2.0;
  // Share of a registered source's releases whose composition is that of another kind
  // (an industrial site's domestic sewage, a plant's industrial inflow): its ratio prior is
  // (1 − this) · its kind's + this · the mixture over all kinds by prior weight (an
  // ε-contamination: an atypical composition widens the answer instead of excluding the
  // source; docs/tracing.md §6).
  double atypical_composition = 0.2;
  std::map<std::string, KindSignature> kinds;  // by source kind name ("treatment_plant")

  // The ratio prior of `species` to `reference` for a kind: from the table, derived
  // through the file's reference species when `reference` differs from it, or the broad
  // default for species the table does not list.
  SpeciesRatio Ratio(const std::string& kind, const std::string& species,
                     const std::string& reference) const;
  double KindWeight(const std::string& kind) const;
  bool IsValid(std::string* error) const;
};

// Reads and validates the file; throws ConfigError naming the file, line and field.
TracingPriors LoadTracingPriors(const std::string& path);
TracingPriors ParseTracingPriors(const std::string& text, const std::string& file_name);

}  // namespace qingshui::tracing
