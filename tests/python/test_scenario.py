"""Scenarios and results on the default network: the analyst's questions in a few lines."""

import numpy as np
import pandas as pd
import pytest

import qingshui as qs


@pytest.fixture(scope="module")
def base():
    return qs.Scenario(name="base").run("2024-04-14", "2024-04-16")


def test_at_station_is_local_time_with_a_column_per_species(base):
    frame = base.at_station("zhangliuzhuang")
    assert str(frame.index.tz) == "Asia/Shanghai"
    assert frame.index[0] == pd.Timestamp("2024-04-14 00:00", tz="Asia/Shanghai")
    assert frame.index[-1] == pd.Timestamp("2024-04-17 00:00", tz="Asia/Shanghai")
    assert list(frame.columns) == ["COD", "NH3N", "TP", "F"]
    assert (frame.to_numpy() >= 0).all() and np.isfinite(frame.to_numpy()).all()


def test_cleaner_effluent_lowers_the_section_and_nothing_upstream_of_the_plant(base):
    sc = qs.Scenario(name="chengxi III").set_effluent("chengxi_wwtp", COD=20, NH3N=1.0, TP=0.2)
    assert "chengxi_wwtp: effluent COD 20 mg/L" in str(sc)
    other = sc.run("2024-04-14", "2024-04-16")
    diff = base.compare(other)
    # Chengxi's Class V effluent (40 / 2.0 / 0.4) is halved: the section below improves.
    for sp in ("NH3N", "TP"):
        assert diff.loc[("zhangliuzhuang", sp), "change_mg_l"] < 0
    # Fluoride is untouched, and the Fen is a different river.
    assert diff.loc[("zhangliuzhuang", "F"), "change_mg_l"] == pytest.approx(0, abs=1e-12)
    assert diff.loc[("miaoqian", "NH3N"), "change_mg_l"] == pytest.approx(0, abs=1e-12)
    # Upstream of the plant (km 112) only dispersion reaches, decaying like
    # exp(-u x / D): with u ~ 0.2 m/s and Fischer's D ~ 100 m2/s, 30 km up that is e^-60.
    a, b = base.profile("sushui"), other.profile("sushui")
    upstream = a.index < 82
    np.testing.assert_allclose(a[upstream].to_numpy(), b[upstream].to_numpy(), rtol=0, atol=1e-12)


def test_dated_change_splits_the_source_and_contributions_add_it_back(base):
    sc = qs.Scenario(name="upgrade").upgrade("chengxi_wwtp", "2024-04-15", NH3N=0.5)
    net = sc.to_network()
    ids = set(net.sources()["id"])
    assert {"chengxi_wwtp", "chengxi_wwtp__from_2024-04-15"} <= ids
    res = sc.run("2024-04-14", "2024-04-16")
    contrib = res.contributions("zhangliuzhuang", "NH3N")
    assert "chengxi_wwtp" in contrib.index and "chengxi_wwtp__from_2024-04-15" not in contrib.index


def test_plug_removes_the_source_from_the_contributions():
    res = qs.Scenario(name="plugged").plug("yongji_city_wwtp").run("2024-04-14", "2024-04-14")
    contrib = res.contributions("zhangliuzhuang", "NH3N")
    assert "yongji_city_wwtp" not in contrib.index or contrib.loc["yongji_city_wwtp", "mg_l"] == 0


def test_assess_classes_follow_the_worst_indicator(base):
    table = base.assess("day")
    row = table[table["station"] == "zhangliuzhuang"].iloc[0]
    classes = ["I", "II", "III", "IV", "V", "劣V"]
    worst = max(classes.index(row[f"{sp}_class"]) for sp in ("COD", "NH3N", "TP", "F"))
    assert row["class"] == classes[worst]
    if worst <= 2:
        assert row["main_pollutants"] == ""


def test_assess_by_year_splits_at_new_year_and_classes_each_year_mean():
    res = qs.Scenario(name="new year").run("2023-12-31", "2024-01-01", contributions=False, fields=False)
    years = res.assess("year")
    days = res.assess("day")
    for station in ("zhangliuzhuang", "miaoqian"):
        y = years[years["station"] == station].reset_index(drop=True)
        d = days[days["station"] == station].reset_index(drop=True)
        assert [p.year for p in y["period"]] == [2023, 2024]
        # One day of each year in the run: each year's mean is that day's mean.
        for col in ("class", "COD_mg_l", "NH3N_mg_l", "TP_mg_l"):
            assert list(y[col]) == list(d[col])
    with pytest.raises(qs.ConfigError, match="day, week, month or year"):
        res.assess("decade")


def test_to_xarray_has_stations_segments_and_contributors(base):
    ds = base.to_xarray()
    assert set(ds.data_vars) >= {"station_concentration", "concentration", "contribution"}
    assert "headwater" in list(ds["contributor"].values)
    assert ds.attrs["timezone"] == "Asia/Shanghai"


def test_errors_are_config_errors():
    with pytest.raises(qs.ConfigError, match="unknown source 'nope'"):
        qs.Scenario().set_effluent("nope", COD=1).to_network()
    with pytest.raises(qs.ConfigError, match="before start"):
        qs.Scenario().run("2024-04-16", "2024-04-14")
    with pytest.raises(qs.ConfigError, match="finite number"):
        qs.Scenario().set_flow("chengxi_wwtp", float("nan")).to_network()


def test_a_drier_fen_headwater_raises_the_share_of_effluent_at_miaoqian():
    wet = qs.Scenario(name="base").run("2024-03-01", "2024-03-01")
    dry = qs.Scenario(name="drier").set_headwater("fen_upper", "dry", flow_m3s=0.5).run("2024-03-01", "2024-03-01")
    # Less clean-ish upstream water, same effluent loads: the plants weigh more at Miaoqian.
    a = wet.at_station("miaoqian")["NH3N"].iloc[-1]
    b = dry.at_station("miaoqian")["NH3N"].iloc[-1]
    assert b > a
    with pytest.raises(qs.ConfigError, match="no 'monsoon' headwater"):
        qs.Scenario().set_headwater("fen_upper", "monsoon", flow_m3s=1).to_network()


def test_runs_report_to_logging(caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="qingshui"):
        qs.Scenario(name="logged").run("2024-04-14", "2024-04-14", contributions=False, fields=False)
    messages = [r.getMessage() for r in caplog.records]
    assert any("scenario 'logged'" in m and "1 day" in m for m in messages)
    assert any("done" in m and "mass" in m.lower() for m in messages)
