"""Runs from several Python threads at once give the same numbers as serial runs (issue #9,
item 5).

The bindings release the GIL while the engine works, so threads really overlap in C++:
OTIS decks (qs.run_otis), scenario runs (qs.Scenario.run), synthetic releases
(qs.simulate) and source tracing (qs.trace). Each job is first run serially; then every job
runs twice, all at the same time, from a pool of four threads; each threaded result must
equal its serial one bit for bit (no tolerance: the engine is deterministic and a shared
mutable state between runs would show up as a difference, not as a rounding error).
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qingshui as qs

ROOT = Path(__file__).resolve().parents[2]
OTIS = ROOT / "tests" / "regression" / "otis"
THREADS = 4


def run_concurrently(jobs, repeat=2):
    """Runs every job `repeat` times from THREADS threads, all released together."""
    work = [job for job in jobs for _ in range(repeat)]
    barrier = threading.Barrier(min(THREADS, len(work)))

    def call(job):
        try:
            barrier.wait(timeout=60)
        except threading.BrokenBarrierError:
            pass  # fewer jobs left than threads: start anyway
        return job()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(call, work))
    return [results[k * repeat:(k + 1) * repeat] for k in range(len(jobs))]


def otis_numbers(deck):
    run = qs.run_otis(OTIS / deck)
    return (np.array(run.result.station_concentration_g_m3, copy=True),
            np.array(run.result.station_storage_g_m3, copy=True), run.outputs())


@pytest.mark.parametrize("decks", [("app1", "app2", "app3")])
def test_otis_decks_from_threads_match_serial_runs(decks):
    jobs = [lambda d=d: otis_numbers(d) for d in decks]
    serial = [job() for job in jobs]
    for deck, want, got in zip(decks, serial, run_concurrently(jobs)):
        for g in got:
            np.testing.assert_array_equal(g[0], want[0], err_msg=deck)
            np.testing.assert_array_equal(g[1], want[1], err_msg=deck)
            assert g[2] == want[2], deck


def scenario_numbers(change):
    sc = qs.Scenario(name=change or "base")
    if change == "cleaner":
        sc = sc.set_effluent("chengxi_wwtp", COD=20, NH3N=1.0, TP=0.2)
    elif change == "plugged":
        sc = sc.plug("yongji_city_wwtp")
    res = sc.run("2024-04-14", "2024-04-14", fields=False)
    return np.array(res._raw["station_concentration"], copy=True)


def test_scenario_runs_from_threads_match_serial_runs():
    changes = ("", "cleaner", "plugged")
    jobs = [lambda c=c: scenario_numbers(c) for c in changes]
    serial = [job() for job in jobs]
    assert not np.array_equal(serial[0], serial[1])  # the jobs differ: a mix-up would show
    for change, want, got in zip(changes, serial, run_concurrently(jobs)):
        for g in got:
            np.testing.assert_array_equal(g, want, err_msg=change or "base")


def drill(source, seed):
    return {
        "start": "2024-04-15T00:00+08:00",
        "end": "2024-04-18T00:00+08:00",
        "events": [{"source": source, "start": "2024-04-16T02:00+08:00", "duration_h": 3,
                    "mass_kg": {"COD": 2000, "NH3N": 120, "TP": 30}}],
        "sampling": {"interval_h": 4, "noise": 0.1, "seed": seed, "stations": "sections"},
    }


def test_simulate_and_trace_from_threads_match_serial_runs():
    drills = [("jishan_wwtp", 7), ("chengxi_wwtp", 3)]
    sim_jobs = [lambda d=d: qs.simulate(drill(*d)) for d in drills]
    frames = [job() for job in sim_jobs]
    for want, got in zip(frames, run_concurrently(sim_jobs)):
        for g in got:
            pd.testing.assert_frame_equal(g, want, check_exact=True)

    trace_jobs = [lambda f=f: qs.trace(f) for f in frames]
    serial = [job() for job in trace_jobs]
    for want, got in zip(serial, run_concurrently(trace_jobs)):
        for g in got:
            assert _strip_timing(g.as_dict()) == _strip_timing(want.as_dict())


TIMINGS = {"elapsed_s", "kernel_s", "fit_s"}  # wall-clock seconds: the only numbers that may differ


def _strip_timing(value):
    if isinstance(value, dict):
        return {k: _strip_timing(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [_strip_timing(v) for v in value]
    return value
