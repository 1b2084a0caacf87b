#!/usr/bin/python3
"""Time of a trace session's update (issue #16, "Sessions": <= 0.2 s median).

A drill (one release, simulated by the network's engine, sections sampled hourly with 10%
noise) is traced from its first two days of samples; then N hourly rounds of samples are
added one at a time, each followed by trace() — the update timed (add + trace, wall and
process CPU). For comparison, paired with each update, qs.trace of the same rows without a
session (kernels built each time). Prints per update: wall s, CPU s, kernel_s, fit_s, fits,
the leader; then the medians.

usage: PYTHONPATH=build/python trace_session.py [--updates 10] [--source jishan_wwtp]
                                                [--max-sources 3] [--start 2024-04-15]
"""
import argparse
import statistics
import time

import pandas as pd

import qingshui as qs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--source", default="jishan_wwtp")
    ap.add_argument("--max-sources", type=int, default=3)
    ap.add_argument("--start", default="2024-04-15")
    a = ap.parse_args()
    t0 = pd.Timestamp(a.start + " 00:00", tz="Asia/Shanghai")
    scenario = {
        "start": t0.isoformat(),
        "end": (t0 + pd.Timedelta(days=4)).isoformat(),
        "hydrology": {"velocity_factor": 1.1, "dispersion_factor": 0.8},
        "events": [{"source": a.source, "start": (t0 + pd.Timedelta(hours=30)).isoformat(),
                    "duration_h": 3, "mass_kg": {"COD": 2000, "NH3N": 120, "TP": 30}}],
        "sampling": {"interval_h": 1, "noise": 0.1, "seed": 3, "stations": "sections"},
    }
    frame = qs.simulate(scenario)[["time", "station", "species", "value"]]
    cut = t0 + pd.Timedelta(hours=40)
    s = qs.TraceSession(None, frame[frame.time <= cut], max_sources=a.max_sources)
    first = time.perf_counter()
    r = s.trace()
    print(f"first trace: {time.perf_counter() - first:.3f} s (kernel_s {r.diagnostics['kernel_s']:.3f})")
    print("| update | rows | wall s | CPU s | kernel_s | fit_s | fits | leader (p) | qs.trace wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    walls, cpus, plain = [], [], []
    for i in range(a.updates):
        hour = cut + pd.Timedelta(hours=i + 1)
        batch = frame[frame.time == hour]
        w0, c0 = time.perf_counter(), time.process_time()
        s.add(batch)
        r = s.trace()
        w, c = time.perf_counter() - w0, time.process_time() - c0
        p0 = time.perf_counter()
        qs.trace(s.observations, max_sources=a.max_sources)
        p = time.perf_counter() - p0
        walls.append(w)
        cpus.append(c)
        plain.append(p)
        d = r.diagnostics
        lead = r.hypotheses.iloc[0]
        print(f"| {i + 1} | {len(s)} | {w:.3f} | {c:.3f} | {d['kernel_s']:.3f} | {d['fit_s']:.3f} | "
              f"{d['fits']} | {lead.label} ({lead.probability:.2f}) | {p:.3f} |")
    print(f"\nmedian update: wall {statistics.median(walls):.3f} s, CPU {statistics.median(cpus):.3f} s; "
          f"qs.trace without a session: {statistics.median(plain):.3f} s; "
          f"kernel cache hits {s.kernel_cache.hits}, misses {s.kernel_cache.misses}")


if __name__ == "__main__":
    main()
