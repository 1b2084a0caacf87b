#include "qingshui/forecast/forecast_file.h"

#include <fcntl.h>
#include <hdf5.h>
#include <hdf5_hl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "qingshui/core/error.h"
#include "qingshui/forecast/time.h"

namespace qingshui::forecast {

namespace fs = std::filesystem;

namespace {

struct Handle {
  hid_t id = -1;
  herr_t (*close)(hid_t) = nullptr;
  Handle(hid_t i, herr_t (*c)(hid_t)) : id(i), close(c) {}
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() {
    if (id >= 0 && close) close(id);
  }
};

void Check(herr_t status, const std::string& what) {
  if (status < 0) throw Error("HDF5: cannot " + what);
}

// Writes datasets and attributes; keeps the coordinate datasets open so that variables
// can be attached to them as dimension scales.
class Writer {
 public:
  explicit Writer(hid_t file) : file_(file) {}
  ~Writer() {
    for (auto& [name, id] : scales_) H5Dclose(id);
  }

  void Text(hid_t object, const std::string& name, const std::string& value) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.id, value.empty() ? 1 : value.size());
    H5Tset_cset(type.id, H5T_CSET_UTF8);
    H5Tset_strpad(type.id, H5T_STR_NULLTERM);
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle attr(H5Acreate2(object, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
    if (attr.id < 0) throw Error("HDF5: cannot create attribute " + name);
    Check(H5Awrite(attr.id, type.id, value.c_str()), "write attribute " + name);
  }
  void Int(hid_t object, const std::string& name, const std::vector<long long>& values,
           hid_t file_type) {
    const hsize_t n = values.size();
    Handle space(n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), H5Sclose);
    Handle attr(H5Acreate2(object, name.c_str(), file_type, space.id, H5P_DEFAULT, H5P_DEFAULT),
                H5Aclose);
    if (attr.id < 0) throw Error("HDF5: cannot create attribute " + name);
    Check(H5Awrite(attr.id, H5T_NATIVE_LLONG, values.data()), "write attribute " + name);
  }
  void Number(hid_t object, const std::string& name, double value) {
    Handle space(H5Screate(H5S_SCALAR), H5Sclose);
    Handle attr(
        H5Acreate2(object, name.c_str(), H5T_IEEE_F64LE, space.id, H5P_DEFAULT, H5P_DEFAULT),
        H5Aclose);
    if (attr.id < 0) throw Error("HDF5: cannot create attribute " + name);
    Check(H5Awrite(attr.id, H5T_NATIVE_DOUBLE, &value), "write attribute " + name);
  }

  // A coordinate: a 1-D dataset that is its own dimension scale.
  void Coordinate(const std::string& name, const std::vector<double>& v, const std::string& units,
                  const std::string& description) {
    const hid_t ds = Create(name, {v.size()}, H5T_IEEE_F64LE);
    if (!v.empty())
      Check(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
            "write " + name);
    FinishCoordinate(name, ds, units, description);
  }
  void Coordinate(const std::string& name, const std::vector<long long>& v,
                  const std::string& units, const std::string& description) {
    const hid_t ds = Create(name, {v.size()}, H5T_STD_I64LE);
    if (!v.empty())
      Check(H5Dwrite(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
            "write " + name);
    FinishCoordinate(name, ds, units, description);
  }
  void Coordinate(const std::string& name, const std::vector<std::string>& v,
                  const std::string& description) {
    const hid_t ds = CreateStrings(name, {v.size()}, v);
    FinishCoordinate(name, ds, "", description);
  }

  void Variable(const std::string& name, const std::vector<std::string>& dims,
                const std::vector<double>& v, const std::string& units,
                const std::string& description, bool as_float32 = false) {
    const auto shape = Shape(name, dims, v.size());
    const hid_t ds = Create(name, shape, as_float32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE);
    Handle h(ds, H5Dclose);
    if (!v.empty())
      Check(H5Dwrite(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
            "write " + name);
    Finish(ds, dims, units, description);
  }
  void Variable(const std::string& name, const std::vector<std::string>& dims,
                const std::vector<long long>& v, const std::string& units,
                const std::string& description) {
    const auto shape = Shape(name, dims, v.size());
    const hid_t ds = Create(name, shape, H5T_STD_I64LE);
    Handle h(ds, H5Dclose);
    if (!v.empty())
      Check(H5Dwrite(ds, H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()),
            "write " + name);
    Finish(ds, dims, units, description);
  }
  void Variable(const std::string& name, const std::vector<std::string>& dims,
                const std::vector<std::string>& v, const std::string& description) {
    const auto shape = Shape(name, dims, v.size());
    const hid_t ds = CreateStrings(name, shape, v);
    Handle h(ds, H5Dclose);
    Finish(ds, dims, "", description);
  }

 private:
  std::vector<hsize_t> Shape(const std::string& name, const std::vector<std::string>& dims,
                             size_t size) {
    std::vector<hsize_t> shape;
    size_t n = 1;
    for (const auto& d : dims) {
      auto it = sizes_.find(d);
      if (it == sizes_.end()) throw Error("forecast file: " + name + ": unknown dimension " + d);
      shape.push_back(it->second);
      n *= it->second;
    }
    if (n != size) {
      throw Error("forecast file: " + name + ": " + std::to_string(size) +
                  " values for a shape of " + std::to_string(n));
    }
    return shape;
  }

  hid_t Create(const std::string& name, const std::vector<hsize_t>& shape, hid_t type) {
    Handle space(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr), H5Sclose);
    const hid_t ds =
        H5Dcreate2(file_, name.c_str(), type, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds < 0) throw Error("HDF5: cannot create dataset " + name);
    return ds;
  }

  hid_t CreateStrings(const std::string& name, const std::vector<hsize_t>& shape,
                      const std::vector<std::string>& v) {
    Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(type.id, H5T_VARIABLE);
    H5Tset_cset(type.id, H5T_CSET_UTF8);
    const hid_t ds = Create(name, shape, type.id);
    std::vector<const char*> ptrs;
    for (const auto& s : v) ptrs.push_back(s.c_str());
    if (!v.empty())
      Check(H5Dwrite(ds, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()), "write " + name);
    return ds;
  }

  void FinishCoordinate(const std::string& name, hid_t ds, const std::string& units,
                        const std::string& description) {
    Check(H5DSset_scale(ds, name.c_str()), "mark " + name + " as a dimension scale");
    if (!units.empty()) Text(ds, "units", units);
    Text(ds, "long_name", description);
    Handle space(H5Dget_space(ds), H5Sclose);
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.id, &n, nullptr);
    sizes_[name] = n;
    scales_[name] = ds;
  }

  void Finish(hid_t ds, const std::vector<std::string>& dims, const std::string& units,
              const std::string& description) {
    for (size_t i = 0; i < dims.size(); ++i) {
      Check(H5DSattach_scale(ds, scales_.at(dims[i]), static_cast<unsigned>(i)),
            "attach " + dims[i]);
    }
    if (!units.empty()) Text(ds, "units", units);
    Text(ds, "long_name", description);
  }

  hid_t file_;
  std::map<std::string, hsize_t> sizes_;
  std::map<std::string, hid_t> scales_;
};

std::string Timestamp() {
  const auto now = std::chrono::system_clock::now();
  return FormatIsoTime(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count(), 0);
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += (out.empty() ? "" : "\n") + l;
  return out;
}

// Removes `<name>.tmp-<pid>` files left by runs that died (their process is gone).
void RemoveStaleTemporaries(const fs::path& path) {
  std::error_code ec;
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const std::string prefix = path.filename().string() + ".tmp-";
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    char* end = nullptr;
    const long pid = std::strtol(pid_text.c_str(), &end, 10);
    if (pid_text.empty() || *end != '\0' || pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) == -1 && errno == ESRCH) fs::remove(entry.path(), ec);
  }
}

void TestHook() {
  if (const char* fail = std::getenv("QINGSHUI_FORECAST_TEST_FAIL_WRITE");
      fail && *fail && *fail != '0') {
    throw Error("forecast file: failing on purpose (QINGSHUI_FORECAST_TEST_FAIL_WRITE)");
  }
  if (const char* pause = std::getenv("QINGSHUI_FORECAST_TEST_PAUSE_S"); pause && *pause) {
    std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(pause)));
  }
}

void WriteContents(hid_t file, const ForecastResult& r, const Network& net,
                   const ForecastFileInfo& info) {
  Writer w(file);
  w.Text(file, "filetype", "qingshui-forecast");
  w.Int(file, "version", {kForecastFileMajor, kForecastFileMinor}, H5T_STD_I32LE);
  w.Text(file, "qingshui_version", info.software_version);
  w.Text(file, "created", Timestamp());
  w.Text(file, "as_of", FormatIsoTime(r.as_of_utc_s));
  w.Text(file, "time_zone",
         "+08:00 (China Standard Time): days, daily means and daily classes are local days");
  w.Text(file, "title", "Qingshui ensemble water-quality forecast");
  w.Text(file, "network", info.network_file);
  w.Text(file, "network_name", net.name);
  w.Text(file, "inputs", info.inputs_dir);
  w.Text(file, "inputs_description", info.inputs_description);
  w.Text(file, "synthetic_inputs", info.synthetic_inputs ? "true" : "false");
  w.Text(file, "standard", net.standard ? net.standard->id : "");
  w.Int(file, "members", {r.members}, H5T_STD_I32LE);
  w.Int(file, "groups", {r.groups}, H5T_STD_I32LE);
  w.Int(file, "seed", {static_cast<long long>(r.seed)}, H5T_STD_I64LE);
  w.Int(file, "hindcast_days", {r.hindcast_days}, H5T_STD_I32LE);
  w.Int(file, "assimilated", {r.analysis.assimilated ? 1 : 0}, H5T_STD_I32LE);
  w.Number(file, "apportionment_closure", r.apportionment_closure);
  w.Text(file, "warnings", Join([&] {
           std::vector<std::string> lines;
           for (const auto& x : r.warnings) lines.push_back(x.Format());
           return lines;
         }()));
  w.Text(file, "defaults_used", Join(r.defaults_used));
  w.Text(file, "method",
         "docs/forecast.md (hindcast, bounded Kalman analysis of source loads, ensemble)");
  w.Text(file, "format_documentation", "docs/formats/forecast.md");

  // Coordinates.
  std::vector<long long> times(r.times_utc_s.begin(), r.times_utc_s.end());
  w.Coordinate("time", times, "seconds since 1970-01-01 00:00:00", "output time (UTC)");
  w.Coordinate("station", r.stations, "station id (network)");
  w.Coordinate("species", r.species, "species id (network)");
  w.Coordinate("quantile", r.quantile_levels, "1", "ensemble quantile level");
  w.Coordinate("limit_class", r.limit_classes, "class whose limit is tested (standard)");
  w.Coordinate("class", r.classes, "water-quality class; the last is worse than every limit");
  w.Coordinate("day", r.days, "local calendar day (UTC+8), YYYY-MM-DD");
  w.Coordinate("contributor", r.contributors,
               "apportionment: headwater:<reach>, source id, or diffuse");
  TestHook();

  std::vector<std::string> local, names_en, names_zh, kinds;
  for (auto t : r.times_utc_s) local.push_back(FormatIsoTime(t));
  for (const auto& id : r.stations) {
    const Station* s = net.FindStation(id);
    names_en.push_back(s ? s->name_en : "");
    names_zh.push_back(s ? s->name_zh : "");
    kinds.push_back(s ? s->kind : "");
  }
  w.Variable("time_local", {"time"}, local, "output time, local (ISO 8601 with offset)");
  w.Variable("station_name", {"station"}, names_en, "station name (English)");
  w.Variable("station_name_zh", {"station"}, names_zh, "station name (Chinese)");
  w.Variable("station_kind", {"station"}, kinds, "station kind (network)");
  w.Variable("limit", {"limit_class", "species"}, r.limits_mg_l, "mg/L",
             "class limit of the standard (NaN: the standard has none)");
  w.Variable("quantiles", {"quantile", "time", "station", "species"}, r.quantiles, "mg/L",
             "ensemble quantiles of the concentration");
  w.Variable("p_exceed", {"limit_class", "time", "station", "species"}, r.p_exceed, "1",
             "probability that the concentration is worse than the class limit");
  w.Variable("mean", {"time", "station", "species"}, r.mean, "mg/L", "ensemble mean concentration");
  w.Variable("daily_quantiles", {"quantile", "day", "station", "species"}, r.daily_quantiles,
             "mg/L", "ensemble quantiles of the daily mean concentration");
  w.Variable("daily_p_exceed", {"limit_class", "day", "station", "species"}, r.daily_p_exceed, "1",
             "probability that the daily mean is worse than the class limit");
  w.Variable("daily_mean", {"day", "station", "species"}, r.daily_mean, "mg/L",
             "ensemble mean of the daily mean concentration");
  std::vector<std::string> cls;
  for (int c : r.daily_class) cls.push_back(r.classes.empty() ? "" : r.classes[c]);
  w.Variable("daily_class", {"day", "station"}, cls,
             "predicted daily class: median of the members' daily classes (worst assessed "
             "indicator of the daily mean)");
  w.Variable("daily_class_probability", {"day", "station"}, r.daily_class_probability, "1",
             "probability that the daily class is daily_class");
  w.Variable("class_probability", {"class", "day", "station"}, r.class_probability, "1",
             "probability of each daily class");
  w.Variable("p_class_worse", {"limit_class", "day", "station"}, r.p_class_worse, "1",
             "probability that the daily class is worse than the limit class");
  w.Variable("ratio_to_class_iii", {"day", "station", "species"}, r.ratio_to_class_iii, "1",
             "median daily mean / Class III limit (assessed indicators)");
  w.Variable("main_pollutants", {"day", "station"}, r.main_pollutants,
             "indicators worse than Class III, worst first by multiple of the limit (at most 3)");
  w.Variable("top_source", {"day", "station"}, r.top_source,
             "largest contributor to the deciding indicator's daily mean (control run)");
  w.Variable("control", {"time", "station", "species"}, r.control, "mg/L",
             "control run: analysed loads, unperturbed hydraulics and rates");
  w.Variable("contribution", {"day", "station", "species", "contributor"}, r.contribution, "mg/L",
             "daily mean of the control run apportioned to contributors (sums to the control)");
  w.Variable(
      "indicator", {"species"},
      [&] {
        std::vector<long long> v;
        for (const auto& s : r.species)
          v.push_back(std::count(r.indicators.begin(), r.indicators.end(), s));
        return v;
      }(),
      "1", "1 where the species is assessed for the daily class");

  // Analysis.
  const Analysis& a = r.analysis;
  w.Coordinate("component", a.components,
               "analysed load component: headwater:<reach> or source id");
  w.Coordinate("window", a.windows, "analysis window of local days (first/last)");
  w.Variable("load_factor", {"species", "window", "component"}, a.factor, "1",
             "analysed load factor (1 = recorded/scheduled/design load)");
  w.Variable("load_factor_sd", {"species", "window", "component"}, a.factor_sd, "1",
             "posterior standard deviation of the load factor");
  w.Variable("observations_used", {"species"},
             std::vector<long long>(a.observations_used.begin(), a.observations_used.end()), "1",
             "observations assimilated");
  w.Variable("rmse_prior", {"species"}, a.rmse_prior, "mg/L",
             "hindcast error at the observations, prior loads");
  w.Variable("rmse_analysis", {"species"}, a.rmse_analysis, "mg/L",
             "hindcast error at the observations, analysed loads");
  w.Coordinate("hindcast_time",
               std::vector<long long>(a.hindcast_times_utc_s.begin(), a.hindcast_times_utc_s.end()),
               "seconds since 1970-01-01 00:00:00", "hindcast output time (UTC)");
  w.Variable("hindcast_prior", {"hindcast_time", "station", "species"}, a.hindcast_prior, "mg/L",
             "hindcast with the recorded loads");
  w.Variable("hindcast_analysis", {"hindcast_time", "station", "species"}, a.hindcast_analysis,
             "mg/L", "hindcast with the analysed loads");
  std::vector<long long> index(a.obs_value.size());
  for (size_t i = 0; i < index.size(); ++i) index[i] = static_cast<long long>(i);
  w.Coordinate("observation", index, "", "assimilated observation");
  w.Variable("obs_time", {"observation"},
             std::vector<long long>(a.obs_time_utc_s.begin(), a.obs_time_utc_s.end()),
             "seconds since 1970-01-01 00:00:00", "observation time (UTC)");
  w.Variable("obs_station", {"observation"}, a.obs_station, "observation station");
  w.Variable("obs_species", {"observation"}, a.obs_species, "observation species");
  w.Variable("obs_value", {"observation"}, a.obs_value, "mg/L", "observed value");
  w.Variable("obs_error", {"observation"}, a.obs_error, "mg/L",
             "observation error (standard deviation)");
  w.Variable("obs_prior", {"observation"}, a.obs_prior, "mg/L",
             "hindcast at the observation, prior loads");
  w.Variable("obs_analysis", {"observation"}, a.obs_analysis, "mg/L",
             "hindcast at the observation, analysed loads");

  if (!r.member_values.empty()) {
    std::vector<long long> members(r.members);
    for (int m = 0; m < r.members; ++m) members[m] = m;
    w.Coordinate("member", members, "", "ensemble member");
    w.Variable("members", {"member", "time", "station", "species"}, r.member_values, "mg/L",
               "every member's concentration (float32)", true);
  }
}

}  // namespace

void WriteForecastFile(const std::string& path_text, const ForecastResult& r, const Network& net,
                       const ForecastFileInfo& info) {
  const fs::path path(path_text);
  if (std::error_code ec; fs::exists(path, ec) && !fs::is_regular_file(path, ec)) {
    throw Error("cannot write " + path_text +
                ": it exists and is not a regular file (not replaced)");
  }
  RemoveStaleTemporaries(path);
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  // The HDF5 file is built in memory (core driver, no backing store) and its image written
  // by us: libhdf5 1.10 cannot recover from a failed write to disk - the file it could not
  // close stays in its tables and crashes the process at exit (a full disk gave SIGSEGV
  // after the error message; tests/python/test_reliability.py). The temporary file is
  // opened first, so that a run killed while the file is built leaves only it.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    throw Error("cannot create " + tmp.string() + ": " + std::strerror(errno) +
                " (the previous " + path_text + ", if any, is unchanged)");
  }
  auto fail = [&](const std::string& why) {
    ::close(fd);
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw Error("cannot write " + path_text + ": " + why + " (the previous file, if any, is " +
                "unchanged)");
  };
  std::vector<char> image;
  try {
    Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    Check(H5Pset_fapl_core(fapl.id, 4 << 20, 0), "set the in-memory driver");
    // Creation order of attributes/links kept, netCDF-4 style (libver earliest is fine).
    Handle fcpl(H5Pcreate(H5P_FILE_CREATE), H5Pclose);
    H5Pset_link_creation_order(fcpl.id, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_attr_creation_order(fcpl.id, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    Handle file(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.id, fapl.id), H5Fclose);
    if (file.id < 0) throw Error("cannot create " + tmp.string() + " in memory");
    WriteContents(file.id, r, net, info);
    Check(H5Fflush(file.id, H5F_SCOPE_GLOBAL), "flush " + tmp.string());
    const ssize_t size = H5Fget_file_image(file.id, nullptr, 0);
    if (size <= 0) throw Error("HDF5: cannot get the file image");
    image.resize(static_cast<size_t>(size));
    if (H5Fget_file_image(file.id, image.data(), image.size()) != size) {
      throw Error("HDF5: cannot get the file image");
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  for (size_t done = 0; done < image.size();) {
    const ssize_t n = ::write(fd, image.data() + done, image.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail(std::strerror(n < 0 ? errno : EIO));
    done += static_cast<size_t>(n);
  }
  // Durable before it becomes visible: fsync the file, then rename over the old one.
  if (::fsync(fd) != 0) fail(std::strerror(errno));
  if (::close(fd) != 0) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw Error("cannot write " + path_text + ": " + std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    throw Error("cannot write " + path_text + ": " + ec.message());
  }
}

}  // namespace qingshui::forecast
