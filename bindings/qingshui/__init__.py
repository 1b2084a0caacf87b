"""Qingshui (清水): water-quality forecasting and pollution source tracing for rivers.

>>> import qingshui as qs
>>> net = qs.load_network("data/yuncheng/network.yaml")
>>> net.stations()[["id", "name_zh", "kind", "reach", "km"]]
"""

from ._qingshui import ConfigError, DataError, Error, SolverError, __version__, normal_depth
from . import transport
from .hydro import (
    RoutedFlow,
    catchments,
    dispersion_coefficient,
    hydraulics,
    route_days,
    scs_runoff_mm,
)
from .network import Network, default_network_path, load_network
from . import plot
from .forecast import forecast_summary, read_forecast, read_observations, run_forecast
from .calibration import AllocationResult, CalibrationResult, allocate, apportion, calibrate, estimate_otis
from .scenario import Result, Scenario
from .transport import run_otis

__all__ = [
    "AllocationResult",
    "CalibrationResult",
    "ConfigError",
    "DataError",
    "Error",
    "Network",
    "Result",
    "RoutedFlow",
    "Scenario",
    "SolverError",
    "__version__",
    "allocate",
    "apportion",
    "calibrate",
    "estimate_otis",
    "forecast_summary",
    "read_forecast",
    "read_observations",
    "run_forecast",
    "catchments",
    "default_network_path",
    "dispersion_coefficient",
    "hydraulics",
    "load_network",
    "normal_depth",
    "route_days",
    "run_otis",
    "scs_runoff_mm",
    "transport",
]
