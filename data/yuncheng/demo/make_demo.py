#!/usr/bin/env python3
"""Makes the SYNTHETIC demo inputs of the daily forecast in this directory.

    PYTHONPATH=build/python /usr/bin/python3 data/yuncheng/demo/make_demo.py

Nothing here is a measurement. The script

1. writes plant records (daily flow and effluent of every discharging plant and outfall,
   2024-05-10 to 2024-05-19) drawn around the network's design values, a schedule (a
   maintenance outage at the Chengxi plant, an effluent upgrade at Wanrong), and a weather
   file (water temperature; one rain day in the hindcast, one forecast rain day);
2. runs the engine's synthetic truth (qingshui.forecast_synthetic_truth: the network with
   these inputs and every load scaled by hidden factors drawn from the forecast's prior)
   from 2024-05-10 to 2024-05-27;
3. samples observations of that truth up to the as-of time 2024-05-20 08:00 (+08:00):
   4-hourly COD, NH3-N and TP at the two automatic assessment sections, daily (10:00) COD,
   NH3-N, TP and F at the other river sections, with the forecast's error model;
4. plants the data problems the forecast must name: a gap at Miaoqian, a repeated
   timestamp with a different value at Zhangliuzhuang, a negative value at the Hejin
   bridge, one station without any sample, a suspect and an invalid flag;
5. writes truth_daily.csv, the truth's daily means, so that a forecast of the demo can be
   checked against the "truth" it never saw after the as-of time.

The random numbers come from fixed seeds, so running it again gives the same files.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from datetime import timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(Path(os.environ.get("QINGSHUI_BUILD_DIR", ROOT / "build")) / "python"))

import qingshui as qs  # noqa: E402
from qingshui import _qingshui  # noqa: E402

SEED = 20240520
CST = timezone(timedelta(hours=8))  # China Standard Time, the network's local days
AS_OF = pd.Timestamp("2024-05-20T08:00:00").tz_localize(CST)
FIRST = pd.Timestamp("2024-05-10")  # hindcast start (local)
RECORD_DAYS = pd.date_range("2024-05-10", "2024-05-19")  # records up to yesterday
ALL_DAYS = pd.date_range("2024-05-10", "2024-05-27")  # hindcast + horizon
HEADER = "# SYNTHETIC DEMO DATA made by data/yuncheng/demo/make_demo.py — not measurements.\n"


def plant_records(rng: np.random.Generator, net) -> pd.DataFrame:
    """Daily means around the design values: flow 75-95% of design with day-to-day
    persistence, effluent 55-95% of the network's concentration (plants run below their
    permit), both with AR(1) noise."""
    sources = net.sources().set_index("id")
    active = qs.hydraulics(network=net, date="2024-05-15").attrs["sources"].set_index("id")
    rows = []
    for sid, s in sources.iterrows():
        if s.kind not in ("treatment_plant", "industrial_outfall"):
            continue
        if not active.loc[sid, "active"] or s.design_flow_m3s <= 0:
            continue
        if sid == "linjin_wwtp":
            continue  # reports nothing: the forecast falls back to the design values
        level = rng.uniform(0.75, 0.95)
        conc_level = {k: rng.uniform(0.55, 0.95) for k in ("COD", "NH3N", "TP", "F")}
        eta = rng.normal(size=5)
        days = RECORD_DAYS if sid != "jishan_wwtp" else RECORD_DAYS[:-2]  # two late days
        for day in days:
            eta = 0.7 * eta + np.sqrt(1 - 0.49) * rng.normal(size=5)
            flow = s.design_flow_m3s * level * np.exp(0.05 * eta[0])
            rows.append((day.date().isoformat(), sid, "flow_m3s", round(flow, 4)))
            for i, k in enumerate(("COD", "NH3N", "TP", "F"), start=1):
                c = s[f"{k}_mg_l"]
                if not np.isfinite(c) or c <= 0:
                    continue
                value = c * conc_level[k] * np.exp(0.1 * eta[i])
                rows.append((day.date().isoformat(), sid, k, round(value, 3 if k != "COD" else 2)))
    return pd.DataFrame(rows, columns=["date", "source", "quantity", "value"])


def weather(rng: np.random.Generator, net) -> pd.DataFrame:
    """Water temperature rising through May; rain on 2024-05-14 (recorded) and a
    forecast storm on 2024-05-24, heaviest over the city."""
    catchments = [c for c in qs.catchments(net)["id"]]
    df = pd.DataFrame({"date": [d.date().isoformat() for d in ALL_DAYS]})
    df["water_temperature_c"] = np.round(19.0 + 0.2 * np.arange(len(ALL_DAYS)) + rng.normal(0, 0.4, len(ALL_DAYS)), 1)
    for c in catchments:
        df[c] = 0.0
    storm = {"2024-05-14": 9.0, "2024-05-24": 16.0}
    for day, depth in storm.items():
        for c in catchments:
            city = c.startswith("yuncheng_city")
            df.loc[df.date == day, c] = round(depth * (1.8 if city else rng.uniform(0.7, 1.2)), 1)
    return df


SCHEDULE = """\
# SYNTHETIC DEMO DATA made by data/yuncheng/demo/make_demo.py — not a real plan.
# Plant events over the hindcast and the horizon (docs/forecast.md, "Inputs").
format: qingshui-forecast-schedule
version: 1
description: Demo schedule (synthetic)
events:
  - source: chengxi_wwtp
    kind: outage
    from: 2024-05-22
    to: 2024-05-23
    effluent_mg_l: {COD: 45.0, NH3N: 6.0, TP: 0.8}
    note: "Synthetic: one biological line out for maintenance; nitrification impaired"
  - source: wanrong_rongbi_wwtp
    kind: upgrade
    from: 2024-05-25
    effluent_mg_l: {COD: 30.0, NH3N: 1.5, TP: 0.25}
    note: "Synthetic date: the seed requires the Rongbi upgrade by 2024-12; here it starts early"
"""


def observations(rng: np.random.Generator, truth: dict, net) -> pd.DataFrame:
    times = pd.to_datetime(truth["times_utc_s"], unit="s", utc=True)
    stations, species = truth["stations"], truth["species"]
    values = truth["values"]
    kinds = net.stations().set_index("id")["kind"]
    limits = {"COD": 20.0, "NH3N": 1.0, "TP": 0.2, "F": 1.0}  # Class III (GB 3838-2002)
    start = FIRST.tz_localize(CST)
    rows = []
    for s, sid in enumerate(stations):
        if sid == "fen_jishan_hejin":
            continue  # no sampling in this period: [station-without-observations]
        automatic = kinds[sid] == "assessment_section"
        measured = ("COD", "NH3N", "TP") if automatic else ("COD", "NH3N", "TP", "F")
        when = pd.date_range(start, AS_OF, freq="4h") if automatic else \
            pd.date_range(start + pd.Timedelta(hours=10), AS_OF, freq="1D")
        for t in when:
            i = np.searchsorted(times, t.tz_convert("UTC"))
            for k, name in enumerate(species):
                if name not in measured:
                    continue
                v = values[i, s, k]
                sigma = np.hypot(0.05 * limits[name], 0.15 * v)
                obs = max(0.0, v + sigma * rng.normal())
                rows.append([t.isoformat(), sid, name, round(obs, 3 if name != "COD" else 1), ""])
    df = pd.DataFrame(rows, columns=["time", "station", "species", "value", "flag"])
    # Planted problems.
    t = pd.to_datetime(df.time)
    gap = (df.station == "miaoqian") & (t >= pd.Timestamp("2024-05-16T08:00+08:00")) & \
        (t <= pd.Timestamp("2024-05-17T04:00+08:00"))
    df = df[~gap].copy()  # instrument maintenance: [observation-gap]
    dup = df[(df.station == "zhangliuzhuang") & (df.species == "NH3N") &
             (df.time == pd.Timestamp("2024-05-18T12:00+08:00").isoformat())].copy()
    dup["value"] = round(float(dup.value.iloc[0]) * 1.6, 3)
    df = pd.concat([df, dup])  # repeated transmission, different value: [duplicate-timestamp]
    bad = (df.station == "hejin_bridge") & (df.species == "COD") & \
        (df.time == pd.Timestamp("2024-05-15T10:00+08:00").isoformat())
    df.loc[bad, "value"] = -1.0  # sensor fault: [value-out-of-range]
    sus = (df.station == "sushui_linyi_yongji") & (df.species == "TP") & \
        (df.time == pd.Timestamp("2024-05-17T10:00+08:00").isoformat())
    df.loc[sus, "flag"] = "suspect"
    inv = (df.station == "sushui_xia_yanhu") & (df.species == "COD") & \
        (df.time == pd.Timestamp("2024-05-13T10:00+08:00").isoformat())
    df.loc[inv, "flag"] = "invalid"
    return df.sort_values(["time", "station", "species"], kind="stable")


def main() -> None:
    rng = np.random.default_rng(SEED)
    net = qs.load_network(ROOT / "data" / "yuncheng" / "network.yaml")
    records = plant_records(rng, net)
    wx = weather(rng, net)
    with open(HERE / "plant_records.csv", "w", encoding="utf-8", newline="") as f:
        f.write(HEADER + "# Daily means of flow (m3/s) and effluent (mg/L) per plant; linjin_wwtp reports nothing,\n"
                "# jishan_wwtp's last two days are missing.\n")
        records.to_csv(f, index=False, lineterminator="\n")
    with open(HERE / "weather.csv", "w", encoding="utf-8", newline="") as f:
        f.write(HEADER + "# Daily water temperature (°C) and rain per catchment (mm/day): recorded up to 2024-05-19,\n"
                "# forecast afterwards.\n")
        wx.to_csv(f, index=False, lineterminator="\n")
    (HERE / "schedule.yaml").write_text(SCHEDULE, encoding="utf-8")

    # The truth reads the inputs written so far, through a manifest without observations.
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "forecast.yaml"
        manifest.write_text(
            "format: qingshui-forecast-inputs\nversion: 1\n"
            f"plant_records: {HERE / 'plant_records.csv'}\nschedule: {HERE / 'schedule.yaml'}\n"
            f"weather: {HERE / 'weather.csv'}\nclimatology: {ROOT / 'data' / 'yuncheng' / 'climatology.yaml'}\n",
            encoding="utf-8",
        )
        truth = _qingshui.forecast_synthetic_truth(
            str(ROOT / "data" / "yuncheng" / "network.yaml"), tmp, FIRST.date().isoformat(), len(ALL_DAYS), SEED
        )
    obs = observations(rng, truth, net)
    with open(HERE / "observations.csv", "w", encoding="utf-8", newline="") as f:
        f.write(HEADER + "# Samples of a synthetic truth run with hidden load factors (see truth_daily.csv).\n")
        obs.to_csv(f, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)

    times = pd.to_datetime(truth["times_utc_s"], unit="s", utc=True).tz_convert(CST)
    rows = []
    for s, sid in enumerate(truth["stations"]):
        for k, name in enumerate(truth["species"]):
            series = pd.Series(truth["values"][:, s, k], index=times)
            # Time mean of the piecewise-linear series per local day (trapezoid).
            for day in ALL_DAYS:
                seg = series[(series.index >= day.tz_localize(CST)) &
                             (series.index <= (day + pd.Timedelta(days=1)).tz_localize(CST))]
                mean = float(np.trapz(seg.values, seg.index.asi8 / 1e9) / 86400.0)
                rows.append((day.date().isoformat(), sid, name, round(mean, 4)))
    with open(HERE / "truth_daily.csv", "w", encoding="utf-8", newline="") as f:
        f.write(HEADER + "# The synthetic truth's daily means (local days) — for checking a forecast of the demo.\n")
        pd.DataFrame(rows, columns=["date", "station", "species", "mean_mg_l"]).to_csv(f, index=False, lineterminator="\n")
    factors = pd.DataFrame(truth["factors"], index=truth["components"], columns=truth["species"])
    print("hidden load factors of the truth (1 = the records):")
    print(factors.round(2).to_string())
    print(f"wrote {len(records)} plant records, {len(obs)} observations to {HERE}")


if __name__ == "__main__":
    main()
