"""Plots for reports: station series and river profiles against GB 3838-2002 class bands,
source contributions. Every function draws on a given or new matplotlib Axes and returns
it, so figures compose; nothing is shown or saved here.

Chinese names render with WenQuanYi Micro Hei (Debian's fonts-wqy-microhei, installed by
scripts/setup) when it is available.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib import pyplot as plt

from . import _qingshui

#: Fill colours of the classes I..V and worse than V (blue to red, light enough for lines).
CLASS_COLOURS = ["#cfe8f3", "#d9f0d3", "#f7f7c6", "#fde0c5", "#f9c4c4", "#e6b8d8"]

_CJK_FONTS = ["WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans CJK JP"]


def use_cjk_font() -> Optional[str]:
    """Put a CJK-capable font first in matplotlib's sans-serif list; returns its name, or
    None when none is installed (Chinese labels then show as boxes)."""
    available = {f.name for f in font_manager.fontManager.ttflist}
    for name in _CJK_FONTS:
        if name in available:
            families = list(matplotlib.rcParams["font.sans-serif"])
            if name in families:
                families.remove(name)
            matplotlib.rcParams["font.sans-serif"] = [name] + families
            matplotlib.rcParams["axes.unicode_minus"] = False
            return name
    return None


_FONT = use_cjk_font()


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    return ax


def class_bands(ax, network, species: str, orientation: str = "horizontal", upper: Optional[float] = None):
    """Shade the GB 3838 class ranges of ``species`` on ``ax`` (y ranges) and label them.

    Returns the list of patches drawn (one per class shown)."""
    std = network._native.standard_table()
    ind = std.get("indicators", {}).get(species) if std else None
    if ind is None:
        return []
    limits = list(ind["limits_mg_l"])
    classes = list(std["classes"])
    _, hi = ax.get_ylim()
    top = max(hi, limits[-1] * 1.15) if upper is None else upper
    edges = [0.0] + limits + [top]
    patches = []
    for k in range(len(edges) - 1):
        a, b = edges[k], min(edges[k + 1], top)
        if b <= a:
            continue  # a class with the same limit as the one before (COD I = II) has no band
        name = classes[k] if k < len(classes) else "劣V"
        patch = ax.axhspan(a, b, color=CLASS_COLOURS[min(k, 5)], alpha=0.6, lw=0, zorder=0,
                           label=f"Class {name}")
        patch.qingshui_class = name
        patches.append(patch)
        ax.text(1.005, (a + b) / 2, name, transform=ax.get_yaxis_transform(), va="center",
                fontsize=8, color="0.35")
    ax.set_ylim(0, top)
    return patches


def station_series(result, station: str, species: str, observations: Optional[pd.DataFrame] = None,
                   ax=None, label: Optional[str] = None):
    """A station's simulated series with class bands; ``observations`` (long form with
    columns time, station, species, value) are drawn as points."""
    ax = _axes(ax)
    series = result.at_station(station)[species]
    line, = ax.plot(series.index, series.to_numpy(), color="0.1", lw=1.6, label=label or result.name, zorder=3)
    if observations is not None and len(observations):
        obs = observations[(observations["station"] == station) & (observations["species"] == species)]
        if len(obs):
            ax.plot(pd.to_datetime(obs["time"]), obs["value"], "o", ms=4, color="#c0392b",
                    label="observed", zorder=4)
    ax.set_ylim(0, max(float(np.nanmax(series.to_numpy())) * 1.2, 1e-9))
    class_bands(ax, result.network, species)
    st = result.network.stations().set_index("id").loc[station]
    ax.set_title(f"{st['name_zh']} / {st['name_en']} — {species}")
    ax.set_ylabel(f"{species} (mg/L)")
    _legend(ax, "upper left")
    # Rotate here rather than figure.autofmt_xdate(), which hides the dates of every Axes
    # but the bottom row of a multi-panel figure.
    ax.tick_params(axis="x", labelrotation=30)
    return ax


def profile(result, river: str, species: str, time=None, ax=None, sources: bool = True,
            stations: bool = True):
    """Concentration against river-km with class bands, sources (triangles) and stations
    (diamonds) marked."""
    ax = _axes(ax)
    frame = result.profile(river, time)
    km, values = frame.index.to_numpy(), frame[species].to_numpy()
    # Break the line where the river has no segments (an in-line lake between reaches).
    step = np.median(np.diff(km)) if len(km) > 1 else 0
    gaps = np.where(np.diff(km) > 3 * step)[0] + 1 if step > 0 else []
    km, values = np.insert(km, gaps, np.nan), np.insert(values, gaps, np.nan)
    ax.plot(km, values, color="0.1", lw=1.6, zorder=3, label=result.name)
    ax.set_ylim(0, max(float(frame[species].max()) * 1.2, 1e-9))
    class_bands(ax, result.network, species)
    net = result.network
    reaches = net.reaches().set_index("id")
    on_river = reaches.index[reaches["river"] == river]
    top = ax.get_ylim()[1]
    if sources:
        src = net.sources()
        src = src[src["reach"].isin(on_river)]
        ax.plot(src["km"], np.full(len(src), 0.97 * top), "v", color="#8e44ad", ms=6, zorder=4,
                label="sources", gid="sources")
    if stations:
        st = net.stations()
        st = st[st["reach"].isin(on_river)]
        ax.plot(st["km"], np.full(len(st), 0.03 * top), "D", color="#2471a3", ms=5, zorder=4,
                label="stations", gid="stations")
        for _, row in st[st["kind"] == "assessment_section"].iterrows():
            ax.annotate(row["name_zh"], (row["km"], 0.03 * top), xytext=(0, 8),
                        textcoords="offset points", ha="center", fontsize=8)
    ax.set_xlabel(f"river-km ({river})")
    ax.set_ylabel(f"{species} (mg/L)")
    ax.set_title(f"{river}: {species} at {frame.attrs.get('time')}")
    _legend(ax, "upper right")
    return ax


def _legend(ax, loc: str) -> None:
    # Lines and markers only: the class bands are labelled at the right-hand edge.
    handles = [h for h in ax.get_lines() if not h.get_label().startswith("_")]
    ax.legend(handles=handles, loc=loc, fontsize=8)


def contributions(result, station: str, species: str, top: int = 10, ax=None):
    """Horizontal bars: the ``top`` contributors to a station's mean concentration."""
    ax = _axes(ax)
    table = result.contributions(station, species).head(top).iloc[::-1]
    names = net_names(result.network, table.index)
    bars = ax.barh(names, table["mg_l"], color="#5d6d7e")
    for bar, share in zip(bars, table["share"]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {100 * share:.1f}%",
                va="center", fontsize=8)
    ax.set_xlabel(f"mean contribution to {species} (mg/L)")
    ax.set_title(f"{station}: contributions to {species}")
    return ax


def net_names(network, ids: Sequence[str]):
    """Display names 'id (中文名)' for sources; other contributors keep their id."""
    names = network.sources().set_index("id")["name_zh"].to_dict()
    return [f"{i} ({names[i]})" if i in names else str(i) for i in ids]


def close(ax) -> None:
    """Close an Axes' figure (notebooks and tests that draw many)."""
    plt.close(ax.figure)


__all__ = ["CLASS_COLOURS", "class_bands", "close", "contributions", "net_names", "profile",
           "station_series", "use_cjk_font"]

_ = _qingshui  # the package's extension must be importable before plotting
