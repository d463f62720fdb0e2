"""Listing finished wells in the output plate costs the same per well whatever the plate's size."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from engine_steps import max_project
from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.core.events import WellFinished
from napari_openhcs.io import HCSPlateWriter, OutputChannel, open_output_plate
from napari_openhcs.testing import make_synthetic_plate

CHANNELS = [OutputChannel("DAPI", "0000FF")]


def _write(writer: HCSPlateWriter, well: str, n_fields: int = 1) -> None:
    fields = [np.full((1, 1, 1, 8, 8), i, dtype=np.uint16) for i in range(n_fields)]
    writer.write_well(well, fields, channels=CHANNELS, pixel_size_um=None)


def _count_well_reads(monkeypatch: pytest.MonkeyPatch, plate: Path) -> list[str]:
    """Record every well ``zarr.json`` read under ``plate`` (``B/03/zarr.json`` -> ``B03``)."""
    reads: list[str] = []
    original = Path.read_text

    def read_text(self: Path, *args, **kwargs):  # type: ignore[no-untyped-def]
        rel = self.relative_to(plate).parts if self.is_relative_to(plate) else ()
        if len(rel) == 3 and rel[2] == "zarr.json":
            reads.append(rel[0] + rel[1])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    return reads


def test_listing_one_more_well_reads_only_that_well(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "p.zarr"
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()
    wells = [f"{r}{c:02d}" for r in "AB" for c in range(1, 7)]
    for well in wells[:-1]:
        _write(writer, well)
    assert sorted(writer.completed_wells()) == wells[:-1]  # the scan at the start of a run
    _write(writer, wells[-1], n_fields=2)
    reads = _count_well_reads(monkeypatch, path)
    assert writer.register_completed_wells(wells, reread=[wells[-1]]) == wells
    assert reads == [wells[-1]]  # not one read per well of the plate
    doc = json.loads((path / "zarr.json").read_text())
    assert doc["attributes"]["ome"]["plate"]["field_count"] == 2  # the new well's fields counted
    monkeypatch.undo()
    assert open_output_plate(path).wells == wells


def test_listing_reads_a_rewritten_well_again_and_skips_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "p.zarr"
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()
    _write(writer, "A01", n_fields=3)
    _write(writer, "A02")
    assert writer.register_completed_wells(["A01", "A02"]) == ["A01", "A02"]
    _write(writer, "A01")  # recomputed with one field
    assert writer.register_completed_wells(["A01", "A02", "A03"], reread=["A01"]) == ["A01", "A02"]
    doc = json.loads((path / "zarr.json").read_text())
    assert doc["attributes"]["ome"]["plate"]["field_count"] == 1
    writer.remove_well("A02")
    assert writer.register_completed_wells(["A01", "A02"], reread=[]) == ["A01"]


def test_a_freed_worker_gets_its_next_well_before_the_finished_one_is_handled(tmp_path: Path) -> None:
    """With one worker, well 2 runs while the handler of well 1's WellFinished is still busy."""
    plate = make_synthetic_plate(tmp_path / "plates", spec="tiny", seed=3)
    out = tmp_path / "out"
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(num_workers=1, output_dir=out))
    orch.initialize()
    steps = [FunctionStep(func=max_project, name="max z", variable_components=[VariableComponents.Z_INDEX])]
    first, second = sorted(orch.plate.wells)[:2]
    seen: dict[str, float] = {}

    def on_event(event: object) -> None:
        if isinstance(event, WellFinished) and event.well == first:
            target = orch.output_path / second[0] / f"{int(second[1:]):02d}" / "zarr.json"
            t0 = time.monotonic()
            while not target.is_file() and time.monotonic() - t0 < 30:
                time.sleep(0.02)  # a slow handler; the worker goes on meanwhile
            seen["second written during the handler"] = float(target.is_file())

    results = orch.run(steps, progress_callback=on_event)
    assert {r.status for r in results.values()} == {"done"}
    assert seen == {"second written during the handler": 1.0}
