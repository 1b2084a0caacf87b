// Response kernels: what a station sees after a unit release at a point of the network,
// computed with the same transport engine as the forecast (qingshui::transport on the
// network's grid and one day's hydraulics from hydro::BuildSimulation).
//
// One engine run holds every kernel point as its own ensemble member (one factorization,
// many right-hand sides): a conservative step load of 1 g/s switched on at u = 0 in the
// point's segment, zero everywhere else. The station values give the step response S(u)
// (g/m³ per g/s). From it, without further engine runs (docs/tracing.md, "Kernels"):
//
//  * decay of species k is exact for first-order loss that is uniform on the network (the
//    network's rates apply to every segment, storage zone and lake alike):
//    C_k(u) = ∫₀ᵘ e^(−λ_k v) dS(v);
//  * velocity scaled by f is a compression of time, S_f(u) = S(f u), with dispersion D/f;
//  * dispersion: the engine runs at a few factors directly (`direct_dispersion_factors`);
//    tables in between are linear in the factor (which keeps the travel-time mean and
//    variance of the advection-dispersion equation exact between them); above the largest,
//    dispersion is added as a spread of travel times with the variance Σ 2 D Δx / u³ along
//    the path (a log-normal mixture of time dilations, which stays causal).
//
// A release of mass M spread evenly over [t0, t0 + d] then gives
//   c_k(t) = (M/d) [C_k(f (t − t0)) − C_k(f (t − t0 − d))] · e^(−λ_k (1/f − 1) u_mid).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "qingshui/core/grid.h"
#include "qingshui/core/network.h"

namespace qingshui::tracing {

// A place where a unit release is computed: a registered source, or a point of the regular
// grid along the reaches that serves the "unregistered location" hypothesis.
struct KernelPoint {
  std::string reach;
  double km = 0.0;
  int segment = -1;
  std::string source_id;       // empty for a grid point
  std::string kind;            // source kind name, "" for a grid point
  double travel_time_s = 0.0;  // plug-flow time (∫A/Q dx) from the reach's upstream end
};

// A sampling point that is not a network station (mobile samples): kernels are computed there
// as at a station, in the segment its (reach, km) falls in.
struct SamplingPoint {
  std::string id;  // how it is named in station_ids (PointLabel: "REACH:KM")
  std::string reach;
  double km = 0.0;
};

struct KernelOptions {
  std::string date;    // YYYY-MM-DD: whose hydraulics (steady over the kernel run)
  std::string season;  // empty = from the date
  double temperature_c = 20.0;
  double time_step_s = 1800.0;  // engine step and kernel resolution
  double horizon_s = 9 * 86400.0;
  // Dispersion factors the engine runs at directly (increasing). Tables in between are
  // linear in the factor; above the last, travel times are spread (see above).
  std::vector<double> direct_dispersion_factors = {0.35, 1.0};
  // Tables in the effective dispersion factor g' = g / f (time compression by f turns a
  // dispersion factor g into g/f); clamped to the first and last.
  std::vector<double> dispersion_factors = {0.35, 0.5, 0.7, 1.0, 1.5, 2.2, 3.3, 5.0};
  double grid_spacing_km = 10.0;     // 0 = no grid points (registered sources only)
  std::vector<std::string> species;  // species ids (decay rates from the network)
  int num_threads = 1;               // engine runs in parallel (each run single-threaded)
  // Virtual stations after the network's (none: exactly the kernels of the stations alone).
  std::vector<SamplingPoint> sampling_points;

  bool IsValid(std::string* error) const;
};

class ResponseKernels {
 public:
  // Kernel points (sources first, in network order, then grid points reach by reach),
  // stations in network order, then the options' sampling points (virtual stations).
  std::vector<KernelPoint> points;
  int num_network_stations = 0;  // stations [0, this) are the network's
  std::vector<std::string> station_ids;
  std::vector<std::string> station_reach;
  std::vector<double> station_km;
  std::vector<int> station_segment;
  std::vector<std::string> species;
  std::vector<double> decay_per_s;  // per species, at the options' temperature
  std::vector<double> dispersion_factors;
  double du_s = 3600.0;
  int num_u = 0;                // samples u = 0, du, ..., (num_u − 1) du
  double engine_seconds = 0.0;  // wall time of the engine run
  double max_relative_mass_error = 0.0;
  KernelOptions options;

  // Whether water from point p passes station s (only then is there a kernel).
  bool Sees(int p, int s) const { return slot_[p * num_stations() + s] >= 0; }
  int num_stations() const { return static_cast<int>(station_ids.size()); }
  int num_species() const { return static_cast<int>(species.size()); }
  int num_tables() const { return static_cast<int>(dispersion_factors.size()); }

  // C_k(u) of point p at station s for dispersion table g, linear between samples; 0 for
  // u <= 0 and the last value beyond the horizon. g/m³ per g/s.
  double Cumulative(int p, int s, int k, int g, double u_s) const;
  // The same, linear between the two tables around the effective dispersion factor.
  double Cumulative(int p, int s, int k, double dispersion_factor, double u_s) const;
  // Pointer to the num_u samples of table g (nullptr when p does not reach s).
  const double* Table(int p, int s, int k, int g) const;
  // Plug-flow travel time (s) from point p down to station s (∫A/Q dx at factor 1), and the
  // dispersive travel-time variance Σ 2 D Δx / u³ (s², at dispersion factor 1).
  double TravelTime(int p, int s) const { return travel_[p * num_stations() + s]; }
  double DispersionVariance(int p, int s) const { return disp_var_[p * num_stations() + s]; }
  // Centroid of the impulse response (conservative, g' = 1), s; NaN if no mass arrives
  // within the horizon.
  double Centroid(int p, int s) const { return centroid_[p * num_stations() + s]; }
  // Mean flow at the station's segment (m³/s).
  double StationFlow(int s) const { return station_flow_[s]; }
  // Plug-flow travel time from the upstream end of `reach` to `km` on it (s).
  double TravelTimeOnReach(const std::string& reach, double km) const;
  // Whether water at (reach, km) passes station s.
  bool PointSees(const std::string& reach, double km, int s) const;

  size_t MemoryBytes() const { return data_.size() * sizeof(double); }

 private:
  friend ResponseKernels BuildKernels(const Network&, const std::vector<KernelPoint>&,
                                      const KernelOptions&);
  std::vector<int> slot_;     // [p * S + s] -> slot or -1
  std::vector<double> data_;  // [((slot * K + k) * G + g) * num_u + j]
  std::vector<double> travel_, disp_var_, centroid_, station_flow_;
  // Per reach: the grid's segment faces (km, upstream first) and the cumulative plug-flow
  // time from the reach's upstream end at those faces.
  struct ReachTime {
    std::vector<double> km;
    std::vector<double> t_s;
  };
  std::map<std::string, ReachTime> reach_time_;
  NetworkGrid grid_;
  std::vector<std::vector<char>> upstream_of_station_;  // [station][segment]
};

// Registered sources (all, in network order; those of kind weight 0 included — the caller
// filters) and, with spacing > 0, grid points at spacing/2, 3·spacing/2, ... on every reach.
std::vector<KernelPoint> DefaultKernelPoints(const Network& network, double grid_spacing_km);

// One engine run for all points; throws ConfigError for bad options or unknown species.
ResponseKernels BuildKernels(const Network& network, const std::vector<KernelPoint>& points,
                             const KernelOptions& options);

// Kernels kept between traces by whoever owns the cache (a trace session, qs.TraceSession):
// Get() returns the stored kernels when their key — the network (its YAML text and file), the
// kernel points and every option that shapes the tables (date, season, temperature, step,
// horizon, dispersion factors, grid spacing, species, sampling points; not num_threads) — is
// the one asked for, else builds them with BuildKernels and stores them in place of the old.
// A hit is the very table a fresh build gives (the engine is deterministic), so a trace with
// a hit answers bit for bit as one without the cache. The hydraulics come from the network's
// own data (hydro::BuildSimulation), read again only on a miss: a data file changed on disk
// behind an unchanged network goes unnoticed until the key changes. Thread-safe; holds one
// entry (a session's window keeps one set of hydraulics).
class KernelCache {
 public:
  std::shared_ptr<const ResponseKernels> Get(const Network& network,
                                             const std::vector<KernelPoint>& points,
                                             const KernelOptions& options);
  int hits() const;
  int misses() const;
  void Clear();

 private:
  mutable std::mutex mutex_;
  std::string key_;
  std::shared_ptr<const ResponseKernels> kernels_;
  int hits_ = 0, misses_ = 0;
};

}  // namespace qingshui::tracing
