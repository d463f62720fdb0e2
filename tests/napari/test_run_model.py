"""Plate runs as a stream of events, and progress bookkeeping, without Qt."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine_steps import max_project, normalize
from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator
from napari_openhcs._napari._run_model import RunProgress, RunStarted, run_plate_events
from napari_openhcs.core.errors import PipelineCompileError
from napari_openhcs.core.events import PlateFinished, StepFinished, WellFailed, WellFinished, WellStarted
from napari_openhcs.core.results import WellResult
from napari_openhcs.testing.faults import slow_identity


def steps() -> list[FunctionStep]:
    return [FunctionStep(func=normalize, name="normalize"),
            FunctionStep(func=max_project, name="max z", variable_components=["z_index"])]


def orchestrator(plate: Path, out: Path) -> PipelineOrchestrator:
    config = GlobalPipelineConfig(num_workers=2, output_dir=out, executor="threads")
    return PipelineOrchestrator(plate, global_config=config).initialize()


def drain(gen):
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            return events, stop.value


def test_progress_counts_steps_and_wells() -> None:
    p = RunProgress()
    assert p.update(RunStarted(("A01", "A02"), 2, Path("o"), Path("o/p.ome.zarr"))) == []
    assert p.update(WellStarted("A01")) == [("A01", "running", None)]
    p.update(StepFinished("A01", 0, "a", 0.1))
    assert p.percent == 25
    assert p.update(WellFailed("A02", "boom")) == [("A02", "failed", "boom")]
    assert p.percent == 75
    result = WellResult("A01", "done", None, {}, {})
    assert p.update(WellFinished("A01", result)) == [("A01", "done", None)]
    assert p.percent == 100
    assert p.summary() == "1 done, 1 failed"


def test_plate_finished_settles_wells_that_never_started() -> None:
    p = RunProgress()
    p.update(RunStarted(("A01", "A02"), 1, Path("o"), Path("o/p")))
    changes = p.update(PlateFinished({"A01": WellResult("A01", "cancelled", "cancelled", {}, {})}))
    assert changes == [("A01", "cancelled", "cancelled")]


def test_events_stream_through_the_generator(tiny_plate: Path, tmp_path: Path) -> None:
    orch = orchestrator(tiny_plate, tmp_path / "out")
    events, results = drain(run_plate_events(orch, steps()))
    assert isinstance(events[0], RunStarted) and set(events[0].wells) == {"A01", "A02"}
    assert sum(isinstance(e, StepFinished) for e in events) == 4
    assert isinstance(events[-1], PlateFinished)
    assert {w: r.status for w, r in results.items()} == {"A01": "done", "A02": "done"}
    progress = RunProgress()
    for e in events:
        progress.update(e)
    assert progress.percent == 100


def test_compile_errors_raise_before_anything_runs(tiny_plate: Path, tmp_path: Path) -> None:
    orch = orchestrator(tiny_plate, tmp_path / "out")
    bad = [FunctionStep(func=(normalize, {"lowest": 1.0}), name="normalize")]
    with pytest.raises(PipelineCompileError, match="lowest"):
        next(run_plate_events(orch, bad))


def test_cancel_from_another_thread(tiny_plate: Path, tmp_path: Path) -> None:
    orch = orchestrator(tiny_plate, tmp_path / "out")
    cancel = threading.Event()
    slow = [FunctionStep(func=(slow_identity, {"seconds": 0.5}), name="slow")] * 3
    gen = run_plate_events(orch, slow, max_workers=1, cancel_event=cancel)
    statuses: dict[str, str] = {}
    progress = RunProgress()
    for event in gen:
        if isinstance(event, WellStarted):
            cancel.set()
        for well, status, _ in progress.update(event):
            statuses[well] = status
    assert "done" not in statuses.values()
    assert set(statuses.values()) <= {"cancelled", "running"} | {"cancelled"}
    assert all(s == "cancelled" for s in statuses.values()), statuses
