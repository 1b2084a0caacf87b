#include "qingshui/forecast/twin.h"

#include <algorithm>
#include <cmath>

#include "period.h"
#include "qingshui/core/error.h"
#include "qingshui/core/transport.h"
#include "qingshui/forecast/random.h"
#include "qingshui/forecast/time.h"
#include "qingshui/hydro/rain.h"

namespace qingshui::forecast {

double Truth::At(std::int64_t t, int s, int k) const {
  if (times_utc_s.empty() || t < times_utc_s.front() || t > times_utc_s.back()) return std::nan("");
  const size_t per = stations.size() * species.size();
  const size_t at = s * species.size() + k;
  auto it = std::upper_bound(times_utc_s.begin(), times_utc_s.end(), t);
  if (it == times_utc_s.end()) return values[(times_utc_s.size() - 1) * per + at];
  const size_t i1 = static_cast<size_t>(it - times_utc_s.begin()), i0 = i1 - 1;
  const double w = static_cast<double>(t - times_utc_s[i0]) /
                   static_cast<double>(times_utc_s[i1] - times_utc_s[i0]);
  return (1 - w) * values[i0 * per + at] + w * values[i1 * per + at];
}

Truth SimulateTruth(const Network& net, const ForecastInputs& in, const TruthOptions& o) {
  if (o.days < 1) throw ConfigError("truth: days must be >= 1");
  const NetworkGrid grid = BuildGrid(net);
  const int ns = static_cast<int>(net.species.size());
  Truth truth;
  std::vector<int> station_segments;
  for (const auto& st : net.stations) {
    if (st.kind == "outfall_monitor") continue;
    truth.stations.push_back(st.id);
    station_segments.push_back(grid.SegmentAt(st.reach, st.km));
  }
  for (const auto& s : net.species) truth.species.push_back(s.id);

  std::vector<Network> nets;
  std::vector<double> temperature;
  hydro::RainSeries rain;
  for (const auto& c : net.catchments) rain.catchments.push_back(c.id);
  for (int d = 0; d < o.days; ++d) {
    const std::int64_t day = o.first_day + d;
    nets.push_back(detail::DayNetwork(net, in, day));
    auto it = in.weather.water_temperature_c.find(day);
    int y, m, dd;
    CivilFromDays(day, &y, &m, &dd);
    temperature.push_back(it != in.weather.water_temperature_c.end() ? it->second
                          : in.climatology.file.empty()
                              ? 20.0
                              : in.climatology.water_temperature_c[m - 1]);
    rain.dates.push_back(FormatDate(day));
    const int wd = in.weather.rain ? in.weather.rain->DayIndex(FormatDate(day)) : -1;
    for (const auto& c : rain.catchments)
      rain.rain_mm.push_back(wd >= 0 ? in.weather.rain->RainMm(wd, c) : 0.0);
  }
  std::map<std::int64_t, hydro::RainDay> rain_days;
  if (!rain.catchments.empty()) {
    const auto days = hydro::RainDays(net, rain);
    for (int d = 0; d < o.days; ++d) rain_days[o.first_day + d] = days[d];
  }
  detail::PeriodSpec spec;
  spec.first_day = o.first_day;
  spec.days = o.days;
  spec.start_s = 0;
  spec.end_s = o.days * 86400.0;
  spec.time_step_s = o.time_step_s;
  for (double t = 0; t <= spec.end_s + 1e-6; t += o.output_interval_s)
    spec.output_times_s.push_back(t);
  spec.temperature_c = temperature;
  spec.rain = &rain_days;
  detail::Period period = detail::BuildPeriod(nets, grid, station_segments, spec);

  detail::ComponentSet comps;
  comps.headwater_reaches = period.headwater_reaches;
  for (const auto& s : net.sources) {
    if (period.loads.count(s.id)) comps.sources.push_back(s.id);
  }
  const int nh = static_cast<int>(comps.headwater_reaches.size());
  for (const auto& r : comps.headwater_reaches) truth.components.push_back("headwater:" + r);
  for (const auto& s : comps.sources) truth.components.push_back(s);
  const int nc = comps.size();
  std::vector<std::vector<double>> f(nc, std::vector<double>(static_cast<size_t>(o.days) * ns));
  truth.factors.assign(static_cast<size_t>(nc) * ns, 1.0);
  for (int c = 0; c < nc; ++c) {
    RandomStream rng(o.seed, StreamPurpose::kTruth, static_cast<std::uint64_t>(c));
    double sigma = o.prior.headwater_prior_sigma;
    if (c >= nh) {
      const Source* s = net.FindSource(comps.sources[c - nh]);
      sigma = s->kind == SourceKind::kTreatmentPlant      ? o.prior.plant_prior_sigma
              : s->kind == SourceKind::kIndustrialOutfall ? o.prior.outfall_prior_sigma
                                                          : o.prior.other_prior_sigma;
    }
    sigma *= o.factor_scale;
    for (int k = 0; k < ns; ++k) {
      const double base = rng.MeanOneLogNormal(sigma);
      truth.factors[c * ns + k] = base;
      double eta = rng.Normal();
      for (int d = 0; d < o.days; ++d) {
        if (d > 0)
          eta = o.autocorrelation * eta +
                std::sqrt(1 - o.autocorrelation * o.autocorrelation) * rng.Normal();
        f[c][d * ns + k] =
            base * std::exp(o.daily_sigma * eta - 0.5 * o.daily_sigma * o.daily_sigma);
      }
    }
  }
  transport::TransportProblem p = period.problem;
  p.members.push_back(detail::MakeForcing(period, comps, f));
  transport::TransportOptions t;
  t.num_threads = 1;
  t.adaptive_implicit = false;
  t.store_fields = false;
  {
    transport::TransportOptions steady = t;
    steady.steady_state = true;
    steady.store_fields = true;
    const transport::TransportResult s = transport::TransportSolver(steady).Run(p);
    const size_t per = static_cast<size_t>(s.num_segments) * s.num_species;
    p.members[0].initial_concentration_g_m3.assign(s.concentration_g_m3.begin(),
                                                   s.concentration_g_m3.begin() + per);
    p.members[0].initial_storage_g_m3.assign(s.storage_g_m3.begin(), s.storage_g_m3.begin() + per);
  }
  const transport::TransportResult r = transport::TransportSolver(t).Run(p);
  for (double x : r.times_s)
    truth.times_utc_s.push_back(LocalMidnightUtc(o.first_day) + std::llround(x));
  truth.values = r.station_concentration_g_m3;
  return truth;
}

std::vector<Observation> SampleObservations(const Truth& truth, const Network& net,
                                            std::int64_t from, std::int64_t to, std::uint64_t seed,
                                            const AssimilationOptions& e,
                                            const std::vector<std::string>& species) {
  std::vector<Observation> out;
  const int ns = static_cast<int>(truth.species.size());
  for (size_t s = 0; s < truth.stations.size(); ++s) {
    const Station* st = net.FindStation(truth.stations[s]);
    const std::int64_t interval =
        std::max<std::int64_t>(3600, std::llround(st->sampling_interval_s));
    // On the local clock; daily (or longer) sampling at 10:00 local.
    const std::int64_t phase = interval >= 86400 ? 10 * 3600 : 0;
    std::int64_t t = LocalMidnightUtc(LocalDay(from)) + phase;
    while (t < from) t += interval;
    RandomStream rng(seed, StreamPurpose::kObservation, s);
    for (; t <= to; t += interval) {
      for (int k = 0; k < ns; ++k) {
        const double noise = rng.Normal();
        if (!species.empty() &&
            std::find(species.begin(), species.end(), truth.species[k]) == species.end())
          continue;
        const double v = truth.At(t, static_cast<int>(s), k);
        if (!std::isfinite(v)) continue;
        double limit = std::nan("");
        if (net.standard) {
          if (const Indicator* ind = net.standard->Find(truth.species[k]);
              ind && ind->limits_mg_l.size() > 2) {
            limit = ind->limits_mg_l[2];
          }
        }
        const double floor =
            std::isfinite(limit) && e.floor_fraction > 0 ? e.floor_fraction * limit : e.floor_mg_l;
        const double sigma = std::sqrt(floor * floor + std::pow(e.relative_error * v, 2));
        Observation o;
        o.time_utc_s = t;
        o.station = truth.stations[s];
        o.species = truth.species[k];
        o.value_mg_l = std::max(0.0, v + sigma * noise);
        o.where = "twin:" + o.station;
        out.push_back(o);
      }
    }
  }
  return out;
}

}  // namespace qingshui::forecast
