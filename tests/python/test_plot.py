"""Plots render headless (Agg) and carry what a reader needs: class bands, markers."""

import matplotlib

matplotlib.use("Agg")

import pytest

import qingshui as qs
from qingshui import plot


@pytest.fixture(scope="module")
def result():
    return qs.Scenario(name="base").run("2024-04-14", "2024-04-15")


def _classes(ax):
    return [p.qingshui_class for p in ax.patches if hasattr(p, "qingshui_class")]


def test_station_series_has_class_bands_and_renders(result, tmp_path):
    ax = plot.station_series(result, "zhangliuzhuang", "NH3N")
    assert _classes(ax)[:3] == ["I", "II", "III"]
    assert "张留庄" in ax.get_title()
    ax.figure.savefig(tmp_path / "series.png")
    assert (tmp_path / "series.png").stat().st_size > 10_000
    plot.close(ax)


def test_equal_limits_share_a_band(result):
    ax = plot.station_series(result, "zhangliuzhuang", "COD")
    # GB 3838: COD I and II are both 15 mg/L, so there is no separate Class II band.
    assert "II" not in _classes(ax) and "I" in _classes(ax)
    plot.close(ax)


def test_profile_marks_sources_and_stations(result, tmp_path):
    ax = plot.profile(result, "sushui", "TP")
    gids = {line.get_gid() for line in ax.get_lines()}
    assert {"sources", "stations"} <= gids
    sources = [l for l in ax.get_lines() if l.get_gid() == "sources"][0]
    assert len(sources.get_xdata()) >= 10
    ax.figure.savefig(tmp_path / "profile.png")
    plot.close(ax)


def test_contribution_bars(result, tmp_path):
    ax = plot.contributions(result, "zhangliuzhuang", "NH3N", top=5)
    assert len(ax.patches) == 5
    ax.figure.savefig(tmp_path / "bars.png")
    plot.close(ax)


def test_cjk_font_is_used_when_installed():
    assert plot.use_cjk_font() in (None, "WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans CJK JP")
