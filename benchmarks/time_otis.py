#!/usr/bin/python3
"""Repeated wall-clock timing of `qingshui otis` on the app3 deck scaled to 5000 segments
and 10000 steps (hyperfine-style: warm-up runs, then N timed runs, median reported).

usage: time_otis.py QINGSHUI_BINARY [--runs 15] [--warmup 2] [--segments 5000] [--steps 10000]
                    [--scheme qingshui|rk2|otis]

Prints each run's wall and user+sys CPU time, then min / median / max. The machine this was
written for is shared, so the CPU time (which other processes do not inflate much) is
reported next to the wall time.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_once(binary, deck, out, scheme):
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execv(binary, [binary, "otis", deck, "--out-dir", out, "--scheme", scheme])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        sys.exit("qingshui otis failed (status %d)" % status)
    return wall, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--segments", type=int, default=5000)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--scheme", default="qingshui", choices=["qingshui", "rk2", "otis"])
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qs_app3_")
    deck, out = os.path.join(tmp, "deck"), os.path.join(tmp, "out")
    os.makedirs(out)
    subprocess.check_call(["/usr/bin/python3", os.path.join(HERE, "make_app3_scaled.py"), deck,
                           "--segments", str(a.segments), "--steps", str(a.steps)])
    report = subprocess.run([a.binary, "otis", deck, "--out-dir", out, "--scheme", a.scheme],
                            capture_output=True, text=True, check=True)
    print(report.stdout.strip().splitlines()[-1] if report.stdout.strip() else "")
    for _ in range(a.warmup):
        run_once(a.binary, deck, out, a.scheme)
    walls, cpus = [], []
    for k in range(a.runs):
        w, c = run_once(a.binary, deck, out, a.scheme)
        walls.append(w)
        cpus.append(c)
        print("run %2d: wall %.3f s, cpu %.3f s" % (k + 1, w, c))
    for name, v in (("wall", walls), ("cpu", cpus)):
        print("%s: min %.3f  median %.3f  max %.3f s  (%d runs)" %
              (name, min(v), statistics.median(v), max(v), len(v)))


if __name__ == "__main__":
    main()
