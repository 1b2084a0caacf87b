"""qingshui.calibrate / allocate / apportion / estimate_otis.

Physics and published results checked:
* OTIS-P (Runkel 1998) on app6, St. Kevin Gulch: the fitted decay rates equal OTIS-P's
  within its reported standard errors (C++: tests/regression/otisp_regression_test.cpp has
  every deck and variant);
* calibration recovers the decay rate that generated steady-state observations
  (first-order decay along the river) and plots residuals with matplotlib (Agg);
* apportionment: contributions add up to the simulated concentration; for a conservative
  species at steady state each share is the contributor's flux over the flow;
* allocation answers the issue's question on the default network (Zhangliuzhuang, Class
  III, 90%, a dry-season month) and the forward Monte Carlo of full model runs confirms it;
  on a test river with a binding target the cheapest source removes first.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import qingshui as qs

RIVER = (Path(__file__).resolve().parents[1] / "data" / "calibration_river.yaml").read_text()


@pytest.fixture()
def river(tmp_path: Path) -> Path:
    p = tmp_path / "river.yaml"
    p.write_text(RIVER, encoding="utf-8")
    return p


def test_estimate_otis_reproduces_otis_p_app6(root):
    df = qs.estimate_otis(root / "tests/regression/otis/app6")
    assert list(df.columns) == ["reach", "parameter", "estimate", "std_error"]
    assert set(df.parameter) == {"LAMBDA"}
    # OTIS-P's estimates and standard errors (app6/star.out), reaches 2..7.
    otis_p = {2: (8.0520972e-06, 8.9413656e-07), 3: (5.3521294e-05, 1.9819051e-04),
              4: (5.7319979e-04, 3.1189324e-04), 5: (1.2285839e-04, 1.8049730e-05),
              6: (7.3179335e-05, 3.0854663e-05), 7: (5.2958589e-05, 2.7504901e-05)}
    for _, row in df.iterrows():
        est, se = otis_p[int(row.reach)]
        assert abs(row.estimate - est) <= se
        assert row.std_error == pytest.approx(se, rel=0.1)


def test_apportion_conservative_shares_are_flux_over_flow(river):
    df = qs.apportion(river, date="2024-04-01", steady=True)
    f = df[(df.station == "end") & (df.species == "F")].set_index("contributor")
    q = 0.8 + 0.3 + 0.2 + 0.1
    expected = {"headwater:upper": 0.8 * 0.5, "headwater:side": 0.3 * 0.9, "a": 0.2 * 1.5, "b": 0.1 * 3.0}
    for who, flux in expected.items():
        assert f.loc[who, "concentration_mg_l"] == pytest.approx(flux / q, rel=1e-7)
    assert f["share"].sum() == pytest.approx(1.0, abs=1e-12)
    assert df.attrs["max_closure_error"] < 1e-8


def test_apportion_default_network_zhangliuzhuang(default_network_path):
    df = qs.apportion(default_network_path, date="2024-05-15", steady=True, stations=["zhangliuzhuang"])
    for species, g in df.groupby("species"):
        assert g["share"].sum() == pytest.approx(1.0, abs=1e-9), species
        assert (g["concentration_mg_l"] >= -1e-9).all()
    assert df.attrs["max_closure_error"] < 1e-5


def test_calibrate_recovers_decay_and_plots_residuals(river, tmp_path):
    # Observations: the network as written (decay 0.3 /d), run as calibrate runs it.
    truth = qs.apportion(river, date="2024-04-01", days=1, time_step_s=900).attrs["total"]
    cod = truth[(truth.species == "COD") & truth.time_s.isin([h * 3600.0 for h in (2, 8, 14, 20)])]
    lines = ["time,station,species,value"]
    for _, r in cod.iterrows():
        lines.append(f"2024-04-01T{int(r.time_s // 3600):02d}:00:00+08:00,{r.station},COD,{r.total_mg_l:.15g}")
    (tmp_path / "obs.csv").write_text("\n".join(lines) + "\n")
    config = {
        "observations": str(tmp_path / "obs.csv"),
        "simulation": {"start_date": "2024-04-01", "days": 1, "time_step_s": 900, "output_interval_s": 3600},
        "parameters": [{"kind": "decay_per_day", "species": "COD", "initial": 0.1, "lower": 0, "upper": 3}],
    }
    fit = qs.calibrate(config, network=river)
    assert fit.converged
    row = fit.estimates.set_index("parameter").loc["decay_per_day[COD]"]
    assert row.estimate == pytest.approx(0.3, rel=1e-6)
    assert fit.correlation.shape == (1, 1)
    assert set(fit.residuals.columns) >= {"time", "station", "species", "observed", "simulated", "weighted_residual"}
    fig = fit.plot_residuals(tmp_path / "res.png")
    assert (tmp_path / "res.png").stat().st_size > 1000
    assert len(fig.axes) == 4


def test_calibrate_names_bad_input(river, tmp_path):
    (tmp_path / "obs.csv").write_text("time,station,species,value\n2024-04-01T02:00:00,end,COD,1\n")
    config = {"observations": str(tmp_path / "obs.csv"), "simulation": {"start_date": "2024-04-01"},
              "parameters": [{"kind": "velocity_factor"}]}
    with pytest.raises(qs.DataError, match="obs.csv:2: time"):
        qs.calibrate(config, network=river)


def test_allocate_cheapest_first_on_a_binding_target(river, tmp_path):
    (tmp_path / "alloc.yaml").write_text("""date: 2024-04-01
probability: 0.9
objective: cost
scenarios: 10
verification_scenarios: 5
targets:
  - {station: end, species: F, limit_mg_l: 0.8}
sources:
  - {id: a, min_mg_l: {F: 0.5}, cost_per_kg: {F: 10}}
  - {id: b, min_mg_l: {F: 0.5}, cost_per_kg: {F: 20}}
""")
    r = qs.allocate(tmp_path / "alloc.yaml", network=river)
    assert r.feasible
    lim = r.limits.set_index("source")
    excess = 0.8 * 0.5 + 0.3 * 0.9 + 0.2 * 1.5 + 0.1 * 3.0 - 0.8 * 1.4
    assert lim.loc["a", "limit_mg_l"] == pytest.approx(1.5 - excess / 0.2, abs=1e-6)
    assert lim.loc["b", "limit_mg_l"] == pytest.approx(3.0)
    t = r.targets.iloc[0]
    assert t.binding and t.shadow_price == pytest.approx(86.4 * 1.4 * 10, rel=1e-6)


def test_allocate_answers_zhangliuzhuang_class_iii_90_percent_dry_month():
    """What must each Sushui plant discharge for Zhangliuzhuang to meet Class III with 90%
    probability in a dry-season month? (data/yuncheng/allocation.yaml: May 2024.) Small
    sample sizes keep the test quick; the CLI default is 200 + 400."""
    r = qs.allocate(scenarios=20, verify=40)
    print(r.report)
    assert r.feasible
    assert set(r.targets.species) == {"COD", "NH3N", "TP"}
    running = set(r.limits.source)
    assert {"chengxi_wwtp", "yongji_city_wwtp", "linyi_shouchuang_2_wwtp"} <= running
    assert "chengxi_jidian_wwtp" not in running  # online from 2024-07-01
    assert (r.limits.limit_mg_l <= r.limits.current_mg_l + 1e-12).all()
    assert (r.limits.limit_mg_l >= r.limits.technical_min_mg_l - 1e-12).all()
    # The forward Monte Carlo with fresh months and full model runs confirms the limits:
    # the 95% interval of the met fraction reaches the stated 90%.
    lo, hi = r.verified_interval
    assert hi >= 0.9
    assert r.verified_probability >= r.current_probability - 1e-12
