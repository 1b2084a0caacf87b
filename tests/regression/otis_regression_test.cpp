// OTIS compatibility: `qingshui otis` on the decks shipped with OTIS (Runkel 1998) must
// write the same files (same lines, same print times, same column layout) with values
// within 1% of each column's peak. Where that fails, the test demands proof that OTIS's
// own discretization is at fault: against a run refined in time (TSTEP / k, otherwise the
// same deck) OTIS's error must exceed 1% and ours must be smaller than OTIS's. For app3
// both are also compared with the analytic solution (Runkel 1996). Tolerances are never
// loosened to pass; the measured numbers are printed. (Since issue #14 the default scheme
// reports at the print location itself, not at OTIS's IOPT = 0 segment, so part of a
// difference to OTIS is OTIS's location; the test then demands that ours is the closer of
// the two to the refined run, and otis_fidelity_test.cpp holds both to the full contract.)
//
// The OTIS compatibility scheme (`--scheme otis`, OTIS's own numerical method) must
// reproduce every shipped file to 1e-5 of each column's peak (OTIS prints 7 significant
// digits, so this allows last-digit rounding only); its features that the shipped decks do
// not exercise (DSBOUND, IBOUND = 3, IOPT = 0 inside a segment, non-uniform grids) are
// checked on small decks written by the tests.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "qingshui/core/otis.h"
#include "qingshui/core/transport.h"
#include "test_paths.h"

namespace qingshui {
namespace {

using Table = std::map<long, std::vector<double>>;  // key: time in 1e-4 h

double ParseFortran(const std::string& s) {
  // 1PE14.6 drops the 'E' for three-digit exponents: 3.375394-117.
  static const std::regex three(R"((\d)([+-]\d{3})$)");
  return std::stod(std::regex_replace(s, three, "$1E$2"));
}

Table ParseTable(const std::string& text) {
  Table t;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string tok;
    std::vector<double> v;
    while (ls >> tok) v.push_back(ParseFortran(tok));
    if (v.empty()) continue;
    t[std::lround(v[0] * 1e4)] = std::vector<double>(v.begin() + 1, v.end());
  }
  return t;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string Deck(const std::string& app) {
  return testing::SourcePath("tests/regression/otis/" + app);
}

// Runs the CLI on a deck and returns the output directory.
std::string RunCli(const std::string& deck, const std::string& options = "") {
  std::string out_dir = testing::TempDir("otis");
  std::string output;
  int rc = testing::RunCommand(
      testing::CliPath() + " otis " + deck + " --out-dir " + out_dir + " " + options, &output);
  EXPECT_EQ(rc, 0) << output;
  return out_dir;
}

// Our output formatted for a refined copy of the deck (TSTEP / k).
Table Refined(const OtisDeck& deck, int k, int file_index) {
  OtisDeck fine = deck;
  fine.time_step_h /= k;
  transport::TransportResult r =
      transport::TransportSolver(OtisOptions(fine)).Run(OtisProblem(fine));
  return ParseTable(FormatOtisOutputs(fine, r)[file_index].contents);
}

double MaxDiff(const Table& a, const Table& b, size_t col) {
  double d = 0;
  for (const auto& [t, row] : b) {
    auto it = a.find(t);
    if (it == a.end()) continue;
    d = std::max(d, std::fabs(it->second[col] - row[col]));
  }
  return d;
}

// Compares every output file of a deck with OTIS's.
void CheckDeck(const std::string& app, int refine) {
  std::string deck_dir = Deck(app);
  OtisDeck deck = ReadOtisDeck(deck_dir);
  std::string out_dir = RunCli(deck_dir);
  std::vector<std::string> names = deck.solute_outputs;
  names.insert(names.end(), deck.sorption_outputs.begin(), deck.sorption_outputs.end());
  for (size_t f = 0; f < names.size(); ++f) {
    std::string ours_text = ReadFile(out_dir + "/" + names[f]);
    std::string otis_text = ReadFile(deck_dir + "/" + names[f]);
    Table ours = ParseTable(ours_text), otis = ParseTable(otis_text);
    // Same print times, same number of columns, same fixed-width layout.
    ASSERT_EQ(ours.size(), otis.size()) << app << "/" << names[f];
    auto a = ours.begin();
    for (auto b = otis.begin(); b != otis.end(); ++a, ++b) {
      ASSERT_EQ(a->first, b->first) << app << "/" << names[f];
      ASSERT_EQ(a->second.size(), b->second.size());
    }
    std::string first_ours = ours_text.substr(0, ours_text.find('\n'));
    std::string first_otis = otis_text.substr(0, otis_text.find('\n'));
    EXPECT_EQ(first_ours.size(), first_otis.size()) << "line width differs";
    Table fine;
    for (size_t c = 0; c < otis.begin()->second.size(); ++c) {
      double peak = 0;
      for (const auto& [t, row] : otis) peak = std::max(peak, std::fabs(row[c]));
      if (peak == 0) {
        EXPECT_EQ(MaxDiff(ours, otis, c), 0.0);
        continue;
      }
      double rel = MaxDiff(ours, otis, c) / peak;
      std::printf("%s/%s column %zu: |ours - OTIS| = %.3f%% of peak %.4g", app.c_str(),
                  names[f].c_str(), c + 1, 100 * rel, peak);
      if (rel <= 0.01) {
        std::printf("\n");
        continue;
      }
      // Outside 1%: show that OTIS's time discretization is the cause.
      if (fine.empty()) fine = Refined(deck, refine, static_cast<int>(f));
      double otis_err = MaxDiff(otis, fine, c) / peak;
      double our_err = MaxDiff(ours, fine, c) / peak;
      std::printf("; vs TSTEP/%d run: OTIS %.3f%%, ours %.3f%%\n", refine, 100 * otis_err,
                  100 * our_err);
      EXPECT_LT(our_err, otis_err) << app << " column " << c + 1
                                   << ": differs from OTIS by more than 1% and is not closer "
                                      "to the refined run than OTIS";
    }
  }
}

TEST(OtisRegressionTest, App1UvasCreekChloride) { CheckDeck("app1", 20); }
TEST(OtisRegressionTest, App2UvasCreekStrontiumSorption) { CheckDeck("app2", 20); }
TEST(OtisRegressionTest, App4HueyCreekUnsteadyFlowFluxBoundary) { CheckDeck("app4", 5); }
TEST(OtisRegressionTest, SteadyStateApp6StKevinGulch) { CheckDeck("app6/otis", 1); }

// Runkel (1996) analytic solution of app3 (pulse with decay, semi-infinite channel).
double Bear(double x, double t, double u, double D, double lambda, double c0) {
  if (t <= 0) return 0.0;
  double w = std::sqrt(u * u + 4.0 * lambda * D), s = 2.0 * std::sqrt(D * t);
  double b_arg = (x + w * t) / s;
  return 0.5 * c0 *
         (std::exp((u - w) * x / (2 * D)) * std::erfc((x - w * t) / s) +
          (b_arg > 25 ? 0.0 : std::exp((u + w) * x / (2 * D)) * std::erfc(b_arg)));
}

TEST(OtisRegressionTest, App3MoreAccurateThanOtisAgainstRunkel1996) {
  std::string deck_dir = Deck("app3");
  CheckDeck("app3", 10);
  std::string out_dir = RunCli(deck_dir);
  Table ours = ParseTable(ReadFile(out_dir + "/solute.out"));
  Table otis = ParseTable(ReadFile(deck_dir + "/solute.out"));
  const double xs[2] = {100.0, 2000.0};
  for (int c = 0; c < 2; ++c) {
    double e_ours = 0, e_otis = 0, max_ours = 0;
    for (const auto& [key, row] : otis) {
      double t = key * 1e-4 * 3600.0;
      double exact = Bear(xs[c], t - 3600, 0.1, 5.0, 1e-4, 100.0) -
                     Bear(xs[c], t - 10800, 0.1, 5.0, 1e-4, 100.0);
      e_otis = std::max(e_otis, std::fabs(row[c] - exact));
      e_ours = std::max(e_ours, std::fabs(ours.at(key)[c] - exact));
      max_ours = std::max(max_ours, ours.at(key)[c]);
    }
    std::printf("app3 x=%.0f m: max |error| vs Runkel (1996): ours %.4f, OTIS %.4f mg/L\n", xs[c],
                e_ours, e_otis);
    EXPECT_LT(e_ours, e_otis);
  }
}

TEST(OtisRegressionTest, UnsupportedFeatureNamesFileAndLine) {
  std::string dir = testing::TempDir("otis-bad");
  std::string src = Deck("app3");
  for (const char* f : {"control.inp", "q.inp"}) {
    std::ofstream(dir + "/" + f) << ReadFile(src + "/" + f);
  }
  std::string params = ReadFile(src + "/params.inp");
  params = std::regex_replace(params, std::regex(R"( 0\.0          \|      DSBOUND)"),
                              " 1.5          |      DSBOUND");
  std::ofstream(dir + "/params.inp") << params;
  std::string output;
  int rc = testing::RunCommand(testing::CliPath() + " otis " + dir + " --out-dir " + dir, &output);
  EXPECT_EQ(rc, 2);
  EXPECT_NE(output.find("params.inp:20: DSBOUND"), std::string::npos) << output;
}

// A control file with more names than OTIS reads that is not an OTIS-P control file
// either (OTIS-P decks, app5 and app6, are estimations: otisp_regression_test.cpp).
TEST(OtisRegressionTest, ExtraControlFileNamesAreRefused) {
  const std::string dir = testing::TempDir("otis-extra");
  for (const char* f : {"params.inp", "q.inp"}) {
    std::ofstream(dir + "/" + f) << ReadFile(Deck("app3") + "/" + f);
  }
  std::ofstream(dir + "/control.inp") << "params.inp\nq.inp\nsolute.out\nextra.out\n";
  std::string output;
  int rc = testing::RunCommand(testing::CliPath() + " otis " + dir + " --out-dir " + dir, &output);
  EXPECT_EQ(rc, 2) << output;
  EXPECT_NE(output.find("control.inp:4: 'extra.out': more file names than OTIS reads"),
            std::string::npos)
      << output;
}

// ---------------------------------------------------------------------------------------
// OTIS compatibility scheme (RunOtisScheme, `qingshui otis --scheme otis`).

constexpr double kOtisSchemeTolerance = 1e-5;  // of each column's peak

// Compares one of our files with OTIS's: same print times and columns, every column within
// kOtisSchemeTolerance of its peak (and, as the issue demands, within 1%).
void ExpectSameAsOtis(const std::string& label, const std::string& ours_text,
                      const std::string& otis_text) {
  Table ours = ParseTable(ours_text), otis = ParseTable(otis_text);
  ASSERT_EQ(ours.size(), otis.size()) << label;
  auto a = ours.begin();
  for (auto b = otis.begin(); b != otis.end(); ++a, ++b) {
    ASSERT_EQ(a->first, b->first) << label;
    ASSERT_EQ(a->second.size(), b->second.size()) << label;
  }
  EXPECT_EQ(ours_text.substr(0, ours_text.find('\n')).size(),
            otis_text.substr(0, otis_text.find('\n')).size())
      << label << ": line width differs";
  for (size_t c = 0; c < otis.begin()->second.size(); ++c) {
    double peak = 0;
    for (const auto& [t, row] : otis) peak = std::max(peak, std::fabs(row[c]));
    double diff = MaxDiff(ours, otis, c);
    if (peak == 0) {
      EXPECT_EQ(diff, 0.0) << label << " column " << c + 1;
      continue;
    }
    std::printf("otis scheme %s column %zu: |ours - OTIS| = %.2e of peak %.4g\n", label.c_str(),
                c + 1, diff / peak, peak);
    EXPECT_LE(diff / peak, kOtisSchemeTolerance) << label << " column " << c + 1;
    EXPECT_LE(diff / peak, 0.01) << label << " column " << c + 1;
  }
  std::printf("otis scheme %s: %s\n", label.c_str(),
              ours_text == otis_text ? "byte-identical to OTIS's file" : "not byte-identical");
}

void CheckOtisScheme(const std::string& app) {
  std::string deck_dir = Deck(app);
  OtisDeck deck = ReadOtisDeck(deck_dir);
  std::vector<OtisOutputFile> files = FormatOtisOutputs(deck, RunOtisScheme(deck));
  ASSERT_EQ(files.size(), deck.solute_outputs.size() + deck.sorption_outputs.size());
  for (const OtisOutputFile& f : files) {
    ExpectSameAsOtis(app + "/" + f.name, f.contents, ReadFile(deck_dir + "/" + f.name));
  }
}

// Physics of each deck: see the table in tests/regression/otis/README.md.
TEST(OtisSchemeTest, App1UvasCreekChlorideLateralInflowStorage) { CheckOtisScheme("app1"); }
TEST(OtisSchemeTest, App2UvasCreekStrontiumKineticSorption) { CheckOtisScheme("app2"); }
TEST(OtisSchemeTest, App3PulseWithDecayInterpolatedPrintLocations) { CheckOtisScheme("app3"); }
TEST(OtisSchemeTest, App4HueyCreekUnsteadyFlowFluxBoundary) { CheckOtisScheme("app4"); }
TEST(OtisSchemeTest, SteadyStateApp6StKevinGulch) { CheckOtisScheme("app6/otis"); }

// The same through the command line (two output files: solute and sorbate).
TEST(OtisSchemeTest, CommandLineSchemeOtisWritesOtisFiles) {
  std::string deck_dir = Deck("app2");
  std::string out_dir = RunCli(deck_dir, "--scheme otis");
  for (const char* name : {"str.out", "sorb.out"}) {
    ExpectSameAsOtis(std::string("cli app2/") + name, ReadFile(out_dir + "/" + name),
                     ReadFile(deck_dir + "/" + name));
  }
  std::string output;
  EXPECT_EQ(
      testing::RunCommand(testing::CliPath() + " otis " + deck_dir + " --scheme nope", &output), 2)
      << output;
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " otis --help", &output), 0);
  EXPECT_NE(output.find("--scheme qingshui|rk2|otis"), std::string::npos) << output;
}

// Runkel (1996) pulse with decay: the compatibility scheme carries OTIS's error (its
// Crank-Nicolson overshoot at Courant 1.44), the default scheme is closer to the exact answer.
TEST(OtisSchemeTest, App3InheritsOtisErrorAgainstRunkel1996) {
  std::string deck_dir = Deck("app3");
  OtisDeck deck = ReadOtisDeck(deck_dir);
  Table compat = ParseTable(FormatOtisOutputs(deck, RunOtisScheme(deck))[0].contents);
  Table ours =
      ParseTable(FormatOtisOutputs(
                     deck, transport::TransportSolver(OtisOptions(deck)).Run(OtisProblem(deck)))[0]
                     .contents);
  Table otis = ParseTable(ReadFile(deck_dir + "/solute.out"));
  const double xs[2] = {100.0, 2000.0};
  for (int c = 0; c < 2; ++c) {
    double e_compat = 0, e_ours = 0, e_otis = 0;
    for (const auto& [key, row] : otis) {
      double t = key * 1e-4 * 3600.0;
      double exact = Bear(xs[c], t - 3600, 0.1, 5.0, 1e-4, 100.0) -
                     Bear(xs[c], t - 10800, 0.1, 5.0, 1e-4, 100.0);
      e_otis = std::max(e_otis, std::fabs(row[c] - exact));
      e_compat = std::max(e_compat, std::fabs(compat.at(key)[c] - exact));
      e_ours = std::max(e_ours, std::fabs(ours.at(key)[c] - exact));
    }
    std::printf(
        "app3 x=%.0f m: max |error| vs Runkel (1996): otis scheme %.4f, OTIS %.4f, "
        "qingshui scheme %.4f mg/L\n",
        xs[c], e_compat, e_otis, e_ours);
    EXPECT_NEAR(e_compat, e_otis, 1e-5 * 100.0);
    EXPECT_LT(e_ours, e_compat);
  }
}

// `--scheme rk2` (the Runge-Kutta advection, TransportOptions::Advection::kSspRk2) through
// the command line on the Runkel (1996) pulse: it changes the answer, and stays far closer
// to the exact solution than OTIS's own output (its max |error| is 0.77% of the peak at
// 100 m against OTIS's 9.1%, docs/methods.md section 4).
TEST(OtisSchemeTest, CommandLineSchemeRk2RunsTheRungeKuttaAdvection) {
  const std::string deck_dir = Deck("app3");
  const Table rk2 = ParseTable(ReadFile(RunCli(deck_dir, "--scheme rk2") + "/solute.out"));
  const Table ours = ParseTable(ReadFile(RunCli(deck_dir) + "/solute.out"));
  const Table otis = ParseTable(ReadFile(deck_dir + "/solute.out"));
  ASSERT_EQ(rk2.size(), otis.size());
  const double xs[2] = {100.0, 2000.0};
  double differs = 0.0;
  for (int c = 0; c < 2; ++c) {
    double e_rk2 = 0, e_otis = 0;
    for (const auto& [key, row] : otis) {
      const double t = key * 1e-4 * 3600.0;
      const double exact = Bear(xs[c], t - 3600, 0.1, 5.0, 1e-4, 100.0) -
                           Bear(xs[c], t - 10800, 0.1, 5.0, 1e-4, 100.0);
      e_otis = std::max(e_otis, std::fabs(row[c] - exact));
      e_rk2 = std::max(e_rk2, std::fabs(rk2.at(key)[c] - exact));
      differs = std::max(differs, std::fabs(rk2.at(key)[c] - ours.at(key)[c]));
    }
    std::printf("app3 x=%.0f m: max |error| vs Runkel (1996): --scheme rk2 %.4f, OTIS %.4f mg/L\n",
                xs[c], e_rk2, e_otis);
    EXPECT_LT(e_rk2, e_otis);
  }
  EXPECT_GT(differs, 1e-3);
}

// A deck written by a test: control.inp, params.inp, q.inp in a fresh directory.
std::string WriteDeck(const std::string& tag, const std::string& params, const std::string& flow,
                      const std::vector<std::string>& outputs) {
  std::string dir = testing::TempDir(tag);
  std::string control = "params.inp\nq.inp\n";
  for (const std::string& o : outputs) control += o + "\n";
  std::ofstream(dir + "/control.inp") << control;
  std::ofstream(dir + "/params.inp") << params;
  std::ofstream(dir + "/q.inp") << flow;
  return dir;
}

// Everything at once on a non-uniform grid (reaches of 5 m and 2 m segments): storage
// exchange, decay in both zones, kinetic sorption with a storage-zone background, lateral
// inflow and outflow, a downstream dispersive flux. OTIS starts a dynamic run from its
// steady-state solution; with a constant boundary the Crank-Nicolson steps must keep it
// (the steady and the dynamic discretizations are the same centred differences), so every
// printed value stays at its initial value.
TEST(OtisSchemeTest, SteadyStateIsAFixedPointOfTheTimeSteps) {
  const std::string params =
      "fixed point | TITLE\n"
      " 2            |      PRTOPT\n"
      " 0.5          |      PSTEP  [hour]\n"
      " 0.05         |      TSTEP  [hour]\n"
      " 0.0          |      TSTART [hour]\n"
      " 5.0          |      TFINAL [hour]\n"
      " 0.0          |      XSTART [L]\n"
      " 0.02         |      DSBOUND [(L/sec)CU]\n"
      "  2           |      NREACH\n"
      " 20   100.0        2.0          0.5          2.0e-4\n"
      " 30    60.0        3.0          0.3          5.0e-4\n"
      "    1    1    1\n"
      "1.0e-5       2.0e-5\n"
      "2.0e-5       1.0e-5\n"
      "5.6e-5       1.0          4.0e+4       70.0e-6      0.13\n"
      "5.6e-5       0.5          2.0e+4       90.0e-6      0.20\n"
      "    3    1              NPRINT (col.1-5)  IOPT (col.6-10)\n"
      "12.0\n"
      "100.0\n"
      "147.0\n"
      "    1    1              NBOUND (col.1-5)  IBOUND (col.6-10)\n"
      " 0.00        5.0\n";
  const std::string flow =
      "0.0          QSTEP [hour]\n"
      "0.2          QSTART [L^3/second]\n"
      "1.0e-4       0.0          1.0          2.0\n"
      "2.0e-4       5.0e-5       0.8          1.0\n";
  OtisDeck deck = ReadOtisDeck(WriteDeck("otis-fixed", params, flow, {"c.out", "s.out"}));
  transport::TransportResult r = RunOtisScheme(deck);
  ASSERT_GT(r.num_times, 10);
  EXPECT_GT(r.summary.max_courant_requested,
            1.0);  // and still steady: CN is unconditionally stable
  double worst = 0, scale = 0;
  for (int t = 1; t < r.num_times; ++t) {
    for (int q = 0; q < r.num_stations; ++q) {
      for (const auto* v :
           {&r.station_concentration_g_m3, &r.station_storage_g_m3, &r.station_sorbed_g_kg}) {
        double v0 = (*v)[r.Index(0, 0, q, r.num_stations, 0)];
        double vt = (*v)[r.Index(0, t, q, r.num_stations, 0)];
        scale = std::max(scale, std::fabs(v0));
        worst = std::max(worst, std::fabs(vt - v0) / std::max(std::fabs(v0), 1e-300));
      }
    }
  }
  std::printf("fixed point: max relative drift %.2e over %d outputs\n", worst, r.num_times);
  EXPECT_GT(scale, 0.0);
  EXPECT_LT(worst, 1e-11);
}

// DSBOUND is the dispersive gradient D dC/dx at the outlet face. Steady advection-
// dispersion u C' = D C'' on [0, L] with C(0) = Cb, D C'(L) = g has the solution
// C = Cb + (g/u) exp(-uL/D) (exp(ux/D) - 1); the centred steady-state solution matches it
// to second order (dx = 1 m, u = 0.1 m/s, D = 5 m2/s, L = 100 m, Cb = 10, g = 1).
TEST(OtisSchemeTest, DownstreamDispersiveFluxMatchesAnalyticSteadyState) {
  auto params = [](const std::string& dsbound) {
    return "dsbound | TITLE\n 1 | PRTOPT\n 0.0 | PSTEP\n 0.0 | TSTEP\n 0.0 | TSTART\n"
           " 0.0 | TFINAL\n 0.0 | XSTART\n " +
           dsbound +
           " | DSBOUND\n 1 | NREACH\n"
           "100  100.0        5.0          1.0          0.0\n"
           "    1    0    0\n"
           "    0    0              NPRINT (col.1-5)  IOPT (col.6-10)\n"
           "    1    1              NBOUND (col.1-5)  IBOUND (col.6-10)\n"
           " 0.00        10.0\n";
  };
  const std::string flow = "0.0 QSTEP\n0.1 QSTART\n0.0 0.0 1.0 0.0\n";
  std::string dir = WriteDeck("otis-dsbound", params("1.0"), flow, {"c.out"});
  OtisDeck deck = ReadOtisDeck(dir);
  transport::TransportResult r = RunOtisScheme(deck);
  const double u = 0.1, D = 5.0, L = 100.0, cb = 10.0, g = 1.0;
  double err = 0, range = 0;
  for (int i = 0; i < r.num_segments; ++i) {
    double x = deck.SegmentCentre(i);
    double exact = cb + g / u * std::exp(-u * L / D) * (std::exp(u * x / D) - 1.0);
    range = std::max(range, exact - cb);
    err = std::max(err, std::fabs(r.Concentration(0, 0, i, 0) - exact));
  }
  std::printf("DSBOUND steady state: max |error| %.2e of a range %.3f\n", err, range);
  EXPECT_LT(err, 1e-3 * range);
  // The default scheme refuses it, naming the line.
  std::string output;
  EXPECT_EQ(testing::RunCommand(testing::CliPath() + " otis " + dir + " --out-dir " + dir, &output),
            2);
  EXPECT_NE(output.find("params.inp:8: DSBOUND"), std::string::npos) << output;
  EXPECT_EQ(
      testing::RunCommand(
          testing::CliPath() + " otis " + dir + " --out-dir " + dir + " --scheme otis", &output),
      0)
      << output;
}

// IBOUND = 3 interpolates the boundary concentration at the new time level of every step.
// A step boundary (IBOUND = 1) that changes at every step to the interpolated value of the
// next step must therefore give the same run (pulse with storage, dt = 0.04 h).
TEST(OtisSchemeTest, InterpolatedBoundaryEqualsStepBoundaryAtEveryStep) {
  const double dt = 0.04;
  const std::vector<double> t_data = {0.0, 1.0, 3.0, 12.0}, c_data = {0.0, 100.0, 0.0, 0.0};
  auto interp = [&](double t) {
    for (size_t k = 0; k + 1 < t_data.size(); ++k) {
      if (t <= t_data[k + 1])
        return c_data[k] +
               (t - t_data[k]) * (c_data[k + 1] - c_data[k]) / (t_data[k + 1] - t_data[k]);
    }
    return c_data.back();
  };
  auto params = [&](const std::string& boundary) {
    return "ibound | TITLE\n 1 | PRTOPT\n 0.2 | PSTEP\n 0.04 | TSTEP\n 0.0 | TSTART\n"
           " 4.0 | TFINAL\n 0.0 | XSTART\n 0.0 | DSBOUND\n 1 | NREACH\n"
           " 60  600.0        5.0          0.5          1.0e-4\n"
           "    1    0    0\n"
           "    2    1              NPRINT (col.1-5)  IOPT (col.6-10)\n"
           "100.0\n"
           "455.0\n" +
           boundary;
  };
  char line[128];
  std::string linear = "    4    3\n";
  for (size_t k = 0; k < t_data.size(); ++k) {
    std::snprintf(line, sizeof line, "%.6f %.10f\n", t_data[k], c_data[k]);
    linear += line;
  }
  // Steps: -dt holds the initial value; the change at t_k is used from t_{k+1} on.
  const int nsteps = 130;
  std::snprintf(line, sizeof line, "%5d    1\n%.6f %.10f\n", nsteps + 1, -dt, interp(0.0));
  std::string steps = line;
  for (int k = 0; k < nsteps; ++k) {
    std::snprintf(line, sizeof line, "%.6f %.10f\n", k * dt, interp((k + 1) * dt));
    steps += line;
  }
  const std::string flow = "0.0 QSTEP\n0.1 QSTART\n0.0 0.0 1.0 0.0\n";
  OtisDeck a = ReadOtisDeck(WriteDeck("otis-ibound3", params(linear), flow, {"c.out"}));
  OtisDeck b = ReadOtisDeck(WriteDeck("otis-ibound1", params(steps), flow, {"c.out"}));
  transport::TransportResult ra = RunOtisScheme(a), rb = RunOtisScheme(b);
  ASSERT_EQ(ra.num_times, rb.num_times);
  ASSERT_LE(ra.num_times * 5, nsteps);  // the step deck covers the whole run
  double peak = 0, diff = 0;
  for (size_t k = 0; k < ra.station_concentration_g_m3.size(); ++k) {
    peak = std::max(peak, ra.station_concentration_g_m3[k]);
    diff = std::max(diff,
                    std::fabs(ra.station_concentration_g_m3[k] - rb.station_concentration_g_m3[k]));
  }
  std::printf("IBOUND 3 vs step-wise IBOUND 1: max difference %.2e of peak %.3f\n", diff, peak);
  EXPECT_GT(peak, 10.0);
  EXPECT_LT(diff, 1e-10 * peak);
}

// IOPT = 0 prints the segment whose centre is the nearest at or upstream of the location:
// at 103 m (upstream half of the 100-110 m segment) that is the 90-100 m segment, in both
// schemes; at the centre 105 m it is the 100-110 m segment.
TEST(OtisSchemeTest, PrintLocationWithoutInterpolationUsesNearestUpstreamCentre) {
  const std::string params =
      "iopt | TITLE\n 1 | PRTOPT\n 0.1 | PSTEP\n 0.1 | TSTEP\n 0.0 | TSTART\n 2.0 | TFINAL\n"
      " 0.0 | XSTART\n 0.0 | DSBOUND\n 1 | NREACH\n"
      " 50  500.0        5.0          0.5          0.0\n"
      "    1    0    0\n"
      "    3    0              NPRINT (col.1-5)  IOPT (col.6-10)\n"
      "95.0\n103.0\n105.0\n"
      "    2    1              NBOUND (col.1-5)  IBOUND (col.6-10)\n"
      " 0.00        0.0\n 0.10        10.0\n";
  const std::string flow = "0.0 QSTEP\n0.1 QSTART\n0.0 0.0 1.0 0.0\n";
  OtisDeck deck = ReadOtisDeck(WriteDeck("otis-iopt", params, flow, {"c.out"}));
  transport::TransportResult r = RunOtisScheme(deck);
  double same = 0, apart = 0;
  for (int t = 0; t < r.num_times; ++t) {
    same = std::max(
        same, std::fabs(r.StationConcentration(0, t, 1, 0) - r.StationConcentration(0, t, 0, 0)));
    apart = std::max(
        apart, std::fabs(r.StationConcentration(0, t, 2, 0) - r.StationConcentration(0, t, 0, 0)));
  }
  EXPECT_EQ(same, 0.0);
  EXPECT_GT(apart, 1e-3);
  transport::TransportProblem p = OtisProblem(deck);
  ASSERT_EQ(p.stations.size(), 3u);
  EXPECT_EQ(p.stations[0].segment, 9);
  EXPECT_EQ(p.stations[1].segment, 9);
  EXPECT_EQ(p.stations[2].segment, 10);
}

}  // namespace
}  // namespace qingshui
