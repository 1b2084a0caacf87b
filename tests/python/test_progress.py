"""Progress: every step goes to the `qingshui` logger; a tqdm bar is added in notebooks when
tqdm is installed (Debian's python3-tqdm), and nothing breaks without it. qs.run_all runs
several scenarios with that reporting and gives the same results as running them one by one."""

import logging
import sys

import numpy as np
import pytest

import qingshui as qs
from qingshui import scenario


def test_outside_a_notebook_only_the_log_reports(caplog, capsys):
    assert not scenario._in_notebook()  # pytest is not a Jupyter kernel
    with caplog.at_level(logging.INFO, logger="qingshui"):
        items = list(qs.progress(["a", "b", "c"], desc="steps"))
    assert items == ["a", "b", "c"]
    assert [r.getMessage() for r in caplog.records] == ["steps: step 1/3", "steps: step 2/3", "steps: step 3/3"]
    assert capsys.readouterr().err == ""


def test_a_bar_when_tqdm_is_installed(capsys):
    pytest.importorskip("tqdm")
    assert list(qs.progress(iter(range(4)), desc="bar", total=4, bar=True)) == [0, 1, 2, 3]
    err = capsys.readouterr().err
    assert "bar" in err and "4/4" in err


def test_without_tqdm_nothing_breaks(monkeypatch, caplog, capsys):
    # A module set to None in sys.modules makes its import raise ImportError, as if absent.
    for name in [m for m in sys.modules if m == "tqdm" or m.startswith("tqdm.")] + ["tqdm", "tqdm.std"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setattr(scenario, "_in_notebook", lambda: True)
    assert scenario._tqdm_class() is None
    with caplog.at_level(logging.INFO, logger="qingshui"):
        assert list(qs.progress((x for x in "xy"), desc="no tqdm")) == ["x", "y"]
    assert [r.getMessage() for r in caplog.records] == ["no tqdm: step 1", "no tqdm: step 2"]
    assert capsys.readouterr().err == ""


def test_run_all_gives_the_results_of_single_runs():
    base = qs.Scenario(name="base")
    plan = qs.Scenario(name="plan").set_effluent("yongji_city_wwtp", NH3N=1.0)
    runs = qs.run_all([base, plan], "2024-04-14", "2024-04-14", contributions=False, fields=False)
    assert list(runs) == ["base", "plan"]
    alone = plan.run("2024-04-14", "2024-04-14", contributions=False, fields=False)
    # The engine is deterministic: the same scenario gives the same numbers.
    np.testing.assert_array_equal(runs["plan"].at_station("zhangliuzhuang").to_numpy(),
                                  alone.at_station("zhangliuzhuang").to_numpy())
    assert (runs["plan"].at_station("zhangliuzhuang")["NH3N"].mean()
            <= runs["base"].at_station("zhangliuzhuang")["NH3N"].mean())
    with pytest.raises(qs.ConfigError, match="names must differ"):
        qs.run_all([base, qs.Scenario(name="base")], "2024-04-14", "2024-04-14")
