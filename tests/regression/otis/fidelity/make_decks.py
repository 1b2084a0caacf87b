#!/usr/bin/env python3
"""Writes the synthetic OTIS decks of the transport-fidelity matrix (issue #14).

Each deck exercises a set of OTIS features (README.md in this folder has a line per deck);
tests/regression/otis_fidelity_test.cpp runs every deck with the default scheme and with
OTIS's own method and checks both against a converged run (OTIS's method on TSTEP/8 and 4x
the segments) or an exact solution. Run from anywhere: `/usr/bin/python3 make_decks.py`
rewrites the decks next to this file (no third-party modules needed).
"""
import math
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def fmt(v):
    return repr(float(v))


def write_deck(name, title, reaches, nsolute, *, decay=None, sorption=None, prints=(),
               iopt=0, ibound=1, bound=(), prtopt=1, pstep, tstep, tstart=0.0, tfinal,
               qstart=0.0, steady_reach_flow=None, unsteady=None):
    """reaches: [(nseg, length_m, disp_m2s, area2_m2, alpha_per_s)]
    decay: [reach][solute] -> (lambda, lambda2); sorption: [reach][solute] -> 5 values
    steady_reach_flow: [(qlatin, qlatout, area, [clatin per solute])]
    unsteady: (qstep_h, locations_m, [(qlatin[], q[], area[], [clatin[] per solute])])"""
    path = os.path.join(HERE, name)
    os.makedirs(path, exist_ok=True)
    p = ["#" * 60, "# OTIS parameter file, written by make_decks.py: " + name, "#" * 60, title,
         f"{prtopt}            | PRTOPT", f"{fmt(pstep)} | PSTEP [hour]",
         f"{fmt(tstep)} | TSTEP [hour]", f"{fmt(tstart)} | TSTART [hour]",
         f"{fmt(tfinal)} | TFINAL [hour]", "0.0 | XSTART [m]", "0.0 | DSBOUND",
         f"{len(reaches)} | NREACH", "# NSEG RCHLEN DISP AREA2 ALPHA"]
    p += [" ".join([str(r[0])] + [fmt(v) for v in r[1:]]) for r in reaches]
    p += ["# NSOLUTE IDECAY ISORB (I5 fields)",
          f"{nsolute:<5d}{1 if decay else 0:<5d}{1 if sorption else 0:<5d}"]
    if decay:
        p.append("# LAMBDA LAMBDA2 (for each solute, for each reach)")
        p += [f"{fmt(decay[r][s][0])} {fmt(decay[r][s][1])}"
              for s in range(nsolute) for r in range(len(reaches))]
    if sorption:
        p.append("# LAMHAT LAMHAT2 RHO KD CSBACK (for each solute, for each reach)")
        p += [" ".join(fmt(v) for v in sorption[r][s])
              for s in range(nsolute) for r in range(len(reaches))]
    p += ["# NPRINT IOPT (I5 fields), then PRTLOC", f"{len(prints):<5d}{iopt:<5d}"]
    p += [fmt(x) for x in prints]
    p += ["# NBOUND IBOUND (I5 fields), then USTIME USBC(1..NSOLUTE)", f"{len(bound):<5d}{ibound:<5d}"]
    p += [" ".join(fmt(v) for v in row) for row in bound]
    with open(os.path.join(path, "params.inp"), "w") as f:
        f.write("\n".join(p) + "\n")
    outs = [f"solute{s + 1}.out" for s in range(nsolute)]
    ctl = ["#" * 60, "# OTIS control file: parameter file, flow file, outputs", "#" * 60,
           "params.inp", "q.inp"] + outs
    if sorption:
        ctl += [f"sorb{s + 1}.out" for s in range(nsolute)]
    with open(os.path.join(path, "control.inp"), "w") as f:
        f.write("\n".join(ctl) + "\n")
    if unsteady is None:
        q = ["#" * 60, "# OTIS steady flow file", "#" * 60, "0.0 | QSTEP [hour]",
             f"{fmt(qstart)} | QSTART [m3/s]", "# QLATIN QLATOUT AREA CLATIN(1..NSOLUTE)"]
        q += [" ".join(fmt(v) for v in (ql, qo, a, *c)) for (ql, qo, a, c) in steady_reach_flow]
    else:
        qstep, locs, sets = unsteady
        q = ["#" * 60, "# OTIS unsteady flow file", "#" * 60, f"{fmt(qstep)} | QSTEP [hour]",
             f"{len(locs)} | NFLOW"] + [fmt(x) for x in locs]
        for k, (ql, qq, aa, cl) in enumerate(sets):
            q.append(f"# flow set {k}: QLATIN, QVALUE, AREA, CLATIN per solute")
            for row in (ql, qq, aa, *cl):
                q.append(" ".join(fmt(v) for v in row))
    with open(os.path.join(path, "q.inp"), "w") as f:
        f.write("\n".join(q) + "\n")


def main():
    # step_boundary: the step problem of issue #14 (Runkel 1996 has its exact solution).
    write_deck("step_boundary", "Step boundary 0 -> 40 -> 0 mg/L, decay, u = 0.4 m/s",
               [(600, 6000.0, 2.0, 0.0, 0.0)], 1, decay=[[(5e-5, 0.0)]],
               prints=(500.0, 2500.0, 4500.0), iopt=0,
               bound=((0.0, 0.0), (0.5, 40.0), (1.5, 0.0)), pstep=0.005, tstep=0.005,
               tfinal=5.5, qstart=0.4, steady_reach_flow=[(0.0, 0.0, 1.0, [0.0])])
    # step_inside_step: the same with both switches 9 s (half a step) off the step grid,
    # interpolated print locations.
    write_deck("step_inside_step", "Step boundary switching inside time steps",
               [(600, 6000.0, 2.0, 0.0, 0.0)], 1, decay=[[(5e-5, 0.0)]],
               prints=(500.0, 2500.0, 4500.0), iopt=1,
               bound=((0.0, 0.0), (0.5025, 40.0), (1.5025, 0.0)), pstep=0.005, tstep=0.005,
               tfinal=5.5, qstart=0.4, steady_reach_flow=[(0.0, 0.0, 1.0, [0.0])])
    # multisolute_storage: three reaches with storage, two solutes (the second decays in
    # channel and storage), lateral inflow at other concentrations, storage printed: the
    # initial state is the steady state of TSTART's boundary, far from uniform.
    write_deck("multisolute_storage", "Two solutes, storage, decay in channel and storage",
               [(100, 500.0, 1.0, 0.5, 1e-4), (150, 1500.0, 2.0, 0.8, 5e-5),
                (100, 1000.0, 2.0, 0.3, 2e-4)], 2,
               decay=[[(0.0, 0.0), (3e-5, 1e-5)]] * 3,
               prints=(400.0, 1500.0, 2500.0, 2990.0), iopt=0, prtopt=2,
               bound=((0.0, 1.0, 1.0), (2.0, 10.0, 5.0), (6.0, 1.0, 1.0)),
               pstep=0.05, tstep=0.005, tfinal=30.0, qstart=0.5,
               steady_reach_flow=[(0.0, 0.0, 1.2, [0.0, 0.0]), (2e-5, 0.0, 1.5, [0.5, 0.2]),
                                  (1e-5, 0.0, 1.8, [0.3, 0.0])])
    # unsteady_flux_pulse: a flood wave (Q 0.2 -> 0.5 -> 0.2 m3/s travelling at 1 m/s, A
    # following Q^0.6) carrying a mass-flux pulse; storage in the middle reach.
    locs = [0.0, 250.0, 500.0, 750.0, 1000.0, 1250.0, 1500.0]
    sets = []
    qstep = 0.05
    for k in range(int(4.0 / qstep) + 2):
        t = k * qstep * 3600.0
        qq = [0.2 + 0.3 * math.exp(-(((t - 5400.0 - x / 1.0) / 1800.0) ** 2)) for x in locs]
        aa = [0.8 * (q / 0.2) ** 0.6 for q in qq]
        sets.append(([0.0] * len(locs), qq, aa, [[0.0] * len(locs)]))
    write_deck("unsteady_flux_pulse", "Flood wave with a flux-boundary pulse",
               [(100, 500.0, 1.0, 0.0, 0.0), (100, 500.0, 1.0, 0.4, 3e-4),
                (100, 500.0, 1.5, 0.0, 0.0)], 1, prints=(200.0, 700.0, 1400.0), iopt=0,
               ibound=2, bound=((0.0, 0.0), (0.5, 2.0), (1.0, 0.0)), pstep=0.01, tstep=0.005,
               tfinal=4.0, unsteady=(qstep, locs, sets))
    # sorption_smooth: kinetic sorption with storage, a smooth (IBOUND 3, linearly
    # interpolated) boundary, interpolated print locations.
    write_deck("sorption_smooth", "Kinetic sorption, storage, linear boundary",
               [(80, 400.0, 0.5, 0.3, 2e-4), (120, 600.0, 0.8, 0.2, 1e-4)], 1,
               sorption=[[(5e-5, 2e-5, 5.0, 0.02, 0.1)], [(5e-5, 2e-5, 5.0, 0.02, 0.1)]],
               prints=(150.0, 520.0, 950.0), iopt=1, ibound=3,
               bound=((0.0, 0.1), (0.5, 0.1), (1.5, 5.0), (3.0, 0.1), (20.0, 0.1)),
               pstep=0.05, tstep=0.01, tfinal=12.0, qstart=0.15,
               steady_reach_flow=[(0.0, 0.0, 0.5, [0.0]), (0.0, 0.0, 0.6, [0.0])])
    # flux_step_storage_decay: a step mass flux, decay in the storage zone only, lateral
    # inflow carrying solute, storage printed.
    write_deck("flux_step_storage_decay", "Step mass flux, storage-zone decay, lateral inflow",
               [(100, 1000.0, 1.0, 0.5, 3e-4), (100, 1000.0, 2.0, 0.7, 1e-4)], 1,
               decay=[[(0.0, 2e-5)], [(0.0, 2e-5)]], prints=(300.0, 1200.0, 1950.0), iopt=1,
               prtopt=2, ibound=2, bound=((0.0, 0.05), (1.0, 1.0), (4.0, 0.05)),
               pstep=0.05, tstep=0.01, tfinal=14.0, qstart=0.3,
               steady_reach_flow=[(0.0, 0.0, 0.9, [0.0]), (1e-4, 0.0, 1.1, [0.5])])
    # steady_decay_storage: TFINAL = 0 with decay in channel and storage: C = C0 exp(r x),
    # r = (u - sqrt(u^2 + 4 D k)) / (2 D), k = lambda + alpha A_s lambda_s / (alpha A + A_s lambda_s).
    write_deck("steady_decay_storage", "Steady state with decay in channel and storage",
               [(400, 8000.0, 3.0, 0.6, 2e-4)], 1, decay=[[(4e-5, 2e-5)]],
               prints=(), iopt=0, bound=((0.0, 10.0),), pstep=0.0, tstep=0.0, tfinal=0.0,
               qstart=0.5, steady_reach_flow=[(0.0, 0.0, 1.0, [0.0])])


if __name__ == "__main__":
    main()
