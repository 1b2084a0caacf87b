"""The forecast command and its file: the summary as JSON, the HDF5 file read by h5py and
by xarray (engine h5netcdf) with the documented layout, observations from HDF5 giving the
same forecast as from CSV, and a run killed while writing leaving the previous file
untouched. Runs are short (2 hindcast days, 2 forecast days, 10 members)."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import qingshui as qs

DEMO_FILES = ("plant_records.csv", "schedule.yaml", "weather.csv")


def short_inputs(root: Path, where: Path, observations: str) -> Path:
    """An inputs directory using the demo's files, with a short hindcast."""
    where.mkdir(parents=True, exist_ok=True)
    demo = root / "data" / "yuncheng" / "demo"
    files = "".join(f"{key}: {demo / name}\n" for key, name in
                    zip(("plant_records", "schedule", "weather"), DEMO_FILES))
    (where / "forecast.yaml").write_text(
        "format: qingshui-forecast-inputs\nversion: 1\nsynthetic: true\n"
        "description: short demo run for the tests\n"
        "as_of: 2024-05-20T08:00:00+08:00\n"
        f"network: {root / 'data' / 'yuncheng' / 'network.yaml'}\n"
        f"observations: {observations}\n{files}"
        f"climatology: {root / 'data' / 'yuncheng' / 'climatology.yaml'}\n"
        "settings: {hindcast_days: 2, groups: 5, seed: 42}\n"
        "indicators: [COD, NH3N, TP]\n",
        encoding="utf-8",
    )
    return where


def run(cli, inputs, out, *extra, env=None, check=True):
    cmd = [str(cli), "forecast", "--inputs", str(inputs), "--days", "2", "--members", "10",
           "--out", str(out), *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert r.returncode == 0, r.stderr + r.stdout
    return r


@pytest.fixture(scope="module")
def forecast_file(tmp_path_factory, cli, root):
    tmp = tmp_path_factory.mktemp("forecast")
    inputs = short_inputs(root, tmp / "inputs", str(root / "data" / "yuncheng" / "demo" / "observations.csv"))
    out = tmp / "forecast.h5"
    r = run(cli, inputs, out, "--json", "--threads", "2")
    return out, json.loads(r.stdout), inputs


def test_json_summary_names_class_probability_pollutant_and_source(forecast_file):
    _, summary, _ = forecast_file
    assert summary["filetype"] == "qingshui-forecast-summary"
    assert summary["days"] == ["2024-05-21", "2024-05-22"]
    rows = pd.DataFrame(summary["rows"])
    assert {"zhangliuzhuang", "miaoqian"} <= set(rows.station)
    assert set(rows.columns) >= {"station", "day", "class", "class_probability", "p_worse_than_iii",
                                 "main_pollutant", "top_source"}
    assert rows["class"].isin(["I", "II", "III", "IV", "V", "劣V"]).all()
    assert ((rows.p_worse_than_iii >= 0) & (rows.p_worse_than_iii <= 1)).all()
    # The class is the median of the members' classes: worse than III iff P(>III) > 1/2.
    worse = rows["class"].isin(["IV", "V", "劣V"])
    assert (worse == (rows.p_worse_than_iii > 0.5)).all()
    # Inside this 2-day hindcast the demo's planted problems are a repeated timestamp and a
    # station that never reports (the gap and the negative value are earlier).
    codes = {w["code"] for w in summary["warnings"]}
    assert {"duplicate-timestamp", "station-without-observations"} <= codes


def test_h5py_reads_the_self_describing_layout(forecast_file):
    path, _, _ = forecast_file
    with h5py.File(path, "r") as f:
        a = f.attrs
        assert a["filetype"] in (b"qingshui-forecast", "qingshui-forecast")
        assert list(a["version"]) == [1, 0]
        assert str(a["qingshui_version"]) and str(a["created"])
        assert str(a["as_of"]).endswith("2024-05-20T08:00:00+08:00") or a["as_of"] == b"2024-05-20T08:00:00+08:00"
        q = f["quantiles"]
        nt, ns, nk = f["time"].shape[0], f["station"].shape[0], f["species"].shape[0]
        assert q.shape == (5, nt, ns, nk)
        assert f["p_exceed"].shape == (5, nt, ns, nk)
        np.testing.assert_allclose(f["quantile"][()], [0.05, 0.25, 0.5, 0.75, 0.95])
        assert [x.decode() for x in f["limit_class"][()]] == ["I", "II", "III", "IV", "V"]
        assert [x.decode() for x in f["species"][()]] == ["COD", "NH3N", "TP", "F"]
        # Quantiles are ordered, probabilities are probabilities.
        qv = q[()]
        assert (np.diff(qv, axis=0) >= 0).all()
        p = f["p_exceed"][()]
        assert ((p >= 0) & (p <= 1)).all()
        # netCDF-4 layout: coordinates are dimension scales attached to the variables.
        assert f["time"].attrs["CLASS"] == b"DIMENSION_SCALE"
        assert "DIMENSION_LIST" in q.attrs


def test_xarray_opens_it_with_named_dimensions(forecast_file):
    path, summary, _ = forecast_file
    ds = xr.open_dataset(path, engine="h5netcdf")
    try:
        assert ds.quantiles.dims == ("quantile", "time", "station", "species")
        assert ds.p_exceed.dims == ("limit_class", "time", "station", "species")
        assert ds.time.dtype.kind == "M"  # decoded CF times
        assert str(ds.time_local.values[0]) == "2024-05-20T08:00:00+08:00"
        assert pd.Timestamp(ds.time.values[0]) == pd.Timestamp("2024-05-20T00:00:00")  # UTC
        tp = ds.quantiles.sel(station="miaoqian", species="TP", quantile=0.5)
        assert tp.dims == ("time",) and np.isfinite(tp).all()
        with h5py.File(path, "r") as f:
            np.testing.assert_array_equal(ds.quantiles.values, f["quantiles"][()])
        # Contributions add up to the control run's daily mean.
        total = ds.contribution.sum("contributor")
        assert float(total.min()) >= 0
    finally:
        ds.close()
    ds = qs.read_forecast(path)
    table = qs.forecast_summary(ds)
    rows = pd.DataFrame(summary["rows"])
    merged = table.merge(rows, on=["station", "day"], suffixes=("", "_json"))
    assert len(merged) == len(rows)
    assert (merged["class"] == merged["class_json"]).all()
    np.testing.assert_allclose(merged.p_worse_than_iii, merged.p_worse_than_iii_json, atol=1e-6)
    ds.close()


def test_reader_rejects_other_files(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["filetype"] = "qingshui-hydraulics"
    with pytest.raises(qs.DataError, match="expected 'qingshui-forecast'"):
        qs.read_forecast(other)


def test_observations_from_hdf5_give_the_same_forecast(forecast_file, cli, root, tmp_path):
    path, _, _ = forecast_file
    csv = root / "data" / "yuncheng" / "demo" / "observations.csv"
    obs = qs.read_observations(csv)
    raw = pd.read_csv(csv, comment="#", dtype=str, keep_default_na=False)
    h5 = tmp_path / "observations.h5"
    text = h5py.string_dtype("utf-8")
    with h5py.File(h5, "w") as f:
        g = f.create_group("observations")
        for col in ("time", "station", "species", "flag"):
            g.create_dataset(col, data=raw[col].to_numpy(dtype=object), dtype=text)
        g.create_dataset("value", data=raw["value"].astype(float).to_numpy())
    assert len(qs.read_observations(h5)) == len(obs)
    inputs = short_inputs(root, tmp_path / "inputs", str(h5))
    out = tmp_path / "from_h5.h5"
    run(cli, inputs, out, "--threads", "1")
    with h5py.File(path, "r") as a, h5py.File(out, "r") as b:
        for name in ("quantiles", "p_exceed", "daily_quantiles", "contribution", "load_factor"):
            np.testing.assert_array_equal(a[name][()], b[name][()], err_msg=name)


def test_a_run_killed_while_writing_leaves_the_previous_file(forecast_file, cli, tmp_path):
    path, _, inputs = forecast_file
    out = tmp_path / "forecast.h5"
    shutil.copy(path, out)
    before = out.read_bytes()
    env = dict(os.environ, QINGSHUI_FORECAST_TEST_PAUSE_S="60")
    cmd = [str(cli), "forecast", "--inputs", str(inputs), "--days", "2", "--members", "10",
           "--seed", "3", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    tmp_file = Path(f"{out}.tmp-{proc.pid}")
    try:
        deadline = time.time() + 90
        while not tmp_file.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert tmp_file.exists(), "the run never started writing"
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert out.read_bytes() == before
    ds = qs.read_forecast(out)
    assert int(ds.attrs["seed"]) == 42
    ds.close()


def test_bad_arguments_exit_2_with_a_reason(cli, forecast_file, tmp_path):
    _, _, inputs = forecast_file
    r = subprocess.run([str(cli), "forecast", "--members"], capture_output=True, text=True)
    assert r.returncode == 2 and "needs a value" in r.stderr
    r = subprocess.run([str(cli), "forecast", "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown option" in r.stderr
    r = run(cli, inputs, tmp_path / "x.h5", "--start", "2024-05-20T08:00", check=False)
    assert r.returncode == 2 and "no UTC offset" in r.stderr
    assert not (tmp_path / "x.h5").exists()
    r = subprocess.run([str(cli), "forecast", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--members M" in r.stdout


def test_run_forecast_from_python_logs_warnings_and_returns_the_dataset(root, tmp_path, caplog):
    inputs = short_inputs(root, tmp_path / "inputs", str(root / "data" / "yuncheng" / "demo" / "observations.csv"))
    with caplog.at_level("INFO", logger="qingshui"):
        ds = qs.run_forecast(inputs=inputs, days=1, members=6, threads=1, out=tmp_path / "py.h5")
    try:
        assert list(ds.day.values) == ["2024-05-21"]
        assert int(ds.attrs["members"]) == 6
        assert ds.attrs["synthetic_inputs"] == "true"
        assert any("warning[duplicate-timestamp]" in r.getMessage() for r in caplog.records)
        assert any("forecast default" in r.getMessage() for r in caplog.records)
        table = qs.forecast_summary(ds)
        assert len(table) == ds.sizes["station"]
    finally:
        ds.close()
