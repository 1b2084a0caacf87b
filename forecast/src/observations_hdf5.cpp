// Observations in HDF5: the long form of the CSV as 1-D datasets of equal length in the
// file's root group (or in /observations): time (text, ISO 8601 with offset), station,
// species (text), value (float, mg/L) and optionally flag (text). Text may be stored as
// variable- or fixed-length strings (h5py writes either), UTF-8 or ASCII.
#include <hdf5.h>

#include <cmath>
#include <cstring>

#include "qingshui/core/error.h"
#include "qingshui/forecast/inputs.h"
#include "qingshui/forecast/time.h"

namespace qingshui::forecast {

namespace {

struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  ~Handle() {
    if (id >= 0) close(id);
  }
};

// Silences HDF5's own error printing while we probe, restores it afterwards.
struct QuietHdf5 {
  H5E_auto2_t func = nullptr;
  void* data = nullptr;
  QuietHdf5() {
    H5Eget_auto2(H5E_DEFAULT, &func, &data);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5() { H5Eset_auto2(H5E_DEFAULT, func, data); }
};

hsize_t Length(hid_t dataset, const std::string& file, const std::string& name) {
  Handle space{H5Dget_space(dataset), H5Sclose};
  if (H5Sget_simple_extent_ndims(space.id) != 1) {
    throw DataError(file + ": " + name + ": [bad-header] expected a 1-D dataset");
  }
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.id, &n, nullptr);
  return n;
}

std::vector<std::string> ReadStrings(hid_t group, const std::string& name,
                                     const std::string& file) {
  Handle ds{H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw DataError(file + ": [bad-header] missing dataset '" + name + "'");
  const hsize_t n = Length(ds.id, file, name);
  Handle type{H5Dget_type(ds.id), H5Tclose};
  if (H5Tget_class(type.id) != H5T_STRING) {
    throw DataError(file + ": " + name + ": [bad-header] expected text (strings)");
  }
  std::vector<std::string> out(n);
  if (n == 0) return out;
  if (H5Tis_variable_str(type.id) > 0) {
    Handle mem{H5Tcopy(H5T_C_S1), H5Tclose};
    H5Tset_size(mem.id, H5T_VARIABLE);
    H5Tset_cset(mem.id, H5Tget_cset(type.id));
    std::vector<char*> ptrs(n, nullptr);
    if (H5Dread(ds.id, mem.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, ptrs.data()) < 0) {
      throw DataError(file + ": " + name + ": cannot read");
    }
    for (hsize_t i = 0; i < n; ++i) out[i] = ptrs[i] ? ptrs[i] : "";
    Handle space{H5Dget_space(ds.id), H5Sclose};
    H5Dvlen_reclaim(mem.id, space.id, H5P_DEFAULT, ptrs.data());
  } else {
    const size_t size = H5Tget_size(type.id);
    std::vector<char> buffer(n * size);
    if (H5Dread(ds.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()) < 0) {
      throw DataError(file + ": " + name + ": cannot read");
    }
    for (hsize_t i = 0; i < n; ++i) {
      const char* p = buffer.data() + i * size;
      out[i] = std::string(p, strnlen(p, size));
    }
  }
  return out;
}

std::vector<double> ReadNumbers(hid_t group, const std::string& name, const std::string& file) {
  Handle ds{H5Dopen2(group, name.c_str(), H5P_DEFAULT), H5Dclose};
  if (ds.id < 0) throw DataError(file + ": [bad-header] missing dataset '" + name + "'");
  const hsize_t n = Length(ds.id, file, name);
  Handle type{H5Dget_type(ds.id), H5Tclose};
  const H5T_class_t c = H5Tget_class(type.id);
  if (c != H5T_FLOAT && c != H5T_INTEGER) {
    throw DataError(file + ": " + name + ": [bad-header] expected numbers");
  }
  std::vector<double> out(n);
  if (n && H5Dread(ds.id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    throw DataError(file + ": " + name + ": cannot read");
  }
  return out;
}

}  // namespace

std::vector<Observation> ReadObservationsHdf5(const std::string& path) {
  QuietHdf5 quiet;
  Handle file{H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose};
  if (file.id < 0) throw ConfigError(path + ": cannot open as HDF5");
  hid_t where = file.id;
  Handle group{-1, H5Gclose};
  if (H5Lexists(file.id, "observations", H5P_DEFAULT) > 0) {
    group.id = H5Gopen2(file.id, "observations", H5P_DEFAULT);
    where = group.id;
  }
  const auto time = ReadStrings(where, "time", path);
  const auto station = ReadStrings(where, "station", path);
  const auto species = ReadStrings(where, "species", path);
  const auto value = ReadNumbers(where, "value", path);
  std::vector<std::string> flag;
  if (H5Lexists(where, "flag", H5P_DEFAULT) > 0) flag = ReadStrings(where, "flag", path);
  const size_t n = time.size();
  if (station.size() != n || species.size() != n || value.size() != n ||
      (!flag.empty() && flag.size() != n)) {
    throw DataError(path +
                    ": [bad-header] time, station, species, value (and flag) must have the "
                    "same length");
  }
  std::vector<Observation> out(n);
  for (size_t i = 0; i < n; ++i) {
    Observation& o = out[i];
    o.where = path + ":[" + std::to_string(i) + "]";
    std::string error;
    if (!ParseIsoTime(time[i], &o.time_utc_s, &error)) {
      throw DataError(path + ": time[" + std::to_string(i) + "]: [bad-time] " + error);
    }
    o.station = station[i];
    o.species = species[i];
    o.value_mg_l = value[i];
    if (!flag.empty()) o.flag = flag[i];
    if (std::isnan(o.value_mg_l) && o.flag.empty()) o.flag = "missing";
  }
  return out;
}

}  // namespace qingshui::forecast
