#include "qingshui/hydro/flow_field.h"

#include "qingshui/core/error.h"

namespace qingshui::hydro {

namespace {

// Length the transport solver uses: lakes are 1 m long well-mixed volumes.
double TransportLength(const NetworkHydraulics& h, int i) {
  return h.is_lake[i] ? 1.0 : h.length_m[i];
}

// Area the transport solver uses: lakes carry their volume.
double TransportArea(const NetworkHydraulics& h, int i) {
  return h.is_lake[i] ? h.volume_m3[i] : h.area_m2[i];
}

}  // namespace

transport::FlowField ToFlowField(const NetworkHydraulics& h) {
  const int n = h.size();
  transport::FlowState s;
  s.flow_m3s = h.flow_m3s;
  s.area_m2.resize(n);
  s.lateral_inflow_m2s.resize(n);
  s.lateral_outflow_m2s.resize(n);
  s.headwater_inflow_m3s = h.headwater_inflow_m3s;
  s.lateral_concentration_g_m3 = h.lateral_concentration_g_m3;
  for (int i = 0; i < n; ++i) {
    const double dx = TransportLength(h, i);
    s.area_m2[i] = TransportArea(h, i);
    s.lateral_inflow_m2s[i] = (h.point_inflow_m3s[i] + h.diffuse_inflow_m3s[i]) / dx;
    s.lateral_outflow_m2s[i] = (h.withdrawal_m3s[i] + h.loss_m3s[i]) / dx;
  }
  transport::FlowField f;
  f.times_s = {0.0};
  f.states = {s};
  return f;
}

std::vector<transport::Segment> ToTransportSegments(const NetworkHydraulics& h) {
  const int n = h.size();
  std::vector<transport::Segment> out(n);
  for (int i = 0; i < n; ++i) {
    transport::Segment& g = out[i];
    g.downstream = h.downstream[i];
    g.length_m = TransportLength(h, i);
    g.well_mixed = h.is_lake[i] != 0;
    g.dispersion_m2s = h.dispersion_m2s[i];
    if (h.storage_area_m2[i] > 0) {
      g.storage_area_m2 = h.storage_area_m2[i];
      g.exchange_per_s = h.exchange_per_s[i];
    }
    g.decay_per_s = h.species_decay_per_s;
    const size_t ns = h.species.size();
    if (g.well_mixed && h.treatment_removal.size() == static_cast<size_t>(n) * ns) {
      std::vector<double> f(h.treatment_removal.begin() + i * ns,
                            h.treatment_removal.begin() + (i + 1) * ns);
      for (double x : f) {
        if (x > 0) {
          g.removal_fraction = f;
          break;
        }
      }
    }
    // Storage-zone decay as in the main channel (OTIS LAMBDA2 = LAMBDA).
    g.storage_decay_per_s = h.species_decay_per_s;
  }
  return out;
}

transport::FlowField ToFlowField(const RoutedFlow& r, const NetworkHydraulics& base) {
  if (r.num_segments != base.size()) {
    throw ConfigError("flow field: routed flow has " + std::to_string(r.num_segments) +
                      " segments, the hydraulics " + std::to_string(base.size()));
  }
  const int n = r.num_segments;
  transport::FlowField f;
  for (size_t t = 0; t < r.times_s.size(); ++t) {
    transport::FlowState s;
    s.flow_m3s.resize(n);
    s.area_m2.resize(n);
    s.lateral_inflow_m2s.resize(n);
    s.lateral_outflow_m2s.resize(n);
    s.headwater_inflow_m3s.resize(n);
    s.lateral_concentration_g_m3 = base.lateral_concentration_g_m3;
    for (int i = 0; i < n; ++i) {
      const size_t k = t * n + i;
      const double dx = TransportLength(base, i);
      s.flow_m3s[i] = r.flow_m3s[k];
      // RoutedFlow stores lakes as volume per 1 m, as here.
      s.area_m2[i] = r.area_m2[k];
      s.lateral_inflow_m2s[i] = r.lateral_inflow_m3s[k] / dx;
      s.lateral_outflow_m2s[i] = r.lateral_outflow_m3s[k] / dx;
      s.headwater_inflow_m3s[i] = r.headwater_inflow_m3s[k];
    }
    f.times_s.push_back(r.times_s[t]);
    f.states.push_back(std::move(s));
  }
  return f;
}

}  // namespace qingshui::hydro
