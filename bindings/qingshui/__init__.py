"""Qingshui (清水): water-quality forecasting and pollution source tracing for rivers.

>>> import qingshui as qs
>>> net = qs.load_network("data/yuncheng/network.yaml")
>>> net.stations()[["id", "name_zh", "kind", "reach", "km"]]
"""

from ._qingshui import ConfigError, DataError, Error, SolverError, __version__, normal_depth
from . import transport
from .baseline import (BaselineEnsemble, PlanOutcome, check_members, fit_2023_baseline, load_baseline_priors,
                       plan_2024, plan_outcome, read_baseline_ensemble, read_unit_responses,
                       store_unit_responses)
from .calibration import AllocationResult, CalibrationResult, allocate, apportion, calibrate, estimate_otis
from .hydro import (
    RoutedFlow,
    catchments,
    dispersion_coefficient,
    hydraulics,
    route_days,
    scs_runoff_mm,
)
from .network import Network, default_network_path, load_network
from .forecast import exceedance_table, forecast_summary, read_forecast, read_observations, run_forecast
from . import plot
from .scenario import Result, Scenario, progress, run_all
from .tracing import KernelCache, TraceResult, TraceSession, read_trace, release_history, simulate, trace
from .transport import run_otis

__all__ = [
    "KernelCache",
    "TraceSession",
    "BaselineEnsemble",
    "PlanOutcome",
    "plan_outcome",
    "plan_2024",
    "read_unit_responses",
    "store_unit_responses",
    "check_members",
    "fit_2023_baseline",
    "load_baseline_priors",
    "read_baseline_ensemble",
    "AllocationResult",
    "CalibrationResult",
    "allocate",
    "apportion",
    "calibrate",
    "estimate_otis",
    "ConfigError",
    "DataError",
    "Error",
    "Network",
    "Result",
    "RoutedFlow",
    "Scenario",
    "SolverError",
    "TraceResult",
    "__version__",
    "catchments",
    "default_network_path",
    "dispersion_coefficient",
    "exceedance_table",
    "forecast_summary",
    "hydraulics",
    "load_network",
    "normal_depth",
    "progress",
    "read_forecast",
    "read_observations",
    "read_trace",
    "release_history",
    "route_days",
    "run_all",
    "run_forecast",
    "run_otis",
    "scs_runoff_mm",
    "simulate",
    "trace",
    "transport",
]
