"""The transport engine: advection, dispersion, transient storage, sorption and reactions.

The classes come straight from the C++ engine (``TransportProblem``, ``TransportSolver``,
...); see docs/methods.md for the equations. Results are read-only numpy views shaped
``(member, time, segment | station, species)`` in g/m³ (= mg/L), shared with the engine
without copying.

:func:`run_otis` runs a USGS OTIS input deck and returns its print locations as tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Dict, Union

import numpy as np
import pandas as pd

from ._qingshui import transport as _t

FlowField = _t.FlowField
FlowState = _t.FlowState
Forcing = _t.Forcing
MassBalance = _t.MassBalance
OtisDeck = _t.OtisDeck
PointLoad = _t.PointLoad
Segment = _t.Segment
Sorption = _t.Sorption
Station = _t.Station
TimeSeries = _t.TimeSeries
TransportOptions = _t.TransportOptions
TransportProblem = _t.TransportProblem
TransportResult = _t.TransportResult
TransportSolver = _t.TransportSolver
TransportSummary = _t.TransportSummary
UpstreamBoundary = _t.UpstreamBoundary
read_otis_deck = _t.read_otis_deck
otis_problem = _t.otis_problem
otis_options = _t.otis_options

__all__ = [
    "FlowField", "FlowState", "Forcing", "MassBalance", "OtisDeck", "OtisRun", "PointLoad",
    "Segment", "Sorption", "Station", "TimeSeries", "TransportOptions", "TransportProblem",
    "TransportResult", "TransportSolver", "TransportSummary", "UpstreamBoundary",
    "otis_options", "otis_problem", "read_otis_deck", "run_otis",
]


@dataclass
class OtisRun:
    """A solved OTIS deck.

    Attributes
    ----------
    deck : OtisDeck
    result : TransportResult
        The engine's result; ``result.summary`` holds the mass balance.
    """

    deck: OtisDeck
    result: TransportResult

    def concentrations(self, solute: int = 0) -> pd.DataFrame:
        """Main-channel concentration at each print location: index ``time_h``, one column
        per location named by its distance in metres."""
        return self._frame(self.result.station_concentration_g_m3, solute)

    def storage(self, solute: int = 0) -> pd.DataFrame:
        """Storage-zone concentration at each print location (same layout)."""
        return self._frame(self.result.station_storage_g_m3, solute)

    def outputs(self) -> Dict[str, str]:
        """The output files OTIS would write, ``{name: contents}``."""
        return _t.format_otis_outputs(self.deck, self.result)

    def _frame(self, values: np.ndarray, solute: int) -> pd.DataFrame:
        if not 0 <= solute < self.deck.num_solutes:
            raise IndexError(f"solute {solute} out of range (deck has {self.deck.num_solutes})")
        columns = [f"{x:g} m" for x in self.deck.print_locations_m]
        index = pd.Index(np.asarray(self.result.times_s) / 3600.0, name="time_h")
        return pd.DataFrame(np.array(values[0, :, :, solute]), index=index, columns=columns)


def run_otis(deck_dir: Union[str, "os.PathLike[str]"]) -> OtisRun:
    """Read and solve an OTIS deck (the folder holding ``control.inp``).

    Raises
    ------
    qingshui.ConfigError
        The deck is malformed or uses a feature the reader cannot honour (names file, line).
    """
    deck = _t.read_otis_deck(os.fspath(deck_dir))
    solver = _t.TransportSolver(_t.otis_options(deck))
    return OtisRun(deck=deck, result=solver.run(_t.otis_problem(deck)))
