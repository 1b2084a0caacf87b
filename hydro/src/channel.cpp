#include "qingshui/hydro/channel.h"

#include <cmath>
#include <string>

#include "qingshui/core/error.h"

namespace qingshui::hydro {

namespace {

void CheckGeometry(const ChannelGeometry& g) {
  if (!(g.bottom_width_m > 0) || !(g.side_slope >= 0) || !(g.manning_n > 0) || !(g.bed_slope > 0) ||
      !std::isfinite(g.bottom_width_m) || !std::isfinite(g.side_slope) ||
      !std::isfinite(g.manning_n) || !std::isfinite(g.bed_slope)) {
    throw ConfigError(
        "channel geometry: expected bottom_width_m > 0, side_slope >= 0, manning_n > 0, "
        "bed_slope > 0 (all finite)");
  }
}

}  // namespace

SectionState SectionAtDepth(const ChannelGeometry& g, double depth_m) {
  SectionState s;
  s.depth_m = depth_m;
  s.area_m2 = (g.bottom_width_m + g.side_slope * depth_m) * depth_m;
  s.top_width_m = g.bottom_width_m + 2.0 * g.side_slope * depth_m;
  s.wetted_perimeter_m =
      g.bottom_width_m + 2.0 * depth_m * std::sqrt(1.0 + g.side_slope * g.side_slope);
  return s;
}

double ManningFlow(const ChannelGeometry& g, double depth_m) {
  if (depth_m <= 0.0) return 0.0;
  const SectionState s = SectionAtDepth(g, depth_m);
  return s.area_m2 * std::pow(s.hydraulic_radius_m(), 2.0 / 3.0) * std::sqrt(g.bed_slope) /
         g.manning_n;
}

SectionState NormalDepth(const ChannelGeometry& g, double flow_m3s) {
  CheckGeometry(g);
  if (!std::isfinite(flow_m3s) || flow_m3s < 0.0) {
    throw ConfigError("normal depth: expected a finite flow >= 0 m3/s, got " +
                      std::to_string(flow_m3s));
  }
  if (flow_m3s == 0.0) return SectionAtDepth(g, 0.0);
  // Bracket: Q(h) is strictly increasing in h. Start from the wide-rectangle estimate
  // h = (n Q / (b sqrt S))^(3/5) and expand until the bracket holds the root.
  double h_wide =
      std::pow(g.manning_n * flow_m3s / (g.bottom_width_m * std::sqrt(g.bed_slope)), 0.6);
  double lo = 0.0, hi = std::max(h_wide, 1e-6);
  while (ManningFlow(g, hi) < flow_m3s) {
    lo = hi;
    hi *= 2.0;
    if (hi > 1e6) throw SolverError("normal depth: no depth below 1e6 m carries the flow");
  }
  double h = 0.5 * (lo + hi);
  for (int iter = 0; iter < 200; ++iter) {
    const double f = ManningFlow(g, h) - flow_m3s;
    if (f > 0)
      hi = h;
    else
      lo = h;
    // dQ/dh by a relative central difference; Newton step kept inside the bracket.
    const double dh = 1e-7 * h;
    const double dq = (ManningFlow(g, h + dh) - ManningFlow(g, h - dh)) / (2 * dh);
    double next = dq > 0 ? h - f / dq : 0.5 * (lo + hi);
    if (!(next > lo && next < hi)) next = 0.5 * (lo + hi);
    if (std::abs(next - h) <= 1e-13 * h) {
      h = next;
      break;
    }
    h = next;
  }
  SectionState s = SectionAtDepth(g, h);
  s.velocity_ms = flow_m3s / s.area_m2;
  return s;
}

SectionState RatingDepth(const ChannelGeometry& g, const RatingCurve& rating, double flow_m3s) {
  CheckGeometry(g);
  if (!(rating.a > 0.0) || !(rating.b > 0.0) || !std::isfinite(rating.a) ||
      !std::isfinite(rating.b)) {
    throw ConfigError("rating curve: expected a > 0 and b > 0 (flow must increase with depth)");
  }
  if (!std::isfinite(flow_m3s) || flow_m3s < 0.0) {
    throw ConfigError("rating curve: expected a finite flow >= 0 m3/s, got " +
                      std::to_string(flow_m3s));
  }
  if (flow_m3s == 0.0) return SectionAtDepth(g, 0.0);
  SectionState s = SectionAtDepth(g, std::pow(flow_m3s / rating.a, 1.0 / rating.b));
  s.velocity_ms = flow_m3s / s.area_m2;
  return s;
}

SectionState ReachSection(const Reach& reach, double flow_m3s) {
  return reach.rating_curve ? RatingDepth(reach.geometry, *reach.rating_curve, flow_m3s)
                            : NormalDepth(reach.geometry, flow_m3s);
}

double DepthFromArea(const ChannelGeometry& g, double area_m2) {
  if (!(area_m2 > 0.0)) return 0.0;
  const double b = g.bottom_width_m, z = g.side_slope;
  if (z <= 0.0) return area_m2 / b;
  // (b + z h) h = A  →  h = 2A / (b + sqrt(b² + 4 z A)), the form without cancellation.
  return 2.0 * area_m2 / (b + std::sqrt(b * b + 4.0 * z * area_m2));
}

double ReachFlowFromArea(const Reach& reach, double area_m2) {
  const double h = DepthFromArea(reach.geometry, area_m2);
  if (h <= 0.0) return 0.0;
  if (reach.rating_curve) return reach.rating_curve->a * std::pow(h, reach.rating_curve->b);
  return ManningFlow(reach.geometry, h);
}

}  // namespace qingshui::hydro
