"""The 2023 baseline: the loads nobody has measured, fitted to the classes the seed reports.

The action plan's only hard facts about these rivers' quality are annual classes (seed
一、基本情况: in 2023 Zhangliuzhuang and Miaoqian were Class IV). The unmeasured loads are
free parameters with documented ranges (``data/yuncheng/baseline_2023.yaml``); the fit keeps
the draws for which the whole year gives those classes. Many load configurations do, so the
answer is an ensemble, not one network.

How: the transport is linear in the loads at given flows, so the annual mean at a station
is the shipped run's mean plus, per parameter, (value − shipped value) × its unit response.
One year-long run with contributions gives every unit response (~2 min); then any number of
draws is classed at once. :meth:`BaselineEnsemble.check` reruns members in full to show the
surrogate holds.

>>> import qingshui as qs
>>> ens = qs.fit_2023_baseline(members=50, seed=1)
>>> ens.members.describe()
>>> res = ens.scenario(0).run("2023-01-01", "2023-12-31", contributions=False, fields=False)
>>> res.assess("year")
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Union

import numpy as np
import pandas as pd
import yaml

from . import _qingshui
from .network import Network, load_network
from .scenario import SPLIT, Scenario

PathLike = Union[str, os.PathLike]
SPECIES = ("COD", "NH3N", "TP")
KINDS = ("effluent", "effluent_x", "headwater_x", "diffuse_x", "load")
TOKEN_FLOW_M3S = 0.001  # flow that carries an added load (kg/d) into the river
PROVENANCE = "E: calibrated to the 2023 classes (seed §一)"


def default_priors_path() -> Path:
    """``data/yuncheng/baseline_2023.yaml`` next to the default network."""
    from .network import default_network_path

    return default_network_path().parent / "baseline_2023.yaml"


def default_ensemble_path() -> Path:
    """``data/yuncheng/ensemble_2023.yaml``: the ensemble shipped with the network."""
    return default_priors_path().parent / "ensemble_2023.yaml"


def _err(path, what: str) -> _qingshui.ConfigError:
    return _qingshui.ConfigError(f"{path}: {what}")


def _finite(path, where: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise _err(path, f"{where} must be a finite number, got {value!r}")
    return float(value)


def _read_yaml(path: Path):
    """The YAML document in path; ConfigError naming the file (and line) otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise _err(path, f"cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise _err(path, f"{line}not valid YAML ({getattr(e, 'problem', e)})") from None


def load_baseline_priors(path: Optional[PathLike] = None) -> dict:
    """Read and check the free parameters and constraints (see the file's header);
    ConfigError naming the file, the parameter and the field otherwise."""
    path = Path(path) if path is not None else default_priors_path()
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or doc.get("format") != "qingshui-baseline-priors":
        raise _err(path, "format must be qingshui-baseline-priors")
    year = doc.get("year")
    if not isinstance(year, int) or not 1900 < year < 2200:
        raise _err(path, f"year must be a year, got {year!r}")
    constraints = doc.get("constraints")
    if not isinstance(constraints, dict) or not constraints:
        raise _err(path, "constraints: a station -> {class: ...} table is required")
    for station, c in constraints.items():
        if not isinstance(c, dict) or not isinstance(c.get("class"), str):
            raise _err(path, f"constraints.{station}: needs class")
    params = doc.get("parameters")
    if not isinstance(params, list) or not params:
        raise _err(path, "parameters: a list is required")
    seen = set()
    for k, p in enumerate(params):
        where = f"parameters[{k}]"
        if not isinstance(p, dict) or not isinstance(p.get("id"), str):
            raise _err(path, f"{where}: needs an id")
        where = f"parameters[{k}] ({p['id']})"
        if p["id"] in seen:
            raise _err(path, f"{where}: duplicate id")
        seen.add(p["id"])
        if p.get("kind") not in KINDS:
            raise _err(path, f"{where}.kind must be one of {', '.join(KINDS)}, got {p.get('kind')!r}")
        if not isinstance(p.get("src"), str) or not p["src"].strip():
            raise _err(path, f"{where}.src: every range says where it comes from")
        for bound in ("low", "high"):
            b = p.get(bound)
            if not isinstance(b, dict) or set(b) != set(SPECIES):
                raise _err(path, f"{where}.{bound} must give {', '.join(SPECIES)}")
            for sp in SPECIES:
                v = _finite(path, f"{where}.{bound}.{sp}", b[sp])
                if v < 0:
                    raise _err(path, f"{where}.{bound}.{sp} must be >= 0, got {v:g}")
        for sp in SPECIES:
            if p["low"][sp] > p["high"][sp]:
                raise _err(path, f"{where}: low.{sp} {p['low'][sp]:g} > high.{sp} {p['high'][sp]:g}")
        key = "reaches" if p["kind"] in ("headwater_x", "diffuse_x") else "sources"
        if p["kind"] == "load":
            if not isinstance(p.get("reach"), str):
                raise _err(path, f"{where}.reach is required for a load")
            _finite(path, f"{where}.km", p.get("km"))
        elif not isinstance(p.get(key), list) or not p[key] or not all(isinstance(x, str) for x in p[key]):
            raise _err(path, f"{where}.{key}: a list of ids is required")
        if p["kind"] == "headwater_x":
            st = p.get("stations")
            if not isinstance(st, list) or not all(isinstance(x, str) for x in st):
                raise _err(path, f"{where}.stations: the stations whose headwaters are exactly these"
                                 " reaches' (a list, may be empty)")
    doc["_path"] = str(path)
    return doc


def _shipped(doc: dict, p: dict) -> Dict[str, float]:
    """The value of parameter p in the network document (per species)."""
    if p["kind"] in ("effluent_x", "headwater_x", "diffuse_x"):
        return {sp: 1.0 for sp in SPECIES}
    if p["kind"] == "load":
        return {sp: 0.0 for sp in SPECIES}
    src = Scenario._find(doc, "sources", p["sources"][0])
    return {sp: float(_value(src["effluent_mg_l"][sp])) for sp in SPECIES}


def _value(v):
    return v["value"] if isinstance(v, dict) else v


def _conc_table(obj: dict) -> dict:
    return {sp: float(_value(v)) for sp, v in obj.items()}


def _set_by_scenario(scenario: Scenario) -> set:
    """Sources whose effluent the scenario itself changes for the whole run (a measure
    without a date): a member's value for them does not apply, the measure's does. (A
    measure from a date splits the source; the member's value keeps the part before.)"""
    shipped = Scenario(scenario.network).document()
    changed = set()
    for src in scenario.document().get("sources", []):
        try:
            before = Scenario._find(shipped, "sources", src["id"])
        except _qingshui.ConfigError:
            continue  # added by the scenario
        if _conc_table(before.get("effluent_mg_l", {})) != _conc_table(src.get("effluent_mg_l", {})):
            changed.add(src["id"])
    return changed


def apply_parameters(scenario: Scenario, priors: dict, values: Dict[str, float]) -> Scenario:
    """Add the changes that set every parameter to ``values[f"{id}.{species}"]`` (except
    for sources the scenario's own measures set for the whole run)."""
    doc = scenario.document()
    keep = _set_by_scenario(scenario)
    for p in priors["parameters"]:
        v = {sp: float(values[f"{p['id']}.{sp}"]) for sp in SPECIES}
        kind = p["kind"]
        if kind == "effluent":
            for s in p["sources"]:
                if s not in keep:
                    scenario.set_effluent(s, **v)
        elif kind == "effluent_x":
            for s in p["sources"]:
                if s in keep:
                    continue
                shipped = _conc_table(Scenario._find(doc, "sources", s)["effluent_mg_l"])
                scenario.set_effluent(s, **{sp: shipped[sp] * v[sp] for sp in SPECIES})
        elif kind in ("headwater_x", "diffuse_x"):
            for r in p["reaches"]:
                reach = Scenario._find(doc, "reaches", r)
                part = "headwater" if kind == "headwater_x" else "lateral_flow"
                for season, block in (reach.get(part) or {}).items():
                    conc = (block or {}).get("concentration_mg_l")
                    if not conc:
                        continue
                    shipped = _conc_table(conc)
                    new = {sp: shipped[sp] * v[sp] for sp in SPECIES if sp in shipped}
                    if kind == "headwater_x":
                        scenario.set_headwater(r, season, **new)
                    else:
                        scenario.set_diffuse(r, season, **new)
        else:  # load, kg/d -> mg/L in the token flow
            to_mg_l = 1000.0 / 86400.0 / TOKEN_FLOW_M3S
            scenario.add_load(p["id"], p["reach"], p["km"], TOKEN_FLOW_M3S,
                              kind=p.get("source_kind", "lake_outflow"), lake=p.get("lake"),
                              **{sp: v[sp] * to_mg_l for sp in SPECIES})
    return scenario


@dataclass
class BaselineEnsemble:
    """Load configurations that reproduce the 2023 classes.

    members: one row per member, a column per ``parameter.species`` (mg/L for ``effluent``,
    kg/d for ``load``, multipliers otherwise), plus the surrogate's annual means and classes
    at the constrained stations.
    """

    priors: dict
    members: pd.DataFrame
    draws: int = 0
    accepted: int = 0
    unit_responses: Optional[pd.DataFrame] = field(default=None, repr=False)

    @property
    def parameter_columns(self) -> List[str]:
        return [f"{p['id']}.{sp}" for p in self.priors["parameters"] for sp in SPECIES]

    def scenario(self, member: int, network: Optional[Network] = None,
                 plan: Optional[Scenario] = None) -> Scenario:
        """The network (or ``plan``: its measures first) with member ``member``'s loads, a
        :class:`Scenario` to run. A measure that sets a source for the whole run keeps it;
        one from a date leaves the member's value before that date."""
        if not 0 <= member < len(self.members):
            raise _qingshui.ConfigError(f"member {member} out of range (0..{len(self.members) - 1})")
        if plan is not None:
            sc = plan.copy(f"{plan.name}, 2023 baseline member {member}")
        else:
            sc = Scenario(network, f"2023 baseline member {member}")
        return apply_parameters(sc, self.priors, self.members.iloc[member].to_dict())

    def pinned(self) -> pd.DataFrame:
        """How much the constraints narrow each parameter: its spread among the members
        against its prior range (1 = free, near 0 = pinned)."""
        rows = []
        for p in self.priors["parameters"]:
            for sp in SPECIES:
                col = f"{p['id']}.{sp}"
                lo, hi = p["low"][sp], p["high"][sp]
                x = self.members[col]
                prior_sd = (hi - lo) / np.sqrt(12.0)
                rows.append({"parameter": col, "low": lo, "high": hi, "member_min": x.min(),
                             "member_median": x.median(), "member_max": x.max(),
                             "sd_ratio": x.std(ddof=1) / prior_sd if prior_sd > 0 else np.nan})
        return pd.DataFrame(rows).set_index("parameter")

    def to_yaml(self, path: PathLike) -> None:
        """Write the members (atomically: a killed write leaves the old file)."""
        path = Path(path)
        doc = {
            "format": "qingshui-baseline-ensemble", "version": 1,
            "year": int(self.priors["year"]), "src": PROVENANCE,
            "priors": os.path.basename(self.priors["_path"]),
            "draws": int(self.draws), "accepted": int(self.accepted),
            "parameters": self.parameter_columns,
            "members": [[float(f"{v:.6g}") for v in row]
                        for row in self.members[self.parameter_columns].itertuples(index=False)],
        }
        text = "# Written by qingshui.fit_2023_baseline; every value " + PROVENANCE + "\n"
        text += yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
        _write_atomic(path, text)


def _write_atomic(path: Path, text: str) -> None:
    """Write text to path so that a killed write leaves the old file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)  # mkstemp makes the file private; give it a normal file's mode
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_baseline_ensemble(path: Optional[PathLike] = None,
                           priors: Optional[PathLike] = None) -> BaselineEnsemble:
    """Read an ensemble written by :meth:`BaselineEnsemble.to_yaml` (default: the shipped one)."""
    path = Path(path) if path is not None else default_ensemble_path()
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or doc.get("format") != "qingshui-baseline-ensemble":
        raise _err(path, "format must be qingshui-baseline-ensemble")
    pri = load_baseline_priors(priors if priors is not None else path.parent / str(doc.get("priors", "")))
    cols = [f"{p['id']}.{sp}" for p in pri["parameters"] for sp in SPECIES]
    if doc.get("parameters") != cols:
        raise _err(path, f"parameters do not match the priors' ({pri['_path']})")
    rows = doc.get("members")
    if not isinstance(rows, list) or not rows:
        raise _err(path, "members: a non-empty list is required")
    for k, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(cols):
            raise _err(path, f"members[{k}]: {len(cols)} values are required")
        for c, v in zip(cols, row):
            _finite(path, f"members[{k}].{c}", v)
    members = pd.DataFrame(rows, columns=cols)
    return BaselineEnsemble(pri, members, int(doc.get("draws", 0)), int(doc.get("accepted", 0)))


def _class_index(values: np.ndarray, standard: dict, species: List[str]) -> np.ndarray:
    """Worst-indicator class index per row of values (rows x species), assess()'s rule."""
    worst = np.full(values.shape[0], -1)
    for j, sp in enumerate(species):
        ind = standard["indicators"].get(sp)
        if ind is None:
            continue
        limits = np.asarray(ind["limits_mg_l"], dtype=float)
        x = values[:, j]
        if ind["sense"] == "max":
            k = np.searchsorted(limits, x, side="left")  # first limit >= x
        else:
            k = np.sum(x[:, None] < limits[None, :], axis=1)
        worst = np.maximum(worst, k)
    return worst


def unit_responses(priors: dict, network: Optional[Network] = None, scenario: Optional[Scenario] = None,
                   year: Optional[int] = None, stations: Optional[List[str]] = None,
                   time_step_s: float = 1800.0) -> pd.DataFrame:
    """One year-long run with contributions: per station and species, the annual mean of
    the network (or ``scenario``) as it is, and each parameter's response per unit of it.

    The constrained stations and the priors' year unless ``stations`` and ``year`` say
    otherwise. Sources the scenario changes for the whole year respond 0 (the measure
    decides them); a source split by a dated measure responds with its part before it."""
    base = scenario.copy("unit responses") if scenario is not None else Scenario(network, "unit responses")
    year = int(year if year is not None else priors["year"])
    stations = list(stations) if stations is not None else list(priors["constraints"])
    doc = base.document()
    keep = _set_by_scenario(base)
    # Added loads enter at 1 kg/d each, so that they show as contributors.
    unit = {f"{p['id']}.{sp}": (1.0 if p["kind"] == "load" else _shipped(doc, p)[sp])
            for p in priors["parameters"] for sp in SPECIES}
    for p in priors["parameters"]:
        if p["kind"] == "load":
            apply_parameters(base, {"parameters": [p]}, unit)
    res = base.run(dt.date(year, 1, 1), dt.date(year, 12, 31), time_step_s=time_step_s,
                   contributions=True, fields=False)
    raw = np.asarray(res._raw["station_concentration"])[:, :-1]  # the year's hours
    rows = []
    for station in stations:
        s = res._station_index(station)
        total = raw[0, :, s, :].mean(axis=0)
        contrib = pd.DataFrame(raw[1:, :, s, :].mean(axis=1), index=res.members[1:], columns=res.species)
        for j, sp in enumerate(res.species):
            row = {"station": station, "species": sp, "shipped_mg_l": total[j]}
            for p in priors["parameters"]:
                for q in SPECIES:  # a parameter of species q moves only species q
                    col = f"{p['id']}.{q}"
                    row[col] = _response(p, sp, station, contrib, unit[col], keep) if q == sp else 0.0
                if p["kind"] == "load" and sp in SPECIES:  # the run carried 1 kg/d of it
                    row["shipped_mg_l"] -= row[f"{p['id']}.{sp}"]
            rows.append(row)
    out = pd.DataFrame(rows).set_index(["station", "species"]).fillna(0.0)
    out.attrs["standard"] = res._standard
    out.attrs["species"] = res.species
    out.attrs["year"] = year
    return out


def _response(p: dict, sp: str, station: str, contrib: pd.DataFrame, unit: float,
              keep: set = frozenset()) -> float:
    """d(annual mean)/d(parameter) for species sp at a station, from the contributions
    (one row per contributor; a source split by a dated change has two rows, and only the
    part under the source's own id, before the change, takes the parameter)."""
    kind = p["kind"]
    if kind == "load":
        names = [p["id"]]
    elif kind in ("effluent", "effluent_x"):
        names = [n for n in p["sources"] if n not in keep]
    elif kind == "diffuse_x":
        names = [f"diffuse:{r}" for r in p["reaches"]]
    else:  # headwater_x: the headwaters that reach this station are those of the reaches'
        # river system; "headwater" lumps every headwater, so only stations on a river
        # whose headwaters are all in p["reaches"] may use it.
        names = ["headwater"] if station in p["stations"] else []
    value = sum(float(contrib.at[n, sp]) for n in names if n in contrib.index)
    return value / unit if unit else 0.0


# ----- stored unit responses ----------------------------------------------------------------
# A year-long contributions run costs 15-30 s (several minutes under AddressSanitizer); the
# plan's question needs one per scenario. The responses the engine computed for the plan
# of notebook 01 are stored with the key of what they were computed from (the scenario's
# whole network document, the standard, the priors, year, stations, step and the engine's
# version): plan_outcome uses a stored table only when its key is the current one, so an
# edited network, prior, plan or engine falls back to the engine, never to stale numbers.
RESPONSES_FORMAT = "qingshui-unit-responses"
RESPONSES_VERSION = 1
RESPONSES_COMMAND = "scripts/plan_responses"


def default_responses_path() -> Path:
    """``data/yuncheng/responses_2024.yaml``: the engine's unit responses for the 2024 plan."""
    return default_priors_path().parent / "responses_2024.yaml"


def _jsonable(x):
    if isinstance(x, (dt.date, dt.datetime)):
        return x.isoformat()
    raise TypeError(f"cannot key {type(x).__name__}")


def response_key(priors: dict, scenario: Scenario, year: int, stations: List[str],
                 time_step_s: float = 1800.0) -> str:
    """SHA-256 of everything :func:`unit_responses` reads: the scenario's network document
    with its changes, the standard, the priors' parameters, year, stations, step, engine."""
    payload = {
        "format": [RESPONSES_FORMAT, RESPONSES_VERSION], "engine": _qingshui.__version__,
        "network": scenario.document(), "standard": scenario.network._native.standard_table(),
        "parameters": priors["parameters"], "year": int(year), "stations": list(stations),
        "time_step_s": float(time_step_s),
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_jsonable)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_sha256(path: PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def store_unit_responses(scenarios: Dict[str, Scenario], priors: Optional[dict] = None,
                         path: Optional[PathLike] = None, year: int = 2024,
                         stations: Optional[List[str]] = None,
                         time_step_s: float = 1800.0) -> Path:
    """Compute each scenario's unit responses with the engine (:func:`unit_responses`, one
    year-long run each) and write them, with their keys and provenance, to ``path``
    (default :func:`default_responses_path`), atomically."""
    pri = priors if priors is not None else load_baseline_priors()
    path = Path(path) if path is not None else default_responses_path()
    stations = list(stations) if stations is not None else list(pri["constraints"])
    cols = [f"{p['id']}.{sp}" for p in pri["parameters"] for sp in SPECIES]
    entries, species, networks = [], None, set()
    for name, sc in scenarios.items():
        resp = unit_responses(pri, scenario=sc, year=year, stations=stations, time_step_s=time_step_s)
        species = list(resp.attrs["species"])
        networks.add(sc.network.file)
        rows = [[st, sp, float(r["shipped_mg_l"]), *[float(r[c]) for c in cols]]
                for (st, sp), r in resp.iterrows()]
        entries.append({"name": name, "changes": [c.description for c in sc.changes],
                        "key": response_key(pri, sc, year, stations, time_step_s), "rows": rows})
    doc = {
        "format": RESPONSES_FORMAT, "version": RESPONSES_VERSION,
        "src": ("E: computed by the engine (qingshui.unit_responses, one year-long run with"
                " contributions per scenario); not a measurement"),
        "engine": _qingshui.__version__, "created": dt.date.today().isoformat(),
        "command": RESPONSES_COMMAND,
        "inputs": {os.path.basename(f): _file_sha256(f) for f in sorted(networks | {pri["_path"]})},
        "year": int(year), "time_step_s": float(time_step_s), "stations": stations,
        "species": species, "columns": ["station", "species", "shipped_mg_l", *cols],
        "scenarios": entries,
    }
    text = ("# Unit responses of the annual means to the 2023 baseline's free loads, computed by the\n"
            "# engine for the scenarios below (see qingshui.baseline, 'stored unit responses').\n"
            f"# Regenerate: {RESPONSES_COMMAND} (a year-long run per scenario). A table is used only\n"
            "# while its key matches the current network, priors, plan and engine.\n")
    text += yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None)
    _write_atomic(path, text)
    return path


def read_unit_responses(path: Optional[PathLike] = None) -> Dict[str, pd.DataFrame]:
    """The stored tables by key (each as :func:`unit_responses` returns it, its ``attrs``
    holding ``species``, ``year`` and the scenario's ``name``); ConfigError naming the
    file and the field if the file is malformed."""
    path = Path(path) if path is not None else default_responses_path()
    doc = _read_yaml(path)
    if not isinstance(doc, dict) or doc.get("format") != RESPONSES_FORMAT:
        raise _err(path, f"format must be {RESPONSES_FORMAT}")
    if doc.get("version") != RESPONSES_VERSION:
        raise _err(path, f"version {doc.get('version')!r} is not supported (this reader: {RESPONSES_VERSION})")
    cols, species = doc.get("columns"), doc.get("species")
    if (not isinstance(cols, list) or cols[:3] != ["station", "species", "shipped_mg_l"]
            or not isinstance(species, list)):
        raise _err(path, "columns must start station, species, shipped_mg_l, and species be a list")
    entries = doc.get("scenarios")
    if not isinstance(entries, list):
        raise _err(path, "scenarios: a list is required")
    out = {}
    for k, e in enumerate(entries):
        where = f"scenarios[{k}]"
        if not isinstance(e, dict) or not isinstance(e.get("key"), str) or not isinstance(e.get("rows"), list):
            raise _err(path, f"{where}: needs key and rows")
        for j, row in enumerate(e["rows"]):
            if not isinstance(row, list) or len(row) != len(cols):
                raise _err(path, f"{where}.rows[{j}]: {len(cols)} values are required")
            for c, v in zip(cols[2:], row[2:]):
                _finite(path, f"{where}.rows[{j}].{c}", v)
        table = pd.DataFrame(e["rows"], columns=cols).set_index(["station", "species"])
        table.attrs.update(species=list(species), year=int(doc.get("year", 0)), name=e.get("name"))
        out[e["key"]] = table
    return out


# The surrogate's annual means differ from full runs by up to 0.55% (measured on three
# members, 2026-12-07: the engine's positivity check makes the step slightly nonlinear in
# the loads near large outfalls); a member's class must hold for means 2% either side.
DEFAULT_MARGIN = 0.02


def fit_2023_baseline(members: int = 50, seed: int = 0, draws: int = 200_000,
                      priors: Optional[PathLike] = None, network: Optional[Network] = None,
                      responses: Optional[pd.DataFrame] = None,
                      margin: float = DEFAULT_MARGIN) -> BaselineEnsemble:
    """Sample the free loads from their ranges and keep the first ``members`` draws whose
    2023 annual classes meet every constraint (rejection sampling: the members are draws
    from the prior restricted to the constraints), with every annual mean scaled by
    1 - margin and 1 + margin giving the same class."""
    pri = load_baseline_priors(priors)
    if members < 1 or draws < members:
        raise _qingshui.ConfigError(f"fit_2023_baseline: need 1 <= members <= draws, got {members}, {draws}")
    if not 0.0 <= margin < 0.5:
        raise _qingshui.ConfigError(f"fit_2023_baseline: margin must be in [0, 0.5), got {margin!r}")
    resp = responses if responses is not None else unit_responses(pri, network)
    doc = Scenario(network or load_network()).document()
    cols = [f"{p['id']}.{sp}" for p in pri["parameters"] for sp in SPECIES]
    lo = np.array([p["low"][sp] for p in pri["parameters"] for sp in SPECIES])
    hi = np.array([p["high"][sp] for p in pri["parameters"] for sp in SPECIES])
    shipped = np.array([_shipped(doc, p)[sp] for p in pri["parameters"] for sp in SPECIES])
    rng = np.random.default_rng(seed)
    theta = lo + (hi - lo) * rng.random((draws, len(cols)))
    species = list(resp.attrs["species"])
    ok = np.ones(draws, dtype=bool)
    means = {}
    classes_of = list(resp.attrs["standard"]["classes"])
    for station, c in pri["constraints"].items():
        block = resp.loc[station].reindex(species)
        base = block["shipped_mg_l"].to_numpy()
        R = block[cols].to_numpy()  # species x parameters
        values = base[None, :] + (theta - shipped[None, :]) @ R.T
        want = classes_of.index(c["class"])
        for f in (1.0 - margin, 1.0 + margin):
            ok &= _class_index(values * f, resp.attrs["standard"], species) == want
        means[station] = values
    idx = np.flatnonzero(ok)
    if len(idx) < members:
        raise _qingshui.SolverError(
            f"fit_2023_baseline: {len(idx)} of {draws} draws meet the constraints, {members} wanted;"
            " widen the ranges only with a reason, or draw more")
    keep = idx[:members]
    out = pd.DataFrame(theta[keep], columns=cols)
    for station, values in means.items():
        for j, sp in enumerate(species):
            out[f"{station}.{sp}_mg_l"] = values[keep, j]
    return BaselineEnsemble(pri, out, draws, len(idx), resp)


def check_members(ensemble: BaselineEnsemble, members: List[int],
                  network: Optional[Network] = None) -> pd.DataFrame:
    """Run members in full (no surrogate) over the year: annual means and classes at the
    constrained stations, and the surrogate's means where the ensemble has them."""
    year = int(ensemble.priors["year"])
    rows = []
    for m in members:
        res = ensemble.scenario(m, network).run(dt.date(year, 1, 1), dt.date(year, 12, 31),
                                               contributions=False, fields=False)
        table = res.assess("year")
        for station, c in ensemble.priors["constraints"].items():
            r = table[table["station"] == station].iloc[0]
            row = {"member": m, "station": station, "class": r["class"], "required": c["class"]}
            for sp in SPECIES:
                row[f"{sp}_mg_l"] = r[f"{sp}_mg_l"]
                col = f"{station}.{sp}_mg_l"
                if col in ensemble.members:
                    row[f"{sp}_surrogate_mg_l"] = ensemble.members.at[m, col]
            rows.append(row)
    return pd.DataFrame(rows)


def _member_means(ensemble: BaselineEnsemble, resp: pd.DataFrame, stations: List[str],
                  doc: dict) -> Dict[str, np.ndarray]:
    """Annual means (members x species) at each station by the linear surrogate."""
    pri = ensemble.priors
    cols = ensemble.parameter_columns
    shipped = np.array([_shipped(doc, p)[sp] for p in pri["parameters"] for sp in SPECIES])
    theta = ensemble.members[cols].to_numpy()
    species = list(resp.attrs["species"])
    out = {}
    for station in stations:
        block = resp.loc[station].reindex(species)
        out[station] = block["shipped_mg_l"].to_numpy()[None, :] + (theta - shipped[None, :]) @ block[cols].to_numpy().T
    return out


def plan_2024(network: Optional[Network] = None, yongji_from: Optional[str] = "2024-07-01") -> Scenario:
    """The 2024 plan's measures on the Sushui as notebook 01 runs them (seed §2): the Yongji
    city plant to Class III effluent from ``yongji_from`` (E: the seed says only "in 2024";
    None: the whole year), the Chengxi and Linyi No. 2 plants "optimising processes", here
    to Class IV effluent (E) for the whole year."""
    return (Scenario(network, "2024 plan")
            .set_effluent("yongji_city_wwtp", from_date=yongji_from, COD=20, NH3N=1.0, TP=0.2)
            .set_effluent("chengxi_wwtp", COD=30, NH3N=1.5, TP=0.3)
            .set_effluent("linyi_shouchuang_2_wwtp", COD=30, NH3N=1.5, TP=0.3))


def without_each(plan: Scenario) -> Dict[str, Scenario]:
    """The plan less one of its changes, for each change: ``{"without <change>": scenario}``
    (each measure's contribution is the plan's answer against these)."""
    out = {}
    for k, change in enumerate(plan.changes):
        sc = plan.copy(f"{plan.name} without {change.description}")
        sc.changes = plan.changes[:k] + plan.changes[k + 1:]
        out[f"without {change.description}"] = sc
    return out


def plan_2024_scenarios(network: Optional[Network] = None) -> Dict[str, Scenario]:
    """Every scenario of the plan's question as notebook 01 and data/yuncheng/README.md ask
    it: the network without the plan, the plan, the plan less each measure, and the plan
    with the Yongji upgrade from January. The stored responses are these."""
    net = network if network is not None else load_network()
    plan = plan_2024(net)
    return {"without the plan": Scenario(net, "no plan"), "plan": plan, **without_each(plan),
            "with the Yongji upgrade from January": plan_2024(net, yongji_from=None)}


@dataclass
class PlanOutcome:
    """What a plan does on every member of the calibrated ensemble, by annual classes.

    probability: per station and scenario, P(annual class <= target) over the members.
    members: per member, station and scenario, the annual means and class.
    sensitivity: per parameter, the rank correlation (Spearman) of its value with each
    station's worst ratio to the target's limits under the plan — the unknown load the
    answer depends on most has the largest |value|.
    origin: per scenario, "stored" or "engine" (below).
    """

    year: int
    target: str
    probability: pd.DataFrame
    members: pd.DataFrame
    sensitivity: pd.DataFrame
    origin: pd.Series = field(default_factory=lambda: pd.Series(dtype=object))
    """Per scenario, where its unit responses came from: "stored" (the responses file, its
    key matching) or "engine" (computed by this call)."""


def plan_outcome(ensemble: BaselineEnsemble, plan: Scenario, year: int = 2024, target: str = "III",
                 stations: Optional[List[str]] = None,
                 without: Optional[Dict[str, Scenario]] = None,
                 time_step_s: float = 1800.0,
                 responses: Union[PathLike, None, bool] = None) -> PlanOutcome:
    """Run ``plan`` (and the network without it, and each scenario in ``without``, e.g.
    :func:`without_each` of it) over ``year`` on every member of ``ensemble`` and class the
    annual means. Each scenario needs its unit responses: one year-long contributions run
    (~15-30 s), or the stored table in ``responses`` (default
    :func:`default_responses_path`; False: always run) when its key is this scenario's,
    network's, priors', year's, stations', step's and engine's (:func:`response_key`).
    The members then follow by the linear surrogate (within 0.56% of full runs,
    2026-12-07). ``time_step_s`` is the runs' step (Scenario.run's default, 1800 s)."""
    stations = list(stations) if stations is not None else list(ensemble.priors["constraints"])
    scenarios = {"without the plan": Scenario(plan.network, "no plan"), "plan": plan}
    scenarios.update(without or {})
    stored: Dict[str, pd.DataFrame] = {}
    if responses is not False:
        path = Path(responses) if responses not in (None, True) else default_responses_path()
        if responses not in (None, True) or path.exists():
            stored = read_unit_responses(path)
    rows, prob, ratios, origin = [], {}, {}, {}
    for name, sc in scenarios.items():
        key = response_key(ensemble.priors, sc, year, stations, time_step_s) if stored else None
        if key in stored:
            resp, origin[name] = stored[key], "stored"
            resp.attrs["standard"] = sc.network._native.standard_table()
        else:
            resp, origin[name] = unit_responses(ensemble.priors, scenario=sc, year=year, stations=stations,
                                                time_step_s=time_step_s), "engine"
        std = resp.attrs["standard"]
        classes = list(std["classes"])
        if target not in classes:
            raise _qingshui.ConfigError(f"plan_outcome: unknown class {target!r} (classes: {classes})")
        species = list(resp.attrs["species"])
        means = _member_means(ensemble, resp, stations, sc.document())
        for station in stations:
            k = _class_index(means[station], std, species)
            prob[(station, name)] = float(np.mean(k <= classes.index(target)))
            for m in range(len(ensemble.members)):
                rows.append({"member": m, "station": station, "scenario": name,
                             "class": classes[k[m]] if k[m] < len(classes) else "劣V",
                             **{f"{sp}_mg_l": means[station][m, j] for j, sp in enumerate(species)}})
            if name == "plan":
                lim = np.array([std["indicators"][sp]["limits_mg_l"][classes.index(target)]
                                if sp in std["indicators"] and std["indicators"][sp]["sense"] == "max"
                                else np.inf for sp in species])
                ratios[station] = (means[station] / lim[None, :]).max(axis=1)
    probability = pd.Series(prob).unstack()[list(scenarios)]
    probability.index.name, probability.columns.name = "station", f"P(class <= {target})"
    sens = {}
    ranks = ensemble.members[ensemble.parameter_columns].rank()
    for station, r in ratios.items():
        rr = pd.Series(r).rank()
        sens[station] = ranks.apply(lambda col: np.corrcoef(col, rr)[0, 1] if col.std() > 0 else 0.0)
    sensitivity = pd.DataFrame(sens)
    return PlanOutcome(int(year), target, probability, pd.DataFrame(rows), sensitivity,
                       pd.Series(origin, name="unit responses"))
