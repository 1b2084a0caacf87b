#!/usr/bin/python3
"""Write an app3-like OTIS deck scaled to N segments and S time steps.

The OTIS app3 deck (Runkel 1996: u = 0.1 m/s, D = 5 m2/s, lambda = 1e-4 /s, 10 m
segments, TSTEP = 0.04 h, a 100 mg/L pulse from 1 h to 3 h) is kept exactly except for
the reach length (N x 10 m) and TFINAL (S x TSTEP), so the grid spacing, the step, the
Courant number (1.44) and the dispersion number D dt / dx^2 (7.2) are app3's.

usage: make_app3_scaled.py OUT_DIR [--segments 5000] [--steps 10000]
"""
import argparse
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
APP3 = os.path.join(HERE, "..", "tests", "regression", "otis", "app3")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--segments", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=10000)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    for f in ("control.inp", "q.inp"):
        shutil.copy(os.path.join(APP3, f), os.path.join(a.out_dir, f))
    with open(os.path.join(APP3, "params.inp")) as f:
        lines = f.read().split("\n")
    out = []
    tstep_h = 0.04
    replaced = {"TFINAL": False, "reach": False}
    for line in lines:
        if line.rstrip().endswith("TFINAL [hour]"):
            line = "%-14s|      TFINAL [hour]" % ("%.2f" % (a.steps * tstep_h))
            replaced["TFINAL"] = True
        elif line.startswith("220  2200."):
            line = "%-5d%-13s5.0          999.         0.0" % (a.segments, "%d." % (10 * a.segments))
            replaced["reach"] = True
        out.append(line)
    if not all(replaced.values()):
        sys.exit("app3 params.inp did not have the expected lines: %s" % replaced)
    with open(os.path.join(a.out_dir, "params.inp"), "w") as f:
        f.write("\n".join(out))


if __name__ == "__main__":
    main()
