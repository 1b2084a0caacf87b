// Observations as the tracer reads them and `qingshui simulate` writes them: a long CSV table
// `time,station,species,value` (samples at stations), `time,reach,km,species,value` (mobile
// samples at any river point) or both in one file, `time,station,reach,km,species,value`
// (each row fills either station or reach and km), with ISO-8601 times (written with the
// +08:00 offset of Asia/Shanghai, which has no daylight saving) and values in mg/L.
//
// Times inside are seconds since 1970-01-01T00:00:00Z (UTC), as doubles.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "qingshui/core/network.h"

namespace qingshui::tracing {

// Local time of the networks Qingshui serves (China Standard Time, UTC+8, no DST).
constexpr double kLocalOffsetS = 8 * 3600.0;

// Parses "YYYY-MM-DD", "YYYY-MM-DDTHH:MM", "YYYY-MM-DDTHH:MM:SS" (a space may replace the
// T; fractional seconds allowed), followed by "Z", "+HH:MM", "+HHMM", "+HH" (or "-") or
// nothing; a time without an offset is local time (+08:00). False if malformed or out of
// range (month 13, 25:00, Feb 30, ...).
bool ParseIsoTime(const std::string& text, double* epoch_s);
// "2024-04-15T04:00:00+08:00" (seconds rounded to the nearest second).
std::string FormatIsoTime(double epoch_s);
// Local calendar date "YYYY-MM-DD" of an instant, and 00:00 local of a date (false if the
// date is malformed).
std::string LocalDate(double epoch_s);
bool LocalMidnight(const std::string& date, double* epoch_s);

struct Observation {
  double time_s = 0.0;  // epoch seconds
  std::string station;  // empty for a sample at a river point (reach, km)
  std::string species;
  double value_mg_l = 0.0;
  int line = 0;  // line in the file it was read from (0 if not read)
  // A point sample (mobile teams): its reach and km; empty / NaN at a station. Last, so that
  // {time, station, species, value, line} initializers stay as they were.
  std::string reach;
  double km = NAN;

  bool IsPoint() const { return station.empty(); }
};

// The name a point sample goes by in messages and reports: "REACH:KM" (km in the shortest
// text that reads back exactly), e.g. "sushui_middle:12.5".
std::string PointLabel(const std::string& reach, double km);
// Station id, or PointLabel of a point sample.
std::string SiteLabel(const Observation& o);

struct ObservationSet {
  std::string file;  // where it was read from ("" if built in memory)
  std::vector<Observation> rows;
};

// Reads the long CSV form. Header `time,station,species,value`, `time,reach,km,species,value`
// or `time,station,reach,km,species,value` (columns in any order, extra columns ignored; a
// `value_mg_l` column is accepted for `value`); with all three of station, reach and km each
// row fills either station or reach and km. Blank lines and lines starting with '#' are
// skipped; quoted fields allowed. Throws DataError naming the file, line and column for a
// malformed time, an empty or non-numeric, negative or non-finite value or km, a row with
// both or neither of station and reach+km, or a missing column. Whether the station, reach
// and km exist in the network is checked by their users (the tracer), as ConfigError.
ObservationSet ReadObservationsCsv(const std::string& path);

// The rows against a network: every species, station, reach and km exists (a km within its
// reach). Throws ConfigError naming the set's file, the row's line and the column — what the
// tracer checks first (and a trace session on each added batch, before it keeps it).
void CheckObservationsAgainst(const Network& network, const ObservationSet& observations);
ObservationSet ParseObservationsCsv(const std::string& text, const std::string& file_name);

// The same form, times with +08:00, values and km in the shortest text that reads back
// exactly: header `time,station,species,value` when every row is at a station (as before
// point samples existed), `time,reach,km,species,value` when every row is at a point, else
// `time,station,reach,km,species,value`.
std::string FormatObservationsCsv(const std::vector<Observation>& rows);
// Writes atomically (temporary file in the same directory, then rename). Throws
// std::runtime_error when the file cannot be written.
void WriteObservationsCsv(const std::string& path, const std::vector<Observation>& rows);

}  // namespace qingshui::tracing
