#include "qingshui/tracing/kernels.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "math_util.h"
#include "qingshui/core/error.h"
#include "qingshui/core/transport.h"
#include "qingshui/hydro/simulation.h"

namespace qingshui::tracing {

bool KernelOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (date.empty()) return fail("date: required (YYYY-MM-DD, whose hydraulics the kernels use)");
  if (!(time_step_s >= 60) || time_step_s > 6 * 3600.0)
    return fail("time_step_s: expected 60 s to 6 h");
  if (!(horizon_s >= time_step_s) || horizon_s > 400 * 86400.0) {
    return fail("horizon_s: expected one step to 400 days");
  }
  if (direct_dispersion_factors.empty())
    return fail("direct_dispersion_factors: expected at least one");
  for (size_t i = 0; i < direct_dispersion_factors.size(); ++i) {
    if (!(direct_dispersion_factors[i] > 0) ||
        (i > 0 && !(direct_dispersion_factors[i] > direct_dispersion_factors[i - 1]))) {
      return fail("direct_dispersion_factors: expected increasing values > 0");
    }
  }
  if (dispersion_factors.empty()) return fail("dispersion_factors: expected at least one table");
  for (size_t i = 0; i < dispersion_factors.size(); ++i) {
    if (!(dispersion_factors[i] > 0) ||
        (i > 0 && !(dispersion_factors[i] > dispersion_factors[i - 1]))) {
      return fail("dispersion_factors: expected increasing values > 0");
    }
  }
  if (!(grid_spacing_km >= 0)) return fail("grid_spacing_km: expected >= 0");
  if (species.empty()) return fail("species: expected at least one");
  if (num_threads < 0) return fail("num_threads: expected >= 0");
  return true;
}

const double* ResponseKernels::Table(int p, int s, int k, int g) const {
  const int slot = slot_[p * num_stations() + s];
  if (slot < 0) return nullptr;
  return data_.data() +
         ((static_cast<size_t>(slot) * num_species() + k) * num_tables() + g) * num_u;
}

double ResponseKernels::Cumulative(int p, int s, int k, int g, double u) const {
  const double* c = Table(p, s, k, g);
  if (!c || u <= 0) return 0.0;
  const double x = u / du_s;
  if (x >= num_u - 1) return c[num_u - 1];
  const int j = static_cast<int>(x);
  const double w = x - j;
  return c[j] + w * (c[j + 1] - c[j]);
}

double ResponseKernels::Cumulative(int p, int s, int k, double gf, double u) const {
  const int G = num_tables();
  if (G == 1 || gf <= dispersion_factors[0]) return Cumulative(p, s, k, 0, u);
  if (gf >= dispersion_factors[G - 1]) return Cumulative(p, s, k, G - 1, u);
  int a = 0;
  while (a + 1 < G - 1 && dispersion_factors[a + 1] <= gf) ++a;
  const double w =
      (gf - dispersion_factors[a]) / (dispersion_factors[a + 1] - dispersion_factors[a]);
  return (1 - w) * Cumulative(p, s, k, a, u) + w * Cumulative(p, s, k, a + 1, u);
}

double ResponseKernels::TravelTimeOnReach(const std::string& reach, double km) const {
  auto it = reach_time_.find(reach);
  if (it == reach_time_.end()) throw ConfigError("kernels: unknown reach '" + reach + "'");
  const auto& r = it->second;
  if (km <= r.km.front()) return r.t_s.front();
  for (size_t i = 1; i < r.km.size(); ++i) {
    if (km <= r.km[i]) {
      const double w = (km - r.km[i - 1]) / (r.km[i] - r.km[i - 1]);
      return r.t_s[i - 1] + w * (r.t_s[i] - r.t_s[i - 1]);
    }
  }
  return r.t_s.back();
}

bool ResponseKernels::PointSees(const std::string& reach, double km, int s) const {
  auto it = reach_time_.find(reach);
  if (it != reach_time_.end()) km = std::clamp(km, it->second.km.front(), it->second.km.back());
  const int seg = grid_.SegmentAt(reach, km);
  return upstream_of_station_[s][seg] != 0;
}

namespace {

// Between two step responses of the same release computed at two dispersion factors, the
// response at a factor a fraction w of the way: displacement (quantile) interpolation of the
// normalized arrival curves — in one dimension the optimal-transport interpolant, which moves
// the curve's shape instead of superposing two curves of different widths — with the
// quantile weight chosen so that the travel-time variance is linear in the factor, as it is
// for the advection-dispersion equation. The plateau is interpolated linearly.
void QuantileBlend(const std::vector<double>& s0, const std::vector<double>& s1, double w,
                   double du, std::vector<double>* out) {
  const int U = static_cast<int>(s0.size());
  out->assign(U, 0.0);
  const double m0 = s0[U - 1], m1 = s1[U - 1];
  if (!(m0 > 0) || !(m1 > 0)) {
    for (int j = 0; j < U; ++j) (*out)[j] = (1 - w) * s0[j] + w * s1[j];
    return;
  }
  auto normalized = [&](const std::vector<double>& s, double m) {
    std::vector<double> f(U);
    double run = 0.0;
    for (int j = 0; j < U; ++j) f[j] = run = std::max(run, std::min(1.0, s[j] / m));
    return f;
  };
  const std::vector<double> f0 = normalized(s0, m0), f1 = normalized(s1, m1);
  auto variance = [&](const std::vector<double>& f) {
    double mean = 0, sq = 0;
    for (int j = 0; j + 1 < U; ++j) {
      const double p = f[j + 1] - f[j], t = (j + 0.5) * du;
      mean += p * t;
      sq += p * t * t;
    }
    return std::max(0.0, sq - mean * mean);
  };
  const double sd0 = std::sqrt(variance(f0)), sd1 = std::sqrt(variance(f1));
  double wq = w;
  if (std::fabs(sd1 - sd0) > 1e-9 * (sd0 + sd1)) {
    const double target = std::sqrt((1 - w) * sd0 * sd0 + w * sd1 * sd1);
    wq = std::clamp((target - sd0) / (sd1 - sd0), 0.0, 1.0);
  }
  // Quantile functions on a grid of probabilities, by inverting the piecewise-linear curves.
  constexpr int kLevels = 400;
  auto quantile = [&](const std::vector<double>& f, double p) {
    int j = static_cast<int>(std::lower_bound(f.begin(), f.end(), p) - f.begin());
    if (j <= 0) return 0.0;
    if (j >= U) return (U - 1) * du;
    const double a = f[j - 1], b = f[j];
    return (j - 1 + (b > a ? (p - a) / (b - a) : 1.0)) * du;
  };
  std::vector<double> q(kLevels + 1), level(kLevels + 1);
  const double top = std::min(f0[U - 1], f1[U - 1]);
  for (int l = 0; l <= kLevels; ++l) {
    level[l] = top * l / kLevels;
    q[l] = (1 - wq) * quantile(f0, level[l]) + wq * quantile(f1, level[l]);
  }
  const double plateau = (1 - w) * m0 + w * m1;
  for (int j = 0; j < U; ++j) {
    const double t = j * du;
    const int l = static_cast<int>(std::upper_bound(q.begin(), q.end(), t) - q.begin());
    double p;
    if (l <= 0) {
      p = 0.0;
    } else if (l > kLevels) {
      p = top;
    } else {
      const double a = q[l - 1], b = q[l];
      p = level[l - 1] + (b > a ? (t - a) / (b - a) : 0.0) * (level[l] - level[l - 1]);
    }
    (*out)[j] = p * plateau;
  }
}

}  // namespace

std::vector<KernelPoint> DefaultKernelPoints(const Network& net, double spacing_km) {
  std::vector<KernelPoint> points;
  for (const auto& s : net.sources) {
    KernelPoint p;
    p.reach = s.reach;
    p.km = s.km;
    p.source_id = s.id;
    p.kind = ToString(s.kind);
    points.push_back(p);
  }
  if (spacing_km > 0) {
    for (const auto& r : net.reaches) {
      const double length = r.length_m / 1000.0;
      const int n = std::max(1, static_cast<int>(std::ceil(length / spacing_km - 1e-9)));
      for (int i = 0; i < n; ++i) {
        KernelPoint p;
        p.reach = r.id;
        p.km = r.start_km + (i + 0.5) * length / n;
        points.push_back(p);
      }
    }
  }
  return points;
}

ResponseKernels BuildKernels(const Network& net, const std::vector<KernelPoint>& points_in,
                             const KernelOptions& options) {
  std::string error;
  if (!options.IsValid(&error)) throw ConfigError("kernel options: " + error);
  ResponseKernels K;
  K.options = options;
  K.points = points_in;
  K.species = options.species;
  K.dispersion_factors = options.dispersion_factors;
  K.du_s = options.time_step_s;
  for (const auto& sp : options.species) {
    const Species* s = net.FindSpecies(sp);
    if (!s) throw ConfigError("kernel options: unknown species '" + sp + "'");
    K.decay_per_s.push_back(s->decay_per_s * std::pow(s->theta, options.temperature_c - 20.0));
  }

  hydro::SimulationOptions so;
  so.start_date = options.date;
  so.days = 1;
  so.season = options.season;
  so.time_step_s = options.time_step_s;
  so.output_interval_s = options.time_step_s;
  so.dispersion_factor = 1.0;
  so.temperature_c = options.temperature_c;
  so.steady_initial_state = false;
  const hydro::Simulation sim = hydro::BuildSimulation(net, so);
  K.grid_ = sim.grid;
  const hydro::NetworkHydraulics& h = sim.days.front();
  const int n = sim.grid.size();
  for (auto& p : K.points) p.segment = sim.grid.SegmentAt(p.reach, p.km);

  // Plug-flow time and dispersive variance of each segment at its mean flow. Transient
  // storage delays a solute by the factor (1 + A_s/A) (Bencala & Walters 1983) in the mean.
  std::vector<double> seg_time(n, 0.0), seg_var(n, 0.0);
  for (int i = 0; i < n; ++i) {
    const double q = h.mean_flow_m3s[i];
    if (!(q > 0)) {
      seg_time[i] = 1e12;  // dry: nothing passes
      continue;
    }
    if (h.is_lake[i]) {
      seg_time[i] = h.volume_m3[i] / q;
      continue;
    }
    const double a = h.area_m2[i];
    seg_time[i] = (a + h.storage_area_m2[i]) * h.length_m[i] / q;
    const double u = q / a;
    seg_var[i] = 2.0 * h.dispersion_m2s[i] * h.length_m[i] / (u * u * u);
  }
  // Time and variance from the centre of segment i to the outlet.
  std::vector<double> t_out(n, 0.0), v_out(n, 0.0), t_down(n, 0.0), v_down(n, 0.0);
  for (int i = n - 1; i >= 0; --i) {
    const int d = sim.grid.segments[i].downstream;
    t_down[i] = d < 0 ? 0.0 : t_down[d] + seg_time[d];
    v_down[i] = d < 0 ? 0.0 : v_down[d] + seg_var[d];
    t_out[i] = t_down[i] + 0.5 * seg_time[i];
    v_out[i] = v_down[i] + 0.5 * seg_var[i];
  }
  for (const auto& [reach, range] : sim.grid.reach_segments) {
    ResponseKernels::ReachTime rt;
    rt.km.push_back(sim.grid.segments[range.first].km_start);
    rt.t_s.push_back(0.0);
    for (int i = range.first; i < range.first + range.second; ++i) {
      rt.km.push_back(sim.grid.segments[i].km_end);
      rt.t_s.push_back(rt.t_s.back() + seg_time[i]);
    }
    K.reach_time_[reach] = rt;
  }

  // Stations (the network's, then the sampling points) and which segments drain past them.
  K.station_ids = sim.station_ids;
  K.num_network_stations = static_cast<int>(sim.station_ids.size());
  std::vector<int> station_segments = sim.station_segments;
  for (const auto& st : net.stations) {
    K.station_reach.push_back(st.reach);
    K.station_km.push_back(st.km);
  }
  for (const auto& sp : options.sampling_points) {
    if (!net.FindReach(sp.reach)) {
      throw ConfigError("kernel options: sampling point " + sp.id + ": unknown reach '" + sp.reach +
                        "'");
    }
    K.station_ids.push_back(sp.id);
    K.station_reach.push_back(sp.reach);
    K.station_km.push_back(sp.km);
    station_segments.push_back(sim.grid.SegmentAt(sp.reach, sp.km));
  }
  const int S = static_cast<int>(station_segments.size());
  K.station_segment = station_segments;
  K.upstream_of_station_.assign(S, std::vector<char>(n, 0));
  for (int s = 0; s < S; ++s) {
    K.station_flow_.push_back(h.mean_flow_m3s[station_segments[s]]);
    // Segment i drains past the station if the station's segment is on its way down.
    for (int i = 0; i < n; ++i) {
      for (int j = i; j >= 0; j = sim.grid.segments[j].downstream) {
        if (j == station_segments[s]) {
          K.upstream_of_station_[s][i] = 1;
          break;
        }
      }
    }
  }

  // Engine runs: every point a member with a conservative 1 g/s step load from u = 0, at
  // each directly computed dispersion factor. Points are grouped by river and each group runs
  // on its own sub-network — the segments from its points down to the outlet plus a margin
  // upstream for back-dispersion — which keeps the runs small (docs/tracing.md, Kernels).
  transport::TransportProblem base = sim.problem;
  base.num_species = 1;
  for (auto& seg : base.segments) {
    seg.decay_per_s.assign(1, 0.0);
    seg.storage_decay_per_s.assign(1, 0.0);
    seg.sorption.clear();
  }
  base.theta = {1.0};
  base.reaction_matrix_per_s.clear();
  base.flow.times_s = {0.0};
  {
    transport::FlowState state = base.flow.states.front();
    state.lateral_concentration_g_m3.clear();
    base.flow.states = {state};
  }
  base.members.clear();
  if (K.points.empty()) throw ConfigError("kernels: no kernel points");
  K.num_u = static_cast<int>(std::ceil(options.horizon_s / options.time_step_s - 1e-9)) + 1;
  base.start_time_s = 0.0;
  base.end_time_s = (K.num_u - 1) * options.time_step_s;
  base.time_step_s = options.time_step_s;
  base.output_times_s.clear();
  for (int j = 0; j < K.num_u; ++j) base.output_times_s.push_back(j * options.time_step_s);
  transport::TransportOptions to = sim.transport_options;
  to.store_fields = false;
  to.num_threads = 1;
  // A-priori positive sub-stepping: the step loads' sharp fronts make the adaptive check
  // fall back on most steps, which costs more than sub-stepping from the start.
  to.adaptive_implicit = false;

  const int P = static_cast<int>(K.points.size());
  const int U = K.num_u;
  // Groups of points by river.
  std::map<std::string, std::vector<int>> groups;
  for (int pi = 0; pi < P; ++pi) {
    const Reach* r = net.FindReach(K.points[pi].reach);
    groups[r ? r->river : K.points[pi].reach].push_back(pi);
  }
  struct Run {
    std::vector<int> points;
    transport::TransportProblem problem;
    std::vector<int> station_of;  // sub-problem station -> network station
    double dispersion = 1.0;
    transport::TransportResult result;
  };
  std::vector<Run> runs;
  for (const auto& [river, pts] : groups) {
    std::vector<char> keep(n, 0);
    for (int pi : pts) {
      const int seg = K.points[pi].segment;
      for (int j = seg; j >= 0; j = sim.grid.segments[j].downstream) keep[j] = 1;
      // Margin upstream on the point's reach: mass disperses a little way upstream.
      const auto range = sim.grid.reach_segments.at(K.points[pi].reach);
      for (int m = 1; m <= 4 && seg - m >= range.first; ++m) keep[seg - m] = 1;
    }
    std::vector<int> index(n, -1), kept;
    for (int i = 0; i < n; ++i) {
      if (keep[i]) {
        index[i] = static_cast<int>(kept.size());
        kept.push_back(i);
      }
    }
    transport::TransportProblem sub = base;
    sub.segments.clear();
    for (int i : kept) {
      transport::Segment seg = base.segments[i];
      seg.downstream = seg.downstream >= 0 ? index[seg.downstream] : -1;
      sub.segments.push_back(seg);
    }
    const transport::FlowState& fs = base.flow.states.front();
    transport::FlowState st;
    auto pick = [&](const std::vector<double>& v, std::vector<double>* out) {
      out->clear();
      if (v.empty()) return;
      for (int i : kept) out->push_back(v[i]);
    };
    pick(fs.flow_m3s, &st.flow_m3s);
    pick(fs.area_m2, &st.area_m2);
    pick(fs.lateral_inflow_m2s, &st.lateral_inflow_m2s);
    pick(fs.lateral_outflow_m2s, &st.lateral_outflow_m2s);
    pick(fs.headwater_inflow_m3s, &st.headwater_inflow_m3s);
    if (st.lateral_inflow_m2s.empty()) st.lateral_inflow_m2s.assign(kept.size(), 0.0);
    if (st.headwater_inflow_m3s.empty()) st.headwater_inflow_m3s.assign(kept.size(), 0.0);
    // Water of dropped branches enters clean: through the upstream face of a segment that is
    // now a headwater, else as lateral inflow along the segment it joins.
    std::vector<char> has_kept_upstream(n, 0);
    for (int i = 0; i < n; ++i) {
      const int d = sim.grid.segments[i].downstream;
      if (d >= 0 && keep[i]) has_kept_upstream[d] = 1;
    }
    for (int i = 0; i < n; ++i) {
      const int d = sim.grid.segments[i].downstream;
      if (keep[i] || d < 0 || !keep[d]) continue;
      const double q = fs.flow_m3s[i];
      if (!(q > 0)) continue;
      if (has_kept_upstream[d]) {
        st.lateral_inflow_m2s[index[d]] += q / base.segments[d].length_m;
      } else {
        st.headwater_inflow_m3s[index[d]] += q;
      }
    }
    sub.flow.states = {st};
    sub.stations.clear();
    std::vector<int> station_of;
    for (int s = 0; s < S; ++s) {
      const int seg = station_segments[s];
      if (!keep[seg]) continue;
      sub.stations.push_back(transport::Station{index[seg], -1, 0.0});
      station_of.push_back(s);
    }
    if (sub.stations.empty()) {
      // Nothing to report: keep one station so that the engine has an output.
      sub.stations.push_back(transport::Station{0, -1, 0.0});
      station_of.push_back(-1);
    }
    sub.members.clear();
    for (int pi : pts) {
      transport::Forcing f;
      transport::PointLoad load;
      load.segment = index[K.points[pi].segment];
      load.species = 0;
      load.load_g_s.interpolation = transport::TimeSeries::Interpolation::kStep;
      load.load_g_s.times_s = {-1.0, 0.0};
      load.load_g_s.values = {0.0, 1.0};
      f.loads.push_back(load);
      sub.members.push_back(f);
    }
    for (double g : options.direct_dispersion_factors) {
      Run run;
      run.points = pts;
      run.problem = sub;
      for (auto& seg : run.problem.segments) seg.dispersion_m2s *= g;
      run.station_of = station_of;
      run.dispersion = g;
      runs.push_back(std::move(run));
    }
  }
  const auto t_start = std::chrono::steady_clock::now();
  {
    std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic) num_threads(std::max(1, options.num_threads))
    for (int i = 0; i < static_cast<int>(runs.size()); ++i) {
      try {
        runs[i].result = transport::TransportSolver(to).Run(runs[i].problem);
      } catch (...) {
#pragma omp critical(qingshui_kernel_failure)
        if (!failure) failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
  }
  K.engine_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  for (const auto& run : runs) {
    K.max_relative_mass_error =
        std::max(K.max_relative_mass_error, run.result.summary.max_relative_mass_error);
  }
  // Step responses S(u) per direct factor, point and station.
  const int D = static_cast<int>(options.direct_dispersion_factors.size());
  std::vector<std::vector<double>> step_of(static_cast<size_t>(D) * P * S);
  for (const auto& run : runs) {
    const int d =
        static_cast<int>(std::find(options.direct_dispersion_factors.begin(),
                                   options.direct_dispersion_factors.end(), run.dispersion) -
                         options.direct_dispersion_factors.begin());
    for (size_t m = 0; m < run.points.size(); ++m) {
      for (size_t ss = 0; ss < run.station_of.size(); ++ss) {
        const int s = run.station_of[ss];
        if (s < 0) continue;
        auto& v = step_of[(static_cast<size_t>(d) * P + run.points[m]) * S + s];
        v.resize(U);
        for (int j = 0; j < U; ++j) {
          v[j] = std::max(0.0, run.result.StationConcentration(static_cast<int>(m), j,
                                                               static_cast<int>(ss), 0));
        }
      }
    }
  }

  // Tables.
  const int Ks = K.num_species(), G = K.num_tables();
  K.slot_.assign(static_cast<size_t>(P) * S, -1);
  K.travel_.assign(static_cast<size_t>(P) * S, NAN);
  K.disp_var_.assign(static_cast<size_t>(P) * S, NAN);
  K.centroid_.assign(static_cast<size_t>(P) * S, NAN);
  int slots = 0;
  for (int pi = 0; pi < P; ++pi) {
    for (int s = 0; s < S; ++s) {
      if (K.upstream_of_station_[s][K.points[pi].segment]) K.slot_[pi * S + s] = slots++;
    }
  }
  K.data_.assign(static_cast<size_t>(slots) * Ks * G * U, 0.0);
  // Equal-probability nodes of a standard normal, rescaled to unit variance, for the
  // log-normal mixture of time dilations.
  constexpr int kNodes = 24;
  std::vector<double> z(kNodes);
  double var = 0.0;
  for (int q = 0; q < kNodes; ++q) {
    z[q] = detail::NormalQuantile((q + 0.5) / kNodes);
    var += z[q] * z[q] / kNodes;
  }
  for (double& x : z) x /= std::sqrt(var);

  const auto& direct = options.direct_dispersion_factors;
  const double top = direct.back();
  std::vector<double> mixed(U);
  const std::vector<double> zeros(U, 0.0);
  for (int pi = 0; pi < P; ++pi) {
    const int seg = K.points[pi].segment;
    for (int s = 0; s < S; ++s) {
      const int slot = K.slot_[pi * S + s];
      if (slot < 0) continue;
      const int st_seg = station_segments[s];
      const double travel = std::max(0.0, t_out[seg] - t_out[st_seg]);
      const double vd = std::max(0.0, v_out[seg] - v_out[st_seg]);
      K.travel_[pi * S + s] = travel;
      K.disp_var_[pi * S + s] = vd;
      auto step = [&](int d) -> const std::vector<double>& {
        const auto& v = step_of[(static_cast<size_t>(d) * P + pi) * S + s];
        return v.empty() ? zeros : v;
      };
      // Centroid of the impulse response at the nominal dispersion (NaN when nothing
      // arrived).
      {
        int d1 = static_cast<int>(std::min_element(direct.begin(), direct.end(),
                                                   [](double a, double b) {
                                                     return std::fabs(a - 1) < std::fabs(b - 1);
                                                   }) -
                                  direct.begin());
        const auto& st = step(d1);
        double m0 = 0.0, m1 = 0.0;
        for (int j = 0; j + 1 < U; ++j) {
          const double ds = st[j + 1] - st[j];
          m0 += ds;
          m1 += ds * (j + 0.5) * K.du_s;
        }
        if (m0 > 0) K.centroid_[pi * S + s] = m1 / m0;
      }
      const double tc = std::max(travel, K.du_s);
      for (int g = 0; g < G; ++g) {
        const double gf = K.dispersion_factors[g];
        if (gf <= top) {
          // Between the direct runs: linear in the factor (the travel-time variance is).
          int a = 0;
          while (a + 1 < D && direct[a + 1] <= gf) ++a;
          if (a + 1 >= D || gf <= direct[0]) {
            mixed = step(gf <= direct[0] ? 0 : a);
          } else {
            const double w = (gf - direct[a]) / (direct[a + 1] - direct[a]);
            QuantileBlend(step(a), step(a + 1), w, K.du_s, &mixed);
          }
        } else {
          // Above the largest direct run: spread its travel times (log-normal mixture of
          // time dilations with mean 1) so that their variance grows by (g' − top) Σ2DΔx/u³.
          const auto& st = step(D - 1);
          const double add = (gf - top) * vd;
          const double var_lambda = add / (tc * tc + top * vd);
          const double sigma = std::sqrt(std::log1p(var_lambda));
          if (sigma < 1e-6) {
            mixed = st;
          } else {
            std::fill(mixed.begin(), mixed.end(), 0.0);
            for (int q = 0; q < kNodes; ++q) {
              const double inv = std::exp(-(-0.5 * sigma * sigma + sigma * z[q]));
              for (int j = 0; j < U; ++j) {
                const double x = j * inv;
                const int a = static_cast<int>(x);
                const double v = a >= U - 1 ? st[U - 1] : st[a] + (x - a) * (st[a + 1] - st[a]);
                mixed[j] += v / kNodes;
              }
            }
          }
        }
        for (int k = 0; k < Ks; ++k) {
          double* c = K.data_.data() + ((static_cast<size_t>(slot) * Ks + k) * G + g) * U;
          const double lam = K.decay_per_s[k];
          c[0] = 0.0;
          for (int j = 0; j + 1 < U; ++j) {
            c[j + 1] = c[j] + std::exp(-lam * (j + 0.5) * K.du_s) * (mixed[j + 1] - mixed[j]);
          }
        }
      }
    }
  }
  for (int i = 0; i < P; ++i) {
    if (K.reach_time_.count(K.points[i].reach)) {
      K.points[i].travel_time_s = K.TravelTimeOnReach(K.points[i].reach, K.points[i].km);
    }
  }
  return K;
}

}  // namespace qingshui::tracing

namespace qingshui::tracing {

namespace {

// Everything the tables depend on, as text (numbers to 17 digits: a key is equal only when
// the inputs are).
std::string KernelKey(const Network& net, const std::vector<KernelPoint>& points,
                      const KernelOptions& o) {
  std::string key = net.file + "\n" + WriteNetworkYaml(net) + "\n";
  char b[64];
  auto num = [&](double x) {
    std::snprintf(b, sizeof b, "%.17g,", x);
    key += b;
  };
  for (const auto& p : points) {
    key += p.reach + "|" + p.source_id + "|" + p.kind + "|";
    num(p.km);
    key += std::to_string(p.segment) + ";";
  }
  key += "\n" + o.date + "|" + o.season + "|";
  num(o.temperature_c);
  num(o.time_step_s);
  num(o.horizon_s);
  num(o.grid_spacing_km);
  key += "|";
  for (double g : o.direct_dispersion_factors) num(g);
  key += "|";
  for (double g : o.dispersion_factors) num(g);
  key += "|";
  for (const auto& s : o.species) key += s + ",";
  key += "|";
  for (const auto& sp : o.sampling_points) {
    key += sp.id + "@" + sp.reach + ":";
    num(sp.km);
  }
  return key;
}

}  // namespace

std::shared_ptr<const ResponseKernels> KernelCache::Get(const Network& network,
                                                        const std::vector<KernelPoint>& points,
                                                        const KernelOptions& options) {
  std::string key = KernelKey(network, points, options);
  std::lock_guard<std::mutex> lock(mutex_);
  if (kernels_ && key == key_) {
    ++hits_;
    return kernels_;
  }
  ++misses_;
  kernels_.reset();  // the old tables go before the new are built (memory)
  key_.clear();
  auto built = std::make_shared<const ResponseKernels>(BuildKernels(network, points, options));
  kernels_ = built;
  key_ = std::move(key);
  return built;
}

int KernelCache::hits() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return hits_;
}

int KernelCache::misses() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return misses_;
}

void KernelCache::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  kernels_.reset();
  key_.clear();
}

}  // namespace qingshui::tracing
