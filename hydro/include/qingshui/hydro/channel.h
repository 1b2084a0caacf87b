// Open-channel hydraulics of one cross-section: trapezoidal geometry (rectangular when the
// side slope is 0) and Manning's equation for uniform (normal) flow.
#pragma once

#include "qingshui/core/network.h"

namespace qingshui::hydro {

// Geometry of the wetted section at depth h for a trapezoid of bottom width b and side
// slope z (horizontal per vertical).
struct SectionState {
  double depth_m = 0.0;
  double area_m2 = 0.0;             // A = (b + z h) h
  double top_width_m = 0.0;         // T = b + 2 z h
  double wetted_perimeter_m = 0.0;  // P = b + 2 h sqrt(1 + z²)
  double velocity_ms = 0.0;         // Q / A (0 when dry)

  double hydraulic_radius_m() const {
    return wetted_perimeter_m > 0 ? area_m2 / wetted_perimeter_m : 0.0;
  }
};

SectionState SectionAtDepth(const ChannelGeometry& g, double depth_m);

// Manning (SI): Q = (1/n) A R^(2/3) S^(1/2). Flow at depth h.
double ManningFlow(const ChannelGeometry& g, double depth_m);

// Normal depth for flow Q ≥ 0: the depth at which ManningFlow equals Q. Q = 0 gives a dry
// section (depth 0, velocity 0). Safeguarded Newton on a bracket, converged to a relative
// 1e-12 in depth. Throws ConfigError for invalid geometry or negative/NaN flow.
SectionState NormalDepth(const ChannelGeometry& g, double flow_m3s);

// Depth on a rating curve Q = a·h^b: h = (Q/a)^(1/b); the section's area and width come
// from the geometry. Throws ConfigError for a, b not > 0 or a negative/NaN flow.
SectionState RatingDepth(const ChannelGeometry& g, const RatingCurve& rating, double flow_m3s);

// The section carrying `flow_m3s` in a reach: on its rating curve where it has one, else
// at Manning normal depth.
SectionState ReachSection(const Reach& reach, double flow_m3s);

// Depth at which the wetted area is `area_m2` (inverse of SectionAtDepth's area).
double DepthFromArea(const ChannelGeometry& g, double area_m2);

// Flow of a reach's channel holding wetted area `area_m2` (rating curve or Manning): the
// kinematic-wave relation Q(A) used in routing. Increasing, 0 at A = 0.
double ReachFlowFromArea(const Reach& reach, double area_m2);

}  // namespace qingshui::hydro
