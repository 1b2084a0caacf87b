"""Calibration against observations, load allocation for section targets and source
apportionment (docs/calibration.md).

>>> import qingshui as qs
>>> fit = qs.calibrate("study.yaml")               # parameters, priors, weights, observations
>>> fit.estimates, fit.correlation
>>> fig = fit.plot_residuals("residuals.png")
>>> alloc = qs.allocate()                          # data/yuncheng/allocation.yaml
>>> alloc.limits, alloc.verified_probability
>>> shares = qs.apportion(date="2024-05-15", steady=True)
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import _qingshui
from .network import Network, default_network_path, load_network

PathLike = Union[str, "os.PathLike[str]"]
NetworkLike = Union[Network, PathLike, None]


def _network(network: NetworkLike) -> Network:
    return network if isinstance(network, Network) else load_network(network)


@dataclass
class CalibrationResult:
    """Estimates with standard errors, their correlation matrix and the residuals."""

    estimates: pd.DataFrame  # parameter, kind, reach, species, initial, estimate, std_error, ...
    correlation: pd.DataFrame  # parameter x parameter
    residuals: pd.DataFrame  # time, station, species, observed, simulated, weight, residual
    converged: bool
    residual_sd: float
    report: str
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)

    def plot_residuals(self, path: Optional[PathLike] = None):
        """Observed against simulated per station and species, and the weighted residuals
        over time. Returns the matplotlib Figure (Agg backend); saves it to ``path`` if given."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        r = self.residuals
        groups = list(r.groupby(["station", "species"], sort=True))
        fig, axes = plt.subplots(len(groups), 2, figsize=(10, 2.6 * len(groups)), squeeze=False)
        for row, ((station, species), g) in enumerate(groups):
            ax = axes[row][0]
            ax.plot(g["time"], g["observed"], "o", ms=3, label="observed")
            ax.plot(g["time"], g["simulated"], "-", label="simulated")
            ax.set_title(f"{station} {species}")
            ax.set_ylabel("mg/L")
            ax.legend(fontsize=7)
            ax = axes[row][1]
            ax.axhline(0.0, color="grey", lw=0.8)
            ax.plot(g["time"], g["weighted_residual"], ".", ms=4)
            ax.set_title("weighted residual (simulated - observed)")
        fig.autofmt_xdate()
        fig.tight_layout()
        if path is not None:
            fig.savefig(os.fspath(path), dpi=100)
        return fig


def _resolve_config(config: Union[PathLike, Dict[str, Any]]) -> tuple:
    """A path, or a dict written to a temporary YAML file (relative paths in it are taken
    relative to the current directory)."""
    if not isinstance(config, dict):
        return os.fspath(config), None
    import yaml

    cfg = dict(config)
    for key in ("observations", "network"):
        if key in cfg and not os.path.isabs(os.fspath(cfg[key])):
            cfg[key] = os.path.abspath(os.fspath(cfg[key]))
    tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False, encoding="utf-8")
    yaml.safe_dump(cfg, tmp, allow_unicode=True)
    tmp.close()
    return tmp.name, tmp.name


def calibrate(config: Union[PathLike, Dict[str, Any]], network: NetworkLike = None) -> CalibrationResult:
    """Fit transport parameters of a network to observed concentrations.

    Parameters
    ----------
    config : path or dict
        A calibration file (docs/calibration.md §2.3): ``simulation`` (start_date, days,
        time_step_s, ...), ``parameters`` (kind = dispersion_m2s, storage_area_ratio,
        exchange_per_s, decay_per_day or velocity_factor; reach, species, initial, lower,
        upper, prior {mean, sd}), ``weights`` (stations, species), ``releases`` (tracer
        injections) and ``observations`` (CSV ``time,station,species,value`` with ISO 8601
        times carrying an offset).
    network : qingshui.Network or path, optional
        Default: the network the file names, else the built-in Yuncheng network.

    Raises
    ------
    qingshui.ConfigError, qingshui.DataError
        Bad configuration or observations (file, line and field named).
    """
    path, tmp = _resolve_config(config)
    try:
        if network is None:
            import yaml

            with open(path, encoding="utf-8") as f:
                named = (yaml.safe_load(f) or {}).get("network")
            if named:
                named = named["value"] if isinstance(named, dict) else named
                network = named if os.path.isabs(named) else os.path.join(os.path.dirname(path), named)
        d = _qingshui.calibrate_file(_network(network)._native, path)
    finally:
        if tmp:
            os.unlink(tmp)
    n = len(d["names"])
    est = pd.DataFrame(
        {
            "parameter": d["names"],
            "kind": d["kind"],
            "reach": d["reach"],
            "species": d["species"],
            "initial": d["initial"],
            "estimate": d["estimate"],
            "std_error": d["std_error"],
            "lower": d["lower"],
            "upper": d["upper"],
            "at_bound": d["at_bound"],
        }
    )
    corr = pd.DataFrame(np.asarray(d["correlation"]).reshape(n, n), index=d["names"], columns=d["names"])
    start = pd.Timestamp(d["start_date"] + "T00:00:00+08:00")
    t = np.asarray(d["obs_time_s"])
    obs, sim, w = (np.asarray(d[k]) for k in ("observed", "simulated", "weight"))
    res = pd.DataFrame(
        {
            "time": start + pd.to_timedelta(t, unit="s"),
            "time_s": t,
            "station": d["obs_station"],
            "species": d["obs_species"],
            "observed": obs,
            "simulated": sim,
            "weight": w,
            "weighted_residual": np.sqrt(w) * (sim - obs),
        }
    )
    return CalibrationResult(est, corr, res, d["converged"], d["residual_sd"], d["report"], d)


@dataclass
class AllocationResult:
    """Effluent limits, targets (quantile, margin, shadow price) and the forward check."""

    limits: pd.DataFrame
    targets: pd.DataFrame
    feasible: bool
    message: str
    objective: float
    objective_unit: str
    probability: float
    verified_probability: float
    verified_interval: tuple
    current_probability: float
    notes: list
    report: str
    raw: Dict[str, Any] = field(repr=False, default_factory=dict)


def allocate(
    config: Optional[PathLike] = None,
    network: NetworkLike = None,
    scenarios: Optional[int] = None,
    verify: Optional[int] = None,
    probability: Optional[float] = None,
) -> AllocationResult:
    """Effluent limits that meet section targets with a probability, at least removal/cost.

    Parameters
    ----------
    config : path, optional
        Allocation file (docs/calibration.md §3.3); default ``data/yuncheng/allocation.yaml``
        beside the default network: Zhangliuzhuang, Class III for COD, NH3-N and TP with
        90% probability in a dry-season month (May 2024), the Sushui plants controllable.
    scenarios, verify, probability : optional
        Override the number of optimization scenarios, of forward Monte Carlo runs, and the
        probability.

    Returns
    -------
    AllocationResult
        ``limits`` (source, species, current_mg_l, limit_mg_l, technical_min_mg_l,
        removal_kg_d, ...), ``targets`` (limit, quantile, margin, binding, shadow_price,
        verified_probability), ``verified_probability`` with its 95% interval from fresh
        scenarios run through the full model.
    """
    if config is None:
        config = Path(default_network_path()).parent / "allocation.yaml"
    d = _qingshui.allocate_file(
        _network(network)._native,
        os.fspath(config),
        -1 if scenarios is None else int(scenarios),
        -1 if verify is None else int(verify),
        -1.0 if probability is None else float(probability),
    )
    return AllocationResult(
        limits=pd.read_csv(io.StringIO(d["limits_csv"])),
        targets=pd.read_csv(io.StringIO(d["targets_csv"])),
        feasible=d["feasible"],
        message=d["message"],
        objective=d["objective"],
        objective_unit=d["objective_unit"],
        probability=d["probability"],
        verified_probability=d["verified_probability"],
        verified_interval=tuple(d["verified_interval"]),
        current_probability=d["current_probability"],
        notes=list(d["notes"]),
        report=d["report"],
        raw=d,
    )


def apportion(
    network: NetworkLike = None,
    date: str = "",
    days: int = 1,
    steady: bool = False,
    stations: Optional[Sequence[str]] = None,
    contributors: Optional[Sequence[str]] = None,
    time_step_s: float = 1800.0,
    output_interval_s: float = 3600.0,
    season: str = "",
) -> pd.DataFrame:
    """Contribution of every source (and diffuse inflow, headwater) to each station.

    The contributions add up to the simulated concentration exactly (Euler decomposition
    of the homogeneous transport map, docs/calibration.md §4). ``steady=True`` gives the
    steady state of the first day (monthly means under steady conditions).

    Returns
    -------
    pandas.DataFrame
        Long form: ``time_s, station, species, contributor, concentration_mg_l, share``.
        ``attrs``: ``max_closure_error`` (before reconciliation, relative), ``total`` (a
        DataFrame of the simulated concentrations).
    """
    d = _qingshui.apportion(
        _network(network)._native,
        date,
        int(days),
        bool(steady),
        float(time_step_s),
        float(output_interval_s),
        list(contributors or []),
        season,
    )
    c = np.asarray(d["contribution"])  # contributor, time, station, species
    total = np.asarray(d["total"])
    names, times, st, sp = d["contributors"], np.asarray(d["times_s"]), d["stations"], d["species"]
    idx = pd.MultiIndex.from_product([names, times, st, sp], names=["contributor", "time_s", "station", "species"])
    df = pd.DataFrame({"concentration_mg_l": c.reshape(-1)}, index=idx).reset_index()
    tot = pd.DataFrame(
        {"total_mg_l": total.reshape(-1)},
        index=pd.MultiIndex.from_product([times, st, sp], names=["time_s", "station", "species"]),
    ).reset_index()
    df = df.merge(tot, on=["time_s", "station", "species"])
    with np.errstate(invalid="ignore", divide="ignore"):
        df["share"] = np.where(df["total_mg_l"] != 0, df["concentration_mg_l"] / df["total_mg_l"], np.nan)
    if stations is not None:
        df = df[df["station"].isin(list(stations))]
    df = df[["time_s", "station", "species", "contributor", "concentration_mg_l", "share"]].reset_index(drop=True)
    df.attrs["max_closure_error"] = d["max_closure_error"]
    df.attrs["total"] = tot
    return df


def estimate_otis(deck_dir: PathLike) -> pd.DataFrame:
    """OTIS-P estimation of a deck: one row per reach with data and estimated parameter
    (``reach, parameter, estimate, std_error``, OTIS's parameter names). ``attrs['report']``
    has the fit summary."""
    d = _qingshui.estimate_otis(os.fspath(deck_dir))
    df = pd.read_csv(io.StringIO(d["estimates_csv"]))
    df.attrs["report"] = d["report"]
    df.attrs["reaches"] = d["reaches"]
    return df
