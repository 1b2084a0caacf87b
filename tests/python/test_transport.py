"""The transport engine from Python: analytic checks, mass balance, zero-copy arrays,
OTIS decks, and concurrent runs with the GIL released."""

import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erfc, erfcx

import qingshui as qs
from qingshui import transport as t

ROOT = Path(__file__).resolve().parents[2]
APP3 = ROOT / "tests" / "regression" / "otis" / "app3"


def runkel_pulse(x, t_s, u, D, lam, c0, t_on, t_off):
    """Runkel (1996) eq. for a finite-duration pulse with first-order decay: the
    continuous-injection solution switched on at t_on and off at t_off."""
    gamma = np.sqrt(1.0 + 4.0 * lam * D / u**2)

    def f(tau):
        tau = np.asarray(tau, dtype=float)
        out = np.zeros_like(tau)
        pos = tau > 0
        s = 2.0 * np.sqrt(D * tau[pos])
        z1 = (x - u * tau[pos] * gamma) / s
        z2 = (x + u * tau[pos] * gamma) / s
        a1 = x * u * (1 - gamma) / (2 * D)
        a2 = x * u * (1 + gamma) / (2 * D)
        # exp(a) erfc(z) = exp(a - z²) erfcx(z) for z > 0 avoids overflow.
        term1 = np.where(z1 > 0, np.exp(a1 - z1**2) * erfcx(np.maximum(z1, 0)), np.exp(a1) * erfc(z1))
        term2 = np.exp(a2 - z2**2) * erfcx(z2)
        out[pos] = term1 + term2
        return out

    return 0.5 * c0 * (f(t_s - t_on) - f(t_s - t_off))


def test_run_otis_app3_beats_otis_against_the_analytic_solution():
    run = qs.run_otis(APP3)
    frame = run.concentrations()
    assert list(frame.columns) == ["100 m", "2000 m"]
    t_s = frame.index.to_numpy() * 3600.0
    exact = runkel_pulse(2000.0, t_s, u=0.1, D=5.0, lam=1e-4, c0=100.0, t_on=3600.0, t_off=3 * 3600.0)
    ours = np.abs(frame["2000 m"].to_numpy() - exact).max()
    otis = np.loadtxt(APP3 / "solute.out")
    otis_err = np.abs(otis[: len(exact), 2] - exact).max()
    assert np.allclose(otis[: len(exact), 0], frame.index.to_numpy())
    assert ours < otis_err, (ours, otis_err)
    assert frame.to_numpy().min() >= 0.0
    assert run.result.summary.max_relative_mass_error < 1e-10
    assert "solute.out" in run.outputs()


def single_reach(n=200, dx=10.0, q=0.1, area=1.0, disp=5.0, decay=0.0):
    problem = t.TransportProblem()
    problem.num_species = 1
    segments = []
    for i in range(n):
        s = t.Segment()
        s.downstream = i + 1 if i + 1 < n else -1
        s.length_m = dx
        s.dispersion_m2s = disp
        s.decay_per_s = [decay]
        segments.append(s)
    problem.segments = segments
    state = t.FlowState()
    state.flow_m3s = [q] * n
    state.area_m2 = [area] * n
    state.lateral_inflow_m2s = [0.0] * n
    state.lateral_outflow_m2s = [0.0] * n
    state.headwater_inflow_m3s = [q] + [0.0] * (n - 1)
    flow = t.FlowField()
    flow.times_s = [0.0]
    flow.states = [state]
    problem.flow = flow
    return problem


def test_point_load_mass_balance_and_zero_copy_views():
    problem = single_reach(decay=1e-4)
    forcing = t.Forcing()
    boundary = t.UpstreamBoundary()
    boundary.segment = 0
    boundary.series = [t.TimeSeries.constant(0.0)]
    forcing.boundaries = [boundary]
    forcing.loads = [t.PointLoad(20, 0, t.TimeSeries([0.0, 600.0, 601.0], [1.0, 1.0, 0.0]))]
    problem.members = [forcing]
    problem.start_time_s, problem.end_time_s, problem.time_step_s = 0.0, 7200.0, 60.0
    problem.output_times_s = list(np.arange(0.0, 7201.0, 600.0))
    problem.stations = [t.Station(100), t.Station(150)]
    result = t.TransportSolver().run(problem)
    c = result.concentration_g_m3
    assert c.shape == (1, 13, 200, 1)
    assert not c.flags.writeable
    assert np.shares_memory(c, result.concentration_g_m3)  # views, not copies
    mb = result.summary.mass_balance[0]
    assert mb.point_load_g == pytest.approx(600.5, rel=1e-12)  # 600 s at 1 g/s + ramp
    assert abs(mb.relative_error) < 1e-10
    assert c.min() >= 0.0
    # The station series are the segment values at the station segments.
    np.testing.assert_array_equal(result.station_concentration_g_m3[0, :, 0, 0], c[0, :, 100, 0])


def test_runge_kutta_advection_is_an_option_that_keeps_the_mass_balance():
    """TransportOptions.advection = SSP_RK2 (docs/methods.md section 2): the method-of-lines
    advection with Heun's method; a step pulse stays positive and bounded, the mass balances,
    and the answer differs from the default scheme's (the option takes effect)."""
    problem = single_reach(decay=1e-4)
    forcing = t.Forcing()
    boundary = t.UpstreamBoundary()
    boundary.segment = 0
    boundary.series = [t.TimeSeries([0.0, 600.0, 1800.0], [0.0, 10.0, 0.0], t.TimeSeries.Interpolation.STEP)]
    forcing.boundaries = [boundary]
    problem.members = [forcing]
    # 120 s steps: Courant 0.6 per advection half, one sub-step for the default, two for RK2.
    problem.start_time_s, problem.end_time_s, problem.time_step_s = 0.0, 7200.0, 120.0
    problem.output_times_s = list(np.arange(0.0, 7201.0, 600.0))
    options = t.TransportOptions()
    assert options.advection == t.TransportOptions.Advection.LIMITED_LAX_WENDROFF
    options.advection = t.TransportOptions.Advection.SSP_RK2
    rk2 = t.TransportSolver(options).run(problem)
    default = t.TransportSolver().run(problem)
    c = rk2.concentration_g_m3
    assert c.min() >= 0.0 and c.max() <= 10.0 * (1 + 1e-12)
    assert rk2.summary.max_relative_mass_error < 1e-10
    assert np.abs(c - default.concentration_g_m3).max() > 1e-3
    assert rk2.summary.advection_substeps == 2 * default.summary.advection_substeps


def test_invalid_problem_raises_a_named_error():
    problem = single_reach()
    problem.members = [t.Forcing()]
    problem.start_time_s, problem.end_time_s, problem.time_step_s = 0.0, 100.0, -1.0
    with pytest.raises(qs.Error):
        t.TransportSolver().run(problem)


def test_concurrent_runs_release_the_gil_and_match_serial():
    deck = t.read_otis_deck(str(APP3))
    serial = t.TransportSolver(t.otis_options(deck)).run(t.otis_problem(deck))
    results = [None, None]

    def work(k):
        results[k] = t.TransportSolver(t.otis_options(deck)).run(t.otis_problem(deck))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for r in results:
        np.testing.assert_array_equal(r.station_concentration_g_m3, serial.station_concentration_g_m3)
