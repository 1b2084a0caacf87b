"""Rapid source tracing: synthetic events, the Bayesian tracer and release histories.

>>> import qingshui as qs
>>> obs = qs.simulate({"start": "2024-04-15T00:00+08:00", "end": "2024-04-22T00:00+08:00",
...                    "events": [{"source": "jishan_wwtp", "start": "2024-04-16T02:00+08:00",
...                                "duration_h": 3, "mass_kg": {"COD": 2000, "NH3N": 120, "TP": 30}}],
...                    "sampling": {"interval_h": 4, "noise": 0.1, "seed": 7, "stations": "sections"}})
>>> result = qs.trace(obs)
>>> result.hypotheses.head()          # probability, label, velocity/dispersion factors
>>> result.sources                    # one row per (hypothesis, release): start, end, masses, 90% intervals
>>> print(result.table)               # the readable ranking of `qingshui trace`

Times are ISO-8601 with the +08:00 offset in text and tz-aware ``Asia/Shanghai`` timestamps in
DataFrames. See docs/tracing.md for the model, the likelihood, the priors and the posterior.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import _qingshui
from ._qingshui import ConfigError, DataError, KernelCache
from .network import Network, default_network_path, load_network

PathLike = Union[str, "os.PathLike[str]"]
NetworkLike = Union[Network, str, "os.PathLike[str]", None]
ObservationsLike = Union[pd.DataFrame, str, "os.PathLike[str]"]

_TZ = "Asia/Shanghai"


def _native(network: NetworkLike):
    if isinstance(network, Network):
        return network._native
    return load_network(network)._native


def default_priors_path() -> Path:
    """Path of ``data/tracing/source_signatures.yaml`` (``$QINGSHUI_TRACING_PRIORS`` overrides it)."""
    env = os.environ.get("QINGSHUI_TRACING_PRIORS")
    if env:
        return Path(env)
    return default_network_path().parent.parent / "tracing" / "source_signatures.yaml"


def _epoch(value) -> float:
    """Seconds since the epoch of an ISO text (no offset = +08:00) or a timestamp (naive = +08:00)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, str):
        return _qingshui.parse_iso_time(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize(_TZ)
    return ts.timestamp()


def _times(values) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="float64"), unit="s", utc=True).dt.tz_convert(_TZ)


def _text(value) -> str:
    """A cell as text; empty for a missing one (None, NaN, pd.NA)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _observation_columns(observations: ObservationsLike):
    """Columns for the native layer: times, stations, species, values, label, lines, and the
    point columns reach and km (empty lists when every row is at a station)."""
    if isinstance(observations, pd.DataFrame):
        frame = observations
        value_col = "value" if "value" in frame.columns else "value_mg_l"
        has_station = "station" in frame.columns
        has_point = "reach" in frame.columns and "km" in frame.columns
        needed = ["time"] + ([] if has_point and not has_station else ["station"]) + ["species", value_col]
        for col in needed:
            if col not in frame.columns:
                raise _qingshui.DataError(
                    f"observations: missing column '{col}' (need time, station, species, value; "
                    "or time, reach, km, species, value for point samples)"
                )
        if "time_s" in frame.columns:
            times = [float(t) for t in frame["time_s"]]
        else:
            times = [_epoch(t) for t in frame["time"]]
        stations = [_text(s) for s in frame["station"]] if has_station else [""] * len(frame)
        reach: List[str] = []
        km: List[float] = []
        if has_point:
            reach = [_text(r) for r in frame["reach"]]
            for i, x in enumerate(frame["km"]):
                if _text(x) == "":
                    km.append(math.nan)
                    continue
                try:
                    km.append(float(x))
                except (TypeError, ValueError):
                    raise _qingshui.DataError(
                        f"<DataFrame row>:{i + 1}: km: expected a number (river-km), got {x!r}"
                    ) from None
        return (
            times,
            stations,
            [str(s) for s in frame["species"]],
            [float(v) for v in frame[value_col]],
            "<DataFrame row>",
            [],
            reach,
            km,
        )
    path = os.fspath(observations)
    cols = _qingshui.read_observations_csv(path)
    points = any(r for r in cols["reach"])
    return (
        cols["time_s"],
        cols["station"],
        cols["species"],
        cols["value"],
        path,
        cols["line"],
        cols["reach"] if points else [],
        cols["km"] if points else [],
    )


def simulate(
    scenario: Union[Mapping[str, Any], PathLike],
    network: NetworkLike = None,
    observations_out: Optional[PathLike] = None,
) -> pd.DataFrame:
    """Run a synthetic release scenario and sample the stations (``qingshui simulate``).

    Parameters
    ----------
    scenario : dict or path
        The scenario (YAML file, or the same structure as a dict): ``start``, ``end``,
        ``hydrology: {velocity_factor, dispersion_factor}``, ``events: [{source (or reach and
        km), start, duration_h, mass_kg: {COD, NH3N, TP}}]``, ``sampling: {interval_h, noise,
        seed, stations: all | sections | none | [ids], points: [{reach, km}, ...]}`` (points
        alone sample only the points).
    network : qingshui.Network, path or None
        The network (default: the built-in Yuncheng network).
    observations_out : path, optional
        Also write the samples as CSV ``time,station,species,value`` (with points
        ``time,reach,km,species,value``, or ``time,station,reach,km,species,value`` with both).

    Returns
    -------
    pandas.DataFrame
        Long form: ``time`` (tz-aware, Asia/Shanghai), ``station``, ``species``, ``value``
        (mg/L, with noise) and ``exact`` (the simulated value). With ``sampling.points``,
        ``reach`` and ``km`` columns too (None / NaN at stations; no ``station`` column when
        only points are sampled). ``attrs`` holds ``start_date``,
        ``days`` and the transport run's ``relative_mass_error``.

    Raises
    ------
    qingshui.ConfigError
        Invalid scenario; the message names the file (or ``<scenario>``), line and field.
    """
    if isinstance(scenario, Mapping):
        import yaml

        def plain(x):
            if isinstance(x, Mapping):
                return {str(k): plain(v) for k, v in x.items()}
            if isinstance(x, (list, tuple)):
                return [plain(v) for v in x]
            if isinstance(x, pd.Timestamp):
                return _qingshui.format_iso_time(_epoch(x))
            return x

        text = yaml.safe_dump(plain(scenario), sort_keys=False, allow_unicode=True)
        name = "<scenario>"
    else:
        name = os.fspath(scenario)
        with open(name, "r", encoding="utf-8") as f:
            text = f.read()
    run = _qingshui.run_scenario(_native(network), text, name)
    columns: Dict[str, Any] = {"time": _times(run["time_s"])}
    any_point = any(r for r in run["reach"])
    any_station = any(s for s in run["station"])
    if any_station or not any_point:
        columns["station"] = [s if s else None for s in run["station"]] if any_point else run["station"]
    if any_point:
        # Samples at river points (sampling.points): reach and km, None/NaN at stations.
        columns["reach"] = [r if r else None for r in run["reach"]]
        columns["km"] = np.asarray(run["km"], dtype=float)
    columns["species"] = run["species"]
    columns["value"] = np.asarray(run["value"], dtype=float)
    columns["exact"] = np.asarray(run["exact"], dtype=float)
    frame = pd.DataFrame(columns)
    frame.attrs["start_date"] = run["start_date"]
    frame.attrs["days"] = run["days"]
    frame.attrs["relative_mass_error"] = run["relative_mass_error"]
    if observations_out is not None:
        out = Path(observations_out)
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        tmp.write_text(run["csv"], encoding="utf-8")
        tmp.replace(out)
    return frame


@dataclass
class TraceResult:
    """What ``qingshui.trace`` found: the JSON of ``qingshui trace --json`` as objects and tables.

    Attributes
    ----------
    hypotheses : DataFrame
        One row per hypothesis, most probable first: ``rank, probability, label, n_sources,
        velocity_factor(_lo/_hi), dispersion_factor(_lo/_hi), misfit, log_evidence``.
    sources : DataFrame
        One row per release of each hypothesis: ``rank, probability, label, id, kind, reach,
        km, release_start, release_end`` (timestamps), ``release_start_lo/hi``,
        ``duration_h(_lo/_hi)``, ``<species>_kg`` and ``<species>_kg_lo/hi`` (90%).
    groups : list of list of str
        Candidates the stations cannot tell apart (same travel time to every station).
    source_probability : Series
        Probability that each source (or ``unregistered:<reach>``, ``no release``) released.
    credible_set_90 : list of str
        The smallest set of sources holding 90% of the posterior.
    identifiability, next_samples : DataFrame
        Per-parameter identifiability of the leading hypothesis; where and when a next sample
        best separates the leading hypotheses.
    diagnostics : dict
        The ``diagnostics`` object of the JSON output.
    elapsed_s : float
    """

    hypotheses: pd.DataFrame
    sources: pd.DataFrame
    groups: List[List[str]]
    source_probability: pd.Series
    credible_set_90: List[str]
    identifiability: pd.DataFrame
    next_samples: pd.DataFrame
    diagnostics: Dict[str, Any]
    elapsed_s: float
    table: str = field(repr=False)
    _json: str = field(repr=False)

    def to_json(self) -> str:
        """The JSON document of ``qingshui trace --json`` (same keys and values)."""
        return self._json

    def as_dict(self) -> Dict[str, Any]:
        """The JSON document parsed into Python objects."""
        return json.loads(self._json)

    def __str__(self) -> str:
        return self.table


def _result(raw: Dict[str, Any]) -> TraceResult:
    rows, src_rows = [], []
    for rank, h in enumerate(raw["hypotheses"], start=1):
        rows.append(
            {
                "rank": rank,
                "probability": h["probability"],
                "label": h["label"],
                "n_sources": len(h["sources"]),
                "velocity_factor": h["velocity_factor"],
                "velocity_factor_lo": h["velocity_factor_ci90"][0],
                "velocity_factor_hi": h["velocity_factor_ci90"][1],
                "dispersion_factor": h["dispersion_factor"],
                "dispersion_factor_lo": h["dispersion_factor_ci90"][0],
                "dispersion_factor_hi": h["dispersion_factor_ci90"][1],
                "misfit": h["misfit"],
                "log_evidence": h["log_evidence"],
            }
        )
        for s in h["sources"]:
            row = {
                "rank": rank,
                "probability": h["probability"],
                "label": h["label"],
                "id": s["id"],
                "kind": s["kind"],
                "reach": s["reach"],
                "km": s["km"],
                "km_lo": s["km_ci90"][0],
                "km_hi": s["km_ci90"][1],
                "release_start": _epoch(s["release_start"]),
                "release_end": _epoch(s["release_end"]),
                "release_start_lo": _epoch(s["release_start_ci90"][0]),
                "release_start_hi": _epoch(s["release_start_ci90"][1]),
                "duration_h": s["duration_h"],
                "duration_h_lo": s["duration_h_ci90"][0],
                "duration_h_hi": s["duration_h_ci90"][1],
            }
            for sp, kg in s["mass_kg"].items():
                row[f"{sp}_kg"] = kg
                row[f"{sp}_kg_lo"], row[f"{sp}_kg_hi"] = s["mass_kg_ci90"][sp]
            src_rows.append(row)
    hyp = pd.DataFrame(rows)
    src = pd.DataFrame(src_rows)
    if not src.empty:
        for col in ("release_start", "release_end", "release_start_lo", "release_start_hi"):
            src[col] = _times(src[col])
    # With a team (qs.trace(team_at=...)) the places may be river points: reach and km
    # columns (station None) and each place's distance from the team; without, the columns
    # are those of stations only.
    parsed = json.loads(raw["json"])
    team = "team" in parsed["diagnostics"]
    nxt_columns = ["station", "time", "expected_information_nats", "within_window", "predictions"]
    if team:
        nxt_columns = ["station", "reach", "km", "time", "expected_information_nats",
                       "within_window", "team_distance_km", "predictions"]
    nxt = pd.DataFrame(
        [
            {
                "station": n.get("station"),
                "reach": n.get("reach"),
                "km": n.get("km", float("nan")),
                "time": _epoch(n["time"]),
                "expected_information_nats": n["expected_information_nats"],
                "within_window": n.get("within_window", True),
                "team_distance_km": n.get("team_distance_km", float("nan")),
                "predictions": n["predictions"],
            }
            for n in raw["next_samples"]
        ],
        columns=nxt_columns,
    )
    if not nxt.empty:
        nxt["time"] = _times(nxt["time"])
    return TraceResult(
        hypotheses=hyp,
        sources=src,
        groups=[list(g) for g in raw["groups"]],
        source_probability=pd.Series(raw["source_probability"], dtype=float).sort_values(ascending=False),
        credible_set_90=list(raw["credible_set_90"]),
        identifiability=pd.DataFrame(
            raw["identifiability"],
            columns=["parameter", "estimate", "posterior_sd", "prior_sd", "contraction", "status"],
        ),
        next_samples=nxt,
        diagnostics=parsed["diagnostics"],
        elapsed_s=raw["elapsed_s"],
        table=raw["table"],
        _json=raw["json"],
    )


def read_trace(path: Union[str, "os.PathLike[str]"]) -> TraceResult:
    """A trace saved with ``qingshui trace --json > FILE`` (or ``TraceResult.to_json()``),
    as the same :class:`TraceResult` that :func:`trace` returns.

    The readable table is rebuilt from the JSON (a short form of the CLI's table).

    Raises
    ------
    DataError
        When the file is not such a JSON document (names the file and what is missing).
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        doc = json.loads(text)
        dg = doc["diagnostics"]
        raw = {
            "hypotheses": doc["hypotheses"],
            "groups": doc["groups"],
            "source_probability": dg["source_probability"],
            "credible_set_90": dg["credible_set_90"],
            "identifiability": dg["identifiability"],
            "next_samples": dg["next_samples"],
            "elapsed_s": doc["elapsed_s"],
            "json": text,
        }
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the trace file ({e})") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not JSON ({e.msg})") from None
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: not a trace result of 'qingshui trace --json' (missing {e})") from None
    lines = [f"Source tracing (read from {path})", "", "rank  prob    hypothesis"]
    for rank, h in enumerate(raw["hypotheses"], start=1):
        lines.append(f"{rank:<5} {h['probability']:<7.3f} {h['label']}")
    lines += ["", "90% credible set: " + ", ".join(raw["credible_set_90"])]
    raw["table"] = "\n".join(lines) + "\n"
    try:
        return _result(raw)
    except (KeyError, TypeError, IndexError) as e:
        raise DataError(f"{path}: not a trace result of 'qingshui trace --json' (missing {e})") from None


def trace(
    observations: ObservationsLike,
    network: NetworkLike = None,
    start=None,
    end=None,
    max_sources: int = 3,
    noise: float = 0.1,
    species: Optional[Sequence[str]] = None,
    unregistered: bool = True,
    priors: Optional[PathLike] = None,
    date: Optional[str] = None,
    threads: int = 1,
    within_h: Optional[float] = None,
    team_at: Optional[str] = None,
    team_speed_kmh: Optional[float] = None,
    *,
    kernel_cache: Optional[KernelCache] = None,
) -> TraceResult:
    """Rank the sources that can explain the observations (``qingshui trace``).

    Parameters
    ----------
    observations : DataFrame or path
        Long form ``time, station, species, value`` (mg/L); times as ISO text, timestamps
        (naive = Asia/Shanghai) or ``time_s`` (epoch seconds); or a CSV file in that form.
        Samples at river points: ``time, reach, km, species, value``; both kinds in one
        frame with all of ``station``, ``reach``, ``km`` (each row fills station, or reach
        and km; empty = None/NaN/"").
    network : qingshui.Network, path or None
        The network (default: the built-in Yuncheng network).
    start, end : ISO text or timestamp, optional
        Only observations in this window are used; releases are sought from a day before it.
    max_sources : int
        Largest number of simultaneous releases (1-3), chosen by their posterior probability.
    noise : float
        Relative standard deviation of a measurement.
    species : list of str, optional
        Species traced (default: the observed COD, NH3N, TP).
    unregistered : bool
        Also consider releases away from registered sources.
    priors : path, optional
        Tracing priors (default ``data/tracing/source_signatures.yaml``).
    date : str, optional
        Day whose hydraulics the kernels use (default: the first sample's day).
    threads : int
        Threads for the kernels and fits.
    within_h : float, optional
        Recommend only samples within this many hours after the last one (a team in the
        field; ``qingshui trace --within-h``). When none of them separates the leading
        hypotheses, ``next_samples`` holds the earliest that does, with ``within_window``
        False, and ``diagnostics["next_samples_note"]`` says so. Default: each station's best
        time in the next 24 h.
    team_at : str, optional
        Where a team in the field is now (at the last sample): a station id or
        ``"REACH:KM"`` (``qingshui trace --team-at``). Recommendations are then stations and
        river points every 1 km below the leading candidates (entries with ``reach`` and
        ``km``, ``station`` None) that the team can reach by then along the rivers, each
        with its ``team_distance_km``; ``within_h`` defaults to 2. Default: no team.
    team_speed_kmh : float, optional
        The team's speed along the rivers (km/h, default 30); needs ``team_at``.
    kernel_cache : qingshui.KernelCache, optional
        Response kernels kept between traces: reused (the answer unchanged) while the network,
        the hydraulics date, the species and the sampling points stay those of the last trace
        through it. ``TraceSession`` keeps one for you.

    Returns
    -------
    TraceResult

    Raises
    ------
    qingshui.ConfigError
        Unknown stations or species (naming the row), invalid options or priors.
    qingshui.DataError
        No usable observations in the window.
    """
    options = dict(start=start, end=end, max_sources=max_sources, noise=noise, species=species,
                   unregistered=unregistered, priors=priors, date=date, threads=threads,
                   within_h=within_h, team_at=team_at, team_speed_kmh=team_speed_kmh)
    return _trace_columns(_observation_columns(observations), _native(network), options,
                          kernel_cache, 0.0)


def _trace_columns(columns, native_network, options: Dict[str, Any], kernel_cache,
                   horizon_round_h: float) -> TraceResult:
    """``trace`` of observations already in columns (``_observation_columns``)."""
    t, st, sp, val, label, lines, reach, km = columns
    o = options
    if o["team_speed_kmh"] is not None and not o["team_at"]:
        raise ConfigError("team_speed_kmh: give team_at too (where the team is)")
    raw = _qingshui.trace(
        native_network,
        list(t),
        list(st),
        list(sp),
        list(val),
        label,
        list(lines),
        os.fspath(o["priors"]) if o["priors"] is not None else os.fspath(default_priors_path()),
        _epoch(o["start"]),
        _epoch(o["end"]),
        int(o["max_sources"]),
        float(o["noise"]),
        list(o["species"] or []),
        bool(o["unregistered"]),
        o["date"] or "",
        int(o["threads"]),
        float("nan") if o["within_h"] is None else float(o["within_h"]),
        list(reach),
        list(km),
        o["team_at"] or "",
        30.0 if o["team_speed_kmh"] is None else float(o["team_speed_kmh"]),
        kernel_cache=kernel_cache,
        kernel_horizon_round_h=float(horizon_round_h),
    )
    return _result(raw)


class TraceSession:
    """A trace kept open while samples come in (``qs.TraceSession``; docs/tracing.md §1).

    Holds the observations, the options of ``qs.trace`` and a ``KernelCache``: each
    ``trace()`` after ``add()`` reuses the response kernels while the window's hydraulics are
    unchanged (same network, hydraulics date, species and sampling points), so an update
    costs the fits alone. A session's kernels reach a little further ahead than a single
    ``qs.trace``'s (their horizon is rounded up to whole ``horizon_round_h``), so its
    answers may differ from ``qs.trace`` in the last digits; they equal
    ``trace()`` of a fresh session on the same observations exactly.

    >>> s = qs.TraceSession(None, first_samples)      # network None = the built-in one
    >>> s.trace().credible_set_90
    >>> s.add(team_sample)                            # a DataFrame (or CSV path) of rows
    >>> s.next_samples()                              # traces again, then recommends

    Parameters
    ----------
    network : qingshui.Network, path or None
        Read once and kept.
    observations : DataFrame or path
        The same layouts as ``qs.trace`` (stations, river points, or both).
    **options
        The keyword arguments of ``qs.trace`` (``start``, ``end``, ``max_sources``, ``noise``,
        ``species``, ``unregistered``, ``priors``, ``date``, ``threads``, ``within_h``,
        ``team_at``, ``team_speed_kmh``).

    Raises
    ------
    TypeError
        An option ``qs.trace`` does not take.
    qingshui.ConfigError, qingshui.DataError
        Rows that are malformed or name unknown stations, reaches, km or species (naming the
        row); checked by ``add`` too, which then keeps none of the batch.
    """

    #: The kernels' horizon is rounded up to a multiple of this (hours): a window growing by
    #: a sample keeps its kernels for up to two days.
    horizon_round_h = 48.0

    def __init__(self, network: NetworkLike = None, observations: ObservationsLike = None,
                 **options: Any) -> None:
        defaults = {"start": None, "end": None, "max_sources": 3, "noise": 0.1,
                    "species": None, "unregistered": True, "priors": None, "date": None,
                    "threads": 1, "within_h": None, "team_at": None, "team_speed_kmh": None}
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise TypeError(f"TraceSession: unknown option(s) {', '.join(unknown)} "
                            f"(qs.trace takes {', '.join(defaults)})")
        if observations is None:
            raise TypeError("TraceSession: observations are required (a DataFrame or a CSV path)")
        self._network = network if isinstance(network, Network) else load_network(network)
        self._options = {**defaults, **options}
        self._cache = _qingshui.KernelCache()
        self._columns: List[list] = [[] for _ in range(7)]  # time, station, species, value, line, reach, km
        self._result: Optional[TraceResult] = None
        self._stale = True
        self.add(observations)

    def add(self, observations: ObservationsLike) -> "TraceSession":
        """Add samples (a DataFrame or CSV path in any layout ``qs.trace`` accepts).

        The batch is checked against the network first (malformed rows, unknown stations,
        reaches, km or species raise ``ConfigError``/``DataError`` naming its row) and kept
        only when all of it is sound. Returns the session.
        """
        t, st, sp, val, label, lines, reach, km = _observation_columns(observations)
        n = len(t)
        if n == 0:
            raise _qingshui.DataError(f"{label}: no observations to add")
        lines = list(lines) if lines else list(range(1, n + 1))
        reach = list(reach) if reach else [""] * n
        km = list(km) if km else [math.nan] * n
        _qingshui.check_observations(self._network._native, list(t), list(st), list(sp),
                                     list(val), label, lines, reach, km)
        first = len(self._columns[0])
        for col, new in zip(self._columns, (t, st, sp, val, None, reach, km)):
            col.extend(new if new is not None else range(first + 1, first + n + 1))
        self._stale = True
        return self

    def trace(self) -> TraceResult:
        """Trace all samples so far (what ``qs.trace`` returns), reusing the kernels."""
        t, st, sp, val, line, reach, km = self._columns
        points = any(reach)
        columns = (t, st, sp, val, "<session row>", line, reach if points else [],
                   km if points else [])
        self._result = _trace_columns(columns, self._network._native, self._options,
                                      self._cache, self.horizon_round_h)
        self._stale = False
        return self._result

    def next_samples(self) -> pd.DataFrame:
        """The recommendations of the latest trace (tracing again first if samples were added
        since, or none was run)."""
        if self._stale or self._result is None:
            self.trace()
        return self._result.next_samples

    @property
    def result(self) -> Optional[TraceResult]:
        """The latest trace's result (None before the first)."""
        return self._result

    @property
    def observations(self) -> pd.DataFrame:
        """Every sample added so far: ``time, station, reach, km, species, value``."""
        t, st, sp, val, _, reach, km = self._columns
        return pd.DataFrame({"time": _times(t), "station": [s or None for s in st],
                             "reach": [r or None for r in reach],
                             "km": np.asarray(km, dtype=float), "species": sp,
                             "value": np.asarray(val, dtype=float)})

    @property
    def kernel_cache(self) -> KernelCache:
        """The session's kernels (``hits``, ``misses``)."""
        return self._cache

    def __len__(self) -> int:
        return len(self._columns[0])


def release_history(
    observations: ObservationsLike,
    source: str,
    network: NetworkLike = None,
    start=None,
    end=None,
    bin_h: float = 1.0,
    regularization: str = "tikhonov",
    alpha: str = "discrepancy",
    noise: float = 0.1,
    date: Optional[str] = None,
) -> pd.DataFrame:
    """A known source's load over time (``qingshui trace --history SOURCE``).

    Non-negative Tikhonov (second differences) or total-variation (first differences)
    regularization, the regularization parameter by the discrepancy principle or the
    L-curve corner. Returns one row per time bin: ``time`` and ``<species>_kg_h``; ``attrs``
    holds per species ``total_kg``, ``alpha``, ``chi2`` and the trade-off curve.
    """
    t, st, sp, val, label, lines, reach, km = _observation_columns(observations)
    raw = _qingshui.release_history(
        _native(network),
        list(t),
        list(st),
        list(sp),
        list(val),
        label,
        list(lines),
        source,
        _epoch(start),
        _epoch(end),
        float(bin_h),
        regularization,
        alpha,
        float(noise),
        date or "",
        list(reach),
        list(km),
    )
    frame = pd.DataFrame({"time": _times(raw["bin_start_s"])})
    series = {}
    for s in raw["series"]:
        frame[f"{s['species']}_kg_h"] = np.asarray(s["load_kg_h"], dtype=float)
        series[s["species"]] = {
            "total_kg": s["total_kg"],
            "alpha": s["alpha"],
            "chi2": s["chi2"],
            "num_data": s["num_data"],
            "curve": pd.DataFrame(
                {"alpha": s["curve_alpha"], "chi2": s["curve_chi2"], "seminorm": s["curve_seminorm"]}
            ),
            "corner_index": s["corner_index"],
        }
    frame.attrs["source"] = raw["source"]
    frame.attrs["regularization"] = raw["regularization"]
    frame.attrs["alpha_rule"] = raw["alpha_rule"]
    frame.attrs["series"] = series
    frame.attrs["elapsed_s"] = raw["elapsed_s"]
    return frame


__all__ = ["TraceResult", "default_priors_path", "read_trace", "release_history", "simulate", "trace"]
