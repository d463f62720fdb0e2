"""Plate runs as a stream of events (no Qt), and progress bookkeeping.

:func:`run_plate_events` is the generator the run dock hands to a napari
``thread_worker``: it compiles, starts the orchestrator in a helper thread and
turns the orchestrator's progress callback into ``yield`` s through a queue.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.events import PlateFinished, StepFinished, WellFailed, WellFinished, WellStarted
from ..core.steps import FunctionStep

logger = logging.getLogger(__name__)

_DONE = object()


@dataclass(frozen=True)
class RunPrepared:
    """The orchestrator is initialized (plate read, output folder checked)."""

    orchestrator: Any


@dataclass(frozen=True)
class RunOutputs:
    """What the run wrote, prepared for display: layer data and per-well values."""

    plate_path: Path
    tables_dir: Path
    layers: list[Any]
    values: dict[str, dict[str, float]]


@dataclass(frozen=True)
class RunStarted:
    """The pipeline compiled; these wells are about to run."""

    wells: tuple[str, ...]
    n_steps: int
    output_dir: Path
    output_path: Path


def run_plate_events(
    orchestrator: Any,
    steps: Sequence[FunctionStep],
    wells: Sequence[str] | None = None,
    *,
    max_workers: int | None = None,
    cancel_event: threading.Event | None = None,
    poll_s: float = 0.05,
) -> Generator[Any, None, dict[str, Any]]:
    """Compile and run a plate, yielding progress events as they happen.

    Parameters
    ----------
    orchestrator : PipelineOrchestrator
        Initialized.
    steps : list of FunctionStep
        The pipeline.
    wells : list of str, optional
        Wells to run (default: all).
    max_workers : int, optional
        Wells in parallel.
    cancel_event : threading.Event, optional
        Set it to cancel; running wells stop between steps.
    poll_s : float
        How often the generator wakes up when no event arrives.

    Yields
    ------
    RunStarted, WellStarted, StepFinished, WellFinished, WellFailed, PlateFinished

    Returns
    -------
    dict
        ``{well: WellResult}``.

    Raises
    ------
    PipelineCompileError
        Before anything runs, if the pipeline does not fit the plate.
    """
    steps = list(steps)
    compiled = orchestrator.compile_pipelines(steps, well_filter=list(wells) if wells else None)
    n_steps = sum(1 for s in steps if s.enabled)
    yield RunStarted(tuple(compiled), n_steps, Path(orchestrator.output_dir), Path(orchestrator.output_path))
    events: queue.Queue[Any] = queue.Queue()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["results"] = orchestrator.execute_compiled_plate(
                pipeline_definition=steps, compiled_contexts=compiled, max_workers=max_workers,
                progress_callback=events.put, cancel_event=cancel_event)
        except BaseException as exc:  # re-raised in the generator's thread
            outcome["error"] = exc
        finally:
            events.put(_DONE)

    thread = threading.Thread(target=target, name="openhcs-plate-run", daemon=True)
    thread.start()
    while True:
        try:
            event = events.get(timeout=poll_s)
        except queue.Empty:
            continue
        if event is _DONE:
            break
        yield event
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return dict(outcome["results"])


def run_job(
    session: Any,
    steps: Sequence[FunctionStep],
    wells: Sequence[str] | None = None,
    *,
    options: dict[str, Any] | None = None,
    max_workers: int | None = None,
    cancel_event: threading.Event | None = None,
) -> Generator[Any, None, dict[str, Any]]:
    """Prepare the orchestrator (reading the plate's metadata) then run, all off the UI thread.

    Yields :class:`RunPrepared` first, then what :func:`run_plate_events` yields.

    Parameters
    ----------
    session : HCSSession
        Gives the plate and the default settings.
    options : dict, optional
        Keyword arguments of :meth:`HCSSession.make_orchestrator` (output folder, workers...).
    """
    orchestrator = session.make_orchestrator(**(options or {}))
    yield RunPrepared(orchestrator)
    results = yield from run_plate_events(orchestrator, steps, wells, max_workers=max_workers,
                                          cancel_event=cancel_event)
    outputs = prepare_outputs(Path(orchestrator.output_path), Path(orchestrator.output_dir) / "tables")
    if outputs is not None:
        yield outputs
    return results


def prepare_outputs(plate_path: Path, tables_dir: Path) -> RunOutputs | None:
    """Read an output plate's metadata and tables into layer data (``None`` if nothing was written)."""
    from ._output_layers import output_plate_layers
    from ._plate_map_model import per_well_values
    from ._prefetch import prefetch_first_plane

    if not plate_path.exists():
        return None
    values = per_well_values(tables_dir)
    features: dict[str, Any] | None = None
    if values:
        wells = sorted({w for per_well in values.values() for w in per_well})
        features = {"well": wells, **{label: [v.get(w, float("nan")) for w in wells]
                                     for label, v in values.items()}}
    try:
        # called in the run's worker thread: the first plane is decoded here, not on the UI thread
        layers = prefetch_first_plane(output_plate_layers(plate_path, features))
    except (OSError, ValueError, KeyError) as exc:  # e.g. every well failed: no image group
        logger.warning("cannot show the output plate %s: %s", plate_path, exc)
        return None
    return RunOutputs(plate_path, tables_dir, layers, values)


@dataclass
class RunProgress:
    """Counts steps and wells of a run, for the progress bar and the summary."""

    wells: tuple[str, ...] = ()
    n_steps: int = 1
    steps_done: dict[str, int] = field(default_factory=dict)
    final: dict[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Units of work: one per step and well."""
        return max(1, len(self.wells) * max(1, self.n_steps))

    @property
    def done(self) -> int:
        """Units of work finished (a finished, failed or skipped well counts all its steps)."""
        wells = set(self.steps_done) | set(self.final)
        return sum(self.n_steps if self.final.get(w) in ("done", "skipped", "failed")
                   else min(self.steps_done.get(w, 0), self.n_steps) for w in wells)

    @property
    def percent(self) -> int:
        """Progress in percent: 100 once every well has ended (not counting cancelled work)."""
        ended = self.wells and len(self.final) >= len(self.wells)
        if ended and "cancelled" not in self.final.values():
            return 100
        return min(99, int(100 * self.done / self.total))

    def update(self, event: Any) -> list[tuple[str, str, str | None]]:
        """Apply an event; return ``(well, status, error)`` for every well whose status changed."""
        if isinstance(event, RunStarted):
            self.wells, self.n_steps = event.wells, max(1, event.n_steps)
            self.steps_done, self.final = {}, {}
            return []
        if isinstance(event, WellStarted):
            self.steps_done.setdefault(event.well, 0)
            return [(event.well, "running", None)]
        if isinstance(event, StepFinished):
            self.steps_done[event.well] = max(self.steps_done.get(event.well, 0), event.step_index + 1)
            return []
        if isinstance(event, WellFailed):
            self.final[event.well] = "failed"
            return [(event.well, "failed", event.error)]
        if isinstance(event, WellFinished):
            return [self._finish(event.well, event.result)]
        if isinstance(event, PlateFinished):  # wells that never reported (cancelled before starting)
            results = event.results or {}
            return [self._finish(w, r) for w, r in results.items() if w not in self.final]
        return []

    def _finish(self, well: str, result: Any) -> tuple[str, str, str | None]:
        status = getattr(result, "status", "done") or "done"
        self.final[well] = status
        return well, status, getattr(result, "error", None)

    def summary(self) -> str:
        """One line: how many wells ended in each status."""
        counts: dict[str, int] = {}
        for status in self.final.values():
            counts[status] = counts.get(status, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing ran"
