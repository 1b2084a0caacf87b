"""Shared fixtures: find the built package and the repository's data."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("QINGSHUI_BUILD_DIR", ROOT / "build")).resolve()
if str(BUILD / "python") not in sys.path:
    sys.path.insert(0, str(BUILD / "python"))
# Notebook kernels are subprocesses that start in notebooks/: give them the package by an
# absolute path, whatever relative PYTHONPATH the caller used.
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(BUILD / "python")] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cli() -> Path:
    return BUILD / "bin" / "qingshui"


@pytest.fixture(scope="session")
def default_network_path() -> Path:
    return ROOT / "data" / "yuncheng" / "network.yaml"
