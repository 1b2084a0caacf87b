#include "qingshui/hydro/routing.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "qingshui/core/error.h"
#include "qingshui/hydro/channel.h"

namespace qingshui::hydro {

// ---------------------------------------------------------------------------------------
// Level pool

LevelPool::LevelPool(const std::vector<LakeLevel>& rows, const std::string& what) {
  if (rows.size() < 2) throw ConfigError(what + ": a level table needs at least two rows");
  for (size_t k = 0; k < rows.size(); ++k) {
    const LakeLevel& r = rows[k];
    if (!(r.area_m2 > 0) || !(r.depth_m >= 0) || !(r.outflow_m3s >= 0)) {
      throw ConfigError(what + ": row " + std::to_string(k) +
                        ": expected depth >= 0, area > 0, outflow >= 0");
    }
    if (k > 0 && !(r.depth_m > rows[k - 1].depth_m)) {
      throw ConfigError(what + ": row " + std::to_string(k) + ": depths must increase");
    }
    if (k > 0 && r.outflow_m3s < rows[k - 1].outflow_m3s) {
      throw ConfigError(what + ": row " + std::to_string(k) + ": outflow must not decrease");
    }
    depth_.push_back(r.depth_m);
    area_.push_back(r.area_m2);
    outflow_.push_back(r.outflow_m3s);
    volume_.push_back(k == 0 ? 0.0
                             : volume_.back() +
                                   0.5 * (area_[k - 1] + area_[k]) * (depth_[k] - depth_[k - 1]));
  }
  if (outflow_.front() != 0.0) throw ConfigError(what + ": the lowest row must have outflow 0");
}

LevelPool LevelPool::Prismatic(double area_m2, double max_depth_m) {
  LevelPool p;
  p.depth_ = {0.0, max_depth_m};
  p.area_ = {area_m2, area_m2};
  p.volume_ = {0.0, area_m2 * max_depth_m};
  p.outflow_ = {0.0, 0.0};
  return p;
}

namespace {

// Linear interpolation of ys over xs (increasing); beyond the last point the last slope
// continues (a lake above its table keeps rising and spilling).
double Interpolate(const std::vector<double>& xs, const std::vector<double>& ys, double x) {
  if (x <= xs.front()) return ys.front();
  size_t k = std::upper_bound(xs.begin(), xs.end(), x) - xs.begin();
  if (k >= xs.size()) k = xs.size() - 1;
  const double w = (x - xs[k - 1]) / (xs[k] - xs[k - 1]);
  return ys[k - 1] + w * (ys[k] - ys[k - 1]);
}

}  // namespace

double LevelPool::Volume(double depth_m) const { return Interpolate(depth_, volume_, depth_m); }
double LevelPool::Depth(double volume_m3) const { return Interpolate(volume_, depth_, volume_m3); }
double LevelPool::Area(double volume_m3) const {
  return std::max(area_.front(), Interpolate(volume_, area_, volume_m3));
}
double LevelPool::Outflow(double volume_m3) const {
  return std::max(0.0, Interpolate(volume_, outflow_, volume_m3));
}

double LevelPool::VolumeForOutflow(double flow_m3s) const {
  if (flow_m3s <= 0.0) {
    // The highest volume that still has no outflow: the lake stands at its outlet's crest.
    size_t k = 0;
    while (k + 1 < outflow_.size() && outflow_[k + 1] <= 0.0) ++k;
    return volume_[k];
  }
  if (!has_outflow()) {
    throw ConfigError("level pool: the table has no outflow, so no level passes " +
                      std::to_string(flow_m3s) + " m3/s");
  }
  // Outflow is non-decreasing and continues linearly above the table.
  for (size_t k = 1; k < outflow_.size(); ++k) {
    if (outflow_[k] >= flow_m3s && outflow_[k] > outflow_[k - 1]) {
      const double w = (flow_m3s - outflow_[k - 1]) / (outflow_[k] - outflow_[k - 1]);
      return volume_[k - 1] + w * (volume_[k] - volume_[k - 1]);
    }
  }
  const size_t n = outflow_.size();
  const double slope = (outflow_[n - 1] - outflow_[n - 2]) / (volume_[n - 1] - volume_[n - 2]);
  return volume_[n - 1] + (flow_m3s - outflow_[n - 1]) / slope;
}

// ---------------------------------------------------------------------------------------
// Outflow relations and forcing

double OutflowRelation::Flow(double area_m2) const {
  if (!(area_m2 > 0.0)) return 0.0;
  switch (kind) {
    case Kind::kReach:
      return ReachFlowFromArea(*reach, area_m2);
    case Kind::kLinear:
      return celerity_ms * area_m2;
    case Kind::kLevelPool:
      if (closed && area_m2 <= pool.max_volume_m3()) return 0.0;
      return pool.Outflow(area_m2);
    case Kind::kPassThrough:
      return 0.0;  // handled by the solver
  }
  return 0.0;
}

double StepForcing::Average(int segment, double t0, double t1) const {
  if (times_s.empty()) return 0.0;
  auto value = [&](size_t k) {
    const auto& v = values[k];
    return static_cast<size_t>(segment) < v.size() ? v[segment] : 0.0;
  };
  if (t1 <= t0) {
    size_t k = std::upper_bound(times_s.begin(), times_s.end(), t0) - times_s.begin();
    return value(k == 0 ? 0 : k - 1);
  }
  // Integrate the step function exactly over [t0, t1].
  double sum = 0.0;
  for (size_t k = 0; k < times_s.size(); ++k) {
    const double a = k == 0 ? -std::numeric_limits<double>::infinity() : times_s[k];
    const double b =
        k + 1 < times_s.size() ? times_s[k + 1] : std::numeric_limits<double>::infinity();
    const double lo = std::max(a, t0), hi = std::min(b, t1);
    if (hi > lo) sum += value(k) * (hi - lo);
  }
  return sum / (t1 - t0);
}

bool RoutingOptions::IsValid(std::string* error) const {
  auto fail = [&](const std::string& what) {
    if (error) *error = what;
    return false;
  };
  if (!(time_step_s > 0) || !std::isfinite(time_step_s)) return fail("time_step_s must be > 0");
  if (!(output_interval_s >= 0)) return fail("output_interval_s must be >= 0");
  if (!(tolerance > 0) || tolerance >= 1e-3) return fail("tolerance must be in (0, 1e-3)");
  if (max_iterations < 1) return fail("max_iterations must be >= 1");
  if (!(dry_area_m2 >= 0) || !std::isfinite(dry_area_m2)) return fail("dry_area_m2 must be >= 0");
  return true;
}

// ---------------------------------------------------------------------------------------
// The solver

namespace {

void Validate(const RoutingProblem& p) {
  const size_t n = p.downstream.size();
  auto fail = [](const std::string& what) { throw ConfigError("routing problem: " + what); };
  if (n == 0) fail("no segments");
  if (p.length_m.size() != n || p.relation.size() != n || p.initial_area_m2.size() != n) {
    fail("length_m, relation and initial_area_m2 need one value per segment");
  }
  for (size_t i = 0; i < n; ++i) {
    const int d = p.downstream[i];
    if (d != -1 && (d <= static_cast<int>(i) || d >= static_cast<int>(n))) {
      fail("segment " + std::to_string(i) + ": downstream index must be larger (upstream-first)");
    }
    if (!(p.length_m[i] > 0)) fail("segment " + std::to_string(i) + ": length_m must be > 0");
    if (!(p.initial_area_m2[i] >= 0) || !std::isfinite(p.initial_area_m2[i])) {
      fail("segment " + std::to_string(i) + ": initial area must be finite and >= 0");
    }
    const OutflowRelation& r = p.relation[i];
    if (r.kind == OutflowRelation::Kind::kReach && !r.reach) {
      fail("segment " + std::to_string(i) + ": reach relation without a reach");
    }
    if (r.kind == OutflowRelation::Kind::kLinear && !(r.celerity_ms > 0)) {
      fail("segment " + std::to_string(i) + ": linear relation needs celerity_ms > 0");
    }
  }
  for (const StepForcing* f :
       {&p.headwater_m3s, &p.lateral_inflow_m3s, &p.loss_m3s, &p.gate_open}) {
    if (f->times_s.size() != f->values.size()) fail("forcing needs one row of values per time");
    for (size_t k = 1; k < f->times_s.size(); ++k) {
      if (!(f->times_s[k] > f->times_s[k - 1])) fail("forcing times must increase");
    }
    for (const auto& row : f->values) {
      for (double v : row) {
        if (!(v >= 0) || !std::isfinite(v)) fail("forcing values must be finite and >= 0");
      }
    }
  }
  if (!(p.end_time_s >= p.start_time_s)) fail("end_time_s must be >= start_time_s");
}

// Solves a Δx + Δt Q(a) = R for a ≥ 0 (R ≥ 0). g(a) is increasing, so the root is unique
// and lies in [0, R/Δx]. Safeguarded Newton with a relative central difference.
double SolveArea(const OutflowRelation& rel, double dx, double dt, double rhs, double guess,
                 double tol, int max_iter, int* iterations) {
  if (rhs <= 0.0) return 0.0;
  double lo = 0.0, hi = rhs / dx;
  auto g = [&](double a) { return a * dx + dt * rel.Flow(a) - rhs; };
  double a = (guess > lo && guess < hi) ? guess : 0.5 * (lo + hi);
  for (int it = 1; it <= max_iter; ++it) {
    *iterations = std::max(*iterations, it);
    const double ga = g(a);
    if (ga > 0)
      hi = a;
    else
      lo = a;
    const double h = std::max(1e-7 * a, 1e-300);
    const double dg = (g(a + h) - g(std::max(0.0, a - h))) / (a + h - std::max(0.0, a - h));
    double next = dg > 0 ? a - ga / dg : 0.5 * (lo + hi);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::abs(next - a) <= tol * a || hi - lo <= tol * hi) return next;
    a = next;
  }
  throw SolverError("routing: Newton iteration for a segment's area did not converge in " +
                    std::to_string(max_iter) + " iterations");
}

}  // namespace

RoutedFlow Route(const RoutingProblem& p, const RoutingOptions& o) {
  std::string error;
  if (!o.IsValid(&error)) throw ConfigError("routing options: " + error);
  Validate(p);
  const int n = static_cast<int>(p.downstream.size());
  RoutedFlow r;
  r.num_segments = n;
  std::vector<double> a = p.initial_area_m2;
  std::vector<double> q(n, 0.0), qin(n), lat(n), lost(n), head(n), up(n);
  for (int i = 0; i < n; ++i) {
    q[i] = p.relation[i].Flow(a[i]);
    r.initial_volume_m3 += a[i] * p.length_m[i];
  }
  // Wetted area reported for each segment: its state, except where a channel segment
  // loses all the water it receives within a step (state 0, inflow > 0). Water still runs
  // into it before it seeps away, so it reports the area carrying half its inflow, as the
  // steady hydraulics do; the transport solver needs a volume wherever water enters.
  std::vector<double> wet(n, 0.0), seen_inflow(n, 0.0);
  auto store = [&](double t) {
    for (int i = 0; i < n; ++i) {
      wet[i] = a[i];
      if (a[i] <= 0.0 && seen_inflow[i] > 0.0 &&
          p.relation[i].kind == OutflowRelation::Kind::kReach) {
        wet[i] = ReachSection(*p.relation[i].reach, 0.5 * seen_inflow[i]).area_m2;
      }
    }
    r.times_s.push_back(t);
    r.flow_m3s.insert(r.flow_m3s.end(), q.begin(), q.end());
    r.area_m2.insert(r.area_m2.end(), wet.begin(), wet.end());
    r.lateral_inflow_m3s.insert(r.lateral_inflow_m3s.end(), lat.begin(), lat.end());
    r.lateral_outflow_m3s.insert(r.lateral_outflow_m3s.end(), lost.begin(), lost.end());
    r.headwater_inflow_m3s.insert(r.headwater_inflow_m3s.end(), head.begin(), head.end());
  };
  // Forcing at the start, for the first stored state.
  for (int i = 0; i < n; ++i) {
    head[i] = p.headwater_m3s.Average(i, p.start_time_s, p.start_time_s);
    lat[i] = p.lateral_inflow_m3s.Average(i, p.start_time_s, p.start_time_s);
    lost[i] = 0.0;
  }
  for (int i = 0; i < n; ++i) {
    seen_inflow[i] += head[i] + lat[i];
    if (p.downstream[i] >= 0) seen_inflow[p.downstream[i]] += q[i];
  }
  store(p.start_time_s);
  const double out_dt = o.output_interval_s > 0 ? o.output_interval_s : o.time_step_s;
  double next_out = p.start_time_s + out_dt;
  double t = p.start_time_s;
  r.min_diffusion_ratio = std::numeric_limits<double>::infinity();
  while (t < p.end_time_s - 1e-9 * std::max(1.0, std::abs(p.end_time_s))) {
    // Land exactly on output times and the end.
    double t1 = std::min(t + o.time_step_s, p.end_time_s);
    if (next_out < t1 - 1e-9) t1 = next_out;
    const double dt = t1 - t;
    std::fill(up.begin(), up.end(), 0.0);
    for (int i = 0; i < n; ++i) {
      const double dx = p.length_m[i];
      head[i] = p.headwater_m3s.Average(i, t, t1);
      lat[i] = p.lateral_inflow_m3s.Average(i, t, t1);
      const double loss = p.loss_m3s.Average(i, t, t1);
      const double inflow = head[i] + up[i] + lat[i];
      const double v0 = a[i] * dx;
      // Losses take no more than the water there over the step.
      lost[i] = std::min(loss, v0 / dt + inflow);
      // ≥ 0 by the choice of the losses. Where losses leave less than a film of
      // dry_area_m2 (inflow and losses equal up to round-off, step after step), the segment
      // is dry: the losses take the film, so the budget stays exact and no 1e-14 m² film
      // passes meaningless concentrations on.
      const double available = v0 + dt * inflow;
      double rhs = available - dt * lost[i];
      if (lost[i] > 0 && rhs <= std::max(o.dry_area_m2 * dx,
                                         64 * std::numeric_limits<double>::epsilon() * available)) {
        rhs = 0.0;
        lost[i] = available / dt;
      }
      rhs = std::max(0.0, rhs);
      const OutflowRelation& rel = p.relation[i];
      double a1;
      if (rel.kind == OutflowRelation::Kind::kPassThrough) {
        a1 = a[i];
        q[i] = std::max(0.0, inflow - lost[i]);
      } else {
        const bool gate = p.gate_open.times_s.empty() || p.gate_open.Average(i, t, t1) > 0.5;
        if (rel.kind == OutflowRelation::Kind::kLevelPool && !gate) {
          OutflowRelation closed = rel;
          closed.closed = true;
          a1 = SolveArea(closed, dx, dt, rhs, a[i], o.tolerance, o.max_iterations,
                         &r.max_newton_iterations);
        } else {
          a1 = SolveArea(rel, dx, dt, rhs, a[i], o.tolerance, o.max_iterations,
                         &r.max_newton_iterations);
        }
        if (rel.kind == OutflowRelation::Kind::kLevelPool && !gate ? a1 <= rel.pool.max_volume_m3()
                                                                   : rel.Flow(a1) == 0.0) {
          a1 = rhs / dx;  // no outflow: everything stays (a dry bed, a closed lake)
          q[i] = 0.0;
        } else {
          // Outflow from continuity, so the discrete volume budget is exact.
          q[i] = std::max(0.0, (rhs - a1 * dx) / dt);
        }
      }
      a[i] = a1;
      seen_inflow[i] = inflow;
      if (p.downstream[i] >= 0) {
        up[p.downstream[i]] += q[i];
      } else {
        r.outflow_volume_m3 += q[i] * dt;
      }
      r.inflow_volume_m3 += (head[i] + lat[i]) * dt;
      r.loss_volume_m3 += lost[i] * dt;
      // Cunge's criterion: numerical diffusion of the implicit upwind scheme,
      // c (Δx + c Δt)/2 with c = dQ/dA, against the river's Q/(2 T S).
      // Over segments carrying at least 10 L/s: in a trickle Q/(2TS) → 0 and the ratio says
      // nothing useful.
      if (rel.kind == OutflowRelation::Kind::kReach && a1 > 0 && q[i] >= 0.01) {
        const double h = 1e-6 * a1;
        const double c = (rel.Flow(a1 + h) - rel.Flow(a1 - h)) / (2 * h);
        const double depth = DepthFromArea(rel.reach->geometry, a1);
        const double top =
            rel.reach->geometry.bottom_width_m + 2 * rel.reach->geometry.side_slope * depth;
        const double physical = q[i] / (2.0 * top * rel.reach->geometry.bed_slope);
        const double ratio = c * (dx + c * dt) / 2.0 / physical;
        r.max_diffusion_ratio = std::max(r.max_diffusion_ratio, ratio);
        r.min_diffusion_ratio = std::min(r.min_diffusion_ratio, ratio);
      }
    }
    t = t1;
    ++r.steps;
    if (t >= next_out - 1e-9 || t >= p.end_time_s - 1e-9) {
      store(t);
      next_out = t + out_dt;
    }
  }
  if (!std::isfinite(r.min_diffusion_ratio)) r.min_diffusion_ratio = 0.0;
  for (int i = 0; i < n; ++i) r.final_volume_m3 += a[i] * p.length_m[i];
  r.volume_residual_m3 = r.final_volume_m3 - r.initial_volume_m3 -
                         (r.inflow_volume_m3 - r.outflow_volume_m3 - r.loss_volume_m3);
  const double scale = std::max({r.initial_volume_m3, r.final_volume_m3, r.inflow_volume_m3});
  r.relative_volume_error = scale > 0 ? std::abs(r.volume_residual_m3) / scale : 0.0;
  return r;
}

// ---------------------------------------------------------------------------------------
// Days on a network

RoutedFlow RouteDays(const Network& net, const NetworkGrid& grid,
                     const std::vector<DayOptions>& days, const RoutingOptions& options,
                     NetworkHydraulics* first_day) {
  if (days.empty()) throw ConfigError("routing: no days given");
  const int n = grid.size();
  RoutingProblem p;
  p.start_time_s = 0.0;
  p.end_time_s = 86400.0 * static_cast<double>(days.size());
  p.downstream.resize(n);
  p.length_m.resize(n);
  p.relation.resize(n);
  p.initial_area_m2.resize(n);
  NetworkHydraulics h0;
  for (size_t d = 0; d < days.size(); ++d) {
    const NetworkHydraulics h = SteadyHydraulics(net, grid, days[d]);
    const double t = 86400.0 * static_cast<double>(d);
    std::vector<double> head(n), lat(n), loss(n);
    for (int i = 0; i < n; ++i) {
      head[i] = h.headwater_inflow_m3s[i];
      lat[i] = h.point_inflow_m3s[i] + h.diffuse_inflow_m3s[i];
      // Potential losses and withdrawals as asked: a wave brings water to segments that
      // were dry, and they lose it there.
      loss[i] = h.loss_capacity_m3s[i];
    }
    p.headwater_m3s.times_s.push_back(t);
    p.headwater_m3s.values.push_back(head);
    p.lateral_inflow_m3s.times_s.push_back(t);
    p.lateral_inflow_m3s.values.push_back(lat);
    p.loss_m3s.times_s.push_back(t);
    p.loss_m3s.values.push_back(loss);
    if (d == 0) h0 = h;
  }
  for (int i = 0; i < n; ++i) {
    const GridSegment& g = grid.segments[i];
    p.downstream[i] = g.downstream;
    if (g.is_lake) {
      const Lake& lake = *net.FindLake(g.reach);
      p.length_m[i] = 1.0;
      OutflowRelation rel;
      if (lake.levels.size() >= 2) {
        rel.kind = OutflowRelation::Kind::kLevelPool;
        rel.pool = LevelPool(lake.levels, net.file + ": lakes[" + lake.id + "].levels");
        p.initial_area_m2[i] =
            rel.pool.has_outflow() ? rel.pool.VolumeForOutflow(h0.flow_m3s[i]) : lake.volume_m3();
      } else {
        rel.kind = OutflowRelation::Kind::kPassThrough;
        p.initial_area_m2[i] = lake.volume_m3();
      }
      p.relation[i] = rel;
    } else {
      p.length_m[i] = g.length_m;
      OutflowRelation rel;
      rel.kind = OutflowRelation::Kind::kReach;
      rel.reach = net.FindReach(g.reach);
      p.relation[i] = rel;
      // Start from the steady state: the area whose kinematic outflow is the steady flow.
      p.initial_area_m2[i] =
          h0.flow_m3s[i] > 0 ? ReachSection(*rel.reach, h0.flow_m3s[i]).area_m2 : 0.0;
    }
  }
  if (first_day) *first_day = h0;
  return Route(p, options);
}

}  // namespace qingshui::hydro
