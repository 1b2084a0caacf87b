"""Mobile samples (issue #16): observations at any river point, reach and km.

Checked: ``qs.simulate`` with ``sampling.points`` returns and writes rows with reach and km
(point-only and mixed layouts); ``qs.trace`` takes them as a DataFrame (point columns only, or
station, reach and km together) and as the CSV, and a drill seen only at two points finds
the source; bad rows name the row and field.
"""

import math

import numpy as np
import pandas as pd
import pytest

import qingshui as qs

POINTS = [{"reach": "fen_lower", "km": 55}, {"reach": "fen_lower", "km": 100}]
SCENARIO = {
    "start": "2024-04-15T00:00+08:00",
    "end": "2024-04-19T00:00+08:00",
    "hydrology": {"velocity_factor": 1.1, "dispersion_factor": 0.7},
    "events": [
        {
            "source": "jishan_wwtp",
            "start": "2024-04-16T02:00+08:00",
            "duration_h": 3,
            "mass_kg": {"COD": 2000, "NH3N": 120, "TP": 30},
        }
    ],
    "sampling": {"interval_h": 4, "noise": 0.1, "seed": 7, "points": POINTS},
}


@pytest.fixture(scope="module")
def point_samples(tmp_path_factory):
    path = tmp_path_factory.mktemp("points") / "obs.csv"
    return qs.simulate(SCENARIO, observations_out=path), path


def test_simulate_points_gives_reach_and_km(point_samples):
    frame, path = point_samples
    assert list(frame.columns) == ["time", "reach", "km", "species", "value", "exact"]
    # 25 times (4 days, every 4 h) x 2 points x 4 species.
    assert len(frame) == 25 * 2 * 4
    assert set(frame.reach) == {"fen_lower"}
    assert sorted(set(frame.km)) == [55.0, 100.0]
    lines = path.read_text().splitlines()
    assert lines[0] == "time,reach,km,species,value"
    assert lines[1].startswith("2024-04-15T00:00:00+08:00,fen_lower,55,COD,")


def test_trace_a_point_only_frame_finds_the_source(point_samples):
    frame, path = point_samples
    r = qs.trace(frame)
    assert r.hypotheses.iloc[0]["label"] == "jishan_wwtp"
    assert "jishan_wwtp" in r.credible_set_90
    assert r.diagnostics["stations"] == 2 and r.diagnostics["points"] == 2
    # The CSV the same: read back by the same reader as `qingshui trace`.
    r2 = qs.trace(path)
    assert r2.hypotheses.iloc[0]["label"] == "jishan_wwtp"
    assert r2.hypotheses.iloc[0]["probability"] == pytest.approx(r.hypotheses.iloc[0]["probability"], rel=1e-9)


def test_simulate_mixed_sampling_and_trace_a_mixed_frame(tmp_path):
    scenario = dict(SCENARIO, sampling={"interval_h": 4, "noise": 0.1, "seed": 3, "stations": ["miaoqian"], "points": POINTS[:1]})
    path = tmp_path / "mixed.csv"
    frame = qs.simulate(scenario, observations_out=path)
    assert list(frame.columns) == ["time", "station", "reach", "km", "species", "value", "exact"]
    at_station = frame.station.notna()
    assert (frame.station[at_station] == "miaoqian").all()
    assert frame.reach[at_station].isna().all() and frame.km[at_station].isna().all()
    assert (frame.reach[~at_station] == "fen_lower").all() and (frame.km[~at_station] == 55).all()
    assert path.read_text().splitlines()[0] == "time,station,reach,km,species,value"
    r = qs.trace(frame)
    assert r.diagnostics["stations"] == 2 and r.diagnostics["points"] == 1
    assert r.hypotheses.iloc[0]["label"] == "jishan_wwtp"
    # Empty cells may be "" as well as None / NaN.
    text = frame.assign(station=frame.station.fillna(""), reach=frame.reach.fillna(""))
    r2 = qs.trace(text)
    assert r2.hypotheses.iloc[0]["probability"] == pytest.approx(r.hypotheses.iloc[0]["probability"], rel=1e-9)


def _frame(rows):
    return pd.DataFrame(rows, columns=["time", "station", "reach", "km", "species", "value"])


def test_bad_point_rows_name_the_row_and_field():
    t0, t1 = "2024-04-15T00:00+08:00", "2024-04-15T04:00+08:00"
    ok = [t0, "miaoqian", None, math.nan, "COD", 20.0]
    with pytest.raises(qs.DataError, match=r"<DataFrame row>:2: reach: give either a station or reach and km, not both"):
        qs.trace(_frame([ok, [t1, "miaoqian", "fen_lower", 10.0, "COD", 20.0]]))
    with pytest.raises(qs.DataError, match=r"<DataFrame row>:2: station: empty: give a station, or reach and km"):
        qs.trace(_frame([ok, [t1, None, None, math.nan, "COD", 20.0]]))
    with pytest.raises(qs.DataError, match=r"<DataFrame row>:2: km: empty"):
        qs.trace(_frame([ok, [t1, None, "fen_lower", None, "COD", 20.0]]))
    with pytest.raises(qs.DataError, match=r"<DataFrame row>:2: value"):
        qs.trace(_frame([ok, [t1, None, "fen_lower", 10.0, "COD", -1.0]]))
    with pytest.raises(qs.DataError, match=r"<DataFrame row>:2: km: expected a number"):
        qs.trace(_frame([ok, [t1, None, "fen_lower", "ten", "COD", 1.0]]))
    with pytest.raises(qs.ConfigError, match=r"<DataFrame row>:2: reach: unknown reach 'fen'"):
        qs.trace(_frame([ok, [t1, None, "fen", 10.0, "COD", 20.0]]))
    with pytest.raises(qs.ConfigError, match=r"<DataFrame row>:2: km: km 150 is outside reach fen_lower"):
        qs.trace(_frame([ok, [t1, None, "fen_lower", 150.0, "COD", 20.0]]))
    with pytest.raises(qs.DataError, match=r"missing column 'station'"):
        qs.trace(pd.DataFrame({"time": [t0], "reach": ["fen_lower"], "species": ["COD"], "value": [1.0]}))


def test_bad_point_rows_in_the_csv_name_file_line_and_field(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time,station,reach,km,species,value\n2024-04-15T00:00+08:00,,fen_lower,,COD,1\n")
    with pytest.raises(qs.DataError, match=r"bad.csv:2: km: empty"):
        qs.trace(path)


def test_release_history_says_points_are_not_used():
    frame = _frame(
        [
            ["2024-04-15T00:00+08:00", None, "fen_lower", 55.0, "COD", 20.0],
            ["2024-04-15T04:00+08:00", None, "fen_lower", 55.0, "COD", 21.0],
        ]
    )
    with pytest.raises(qs.ConfigError, match=r"point samples \(reach, km\) are not used by --history"):
        qs.release_history(frame, "jishan_wwtp")
