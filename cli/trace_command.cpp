// `qingshui trace [--network N] --observations OBS.csv [--start ISO --end ISO]
// [--max-sources K] [--json]` — ranks the sources that can explain the observations, with
// release times, durations and masses and their 90% intervals (qingshui::tracing::Trace);
// `--history SOURCE_ID` reconstructs a known source's release history instead
// (qingshui::tracing::ReconstructHistory). This file parses arguments and prints.
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/tracing/history.h"
#include "qingshui/tracing/observations.h"
#include "qingshui/tracing/priors.h"
#include "qingshui/tracing/tracer.h"

namespace qingshui::cli {

namespace {

void TraceUsage(std::ostream& out) {
  out << "usage: qingshui trace [--network NETWORK] --observations OBS.csv [--start ISO --end "
         "ISO]\n"
         "                      [--max-sources K] [--json] [--noise REL] [--species A,B,...]\n"
         "                      [--priors FILE] [--date YYYY-MM-DD] [--no-unregistered]\n"
         "                      [--threads N] [--within-h H]\n"
         "                      [--team-at STATION|REACH:KM [--team-speed-kmh V]]\n"
         "       qingshui trace [--network NETWORK] --observations OBS.csv --history SOURCE_ID\n"
         "                      [--start ISO --end ISO] [--regularization tikhonov|tv]\n"
         "                      [--alpha discrepancy|lcurve] [--bin-h H] [--json]\n\n"
         "Ranks the candidate sources of what the stations saw: for each hypothesis (no release,\n"
         "a release at a registered source or at an unregistered point of a reach, up to K\n"
         "simultaneous releases) its posterior probability, release start and end, and mass per\n"
         "species with 90% intervals; groups of sources the stations cannot tell apart;\n"
         "identifiability; and the station and time a next sample should come from\n"
         "(docs/tracing.md); --within-h H: only samples within H hours after the last one (a\n"
         "team in the field), or, when none of them separates the leaders, the earliest that\n"
         "does, said so. --team-at STATION|REACH:KM (e.g. fen_lower:55): a team there now\n"
         "(at the last sample) that travels along the rivers at --team-speed-kmh V (30):\n"
         "recommendations at stations and at river points every 1 km below the leading\n"
         "candidates, only where the team can be by then; --within-h defaults to 2.\n"
         "Observations: CSV time,station,species,value (mg/L), ISO-8601 times;\n"
         "samples at river points as time,reach,km,species,value, or both in one file with\n"
         "columns station,reach,km (each row fills station or reach and km).\n"
         "--history reconstructs a known source's load over time instead (non-negative\n"
         "Tikhonov or total-variation regularization).\n"
         "Priors: data/tracing/source_signatures.yaml (or --priors, or QINGSHUI_TRACING_PRIORS).\n"
         "exit codes: 0 success, 1 runtime failure, 2 invalid input or usage\n";
}

double ParseTimeArg(const std::string& option, const std::string& text) {
  double t;
  if (!tracing::ParseIsoTime(text, &t)) {
    throw ConfigError(option + ": expected an ISO-8601 time such as 2024-04-15T08:00+08:00, got '" +
                      text + "'");
  }
  return t;
}

}  // namespace

int RunTrace(const Args& args, std::ostream& out, std::ostream& err) {
  std::string network, observations, start, end, max_sources, noise, species, priors_path, date,
      threads, history, regularization, alpha, bin_h, within_h, team_at, team_speed;
  bool json = false, unregistered = true;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--help" || a == "-h") {
      TraceUsage(out);
      return kExitOk;
    }
    if (a == "--json") {
      json = true;
      continue;
    }
    if (a == "--no-unregistered") {
      unregistered = false;
      continue;
    }
    std::string* target = a == "--network"          ? &network
                          : a == "--observations"   ? &observations
                          : a == "--start"          ? &start
                          : a == "--end"            ? &end
                          : a == "--max-sources"    ? &max_sources
                          : a == "--noise"          ? &noise
                          : a == "--species"        ? &species
                          : a == "--priors"         ? &priors_path
                          : a == "--date"           ? &date
                          : a == "--threads"        ? &threads
                          : a == "--history"        ? &history
                          : a == "--regularization" ? &regularization
                          : a == "--alpha"          ? &alpha
                          : a == "--bin-h"          ? &bin_h
                          : a == "--within-h"       ? &within_h
                          : a == "--team-at"        ? &team_at
                          : a == "--team-speed-kmh" ? &team_speed
                                                    : nullptr;
    if (!target) {
      err << "qingshui trace: unknown option '" << a << "' (see qingshui trace --help)\n";
      return kExitInvalidInput;
    }
    if (k + 1 >= args.size()) {
      err << "qingshui trace: " << a << " needs a value\n";
      return kExitInvalidInput;
    }
    *target = args[++k];
  }
  if (observations.empty()) {
    err << "qingshui trace: --observations is required (see qingshui trace --help)\n";
    return kExitInvalidInput;
  }
  if (network.empty()) network = DefaultNetworkPath();
  const Network net = LoadNetwork(network);
  const tracing::ObservationSet obs = tracing::ReadObservationsCsv(observations);

  if (!history.empty()) {
    tracing::HistoryOptions ho;
    ho.source_id = history;
    if (!start.empty()) ho.start_s = ParseTimeArg("--start", start);
    if (!end.empty()) ho.end_s = ParseTimeArg("--end", end);
    if (!regularization.empty()) ho.regularization = regularization;
    if (!alpha.empty()) ho.alpha_rule = alpha;
    if (!bin_h.empty()) ho.bin_s = 3600.0 * ParseNumberOption("--bin-h", bin_h);
    if (!noise.empty()) ho.noise_relative = ParseNumberOption("--noise", noise);
    if (!date.empty()) ho.date = date;
    const tracing::HistoryResult r = tracing::ReconstructHistory(net, obs, ho);
    out << (json ? tracing::HistoryResultJson(r) : tracing::HistoryResultTable(r));
    return kExitOk;
  }

  tracing::TraceOptions o;
  o.priors = tracing::LoadTracingPriors(priors_path.empty() ? DefaultPriorsPath() : priors_path);
  if (!start.empty()) o.start_s = ParseTimeArg("--start", start);
  if (!end.empty()) o.end_s = ParseTimeArg("--end", end);
  if (!max_sources.empty()) {
    const double k = ParseNumberOption("--max-sources", max_sources);
    if (k != 1 && k != 2 && k != 3) throw ConfigError("--max-sources: expected 1, 2 or 3");
    o.max_sources = static_cast<int>(k);
  }
  if (!noise.empty()) o.noise_relative = ParseNumberOption("--noise", noise);
  if (!within_h.empty()) o.recommend_within_s = 3600.0 * ParseNumberOption("--within-h", within_h);
  if (!team_speed.empty() && team_at.empty())
    throw ConfigError("--team-speed-kmh: give --team-at too (where the team is)");
  if (!team_at.empty()) {
    tracing::CheckTeamAt(net, team_at, "--team-at");
    o.team_at = team_at;
  }
  if (!team_speed.empty()) {
    o.team_speed_kmh = ParseNumberOption("--team-speed-kmh", team_speed);
    if (!(o.team_speed_kmh > 0)) throw ConfigError("--team-speed-kmh: expected a speed > 0 km/h");
  }
  if (!threads.empty()) o.num_threads = static_cast<int>(ParseNumberOption("--threads", threads));
  if (!species.empty()) {
    std::stringstream ss(species);
    std::string s;
    while (std::getline(ss, s, ',')) {
      if (!s.empty()) o.species.push_back(s);
    }
  }
  o.date = date;
  o.unregistered = unregistered;
  const tracing::TraceResult r = tracing::Trace(net, obs, o);
  out << (json ? tracing::TraceResultJson(r) : tracing::TraceResultTable(r));
  return kExitOk;
}

}  // namespace qingshui::cli
