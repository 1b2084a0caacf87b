"""Plots for reports: station series and river profiles against GB 3838-2002 class bands,
source contributions, the daily forecast's fan chart and exceedance probabilities, and a
trace's ranking and estimated release. Every function draws on given or new matplotlib
Axes and returns them (one Axes, or a pair for the two-panel forecast and release charts),
so figures compose; nothing is shown or saved here.

Chinese names render with WenQuanYi Micro Hei (Debian's fonts-wqy-microhei, installed by
scripts/setup) when it is available.
"""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.figure import Figure
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
    return _draw_class_bands(ax, list(ind["limits_mg_l"]), list(std["classes"]), upper)


def _draw_class_bands(ax, limits: Sequence[float], classes: Sequence[str], upper: Optional[float]):
    """The bands of :func:`class_bands` from the limits of classes I..V (mg/L, ``max`` sense)."""
    limits = [float(x) for x in limits]
    if not limits or not np.all(np.isfinite(limits)):
        return []
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


# ----- the daily forecast -------------------------------------------------------------------

_LOCAL_TZ = "Asia/Shanghai"


def _local_clock(times) -> pd.DatetimeIndex:
    """Times as naive Asia/Shanghai clock times. Matplotlib formats tz-aware times in UTC
    (rcParams["timezone"]), so local axes are drawn from naive local times."""
    idx = pd.DatetimeIndex(np.atleast_1d(np.asarray(times)))
    if idx.tz is None:
        idx = idx.tz_localize("UTC")  # the forecast file's times are UTC datetime64
    return idx.tz_convert(_LOCAL_TZ).tz_localize(None)


def _check_coord(ds, name: str, value: str, what: str) -> None:
    known = [str(v) for v in ds[name].values]
    if str(value) not in known:
        raise _qingshui.ConfigError(f"{what}: unknown {name} {value!r} (known: {', '.join(known)})")


def _ds_station_title(ds, station: str) -> str:
    zh = str(ds.station_name_zh.sel(station=station).values) if "station_name_zh" in ds else ""
    en = str(ds.station_name.sel(station=station).values) if "station_name" in ds else station
    return f"{zh} / {en}" if zh else en


def forecast_fan(ds, station: str, species: str, ax=None, exceedance_ax=None, exceedance: bool = True,
                 limit_class: str = "III", history_days: float = 2.0, observations: bool = True):
    """Fan chart of a forecast (``qs.read_forecast``): the ensemble's quantile bands over
    time with GB 3838 class bands, the last ``history_days`` of the analysed hindcast and the
    observations assimilated, and the probability of exceeding the ``limit_class`` limit.

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast file opened with :func:`qingshui.read_forecast`.
    station, species : str
        Station id and species id (e.g. ``"zhangliuzhuang"``, ``"TP"``).
    ax : matplotlib Axes, optional
        Axes for the concentrations. Without it a new figure with two panels is made
        (concentrations above, exceedance probability below).
    exceedance_ax : matplotlib Axes, optional
        Axes for the exceedance probability. When ``ax`` is given but this is not, the
        probability goes on a right-hand twin axis of ``ax``.
    exceedance : bool
        Draw the exceedance probability at all.
    limit_class : str
        Class whose limit the probability refers to (``"III"``: the target of the sections).
    history_days : float
        Days of hindcast and observations shown before the as-of time (0: none).
    observations : bool
        Mark the observations of the station and species that the forecast assimilated.

    Returns
    -------
    (Axes, Axes or None)
        The concentration axes (fan patches have gid ``"fan"``, the median line ``"median"``,
        the class bands carry ``qingshui_class``) and the exceedance axes (lines
        ``"p_exceed"`` hourly and ``"daily_p_exceed"`` per local day).
    """
    _check_coord(ds, "station", station, "forecast_fan")
    _check_coord(ds, "species", species, "forecast_fan")
    _check_coord(ds, "limit_class", limit_class, "forecast_fan")
    twin = False
    if ax is None:
        if exceedance and exceedance_ax is None:
            fig, (ax, exceedance_ax) = plt.subplots(
                2, 1, figsize=(10, 5.8), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
            fig.subplots_adjust(hspace=0.08)
        else:
            _, ax = plt.subplots(figsize=(10, 4))
    elif exceedance and exceedance_ax is None:
        exceedance_ax, twin = ax.twinx(), True
    sel = dict(station=station, species=species)
    times = _local_clock(ds.time.values)
    as_of = pd.Timestamp(str(ds.attrs.get("as_of"))).tz_convert(_LOCAL_TZ).tz_localize(None)

    q = ds.quantiles.sel(**sel).transpose("quantile", "time")
    levels = [float(x) for x in q["quantile"].values]
    values = np.asarray(q.values, dtype=float)
    order = np.argsort(levels)
    levels, values = [levels[i] for i in order], values[order]
    n = len(levels)
    top = float(np.nanmax(values)) if np.isfinite(values).any() else 0.0
    fans = []
    for i in range(n // 2):
        lo, hi = levels[i], levels[n - 1 - i]
        fan = ax.fill_between(times, values[i], values[n - 1 - i], color="#1f4e79",
                              alpha=0.18 + 0.2 * i, lw=0, zorder=2,
                              label=f"{100 * lo:g}–{100 * hi:g}% of members")
        fan.set_gid("fan")
        fans.append(fan)
    if n % 2:
        ax.plot(times, values[n // 2], color="#0b2545", lw=1.6, zorder=3, label="median", gid="median")

    if history_days and history_days > 0 and "hindcast_analysis" in ds:
        start = as_of - pd.Timedelta(days=float(history_days))
        ht = _local_clock(ds.hindcast_time.values)
        hv = np.asarray(ds.hindcast_analysis.sel(**sel).values, dtype=float)
        keep = (ht >= start) & (ht <= as_of)
        if keep.any():
            ax.plot(ht[keep], hv[keep], color="0.45", lw=1.2, zorder=3, label="hindcast (analysed loads)",
                    gid="hindcast")
            top = max(top, float(np.nanmax(hv[keep])))
        if observations and "obs_value" in ds:
            ot = _local_clock(ds.obs_time.values)
            mask = ((np.asarray(ds.obs_station.values).astype(str) == station)
                    & (np.asarray(ds.obs_species.values).astype(str) == species)
                    & (ot >= start) & (ot <= as_of))
            if mask.any():
                ov = np.asarray(ds.obs_value.values, dtype=float)[mask]
                ax.plot(ot[mask], ov, "o", ms=4, color="#c0392b", zorder=4, label="observed", gid="observations")
                top = max(top, float(np.nanmax(ov)))
    ax.axvline(as_of, color="0.2", ls="--", lw=1, zorder=4, label=f"as of {as_of:%m-%d %H:%M}", gid="as_of")
    ax.set_ylim(0, max(top * 1.15, 1e-9))
    limits = ds.limit.sel(species=species).values if "limit" in ds else []
    _draw_class_bands(ax, limits, [str(c) for c in ds.limit_class.values], None)
    ax.set_ylabel(f"{species} (mg/L)")
    ax.set_title(f"{_ds_station_title(ds, station)} — {species}, forecast of {as_of:%Y-%m-%d %H:%M}")
    handles = [h for h in ax.get_lines() if not h.get_label().startswith("_")] + fans[::-1]
    ax.legend(handles=handles, loc="upper left", fontsize=8, ncol=2)

    if exceedance:
        p_ax = exceedance_ax
        p = np.asarray(ds.p_exceed.sel(limit_class=limit_class, **sel).values, dtype=float)
        p_ax.plot(times, p, color="#c0392b", lw=1.2, alpha=0.8 if twin else 1.0, gid="p_exceed",
                  label=f"P(> Class {limit_class}), hourly")
        if "daily_p_exceed" in ds:
            days = [pd.Timestamp(str(d)) for d in ds.day.values]
            daily = np.asarray(ds.daily_p_exceed.sel(limit_class=limit_class, **sel).values, dtype=float)
            coll = p_ax.hlines(daily, days, [d + pd.Timedelta(days=1) for d in days], colors="#7b241c",
                               lw=3, label=f"P(daily mean > Class {limit_class})")
            coll.set_gid("daily_p_exceed")
        p_ax.set_ylim(0, 1.02)
        p_ax.set_ylabel(f"P(> {limit_class})")
        if not twin:
            p_ax.axhline(0.5, color="0.6", ls=":", lw=1)
            p_ax.grid(axis="y", color="0.9")
            p_ax.legend(loc="upper left", fontsize=8, ncol=2)
    bottom = exceedance_ax if exceedance and not twin else ax
    bottom.tick_params(axis="x", labelrotation=30)
    bottom.set_xlabel("local time (UTC+8)")
    return ax, exceedance_ax


def forecast_exceedance(ds, limit_class: str = "III", species: Optional[str] = None, ax=None):
    """Probability per station (rows) and forecast day (columns) of a daily class worse than
    ``limit_class`` (or, with ``species``, of that species' daily mean exceeding its limit),
    as a shaded, annotated table. Returns the Axes (the image has gid ``"p_exceed"``)."""
    from .forecast import exceedance_table

    table = exceedance_table(ds, limit_class=limit_class, species=species)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.6 + 0.9 * table.shape[1], 0.9 + 0.32 * table.shape[0]))
    values = table.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="Reds", vmin=0, vmax=1, aspect="auto")
    image.set_gid("p_exceed")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{100 * v:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 else "0.15")
    ax.set_xticks(range(table.shape[1]), [str(d)[5:] for d in table.columns], fontsize=8)
    zh = ds.station_name_zh.to_pandas() if "station_name_zh" in ds else pd.Series(dtype=str)
    ax.set_yticks(range(table.shape[0]),
                  [f"{s} ({_short(str(zh.get(s, '')))})" if s in zh else str(s) for s in table.index],
                  fontsize=8)
    what = f"{species} daily mean" if species else "daily class"
    ax.set_title(f"P({what} worse than Class {limit_class}), %")
    ax.figure.colorbar(image, ax=ax, fraction=0.03, pad=0.02)
    return ax


# ----- source tracing ---------------------------------------------------------------------


def _short(text: str, n: int = 12) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _source_names(network) -> dict:
    if network is None:
        from .network import load_network

        network = load_network()
    return network.sources().set_index("id")["name_zh"].to_dict()


def _candidate_label(ident: str, names: dict) -> str:
    """'id (中文名)' for registered sources, readable text for unregistered reaches."""
    ident = str(ident)
    if ident == "no release":
        return "no release 无排放"
    if ident.startswith("unregistered:"):
        return f"unregistered 未登记: {ident.split(':', 1)[1]}"
    if ident.startswith("unregistered "):
        return "未登记 " + ident
    return f"{ident} ({_short(names[ident])})" if ident in names else ident


def _hypothesis_label(label: str, names: dict) -> str:
    return " + ".join(_candidate_label(part, names) for part in str(label).split(" + "))


def trace_ranking(result, top: int = 8, by: str = "source", network=None, ax=None):
    """Ranking bars of a :class:`qingshui.TraceResult`: the posterior probability of each
    source (``by="source"``, the marginal ``result.source_probability``) or hypothesis
    (``by="hypothesis"``), most probable at the top. Bars in the 90% credible set are red,
    the others grey (each bar carries ``qingshui_in_credible_set``); sources that the
    stations cannot tell apart by travel time share a mark ``≈A``, ``≈B``, ...

    Returns the Axes."""
    if by not in ("source", "hypothesis"):
        raise _qingshui.ConfigError(f"trace_ranking: by must be 'source' or 'hypothesis', got {by!r}")
    ax = _axes(ax)
    names = _source_names(network)
    if by == "source":
        probs = result.source_probability.head(top)
        ids = [str(i) for i in probs.index]
        in_set = [i in set(result.credible_set_90) for i in ids]
        # Letters in ranking order: the group of the most probable source shown is A.
        shown = [g for g in result.groups if len(set(g) & set(ids)) >= 2]
        shown.sort(key=lambda g: min(ids.index(m) for m in g if m in ids))
        marks = {}
        for k, group in enumerate(shown):
            for member in group:
                marks.setdefault(member, []).append(f"≈{chr(ord('A') + k)}")
        labels = [_candidate_label(i, names) + ("  " + " ".join(marks[i]) if i in marks else "") for i in ids]
        values = probs.to_numpy(dtype=float)
    else:
        hyp = result.hypotheses.head(top)
        values = hyp["probability"].to_numpy(dtype=float)
        # The smallest set of hypotheses holding 90% (most probable first).
        cumulative = np.cumsum(result.hypotheses["probability"].to_numpy(dtype=float))
        needed = int(np.searchsorted(cumulative, 0.9 - 1e-12)) + 1
        in_set = [k < needed for k in range(len(hyp))]
        labels = [f"#{r} {_hypothesis_label(lbl, names)}" for r, lbl in zip(hyp["rank"], hyp["label"])]
        marks = {}
    y = np.arange(len(values))[::-1]
    colours = ["#c0392b" if s else "#aab7b8" for s in in_set]
    bars = ax.barh(y, values, color=colours, height=0.7, zorder=2)
    for bar, v, s in zip(bars, values, in_set):
        bar.qingshui_in_credible_set = bool(s)
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {v:.3f}" if v >= 1e-3 else " <0.001", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("posterior probability")
    ax.grid(axis="x", color="0.9", zorder=0)
    from matplotlib.patches import Patch

    handles = [Patch(color="#c0392b", label="in the 90% credible set"), Patch(color="#aab7b8", label="outside it")]
    ax.legend(handles=handles, loc="lower right", fontsize=8)
    if marks:
        ax.text(0.99, 0.2, "≈: cannot be told apart by travel time", transform=ax.transAxes, ha="right",
                fontsize=7, color="0.35")
    ax.set_title(f"溯源 Source tracing: which {by}?")
    return ax


def trace_release(result, top: int = 3, truth: Optional[dict] = None, network=None, axes=None,
                  min_probability: float = 0.01):
    """The estimated release of the leading hypotheses: when (left) and how much (right),
    with the 90% intervals.

    Left, per release: a bar from the estimated start to the estimated end (median
    duration), a light bar to the start plus the 90% upper duration, and whiskers over the
    start's 90% interval. Right: the mass of each species (log axis) with its 90% interval.
    Colours follow the hypotheses' rank.

    Parameters
    ----------
    result : qingshui.TraceResult
    top : int
        Hypotheses shown (those with probability below ``min_probability`` are left out,
        the first is always shown).
    truth : dict, optional
        A drill's true release, drawn as black stars and a hatched span: ``start`` (ISO text
        or timestamp, naive = Asia/Shanghai), ``duration_h`` or ``end``, ``mass_kg``
        ({species: kg}).
    network : qingshui.Network, optional
        For the sources' Chinese names (default: the built-in network).
    axes : (Axes, Axes), optional

    Returns
    -------
    (Axes, Axes)
        Time axes (bars gid ``"release"``, whiskers ``"start_ci90"``, truth ``"truth"``) and
        mass axes (points with error bars, gid ``"mass"``; truth ``"truth"``).
    """
    import matplotlib.dates as mdates

    src = result.sources
    if src is None or src.empty:
        raise _qingshui.DataError("trace_release: the result has no release (the leading hypothesis is no release)")
    ranks = [r for r in sorted(src["rank"].unique()) if r <= top]
    probs = src.groupby("rank")["probability"].first()
    ranks = [r for r in ranks if r == ranks[0] or probs[r] >= min_probability]
    rows = src[src["rank"].isin(ranks)].reset_index(drop=True)
    names = _source_names(network)
    n = len(rows)
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(12, 1.6 + 0.55 * n), gridspec_kw={"width_ratios": [1.5, 1]})
        fig.subplots_adjust(wspace=0.08)
    ax_t, ax_m = axes
    colour = {r: f"C{k}" for k, r in enumerate(ranks)}

    def num(ts):
        ts = pd.Timestamp(ts)
        if ts.tzinfo is None:
            ts = ts.tz_localize(_LOCAL_TZ)
        return mdates.date2num(ts.tz_convert(_LOCAL_TZ).tz_localize(None).to_pydatetime())

    y = np.arange(n)[::-1].astype(float)
    labels = []
    for k, row in rows.iterrows():
        c = colour[row["rank"]]
        start, end = num(row["release_start"]), num(row["release_end"])
        long_end = start + float(row["duration_h_hi"]) / 24.0
        light = ax_t.barh(y[k], long_end - start, left=start, height=0.5, color=c, alpha=0.2, lw=0, zorder=2)
        light.patches[0].set_gid("duration_ci90")
        bar = ax_t.barh(y[k], max(end - start, 1e-4), left=start, height=0.5, color=c, alpha=0.85, zorder=3)
        bar.patches[0].set_gid("release")
        lo, hi = num(row["release_start_lo"]), num(row["release_start_hi"])
        whisk = ax_t.errorbar([start], [y[k]], xerr=[[start - lo], [hi - start]], fmt="|", ms=12, color="0.15",
                              capsize=4, lw=1.2, zorder=4)
        whisk.lines[0].set_gid("start_ci90")
        labels.append(f"#{row['rank']} P={row['probability']:.2f}  {_candidate_label(row['id'], names)}")
    ax_t.set_yticks(y, labels, fontsize=8)
    edges = [num(rows[c].min()) for c in ("release_start_lo", "release_start")]
    edges += [num(rows["release_start_hi"].max()), num(rows["release_end"].max()),
              max(num(r["release_start"]) + float(r["duration_h_hi"]) / 24.0 for _, r in rows.iterrows())]
    if truth and truth.get("start") is not None:
        t0n = num(truth["start"])
        edges += [t0n, num(truth["end"]) if "end" in truth else t0n + float(truth.get("duration_h", 0.0)) / 24.0]
    pad = max((max(edges) - min(edges)) * 0.05, 0.5 / 24.0)
    ax_t.set_xlim(min(edges) - pad, max(edges) + pad)
    ax_t.xaxis_date()
    ax_t.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax_t.tick_params(axis="x", labelrotation=30)
    ax_t.set_xlabel("release time (local, UTC+8); whiskers: start 90%, light: duration 90% upper")
    ax_t.grid(axis="x", color="0.9", zorder=0)
    ax_t.set_title("When 何时排放")

    species = [c[:-3] for c in rows.columns if c.endswith("_kg") and not c.endswith(("_lo_kg", "_hi_kg"))]
    species = [s for s in species if f"{s}_kg_lo" in rows.columns]
    width = 0.7 / max(len(ranks), 1)
    for k, row in rows.iterrows():
        offset = (ranks.index(row["rank"]) - (len(ranks) - 1) / 2) * width
        sy = np.arange(len(species))[::-1] + offset
        m = np.array([row[f"{s}_kg"] for s in species], dtype=float)
        lo = np.array([row[f"{s}_kg_lo"] for s in species], dtype=float)
        hi = np.array([row[f"{s}_kg_hi"] for s in species], dtype=float)
        eb = ax_m.errorbar(m, sy, xerr=[np.maximum(m - lo, 0), np.maximum(hi - m, 0)], fmt="o", ms=5,
                           color=colour[row["rank"]], capsize=3, lw=1.2,
                           label=f"#{row['rank']} {_short(str(row['id']), 20)}")
        eb.lines[0].set_gid("mass")
    ax_m.set_xscale("log")
    ax_m.set_yticks(np.arange(len(species))[::-1], species)
    ax_m.set_xlabel("mass released (kg), 90% interval")
    ax_m.grid(axis="x", which="both", color="0.92")
    ax_m.set_title("How much 排放量")

    if truth:
        t0 = truth.get("start")
        if t0 is not None:
            t0n = num(t0)
            if "end" in truth:
                t1n = num(truth["end"])
            else:
                t1n = t0n + float(truth.get("duration_h", 0.0)) / 24.0
            span = ax_t.axvspan(t0n, t1n, facecolor="none", edgecolor="k", hatch="//", lw=0.8, zorder=1,
                                label="true release")
            span.set_gid("truth")
            ax_t.plot([t0n, t1n], [y.max() + 0.5] * 2, "k*", ms=9, zorder=5, gid="truth", label="truth")
        masses = truth.get("mass_kg") or {}
        sx = [float(masses[s]) for s in species if s in masses]
        sy = [len(species) - 1 - species.index(s) for s in species if s in masses]
        if sx:
            ax_m.plot(sx, sy, "k*", ms=10, zorder=5, gid="truth", label="truth")
    ax_m.legend(fontsize=7, loc="lower right")
    ax_m.set_ylim(-0.6, len(species) - 0.4)
    ax_t.set_ylim(-0.7, n - 0.3 + (0.5 if truth else 0))
    return ax_t, ax_m


def close(ax) -> None:
    """Close the figure of an Axes, a Figure, or a tuple of Axes (notebooks and tests that
    draw many)."""
    if isinstance(ax, (tuple, list)):
        ax = next((a for a in ax if a is not None), None)
        if ax is None:
            return
    plt.close(ax if isinstance(ax, Figure) else ax.figure)


__all__ = ["CLASS_COLOURS", "class_bands", "close", "contributions", "forecast_exceedance", "forecast_fan",
           "net_names", "profile", "station_series", "trace_ranking", "trace_release", "use_cjk_font"]

_ = _qingshui  # the package's extension must be importable before plotting
