"""Hydraulics of a network as pandas tables: one row per segment for a day, and unsteady
routing over days as numpy arrays (time × segment).

>>> import qingshui as qs
>>> df = qs.hydraulics(date="2024-04-15")          # built-in Yuncheng network, dry season
>>> df.loc[df.reach == "sushui_lower", ["km_end", "flow_m3s", "velocity_ms"]]
>>> df.attrs["balance"]["residual_m3s"]
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import pandas as pd

from . import _qingshui
from .network import Network, load_network

NetworkLike = Union[Network, str, "os.PathLike[str]", None]


def _native(network: NetworkLike):
    if isinstance(network, Network):
        return network._native
    return load_network(network)._native


def hydraulics(
    network: NetworkLike = None,
    date: str = "",
    season: Optional[str] = None,
    rain: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> pd.DataFrame:
    """Steady hydraulics of one day, one row per segment (upstream-first).

    Parameters
    ----------
    network : qingshui.Network, path or None
        The network (default: the built-in Yuncheng network).
    date : str
        ``YYYY-MM-DD``; decides which sources run and, unless ``season`` is given, the
        season (``wet`` = June-September).
    season : str, optional
        Headwater and lateral-flow season, e.g. ``"dry"`` or ``"wet"``.
    rain : path, optional
        Daily rain per catchment (CSV ``date,<catchment>,...``); adds the day's runoff and
        combined-sewer overflows.

    Returns
    -------
    pandas.DataFrame
        Columns ``segment, reach, km_start, km_end, flow_m3s, depth_m, velocity_ms,
        dispersion_m2s, ...`` (units in the names). ``attrs`` holds ``balance`` (the
        network's volume balance, m³/s), ``sources`` (a DataFrame: which sources run and
        why), ``units``, ``date``, ``season``, ``warnings`` and ``report``.

    Raises
    ------
    qingshui.ConfigError
        Invalid date or season, or a season the network has no data for.
    qingshui.DataError
        A rain file with gaps, negative or missing values.
    """
    result = _qingshui.daily_hydraulics(
        _native(network), date, season or "", os.fspath(rain) if rain is not None else ""
    )
    data = {}
    units = {}
    for column in result["columns"]:
        values = column["values"]
        data[column["name"]] = (
            np.asarray(values, dtype=np.int64) if column["integer"] else values
        )
        units[column["name"]] = column["unit"]
    frame = pd.DataFrame(data)
    frame.attrs["balance"] = dict(result["balance"])
    frame.attrs["sources"] = pd.DataFrame(result["sources"])
    frame.attrs["units"] = units
    frame.attrs["date"] = result["date"]
    frame.attrs["season"] = result["season"]
    frame.attrs["warnings"] = list(result["warnings"])
    frame.attrs["report"] = result["report"]
    return frame


@dataclass
class RoutedFlow:
    """Q(x,t) and A(x,t) from unsteady routing: arrays of shape (times, segments)."""

    times_s: np.ndarray
    flow_m3s: np.ndarray
    area_m2: np.ndarray
    relative_volume_error: float
    report: str


def route_days(
    network: NetworkLike = None,
    dates: Sequence[str] = (),
    time_step_s: float = 3600.0,
    output_interval_s: float = 3600.0,
    rain: Optional[Union[str, "os.PathLike[str]"]] = None,
) -> RoutedFlow:
    """Route consecutive days (kinematic wave) from the first day's steady state.

    Each day's inflows (sources, runoff and overflows when ``rain`` is given) are held for
    the day. Lakes with a ``levels`` table are level pools. See docs/hydraulics.md.
    """
    r = _qingshui.route_days(
        _native(network),
        list(dates),
        time_step_s,
        output_interval_s,
        os.fspath(rain) if rain is not None else "",
    )
    n = r["num_segments"]
    times = np.asarray(r["times_s"])
    return RoutedFlow(
        times_s=times,
        flow_m3s=np.asarray(r["flow_m3s"]).reshape(len(times), n),
        area_m2=np.asarray(r["area_m2"]).reshape(len(times), n),
        relative_volume_error=r["relative_volume_error"],
        report=r["report"],
    )


def catchments(network: NetworkLike = None) -> pd.DataFrame:
    """Rain catchments: ``id, name, reach, km_from, km_to, area_km2, curve_number, ...``."""
    rows = _qingshui.catchment_rows(_native(network))
    columns = ["id", "name", "reach", "km_from", "km_to", "area_km2", "curve_number"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=columns)


def scs_runoff_mm(rain_mm: float, curve_number: float, initial_abstraction_ratio: float = 0.2) -> float:
    """SCS curve-number runoff depth (mm) for a day's rain (mm)."""
    return _qingshui.scs_runoff_mm(rain_mm, curve_number, initial_abstraction_ratio)


def dispersion_coefficient(
    formula: str, velocity_ms: float, depth_m: float, width_m: float, shear_velocity_ms: float
) -> float:
    """Longitudinal dispersion (m²/s): ``fischer``, ``kashefipour_falconer`` or ``deng``."""
    return _qingshui.dispersion_coefficient(formula, velocity_ms, depth_m, width_m, shear_velocity_ms)
