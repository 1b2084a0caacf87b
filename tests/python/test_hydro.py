"""qingshui.hydraulics / route_days and `qingshui hydro` on the default Yuncheng network.

Physics checked: the day's water balance closes to round-off; each segment's flow is its
inflow minus what it loses; the flows at the two assessment sections lie in the domain
brief's ranges (§3: Sushui mean ~1.4 m³/s, mostly effluent below the towns; Fen
ecological flow 0.05-1.8 m³/s dry, 0.5-19 m³/s flood season); routing conserves volume;
bad inputs raise the named exceptions.
"""

import subprocess

import h5py
import numpy as np
import pandas as pd
import pytest

import qingshui as qs

EPS = np.finfo(float).eps


@pytest.fixture(scope="module")
def net(default_network_path):
    return qs.load_network(default_network_path)


def section(df, net, station):
    st = net.stations().set_index("id").loc[station]
    rows = df[(df.reach == st.reach) & (df.km_start < st.km) & (df.km_end >= st.km - 1e-9)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_one_row_per_segment_with_units_in_the_names(net):
    df = qs.hydraulics(net, date="2024-04-15")
    assert isinstance(df, pd.DataFrame)
    assert list(df.columns[:4]) == ["segment", "reach", "index_in_reach", "is_lake"]
    for col in ("flow_m3s", "depth_m", "velocity_ms", "dispersion_m2s", "area_m2"):
        assert col in df.columns
        assert np.isfinite(df[col]).all() and (df[col] >= 0).all()
    assert df.attrs["units"]["flow_m3s"] == "m3/s"
    assert df.attrs["season"] == "dry"
    assert (df.segment == np.arange(len(df))).all()
    assert ((df.downstream > df.segment) | (df.downstream == -1)).all()


def test_water_balance_closes_per_segment_and_overall(net):
    df = qs.hydraulics(net, date="2024-08-01")
    inflow = df.headwater_inflow_m3s + df.upstream_inflow_m3s + df.point_inflow_m3s + df.diffuse_inflow_m3s
    outflow = df.flow_m3s + df.withdrawal_m3s + df.loss_m3s
    assert np.allclose(inflow, outflow, rtol=4 * EPS, atol=0)
    b = df.attrs["balance"]
    assert abs(b["residual_m3s"]) <= len(df) * EPS * b["inflow_m3s"]


def test_sections_in_the_briefs_ranges_dry_and_flood_season(net):
    dry = qs.hydraulics(net, date="2024-04-15")
    wet = qs.hydraulics(net, date="2024-08-01")
    z_dry, z_wet = section(dry, net, "zhangliuzhuang"), section(wet, net, "zhangliuzhuang")
    m_dry, m_wet = section(dry, net, "miaoqian"), section(wet, net, "miaoqian")
    # Sushui: ~1.4 m³/s mean, within a factor 2 in the dry season, mostly effluent.
    assert 0.7 <= z_dry.flow_m3s <= 2.8
    assert z_dry.effluent_fraction > 0.5
    assert z_dry.flow_m3s < z_wet.flow_m3s < 100.0
    # Fen ecological flow: 0.05-1.8 (dry), 0.5-19 (flood season) m³/s.
    assert 0.05 <= m_dry.flow_m3s <= 1.8
    assert 0.5 <= m_wet.flow_m3s <= 19.0
    # The upper Sushui runs dry outside the flood season, not in it.
    assert (dry[dry.reach == "sushui_upper"].flow_m3s == 0).any()
    assert (wet[wet.reach == "sushui_upper"].flow_m3s > 0).all()


def test_sources_say_why_they_run_or_not(net):
    sources = qs.hydraulics(net, date="2024-04-15").attrs["sources"].set_index("id")
    assert not sources.loc["yongji_farmland_drainage", "active"]
    assert "plugged until 2025-12-31" in sources.loc["yongji_farmland_drainage", "reason"]
    assert sources.loc["chengxi_wwtp", "active"]
    later = qs.hydraulics(net, date="2026-02-01").attrs["sources"].set_index("id")
    assert later.loc["yongji_farmland_drainage", "active"]


def test_rain_adds_runoff_and_an_overflow(net, tmp_path):
    catchments = list(qs.catchments(net).id)
    assert "yuncheng_city_east" in catchments
    rain = tmp_path / "rain.csv"
    rain.write_text("date," + ",".join(catchments) + "\n2024-07-21," + ",".join(["35"] * len(catchments)) + "\n")
    dry = qs.hydraulics(net, date="2024-07-21")
    wet = qs.hydraulics(net, date="2024-07-21", rain=rain)
    assert wet.diffuse_inflow_m3s.sum() > dry.diffuse_inflow_m3s.sum() + 100
    assert "overflow:chengdong_wwtp" in wet.attrs["report"]
    bad = tmp_path / "gap.csv"
    bad.write_text("date,yuncheng_city_east\n2024-07-20,1\n2024-07-22,1\n")
    with pytest.raises(qs.DataError, match="gap"):
        qs.hydraulics(net, date="2024-07-22", rain=bad)


def test_route_days_conserves_volume_and_starts_steady(net):
    r = qs.route_days(net, ["2024-04-14", "2024-04-15"], time_step_s=3600, output_interval_s=6 * 3600)
    assert r.flow_m3s.shape == (len(r.times_s), 711)
    assert r.relative_volume_error < 1e-12
    assert np.allclose(r.flow_m3s[0], r.flow_m3s[4], rtol=1e-9, atol=1e-12)  # day 1 steady


def test_named_errors(net):
    with pytest.raises(qs.ConfigError, match="date"):
        qs.hydraulics(net, date="2024-02-30")
    with pytest.raises(qs.ConfigError, match="no entry for season 'monsoon'"):
        qs.hydraulics(net, date="2024-04-15", season="monsoon")


def test_dispersion_and_runoff_helpers():
    us = np.sqrt(9.81 * 1.0 * 3e-4)
    assert qs.dispersion_coefficient("fischer", 0.4, 1.0, 40.0, us) == pytest.approx(0.011 * 0.16 * 1600 / us)
    assert qs.scs_runoff_mm(100.0, 80.0) == pytest.approx(87.3**2 / (87.3 + 63.5))
    with pytest.raises(qs.ConfigError):
        qs.dispersion_coefficient("elder", 0.4, 1.0, 40.0, us)


def test_cli_writes_csv_and_self_describing_hdf5(cli, tmp_path):
    out_csv, out_h5 = tmp_path / "day.csv", tmp_path / "day.h5"
    run = subprocess.run([str(cli), "hydro", "--date", "2024-04-15", "--out", str(out_csv)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "volume balance residual" in run.stdout
    df = pd.read_csv(out_csv)
    assert len(df) == 711 and "dispersion_m2s" in df.columns
    run = subprocess.run([str(cli), "hydro", "--date", "2024-08-01", "--season", "wet", "--out", str(out_h5)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with h5py.File(out_h5, "r") as f:
        assert f.attrs["filetype"] in (b"qingshui-hydraulics", "qingshui-hydraulics")
        assert list(f.attrs["version"]) == [1, 0]
        assert f["segments/flow_m3s"].attrs["unit"] in (b"m3/s", "m3/s")
        assert f["segments/flow_m3s"].shape == (711,)
        assert abs(f["balance"].attrs["residual_m3s"]) < 1e-10
    assert not list(tmp_path.glob("*.tmp-*"))  # written atomically


def test_cli_exit_codes(cli, tmp_path):
    def code(*args):
        return subprocess.run([str(cli), "hydro", *args], capture_output=True, text=True)
    r = code("--date", "2024-13-01", "--out", str(tmp_path / "x.csv"))
    assert r.returncode == 2 and "date" in r.stderr
    r = code("--date", "2024-04-15", "--out", str(tmp_path / "x.txt"))
    assert r.returncode == 2
    r = code("--date", "2024-04-15")
    assert r.returncode == 2
    r = code("--date", "2024-04-15", "--out", str(tmp_path / "missing" / "x.csv"))
    assert r.returncode == 1
    assert code("--help").returncode == 0
