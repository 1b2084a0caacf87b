// Hydraulics → transport: the flow field and the segments that the transport solver
// (core/include/qingshui/core/transport.h) runs on.
//
// Conventions: segment i of the hydraulics is segment i of the transport problem (same
// upstream-first numbering). A river segment keeps its length; the flow state gives its
// wetted area and its lateral inflow/outflow per metre. An in-line lake becomes a
// well-mixed segment of length 1 m whose "area" is the lake volume, so that A·Δx is the
// volume. Storage zones (A_s = area_ratio·A) and dispersion come from the hydraulics;
// decay rates from the network's species.
#pragma once

#include <vector>

#include "qingshui/core/transport.h"
#include "qingshui/hydro/hydraulics.h"

namespace qingshui::hydro {

// One steady state at t = 0.
transport::FlowField ToFlowField(const NetworkHydraulics& h);

// Transport segments (downstream links, lengths, dispersion, storage zone, first-order
// decay of every species). Dry segments get zero dispersion and no storage exchange.
std::vector<transport::Segment> ToTransportSegments(const NetworkHydraulics& h);

// The states of an unsteady routing run; lateral concentrations are those of `base` (the
// day's hydraulics the run started from).
transport::FlowField ToFlowField(const RoutedFlow& routed, const NetworkHydraulics& base);

}  // namespace qingshui::hydro
