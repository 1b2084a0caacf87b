// The forecast file (docs/formats/forecast.md): HDF5, self-describing (root attributes
// filetype = "qingshui-forecast", version, software version, creation and as-of times),
// laid out as netCDF-4 — every dimension is a coordinate dataset marked as an HDF5
// dimension scale and attached to the variables — so that h5py and
// xarray.open_dataset(path, engine="h5netcdf") both read it with named dimensions.
#pragma once

#include <string>

#include "qingshui/core/network.h"
#include "qingshui/forecast/forecast.h"

namespace qingshui::forecast {

constexpr int kForecastFileMajor = 1;
constexpr int kForecastFileMinor = 0;

struct ForecastFileInfo {
  std::string network_file;
  std::string inputs_dir;
  std::string software_version;
  bool synthetic_inputs = false;
  std::string inputs_description;
};

// Writes the file atomically: everything goes to `path`.tmp-<pid> in the same directory,
// which is flushed, synced and renamed over `path` only when complete; on any failure the
// temporary file is removed and `path` is left as it was. Temporary files of earlier runs
// that died (their process no longer exists) are removed first. Throws Error on failure.
//
// Test hooks (environment): QINGSHUI_FORECAST_TEST_PAUSE_S=x sleeps x seconds after the
// temporary file holds its first datasets (so a test can kill the process mid-write);
// QINGSHUI_FORECAST_TEST_FAIL_WRITE=1 fails at the same point.
void WriteForecastFile(const std::string& path, const ForecastResult& result,
                       const Network& network, const ForecastFileInfo& info);

}  // namespace qingshui::forecast
