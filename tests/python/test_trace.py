"""qingshui.simulate / trace / release_history and `qingshui simulate` / `qingshui trace`.

Checked: a drill from the README (simulate a release, trace it) puts the true source in the
90% set with the release inside its intervals; the CLI's JSON has the issue's shape and the
same numbers as the Python objects; errors name file, line and field.
"""

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest

import qingshui as qs

SCENARIO = {
    "start": "2024-04-15T00:00+08:00",
    "end": "2024-04-22T00:00+08:00",
    "hydrology": {"velocity_factor": 1.1, "dispersion_factor": 0.7},
    "events": [
        {
            "source": "jishan_wwtp",
            "start": "2024-04-16T02:00+08:00",
            "duration_h": 3,
            "mass_kg": {"COD": 2000, "NH3N": 120, "TP": 30},
        }
    ],
    "sampling": {"interval_h": 4, "noise": 0.1, "seed": 7, "stations": "sections"},
}


@pytest.fixture(scope="module")
def observations(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "obs.csv"
    frame = qs.simulate(SCENARIO, observations_out=path)
    return frame, path


@pytest.fixture(scope="module")
def result(observations):
    frame, _ = observations
    return qs.trace(frame)


def test_simulate_returns_the_long_form_in_local_time(observations):
    frame, path = observations
    assert list(frame.columns) == ["time", "station", "species", "value", "exact"]
    assert str(frame["time"].dt.tz) == "Asia/Shanghai"
    assert frame["time"].iloc[0] == pd.Timestamp("2024-04-15 00:00", tz="Asia/Shanghai")
    # 7 days of 4-hourly samples (43 times) at the 14 river sections, 4 species.
    assert len(frame) == 43 * 14 * 4
    assert "xinjiang_ez_outfall_monitor" not in set(frame.station)
    assert (frame.value >= 0).all()
    assert frame.attrs["relative_mass_error"] < 1e-10
    text = path.read_text().splitlines()
    assert text[0] == "time,station,species,value"
    assert text[1].startswith("2024-04-15T00:00:00+08:00,")


def test_trace_finds_the_release(result):
    truth_start = pd.Timestamp("2024-04-16 02:00", tz="Asia/Shanghai")
    assert "jishan_wwtp" in result.credible_set_90
    top = result.sources[result.sources["id"] == "jishan_wwtp"].iloc[0]
    assert top.release_start_lo <= truth_start <= top.release_start_hi
    for sp, kg in {"COD": 2000, "NH3N": 120, "TP": 30}.items():
        assert top[f"{sp}_kg_lo"] <= kg <= top[f"{sp}_kg_hi"], sp
    # The two Jishan candidates 1 km apart are reported as a group.
    assert any({"jishan_wwtp", "jishan_fen_wetland"} <= set(g) for g in result.groups)
    assert math.isclose(result.hypotheses.probability.sum(), 1.0, rel_tol=1e-3)
    assert result.hypotheses.probability.is_monotonic_decreasing
    assert set(result.identifiability.status) <= {"identified", "weakly identified", "not identified"}


def test_cli_json_has_the_issue_shape_and_matches_python(observations, result, cli):
    _, path = observations
    out = subprocess.run(
        [str(cli), "trace", "--observations", str(path), "--json"], capture_output=True, text=True, check=True
    ).stdout
    doc = json.loads(out)
    assert set(doc) == {"hypotheses", "groups", "diagnostics", "elapsed_s"}
    h = doc["hypotheses"][0]
    assert {"probability", "sources"} <= set(h)
    s = h["sources"][0]
    assert {"id", "kind", "release_start", "release_end", "mass_kg", "mass_kg_ci90"} <= set(s)
    assert s["release_start"].endswith("+08:00")
    assert set(s["mass_kg"]) == {"COD", "NH3N", "TP"}
    assert all(len(v) == 2 and v[0] <= v[1] for v in s["mass_kg_ci90"].values())
    probs = [x["probability"] for x in doc["hypotheses"]]
    assert probs == sorted(probs, reverse=True)
    assert isinstance(doc["groups"], list) and all(isinstance(g, list) for g in doc["groups"])
    # Same computation, same answer (the engine is deterministic).
    py = result.as_dict()
    assert [x["label"] for x in doc["hypotheses"]] == [x["label"] for x in py["hypotheses"]]
    assert np.allclose(probs, [x["probability"] for x in py["hypotheses"]], rtol=1e-6)
    table = subprocess.run(
        [str(cli), "trace", "--observations", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "90% credible set:" in table and "jishan_wwtp" in table


def test_release_history_finds_the_pulse(observations):
    frame, _ = observations
    h = qs.release_history(frame, "jishan_wwtp", regularization="tikhonov", alpha="lcurve")
    assert list(h.columns[:2]) == ["time", "COD_kg_h"]
    cod = h["COD_kg_h"].to_numpy()
    peak = h["time"].iloc[int(np.argmax(cod))]
    # The loads come back non-negative with the largest within a few hours of the 02:00-05:00
    # release (the reconstruction fits velocity and dispersion on a coarse grid).
    assert (cod >= 0).all()
    assert abs((peak - pd.Timestamp("2024-04-16 03:30", tz="Asia/Shanghai")).total_seconds()) < 6 * 3600
    assert h.attrs["series"]["COD"]["total_kg"] > 1000


def test_errors_name_file_line_and_field(tmp_path, cli):
    bad = tmp_path / "bad.yaml"
    bad.write_text("start: 2024-04-15T00:00+08:00\nend: 2024-04-16T00:00+08:00\nevents:\n  - {source: nowhere}\n")
    with pytest.raises(qs.ConfigError, match=r"bad.yaml:4: events\[0\].source: unknown source 'nowhere'"):
        qs.simulate(bad)
    with pytest.raises(qs.ConfigError, match=r"<scenario>:\d+: sampling.noise"):
        qs.simulate({**SCENARIO, "sampling": {"noise": 3}})
    obs = tmp_path / "obs.csv"
    obs.write_text("time,station,species,value\n2024-04-15T00:00+08:00,miaoqian,COD,20\n2024-04-15T04:00+08:00,nowhere,COD,20\n")
    with pytest.raises(qs.ConfigError, match=r"obs.csv:3: station: unknown station 'nowhere'"):
        qs.trace(obs)
    run = subprocess.run([str(cli), "trace", "--observations", str(obs)], capture_output=True, text=True)
    assert run.returncode == 2
    assert "obs.csv:3: station: unknown station 'nowhere'" in run.stderr
    obs.write_text("time,station,species,value\n2024-04-15T00:00+08:00,miaoqian,COD,-2\n")
    with pytest.raises(qs.DataError, match=r"obs.csv:2: value"):
        qs.trace(obs)


def test_a_trace_saved_by_the_cli_loads_as_the_same_result(tmp_path):
    """`qingshui trace --json > FILE` and qs.read_trace(FILE) give what qs.trace gives."""
    obs = qs.simulate(SCENARIO)
    r = qs.trace(obs)
    saved = tmp_path / "trace.json"
    saved.write_text(r.to_json(), encoding="utf-8")
    back = qs.read_trace(saved)
    # The JSON carries 4 significant digits for the factors, more for the rest: equal to that.
    pd.testing.assert_frame_equal(back.hypotheses, r.hypotheses, check_exact=False, rtol=5e-4)
    pd.testing.assert_frame_equal(back.sources, r.sources, check_exact=False, rtol=5e-4)
    assert back.credible_set_90 == r.credible_set_90
    assert back.groups == r.groups
    pd.testing.assert_series_equal(back.source_probability, r.source_probability,
                                   check_exact=False, rtol=1e-3)
    assert "90% credible set" in str(back)
    bad = tmp_path / "bad.json"
    bad.write_text('{"hypotheses": []}', encoding="utf-8")
    with pytest.raises(qs.DataError, match="bad.json"):
        qs.read_trace(bad)


def test_within_h_keeps_recommendations_to_the_next_hours(observations):
    # Issue #21 item 2: a team in the field asks where to be in the next two hours. At
    # 2024-04-17 00:00 no station sample within two hours separates the Jishan plant from
    # the wetland below it; the earliest that does is given instead, and said so.
    frame, _ = observations
    now = pd.Timestamp("2024-04-17 00:00", tz="Asia/Shanghai")
    plain = qs.trace(frame, end=now)
    team = qs.trace(frame, end=now, within_h=2)
    assert list(team.next_samples.columns) == [
        "station",
        "time",
        "expected_information_nats",
        "within_window",
        "predictions",
    ]
    assert plain.next_samples["within_window"].all()
    assert plain.diagnostics["next_samples_note"] == ""
    assert not team.next_samples.empty
    assert (team.next_samples["time"] > now).all()
    inside = team.next_samples[team.next_samples["within_window"]]
    assert (inside["time"] <= now + pd.Timedelta(hours=2)).all()
    if inside.empty:
        first = team.next_samples.iloc[0]
        assert first["time"] > now + pd.Timedelta(hours=2)
        assert first["time"] <= plain.next_samples["time"].min()
        assert f"the earliest that does: {first['station']}" in team.diagnostics["next_samples_note"]
    with pytest.raises(qs.ConfigError, match="recommend_within_s"):
        qs.trace(frame, end=now, within_h=0.5)


def test_cli_within_h(observations, cli):
    _, path = observations
    args = [str(cli), "trace", "--observations", str(path), "--end", "2024-04-17T00:00+08:00"]
    run = subprocess.run(args + ["--within-h", "2", "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert all("within_window" in n for n in doc["diagnostics"]["next_samples"])
    assert "next_samples_note" in doc["diagnostics"]
    bad = subprocess.run(args + ["--within-h", "soon"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--within-h: expected a number, got 'soon'" in bad.stderr


def test_team_at_recommends_points_the_team_can_reach(observations, tmp_path):
    # Issue #16 "Recommendations anywhere": with a team at the Jishan-Hejin section, the
    # places are stations and river points (reach, km; station None), each reachable along
    # the rivers at the team's speed by its time; within_h defaults to 2. The JSON and the
    # saved trace carry the point entries and the team.
    frame, _ = observations
    now = pd.Timestamp("2024-04-17 00:00", tz="Asia/Shanghai")
    plain = qs.trace(frame, end=now, within_h=2)
    team = qs.trace(frame, end=now, team_at="fen_jishan_hejin", team_speed_kmh=20)
    assert list(team.next_samples.columns) == [
        "station", "reach", "km", "time", "expected_information_nats", "within_window",
        "team_distance_km", "predictions",
    ]
    # The ranking does not depend on the team.
    assert team.hypotheses["label"].tolist() == plain.hypotheses["label"].tolist()
    nxt = team.next_samples
    assert not nxt.empty
    points = nxt[nxt["station"].isna()]
    assert not points.empty
    assert (points["reach"] == "fen_lower").all()
    # Jishan-Hejin is at km 65 of fen_lower: a point's distance is along the reach.
    assert np.allclose(points["team_distance_km"], (points["km"] - 65).abs())
    hours = (nxt["time"] - now).dt.total_seconds() / 3600
    assert (nxt["team_distance_km"] / 20 <= hours + 1e-9).all()
    assert (nxt[nxt["within_window"]]["time"] <= now + pd.Timedelta(hours=2)).all()
    doc = json.loads(team.to_json())
    assert doc["diagnostics"]["team"] == {"at": "fen_jishan_hejin", "speed_kmh": 20, "within_h": 2}
    entry = next(n for n in doc["diagnostics"]["next_samples"] if "reach" in n)
    assert "station" not in entry and isinstance(entry["km"], (int, float))
    saved = tmp_path / "team.json"
    saved.write_text(team.to_json(), encoding="utf-8")
    back = qs.read_trace(saved)
    assert back.next_samples["reach"].tolist() == nxt["reach"].tolist()
    assert np.allclose(back.next_samples["team_distance_km"], nxt["team_distance_km"])


def test_team_at_errors_name_the_field(observations, cli):
    frame, path = observations
    for place, message in [
        ("nowhere", "team_at: unknown station 'nowhere'"),
        ("fen_lower:500", "team_at: km 500 is outside reach fen_lower"),
        ("no_reach:3", "team_at: unknown reach 'no_reach'"),
    ]:
        with pytest.raises(qs.ConfigError, match=message):
            qs.trace(frame, team_at=place)
    with pytest.raises(qs.ConfigError, match="team_speed_kmh"):
        qs.trace(frame, team_at="hejin_bridge", team_speed_kmh=0)
    with pytest.raises(qs.ConfigError, match="team_speed_kmh: give team_at too"):
        qs.trace(frame, team_speed_kmh=20)
    args = [str(cli), "trace", "--observations", str(path)]
    bad = subprocess.run(args + ["--team-at", "fen_lower:500"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "--team-at: km 500 is outside reach fen_lower" in bad.stderr
    run = subprocess.run(
        args + ["--end", "2024-04-17T00:00+08:00", "--team-at", "fen_lower:60", "--json"],
        capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert doc["diagnostics"]["team"]["within_h"] == 2
    assert any("reach" in n for n in doc["diagnostics"]["next_samples"])
