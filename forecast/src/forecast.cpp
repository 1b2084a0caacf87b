#include "qingshui/forecast/forecast.h"

#include <omp.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "assimilation.h"
#include "period.h"
#include "qingshui/core/error.h"
#include "qingshui/core/grid.h"
#include "qingshui/core/transport.h"
#include "qingshui/forecast/random.h"
#include "qingshui/forecast/time.h"
#include "qingshui/hydro/rain.h"

namespace qingshui::forecast {

using detail::ComponentSet;
using detail::Period;
using detail::PeriodSpec;

namespace {

constexpr double kDay = 86400.0;
const double kNaN = std::numeric_limits<double>::quiet_NaN();

bool Fail(std::string* error, const std::string& what) {
  if (error) *error = what;
  return false;
}

bool NonNegative(double x) { return std::isfinite(x) && x >= 0; }

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Runs independent tasks on `threads` threads (largest first is the caller's order).
// Each task must write only its own outputs; the first exception is rethrown. The CPU
// time of each task goes to `cpu_s` (if given).
// CPU time of tasks that ran on the calling thread (so that its serial part can be told
// apart); only touched by that thread.
thread_local double tasks_on_this_thread_s = 0.0;

template <typename F>
void RunTasks(int count, int threads, F&& task, std::vector<double>* cpu_s = nullptr) {
  std::exception_ptr error;
  if (cpu_s) cpu_s->assign(count, 0.0);
  double* caller_tasks = &tasks_on_this_thread_s;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && count > 1)
  for (int i = 0; i < count; ++i) {
    const double c0 = ThreadCpuSeconds();
    try {
      task(i);
      const double used = ThreadCpuSeconds() - c0;
      if (cpu_s) (*cpu_s)[i] = used;
      if (omp_get_thread_num() == 0) *caller_tasks += used;
    } catch (...) {
#pragma omp critical(qingshui_forecast_error)
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

// Transport options of every run: one thread per run (runs are the parallel tasks), the
// a-priori positive implicit sub-stepping (provably positive; every member advanced by the
// same linear operator; on the default forecast 6.2 s of CPU against 7.8 s for checked
// full steps with fallbacks).
transport::TransportOptions RunOptions() {
  transport::TransportOptions t;
  t.num_threads = 1;
  t.adaptive_implicit = false;
  t.store_fields = false;
  return t;
}

std::vector<double> OutputTimes(double start, double end, double interval) {
  std::vector<double> out = {start};
  for (double t = (std::floor(start / interval) + 1) * interval; t < end - 1e-6; t += interval) {
    out.push_back(t);
  }
  if (end > start) out.push_back(end);
  return out;
}

// Station value at time t by linear interpolation between output times.
double Interpolate(const std::vector<double>& times, const std::vector<double>& values,
                   size_t offset, size_t stride, double t) {
  auto it = std::upper_bound(times.begin(), times.end(), t);
  if (it == times.begin()) return values[offset];
  if (it == times.end()) return values[offset + (times.size() - 1) * stride];
  const size_t i1 = static_cast<size_t>(it - times.begin()), i0 = i1 - 1;
  const double w = (t - times[i0]) / (times[i1] - times[i0]);
  return (1 - w) * values[offset + i0 * stride] + w * values[offset + i1 * stride];
}

// Steady state of each member's forcing at the problem's start (main channel and storage
// zone), in member order; members split over tasks.
void SteadyInitialStates(transport::TransportProblem* problem, int threads,
                         std::vector<double>* cpu_s = nullptr) {
  const int m = static_cast<int>(problem->members.size());
  const int chunks = std::max(1, std::min(m, threads));
  RunTasks(
      chunks, threads,
      [&](int c) {
        transport::TransportProblem part = *problem;
        const int m0 = m * c / chunks, m1 = m * (c + 1) / chunks;
        part.members.assign(problem->members.begin() + m0, problem->members.begin() + m1);
        transport::TransportOptions o = RunOptions();
        o.steady_state = true;
        o.store_fields = true;
        const transport::TransportResult r = transport::TransportSolver(o).Run(part);
        const size_t per = static_cast<size_t>(r.num_segments) * r.num_species;
        for (int j = 0; j < m1 - m0; ++j) {
          auto& f = problem->members[m0 + j];
          const size_t offset = static_cast<size_t>(j) * r.num_times * per;
          f.initial_concentration_g_m3.assign(r.concentration_g_m3.begin() + offset,
                                              r.concentration_g_m3.begin() + offset + per);
          f.initial_storage_g_m3.assign(r.storage_g_m3.begin() + offset,
                                        r.storage_g_m3.begin() + offset + per);
        }
      },
      cpu_s);
}

// Quantile of sorted values (linear interpolation between order statistics, Hyndman &
// Fan 1996 type 7 — numpy's default).
double SortedQuantile(const std::vector<double>& sorted, double q) {
  if (sorted.size() == 1) return sorted[0];
  const double h = (sorted.size() - 1) * q;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

double SourceSigma(const Source* s, double plant, double outfall, double other) {
  if (!s) return other;
  switch (s->kind) {
    case SourceKind::kTreatmentPlant:
      return plant;
    case SourceKind::kIndustrialOutfall:
      return outfall;
    default:
      return other;
  }
}

// Whether `value` is worse than the limit of an indicator (above a max, below a min).
bool Worse(const Indicator& ind, double value, double limit) {
  return ind.sense == "min" ? value < limit : value > limit;
}

}  // namespace

bool Perturbations::IsValid(std::string* error) const {
  for (double x :
       {plant_load_sigma, outfall_load_sigma, other_load_sigma, headwater_sigma, flow_sigma,
        velocity_sigma, dispersion_sigma, decay_sigma, rain_sigma, temperature_sd_c}) {
    if (!NonNegative(x) || x > 5)
      return Fail(error, "perturbations: standard deviations must be 0 to 5");
  }
  if (!(load_autocorrelation >= 0 && load_autocorrelation < 1)) {
    return Fail(error, "perturbations.load_autocorrelation: expected 0 <= r < 1");
  }
  if (!(species_correlation >= 0 && species_correlation <= 1)) {
    return Fail(error, "perturbations.species_correlation: expected 0 to 1");
  }
  if (!(unforecast_rain_fraction >= 0 && unforecast_rain_fraction <= 1)) {
    return Fail(error, "perturbations.unforecast_rain_fraction: expected 0 to 1");
  }
  return true;
}

bool AssimilationOptions::IsValid(std::string* error) const {
  if (recent_days < 0) return Fail(error, "assimilation.recent_days: expected >= 0");
  for (double x : {plant_prior_sigma, outfall_prior_sigma, other_prior_sigma, headwater_prior_sigma,
                   change_sigma}) {
    if (!(x > 0) || !std::isfinite(x))
      return Fail(error, "assimilation: prior standard deviations must be > 0");
  }
  if (!(max_factor > 1) || !std::isfinite(max_factor)) {
    return Fail(error, "assimilation.max_factor: expected > 1");
  }
  if (!NonNegative(relative_error) || !NonNegative(floor_fraction) || !(floor_mg_l > 0) ||
      !(suspect_factor >= 1)) {
    return Fail(
        error,
        "assimilation: observation errors must be >= 0 (floor_mg_l > 0, suspect_factor >= 1)");
  }
  if (relative_error == 0 && floor_fraction == 0) {
    return Fail(error, "assimilation: relative_error and floor_fraction cannot both be 0");
  }
  return true;
}

bool ForecastOptions::IsValid(std::string* error) const {
  if (as_of_utc_s <= 0) return Fail(error, "as_of: required (an ISO 8601 time with offset)");
  if (days < 1 || days > 30)
    return Fail(error, "days: expected 1 to 30, got " + std::to_string(days));
  if (hindcast_days < 1 || hindcast_days > 60) {
    return Fail(error, "hindcast_days: expected 1 to 60, got " + std::to_string(hindcast_days));
  }
  if (members < 1 || members > 100000) {
    return Fail(error, "members: expected 1 to 100000, got " + std::to_string(members));
  }
  if (groups < 1) return Fail(error, "groups: expected >= 1");
  if (threads < 0) return Fail(error, "threads: expected >= 0 (0 = all)");
  if (!(time_step_s > 0) || time_step_s > kDay)
    return Fail(error, "time_step_s: expected 0 < dt <= 86400");
  if (!(output_interval_s >= 60) || std::fmod(kDay, output_interval_s) != 0) {
    return Fail(error, "output_interval_s: expected a divisor of a day of at least 60 s");
  }
  if (quantiles.empty()) return Fail(error, "quantiles: expected at least one level");
  for (size_t i = 0; i < quantiles.size(); ++i) {
    if (!(quantiles[i] > 0 && quantiles[i] < 1) || (i && quantiles[i] <= quantiles[i - 1])) {
      return Fail(error, "quantiles: expected increasing levels inside (0, 1)");
    }
  }
  return perturbations.IsValid(error) && assimilation.IsValid(error);
}

ForecastOptions OptionsFromInputs(const ForecastInputs& in, std::vector<std::string>* defaults) {
  ForecastOptions o;
  if (in.settings.days) o.days = *in.settings.days;
  if (in.settings.hindcast_days) o.hindcast_days = *in.settings.hindcast_days;
  if (in.settings.members) o.members = *in.settings.members;
  if (in.settings.groups) o.groups = *in.settings.groups;
  if (in.settings.seed) o.seed = *in.settings.seed;
  o.indicators = in.settings.indicators;
  if (in.as_of_utc_s) {
    o.as_of_utc_s = *in.as_of_utc_s;
  } else if (!in.observations.empty()) {
    std::int64_t latest = in.observations.front().time_utc_s;
    for (const auto& x : in.observations) latest = std::max(latest, x.time_utc_s);
    o.as_of_utc_s = latest;
    if (defaults) {
      defaults->push_back(
          "as-of time: none given (no --start, no as_of in the manifest); the "
          "latest observation, " +
          FormatIsoTime(latest) + ", is used");
    }
  }
  return o;
}

std::string ForecastResult::BriefReport() const {
  std::ostringstream out;
  out << "forecast as of " << FormatIsoTime(as_of_utc_s) << ": " << days.size() << " days ("
      << (days.empty() ? "" : days.front() + " to " + days.back()) << "), " << stations.size()
      << " stations, " << members << " members in " << groups << " hydraulic groups, seed " << seed
      << "\n";
  if (analysis.assimilated) {
    out << "analysis over " << hindcast_days << " hindcast days:";
    for (size_t k = 0; k < species.size(); ++k) {
      if (analysis.observations_used[k] == 0) continue;
      out << " " << species[k] << " " << analysis.observations_used[k] << " obs, rmse "
          << analysis.rmse_prior[k] << " -> " << analysis.rmse_analysis[k] << " mg/L;";
    }
    out << "\n";
  } else {
    out << "analysis: no observations assimilated (prior loads)\n";
  }
  out << "apportionment closure before reconciling: " << apportionment_closure << "\n";
  out.precision(3);
  out << "time: " << wall_time_s << " s (hindcast " << hindcast_time_s << " s, ensemble "
      << ensemble_time_s << " s) on " << threads << " thread(s)\n";
  return out.str();
}

ForecastResult RunForecast(const Network& net, const ForecastInputs& in, const ForecastOptions& o) {
  const auto wall0 = std::chrono::steady_clock::now();
  const double cpu0 = ThreadCpuSeconds() - tasks_on_this_thread_s;
  std::string error;
  if (!o.IsValid(&error)) throw ConfigError("forecast options: " + error);
  auto progress = [&](const std::string& line) {
    if (o.progress) o.progress(line);
  };
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();

  ForecastResult res;
  res.as_of_utc_s = o.as_of_utc_s;
  res.seed = o.seed;
  res.hindcast_days = o.hindcast_days;
  res.threads = threads;
  res.quantile_levels = o.quantiles;
  res.warnings = in.warnings;
  res.indicators = AssessedIndicators(net, o.indicators);

  const NetworkGrid grid = BuildGrid(net);
  const int n_seg = grid.size();
  const int ns = static_cast<int>(net.species.size());
  for (const auto& s : net.species) res.species.push_back(s.id);
  std::vector<int> station_segments;
  std::vector<const Station*> stations;
  for (const auto& st : net.stations) {
    if (st.kind == "outfall_monitor") continue;
    stations.push_back(&st);
    res.stations.push_back(st.id);
    station_segments.push_back(grid.SegmentAt(st.reach, st.km));
  }
  const int n_st = static_cast<int>(stations.size());
  if (n_st == 0)
    throw ConfigError(net.file + ": stations: the network has no river station to forecast");

  // ---- Calendar ----
  const std::int64_t as_of = o.as_of_utc_s;
  const std::int64_t as_of_day = LocalDay(as_of);
  const double tod = static_cast<double>(as_of - LocalMidnightUtc(as_of_day));
  const int partial = tod > 0 ? 1 : 0;
  const int H = o.hindcast_days, N = o.days;
  const std::int64_t hc_first = as_of_day - H;
  const int hc_days = H + partial;
  const double hc_end = H * kDay + tod;
  const std::int64_t fc_first = as_of_day;
  const int fc_days = N + partial;
  const double fc_start = tod, fc_end = fc_days * kDay;
  const int all_days = H + fc_days;  // hc_first .. fc_first + fc_days - 1
  for (int j = 0; j < N; ++j) res.days.push_back(FormatDate(fc_first + partial + j));

  // Observations first: an unknown station or species fails before any computing.
  std::vector<Issue> obs_issues;
  const std::vector<Observation> obs =
      ValidateObservations(in.observations, net, LocalMidnightUtc(hc_first), as_of, &obs_issues);
  res.warnings.insert(res.warnings.end(), obs_issues.begin(), obs_issues.end());
  if (in.observations_file.empty() && in.observations.empty()) {
    res.defaults_used.push_back(
        "observations: none; the forecast starts from the hindcast with "
        "the recorded loads (no assimilation)");
  }

  // ---- Standard: limits and classes ----
  const Standard* standard = net.standard ? &*net.standard : nullptr;
  if (standard) {
    res.limit_classes = standard->classes;
    res.classes = standard->classes;
    res.classes.push_back("劣" + standard->classes.back());
  }
  const int n_lim = static_cast<int>(res.limit_classes.size());
  res.limits_mg_l.assign(static_cast<size_t>(n_lim) * ns, kNaN);
  std::vector<const Indicator*> indicator_of(ns, nullptr);
  for (int k = 0; k < ns; ++k) {
    if (!standard) break;
    indicator_of[k] = standard->Find(res.species[k]);
    if (!indicator_of[k]) continue;
    for (int c = 0; c < n_lim && c < static_cast<int>(indicator_of[k]->limits_mg_l.size()); ++c) {
      res.limits_mg_l[c * ns + k] = indicator_of[k]->limits_mg_l[c];
    }
  }
  int class_iii = -1;
  for (int c = 0; c < n_lim; ++c) {
    if (res.limit_classes[c] == "III") class_iii = c;
  }
  if (class_iii < 0 && n_lim > 0) class_iii = (n_lim - 1) / 2;
  std::vector<int> assessed;  // species indices
  for (const auto& id : res.indicators) {
    assessed.push_back(static_cast<int>(std::find(res.species.begin(), res.species.end(), id) -
                                        res.species.begin()));
  }

  // ---- Day networks (records, schedule, scenario) and the defaults they fell back to ----
  std::vector<Network> day_nets;
  day_nets.reserve(all_days);
  for (int d = 0; d < all_days; ++d) day_nets.push_back(detail::DayNetwork(net, in, hc_first + d));
  {
    std::set<std::string> with_records;
    std::int64_t last_record = INT64_MIN;
    for (const auto& r : in.plant_records) {
      with_records.insert(r.source);
      last_record = std::max(last_record, r.day);
    }
    std::vector<std::string> without;
    for (const auto& s : net.sources) {
      if (s.kind != SourceKind::kTreatmentPlant && s.kind != SourceKind::kIndustrialOutfall)
        continue;
      if (s.design_flow_m3s <= 0) continue;  // discharges only in storms (reuse plants)
      bool active = false;
      for (int d = 0; d < all_days && !active; ++d) {
        active = hydro::SourceActivityOn(day_nets[d], *day_nets[d].FindSource(s.id),
                                         FormatDate(hc_first + d))
                     .active;
      }
      if (active && !with_records.count(s.id)) without.push_back(s.id);
    }
    if (in.plant_records.empty()) {
      res.defaults_used.push_back(
          "plant records: none; every source discharges its design flow at its network effluent "
          "concentration");
    } else {
      if (last_record < fc_first + fc_days - 1) {
        res.defaults_used.push_back(
            "plant records: the last record is of " + FormatDate(last_record) + "; from " +
            FormatDate(last_record + 1) + " to " + FormatDate(fc_first + fc_days - 1) +
            " each source keeps its last recorded flow and effluent (persistence), changed only "
            "by the schedule and scenario");
      }
      if (!without.empty()) {
        std::string list;
        for (const auto& s : without) list += (list.empty() ? "" : ", ") + s;
        res.defaults_used.push_back("plant records: none for " + list +
                                    "; design flow and network effluent concentration used");
      }
      // Sources whose records stop before the others': persistence starts earlier.
      std::map<std::string, std::int64_t> last_of;
      for (const auto& r : in.plant_records) {
        auto it = last_of.find(r.source);
        if (it == last_of.end() || it->second < r.day) last_of[r.source] = r.day;
      }
      for (const auto& [id, day] : last_of) {
        if (day < last_record && day >= hc_first) {
          res.defaults_used.push_back("plant records: " + id + " has none after " +
                                      FormatDate(day) + "; its last record persists from " +
                                      FormatDate(day + 1));
        }
      }
    }
    if (in.schedule_file.empty()) res.defaults_used.push_back("schedule: none (no planned events)");
  }

  // ---- Weather: water temperature and rain ----
  const bool have_climatology = !in.climatology.file.empty();
  std::vector<double> temperature(all_days);
  {
    std::vector<std::string> clim_days;
    for (int d = 0; d < all_days; ++d) {
      const std::int64_t day = hc_first + d;
      auto it = in.weather.water_temperature_c.find(day);
      if (it != in.weather.water_temperature_c.end()) {
        temperature[d] = it->second;
        continue;
      }
      int y, m, dd;
      CivilFromDays(day, &y, &m, &dd);
      temperature[d] = have_climatology ? in.climatology.water_temperature_c[m - 1] : 20.0;
      clim_days.push_back(FormatDate(day));
    }
    if (!clim_days.empty()) {
      res.defaults_used.push_back(
          "water temperature: " +
          std::string(in.weather.file.empty() ? "no weather file"
                                              : "no water_temperature_c in " + in.weather.file) +
          " for " + std::to_string(clim_days.size()) + " day(s) (" + clim_days.front() + " to " +
          clim_days.back() + "); " +
          (have_climatology ? "monthly climatology of " + in.climatology.file
                            : std::string("no climatology either: 20 °C (the rates' reference)")));
    }
  }
  // A full rain series over all days (0 where the weather file has none), catchment order
  // of the network.
  hydro::RainSeries rain_base;
  rain_base.file = in.weather.file;
  for (const auto& c : net.catchments) rain_base.catchments.push_back(c.id);
  const int n_catch = static_cast<int>(rain_base.catchments.size());
  {
    int missing = 0;
    std::string first_missing, last_missing;
    for (int d = 0; d < all_days; ++d) {
      const std::string date = FormatDate(hc_first + d);
      rain_base.dates.push_back(date);
      const int wd = in.weather.rain ? in.weather.rain->DayIndex(date) : -1;
      if (wd < 0) {
        ++missing;
        if (first_missing.empty()) first_missing = date;
        last_missing = date;
      }
      for (const auto& c : rain_base.catchments) {
        rain_base.rain_mm.push_back(wd >= 0 ? in.weather.rain->RainMm(wd, c) : 0.0);
      }
    }
    if (missing > 0 && n_catch > 0) {
      res.defaults_used.push_back(
          "rain: " +
          std::string(in.weather.rain ? "the weather file has no rain" : "no rain data") + " for " +
          std::to_string(missing) + " day(s) (" + first_missing + " to " + last_missing +
          "); dry weather assumed" +
          (have_climatology && o.perturbations.unforecast_rain_fraction > 0
               ? std::string("; the ensemble adds rain the forecast may have missed (climatology)")
               : std::string()));
    }
  }
  auto rain_map = [&](const hydro::RainSeries& series) {
    std::map<std::int64_t, hydro::RainDay> out;
    if (n_catch == 0) return out;
    const auto days = hydro::RainDays(net, series);
    for (int d = 0; d < all_days; ++d) out[hc_first + d] = days[d];
    return out;
  };
  const auto rain_nominal = rain_map(rain_base);

  // ---- Periods ----
  auto spec_for = [&](bool hindcast) {
    PeriodSpec s;
    s.time_step_s = o.time_step_s;
    if (hindcast) {
      s.first_day = hc_first;
      s.days = hc_days;
      s.start_s = 0.0;
      s.end_s = hc_end;
      s.temperature_c.assign(temperature.begin(), temperature.begin() + hc_days);
    } else {
      s.first_day = fc_first;
      s.days = fc_days;
      s.start_s = fc_start;
      s.end_s = fc_end;
      s.temperature_c.assign(temperature.begin() + H, temperature.end());
    }
    s.output_times_s = OutputTimes(s.start_s, s.end_s, o.output_interval_s);
    s.rain = &rain_nominal;
    return s;
  };
  auto nets_for = [&](bool hindcast) {
    return hindcast ? std::vector<Network>(day_nets.begin(), day_nets.begin() + hc_days)
                    : std::vector<Network>(day_nets.begin() + H, day_nets.end());
  };
  const std::vector<Network> hc_nets = nets_for(true), fc_nets = nets_for(false);

  PeriodSpec hc_spec = spec_for(true);
  hc_spec.zero_lateral_concentration = true;
  const Period hc_components = detail::BuildPeriod(hc_nets, grid, station_segments, hc_spec);
  hc_spec.zero_lateral_concentration = false;
  const Period hc_diffuse = detail::BuildPeriod(hc_nets, grid, station_segments, hc_spec);
  PeriodSpec fc_spec = spec_for(false);
  fc_spec.zero_lateral_concentration = true;
  const Period fc_components = detail::BuildPeriod(fc_nets, grid, station_segments, fc_spec);
  fc_spec.zero_lateral_concentration = false;
  const Period fc_nominal = detail::BuildPeriod(fc_nets, grid, station_segments, fc_spec);

  // Components: every headwater, then every source with mass in the hindcast or forecast.
  ComponentSet comps;
  comps.headwater_reaches = hc_components.headwater_reaches;
  for (const auto& s : net.sources) {
    if (hc_components.loads.count(s.id) || fc_components.loads.count(s.id))
      comps.sources.push_back(s.id);
  }
  const int nc = comps.size();
  const int nh = static_cast<int>(comps.headwater_reaches.size());
  std::vector<std::string> comp_ids;
  for (const auto& r : comps.headwater_reaches) comp_ids.push_back("headwater:" + r);
  for (const auto& s : comps.sources) comp_ids.push_back(s);
  res.analysis.components = comp_ids;

  // Windows of the analysis.
  const int recent = o.assimilation.recent_days;
  const int W = (recent > 0 && recent < hc_days) ? 2 : 1;
  auto window_of = [&](int d) { return (W == 2 && d >= hc_days - recent) ? 1 : 0; };
  for (int w = 0; w < W; ++w) {
    int d0 = hc_days, d1 = -1;
    for (int d = 0; d < hc_days; ++d) {
      if (window_of(d) == w) {
        d0 = std::min(d0, d);
        d1 = std::max(d1, d);
      }
    }
    res.analysis.windows.push_back(FormatDate(hc_first + d0) + "/" + FormatDate(hc_first + d1));
  }
  const int P = nc * W;  // parameters per species: index w * nc + c

  // ---- Hindcast: one member per (component, window), and the diffuse inflow ----
  const auto hc0 = std::chrono::steady_clock::now();
  progress("hindcast: " + FormatDate(hc_first) + " to " + FormatIsoTime(as_of) + ", " +
           std::to_string(P) + " component runs + diffuse inflow");
  transport::TransportProblem hc_problem = hc_components.problem;
  for (int w = 0; w < W; ++w) {
    for (int c = 0; c < nc; ++c) {
      std::vector<std::vector<double>> f(
          nc, std::vector<double>(static_cast<size_t>(hc_days) * ns, 0.0));
      for (int d = 0; d < hc_days; ++d) {
        if (window_of(d) != w) continue;
        for (int k = 0; k < ns; ++k) f[c][d * ns + k] = 1.0;
      }
      hc_problem.members.push_back(detail::MakeForcing(hc_components, comps, f));
    }
  }
  transport::TransportProblem diffuse_problem = hc_diffuse.problem;
  diffuse_problem.members.push_back(detail::MakeForcing(
      hc_diffuse, comps,
      std::vector<std::vector<double>>(nc, std::vector<double>(hc_days * ns, 0.0))));
  res.phases.push_back({"hindcast steady states", {}});
  SteadyInitialStates(&hc_problem, threads, &res.phases.back().task_cpu_s);
  res.phases.push_back({"hindcast diffuse steady state", {}});
  SteadyInitialStates(&diffuse_problem, 1, &res.phases.back().task_cpu_s);
  res.phases.push_back({"hindcast", {}});

  transport::TransportResult hc_series, hc_final, diffuse_run;
  RunTasks(
      3, threads,
      [&](int task) {
        transport::TransportOptions t = RunOptions();
        if (task == 0) {
          hc_series = transport::TransportSolver(t).Run(hc_problem);
        } else if (task == 1) {
          transport::TransportProblem p = hc_problem;
          p.output_times_s = {hc_end};
          t.store_fields = true;
          hc_final = transport::TransportSolver(t).Run(p);
        } else {
          // One member: keeping its fields at every output time is cheap.
          t.store_fields = true;
          diffuse_run = transport::TransportSolver(t).Run(diffuse_problem);
        }
      },
      &res.phases.back().task_cpu_s);
  const std::vector<double>& hc_times = hc_series.times_s;
  const int hc_T = hc_series.num_times;
  // Final fields: component (c, w) → [segment * ns + k]; diffuse likewise.
  const size_t field = static_cast<size_t>(n_seg) * ns;
  auto final_field = [&](int member, bool storage) {
    const auto& src = storage ? hc_final.storage_g_m3 : hc_final.concentration_g_m3;
    return src.begin() + static_cast<size_t>(member) * field;  // one output time
  };
  const size_t diffuse_last = static_cast<size_t>(diffuse_run.num_times - 1) * field;
  res.hindcast_time_s = Seconds(hc0);

  // ---- Analysis ----
  Analysis& an = res.analysis;
  an.factor.assign(static_cast<size_t>(ns) * P, 1.0);
  an.factor_sd.assign(static_cast<size_t>(ns) * P, 0.0);
  an.observations_used.assign(ns, 0);
  an.rmse_prior.assign(ns, kNaN);
  an.rmse_analysis.assign(ns, kNaN);
  std::vector<Eigen::MatrixXd> sample_transform(ns);
  auto station_index = [&](const std::string& id) {
    return static_cast<int>(std::find(res.stations.begin(), res.stations.end(), id) -
                            res.stations.begin());
  };
  auto species_index = [&](const std::string& id) {
    return static_cast<int>(std::find(res.species.begin(), res.species.end(), id) -
                            res.species.begin());
  };
  const double t0_utc = static_cast<double>(LocalMidnightUtc(hc_first));
  for (int k = 0; k < ns; ++k) {
    std::vector<const Observation*> ok;
    for (const auto& x : obs) {
      if (species_index(x.species) == k) ok.push_back(&x);
    }
    detail::BoundedProblem bp;
    bp.lower = 0.0;
    bp.upper = o.assimilation.max_factor;
    bp.prior_mean = Eigen::VectorXd::Ones(P);
    bp.prior_precision = Eigen::MatrixXd::Zero(P, P);
    for (int c = 0; c < nc; ++c) {
      const double sigma =
          c < nh
              ? o.assimilation.headwater_prior_sigma
              : SourceSigma(net.FindSource(comps.sources[c - nh]), o.assimilation.plant_prior_sigma,
                            o.assimilation.outfall_prior_sigma, o.assimilation.other_prior_sigma);
      // Random walk between windows: cov(θ_w, θ_v) = σ² + min(w, v) δ².
      Eigen::MatrixXd cov(W, W);
      for (int a = 0; a < W; ++a) {
        for (int b = 0; b < W; ++b) {
          cov(a, b) = sigma * sigma +
                      std::min(a, b) * o.assimilation.change_sigma * o.assimilation.change_sigma;
        }
      }
      const Eigen::MatrixXd prec = cov.inverse();
      for (int a = 0; a < W; ++a) {
        for (int b = 0; b < W; ++b) bp.prior_precision(a * nc + c, b * nc + c) = prec(a, b);
      }
    }
    const bool use = o.assimilation.enabled && !ok.empty();
    const int n_obs = use ? static_cast<int>(ok.size()) : 0;
    bp.response = Eigen::MatrixXd::Zero(n_obs, P);
    bp.observed = Eigen::VectorXd::Zero(n_obs);
    bp.sigma = Eigen::VectorXd::Ones(n_obs);
    std::vector<double> diffuse_at(n_obs);
    const double limit_iii = class_iii >= 0 ? res.limits_mg_l[class_iii * ns + k] : kNaN;
    const double floor = std::isfinite(limit_iii) && o.assimilation.floor_fraction > 0
                             ? o.assimilation.floor_fraction * limit_iii
                             : o.assimilation.floor_mg_l;
    for (int i = 0; i < n_obs; ++i) {
      const Observation& x = *ok[i];
      const int s = station_index(x.station);
      const double t = static_cast<double>(x.time_utc_s) - t0_utc;
      const size_t stride = static_cast<size_t>(n_st) * ns;
      for (int p = 0; p < P; ++p) {
        const size_t offset = static_cast<size_t>(p) * hc_T * stride + s * ns + k;
        bp.response(i, p) =
            Interpolate(hc_times, hc_series.station_concentration_g_m3, offset, stride, t);
      }
      const double diffuse =
          Interpolate(diffuse_run.times_s, diffuse_run.station_concentration_g_m3,
                      static_cast<size_t>(s) * ns + k, stride, t);
      double value = x.value_mg_l, err_scale = 1.0;
      if (x.flag == "below_detection") {
        value = 0.5 * x.value_mg_l;
      } else if (x.flag == "suspect") {
        err_scale = o.assimilation.suspect_factor;
      }
      double sigma = std::sqrt(floor * floor + std::pow(o.assimilation.relative_error * value, 2));
      if (x.flag == "below_detection") sigma = std::max(sigma, 0.5 * x.value_mg_l);
      diffuse_at[i] = diffuse;
      bp.observed[i] = value - diffuse;
      bp.sigma[i] = sigma * err_scale;
      an.obs_time_utc_s.push_back(x.time_utc_s);
      an.obs_station.push_back(x.station);
      an.obs_species.push_back(x.species);
      an.obs_value.push_back(x.value_mg_l);
      an.obs_error.push_back(bp.sigma[i]);
      an.obs_prior.push_back(diffuse + bp.response.row(i).sum());
    }
    const detail::BoundedSolution sol = detail::SolveBounded(bp);
    if (!sol.converged) {
      res.warnings.push_back({"analysis-not-converged", res.species[k],
                              "the bounded analysis stopped after " +
                                  std::to_string(sol.iterations) +
                                  " iterations; its last estimate is used"});
    }
    sample_transform[k] = sol.sample_transform;
    for (int p = 0; p < P; ++p) {
      an.factor[static_cast<size_t>(k) * P + p] = sol.theta[p];
      an.factor_sd[static_cast<size_t>(k) * P + p] = sol.sd[p];
    }
    if (n_obs > 0) {
      const Eigen::VectorXd fit = bp.response * sol.theta;
      double e0 = 0, e1 = 0;
      const size_t first = an.obs_prior.size() - n_obs;
      for (int i = 0; i < n_obs; ++i) {
        const double analysed = fit[i] + diffuse_at[i];
        an.obs_analysis.push_back(analysed);
        e0 += std::pow(an.obs_prior[first + i] - ok[i]->value_mg_l, 2);
        e1 += std::pow(analysed - ok[i]->value_mg_l, 2);
      }
      an.observations_used[k] = n_obs;
      an.rmse_prior[k] = std::sqrt(e0 / n_obs);
      an.rmse_analysis[k] = std::sqrt(e1 / n_obs);
      an.assimilated = true;
    }
  }
  // Hindcast series at the stations, prior (θ = 1) and analysed.
  {
    an.hindcast_times_utc_s.resize(hc_T);
    const size_t stride = static_cast<size_t>(n_st) * ns;
    an.hindcast_prior.assign(static_cast<size_t>(hc_T) * stride, 0.0);
    an.hindcast_analysis.assign(static_cast<size_t>(hc_T) * stride, 0.0);
    for (int t = 0; t < hc_T; ++t) {
      an.hindcast_times_utc_s[t] = static_cast<std::int64_t>(t0_utc + std::llround(hc_times[t]));
      for (int s = 0; s < n_st; ++s) {
        for (int k = 0; k < ns; ++k) {
          const size_t at = t * stride + s * ns + k;
          const double diffuse =
              Interpolate(diffuse_run.times_s, diffuse_run.station_concentration_g_m3,
                          static_cast<size_t>(s) * ns + k, stride, hc_times[t]);
          double prior = diffuse, analysed = diffuse;
          for (int p = 0; p < P; ++p) {
            const double v =
                hc_series.station_concentration_g_m3[static_cast<size_t>(p) * hc_T * stride + at];
            prior += v;
            analysed += an.factor[static_cast<size_t>(k) * P + p] * v;
          }
          an.hindcast_prior[at] = prior;
          an.hindcast_analysis[at] = analysed;
        }
      }
    }
  }
  progress(std::string("analysis: ") +
           (an.assimilated ? std::to_string(obs.size()) + " observations assimilated"
                           : "no observations; prior loads"));

  // Initial state of a member with factors θ[k][w * nc + c] (main channel and storage).
  auto initial_state = [&](const std::vector<std::vector<double>>& theta, transport::Forcing* f,
                           int only_component /* -1 = all, nc = diffuse only */) {
    f->initial_concentration_g_m3.assign(field, 0.0);
    f->initial_storage_g_m3.assign(field, 0.0);
    for (size_t i = 0; i < field; ++i) {
      const int k = static_cast<int>(i % ns);
      double c = 0.0, cs = 0.0;
      if (only_component < 0 || only_component == nc) {
        c = diffuse_run.concentration_g_m3[diffuse_last + i];
        cs = diffuse_run.storage_g_m3[diffuse_last + i];
      }
      if (only_component != nc) {
        for (int p = 0; p < P; ++p) {
          if (only_component >= 0 && p % nc != only_component) continue;
          c += theta[k][p] * final_field(p, false)[i];
          cs += theta[k][p] * final_field(p, true)[i];
        }
      }
      f->initial_concentration_g_m3[i] = std::max(0.0, c);
      f->initial_storage_g_m3[i] = std::max(0.0, cs);
    }
  };

  // ---- Ensemble ----
  const auto en0 = std::chrono::steady_clock::now();
  const int M = o.members;
  const int G = std::min(o.groups, M);
  res.members = M;
  res.groups = G;
  const Perturbations& pert = o.perturbations;
  struct GroupDraw {
    double flow = 1, velocity = 1, dispersion = 1, temperature_offset = 0;
    std::vector<double> decay;
    hydro::RainSeries rain;
  };
  std::vector<GroupDraw> draws(G);
  for (int g = 0; g < G; ++g) {
    RandomStream rng(o.seed, StreamPurpose::kGroup, static_cast<std::uint64_t>(g));
    GroupDraw& gd = draws[g];
    gd.flow = rng.MeanOneLogNormal(pert.flow_sigma);
    gd.velocity = rng.MeanOneLogNormal(pert.velocity_sigma);
    gd.dispersion = rng.MeanOneLogNormal(pert.dispersion_sigma);
    gd.temperature_offset = pert.temperature_sd_c * rng.Normal();
    for (int k = 0; k < ns; ++k) gd.decay.push_back(rng.MeanOneLogNormal(pert.decay_sigma));
    gd.rain = rain_base;
    for (int d = H; d < all_days; ++d) {  // forecast days only: the hindcast's rain is recorded
      const double factor = rng.MeanOneLogNormal(pert.rain_sigma);
      const double u = rng.Uniform();
      const double amount = have_climatology ? rng.Exponential(1.0) : 0.0;  // scaled below
      int y, m, dd;
      CivilFromDays(hc_first + d, &y, &m, &dd);
      double forecast_max = 0.0;
      for (int c = 0; c < n_catch; ++c)
        forecast_max = std::max(forecast_max, gd.rain.rain_mm[d * n_catch + c]);
      const bool missed =
          have_climatology && forecast_max < 1.0 &&
          u < pert.unforecast_rain_fraction * in.climatology.wet_day_probability[m - 1];
      for (int c = 0; c < n_catch; ++c) {
        double& r = gd.rain.rain_mm[d * n_catch + c];
        r *= factor;
        if (missed) r += amount * in.climatology.mean_wet_day_rain_mm[m - 1];
      }
    }
  }
  // Member factors: analysis sample, then daily AR(1) noise; member m's stream only.
  const int fd = fc_days;
  auto member_factors = [&](int m, std::vector<std::vector<double>>* theta) {
    RandomStream rng(o.seed, StreamPurpose::kMember, static_cast<std::uint64_t>(m));
    theta->assign(ns, std::vector<double>(P));
    for (int k = 0; k < ns; ++k) {
      Eigen::VectorXd z(P);
      for (int p = 0; p < P; ++p) z[p] = rng.Normal();
      const Eigen::VectorXd x = sample_transform[k] * z;
      for (int p = 0; p < P; ++p) {
        double v = an.factor[static_cast<size_t>(k) * P + p] + x[p];
        // Reflect into [0, max]: keeps the density continuous at the bounds.
        const double hi = o.assimilation.max_factor;
        for (int guard = 0; guard < 4 && (v < 0 || v > hi); ++guard) v = v < 0 ? -v : 2 * hi - v;
        (*theta)[k][p] = std::min(hi, std::max(0.0, v));
      }
    }
    std::vector<std::vector<double>> f(nc, std::vector<double>(static_cast<size_t>(fd) * ns));
    const double rho = pert.load_autocorrelation, r = pert.species_correlation;
    for (int c = 0; c < nc; ++c) {
      const double sigma =
          c < nh ? pert.headwater_sigma
                 : SourceSigma(net.FindSource(comps.sources[c - nh]), pert.plant_load_sigma,
                               pert.outfall_load_sigma, pert.other_load_sigma);
      double common = rng.Normal();
      std::vector<double> own(ns);
      for (int k = 0; k < ns; ++k) own[k] = rng.Normal();
      for (int d = 0; d < fd; ++d) {
        if (d > 0) {
          common = rho * common + std::sqrt(1 - rho * rho) * rng.Normal();
          for (int k = 0; k < ns; ++k)
            own[k] = rho * own[k] + std::sqrt(1 - rho * rho) * rng.Normal();
        }
        for (int k = 0; k < ns; ++k) {
          const double eta = std::sqrt(r) * common + std::sqrt(1 - r) * own[k];
          const double base = (*theta)[k][(W - 1) * nc + c];
          f[c][d * ns + k] = base * std::exp(sigma * eta - 0.5 * sigma * sigma);
        }
      }
    }
    return f;
  };

  const std::vector<double>& fc_times = fc_nominal.problem.output_times_s;
  const int T = static_cast<int>(fc_times.size());
  const size_t per_time = static_cast<size_t>(n_st) * ns;
  std::vector<double> values(static_cast<size_t>(M) * T * per_time);  // [m][t][s][k]
  // Control: analysed factors, no noise; components apart (lateral mass zeroed) and the
  // diffuse inflow and total (lateral mass on).
  std::vector<std::vector<double>> theta_hat(ns, std::vector<double>(P));
  for (int k = 0; k < ns; ++k) {
    for (int p = 0; p < P; ++p) theta_hat[k][p] = an.factor[static_cast<size_t>(k) * P + p];
  }
  std::vector<std::vector<double>> f_hat(nc, std::vector<double>(static_cast<size_t>(fd) * ns));
  for (int c = 0; c < nc; ++c) {
    for (int d = 0; d < fd; ++d) {
      for (int k = 0; k < ns; ++k) f_hat[c][d * ns + k] = theta_hat[k][(W - 1) * nc + c];
    }
  }
  transport::TransportResult control_components, control_total;
  progress("ensemble: " + std::to_string(M) + " members in " + std::to_string(G) +
           " hydraulic groups, " + FormatIsoTime(as_of) + " to " +
           FormatIsoTime(LocalMidnightUtc(fc_first + fc_days)) + " on " + std::to_string(threads) +
           " thread(s)");
  // Tasks: groups (largest first: all similar), then the two control runs.
  res.phases.push_back({"ensemble", {}});
  RunTasks(
      G + 2, threads,
      [&](int task) {
        transport::TransportOptions t = RunOptions();
        if (task == G) {
          transport::TransportProblem p = fc_components.problem;
          for (int c = 0; c < nc; ++c) {
            std::vector<std::vector<double>> f(
                nc, std::vector<double>(static_cast<size_t>(fd) * ns, 0.0));
            f[c] = f_hat[c];
            transport::Forcing forcing = detail::MakeForcing(fc_components, comps, f);
            initial_state(theta_hat, &forcing, c);
            p.members.push_back(std::move(forcing));
          }
          control_components = transport::TransportSolver(t).Run(p);
          return;
        }
        if (task == G + 1) {
          transport::TransportProblem p = fc_nominal.problem;
          transport::Forcing diffuse = detail::MakeForcing(
              fc_nominal, comps,
              std::vector<std::vector<double>>(nc, std::vector<double>(fd * ns, 0.0)));
          initial_state(theta_hat, &diffuse, nc);
          transport::Forcing total = detail::MakeForcing(fc_nominal, comps, f_hat);
          initial_state(theta_hat, &total, -1);
          p.members = {diffuse, total};
          control_total = transport::TransportSolver(t).Run(p);
          return;
        }
        const int g = task;
        const GroupDraw& gd = draws[g];
        const auto rain = rain_map(gd.rain);
        PeriodSpec spec = spec_for(false);
        spec.rain = &rain;
        spec.flow_factor = gd.flow;
        spec.velocity_factor = gd.velocity;
        spec.dispersion_factor = gd.dispersion;
        spec.decay_factor = gd.decay;
        for (double& x : spec.temperature_c)
          x = std::min(40.0, std::max(0.0, x + gd.temperature_offset));
        const Period period = detail::BuildPeriod(fc_nets, grid, station_segments, spec);
        transport::TransportProblem p = period.problem;
        const int m0 = static_cast<int>(static_cast<long long>(g) * M / G);
        const int m1 = static_cast<int>(static_cast<long long>(g + 1) * M / G);
        for (int m = m0; m < m1; ++m) {
          std::vector<std::vector<double>> theta;
          const auto f = member_factors(m, &theta);
          transport::Forcing forcing = detail::MakeForcing(period, comps, f);
          initial_state(theta, &forcing, -1);
          p.members.push_back(std::move(forcing));
        }
        const transport::TransportResult r = transport::TransportSolver(t).Run(p);
        if (r.num_times != T) throw SolverError("forecast: unexpected number of output times");
        std::copy(r.station_concentration_g_m3.begin(), r.station_concentration_g_m3.end(),
                  values.begin() + static_cast<size_t>(m0) * T * per_time);
      },
      &res.phases.back().task_cpu_s);
  res.ensemble_time_s = Seconds(en0);

  // ---- Statistics ----
  for (int t = 0; t < T; ++t) {
    res.times_utc_s.push_back(LocalMidnightUtc(fc_first) + std::llround(fc_times[t]));
  }
  const int Q = static_cast<int>(o.quantiles.size());
  res.quantiles.assign(static_cast<size_t>(Q) * T * per_time, 0.0);
  res.p_exceed.assign(static_cast<size_t>(n_lim) * T * per_time, 0.0);
  res.mean.assign(static_cast<size_t>(T) * per_time, 0.0);
  std::vector<double> sorted(M);
  for (int t = 0; t < T; ++t) {
    for (size_t sk = 0; sk < per_time; ++sk) {
      const int k = static_cast<int>(sk % ns);
      double sum = 0.0;
      for (int m = 0; m < M; ++m) {
        sorted[m] = values[(static_cast<size_t>(m) * T + t) * per_time + sk];
        sum += sorted[m];
      }
      res.mean[t * per_time + sk] = sum / M;
      std::sort(sorted.begin(), sorted.end());
      for (int q = 0; q < Q; ++q) {
        res.quantiles[(static_cast<size_t>(q) * T + t) * per_time + sk] =
            SortedQuantile(sorted, o.quantiles[q]);
      }
      if (!indicator_of[k]) {  // no limit in the standard: no probability either
        for (int c = 0; c < n_lim; ++c)
          res.p_exceed[(static_cast<size_t>(c) * T + t) * per_time + sk] = kNaN;
        continue;
      }
      for (int c = 0; c < n_lim; ++c) {
        const double limit = res.limits_mg_l[c * ns + k];
        int count = 0;
        for (double v : sorted) count += Worse(*indicator_of[k], v, limit);
        res.p_exceed[(static_cast<size_t>(c) * T + t) * per_time + sk] =
            static_cast<double>(count) / M;
      }
    }
  }
  if (o.store_members) res.member_values = values;

  // Daily means: the time mean over [00:00, 24:00) local of the piecewise-linear series
  // (trapezoid rule over the output times, which fall on the day's boundaries).
  const int D = N;
  auto daily_mean = [&](const std::vector<double>& series, size_t member_offset, int j, size_t sk) {
    const double d0 = (partial + j) * kDay, d1 = d0 + kDay;
    double integral = 0.0;
    for (int t = 0; t + 1 < T; ++t) {
      if (fc_times[t] < d0 - 1e-6 || fc_times[t + 1] > d1 + 1e-6) continue;
      const double a = series[member_offset + t * per_time + sk];
      const double b = series[member_offset + (t + 1) * per_time + sk];
      integral += 0.5 * (a + b) * (fc_times[t + 1] - fc_times[t]);
    }
    return integral / kDay;
  };
  const size_t per_day = per_time;
  std::vector<double> member_daily(static_cast<size_t>(M) * D * per_day);
  for (int m = 0; m < M; ++m) {
    for (int j = 0; j < D; ++j) {
      for (size_t sk = 0; sk < per_day; ++sk) {
        member_daily[(static_cast<size_t>(m) * D + j) * per_day + sk] =
            daily_mean(values, static_cast<size_t>(m) * T * per_time, j, sk);
      }
    }
  }
  res.daily_quantiles.assign(static_cast<size_t>(Q) * D * per_day, 0.0);
  res.daily_p_exceed.assign(static_cast<size_t>(n_lim) * D * per_day, 0.0);
  res.daily_mean.assign(static_cast<size_t>(D) * per_day, 0.0);
  std::vector<double> median_daily(static_cast<size_t>(D) * per_day);
  for (int j = 0; j < D; ++j) {
    for (size_t sk = 0; sk < per_day; ++sk) {
      const int k = static_cast<int>(sk % ns);
      double sum = 0.0;
      for (int m = 0; m < M; ++m) {
        sorted[m] = member_daily[(static_cast<size_t>(m) * D + j) * per_day + sk];
        sum += sorted[m];
      }
      res.daily_mean[j * per_day + sk] = sum / M;
      std::sort(sorted.begin(), sorted.end());
      median_daily[j * per_day + sk] = SortedQuantile(sorted, 0.5);
      for (int q = 0; q < Q; ++q) {
        res.daily_quantiles[(static_cast<size_t>(q) * D + j) * per_day + sk] =
            SortedQuantile(sorted, o.quantiles[q]);
      }
      if (!indicator_of[k]) {
        for (int c = 0; c < n_lim; ++c) {
          res.daily_p_exceed[(static_cast<size_t>(c) * D + j) * per_day + sk] = kNaN;
        }
        continue;
      }
      for (int c = 0; c < n_lim; ++c) {
        int count = 0;
        for (double v : sorted) count += Worse(*indicator_of[k], v, res.limits_mg_l[c * ns + k]);
        res.daily_p_exceed[(static_cast<size_t>(c) * D + j) * per_day + sk] =
            static_cast<double>(count) / M;
      }
    }
  }
  // Daily class: worst assessed indicator (环办[2011]22号: a section's class is its worst
  // single indicator; a period is assessed on the mean of its samples).
  const int n_cls = static_cast<int>(res.classes.size());
  auto class_of = [&](const double* daily /* per species, daily means */) {
    int worst = 0;
    for (int k : assessed) worst = std::max(worst, standard->Classify(res.species[k], daily[k]));
    return worst;
  };
  res.daily_class.assign(static_cast<size_t>(D) * n_st, 0);
  res.daily_class_probability.assign(static_cast<size_t>(D) * n_st, 0.0);
  res.class_probability.assign(static_cast<size_t>(n_cls) * D * n_st, 0.0);
  res.p_class_worse.assign(static_cast<size_t>(n_lim) * D * n_st, 0.0);
  res.ratio_to_class_iii.assign(static_cast<size_t>(D) * per_day, kNaN);
  res.main_pollutants.assign(static_cast<size_t>(D) * n_st, "");
  if (standard && !assessed.empty()) {
    for (int j = 0; j < D; ++j) {
      for (int s = 0; s < n_st; ++s) {
        const size_t ds = static_cast<size_t>(j) * n_st + s;
        for (int m = 0; m < M; ++m) {
          const int c =
              class_of(&member_daily[(static_cast<size_t>(m) * D + j) * per_day + s * ns]);
          res.class_probability[static_cast<size_t>(c) * D * n_st + ds] += 1.0 / M;
          for (int l = 0; l < n_lim; ++l) {
            if (c > l) res.p_class_worse[static_cast<size_t>(l) * D * n_st + ds] += 1.0 / M;
          }
        }
        // The predicted class is the median of the members' daily classes (classes are
        // ordered): the best class c with P(class <= c) >= 1/2. Unlike the class of the
        // median concentrations it agrees with P(worse than c): worse than III exactly
        // when P(worse than III) > 1/2.
        int predicted = n_cls - 1;
        double cumulative = 0.0;
        for (int c = 0; c < n_cls; ++c) {
          cumulative += res.class_probability[static_cast<size_t>(c) * D * n_st + ds];
          if (cumulative >= 0.5 - 1e-12) {
            predicted = c;
            break;
          }
        }
        res.daily_class[ds] = predicted;
        res.daily_class_probability[ds] =
            res.class_probability[static_cast<size_t>(predicted) * D * n_st + ds];
        std::vector<std::pair<double, int>> over;
        for (int k : assessed) {
          const double limit = class_iii >= 0 ? res.limits_mg_l[class_iii * ns + k] : kNaN;
          if (!std::isfinite(limit) || limit <= 0) continue;
          const double ratio = median_daily[j * per_day + s * ns + k] / limit;
          res.ratio_to_class_iii[j * per_day + s * ns + k] = ratio;
          if (predicted > class_iii &&
              Worse(*indicator_of[k], median_daily[j * per_day + s * ns + k], limit)) {
            over.emplace_back(
                indicator_of[k]->sense == "min" ? 1.0 / std::max(ratio, 1e-12) : ratio, k);
          }
        }
        // Main pollutants (环办[2011]22号): above Class III, the worst indicators by multiple of
        // the Class III limit — of the median daily means. When the median class is worse
        // than III only through the spread of the members (no median exceeds), the indicator
        // nearest to its limit is named.
        if (predicted > class_iii && over.empty()) {
          double best = -1;
          int best_k = -1;
          for (int k : assessed) {
            const double r = res.ratio_to_class_iii[j * per_day + s * ns + k];
            if (std::isfinite(r) && r > best) {
              best = r;
              best_k = k;
            }
          }
          if (best_k >= 0) over.emplace_back(best, best_k);
        }
        std::sort(over.begin(), over.end(),
                  [](const auto& a, const auto& b) { return a.first > b.first; });
        std::string list;
        for (size_t i = 0; i < over.size() && i < 3; ++i)
          list += (i ? "," : "") + res.species[over[i].second];
        res.main_pollutants[ds] = list;
      }
    }
  }

  // ---- Apportionment of the control run's daily means ----
  res.contributors = comp_ids;
  res.contributors.push_back("diffuse");
  const int n_con = static_cast<int>(res.contributors.size());
  res.control.assign(static_cast<size_t>(T) * per_time, 0.0);
  for (int t = 0; t < T; ++t) {
    for (size_t sk = 0; sk < per_time; ++sk) {
      res.control[t * per_time + sk] =
          control_total
              .station_concentration_g_m3[(static_cast<size_t>(1) * T + t) * per_time + sk];
    }
  }
  res.contribution.assign(static_cast<size_t>(D) * per_day * n_con, 0.0);
  res.top_source.assign(static_cast<size_t>(D) * n_st, "");
  double closure = 0.0;
  std::vector<double> part(n_con);
  for (int j = 0; j < D; ++j) {
    for (size_t sk = 0; sk < per_day; ++sk) {
      double sum = 0.0;
      for (int c = 0; c < nc; ++c) {
        part[c] = daily_mean(control_components.station_concentration_g_m3,
                             static_cast<size_t>(c) * T * per_time, j, sk);
        sum += part[c];
      }
      part[nc] = daily_mean(control_total.station_concentration_g_m3, 0, j, sk);
      sum += part[nc];
      const double total = daily_mean(control_total.station_concentration_g_m3,
                                      static_cast<size_t>(T) * per_time, j, sk);
      if (total > 0) closure = std::max(closure, std::abs(sum - total) / total);
      // Reconcile: the limited advection makes the run positively homogeneous but not
      // exactly additive (docs/forecast.md, "Apportionment"); shares from the components,
      // scaled so that they sum exactly to the total.
      const double scale = sum > 0 ? total / sum : 0.0;
      for (int c = 0; c < n_con; ++c) {
        res.contribution[(j * per_day + sk) * n_con + c] = part[c] * scale;
      }
    }
  }
  res.apportionment_closure = closure;
  for (int j = 0; j < D; ++j) {
    for (int s = 0; s < n_st; ++s) {
      const size_t ds = static_cast<size_t>(j) * n_st + s;
      // The indicator that decides: the first main pollutant, else the largest ratio.
      int k = -1;
      if (!res.main_pollutants[ds].empty()) {
        k = species_index(res.main_pollutants[ds].substr(0, res.main_pollutants[ds].find(',')));
      } else {
        double best = -1;
        for (int kk : assessed) {
          const double r = res.ratio_to_class_iii[j * per_day + s * ns + kk];
          if (std::isfinite(r) && r > best) {
            best = r;
            k = kk;
          }
        }
      }
      if (k < 0) continue;
      const double* c = &res.contribution[(j * per_day + s * ns + k) * n_con];
      const int top = static_cast<int>(std::max_element(c, c + n_con) - c);
      if (c[top] > 0) res.top_source[ds] = res.contributors[top];
    }
  }

  // ---- Summary rows ----
  for (int s = 0; s < n_st; ++s) {
    for (int j = 0; j < D; ++j) {
      const size_t ds = static_cast<size_t>(j) * n_st + s;
      ForecastSummaryRow row;
      row.station = res.stations[s];
      row.day = res.days[j];
      if (standard && !assessed.empty()) {
        row.cls = res.classes[res.daily_class[ds]];
        row.class_probability = res.daily_class_probability[ds];
        if (class_iii >= 0)
          row.p_worse_than_iii = res.p_class_worse[static_cast<size_t>(class_iii) * D * n_st + ds];
      }
      const std::string& mp = res.main_pollutants[ds];
      row.main_pollutant = mp.substr(0, mp.find(','));
      double best = -1;
      for (int k : assessed) {
        const double r = res.ratio_to_class_iii[j * per_day + s * ns + k];
        if (std::isfinite(r) && r > best) {
          best = r;
          row.worst_indicator = res.species[k];
          row.worst_ratio = r;
        }
        if (res.species[k] == row.main_pollutant) row.main_ratio = r;
      }
      row.top_source = res.top_source[ds];
      const std::string decisive =
          row.main_pollutant.empty() ? row.worst_indicator : row.main_pollutant;
      if (!decisive.empty() && !row.top_source.empty()) {
        const int k = species_index(decisive);
        const double* c = &res.contribution[(j * per_day + s * ns + k) * n_con];
        double total = 0.0;
        for (int x = 0; x < n_con; ++x) total += c[x];
        const int top = static_cast<int>(
            std::find(res.contributors.begin(), res.contributors.end(), row.top_source) -
            res.contributors.begin());
        row.top_share = total > 0 ? c[top] / total : 0.0;
      }
      res.summary.push_back(row);
    }
  }
  res.wall_time_s = Seconds(wall0);
  res.serial_cpu_s = ThreadCpuSeconds() - tasks_on_this_thread_s - cpu0;
  return res;
}

}  // namespace qingshui::forecast
