"""River networks as pandas tables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import pandas as pd

from . import _qingshui

PathLike = Union[str, "os.PathLike[str]"]


def default_network_path() -> Path:
    """Path of the built-in Yuncheng network (``$QINGSHUI_NETWORK`` overrides it)."""
    env = os.environ.get("QINGSHUI_NETWORK")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "data" / "yuncheng" / "network.yaml"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "data/yuncheng/network.yaml not found above the qingshui package; "
        "set QINGSHUI_NETWORK or pass a path"
    )


class Network:
    """A validated river network.

    Tables are returned as :class:`pandas.DataFrame`; river positions are river-km, flows
    m³/s, concentrations mg/L (the unit is in each column name).

    Parameters
    ----------
    native : _qingshui.Network
        The engine's network; use :func:`load_network` to make one.
    """

    def __init__(self, native: "_qingshui.Network"):
        self._native = native

    @property
    def name(self) -> str:
        """Network name from the file."""
        return self._native.name

    @property
    def file(self) -> str:
        """Path the network was read from."""
        return self._native.file

    def sources(self) -> pd.DataFrame:
        """Point sources: ``id, name, kind, reach, km, design_flow_m3s, <species>_mg_l, ...``."""
        return _frame(self._native.source_rows(), ["id", "name", "kind", "reach", "km"])

    def stations(self) -> pd.DataFrame:
        """Monitoring stations: ``id, name, kind, reach, km, sampling_interval_h, ...``."""
        return _frame(self._native.station_rows(), ["id", "name", "kind", "reach", "km"])

    def reaches(self) -> pd.DataFrame:
        """Reaches: ``id, name, length_km, downstream, river, start_km, end_km, ...``."""
        return _frame(self._native.reach_rows(), ["id", "name", "length_km", "downstream"])

    def lakes(self) -> pd.DataFrame:
        """Lakes: ``id, name, role, area_km2, mean_depth_m, volume_m3, downstream, rule``."""
        return _frame(self._native.lake_rows(), ["id", "name", "role"])

    def species(self) -> pd.DataFrame:
        """Species: ``id, name, unit, decay_per_day_20c, theta``."""
        return _frame(self._native.species_rows(), ["id", "name", "unit"])

    def provenance(self) -> pd.DataFrame:
        """Every number's provenance: ``path, line, kind (S/M/E/?), text``."""
        return pd.DataFrame(self._native.provenance_rows(), columns=["path", "line", "kind", "text"])

    def upstream_sources(self, station: str) -> pd.DataFrame:
        """Sources whose water passes ``station``, nearest first, with river distance in km."""
        rows = self._native.upstream_candidates(station)
        return pd.DataFrame(rows, columns=["source", "distance_km"])

    def summary(self) -> str:
        """The summary that ``qingshui check`` prints."""
        return self._native.summary_text()

    def to_yaml(self) -> str:
        """The network in the documented YAML format, provenance kept."""
        return _qingshui.write_network_yaml(self._native)

    def __repr__(self) -> str:
        return (
            f"<qingshui.Network {self.name!r}: {len(self._native.reach_rows())} reaches, "
            f"{len(self._native.source_rows())} sources, {len(self._native.station_rows())} stations>"
        )


def _frame(rows: list, leading: list) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=leading)
    rest = [c for c in frame.columns if c not in leading]
    return frame[leading + rest]


def load_network(path: PathLike | None = None) -> Network:
    """Read and validate a network file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The YAML file (docs/network-format.md). Default: the built-in Yuncheng network.

    Returns
    -------
    Network

    Raises
    ------
    qingshui.ConfigError
        The file is invalid; the message names the file, line and field, exactly as
        ``qingshui check`` prints it.
    """
    if path is None:
        path = default_network_path()
    return Network(_qingshui.load_network(os.fspath(path)))
