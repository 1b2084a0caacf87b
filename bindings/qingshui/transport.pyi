"""Type stub of qingshui.transport, written by scripts/make_stubs.py from the built
extension; do not edit by hand."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Union, overload

import numpy
import pandas as pd

class FlowField:
    def __init__(self) -> None: ...
    times_s: list[float]
    states: list[FlowState]

class FlowState:
    """Hydraulic state of every segment at one time."""
    def __init__(self) -> None: ...
    flow_m3s: list[float]
    area_m2: list[float]
    lateral_inflow_m2s: list[float]
    lateral_outflow_m2s: list[float]
    headwater_inflow_m3s: list[float]
    lateral_concentration_g_m3: list[float]

class Forcing:
    """What differs between members sharing a flow field."""
    def __init__(self) -> None: ...
    boundaries: list[UpstreamBoundary]
    loads: list[PointLoad]
    initial_concentration_g_m3: list[float]
    initial_storage_g_m3: list[float]
    initial_sorbed_g_kg: list[float]
    initial_steady_state: bool
    initial_steady_time_s: float

class MassBalance:
    initial_mass_g: float
    final_mass_g: float
    boundary_inflow_g: float
    lateral_inflow_g: float
    point_load_g: float
    outlet_outflow_g: float
    flow_closure_g: float
    decay_main_g: float
    decay_storage_g: float
    storage_background_g: float
    reaction_g: float
    residual_g: float
    relative_error: float

class OtisDeck:
    dir: str
    title: str
    print_locations_m: list[float]
    solute_outputs: list[str]
    sorption_outputs: list[str]
    num_solutes: int
    print_option: int
    steady_state: bool
    num_segments: int

class PointLoad:
    @overload
    def __init__(self) -> None: ...
    @overload
    def __init__(self, segment: int, species: int, load_g_s: TimeSeries) -> None: ...
    segment: int
    species: int
    load_g_s: TimeSeries

class Segment:
    """One finite volume; downstream index > own index or -1."""
    def __init__(self) -> None: ...
    downstream: int
    length_m: float
    dispersion_m2s: float
    storage_area_m2: float
    exchange_per_s: float
    well_mixed: bool
    decay_per_s: list[float]
    storage_decay_per_s: list[float]
    sorption: list[Sorption]
    removal_fraction: list[float]

class Sorption:
    def __init__(self) -> None: ...
    main_rate_per_s: float
    storage_rate_per_s: float
    sediment_kg_per_m3: float
    kd_m3_per_kg: float
    storage_background_g_m3: float

class Station:
    @overload
    def __init__(self) -> None: ...
    @overload
    def __init__(self, segment: int, next_segment: int = -1, weight: float = 0.0) -> None: ...
    segment: int
    next_segment: int
    weight: float

class TimeSeries:
    @overload
    def __init__(self) -> None: ...
    @overload
    def __init__(self, times_s: list[float], values: list[float], interpolation: TimeSeries.Interpolation = ...) -> None: ...
    class Interpolation:
        STEP: Interpolation
        LINEAR: Interpolation
        value: int
        name: str
    @staticmethod
    def constant(value: float) -> TimeSeries: ...
    times_s: list[float]
    values: list[float]
    interpolation: TimeSeries.Interpolation
    def at(self, t_s: float) -> float: ...
    def average(self, t0_s: float, t1_s: float) -> float: ...

class TransportOptions:
    def __init__(self) -> None: ...
    class Advection:
        LIMITED_LAX_WENDROFF: Advection
        SSP_RK2: Advection
        value: int
        name: str
    advection: TransportOptions.Advection
    max_courant: float
    positive_implicit: bool
    adaptive_implicit: bool
    independent_members: bool
    reuse_factorizations: bool
    max_substeps: int
    num_threads: int
    steady_state: bool
    steady_tolerance: float
    max_steady_iterations: int
    store_fields: bool
    def is_valid(self) -> tuple: ...

class TransportProblem:
    def __init__(self) -> None: ...
    num_species: int
    segments: list[Segment]
    flow: FlowField
    temperature_c: TimeSeries
    theta: list[float]
    reaction_matrix_per_s: list[float]
    members: list[Forcing]
    start_time_s: float
    end_time_s: float
    time_step_s: float
    output_times_s: list[float]
    stations: list[Station]

class TransportResult:
    num_members: int
    num_times: int
    num_segments: int
    num_species: int
    num_stations: int
    summary: TransportSummary
    times_s: numpy.ndarray
    concentration_g_m3: numpy.ndarray
    storage_g_m3: numpy.ndarray
    sorbed_g_kg: numpy.ndarray
    station_concentration_g_m3: numpy.ndarray
    station_storage_g_m3: numpy.ndarray
    station_sorbed_g_kg: numpy.ndarray

class TransportSolver:
    def __init__(self, options: TransportOptions = ...) -> None: ...
    def run(self, problem: TransportProblem) -> TransportResult: ...

class TransportSummary:
    num_steps: int
    advection_substeps: int
    max_advection_substeps: int
    implicit_substeps: int
    max_implicit_substeps: int
    max_courant_requested: float
    steady_iterations: int
    mass_balance: list[MassBalance]
    max_relative_mass_error: float
    wall_time_s: float
    def brief_report(self) -> str: ...

class UpstreamBoundary:
    def __init__(self) -> None: ...
    class Kind:
        CONCENTRATION: Kind
        MASS_FLUX: Kind
        OTIS_FLUX: Kind
        value: int
        name: str
    segment: int
    kind: UpstreamBoundary.Kind
    series: list[TimeSeries]

def format_otis_outputs(deck: OtisDeck, result: TransportResult) -> dict: ...

def otis_options(deck: OtisDeck) -> TransportOptions: ...

def otis_problem(deck: OtisDeck) -> TransportProblem: ...

def read_otis_deck(deck_dir: str) -> OtisDeck: ...

@dataclass
class OtisRun:
    deck: OtisDeck
    result: TransportResult
    def concentrations(self, solute: int = ...) -> pd.DataFrame: ...
    def storage(self, solute: int = ...) -> pd.DataFrame: ...
    def outputs(self) -> Dict[str, str]: ...

def run_otis(deck_dir: Union[str, 'os.PathLike[str]']) -> OtisRun: ...

__all__: list[str]
