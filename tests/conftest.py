"""Shared fixtures: the real plates in ``../shared/data`` and small synthetic plates."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real instrument plates (skips when it is absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample plates not found at {SHARED_DATA} (expected ../shared/data)")
    return SHARED_DATA
