#include "qingshui/forecast/time.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "qingshui/core/error.h"

namespace qingshui::forecast {

// H. Hinnant, "chrono-Compatible Low-Level Date Algorithms" (days_from_civil,
// civil_from_days): exact for the proleptic Gregorian calendar.
std::int64_t DaysFromCivil(int y, int m, int d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void CivilFromDays(std::int64_t z, int* year, int* month, int* day) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<int>(y + (m <= 2));
  *month = static_cast<int>(m);
  *day = static_cast<int>(d);
}

namespace {

// Reads exactly `n` digits at text[*pos].
bool Digits(const std::string& text, size_t* pos, int n, int* value) {
  if (*pos + n > text.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    const char c = text[*pos + i];
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    v = v * 10 + (c - '0');
  }
  *pos += n;
  *value = v;
  return true;
}

bool ValidYmd(int y, int m, int d) {
  if (m < 1 || m > 12 || d < 1 || y < 1 || y > 9999) return false;
  int yy, mm, dd;
  CivilFromDays(DaysFromCivil(y, m, d), &yy, &mm, &dd);
  return yy == y && mm == m && dd == d;
}

}  // namespace

bool ParseDate(const std::string& text, std::int64_t* days) {
  size_t p = 0;
  int y, m, d;
  if (!Digits(text, &p, 4, &y) || p >= text.size() || text[p++] != '-' ||
      !Digits(text, &p, 2, &m) || p >= text.size() || text[p++] != '-' ||
      !Digits(text, &p, 2, &d) || p != text.size()) {
    return false;
  }
  if (!ValidYmd(y, m, d)) return false;
  *days = DaysFromCivil(y, m, d);
  return true;
}

std::string FormatDate(std::int64_t days) {
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02d", y, m, d);
  return buffer;
}

std::string AddDays(const std::string& date, int offset) {
  std::int64_t days;
  if (!ParseDate(date, &days)) throw ConfigError("expected a date YYYY-MM-DD, got '" + date + "'");
  return FormatDate(days + offset);
}

bool ParseIsoTime(const std::string& text, std::int64_t* utc_s, std::string* error,
                  int* offset_minutes) {
  auto fail = [&](const std::string& why) {
    if (error) *error = why + " (expected e.g. 2024-05-20T08:00:00+08:00)";
    return false;
  };
  size_t p = 0;
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!Digits(text, &p, 4, &y) || p >= text.size() || text[p++] != '-' ||
      !Digits(text, &p, 2, &mo) || p >= text.size() || text[p++] != '-' ||
      !Digits(text, &p, 2, &d)) {
    return fail("'" + text + "' is not an ISO 8601 date-time");
  }
  if (!ValidYmd(y, mo, d)) return fail("'" + text + "': no such date");
  if (p >= text.size()) return fail("'" + text + "' has no time of day and no offset");
  if (text[p] != 'T' && text[p] != ' ') return fail("'" + text + "': expected 'T' after the date");
  ++p;
  if (!Digits(text, &p, 2, &h) || p >= text.size() || text[p++] != ':' ||
      !Digits(text, &p, 2, &mi)) {
    return fail("'" + text + "': expected hh:mm after the date");
  }
  double fraction = 0.0;
  if (p < text.size() && text[p] == ':') {
    ++p;
    if (!Digits(text, &p, 2, &s)) return fail("'" + text + "': expected two digits of seconds");
    if (p < text.size() && (text[p] == '.' || text[p] == ',')) {
      ++p;
      double scale = 0.1;
      const size_t start = p;
      while (p < text.size() && std::isdigit(static_cast<unsigned char>(text[p]))) {
        fraction += scale * (text[p++] - '0');
        scale *= 0.1;
      }
      if (p == start) return fail("'" + text + "': expected digits after the decimal point");
    }
  }
  if (h > 24 || mi > 59 || s > 60 || (h == 24 && (mi || s))) {
    return fail("'" + text + "': time of day out of range");
  }
  if (p >= text.size()) {
    return fail("'" + text + "' has no UTC offset; write Z or +08:00 so the time is unambiguous");
  }
  int offset = 0;
  if (text[p] == 'Z' || text[p] == 'z') {
    ++p;
  } else if (text[p] == '+' || text[p] == '-') {
    const int sign = text[p++] == '-' ? -1 : 1;
    int oh, om = 0;
    if (!Digits(text, &p, 2, &oh)) return fail("'" + text + "': malformed UTC offset");
    if (p < text.size() && text[p] == ':') ++p;
    if (p < text.size() && !Digits(text, &p, 2, &om)) {
      return fail("'" + text + "': malformed UTC offset");
    }
    if (oh > 14 || om > 59) return fail("'" + text + "': UTC offset out of range");
    offset = sign * (oh * 60 + om);
  } else {
    return fail("'" + text + "': unexpected text after the time of day");
  }
  if (p != text.size()) return fail("'" + text + "': unexpected text after the offset");
  const std::int64_t local = DaysFromCivil(y, mo, d) * kSecondsPerDay + h * 3600 + mi * 60 +
                             std::min(s, 59) + static_cast<std::int64_t>(std::llround(fraction));
  *utc_s = local - static_cast<std::int64_t>(offset) * 60;
  if (offset_minutes) *offset_minutes = offset;
  return true;
}

std::string FormatIsoTime(std::int64_t utc_s, int offset_minutes) {
  const std::int64_t local = utc_s + static_cast<std::int64_t>(offset_minutes) * 60;
  std::int64_t days = local / kSecondsPerDay, sod = local % kSecondsPerDay;
  if (sod < 0) {
    sod += kSecondsPerDay;
    --days;
  }
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  char buffer[48];
  const int h = static_cast<int>(sod / 3600), mi = static_cast<int>(sod / 60 % 60),
            s = static_cast<int>(sod % 60);
  if (offset_minutes == 0) {
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, m, d, h, mi, s);
  } else {
    const int a = std::abs(offset_minutes);
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", y, m, d, h, mi,
                  s, offset_minutes < 0 ? '-' : '+', a / 60, a % 60);
  }
  return buffer;
}

std::int64_t LocalDay(std::int64_t utc_s) {
  const std::int64_t local = utc_s + kLocalOffsetMinutes * 60;
  return local >= 0 ? local / kSecondsPerDay : -((-local + kSecondsPerDay - 1) / kSecondsPerDay);
}

std::string LocalDate(std::int64_t utc_s) { return FormatDate(LocalDay(utc_s)); }

std::int64_t LocalMidnightUtc(std::int64_t local_day) {
  return local_day * kSecondsPerDay - kLocalOffsetMinutes * 60;
}

}  // namespace qingshui::forecast
