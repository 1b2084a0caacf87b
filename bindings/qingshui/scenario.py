"""Scenarios: what-if changes to a network, run over a period, with results as tables.

>>> import qingshui as qs
>>> sc = qs.Scenario(qs.load_network(), "Chengxi to Class IV")
>>> sc.set_effluent("chengxi_wwtp", COD=30, NH3N=1.5, TP=0.3, from_date="2024-05-01")
>>> res = sc.run("2024-04-20", "2024-05-10")
>>> res.at_station("zhangliuzhuang").resample("D").mean()

A scenario never edits the network it starts from: each change is applied to a copy of the
network's YAML, which the engine validates like any network file. A change "from a date"
splits a source in two: the original runs until the day before, a copy named
``<id>__from_<date>`` from that date on (contributions add the two back together).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional, TypeVar

import numpy as np
import pandas as pd
import yaml

from . import _qingshui
from .network import Network, load_network

log = logging.getLogger("qingshui")

TIMEZONE = "Asia/Shanghai"
SPLIT = "__from_"  # id suffix of the part of a source changed from a date
CLASS_NAMES_WORSE_THAN_LAST = "劣V"


def _date(value) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as exc:
        raise _qingshui.ConfigError(f"expected a date YYYY-MM-DD, got {value!r}") from exc


def _number(value: float, why: str) -> dict:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise _qingshui.ConfigError(f"{why}: expected a finite number >= 0, got {value!r}")
    return {"value": value, "src": f"E: scenario — {why}"}


T = TypeVar("T")


def _new_source(sid: str, kind: str, reach: str, km: float, flow_m3s: float,
                concentration_mg_l: Dict[str, float], name_zh: str, name_en: str) -> dict:
    """A source entry added by a scenario (checked numbers, provenance "E: scenario")."""
    return {
        "id": sid, "name_zh": name_zh, "name_en": name_en, "src": "E: scenario", "kind": kind,
        "reach": reach, "km": _number(km, f"{sid} km"),
        "design_flow_m3s": _number(flow_m3s, f"{sid} flow"),
        "effluent_mg_l": {k: _number(v, f"{sid} {k}") for k, v in concentration_mg_l.items()},
    }


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython, not a script)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too old or half imported: not a notebook we can tell
        return False
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def _tqdm_class():
    """tqdm's notebook widget when ipywidgets is there, else its text bar; None without tqdm."""
    try:
        import tqdm.std
    except ImportError:
        return None
    try:
        import ipywidgets  # noqa: F401  (tqdm.notebook needs it)
        from tqdm.notebook import tqdm as bar
    except ImportError:
        bar = tqdm.std.tqdm
    return bar


def progress(iterable: Iterable[T], desc: str = "", total: Optional[int] = None,
             bar: Optional[bool] = None) -> Iterator[T]:
    """Iterate over ``iterable`` reporting progress: each step is logged (``qingshui``
    logger, INFO) and, in a Jupyter notebook with tqdm installed (Debian's python3-tqdm),
    a tqdm bar is shown. Without tqdm, or outside a notebook, only the log is written.

    Parameters
    ----------
    iterable : iterable
        The steps (scenarios to run, drills to trace, ...).
    desc : str
        What is being done, for the bar and the log.
    total : int, optional
        Number of steps (default ``len(iterable)`` when it has one).
    bar : bool, optional
        Force the bar on (when tqdm is installed) or off; default: only in notebooks.

    Yields
    ------
    The items of ``iterable``.
    """
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    show = _in_notebook() if bar is None else bool(bar)
    cls = _tqdm_class() if show else None
    wrapped = iterable
    if cls is not None:
        wrapped = cls(iterable, desc=desc or None, total=total, file=sys.stderr, leave=True)
    label = desc or "progress"
    of = f"/{total}" if total is not None else ""
    for i, item in enumerate(wrapped, start=1):
        log.info("%s: step %d%s", label, i, of)
        yield item


def run_all(scenarios: Iterable["Scenario"], start, end, **options) -> Dict[str, "Result"]:
    """Run several scenarios over the same period, with :func:`progress` reporting.

    ``options`` are those of :meth:`Scenario.run`. Returns ``{scenario.name: Result}`` in
    the given order (names must differ)."""
    scenarios = list(scenarios)
    names = [s.name for s in scenarios]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise _qingshui.ConfigError(f"run_all: scenario names must differ (repeated: {', '.join(duplicates)})")
    return {s.name: s.run(start, end, **options) for s in progress(scenarios, desc="scenarios")}


@dataclass
class Change:
    """One scenario change: a description and the edit it makes to the network document."""

    description: str
    apply: Callable[[dict], None] = field(repr=False)


class Scenario:
    """A set of changes to a network, composable and printable.

    Parameters
    ----------
    network : Network, optional
        The starting network (default: the built-in Yuncheng network).
    name : str
        Shown in printouts and in :meth:`Result.compare`.
    """

    def __init__(self, network: Optional[Network] = None, name: str = "scenario"):
        self.network = network if network is not None else load_network()
        self.name = name
        self.changes: List[Change] = []

    # ----- composition ------------------------------------------------------------------
    def copy(self, name: Optional[str] = None) -> "Scenario":
        """A new scenario with the same changes (add more without touching this one)."""
        other = Scenario(self.network, name or self.name)
        other.changes = list(self.changes)
        return other

    def __add__(self, other: "Scenario") -> "Scenario":
        combined = self.copy(f"{self.name} + {other.name}")
        combined.changes += other.changes
        return combined

    def __str__(self) -> str:
        lines = [f"Scenario {self.name!r} on {self.network.name!r}: {len(self.changes)} change(s)"]
        lines += [f"  {i + 1}. {c.description}" for i, c in enumerate(self.changes)]
        return "\n".join(lines)

    __repr__ = __str__

    # ----- changes ----------------------------------------------------------------------
    def set_effluent(self, source: str, from_date=None, **concentration_mg_l: float) -> "Scenario":
        """Set a source's effluent concentrations (mg/L), e.g. ``COD=30, NH3N=1.5``."""
        if not concentration_mg_l:
            raise _qingshui.ConfigError("set_effluent: give at least one species, e.g. COD=30")
        text = ", ".join(f"{k} {v:g} mg/L" for k, v in concentration_mg_l.items())
        when = f" from {_date(from_date)}" if from_date is not None else ""

        def edit(s: dict) -> None:
            eff = s.setdefault("effluent_mg_l", {})
            for k, v in concentration_mg_l.items():
                eff[k] = _number(v, f"{source} effluent {k}")

        return self._edit_source(source, from_date, f"{source}: effluent {text}{when}", edit)

    def upgrade(self, source: str, date, **concentration_mg_l: float) -> "Scenario":
        """A plant upgrade: new effluent concentrations from ``date``."""
        return self.set_effluent(source, from_date=date, **concentration_mg_l)

    def set_flow(self, source: str, flow_m3s: float, from_date=None) -> "Scenario":
        """Set a source's discharge (m³/s)."""
        when = f" from {_date(from_date)}" if from_date is not None else ""

        def edit(s: dict) -> None:
            s["design_flow_m3s"] = _number(flow_m3s, f"{source} flow")

        return self._edit_source(source, from_date, f"{source}: flow {flow_m3s:g} m3/s{when}", edit)

    def plug(self, source: str, from_date=None) -> "Scenario":
        """An outfall plugged (from ``from_date``, or for the whole run)."""
        when = f" from {_date(from_date)}" if from_date is not None else ""

        def edit(s: dict) -> None:
            s["status"] = "plugged"
            s.pop("offline", None)

        return self._edit_source(source, from_date, f"{source}: plugged{when}", edit)

    def wetland_online(self, wetland: str, date, removal: Optional[Dict[str, float]] = None,
                       capacity_m3s: Optional[float] = None) -> "Scenario":
        """A wetland comes online on ``date`` with removal fractions per species."""
        day = _date(date)

        def apply(doc: dict) -> None:
            s = self._find(doc, "sources", wetland)
            if s.get("kind") != "wetland":
                raise _qingshui.ConfigError(f"wetland_online: {wetland!r} is a {s.get('kind')}, not a wetland")
            s["status"] = "operating"
            s["online"] = day.isoformat()
            if removal:
                s["removal"] = {k: {"value": float(v), "src": "E: scenario removal"} for k, v in removal.items()}
            if capacity_m3s is not None:
                s["capacity_m3s"] = _number(capacity_m3s, f"{wetland} capacity")

        extra = f", removal {removal}" if removal else ""
        self.changes.append(Change(f"{wetland}: wetland online {day}{extra}", apply))
        return self

    def lake_rule(self, lake: str, rule_class: Optional[str]) -> "Scenario":
        """The class a lake's release must meet before it may discharge (None: no rule)."""

        def apply(doc: dict) -> None:
            hits = [s for s in doc.get("sources", []) if s.get("lake") == lake]
            target = self._find(doc, "lakes", lake)
            for obj in hits + [target]:
                if rule_class is None:
                    obj.pop("rule_class", None)
                else:
                    obj["rule_class"] = rule_class

        self.changes.append(Change(f"{lake}: discharge rule {rule_class or 'none'}", apply))
        return self

    def set_headwater(self, reach: str, season: str, flow_m3s: Optional[float] = None,
                      **concentration_mg_l: float) -> "Scenario":
        """Change a headwater boundary for a season ("dry", "wet"): its flow (m³/s) and/or
        concentrations (mg/L) — e.g. a drier year, or cleaner water arriving from upstream."""
        parts = ([f"flow {flow_m3s:g} m3/s"] if flow_m3s is not None else []) + \
                [f"{k} {v:g} mg/L" for k, v in concentration_mg_l.items()]

        def apply(doc: dict) -> None:
            r = self._find(doc, "reaches", reach)
            hw = r.get("headwater", {}).get(season)
            if hw is None:
                raise _qingshui.ConfigError(f"set_headwater: reach {reach!r} has no {season!r} headwater")
            if flow_m3s is not None:
                hw["flow_m3s"] = _number(flow_m3s, f"{reach} {season} headwater flow")
            conc = hw.setdefault("concentration_mg_l", {})
            for k, v in concentration_mg_l.items():
                conc[k] = _number(v, f"{reach} {season} headwater {k}")

        self.changes.append(Change(f"{reach} headwater ({season}): {', '.join(parts)}", apply))
        return self

    def set_diffuse(self, reach: str, season: str, **concentration_mg_l: float) -> "Scenario":
        """Change a reach's diffuse-inflow concentrations (mg/L) for a season ("dry",
        "wet"); the season must have a diffuse inflow with concentrations."""
        parts = [f"{k} {v:g} mg/L" for k, v in concentration_mg_l.items()]

        def apply(doc: dict) -> None:
            r = self._find(doc, "reaches", reach)
            block = (r.get("lateral_flow") or {}).get(season) or {}
            conc = block.get("concentration_mg_l")
            if conc is None:
                raise _qingshui.ConfigError(
                    f"set_diffuse: reach {reach!r} has no {season!r} diffuse inflow concentrations")
            for k, v in concentration_mg_l.items():
                conc[k] = _number(v, f"{reach} {season} diffuse {k}")

        self.changes.append(Change(f"{reach} diffuse inflow ({season}): {', '.join(parts)}", apply))
        return self

    def add_load(self, id: str, reach: str, km: float, flow_m3s: float, kind: str = "lake_outflow",
                 lake: Optional[str] = None, **concentration_mg_l: float) -> "Scenario":
        """A source that is not in the network (e.g. a lake's internal load leaving with
        its outflow: kind "lake_outflow" with its ``lake``): ``flow_m3s`` at
        ``concentration_mg_l`` entering at (reach, km)."""

        def apply(doc: dict) -> None:
            if any(s.get("id") == id for s in doc.get("sources", [])):
                raise _qingshui.ConfigError(f"add_load: a source {id!r} exists already")
            src = _new_source(id, kind, reach, km, flow_m3s, concentration_mg_l, id, id)
            if lake:
                src["lake"] = lake
            doc.setdefault("sources", []).append(src)

        self.changes.append(Change(f"load {id} at {reach} km {km:g}", apply))
        return self

    def supplementation(self, reach: str, km: float, flow_m3s: float, id: str = None,
                        from_date=None, **concentration_mg_l: float) -> "Scenario":
        """Ecological supplementation (生态补水): clean water added at (reach, km)."""
        sid = id or f"supplementation_{reach}_{str(km).replace('.', '_')}"

        def apply(doc: dict) -> None:
            src = _new_source(sid, "supplementation", reach, km, flow_m3s, concentration_mg_l,
                              "生态补水", "ecological supplementation")
            if from_date is not None:
                src["online"] = _date(from_date).isoformat()
            doc.setdefault("sources", []).append(src)

        self.changes.append(Change(f"supplementation {flow_m3s:g} m3/s at {reach} km {km:g}", apply))
        return self

    # ----- the modified network ---------------------------------------------------------
    def document(self) -> dict:
        """The network document (as YAML data) with every change applied."""
        doc = yaml.safe_load(self.network.to_yaml())
        for change in self.changes:
            change.apply(doc)
        return doc

    def to_network(self) -> Network:
        """The changed network, validated by the engine."""
        text = yaml.safe_dump(self.document(), allow_unicode=True, sort_keys=False)
        # Messages name the scenario, not the original file (the lines are the document's);
        # the folder stays the network's so that its relative standards path resolves.
        name = os.path.join(os.path.dirname(self.network.file), f"[scenario {self.name}]")
        return Network(_qingshui.parse_network(text, name))

    def run(self, start, end, time_step_s: float = 1800.0, output_interval_s: float = 3600.0,
            season: str = "", velocity_factor: float = 1.0, dispersion_factor: float = 1.0,
            temperature_c: float = 20.0, contributions: bool = True, fields: bool = True) -> "Result":
        """Run from 00:00 of ``start`` to 24:00 of ``end`` (dates, Asia/Shanghai).

        Returns
        -------
        Result
        """
        first, last = _date(start), _date(end)
        if last < first:
            raise _qingshui.ConfigError(f"run: end {last} is before start {first}")
        net = self.to_network()
        days = (last - first).days + 1
        log.info("scenario %r: %d change(s), %s to %s (%d day(s))", self.name, len(self.changes), first, last, days)
        raw = _qingshui.simulate(net._native, first.isoformat(), days,
                                 time_step_s, output_interval_s, season, velocity_factor,
                                 dispersion_factor, temperature_c, fields, contributions)
        log.info("scenario %r done: %s", self.name, raw["summary"])
        return Result(self.name, net, first, raw)

    # ----- helpers ----------------------------------------------------------------------
    @staticmethod
    def _find(doc: dict, key: str, ident: str) -> dict:
        for obj in doc.get(key, []):
            if obj.get("id") == ident:
                return obj
        known = ", ".join(o.get("id", "?") for o in doc.get(key, []))
        raise _qingshui.ConfigError(f"unknown {key[:-1]} {ident!r} (known: {known})")

    def _edit_source(self, source: str, from_date, description: str,
                     edit: Callable[[dict], None]) -> "Scenario":
        def apply(doc: dict) -> None:
            original = self._find(doc, "sources", source)
            if from_date is None:
                edit(original)
                return
            day = _date(from_date)
            clone = copy.deepcopy(original)
            clone["id"] = f"{source}{SPLIT}{day.isoformat()}"
            online = original.get("online")
            clone["online"] = max(day.isoformat(), online) if online else day.isoformat()
            original["offline"] = (day - dt.timedelta(days=1)).isoformat()
            edit(clone)
            doc["sources"].append(clone)

        self.changes.append(Change(description, apply))
        return self


class Result:
    """A scenario run: concentrations at stations and along the rivers, in mg/L.

    Times are a :class:`pandas.DatetimeIndex` in Asia/Shanghai.
    """

    def __init__(self, name: str, network: Network, start: dt.date, raw: dict):
        self.name = name
        self.network = network
        self._raw = raw
        t0 = pd.Timestamp(start, tz=TIMEZONE)
        self.times = t0 + pd.to_timedelta(np.asarray(raw["times_s"]), unit="s")
        self.species = list(raw["species"])
        self.stations = list(raw["stations"])
        self.members = list(raw["members"])
        self.summary = raw["summary"]
        self._standard = network._native.standard_table()

    # ----- tables -------------------------------------------------------------------
    def at_station(self, station: str) -> pd.DataFrame:
        """Concentration at a station: a column per species (mg/L)."""
        s = self._station_index(station)
        values = np.asarray(self._raw["station_concentration"])[0, :, s, :]
        frame = pd.DataFrame(values, index=pd.DatetimeIndex(self.times, name="time"), columns=self.species)
        frame.columns.name = "species (mg/L)"
        return frame

    def profile(self, river: str, time=None) -> pd.DataFrame:
        """Concentration along a river against river-km at the output time nearest ``time``
        (default: the last). In-line lakes are left out (they have no km)."""
        if "concentration" not in self._raw:
            raise _qingshui.ConfigError("profile: run the scenario with fields=True")
        reaches = self.network.reaches()
        on_river = set(reaches.loc[reaches["river"] == river, "id"])
        if not on_river:
            raise _qingshui.ConfigError(f"profile: unknown river {river!r} (known: {sorted(set(reaches['river']))})")
        k = len(self.times) - 1 if time is None else int(np.argmin(np.abs(self.times - pd.Timestamp(time, tz=TIMEZONE))))
        seg = [i for i, r in enumerate(self._raw["segment_reach"]) if r in on_river]
        km = 0.5 * (np.asarray(self._raw["segment_km_start"])[seg] + np.asarray(self._raw["segment_km_end"])[seg])
        values = np.asarray(self._raw["concentration"])[0, k][seg, :]
        frame = pd.DataFrame(values, index=pd.Index(km, name="km"), columns=self.species).sort_index()
        frame.attrs["time"] = self.times[k]
        return frame

    def to_xarray(self):
        """An :class:`xarray.Dataset` with station series and (if stored) segment fields."""
        import xarray as xr

        times = self.times.tz_localize(None)  # local wall-clock time; attrs name the zone
        data = {
            "station_concentration": (("time", "station", "species"),
                                      np.asarray(self._raw["station_concentration"])[0]),
        }
        coords = {"time": times, "station": self.stations, "species": self.species}
        if "concentration" in self._raw:
            data["concentration"] = (("time", "segment", "species"), np.asarray(self._raw["concentration"])[0])
            coords["segment"] = np.arange(len(self._raw["segment_reach"]))
            coords["segment_reach"] = ("segment", list(self._raw["segment_reach"]))
            coords["segment_km"] = ("segment", 0.5 * (np.asarray(self._raw["segment_km_start"]) +
                                                      np.asarray(self._raw["segment_km_end"])))
        if len(self.members) > 1:
            data["contribution"] = (("contributor", "time", "station", "species"),
                                    np.asarray(self._raw["station_concentration"])[1:])
            coords["contributor"] = self.members[1:]
        ds = xr.Dataset(data, coords=coords)
        ds.attrs.update({"scenario": self.name, "units": "mg/L", "timezone": TIMEZONE})
        return ds

    def contributions(self, station: str, species: Optional[str] = None) -> pd.DataFrame:
        """Mean contribution of each contributor (source, a reach's diffuse inflow, the
        headwaters) at a station over the run, mg/L and as a share of the total.

        Sources split by a dated change (``id__from_date``) are added back together.
        """
        if len(self.members) < 2:
            raise _qingshui.ConfigError("contributions: run the scenario with contributions=True")
        s = self._station_index(station)
        values = np.asarray(self._raw["station_concentration"])[1:, :, s, :].mean(axis=1)
        frame = pd.DataFrame(values, index=[m.split(SPLIT)[0] for m in self.members[1:]], columns=self.species)
        frame = frame.groupby(level=0, sort=False).sum()
        frame = frame[(frame != 0).any(axis=1)]  # sources on other rivers contribute nothing
        total = np.asarray(self._raw["station_concentration"])[0, :, s, :].mean(axis=0)
        if species is not None:
            col = frame[species]
            out = pd.DataFrame({"mg_l": col, "share": col / total[self.species.index(species)]})
            return out.sort_values("mg_l", ascending=False)
        return frame

    def assess(self, period: str = "month") -> pd.DataFrame:
        """Water-quality class per station and period (GB 3838-2002 as in the network's
        standards file; assessment rules of 环办[2011]22号): each indicator's arithmetic
        mean over the period is classed, the station's class is the worst indicator, and
        above Class III the main pollutants are the (up to three) indicators with the
        largest multiple of the Class III limit.

        Parameters
        ----------
        period : {"day", "week", "month", "year"}
            "year" is the annual assessment (calendar years, means over the run's part of
            each year: run the whole year for an annual class).
        """
        rule = {"day": "D", "week": "W", "month": "MS", "year": "YS"}.get(period)
        if rule is None:
            raise _qingshui.ConfigError(f"assess: period must be day, week, month or year, got {period!r}")
        std = self._standard
        if not std:
            raise _qingshui.ConfigError("assess: the network has no standards file")
        classes = list(std["classes"])
        iii = classes.index("III") if "III" in classes else len(classes) // 2
        rows = []
        for station in self.stations:
            means = self.at_station(station).iloc[:-1].resample(rule).mean()
            for when, row in means.iterrows():
                worst, per = -1, {}
                multiples = {}
                for sp in self.species:
                    ind = std["indicators"].get(sp)
                    if ind is None or not np.isfinite(row[sp]):
                        continue
                    limits = ind["limits_mg_l"]
                    ok = [(row[sp] <= L) if ind["sense"] == "max" else (row[sp] >= L) for L in limits]
                    k = ok.index(True) if True in ok else len(limits)
                    per[sp] = classes[k] if k < len(classes) else CLASS_NAMES_WORSE_THAN_LAST
                    worst = max(worst, k)
                    if ind["sense"] == "max" and limits[iii] > 0:
                        multiples[sp] = row[sp] / limits[iii]
                main = [sp for sp, m in sorted(multiples.items(), key=lambda kv: -kv[1]) if m > 1][:3]
                rows.append({
                    "station": station, "period": when, "class": classes[worst] if 0 <= worst < len(classes) else CLASS_NAMES_WORSE_THAN_LAST,
                    "main_pollutants": ", ".join(main), **{f"{sp}_mg_l": row[sp] for sp in self.species},
                    **{f"{sp}_class": per.get(sp) for sp in self.species},
                })
        return pd.DataFrame(rows)

    def compare(self, other: "Result") -> pd.DataFrame:
        """Mean concentration per station and species in both runs and the change."""
        if self.stations != other.stations or self.species != other.species:
            raise _qingshui.ConfigError("compare: results have different stations or species")
        a = np.asarray(self._raw["station_concentration"])[0].mean(axis=0)
        b = np.asarray(other._raw["station_concentration"])[0].mean(axis=0)
        index = pd.MultiIndex.from_product([self.stations, self.species], names=["station", "species"])
        mine, theirs = self.name, other.name if other.name != self.name else f"{other.name} (other)"
        frame = pd.DataFrame({mine: a.ravel(), theirs: b.ravel()}, index=index)
        frame["change_mg_l"] = frame[theirs] - frame[mine]
        frame["change_pct"] = 100.0 * frame["change_mg_l"] / frame[mine].where(frame[mine] != 0)
        return frame

    def _station_index(self, station: str) -> int:
        try:
            return self.stations.index(station)
        except ValueError:
            raise _qingshui.ConfigError(f"unknown station {station!r} (known: {', '.join(self.stations)})") from None

    def __repr__(self) -> str:
        return (f"<qingshui.Result {self.name!r}: {self.times[0]:%Y-%m-%d} to {self.times[-1]:%Y-%m-%d %H:%M}, "
                f"{len(self.stations)} stations, {len(self.species)} species>")
