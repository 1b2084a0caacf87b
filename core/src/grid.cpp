#include "qingshui/core/grid.h"

#include <cmath>
#include <functional>
#include <sstream>

#include "qingshui/core/error.h"

namespace qingshui {

NetworkGrid BuildGrid(const Network& net) {
  NetworkGrid grid;
  // Nodes are reaches and in-line lakes; visit them in post-order from the outlets so that
  // everything draining into a node is numbered before it.
  std::map<std::string, std::vector<std::string>> inflows;  // node → nodes draining into it
  for (const auto& r : net.reaches) inflows[r.downstream].push_back(r.id);
  for (const auto& l : net.lakes) {
    if (!l.downstream.empty()) inflows[l.downstream].push_back(l.id);
  }
  std::vector<std::string> order;
  std::function<void(const std::string&, int)> visit = [&](const std::string& node, int depth) {
    if (depth > 10000) throw ConfigError(net.file + ": network too deep or cyclic");
    for (const auto& up : inflows[node]) visit(up, depth + 1);
    order.push_back(node);
  };
  for (const auto& o : net.outlets) {
    for (const auto& up : inflows[o.id]) visit(up, 0);
  }
  // Number the segments.
  std::map<std::string, int> first_segment;
  for (const auto& node : order) {
    first_segment[node] = grid.size();
    if (const Reach* r = net.FindReach(node)) {
      const int n = r->segment_count();
      grid.reach_segments[r->id] = {grid.size(), n};
      const double dx = r->length_m / n;
      for (int i = 0; i < n; ++i) {
        GridSegment s;
        s.reach = r->id;
        s.index_in_reach = i;
        s.length_m = dx;
        s.km_start = r->start_km + i * dx / 1000.0;
        s.km_end = r->start_km + (i + 1) * dx / 1000.0;
        grid.segments.push_back(s);
      }
    } else {
      GridSegment s;
      s.reach = node;
      s.is_lake = true;
      grid.lake_segment[node] = grid.size();
      grid.segments.push_back(s);
    }
  }
  // Link each node's last segment to the next node's first segment.
  for (const auto& node : order) {
    const Reach* r = net.FindReach(node);
    const Lake* l = r ? nullptr : net.FindLake(node);
    const std::string down = r ? r->downstream : l->downstream;
    const int last = r ? grid.reach_segments[node].first + grid.reach_segments[node].second - 1
                       : grid.lake_segment[node];
    for (int i = first_segment[node]; i < last; ++i) grid.segments[i].downstream = i + 1;
    if (net.IsOutlet(down)) {
      grid.segments[last].downstream = -1;
      grid.segments[last].outlet = down;
    } else {
      grid.segments[last].downstream = first_segment.at(down);
    }
  }
  return grid;
}

int NetworkGrid::SegmentAt(const std::string& reach, double km) const {
  auto it = reach_segments.find(reach);
  if (it == reach_segments.end()) throw ConfigError("unknown reach '" + reach + "'");
  const auto [first, count] = it->second;
  const GridSegment& a = segments[first];
  const GridSegment& b = segments[first + count - 1];
  const double tol = 1e-6;
  if (!(km >= a.km_start - tol && km <= b.km_end + tol)) {
    std::ostringstream what;
    what << "km " << km << " lies outside reach '" << reach << "' (" << a.km_start << " to "
         << b.km_end << ")";
    throw ConfigError(what.str());
  }
  const double dx_km = a.km_end - a.km_start;
  int i = static_cast<int>(std::ceil((km - a.km_start) / dx_km - 1e-9)) - 1;
  if (i < 0) i = 0;
  if (i >= count) i = count - 1;
  return first + i;
}

std::vector<int> NetworkGrid::HeadwaterSegments() const {
  std::vector<bool> fed(segments.size(), false);
  for (const auto& s : segments) {
    if (s.downstream >= 0) fed[s.downstream] = true;
  }
  std::vector<int> out;
  for (int i = 0; i < size(); ++i) {
    if (!fed[i]) out.push_back(i);
  }
  return out;
}

std::vector<int> NetworkGrid::Upstream(int segment) const {
  std::vector<int> out;
  for (int i = 0; i < size(); ++i) {
    if (segments[i].downstream == segment) out.push_back(i);
  }
  return out;
}

}  // namespace qingshui
