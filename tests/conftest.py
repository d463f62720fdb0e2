"""Shared fixtures: the real plates in ``../shared/data`` and small synthetic plates."""

from __future__ import annotations

from pathlib import Path

import pytest

from _output_plates import KINDS, make_output_plate

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real instrument plates (skips when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample plates not found at {SHARED_DATA} (expected ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="module", params=KINDS)
def output_plate(request, tmp_path_factory) -> tuple[str, Path]:
    """One output plate of each kind of ``_output_plates``, made once per test module."""
    kind = request.param
    if kind == "real" and not SHARED_DATA.is_dir():
        pytest.skip(f"real sample plates not found at {SHARED_DATA} (expected ../shared/data)")
    return kind, make_output_plate(kind, tmp_path_factory.mktemp(kind), SHARED_DATA)
