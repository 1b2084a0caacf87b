// The computational grid of a network: every reach cut into equal segments, every in-line
// lake one well-mixed segment, numbered upstream-first so that each segment's downstream
// neighbour has a larger index (the order the transport and flow solvers sweep in).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "qingshui/core/network.h"

namespace qingshui {

struct GridSegment {
  std::string reach;     // reach id, or the lake id for a lake segment
  bool is_lake = false;
  int index_in_reach = 0;
  double km_start = 0.0;  // river-km of the upstream face (lakes: 0)
  double km_end = 0.0;    // river-km of the downstream face
  double length_m = 0.0;  // reach length / segment count (lakes: 0)
  int downstream = -1;    // index of the next segment, -1 at an outlet
  std::string outlet;     // the outlet id when downstream == -1

  double km_centre() const { return 0.5 * (km_start + km_end); }
};

class NetworkGrid {
 public:
  std::vector<GridSegment> segments;
  // First segment and segment count of each reach; the segment of each in-line lake.
  std::map<std::string, std::pair<int, int>> reach_segments;
  std::map<std::string, int> lake_segment;

  int size() const { return static_cast<int>(segments.size()); }
  // The segment containing river-km `km` on `reach` (a point on a face belongs to the
  // segment upstream of it, except the reach's upstream end). Throws ConfigError for an
  // unknown reach or a km outside it.
  int SegmentAt(const std::string& reach, double km) const;
  // Segments that nothing drains into (where headwater boundaries apply).
  std::vector<int> HeadwaterSegments() const;
  // Segments draining into `segment`.
  std::vector<int> Upstream(int segment) const;
};

// Builds the grid of a validated network (LoadNetwork guarantees a tree to the outlets).
NetworkGrid BuildGrid(const Network& network);

}  // namespace qingshui
