// `qingshui hydro --network N --date D [--season S] [--rain FILE] --out FILE` — the day's
// steady hydraulics of every segment (flow, depth, velocity, dispersion and the water
// balance terms) written to CSV (.csv) or HDF5 (.h5), atomically (temporary file, then
// rename). The numbers come from qingshui::hydro; this file only parses and writes.
#include <hdf5.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "commands.h"
#include "qingshui/core/error.h"
#include "qingshui/core/network.h"
#include "qingshui/hydro/flow_balance.h"
#include "qingshui/hydro/rain.h"

namespace qingshui::cli {

namespace {

void Usage(std::ostream& out) {
  out << "usage: qingshui hydro [--network NETWORK] --date YYYY-MM-DD [--season dry|wet]\n"
         "                      [--rain RAIN.csv] --out FILE.csv|FILE.h5\n\n"
         "Computes the steady flow of one day on every segment: which sources run on the date,\n"
         "the water balance (headwaters, sources, wetlands, diffuse inflow, withdrawals,\n"
         "losses, lakes), depth, velocity and dispersion (docs/hydraulics.md). The season\n"
         "(headwater flows) follows the date (wet = June-September) unless --season is given.\n"
         "--rain adds catchment runoff and combined-sewer overflows of the day (daily rain per\n"
         "catchment, docs/hydraulics.md). Writes one row per segment; the summary and the\n"
         "volume balance go to standard output.\n"
         "exit codes: 0 success, 1 runtime failure, 2 invalid input or usage\n";
}

std::string Timestamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::ostringstream out;
  out << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ");
  return out.str();
}

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void WriteCsv(const std::filesystem::path& path, const std::vector<hydro::Column>& columns) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(std::string("cannot create the temporary file: ") + std::strerror(errno));
  for (size_t c = 0; c < columns.size(); ++c) f << (c ? "," : "") << columns[c].name;
  f << "\n";
  const size_t rows =
      columns.empty() ? 0 : std::max(columns[0].values.size(), columns[0].text.size());
  char number[64];
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < columns.size(); ++c) {
      if (c) f << ",";
      const hydro::Column& col = columns[c];
      if (col.is_text()) {
        f << CsvField(col.text[r]);
      } else if (col.integer) {
        f << static_cast<long long>(col.values[r]);
      } else {
        // Shortest text that reads back to the same double.
        const auto end = std::to_chars(number, number + sizeof number, col.values[r]).ptr;
        f.write(number, end - number);
      }
    }
    f << "\n";
  }
  f.flush();
  if (!f) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
  f.close();
  if (!f) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
}

// Closes an HDF5 handle when it goes out of scope.
struct H5Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~H5Handle() {
    if (id >= 0) close(id);
  }
};

void Check(hid_t id, const std::string& what) {
  if (id < 0) throw std::runtime_error("HDF5: cannot " + what);
}

void TextAttribute(hid_t object, const std::string& name, const std::string& value) {
  H5Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
  H5Tset_size(type.id, value.empty() ? 1 : value.size());
  H5Tset_cset(type.id, H5T_CSET_UTF8);
  H5Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  H5Handle attr{H5Acreate2(object, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose};
  Check(attr.id, "create attribute " + name);
  Check(H5Awrite(attr.id, type.id, value.c_str()), "write attribute " + name);
}

void NumberAttribute(hid_t object, const std::string& name, double value) {
  H5Handle space{H5Screate(H5S_SCALAR), H5Sclose};
  H5Handle attr{
      H5Acreate2(object, name.c_str(), H5T_IEEE_F64LE, space.id, H5P_DEFAULT, H5P_DEFAULT),
      H5Aclose};
  Check(attr.id, "create attribute " + name);
  Check(H5Awrite(attr.id, H5T_NATIVE_DOUBLE, &value), "write attribute " + name);
}

// Self-describing file (as OpenMC's): root attributes filetype, version, the software
// version and a timestamp; /segments holds one dataset per column with its unit;
// /balance the network's volume balance as attributes.
//
// The file is built in memory (core driver, no backing store) and its image written with
// an ofstream: libhdf5 1.10 cannot recover from a failed disk write (the file it could not
// close crashes the process at exit - a full disk gave SIGSEGV after the error message).
void WriteHdf5Contents(hid_t file, const std::vector<hydro::Column>& columns,
                       const hydro::NetworkHydraulics& h, const std::string& network_file);

void WriteHdf5(const std::filesystem::path& path, const std::vector<hydro::Column>& columns,
               const hydro::NetworkHydraulics& h, const std::string& network_file) {
  std::vector<char> image;
  {
    H5Handle fapl{H5Pcreate(H5P_FILE_ACCESS), H5Pclose};
    Check(H5Pset_fapl_core(fapl.id, 1 << 20, 0), "set the in-memory driver");
    H5Handle file{H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id), H5Fclose};
    Check(file.id, "create " + path.string() + " in memory");
    WriteHdf5Contents(file.id, columns, h, network_file);
    const ssize_t size = H5Fget_file_image(file.id, nullptr, 0);
    if (size <= 0) throw std::runtime_error("HDF5: cannot get the file image");
    image.resize(static_cast<size_t>(size));
    if (H5Fget_file_image(file.id, image.data(), image.size()) != size) {
      throw std::runtime_error("HDF5: cannot get the file image");
    }
  }
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error(std::string("cannot create the temporary file: ") + std::strerror(errno));
  f.write(image.data(), static_cast<std::streamsize>(image.size()));
  f.flush();
  if (!f) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
  f.close();
  if (!f) throw std::runtime_error(std::string("write failed: ") + std::strerror(errno));
}

void WriteHdf5Contents(hid_t file, const std::vector<hydro::Column>& columns,
                       const hydro::NetworkHydraulics& h, const std::string& network_file) {
  TextAttribute(file, "filetype", "qingshui-hydraulics");
  {
    H5Handle space{H5Screate(H5S_SIMPLE), H5Sclose};
    const hsize_t two = 2;
    H5Sset_extent_simple(space.id, 1, &two, nullptr);
    H5Handle attr{H5Acreate2(file, "version", H5T_STD_I32LE, space.id, H5P_DEFAULT, H5P_DEFAULT),
                  H5Aclose};
    const int version[2] = {1, 0};
    Check(H5Awrite(attr.id, H5T_NATIVE_INT, version), "write attribute version");
  }
  TextAttribute(file, "qingshui_version", QINGSHUI_VERSION);
  TextAttribute(file, "created", Timestamp());
  TextAttribute(file, "network", network_file);
  TextAttribute(file, "date", h.date);
  TextAttribute(file, "season", h.season);

  H5Handle group{H5Gcreate2(file, "segments", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose};
  Check(group.id, "create /segments");
  std::string order;
  for (const auto& col : columns) order += (order.empty() ? "" : ",") + col.name;
  TextAttribute(group.id, "columns",
                order);  // datasets list alphabetically; this is the table order
  const hsize_t rows = static_cast<hsize_t>(h.size());
  H5Handle space{H5Screate_simple(1, &rows, nullptr), H5Sclose};
  for (const auto& col : columns) {
    hid_t dataset = -1;
    if (col.is_text()) {
      H5Handle type{H5Tcopy(H5T_C_S1), H5Tclose};
      H5Tset_size(type.id, H5T_VARIABLE);
      H5Tset_cset(type.id, H5T_CSET_UTF8);
      dataset = H5Dcreate2(group.id, col.name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT,
                           H5P_DEFAULT);
      Check(dataset, "create /segments/" + col.name);
      std::vector<const char*> ptrs;
      for (const auto& t : col.text) ptrs.push_back(t.c_str());
      Check(H5Dwrite(dataset, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "write /segments/" + col.name);
    } else if (col.integer) {
      dataset = H5Dcreate2(group.id, col.name.c_str(), H5T_STD_I64LE, space.id, H5P_DEFAULT,
                           H5P_DEFAULT, H5P_DEFAULT);
      Check(dataset, "create /segments/" + col.name);
      std::vector<long long> v(col.values.begin(), col.values.end());
      Check(H5Dwrite(dataset, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), "write /segments/" + col.name);
    } else {
      dataset = H5Dcreate2(group.id, col.name.c_str(), H5T_IEEE_F64LE, space.id, H5P_DEFAULT,
                           H5P_DEFAULT, H5P_DEFAULT);
      Check(dataset, "create /segments/" + col.name);
      Check(H5Dwrite(dataset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, col.values.data()), "write /segments/" + col.name);
    }
    H5Handle ds{dataset, H5Dclose};
    TextAttribute(ds.id, "unit", col.unit);
    TextAttribute(ds.id, "description", col.description);
  }
  H5Handle balance{H5Gcreate2(file, "balance", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose};
  Check(balance.id, "create /balance");
  const hydro::WaterBalance& b = h.balance;
  NumberAttribute(balance.id, "headwater_m3s", b.headwater_m3s);
  NumberAttribute(balance.id, "point_inflow_m3s", b.point_inflow_m3s);
  NumberAttribute(balance.id, "diffuse_inflow_m3s", b.diffuse_inflow_m3s);
  NumberAttribute(balance.id, "withdrawal_m3s", b.withdrawal_m3s);
  NumberAttribute(balance.id, "withdrawal_shortfall_m3s", b.withdrawal_shortfall_m3s);
  NumberAttribute(balance.id, "loss_m3s", b.loss_m3s);
  NumberAttribute(balance.id, "lake_evaporation_m3s", b.lake_evaporation_m3s);
  NumberAttribute(balance.id, "outlet_m3s", b.outlet_m3s);
  NumberAttribute(balance.id, "residual_m3s", b.residual_m3s);
  NumberAttribute(balance.id, "relative_residual", b.relative_residual);
  if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) throw std::runtime_error("HDF5: cannot flush");
}

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

int RunHydro(const Args& args, std::ostream& out, std::ostream& err) {
  std::string network, date, season, rain, out_path;
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--help" || a == "-h") {
      Usage(out);
      return kExitOk;
    }
    std::string* target = a == "--network"  ? &network
                          : a == "--date"   ? &date
                          : a == "--season" ? &season
                          : a == "--rain"   ? &rain
                          : a == "--out"    ? &out_path
                                            : nullptr;
    if (!target) {
      err << "qingshui hydro: unknown option '" << a << "' (see qingshui hydro --help)\n";
      return kExitInvalidInput;
    }
    if (k + 1 >= args.size()) {
      err << "qingshui hydro: " << a << " needs a value\n";
      return kExitInvalidInput;
    }
    *target = args[++k];
  }
  if (date.empty() || out_path.empty()) {
    err << "qingshui hydro: --date and --out are required (see qingshui hydro --help)\n";
    return kExitInvalidInput;
  }
  const bool csv = EndsWith(out_path, ".csv");
  const bool h5 = EndsWith(out_path, ".h5") || EndsWith(out_path, ".hdf5");
  if (!csv && !h5) {
    err << "qingshui hydro: --out " << out_path << ": expected a .csv or .h5 file\n";
    return kExitInvalidInput;
  }
  if (network.empty()) network = DefaultNetworkPath();
  const Network net = LoadNetwork(network);
  hydro::DayOptions options;
  options.date = date;
  options.season = season;
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError(error);
  std::string rain_report;
  if (!rain.empty()) {
    const hydro::RainSeries series = hydro::ReadRainCsv(rain, net);
    const hydro::RainDay day = hydro::RainOnDay(net, series, date);
    hydro::AddRain(day, &options);
    rain_report = day.BriefReport();
  }
  const hydro::NetworkHydraulics h = hydro::SteadyHydraulics(net, options);
  const std::vector<hydro::Column> columns = hydro::SegmentTable(h);

  const std::filesystem::path path(out_path);
  if (std::error_code ec; std::filesystem::exists(path, ec) &&
                          !std::filesystem::is_regular_file(path, ec)) {
    throw std::runtime_error("cannot write " + out_path +
                             ": it exists and is not a regular file (not replaced)");
  }
  std::filesystem::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  try {
    if (csv) {
      WriteCsv(tmp, columns);
    } else {
      WriteHdf5(tmp, columns, h, network);
    }
    std::filesystem::rename(tmp, path);
  } catch (const std::exception& e) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw std::runtime_error("cannot write " + out_path + ": " + e.what() +
                             " (the previous file, if any, is unchanged)");
  }
  out << h.BriefReport() << rain_report;
  out << "wrote " << h.size() << " segments to " << out_path << "\n";
  return kExitOk;
}

}  // namespace qingshui::cli
