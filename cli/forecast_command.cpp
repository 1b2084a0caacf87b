// `qingshui forecast` — the daily forecast batch (issue #5; docs/forecast.md). Parses the
// options, reads the network and the inputs directory, runs qingshui::forecast, prints the
// summary table (or JSON) and writes the HDF5 file atomically. No numerical work here.
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/forecast/forecast.h"
#include "qingshui/forecast/forecast_file.h"
#include "qingshui/forecast/inputs.h"
#include "qingshui/forecast/time.h"

namespace qingshui::cli {

namespace {

void Usage(std::ostream& out) {
  out << "usage: qingshui forecast [--network PATH] [--inputs DIR] [--start ISO] [--days N]\n"
         "                         [--members M] [--seed S] [--threads T] [--out FILE] [--json]\n\n"
         "Forecasts water quality at the network's stations for the next days: a hindcast of\n"
         "the last days with the recorded inputs, assimilation of the station observations\n"
         "into the source loads, then an ensemble that perturbs loads, rates, flows, rain and\n"
         "temperature (docs/forecast.md). Prints per station and day the predicted class (worst\n"
         "indicator of the daily mean), its probability, P(worse than Class III), the main\n"
         "pollutant and the source contributing most; writes every quantile, exceedance\n"
         "probability and contribution to an HDF5 file (docs/formats/forecast.md).\n\n"
         "  --network PATH  network file (default: the inputs' manifest, else the built-in\n"
         "                  Yuncheng network)\n"
         "  --inputs DIR    inputs directory: forecast.yaml, observations.csv|.h5,\n"
         "                  plant_records.csv, schedule.yaml, weather.csv, ... (default: the\n"
         "                  shipped synthetic demo inputs, data/yuncheng/demo)\n"
         "  --start ISO     as-of time, ISO 8601 with offset, e.g. 2024-05-20T08:00+08:00\n"
         "                  (default: the manifest's as_of, else the latest observation)\n"
         "  --days N        days forecast after the as-of time (default 7)\n"
         "  --members M     ensemble members (default 200)\n"
         "  --seed S        random seed (default: the manifest's, else 1); the same seed gives\n"
         "                  the same numbers whatever the thread count\n"
         "  --threads T     threads (default: all)\n"
         "  --out FILE      HDF5 result (default forecast.h5); replaced only when complete\n"
         "  --json          print the summary as JSON (warnings also go to standard error)\n"
         "exit codes: 0 success; 1 runtime failure (the result cannot be written: unwritable\n"
         "folder, disk full; or the network file changed during the run) - the previous\n"
         "FILE is kept; 2 invalid input or usage (file:line: field: what; also a corrupt\n"
         "or truncated observations.h5)\n";
}

// What identifies a version of an input file: its size and modification time. Compared
// before the network is read and before the result is written, so that a forecast is never
// filed under a network file that no longer says what the run used.
struct FileStamp {
  bool exists = false;
  std::uintmax_t size = 0;
  std::filesystem::file_time_type modified{};
  bool operator==(const FileStamp& o) const {
    return exists == o.exists && size == o.size && modified == o.modified;
  }
};

FileStamp Stamp(const std::string& path) {
  FileStamp s;
  std::error_code ec;
  s.size = std::filesystem::file_size(path, ec);
  if (ec) return s;
  s.modified = std::filesystem::last_write_time(path, ec);
  s.exists = !ec;
  return s;
}

bool ParseInt(const std::string& text, long long lo, long long hi, long long* value) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return ec == std::errc() && ptr == end && *value >= lo && *value <= hi;
}

}  // namespace

int RunForecast(const Args& args, std::ostream& out, std::ostream& err) {
  std::string network_path, inputs_dir, start, days, members, seed, threads,
      out_path = "forecast.h5";
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help" || a == "-h") {
      Usage(out);
      return kExitOk;
    }
    if (a == "--json") {
      json = true;
      continue;
    }
    std::string* target = a == "--network"   ? &network_path
                          : a == "--inputs"  ? &inputs_dir
                          : a == "--start"   ? &start
                          : a == "--days"    ? &days
                          : a == "--members" ? &members
                          : a == "--seed"    ? &seed
                          : a == "--threads" ? &threads
                          : a == "--out"     ? &out_path
                                             : nullptr;
    if (!target) {
      err << "qingshui forecast: unknown option '" << a << "' (see qingshui forecast --help)\n";
      return kExitInvalidInput;
    }
    if (i + 1 >= args.size()) {
      err << "qingshui forecast: " << a << " needs a value\n";
      return kExitInvalidInput;
    }
    *target = args[++i];
  }
  if (inputs_dir.empty()) inputs_dir = forecast::DefaultInputsDir();
  std::vector<std::string> defaults;
  if (network_path.empty()) network_path = forecast::ManifestNetworkPath(inputs_dir);
  if (network_path.empty()) {
    network_path = DefaultNetworkPath();
    defaults.push_back("network: the built-in Yuncheng network (" + network_path + ")");
  }
  const FileStamp network_stamp = Stamp(network_path);
  const Network net = LoadNetwork(network_path);
  const forecast::ForecastInputs inputs = forecast::ReadInputs(inputs_dir, net);
  forecast::ForecastOptions options = forecast::OptionsFromInputs(inputs, &defaults);

  long long value = 0;
  if (!start.empty()) {
    std::string error;
    std::int64_t t = 0;
    if (!forecast::ParseIsoTime(start, &t, &error)) throw ConfigError("--start: " + error);
    options.as_of_utc_s = t;
  }
  if (options.as_of_utc_s <= 0) {
    throw ConfigError("no as-of time: give --start, as_of in " + inputs_dir +
                      "/forecast.yaml, or observations");
  }
  if (!days.empty()) {
    if (!ParseInt(days, 1, 30, &value))
      throw ConfigError("--days: expected 1 to 30, got '" + days + "'");
    options.days = static_cast<int>(value);
  }
  if (!members.empty()) {
    if (!ParseInt(members, 1, 100000, &value)) {
      throw ConfigError("--members: expected 1 to 100000, got '" + members + "'");
    }
    options.members = static_cast<int>(value);
  }
  if (!seed.empty()) {
    if (!ParseInt(seed, 0, (1LL << 62), &value))
      throw ConfigError("--seed: expected a whole number >= 0");
    options.seed = static_cast<std::uint64_t>(value);
  }
  if (!threads.empty()) {
    if (!ParseInt(threads, 1, 1024, &value)) throw ConfigError("--threads: expected 1 to 1024");
    options.threads = static_cast<int>(value);
  }
  options.progress = [&err](const std::string& line) {
    err << "qingshui forecast: " << line << "\n";
  };

  forecast::ForecastResult result = forecast::RunForecast(net, inputs, options);
  result.defaults_used.insert(result.defaults_used.begin(), defaults.begin(), defaults.end());

  forecast::ForecastFileInfo info;
  info.network_file = network_path;
  info.inputs_dir = inputs_dir;
  info.software_version = QINGSHUI_VERSION;
  info.synthetic_inputs = inputs.synthetic;
  info.inputs_description = inputs.description;
  if (!(Stamp(network_path) == network_stamp)) {
    throw Error("network file " + network_path +
                " changed during the run (after it was read): the forecast would not match "
                "the file, so " + out_path + " is not written (a previous one is kept); run "
                "again");
  }
  forecast::WriteForecastFile(out_path, result, net, info);

  if (json) {
    for (const auto& w : result.warnings) err << w.Format() << "\n";
    out << forecast::SummaryJson(result);
    return kExitOk;
  }
  out << "Qingshui forecast for " << net.name << ", as of "
      << forecast::FormatIsoTime(result.as_of_utc_s) << "\n";
  if (inputs.synthetic) {
    out << "DEMO: the inputs in " << inputs_dir
        << " are SYNTHETIC demo data (see its README.md), not measurements; the numbers show\n"
           "what the forecast does, not the state of the rivers.\n";
  }
  out << result.BriefReport();
  if (!result.defaults_used.empty()) {
    out << "defaults used:\n";
    for (const auto& d : result.defaults_used) out << "  - " << d << "\n";
  }
  for (const auto& w : result.warnings) out << w.Format() << "\n";
  out << "\n" << forecast::FormatSummaryTable(result);
  out << "\nclass: of the median daily means (worst indicator of ";
  for (size_t k = 0; k < result.indicators.size(); ++k)
    out << (k ? ", " : "") << result.indicators[k];
  out << "); P(class): the share of members in that class; P(>III): the share of members\n"
         "worse than Class III; main pollutant: worst indicator above Class III (multiple of the\n"
         "limit), or '-' with the closest; top source: largest share of that indicator's daily\n"
         "mean in the control run.\n";
  out << "wrote " << out_path << "\n";
  return kExitOk;
}

}  // namespace qingshui::cli
