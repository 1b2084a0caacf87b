// Transport problems that several test suites build on.
#pragma once

#include "qingshui/core/transport.h"

namespace qingshui::transport::fixtures {

// A straight uniform channel of n segments of length dx, flow Q, area A, dispersion D; one
// species, one member, steady flow entering at the headwater.
inline TransportProblem Channel(int n, double dx, double Q, double A, double D) {
  TransportProblem p;
  p.num_species = 1;
  p.segments.resize(n);
  for (int i = 0; i < n; ++i) {
    p.segments[i].downstream = i + 1 < n ? i + 1 : -1;
    p.segments[i].length_m = dx;
    p.segments[i].dispersion_m2s = D;
  }
  FlowState f;
  f.flow_m3s.assign(n, Q);
  f.area_m2.assign(n, A);
  f.headwater_inflow_m3s.assign(n, 0.0);
  f.headwater_inflow_m3s[0] = Q;
  p.flow.times_s = {0.0};
  p.flow.states = {f};
  p.members.resize(1);
  return p;
}

}  // namespace qingshui::transport::fixtures
