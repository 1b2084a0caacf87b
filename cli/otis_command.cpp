// `qingshui otis DECK_DIR --out-dir OUT_DIR [--scheme qingshui|rk2|otis]` — runs a USGS OTIS
// input deck with the Qingshui transport engine (default; rk2: its Runge-Kutta advection)
// or with OTIS's own numerical method (--scheme otis, to reproduce OTIS's numbers) and
// writes every output file named in control.inp in OTIS's format. Files are written
// atomically (temporary file, then rename).
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "commands.h"
#include "qingshui/calibration/otisp.h"
#include "qingshui/core/error.h"
#include "qingshui/core/otis.h"
#include "qingshui/core/transport.h"

namespace qingshui::cli {

namespace {

void Usage(std::ostream& out) {
  out << "usage: qingshui otis DECK_DIR [--out-dir OUT_DIR] [--scheme qingshui|rk2|otis]\n\n"
         "Runs the OTIS deck in DECK_DIR (control.inp names the parameter, flow and output\n"
         "files) and writes the output files to OUT_DIR (default: DECK_DIR) in OTIS's format.\n\n"
         "--scheme qingshui  (default) Qingshui's transport scheme: limited (TVD) advection,\n"
         "                   positive Crank-Nicolson, exact mass balance, no overshoot at\n"
         "                   fronts. Starts from OTIS's initial steady state; reports at the\n"
         "                   print location itself (interpolated, whatever IOPT says). On\n"
         "                   the 13 decks of docs/methods.md section 4 at least as accurate\n"
         "                   as OTIS against refined runs and exact solutions; differs from\n"
         "                   OTIS's output where OTIS's own discretization error is large.\n"
         "--scheme rk2       Qingshui's scheme with the advection integrated by a two-stage\n"
         "                   SSP Runge-Kutta method (method of lines): second order in time\n"
         "                   at a fixed grid, but more numerical diffusion at the deck's\n"
         "                   Courant number and slower (docs/methods.md section 4).\n"
         "--scheme otis      OTIS's own method (Runkel 1998; Crank-Nicolson with centred\n"
         "                   differences at the deck's TSTEP) to reproduce OTIS's numbers,\n"
         "                   including its overshoot when Q TSTEP / (A dx) > 1. Also accepts a\n"
         "                   non-zero DSBOUND.\n\n"
         "An OTIS-P deck (control.inp also names data.inp, star.inp, params.out, star.out)\n"
         "is an estimation: the parameters star.inp frees are fitted reach by reach to the\n"
         "observations in data.inp as OTIS-P does (Levenberg-Marquardt, OTIS's own scheme as\n"
         "the model). Writes OUT_DIR/estimates.csv (reach,parameter,estimate,std_error) and\n"
         "the solute output of the whole deck at the estimates in OTIS's format.\n\n"
         "Each output file is written to a temporary file and renamed over the old one only\n"
         "when complete (a run that fails or is killed leaves the previous file).\n"
         "exit codes: 0 success, 1 runtime failure (e.g. an output cannot be written),\n"
         "2 invalid deck or usage (file:line: field: what)\n";
}

}  // namespace

int RunOtis(const Args& args, std::ostream& out, std::ostream& err) {
  std::string deck, out_dir, scheme = "qingshui";
  for (size_t k = 0; k < args.size(); ++k) {
    const std::string& a = args[k];
    if (a == "--help" || a == "-h") {
      Usage(out);
      return kExitOk;
    } else if (a == "--scheme") {
      if (k + 1 >= args.size() ||
          (args[k + 1] != "qingshui" && args[k + 1] != "rk2" && args[k + 1] != "otis")) {
        err << "qingshui otis: --scheme needs 'qingshui', 'rk2' or 'otis'\n";
        return kExitInvalidInput;
      }
      scheme = args[++k];
    } else if (a == "--out-dir") {
      if (k + 1 >= args.size()) {
        err << "qingshui otis: --out-dir needs a directory\n";
        return kExitInvalidInput;
      }
      out_dir = args[++k];
    } else if (!a.empty() && a[0] == '-') {
      err << "qingshui otis: unknown option '" << a << "'\n";
      Usage(err);
      return kExitInvalidInput;
    } else if (deck.empty()) {
      deck = a;
    } else {
      err << "qingshui otis: more than one deck directory given\n";
      return kExitInvalidInput;
    }
  }
  if (deck.empty()) {
    Usage(err);
    return kExitInvalidInput;
  }
  if (out_dir.empty()) out_dir = deck;
  {
    std::error_code ec;
    std::filesystem::create_directories(out_dir, ec);
    if (ec) throw std::runtime_error("cannot create output folder " + out_dir + ": " + ec.message());
  }

  OtisDeck d = ReadOtisDeck(deck);
  if (d.has_estimation) {
    const calibration::OtisEstimation est = calibration::EstimateOtisParameters(d);
    const std::filesystem::path csv = std::filesystem::path(out_dir) / "estimates.csv";
    WriteFileAtomically(csv.string(), calibration::FormatOtisEstimates(est));
    out << "wrote " << csv.string() << "\n";
    for (const OtisOutputFile& f : FormatOtisOutputs(est.fitted, est.result)) {
      WriteFileAtomically((std::filesystem::path(out_dir) / f.name).string(), f.contents);
      out << "wrote " << (std::filesystem::path(out_dir) / f.name).string() << "\n";
    }
    out << "OTIS-P estimation (Levenberg-Marquardt on OTIS's own scheme):\n" << est.BriefReport();
    return kExitOk;
  }
  transport::TransportResult result;
  if (scheme == "otis") {
    result = RunOtisScheme(d);
  } else {
    transport::TransportProblem problem = OtisProblem(d);
    transport::TransportOptions options = OtisOptions(d);
    if (scheme == "rk2") options.advection = transport::TransportOptions::Advection::kSspRk2;
    result = transport::TransportSolver(options).Run(problem);
  }
  for (const OtisOutputFile& f : FormatOtisOutputs(d, result)) {
    WriteFileAtomically((std::filesystem::path(out_dir) / f.name).string(), f.contents);
    out << "wrote " << (std::filesystem::path(out_dir) / f.name).string() << "\n";
  }
  if (scheme == "otis") {
    out << "otis scheme (OTIS's Crank-Nicolson, centred differences): ";
    if (d.SteadyState()) {
      out << "steady state";
    } else {
      out << result.summary.num_steps << " steps, max Courant number "
          << result.summary.max_courant_requested;
    }
    out << ", " << result.summary.wall_time_s << " s\n";
  } else {
    out << result.summary.BriefReport() << "\n";
  }
  return kExitOk;
}

}  // namespace qingshui::cli
