"""Shared fixtures: find the built package and the repository's data."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("QINGSHUI_BUILD_DIR", ROOT / "build"))
if str(BUILD / "python") not in sys.path:
    sys.path.insert(0, str(BUILD / "python"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cli() -> Path:
    return BUILD / "bin" / "qingshui"


@pytest.fixture(scope="session")
def default_network_path() -> Path:
    return ROOT / "data" / "yuncheng" / "network.yaml"
