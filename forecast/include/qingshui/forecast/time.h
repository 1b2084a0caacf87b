// Times and calendar days of the forecast. Inside, a time is whole seconds since
// 1970-01-01T00:00:00Z (UTC; no leap seconds, as POSIX). Text at the edges is ISO 8601
// with an explicit offset ("2024-05-20T08:00:00+08:00", "...Z"). A network's calendar
// days (daily means, daily classes) are local days of UTC+8 (China Standard Time, no
// daylight saving), the convention of hydro::Simulation (t = 0 is 00:00 local).
#pragma once

#include <cstdint>
#include <string>

namespace qingshui::forecast {

// China Standard Time: the offset of the network's local day, in minutes east of UTC.
constexpr int kLocalOffsetMinutes = 8 * 60;
constexpr std::int64_t kSecondsPerDay = 86400;

// Parses an ISO 8601 date-time with an offset: YYYY-MM-DD[T| ]hh:mm[:ss[.fff]](Z|±hh:mm|±hhmm).
// Returns false with a reason in `error` (no offset, out-of-range field, trailing text).
// Fractions of a second are rounded to the nearest second. `offset_minutes` (optional)
// receives the offset the text carried.
bool ParseIsoTime(const std::string& text, std::int64_t* utc_s, std::string* error,
                  int* offset_minutes = nullptr);

// "2024-05-20T08:00:00+08:00" for a UTC time shown at `offset_minutes`.
std::string FormatIsoTime(std::int64_t utc_s, int offset_minutes = kLocalOffsetMinutes);

// Days since 1970-01-01 of a proleptic Gregorian date, and back (Hinnant's algorithms).
std::int64_t DaysFromCivil(int year, int month, int day);
void CivilFromDays(std::int64_t days, int* year, int* month, int* day);

// YYYY-MM-DD → days since 1970-01-01; false for anything else (incl. 2024-02-30).
bool ParseDate(const std::string& text, std::int64_t* days);
std::string FormatDate(std::int64_t days);
std::string AddDays(const std::string& date, int offset);  // throws ConfigError on a bad date

// The local (UTC+8) calendar day of a UTC time, as days since 1970-01-01 and as text.
std::int64_t LocalDay(std::int64_t utc_s);
std::string LocalDate(std::int64_t utc_s);
// UTC time of 00:00 local on a local day.
std::int64_t LocalMidnightUtc(std::int64_t local_day);

}  // namespace qingshui::forecast
