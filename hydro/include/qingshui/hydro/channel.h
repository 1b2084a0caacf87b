// Open-channel hydraulics of one cross-section: trapezoidal geometry (rectangular when the
// side slope is 0) and Manning's equation for uniform (normal) flow.
#pragma once

#include "qingshui/core/network.h"

namespace qingshui::hydro {

// Geometry of the wetted section at depth h for a trapezoid of bottom width b and side
// slope z (horizontal per vertical).
struct SectionState {
  double depth_m = 0.0;
  double area_m2 = 0.0;            // A = (b + z h) h
  double top_width_m = 0.0;        // T = b + 2 z h
  double wetted_perimeter_m = 0.0; // P = b + 2 h sqrt(1 + z²)
  double velocity_ms = 0.0;        // Q / A (0 when dry)

  double hydraulic_radius_m() const { return wetted_perimeter_m > 0 ? area_m2 / wetted_perimeter_m : 0.0; }
};

SectionState SectionAtDepth(const ChannelGeometry& g, double depth_m);

// Manning (SI): Q = (1/n) A R^(2/3) S^(1/2). Flow at depth h.
double ManningFlow(const ChannelGeometry& g, double depth_m);

// Normal depth for flow Q ≥ 0: the depth at which ManningFlow equals Q. Q = 0 gives a dry
// section (depth 0, velocity 0). Safeguarded Newton on a bracket, converged to a relative
// 1e-12 in depth. Throws ConfigError for invalid geometry or negative/NaN flow.
SectionState NormalDepth(const ChannelGeometry& g, double flow_m3s);

}  // namespace qingshui::hydro
