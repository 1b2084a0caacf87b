"""The forecast and tracing plots render headless (Agg) and carry what a reader needs: the
ensemble's bands, the class bands, the exceedance probability taken from the file, the
ranking with the 90% credible set, the estimated release with its intervals. Also
qs.exceedance_table, the table behind the exceedance panel.

The forecast is a short run of the demo inputs (2 hindcast days, 2 days, 10 members); the
trace is the README's drill (2 t COD at the Jishan plant)."""

import dataclasses
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt

import qingshui as qs
from qingshui import plot

TRUTH = {"source": "jishan_wwtp", "start": "2024-04-16T02:00+08:00", "duration_h": 3,
         "mass_kg": {"COD": 2000, "NH3N": 120, "TP": 30}}
DRILL = {
    "start": "2024-04-15T00:00+08:00",
    "end": "2024-04-22T00:00+08:00",
    "hydrology": {"velocity_factor": 1.1, "dispersion_factor": 0.7},
    "events": [TRUTH],
    "sampling": {"interval_h": 4, "noise": 0.1, "seed": 7, "stations": "sections"},
}


def _short_inputs(root: Path, where: Path) -> Path:
    """The demo's inputs with a 2-day hindcast (the manifest of tests/python/test_forecast.py)."""
    where.mkdir(parents=True, exist_ok=True)
    demo = root / "data" / "yuncheng" / "demo"
    (where / "forecast.yaml").write_text(
        "format: qingshui-forecast-inputs\nversion: 1\nsynthetic: true\n"
        "description: short demo run for the plot tests\n"
        "as_of: 2024-05-20T08:00:00+08:00\n"
        f"network: {root / 'data' / 'yuncheng' / 'network.yaml'}\n"
        f"observations: {demo / 'observations.csv'}\n"
        f"plant_records: {demo / 'plant_records.csv'}\n"
        f"schedule: {demo / 'schedule.yaml'}\n"
        f"weather: {demo / 'weather.csv'}\n"
        f"climatology: {root / 'data' / 'yuncheng' / 'climatology.yaml'}\n"
        "settings: {hindcast_days: 2, groups: 5, seed: 42}\n"
        "indicators: [COD, NH3N, TP]\n",
        encoding="utf-8",
    )
    return where


@pytest.fixture(scope="module")
def ds(tmp_path_factory, root):
    tmp = tmp_path_factory.mktemp("fan")
    inputs = _short_inputs(root, tmp / "inputs")
    data = qs.run_forecast(inputs=inputs, days=2, members=10, threads=2, out=tmp / "forecast.h5")
    yield data
    data.close()


@pytest.fixture(scope="module")
def traced():
    return qs.trace(qs.simulate(DRILL))


def _classes(ax):
    return [p.qingshui_class for p in ax.patches if hasattr(p, "qingshui_class")]


def _gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


# ----- forecast ---------------------------------------------------------------------------


def test_fan_chart_has_bands_median_classes_and_exceedance_panel(ds, tmp_path):
    ax, p_ax = plot.forecast_fan(ds, "zhangliuzhuang", "TP")
    # Five quantiles: the 5-95% and 25-75% fans around the median.
    assert len(_gid(ax.collections, "fan")) == 2
    median = _gid(ax.get_lines(), "median")[0]
    q50 = ds.quantiles.sel(quantile=0.5, station="zhangliuzhuang", species="TP").values
    np.testing.assert_allclose(median.get_ydata(), q50)
    # The axis shows the local clock: the forecast starts at the as-of time, 08:00 in UTC+8.
    assert pd.Timestamp(median.get_xdata()[0]) == pd.Timestamp("2024-05-20 08:00")
    assert _gid(ax.get_lines(), "as_of")
    # TP's GB 3838 limits differ from class to class: six bands, I to worse than V.
    assert _classes(ax) == ["I", "II", "III", "IV", "V", "劣V"]
    assert _gid(ax.get_lines(), "observations"), "the assimilated samples of the last two days"
    assert "张留庄" in ax.get_title()
    # The exceedance panel is the file's probability, hourly and per local day.
    assert p_ax is not None and p_ax is not ax
    hourly = _gid(p_ax.get_lines(), "p_exceed")[0]
    np.testing.assert_allclose(
        hourly.get_ydata(), ds.p_exceed.sel(limit_class="III", station="zhangliuzhuang", species="TP").values)
    daily = _gid(p_ax.collections, "daily_p_exceed")[0]
    assert len(daily.get_segments()) == ds.sizes["day"]
    assert p_ax.get_ylim()[0] == 0 and 1 <= p_ax.get_ylim()[1] <= 1.05
    ax.figure.savefig(tmp_path / "fan.png")
    assert (tmp_path / "fan.png").stat().st_size > 10_000
    plot.close((ax, p_ax))


def test_fan_chart_on_given_axes_uses_a_twin_axis_or_none(ds):
    fig, ax = plt.subplots()
    main, p_ax = plot.forecast_fan(ds, "miaoqian", "NH3N", ax=ax, history_days=0)
    assert main is ax and p_ax is not None and p_ax.get_shared_x_axes().joined(p_ax, ax)
    assert not _gid(ax.get_lines(), "observations") and not _gid(ax.get_lines(), "hindcast")
    plt.close(fig)
    main, p_ax = plot.forecast_fan(ds, "miaoqian", "COD", exceedance=False)
    assert p_ax is None and len(main.figure.axes) == 1
    # COD's limits of classes I and II are equal (15 mg/L): no separate Class II band.
    assert "II" not in _classes(main) and "III" in _classes(main)
    plot.close(main)


def test_fan_chart_names_an_unknown_station(ds):
    with pytest.raises(qs.ConfigError, match="unknown station 'nowhere'"):
        plot.forecast_fan(ds, "nowhere", "TP")


def test_exceedance_table_is_the_files_probability(ds):
    table = qs.exceedance_table(ds)
    assert table.shape == (ds.sizes["station"], ds.sizes["day"])
    assert list(table.columns) == [str(d) for d in ds.day.values]
    np.testing.assert_allclose(table.to_numpy(), ds.p_class_worse.sel(limit_class="III").transpose("station", "day"))
    # Worse than Class II includes worse than Class III: never less likely.
    assert (qs.exceedance_table(ds, "II").to_numpy() >= table.to_numpy() - 1e-12).all()
    tp = qs.exceedance_table(ds, species="TP")
    np.testing.assert_allclose(
        tp.loc["zhangliuzhuang"].to_numpy(),
        ds.daily_p_exceed.sel(limit_class="III", station="zhangliuzhuang", species="TP").values)
    # The daily class is the worst indicator's: P(class > III) >= P(any one indicator > III).
    assert (table.to_numpy() >= tp.to_numpy() - 1e-12).all()
    assert any("张留庄" in s for s in qs.exceedance_table(ds, names=True).index)
    with pytest.raises(qs.ConfigError, match="limit_class"):
        qs.exceedance_table(ds, "VI")
    with pytest.raises(qs.ConfigError, match="species"):
        qs.exceedance_table(ds, species="Hg")


def test_exceedance_heat_table_renders(ds, tmp_path):
    ax = plot.forecast_exceedance(ds)
    image = _gid(ax.images, "p_exceed")[0]
    np.testing.assert_allclose(image.get_array(), qs.exceedance_table(ds).to_numpy())
    assert len(ax.get_yticklabels()) == ds.sizes["station"]
    ax.figure.savefig(tmp_path / "exceedance.png")
    plot.close(ax)


# ----- tracing ----------------------------------------------------------------------------


def test_ranking_bars_mark_the_credible_set_and_groups(traced, tmp_path):
    ax = plot.trace_ranking(traced, top=6)
    bars = [p for p in ax.patches if hasattr(p, "qingshui_in_credible_set")]
    assert len(bars) == 6
    expected = traced.source_probability.head(6)
    # Bars run top to bottom in the ranking's order.
    bars.sort(key=lambda b: -b.get_y())
    np.testing.assert_allclose([b.get_width() for b in bars], expected.to_numpy())
    assert [b.qingshui_in_credible_set for b in bars] == [i in traced.credible_set_90 for i in expected.index]
    ticks = sorted(zip(ax.get_yticks(), [t.get_text() for t in ax.get_yticklabels()]), reverse=True)
    labels = [text for _, text in ticks]  # top to bottom
    assert labels[0].startswith("jishan_wwtp (稷山县污水处理厂)")
    # The plant and the wetland 1 km below it cannot be told apart: they share a mark.
    jishan = [lbl for lbl in labels if lbl.startswith(("jishan_wwtp", "jishan_fen_wetland"))]
    assert len(jishan) == 2 and all(lbl.endswith("≈A") for lbl in jishan)
    ax.figure.savefig(tmp_path / "ranking.png")
    assert (tmp_path / "ranking.png").stat().st_size > 10_000
    plot.close(ax)


def test_ranking_by_hypothesis_highlights_the_smallest_set_holding_90_percent(traced):
    ax = plot.trace_ranking(traced, top=5, by="hypothesis")
    bars = sorted((p for p in ax.patches if hasattr(p, "qingshui_in_credible_set")), key=lambda b: -b.get_y())
    probs = traced.hypotheses.probability.head(5).to_numpy()
    flags = [b.qingshui_in_credible_set for b in bars]
    k = flags.index(False) if False in flags else len(flags)
    assert probs[:k].sum() >= 0.9 - 1e-9 and (k == 1 or probs[: k - 1].sum() < 0.9)
    plot.close(ax)
    with pytest.raises(qs.ConfigError, match="by must be"):
        plot.trace_ranking(traced, by="station")


def test_release_chart_shows_start_end_mass_with_intervals_and_truth(traced, tmp_path):
    ax_t, ax_m = plot.trace_release(traced, top=3, truth=TRUTH)
    shown = traced.sources[traced.sources["rank"] <= 3]
    shown = shown[(shown["rank"] == 1) | (shown["probability"] >= 0.01)]
    releases = _gid(ax_t.patches, "release")
    assert len(releases) == len(shown)
    first = shown.iloc[0]
    start = mdates.date2num(first.release_start.tz_localize(None).to_pydatetime())
    end = mdates.date2num(first.release_end.tz_localize(None).to_pydatetime())
    bar = min(releases, key=lambda b: abs(b.get_x() - start))
    assert bar.get_x() == pytest.approx(start, abs=1e-9)
    assert bar.get_width() == pytest.approx(end - start, abs=1e-6)
    whiskers = _gid(ax_t.get_lines(), "start_ci90")
    assert len(whiskers) == len(shown)
    assert _gid(ax_t.patches, "truth") and _gid(ax_t.get_lines(), "truth")
    # Masses on a log axis with their 90% intervals; the truth as stars.
    assert ax_m.get_xscale() == "log"
    points = _gid(ax_m.get_lines(), "mass")
    assert len(points) == len(shown)
    xs = np.concatenate([p.get_xdata() for p in points])
    assert np.isclose(xs, first.COD_kg).any()
    star = _gid(ax_m.get_lines(), "truth")[0]
    assert sorted(star.get_xdata()) == [30.0, 120.0, 2000.0]
    assert {t.get_text() for t in ax_m.get_yticklabels()} >= {"COD", "NH3N", "TP"}
    ax_t.figure.savefig(tmp_path / "release.png")
    assert (tmp_path / "release.png").stat().st_size > 10_000
    plot.close((ax_t, ax_m))


def test_release_chart_needs_a_release(traced):
    empty = dataclasses.replace(traced, sources=traced.sources.iloc[0:0])
    with pytest.raises(qs.DataError, match="no release"):
        plot.trace_release(empty)
