"""Preview: one well (or site) through the pipeline, every step's output kept.

It runs :func:`~napari_openhcs.core.well_runner.run_steps` — the code the plate run
uses — on a context compiled for that well, with nothing written. A later preview
can start from any step, reusing the earlier steps' cached outputs.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .components import Component
from .context import ProcessingContext
from .errors import StepExecutionError, WellCancelledError
from .raw_images import read_well
from .well_output import _is_table, _table_rows, output_channels, state_to_fields
from .well_runner import run_steps
from .well_state import SpecialStore, WellState


@dataclass
class StepPreview:
    """One step's output on the previewed well.

    ``data`` is ``(C, T, Z, Y, X)`` for the first site (or the assembled image);
    ``fields`` holds every remaining site.
    """

    index: int
    name: str
    channel_names: list[str]
    channel_colors: list[str]
    data: np.ndarray
    fields: dict[int, np.ndarray]
    scale_um: tuple[float, float, float]
    tables: dict[str, dict[str, Any]]
    elapsed_s: float


@dataclass
class WellPreview:
    """Every step's output for one well; ``error``/``failed_step`` say what went wrong."""

    well: str
    site: int | None
    steps: list[StepPreview] = field(default_factory=list)
    error: str | None = None
    failed_step: int | None = None
    cancelled: bool = False
    elapsed_s: float = 0.0
    _raw: WellState | None = None
    _states: list[WellState] = field(default_factory=list)
    _specials: list[tuple[int, str, dict[Component, int], Any]] = field(default_factory=list)


def _step_preview(index: int, name: str, state: WellState, ctx: Any, elapsed: float,
                  new_specials: list[tuple[str, Any]]) -> StepPreview:
    sites, fields, _, _ = state_to_fields(state)
    chans = output_channels(state, ctx.inputs)
    # fields are (T, C, Z, Y, X); napari layers want channel first
    per_site = {s: np.moveaxis(f, 1, 0) for s, f in zip(sites, fields)}
    px = ctx.inputs.pixel_size_um or 1.0
    zs = ctx.inputs.z_spacing_um or 1.0
    tables = {n: {k: np.asarray(v) for k, v in _table_rows(val).items()}
              for n, val in new_specials if _is_table(val)}
    return StepPreview(index, name, [c[1] for c in chans], [c[2] for c in chans],
                       per_site[sites[0]], per_site, (zs, px, px), tables, elapsed)


def preview_well(
    ctx: ProcessingContext,
    *,
    site: int | None = None,
    start_step: int = 0,
    previous: WellPreview | None = None,
    cancel_event: threading.Event | None = None,
) -> WellPreview:
    """Run one compiled well (or one of its sites), keeping every step's output.

    See :meth:`PipelineOrchestrator.preview_well`, which compiles ``ctx``.
    """
    well = ctx.well
    if site is not None:
        records = tuple(r for r in ctx.inputs.records if r.site == site)
        if not records:
            raise ValueError(f"well {well} has no site {site}")
        ctx = dataclasses.replace(ctx, inputs=dataclasses.replace(ctx.inputs, records=records))
    result = WellPreview(ctx.well, site)
    reuse = (previous is not None and previous.well == ctx.well and previous.site == site
             and previous._raw is not None and 0 < start_step <= len(previous._states))
    start = start_step if reuse else 0
    specials = SpecialStore()
    if reuse:
        assert previous is not None
        result._raw = previous._raw
        result._states = previous._states[:start]
        result.steps = previous.steps[:start]
        result._specials = [e for e in previous._specials if e[0] < start]
        for _, name, key, value in result._specials:
            specials.put(name, key, value)
    else:
        try:
            result._raw = read_well(ctx.inputs)
        except Exception as exc:
            result.error, result.failed_step = str(exc), 0
            return result

    def on_step(plan: Any, state: WellState, elapsed: float) -> None:
        new = []
        for name, entries in specials.values.items():
            seen = sum(1 for e in result._specials if e[1] == name)
            for key, value in entries[seen:]:
                result._specials.append((plan.index, name, key, value))
                new.append((name, value))
        result._states.append(state)
        result.steps.append(_step_preview(plan.index, plan.name, state, ctx, elapsed, new))

    t0 = time.perf_counter()
    try:
        run_steps(ctx, raw=result._raw, start_step=start,
                  start_state=result._states[start - 1] if start else None,
                  specials=specials, keep_intermediates=True, on_step=on_step,
                  is_cancelled=cancel_event.is_set if cancel_event else None)
    except WellCancelledError as exc:
        result.cancelled, result.error = True, str(exc)
    except StepExecutionError as exc:
        result.error = str(exc)
        result.failed_step = len(result._states)
    result.elapsed_s = time.perf_counter() - t0
    return result
