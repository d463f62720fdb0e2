"""``WellResult``: what happened to one well."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

WellStatus = Literal["done", "failed", "skipped", "cancelled"]


@dataclass(frozen=True)
class WellResult:
    """Outcome of one well.

    Attributes
    ----------
    well
        Well name.
    status
        ``"done"``, ``"failed"``, ``"skipped"`` (already complete for this
        pipeline) or ``"cancelled"``.
    error
        Why it failed (names the step), else ``None``.
    timings
        Seconds per phase: ``"read"``, ``"write"``, ``"total"`` and one entry per step name.
    outputs
        Paths written for this well (``"image"``, materialized steps, tables).
    notes
        Anything the user should know (e.g. a retry, a CPU fallback).
    """

    well: str
    status: WellStatus
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the well is done or was already complete."""
        return self.status in ("done", "skipped")
