"""Progress events sent to the ``progress_callback`` of a plate run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WellStarted:
    """A worker started a well."""

    well: str


@dataclass(frozen=True)
class StepFinished:
    """A step finished on a well."""

    well: str
    step_index: int
    step_name: str
    elapsed_s: float


@dataclass(frozen=True)
class WellFinished:
    """A well completed (or was skipped because it was already complete)."""

    well: str
    result: Any


@dataclass(frozen=True)
class WellFailed:
    """A well failed; the others go on."""

    well: str
    error: str


@dataclass(frozen=True)
class PlateFinished:
    """Every well has a result; plate metadata and tables are written."""

    results: Any


ProgressEvent = WellStarted | StepFinished | WellFinished | WellFailed | PlateFinished
