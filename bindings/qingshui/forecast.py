"""The daily forecast: run it, read its file (docs/formats/forecast.md) with xarray, and
get the summary table as pandas.

>>> import qingshui as qs
>>> ds = qs.run_forecast(out="forecast.h5", members=50)    # shipped demo inputs
>>> ds = qs.read_forecast("forecast.h5")                    # an xarray.Dataset
>>> ds.quantiles.sel(station="miaoqian", species="TP", quantile=0.5)
>>> qs.forecast_summary(ds)                                 # station, day, class, ...
>>> qs.exceedance_table(ds)                                 # P(worse than III), station x day
"""

from __future__ import annotations

import logging
import os
from typing import Optional, Union

import numpy as np
import pandas as pd

from . import _qingshui

PathLike = Union[str, "os.PathLike[str]"]

#: The file format this reader understands (major version; minor versions only add).
FORMAT_MAJOR = 1

_log = logging.getLogger("qingshui")


def read_forecast(path: PathLike):
    """Open a forecast file as an :class:`xarray.Dataset` (engine ``h5netcdf``).

    Checks the root attributes ``filetype == "qingshui-forecast"`` and the major
    ``version``; raises :class:`qingshui.DataError` otherwise. Times are decoded to UTC
    ``datetime64``; ``time_local`` holds the local (UTC+8) times as text.
    """
    import xarray as xr

    ds = xr.open_dataset(os.fspath(path), engine="h5netcdf")
    filetype = ds.attrs.get("filetype")
    if isinstance(filetype, bytes):
        filetype = filetype.decode()
    if filetype != "qingshui-forecast":
        ds.close()
        raise _qingshui.DataError(f"{os.fspath(path)}: filetype is {filetype!r}, expected 'qingshui-forecast'")
    version = np.atleast_1d(ds.attrs.get("version", [0]))
    if int(version[0]) != FORMAT_MAJOR:
        ds.close()
        raise _qingshui.DataError(
            f"{os.fspath(path)}: forecast file version {'.'.join(str(int(v)) for v in version)}; "
            f"this reader understands {FORMAT_MAJOR}.x"
        )
    return ds


def forecast_summary(ds) -> pd.DataFrame:
    """The summary table of a forecast dataset, one row per station and day: predicted
    class (median of the members' daily classes) and its probability, P(worse than Class
    III), the main pollutants and the top source of the deciding indicator."""
    rows = []
    p_iii = ds.p_class_worse.sel(limit_class="III")
    for station in ds.station.values:
        for day in ds.day.values:
            sel = dict(station=station, day=day)
            main = str(ds.main_pollutants.sel(**sel).values)
            rows.append(
                {
                    "station": str(station),
                    "day": str(day),
                    "class": str(ds.daily_class.sel(**sel).values),
                    "class_probability": float(ds.daily_class_probability.sel(**sel)),
                    "p_worse_than_iii": float(p_iii.sel(**sel)),
                    "main_pollutants": main.split(",") if main else [],
                    "top_source": str(ds.top_source.sel(**sel).values) or None,
                }
            )
    return pd.DataFrame(rows)


def exceedance_table(ds, limit_class: str = "III", species: Optional[str] = None,
                     names: bool = False) -> pd.DataFrame:
    """Probability of exceeding a class, one row per station and a column per forecast day.

    Parameters
    ----------
    ds : xarray.Dataset
        A forecast opened with :func:`read_forecast`.
    limit_class : str
        ``"III"`` (default): P(daily class worse than Class III), the file's
        ``p_class_worse``. One of ``I`` ... ``V``.
    species : str, optional
        Instead of the daily class: P(the species' daily mean worse than its
        ``limit_class`` limit), the file's ``daily_p_exceed`` (NaN where the standard has
        no limit).
    names : bool
        Index by ``"station (中文名)"`` instead of the station id.

    Returns
    -------
    pandas.DataFrame
        Stations in the file's order (index ``station``), days ``YYYY-MM-DD`` as columns,
        values in [0, 1].
    """
    classes = [str(c) for c in ds.limit_class.values]
    if str(limit_class) not in classes:
        raise _qingshui.ConfigError(f"exceedance_table: unknown limit_class {limit_class!r} (known: {', '.join(classes)})")
    if species is None:
        data = ds.p_class_worse.sel(limit_class=limit_class)
    else:
        known = [str(s) for s in ds.species.values]
        if str(species) not in known:
            raise _qingshui.ConfigError(f"exceedance_table: unknown species {species!r} (known: {', '.join(known)})")
        data = ds.daily_p_exceed.sel(limit_class=limit_class, species=species)
    table = data.transpose("station", "day").to_pandas()
    table.index = pd.Index([str(s) for s in table.index], name="station")
    table.columns = pd.Index([str(d) for d in table.columns], name="day")
    if names and "station_name_zh" in ds:
        zh = {str(k): str(v) for k, v in ds.station_name_zh.to_pandas().items()}
        table.index = pd.Index([f"{s} ({zh.get(s, '')})" for s in table.index], name="station")
    return table


def run_forecast(
    network: Optional[PathLike] = None,
    inputs: Optional[PathLike] = None,
    start: Optional[str] = None,
    days: Optional[int] = None,
    members: Optional[int] = None,
    seed: Optional[int] = None,
    threads: int = 0,
    out: PathLike = "forecast.h5",
    hindcast_days: Optional[int] = None,
):
    """Run the forecast as ``qingshui forecast`` does and return the written file, opened
    with :func:`read_forecast`. Warnings and the defaults used go to the ``qingshui``
    logger (and are in the file's attributes)."""
    from .network import default_network_path

    result = _qingshui.forecast_run(
        os.fspath(network) if network else "",
        os.fspath(inputs) if inputs else "",
        os.fspath(default_network_path()),
        start or "",
        days,
        members,
        hindcast_days,
        seed,
        int(threads),
        os.fspath(out),
    )
    for line in result["defaults_used"]:
        _log.info("forecast default: %s", line)
    for w in result["warnings"]:
        _log.warning("forecast warning[%s] %s: %s", w["code"], w["where"], w["message"])
    return read_forecast(result["path"])


def read_observations(path: PathLike) -> pd.DataFrame:
    """Observations in the forecast's long form (CSV ``time,station,species,value[,flag]``
    or the same as HDF5 datasets) as a DataFrame with UTC ``time``."""
    path = os.fspath(path)
    if path.endswith((".h5", ".hdf5")):
        # The engine's reader: it checks the file before libhdf5 walks it and reads it in a
        # child process, so that a corrupt file is a DataError, never a crash of Python.
        cols = _qingshui.forecast_read_observations_hdf5(path)
        df = pd.DataFrame({
            "time": pd.to_datetime(np.asarray(cols["time_utc_s"], dtype="int64"), unit="s", utc=True),
            "station": cols["station"], "species": cols["species"],
            "value": np.asarray(cols["value"], dtype=float), "flag": cols["flag"]})
        return df
    else:
        df = pd.read_csv(path, comment="#", dtype={"flag": str}, keep_default_na=False, na_values={"value": [""]})
    df["time"] = pd.to_datetime(df["time"], utc=True)
    return df
