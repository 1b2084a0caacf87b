from os import PathLike
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Sequence, TypeVar, Union

import pandas as pd
import xarray as xr

from . import baseline as baseline
from . import calibration as calibration
from . import forecast as forecast
from . import hydro as hydro
from . import network as network
from . import plot as plot
from . import scenario as scenario
from . import tracing as tracing
from . import transport as transport
from .baseline import (
    BaselineEnsemble as BaselineEnsemble,
    PlanOutcome as PlanOutcome,
    plan_outcome as plan_outcome,
    plan_2024 as plan_2024,
    read_unit_responses as read_unit_responses,
    store_unit_responses as store_unit_responses,
    check_members as check_members,
    fit_2023_baseline as fit_2023_baseline,
    load_baseline_priors as load_baseline_priors,
    read_baseline_ensemble as read_baseline_ensemble,
)
from .scenario import Result as Result, Scenario as Scenario

_T = TypeVar("_T")

def progress(
    iterable: Iterable[_T], desc: str = ..., total: Optional[int] = ..., bar: Optional[bool] = ...
) -> Iterator[_T]: ...
def run_all(scenarios: Iterable[Scenario], start: Any, end: Any, **options: Any) -> Dict[str, Result]: ...
from .transport import OtisRun, run_otis as run_otis

__version__: str

class Error(Exception): ...
class ConfigError(Error): ...
class DataError(Error): ...
class SolverError(Error): ...

class Network:
    @property
    def name(self) -> str: ...
    @property
    def file(self) -> str: ...
    def sources(self) -> pd.DataFrame: ...
    def stations(self) -> pd.DataFrame: ...
    def reaches(self) -> pd.DataFrame: ...
    def lakes(self) -> pd.DataFrame: ...
    def species(self) -> pd.DataFrame: ...
    def provenance(self) -> pd.DataFrame: ...
    def upstream_sources(self, station: str) -> pd.DataFrame: ...
    def summary(self) -> str: ...
    def to_yaml(self) -> str: ...

def default_network_path() -> Path: ...
def load_network(path: Optional[Union[str, PathLike[str]]] = ...) -> Network: ...
def normal_depth(
    flow_m3s: float, bottom_width_m: float, side_slope: float, manning_n: float, bed_slope: float
) -> dict: ...

from .hydro import RoutedFlow as RoutedFlow

def hydraulics(
    network: Union[Network, str, PathLike[str], None] = ...,
    date: str = ...,
    season: Optional[str] = ...,
    rain: Optional[Union[str, PathLike[str]]] = ...,
) -> pd.DataFrame: ...
def route_days(
    network: Union[Network, str, PathLike[str], None] = ...,
    dates: Sequence[str] = ...,
    time_step_s: float = ...,
    output_interval_s: float = ...,
    rain: Optional[Union[str, PathLike[str]]] = ...,
) -> RoutedFlow: ...
def catchments(network: Union[Network, str, PathLike[str], None] = ...) -> pd.DataFrame: ...
def scs_runoff_mm(rain_mm: float, curve_number: float, initial_abstraction_ratio: float = ...) -> float: ...
def dispersion_coefficient(
    formula: str, velocity_ms: float, depth_m: float, width_m: float, shear_velocity_ms: float
) -> float: ...

from .forecast import (
    forecast_summary as forecast_summary,
    read_forecast as read_forecast,
    read_observations as read_observations,
    run_forecast as run_forecast,
)

def exceedance_table(
    ds: xr.Dataset, limit_class: str = ..., species: Optional[str] = ..., names: bool = ...
) -> pd.DataFrame: ...

from .calibration import (
    AllocationResult as AllocationResult,
    CalibrationResult as CalibrationResult,
    allocate as allocate,
    apportion as apportion,
    calibrate as calibrate,
    estimate_otis as estimate_otis,
)

from .tracing import TraceResult as TraceResult

class KernelCache:
    """Response kernels kept between traces (reused while the hydraulics are unchanged)."""
    def __init__(self) -> None: ...
    @property
    def hits(self) -> int: ...
    @property
    def misses(self) -> int: ...
    def clear(self) -> None: ...

class TraceSession:
    """A trace kept open while samples come in: add(), trace(), next_samples()."""
    horizon_round_h: float
    def __init__(
        self,
        network: Union[Network, str, PathLike[str], None] = ...,
        observations: Union[pd.DataFrame, str, PathLike[str], None] = ...,
        **options: Any,
    ) -> None: ...
    def add(self, observations: Union[pd.DataFrame, str, PathLike[str]]) -> "TraceSession": ...
    def trace(self) -> TraceResult: ...
    def next_samples(self) -> pd.DataFrame: ...
    @property
    def result(self) -> Optional[TraceResult]: ...
    @property
    def observations(self) -> pd.DataFrame: ...
    @property
    def kernel_cache(self) -> KernelCache: ...
    def __len__(self) -> int: ...

def read_trace(path: Union[str, PathLike[str]]) -> TraceResult: ...

def simulate(
    scenario: Union[Mapping[str, Any], str, PathLike[str]],
    network: Union[Network, str, PathLike[str], None] = ...,
    observations_out: Optional[Union[str, PathLike[str]]] = ...,
) -> pd.DataFrame: ...
def trace(
    observations: Union[pd.DataFrame, str, PathLike[str]],
    network: Union[Network, str, PathLike[str], None] = ...,
    start: Any = ...,
    end: Any = ...,
    max_sources: int = ...,
    noise: float = ...,
    species: Optional[Sequence[str]] = ...,
    unregistered: bool = ...,
    priors: Optional[Union[str, PathLike[str]]] = ...,
    date: Optional[str] = ...,
    threads: int = ...,
    within_h: Optional[float] = ...,
    team_at: Optional[str] = ...,
    team_speed_kmh: Optional[float] = ...,
    *,
    kernel_cache: Optional[KernelCache] = ...,
) -> TraceResult: ...
def release_history(
    observations: Union[pd.DataFrame, str, PathLike[str]],
    source: str,
    network: Union[Network, str, PathLike[str], None] = ...,
    start: Any = ...,
    end: Any = ...,
    bin_h: float = ...,
    regularization: str = ...,
    alpha: str = ...,
    noise: float = ...,
    date: Optional[str] = ...,
) -> pd.DataFrame: ...
