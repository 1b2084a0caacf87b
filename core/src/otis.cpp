// OTIS deck reader, mapping onto the transport engine, and OTIS-format output.
// File formats: Runkel (1998), USGS WRIR 98-4018, chapter "Input Files"; checked against
// the decks and outputs shipped with OTIS (tests/regression/otis).
#include "qingshui/core/otis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "qingshui/core/error.h"

namespace qingshui {
using namespace transport;  // NOLINT: this file maps decks onto the engine
namespace {

constexpr double kHour = 3600.0;
// Limits of what the reader accepts (OTIS itself is compiled with fixed array sizes far
// below these): 10^7 segments, 1000 solutes.
constexpr int kMaxOtisSegments = 10000000;
constexpr int kMaxOtisSolutes = 1000;

// Sequential reader over one deck file with OTIS's conventions.
class DeckFile {
 public:
  explicit DeckFile(const std::string& path, const std::string& label) : label_(label) {
    std::ifstream in(path);
    if (!in) throw ConfigError(Located(label, 0, "", "cannot open " + path));
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      lines_.push_back(line);
    }
  }

  // Next record that is not a comment ('#' in column 1). Blank records are skipped for
  // list-directed reads (Fortran continues to the next record), kept for text reads.
  bool NextRecord(bool skip_blank, std::string* out) {
    while (pos_ < lines_.size()) {
      const std::string& l = lines_[pos_++];
      if (!l.empty() && l[0] == '#') continue;
      if (skip_blank && l.find_first_not_of(" \t") == std::string::npos) continue;
      *out = l;
      return true;
    }
    return false;
  }
  int line() const { return static_cast<int>(pos_); }
  bool AtEnd() {
    size_t save = pos_;
    std::string dummy;
    bool more = NextRecord(true, &dummy);
    pos_ = save;
    return !more;
  }

  std::string Text(const std::string& field) {
    std::string l;
    if (!NextRecord(false, &l)) Fail(field, "missing (end of file)");
    size_t bar = l.find('|');
    if (bar != std::string::npos) l = l.substr(0, bar);
    size_t b = l.find_first_not_of(" \t"), e = l.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : l.substr(b, e - b + 1);
  }

  // List-directed read of n reals: values may span records; the rest of the last record
  // (labels, '|' comments) is ignored, as Fortran does.
  std::vector<double> Reals(int n, const std::string& field) {
    std::vector<double> v;
    while (static_cast<int>(v.size()) < n) {
      std::string l;
      if (!NextRecord(true, &l)) Fail(field, "missing values (end of file)");
      size_t bar = l.find('|');
      if (bar != std::string::npos) l = l.substr(0, bar);
      std::istringstream ss(l);
      std::string tok;
      bool any = false;
      while (static_cast<int>(v.size()) < n && ss >> tok) {
        // Fortran separators: blanks and commas.
        std::string t;
        for (char c : tok) {
          if (c == ',') {
            if (!t.empty()) { Push(t, field, &v, &any); t.clear(); }
            if (static_cast<int>(v.size()) >= n) break;
          } else {
            t += (c == 'd' || c == 'D') ? 'E' : c;
          }
        }
        if (!t.empty() && static_cast<int>(v.size()) < n) {
          if (!Push(t, field, &v, &any)) break;
        }
      }
      if (!any) Fail(field, "expected a number, found '" + Trim(l) + "'");
    }
    return v;
  }
  double Real(const std::string& field) { return Reals(1, field)[0]; }
  int Int(const std::string& field) {
    double v = Real(field);
    if (v != std::floor(v)) Fail(field, "expected an integer");
    // Converting a double outside int's range is undefined behaviour (found by fuzz_otis).
    if (!(v >= -2147483648.0 && v <= 2147483647.0)) Fail(field, "integer out of range");
    return static_cast<int>(v);
  }

  // Fortran I5 fields: columns 1-5, 6-10, ...; a blank field reads as 0.
  std::vector<int> FixedInts(int n, const std::string& field) {
    std::string l;
    if (!NextRecord(true, &l)) Fail(field, "missing (end of file)");
    std::vector<int> v;
    for (int k = 0; k < n; ++k) {
      std::string f = static_cast<size_t>(5 * k) < l.size() ? l.substr(5 * k, 5) : "";
      std::string t = Trim(f);
      if (t.empty()) {
        v.push_back(0);
        continue;
      }
      if (t.find_first_of(" \t") != std::string::npos) {
        Fail(field, "columns " + std::to_string(5 * k + 1) + "-" + std::to_string(5 * k + 5) +
                        " hold '" + t + "'; OTIS reads each value from its own 5-column field (I5)");
      }
      char* end = nullptr;
      long x = std::strtol(t.c_str(), &end, 10);
      if (*end != '\0') Fail(field, "expected an integer in columns " + std::to_string(5 * k + 1) +
                                        "-" + std::to_string(5 * k + 5) + ", found '" + t + "'");
      v.push_back(static_cast<int>(x));
    }
    return v;
  }

  [[noreturn]] void Fail(const std::string& field, const std::string& what) const {
    throw ConfigError(Located(label_, static_cast<int>(pos_), field, what));
  }
  static std::string Trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  }

 private:
  bool Push(const std::string& t, const std::string& field, std::vector<double>* v, bool* any) {
    char* end = nullptr;
    double x = std::strtod(t.c_str(), &end);
    if (end == t.c_str() || *end != '\0') {
      if (!*any) Fail(field, "expected a number, found '" + t + "'");
      return false;  // a label after the values
    }
    // strtod reads "nan", "inf" and overflows (1e999) as non-finite values: no OTIS
    // quantity can be one, and they would reach the solver as NaN (issue #9).
    if (!std::isfinite(x)) Fail(field, "expected a finite number, found '" + t + "'");
    v->push_back(x);
    *any = true;
    return true;
  }

  std::string label_;
  std::vector<std::string> lines_;
  size_t pos_ = 0;
};

std::string Join(const std::string& dir, const std::string& name) {
  if (!name.empty() && name[0] == '/') return name;
  return dir + "/" + name;
}

void ReadParams(OtisDeck* d) {
  const std::string label = d->params_file;
  DeckFile f(Join(d->dir, d->params_file), label);
  d->title = f.Text("TITLE");
  d->print_option = f.Int("PRTOPT");
  if (d->print_option != 1 && d->print_option != 2) f.Fail("PRTOPT", "must be 1 or 2");
  d->print_step_h = f.Real("PSTEP");
  d->time_step_h = f.Real("TSTEP");
  d->start_h = f.Real("TSTART");
  d->final_h = f.Real("TFINAL");
  d->xstart_m = f.Real("XSTART");
  d->downstream_flux = f.Real("DSBOUND");
  d->downstream_flux_line = f.line();
  int nreach = f.Int("NREACH");
  if (nreach < 1) f.Fail("NREACH", "must be >= 1");
  if (!d->SteadyState()) {
    if (!(d->time_step_h > 0)) f.Fail("TSTEP", "must be > 0 for a dynamic simulation");
    if (!(d->print_step_h > 0)) f.Fail("PSTEP", "must be > 0 for a dynamic simulation");
    if (!(d->final_h > d->start_h)) f.Fail("TFINAL", "must be > TSTART (or 0 for steady state)");
    // Bounded so that the step and print counts fit their integers and the print times fit
    // in memory (found by fuzz_otis: a tiny PSTEP over a long run asked for 2 GB of times).
    const double steps = (d->final_h - d->start_h) / d->time_step_h;
    if (!(steps <= 1e9)) {
      f.Fail("TSTEP", "(TFINAL - TSTART) / TSTEP is more than 10^9 time steps");
    }
    const double prints = steps / std::max(1.0, std::round(d->print_step_h / d->time_step_h));
    if (!(prints <= 1e7)) {
      f.Fail("PSTEP", "more than 10^7 print times ((TFINAL - TSTART) / max(PSTEP, TSTEP))");
    }
  }
  long long total_segments = 0;
  for (int r = 0; r < nreach; ++r) {
    auto v = f.Reals(5, "reach " + std::to_string(r + 1) + " NSEG RCHLEN DISP AREA2 ALPHA");
    OtisReach reach;
    // Bounded before the conversion to int (undefined beyond its range) and so that the
    // deck's segments fit in memory and in an int however many reaches there are.
    if (!(v[0] >= 1 && v[0] <= kMaxOtisSegments) || v[0] != std::floor(v[0])) {
      f.Fail("NSEG", "must be an integer from 1 to " + std::to_string(kMaxOtisSegments));
    }
    total_segments += static_cast<long long>(v[0]);
    if (total_segments > kMaxOtisSegments) {
      f.Fail("NSEG", "the reaches hold more than " + std::to_string(kMaxOtisSegments) +
                         " segments in total");
    }
    reach.num_segments = static_cast<int>(v[0]);
    reach.length_m = v[1];
    reach.dispersion_m2s = v[2];
    reach.storage_area_m2 = v[3];
    reach.alpha_per_s = v[4];
    if (reach.num_segments < 1 || v[0] != std::floor(v[0])) f.Fail("NSEG", "must be an integer >= 1");
    if (!(reach.length_m > 0)) f.Fail("RCHLEN", "must be > 0");
    if (reach.alpha_per_s > 0 && !(reach.storage_area_m2 > 0)) f.Fail("AREA2", "must be > 0 when ALPHA > 0");
    d->reaches.push_back(reach);
  }
  auto flags = f.FixedInts(3, "NSOLUTE IDECAY ISORB");
  d->num_solutes = flags[0];
  d->decay_option = flags[1];
  d->sorption_option = flags[2];
  if (d->num_solutes < 1) f.Fail("NSOLUTE", "must be >= 1");
  // Tables of NSOLUTE x NREACH values are allocated before they are read.
  if (d->num_solutes > kMaxOtisSolutes) {
    f.Fail("NSOLUTE", "must be <= " + std::to_string(kMaxOtisSolutes));
  }
  if (d->decay_option != 0 && d->decay_option != 1) f.Fail("IDECAY", "must be 0 or 1");
  if (d->sorption_option != 0 && d->sorption_option != 1) f.Fail("ISORB", "must be 0 or 1");
  int ns = d->num_solutes;
  d->lambda.assign(ns, std::vector<double>(nreach, 0.0));
  d->lambda2.assign(ns, std::vector<double>(nreach, 0.0));
  d->sorption.assign(ns, std::vector<Sorption>(nreach));
  if (d->decay_option == 1) {
    for (int s = 0; s < ns; ++s) {
      for (int r = 0; r < nreach; ++r) {
        auto v = f.Reals(2, "LAMBDA LAMBDA2 (solute " + std::to_string(s + 1) + ", reach " +
                                std::to_string(r + 1) + ")");
        d->lambda[s][r] = v[0];
        d->lambda2[s][r] = v[1];
      }
    }
  }
  if (d->sorption_option == 1) {
    for (int s = 0; s < ns; ++s) {
      for (int r = 0; r < nreach; ++r) {
        auto v = f.Reals(5, "LAMHAT LAMHAT2 RHO KD CSBACK (solute " + std::to_string(s + 1) +
                                ", reach " + std::to_string(r + 1) + ")");
        Sorption& so = d->sorption[s][r];
        so.main_rate_per_s = v[0];
        so.storage_rate_per_s = v[1];
        so.sediment_kg_per_m3 = v[2];
        so.kd_m3_per_kg = v[3];
        so.storage_background_g_m3 = v[4];
        if (so.storage_rate_per_s > 0 && !(d->reaches[r].storage_area_m2 > 0)) {
          f.Fail("LAMHAT2", "storage-zone sorption needs AREA2 > 0");
        }
      }
    }
  }
  auto pr = f.FixedInts(2, "NPRINT IOPT");
  if (pr[0] < 0) f.Fail("NPRINT", "must be >= 0");
  if (pr[1] != 0 && pr[1] != 1) f.Fail("IOPT", "must be 0 or 1");
  d->interpolation_option = pr[1];
  for (int k = 0; k < pr[0]; ++k) d->print_locations_m.push_back(f.Real("PRTLOC"));
  auto bd = f.FixedInts(2, "NBOUND IBOUND");
  if (bd[0] < 1) f.Fail("NBOUND", "must be >= 1");
  if (bd[1] < 1 || bd[1] > 3) f.Fail("IBOUND", "must be 1, 2 or 3");
  d->boundary_option = bd[1];
  for (int k = 0; k < bd[0]; ++k) {
    auto v = f.Reals(1 + ns, "USTIME USBC");
    if (k > 0 && !(v[0] > d->boundary_times_h.back())) f.Fail("USTIME", "times must increase");
    d->boundary_times_h.push_back(v[0]);
    d->boundary_values.push_back(std::vector<double>(v.begin() + 1, v.end()));
  }
}

void ReadFlow(OtisDeck* d) {
  const std::string label = d->flow_file;
  DeckFile f(Join(d->dir, d->flow_file), label);
  int ns = d->num_solutes;
  int nreach = static_cast<int>(d->reaches.size());
  d->flow_step_h = f.Real("QSTEP");
  d->unsteady = d->flow_step_h > 0;
  if (!d->unsteady) {
    d->upstream_flow_m3s = f.Real("QSTART");
    for (int r = 0; r < nreach; ++r) {
      auto v = f.Reals(3 + ns, "reach " + std::to_string(r + 1) + " QLATIN QLATOUT AREA CLATIN");
      d->reach_lateral_inflow_m2s.push_back(v[0]);
      d->reach_lateral_outflow_m2s.push_back(v[1]);
      d->reach_area_m2.push_back(v[2]);
      d->reach_lateral_concentration.push_back(std::vector<double>(v.begin() + 3, v.end()));
      if (!(v[2] > 0)) f.Fail("AREA", "must be > 0");
    }
    return;
  }
  if (d->SteadyState()) f.Fail("QSTEP", "unsteady flow with a steady-state run (TFINAL = 0) is not supported");
  int nflow = f.Int("NFLOW");
  if (nflow < 1) f.Fail("NFLOW", "must be >= 1");
  for (int k = 0; k < nflow; ++k) d->flow_locations_m.push_back(f.Real("FLOWLOC"));
  while (!f.AtEnd()) {
    OtisFlowSet set;
    set.lateral_inflow_m2s = f.Reals(nflow, "QLATIN");
    set.flow_m3s = f.Reals(nflow, "QVALUE");
    set.area_m2 = f.Reals(nflow, "AREA");
    for (int s = 0; s < ns; ++s) set.lateral_concentration.push_back(f.Reals(nflow, "CLATIN"));
    d->flow_sets.push_back(set);
  }
  if (d->flow_sets.empty()) f.Fail("QLATIN", "no flow data");
}

// Fortran fixed-width real field (Fw.0 / Dw.d read): blank = 0, 'D' exponent allowed.
double FixedReal(DeckFile& f, const std::string& line, size_t from, size_t width,
                 const std::string& field) {
  std::string t = from < line.size() ? DeckFile::Trim(line.substr(from, width)) : "";
  if (t.empty()) return 0.0;
  for (char& c : t) {
    if (c == 'd' || c == 'D') c = 'E';
  }
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (end == t.c_str() || *end != '\0') {
    f.Fail(field, "expected a number in columns " + std::to_string(from + 1) + "-" +
                      std::to_string(from + width) + " (Fortran F" + std::to_string(width) +
                      ".0), found '" + t + "'");
  }
  return v;
}

// OTIS-P data file (subroutine REACHEST): for each reach, N in columns 1-5 (I5), then N
// records with the time or distance in columns 1-15 and the concentration in 16-30 (F15.0).
// Checks as DATACHK (dynamic) and WEIGHTS2 (steady state) do.
void ReadObservations(OtisDeck* d) {
  OtisEstimationInput& e = d->estimation;
  const std::string label = e.data_file;
  DeckFile f(Join(d->dir, e.data_file), label);
  const int nreach = static_cast<int>(d->reaches.size());
  double total_m = d->xstart_m;
  for (const auto& r : d->reaches) total_m += r.length_m;
  const double first_centre = d->xstart_m + 0.5 * d->SegmentLength(0);
  const double last_centre = total_m - 0.5 * d->SegmentLength(d->NumSegments() - 1);
  int with_data = 0;
  for (int r = 0; r < nreach; ++r) {
    const std::string reach = "reach " + std::to_string(r + 1);
    const int n = f.FixedInts(1, reach + ": number of observations N (columns 1-5)")[0];
    if (n < 0) f.Fail(reach + ": N", "must be >= 0");
    std::vector<OtisObservation> obs;
    for (int k = 0; k < n; ++k) {
      std::string l;
      const std::string field = reach + ", observation " + std::to_string(k + 1);
      if (!f.NextRecord(true, &l)) f.Fail(field, "missing (end of file): expected " + std::to_string(n));
      OtisObservation o;
      o.where = FixedReal(f, l, 0, 15, field + " (time or distance)");
      o.concentration = FixedReal(f, l, 15, 15, field + " (concentration)");
      o.line = f.line();
      if (!d->SteadyState()) {
        const double tstep = d->time_step_h;
        if (k == 0 && !(o.where > d->start_h + tstep)) {
          f.Fail(field, "the first observation must be later than TSTART + TSTEP = " +
                            std::to_string(d->start_h + tstep) + " h");
        }
        if (k > 0 && o.where < obs.back().where) f.Fail(field, "observation times must increase");
        if (k > 0 && o.where - obs.back().where < tstep) {
          f.Fail(field, "observations must be at least TSTEP = " + std::to_string(tstep) + " h apart");
        }
      } else {
        if (o.where > last_centre) {
          f.Fail(field, "distance " + std::to_string(o.where) + " m lies past the centre of the last segment (" +
                            std::to_string(last_centre) + " m)");
        }
        // OTIS-P (WEIGHTS2) moves a distance in the upstream half of the first segment to
        // the first segment's centre.
        o.where = std::max(o.where, first_centre);
      }
      obs.push_back(o);
    }
    if (n > 0) ++with_data;
    e.observations.push_back(obs);
  }
  if (with_data == 0) f.Fail("N", "no reach has observations");
  if (!d->SteadyState() && static_cast<int>(d->print_locations_m.size()) < with_data) {
    throw ConfigError(Located(d->params_file, 0, "NPRINT",
                              "OTIS-P compares the observations of the k-th reach with data with the "
                              "k-th print location: " + std::to_string(with_data) +
                                  " reaches have data but NPRINT is " +
                                  std::to_string(d->print_locations_m.size())));
  }
}

// STARPAC input file: IWEIGHT, IVAPRX, MIT, NPRT (I5, one per record), DELTA, STOPP,
// STOPSS (columns 1-13, one per record), then IFIXED (I5) and SCALE (columns 6-18) for each
// of the ten parameters.
void ReadStarpac(OtisDeck* d) {
  OtisEstimationInput& e = d->estimation;
  DeckFile f(Join(d->dir, e.star_file), e.star_file);
  e.weight_option = f.FixedInts(1, "IWEIGHT")[0];
  if (e.weight_option != 0 && e.weight_option != 1) f.Fail("IWEIGHT", "must be 0 or 1");
  if (e.weight_option == 1) {
    f.Fail("IWEIGHT", "weights revised to 1/PV^2 at every model call (IWEIGHT = 1) are not supported; use 0");
  }
  e.covariance_option = f.FixedInts(1, "IVAPRX")[0];
  e.max_iterations = f.FixedInts(1, "MIT")[0];
  if (e.max_iterations < 1) f.Fail("MIT", "must be >= 1");
  e.print_option = f.FixedInts(1, "NPRT")[0];
  auto real13 = [&](const std::string& field) {
    std::string l;
    if (!f.NextRecord(true, &l)) f.Fail(field, "missing (end of file)");
    return FixedReal(f, l.substr(0, l.find('|')), 0, 13, field);
  };
  e.max_first_change = real13("DELTA");
  e.parameter_tolerance = real13("STOPP");
  e.sum_of_squares_tolerance = real13("STOPSS");
  for (int k = 0; k < kOtisNumParameters; ++k) {
    const std::string field = std::string("IFIXED SCALE (") + kOtisParameterNames[k] + ")";
    std::string l;
    if (!f.NextRecord(true, &l)) f.Fail(field, "missing (end of file)");
    l = l.substr(0, l.find('|'));
    const std::string flag = DeckFile::Trim(l.substr(0, std::min<size_t>(5, l.size())));
    char* end = nullptr;
    const long v = std::strtol(flag.c_str(), &end, 10);
    if (flag.empty() || *end != '\0') f.Fail(field, "expected IFIXED (0 or 1) in columns 1-5, found '" + flag + "'");
    e.fixed[k] = v != 0;
    e.scale[k] = FixedReal(f, l, 5, 13, field);
  }
  bool any = false;
  for (bool fx : e.fixed) any = any || !fx;
  if (!any) f.Fail("IFIXED", "every parameter is fixed: nothing to estimate");
  if (d->sorption_option == 0) {
    for (int k = 6; k < kOtisNumParameters; ++k) {
      if (!e.fixed[k]) {
        f.Fail(std::string("IFIXED (") + kOtisParameterNames[k] + ")",
               "a sorption parameter can only be estimated when ISORB = 1");
      }
    }
  }
  if (d->decay_option == 0 && (!e.fixed[4] || !e.fixed[5])) {
    f.Fail("IFIXED (LAMBDA, LAMBDA2)", "decay rates can only be estimated when IDECAY = 1");
  }
}

// Linear interpolation of values given at increasing locations (constant outside).
double Interpolate(const std::vector<double>& x, const std::vector<double>& y, double at) {
  if (at <= x.front()) return y.front();
  if (at >= x.back()) return y.back();
  size_t k = std::upper_bound(x.begin(), x.end(), at) - x.begin() - 1;
  double w = (at - x[k]) / (x[k + 1] - x[k]);
  return y[k] + w * (y[k + 1] - y[k]);
}

// Reach index and position of every segment.
struct Layout {
  std::vector<int> reach;
  std::vector<double> dx, start;
};

Layout MakeLayout(const OtisDeck& d) {
  Layout l;
  double x = d.xstart_m;
  for (size_t r = 0; r < d.reaches.size(); ++r) {
    double dx = d.reaches[r].length_m / d.reaches[r].num_segments;
    for (int k = 0; k < d.reaches[r].num_segments; ++k) {
      l.reach.push_back(static_cast<int>(r));
      l.dx.push_back(dx);
      l.start.push_back(x);
      x += dx;
    }
  }
  return l;
}

// OTIS's print times: TSTART, then every IPRINT = PSTEP/TSTEP steps. OTIS runs past
// TFINAL: the shipped outputs end at the last multiple of IPRINT not beyond NSTEP + IPRINT
// + 1 steps (NSTEP = (TFINAL - TSTART)/TSTEP), which reproduces every shipped file's
// length (app1 318 steps, app3 302, app4 10220).
std::vector<double> PrintTimesH(const OtisDeck& d) {
  long nstep = std::lround((d.final_h - d.start_h) / d.time_step_h);
  long iprint = std::max(1L, std::lround(d.print_step_h / d.time_step_h));
  long last = (nstep + iprint + 1) / iprint;
  std::vector<double> t;
  for (long k = 0; k <= last; ++k) t.push_back(d.start_h + k * iprint * d.time_step_h);
  return t;
}

}  // namespace

const std::array<const char*, kOtisNumParameters> kOtisParameterNames = {
    "DISP", "AREA", "AREA2", "ALPHA", "LAMBDA", "LAMBDA2", "RHO", "KD", "LAMHAT", "LAMHAT2"};

int OtisDeck::NumSegments() const {
  int n = 0;
  for (const auto& r : reaches) n += r.num_segments;
  return n;
}

double OtisDeck::SegmentLength(int segment) const {
  for (const auto& r : reaches) {
    if (segment < r.num_segments) return r.length_m / r.num_segments;
    segment -= r.num_segments;
  }
  return 0.0;
}

double OtisDeck::SegmentCentre(int segment) const {
  Layout l = MakeLayout(*this);
  return l.start[segment] + 0.5 * l.dx[segment];
}

OtisDeck ReadOtisDeck(const std::string& deck_dir) {
  OtisDeck d;
  d.dir = deck_dir;
  DeckFile control(Join(deck_dir, "control.inp"), "control.inp");
  d.params_file = control.Text("parameter file");
  d.flow_file = control.Text("flow file");
  if (d.params_file.empty() || d.flow_file.empty()) control.Fail("", "names of the parameter and flow files expected");
  // Read the parameters first: NSOLUTE and ISORB say how many output names follow.
  ReadParams(&d);
  const int outputs = d.num_solutes * (d.sorption_option == 1 ? 2 : 1);
  // The remaining names. OTIS reads one output file per solute (and one sorption output
  // per solute when ISORB = 1); OTIS-P first reads four more: the data file, the STARPAC
  // input file, the parameter output file and the STARPAC output file (app5, app6).
  std::vector<std::string> names;
  std::vector<int> lines;
  std::string record;
  while (control.NextRecord(true, &record)) {
    names.push_back(DeckFile::Trim(record.substr(0, record.find('|'))));
    lines.push_back(control.line());
  }
  size_t first_output = 0;
  if (static_cast<int>(names.size()) == outputs + 4) {
    d.has_estimation = true;
    OtisEstimationInput& e = d.estimation;
    e.data_file = names[0];
    e.star_file = names[1];
    e.params_output_file = names[2];
    e.star_output_file = names[3];
    first_output = 4;
  } else if (static_cast<int>(names.size()) < outputs) {
    throw ConfigError(Located(
        "control.inp", names.empty() ? control.line() : lines.back(),
        static_cast<int>(names.size()) < d.num_solutes ? "solute output file" : "sorption output file",
        "missing: expected " + std::to_string(outputs) + " output file name(s) (one per solute" +
            std::string(d.sorption_option == 1 ? ", one sorption file per solute" : "") + "), found " +
            std::to_string(names.size())));
  } else if (static_cast<int>(names.size()) != outputs) {
    const size_t extra = static_cast<size_t>(outputs);
    throw ConfigError(Located(
        "control.inp", lines[extra], "'" + names[extra] + "'",
        "more file names than OTIS reads (parameter file, flow file, one output file per solute, "
        "one sorption output file per solute when ISORB = 1) and not an OTIS-P control file "
        "(which names data, STARPAC input, parameter output and STARPAC output files before them)"));
  }
  for (int s = 0; s < d.num_solutes; ++s) d.solute_outputs.push_back(names[first_output + s]);
  if (d.sorption_option == 1) {
    for (int s = 0; s < d.num_solutes; ++s) {
      d.sorption_outputs.push_back(names[first_output + d.num_solutes + s]);
    }
  }
  ReadFlow(&d);
  if (d.has_estimation) {
    if (d.num_solutes != 1) {
      throw ConfigError(Located(d.params_file, 0, "NSOLUTE",
                                "OTIS-P estimates the parameters of one solute; NSOLUTE must be 1"));
    }
    ReadObservations(&d);
    ReadStarpac(&d);
  }
  return d;
}

TransportProblem OtisProblem(const OtisDeck& d) {
  if (d.downstream_flux != 0.0) {
    throw ConfigError(Located(d.params_file, d.downstream_flux_line, "DSBOUND",
                              "a non-zero downstream dispersive flux is not supported by the "
                              "qingshui scheme (use 0, or --scheme otis)"));
  }
  Layout l = MakeLayout(d);
  int n = static_cast<int>(l.reach.size());
  int ns = d.num_solutes;
  TransportProblem p;
  p.num_species = ns;
  p.segments.resize(n);
  for (int i = 0; i < n; ++i) {
    const OtisReach& r = d.reaches[l.reach[i]];
    Segment& g = p.segments[i];
    g.downstream = i + 1 < n ? i + 1 : -1;
    g.length_m = l.dx[i];
    g.dispersion_m2s = r.dispersion_m2s;
    g.storage_area_m2 = r.storage_area_m2;
    g.exchange_per_s = r.alpha_per_s;
    g.decay_per_s.resize(ns);
    g.storage_decay_per_s.resize(ns);
    for (int s = 0; s < ns; ++s) {
      g.decay_per_s[s] = d.lambda[s][l.reach[i]];
      g.storage_decay_per_s[s] = d.lambda2[s][l.reach[i]];
    }
    if (d.sorption_option == 1) {
      for (int s = 0; s < ns; ++s) g.sorption.push_back(d.sorption[s][l.reach[i]]);
    }
  }
  double t0 = d.start_h * kHour;
  // Flow field.
  auto steady_state = [&]() {
    FlowState f;
    f.flow_m3s.resize(n);
    f.area_m2.resize(n);
    f.lateral_inflow_m2s.resize(n);
    f.lateral_outflow_m2s.resize(n);
    f.headwater_inflow_m3s.assign(n, 0.0);
    f.lateral_concentration_g_m3.resize(static_cast<size_t>(n) * ns);
    double q = d.upstream_flow_m3s;
    f.headwater_inflow_m3s[0] = q;
    for (int i = 0; i < n; ++i) {
      int r = l.reach[i];
      f.area_m2[i] = d.reach_area_m2[r];
      f.lateral_inflow_m2s[i] = d.reach_lateral_inflow_m2s[r];
      f.lateral_outflow_m2s[i] = d.reach_lateral_outflow_m2s[r];
      // Steady OTIS flow: Q grows with the net lateral inflow along the channel.
      q += (d.reach_lateral_inflow_m2s[r] - d.reach_lateral_outflow_m2s[r]) * l.dx[i];
      f.flow_m3s[i] = std::max(q, 0.0);
      for (int s = 0; s < ns; ++s) {
        f.lateral_concentration_g_m3[static_cast<size_t>(i) * ns + s] = d.reach_lateral_concentration[r][s];
      }
    }
    return f;
  };
  if (!d.unsteady) {
    p.flow.times_s = {t0};
    p.flow.states = {steady_state()};
  } else {
    for (size_t k = 0; k < d.flow_sets.size(); ++k) {
      const OtisFlowSet& set = d.flow_sets[k];
      const auto& x = d.flow_locations_m;
      FlowState f;
      f.flow_m3s.resize(n);
      f.area_m2.resize(n);
      f.lateral_inflow_m2s.resize(n);
      f.headwater_inflow_m3s.assign(n, 0.0);
      f.lateral_concentration_g_m3.resize(static_cast<size_t>(n) * ns);
      f.headwater_inflow_m3s[0] = Interpolate(x, set.flow_m3s, d.xstart_m);
      for (int i = 0; i < n; ++i) {
        double centre = l.start[i] + 0.5 * l.dx[i], face = l.start[i] + l.dx[i];
        f.flow_m3s[i] = Interpolate(x, set.flow_m3s, face);
        f.area_m2[i] = Interpolate(x, set.area_m2, centre);
        f.lateral_inflow_m2s[i] = Interpolate(x, set.lateral_inflow_m2s, centre);
        for (int s = 0; s < ns; ++s) {
          f.lateral_concentration_g_m3[static_cast<size_t>(i) * ns + s] =
              Interpolate(x, set.lateral_concentration[s], centre);
        }
      }
      // OTIS holds each flow set until the next one is due (it reads a new set every QSTEP,
      // subroutine QCHANGE): the flow is a step function of time, which a second state just
      // before the next set's time reproduces in the linearly interpolated flow field.
      const double tk = t0 + k * d.flow_step_h * kHour;
      p.flow.times_s.push_back(tk);
      p.flow.states.push_back(f);
      if (k + 1 < d.flow_sets.size()) {
        p.flow.times_s.push_back(tk + d.flow_step_h * kHour * (1.0 - 1e-9));
        p.flow.states.push_back(f);
      }
    }
  }
  // Upstream boundary (IBOUND 1: step concentration, 2: step mass flux, 3: linearly
  // interpolated concentration).
  Forcing fo;
  UpstreamBoundary b;
  b.segment = 0;
  b.kind = d.boundary_option == 2 ? UpstreamBoundary::Kind::kOtisFlux
                                  : UpstreamBoundary::Kind::kConcentration;
  for (int s = 0; s < ns; ++s) {
    TimeSeries ts;
    ts.interpolation = d.boundary_option == 3 ? TimeSeries::Interpolation::kLinear
                                              : TimeSeries::Interpolation::kStep;
    for (size_t k = 0; k < d.boundary_times_h.size(); ++k) {
      ts.times_s.push_back(d.boundary_times_h[k] * kHour);
      ts.values.push_back(d.boundary_values[k][s]);
    }
    b.series.push_back(ts);
  }
  fo.boundaries = {b};
  // OTIS's initial condition (subroutine STEADY): the steady state for the flow at TSTART
  // and the first boundary record, storage zone and sorbate in equilibrium - computed by the
  // solver with this scheme's own steady discretization (Forcing::initial_steady_state).
  fo.initial_steady_state = true;
  // OTIS takes the first boundary record (USBC of the first USTIME) whatever TSTART is, and
  // the flow at TSTART: the earlier of the two times gives both (a series holds its first
  // value before its first time, the flow field its first state).
  if (!d.boundary_times_h.empty()) {
    fo.initial_steady_time_s = std::min(t0, d.boundary_times_h.front() * kHour);
  }
  p.members = {fo};
  std::vector<double> centres(n);
  for (int i = 0; i < n; ++i) centres[i] = l.start[i] + 0.5 * l.dx[i];
  // Print locations: the value at the location itself, interpolated linearly between the
  // two nearest segment centres (OTIS IOPT = 1), whatever IOPT says. OTIS's IOPT = 0 prints
  // the segment whose centre lies at or above the location, i.e. the concentration up to
  // half a segment upstream (5 m on a 10 m grid: 12 s early at 0.4 m/s); the compatibility
  // scheme keeps that (RunOtisScheme), this scheme answers for the location asked for.
  // (A storage zone on one side only is not interpolated: Station, transport.h.)
  for (double x : d.print_locations_m) {
    Station st;
    int k = static_cast<int>(std::upper_bound(centres.begin(), centres.end(), x) - centres.begin()) - 1;
    if (k < 0) {
      st.segment = 0;
    } else if (k >= n - 1) {
      st.segment = n - 1;
    } else {
      st.segment = k;
      st.next_segment = k + 1;
      st.weight = (x - centres[k]) / (centres[k + 1] - centres[k]);
    }
    p.stations.push_back(st);
  }
  if (d.SteadyState()) {
    p.start_time_s = p.end_time_s = t0;
  } else {
    std::vector<double> th = PrintTimesH(d);
    for (double t : th) p.output_times_s.push_back(t * kHour);
    p.start_time_s = t0;
    p.end_time_s = p.output_times_s.back();
    p.time_step_s = d.time_step_h * kHour;
  }
  return p;
}

TransportOptions OtisOptions(const OtisDeck& d) {
  TransportOptions o;
  o.steady_state = d.SteadyState();
  o.store_fields = d.SteadyState();  // the steady-state output lists every segment
  return o;
}

std::string OtisNumber(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6E", v);
  std::string s = buf;
  // Fortran Ew.d drops the 'E' when the exponent needs three digits: 1.000000-100.
  size_t e = s.find('E');
  if (e != std::string::npos && s.size() - e - 2 > 2) s.erase(e, 1);
  if (s.size() < 14) s = std::string(14 - s.size(), ' ') + s;
  return s;
}

std::vector<OtisOutputFile> FormatOtisOutputs(const OtisDeck& d, const TransportResult& r) {
  std::vector<OtisOutputFile> files;
  int ns = d.num_solutes;
  int nst = r.num_stations;
  auto station = [&](const std::vector<double>& v, int t, int q, int s) {
    return v[r.Index(0, t, q, nst, s)];
  };
  for (int s = 0; s < ns; ++s) {
    std::string out, sorb;
    if (d.SteadyState()) {
      // Steady state: one line per segment, distance of its centre first.
      Layout l = MakeLayout(d);
      for (int i = 0; i < r.num_segments; ++i) {
        size_t k = r.Index(0, 0, i, r.num_segments, s);
        double x = l.start[i] + 0.5 * l.dx[i];
        out += OtisNumber(x) + OtisNumber(r.concentration_g_m3[k]);
        if (d.print_option == 2) out += OtisNumber(r.storage_g_m3[k]);
        out += "\n";
        sorb += OtisNumber(x) + OtisNumber(r.sorbed_g_kg[k]) + "\n";
      }
    } else {
      for (int t = 0; t < r.num_times; ++t) {
        std::string line = OtisNumber(r.times_s[t] / kHour);
        std::string sline = line;
        for (int q = 0; q < nst; ++q) line += OtisNumber(station(r.station_concentration_g_m3, t, q, s));
        if (d.print_option == 2) {
          for (int q = 0; q < nst; ++q) line += OtisNumber(station(r.station_storage_g_m3, t, q, s));
        }
        for (int q = 0; q < nst; ++q) sline += OtisNumber(station(r.station_sorbed_g_kg, t, q, s));
        out += line + "\n";
        sorb += sline + "\n";
      }
    }
    files.push_back({d.solute_outputs[s], out});
    if (d.sorption_option == 1) files.push_back({d.sorption_outputs[s], sorb});
  }
  return files;
}

}  // namespace qingshui
