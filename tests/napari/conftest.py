"""Fixtures of the napari plugin tests: small synthetic plates and a private sample cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from napari_openhcs.testing import make_synthetic_plate


@pytest.fixture(scope="session")
def tiny_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-well synthetic ImageXpress plate (2 × 2 sites of 64², 2 channels, 2 z)."""
    return make_synthetic_plate(tmp_path_factory.mktemp("napari-plates"), spec="tiny", seed=3)


@pytest.fixture
def plate_copy(tiny_plate: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny plate (for tests that damage it)."""
    target = tmp_path / "plate" / tiny_plate.name
    shutil.copytree(tiny_plate, target)
    return target


@pytest.fixture(autouse=True)
def _private_sample_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Generate the sample plate (and preview scratch) under the test session's temp folder."""
    monkeypatch.setenv("NAPARI_OPENHCS_CACHE", str(tmp_path_factory.getbasetemp() / "sample-cache"))
