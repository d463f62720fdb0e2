"""Storage faults: a full disk (ENOSPC) and a read-only output (EROFS), injected
through the storage layer (``io.atomic.inject_fault``, or the environment variable
``NAPARI_OPENHCS_INJECT_FAULT`` for worker processes).

A well that cannot be written fails with a message naming the path; the plate's
``zarr.json`` is never left half-written and always validates (ome-zarr-models);
when the output cannot be written at all the run refuses before any well starts.
"""

from __future__ import annotations

import errno
import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from napari_openhcs.core.errors import OutputLocationError
from napari_openhcs.core.events import WellFinished
from napari_openhcs.io import OutputNotWritableError, StorageFullError, atomic, inject_fault

from ._support import WELLS, check_plate_valid, leftovers, orchestrator, output_plate_path, pipeline, run

pytestmark = pytest.mark.category("storage faults")

BAD = "A02"
GOOD = tuple(w for w in WELLS if w != BAD)
BAD_TMP = ".tmp-A-02-"  # the temporary folder well A02 is written into


@pytest.fixture
def out(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "out"
    yield folder
    assert atomic._faults == [], "a fault injection leaked out of its test"


@pytest.mark.parametrize("after_bytes", [0, 20_000])
def test_disk_full_while_writing_a_well_fails_only_that_well(tiny_plate: Path, out: Path, after_bytes: int,
                                                             nothing_lost: Callable[..., None]) -> None:
    with inject_fault(errno.ENOSPC, after_bytes=after_bytes, match=BAD_TMP):
        results = run(tiny_plate, out)
    error = results[BAD].error or ""
    assert results[BAD].status == "failed" and "No space left" in error, error
    assert str(output_plate_path(out) / "A" / "02") in error, error
    assert all(results[w].status == "done" for w in GOOD)
    nothing_lost(out, GOOD, absent=[BAD])
    assert leftovers(out) == []


def test_disk_full_in_worker_processes(tiny_plate: Path, out: Path, monkeypatch: pytest.MonkeyPatch,
                                       nothing_lost: Callable[..., None]) -> None:
    """The fault reaches spawned workers through the environment."""
    monkeypatch.setenv(atomic.FAULT_ENV_VAR, f"ENOSPC,after_bytes=5000,match={BAD_TMP}")
    results = run(tiny_plate, out, executor="processes", num_workers=2)
    monkeypatch.delenv(atomic.FAULT_ENV_VAR)
    assert results[BAD].status == "failed" and "No space left" in (results[BAD].error or "")
    assert all(results[w].status == "done" for w in GOOD)
    nothing_lost(out, GOOD, absent=[BAD])
    assert leftovers(out) == []


def test_disk_full_while_writing_a_table_fails_only_that_well(tiny_plate: Path, out: Path,
                                                              nothing_lost: Callable[..., None]) -> None:
    with inject_fault(errno.ENOSPC, match=".A02.csv"):
        results = run(tiny_plate, out)
    error = results[BAD].error or ""
    assert results[BAD].status == "failed" and "No space left" in error and "A02.csv" in error, error
    assert all(results[w].status == "done" for w in GOOD)
    nothing_lost(out, GOOD, absent=[BAD])


def test_disk_full_before_the_run_refuses_to_start(tiny_plate: Path, out: Path,
                                                   nothing_lost: Callable[..., None]) -> None:
    orch = orchestrator(tiny_plate, out)
    steps = pipeline()
    compiled = orch.compile_pipelines(steps)
    started: list[Any] = []
    with inject_fault(errno.ENOSPC, match=str(out)), pytest.raises(StorageFullError) as info:
        orch.execute_compiled_plate(steps, compiled, progress_callback=started.append)
    assert "No space left" in str(info.value) and str(out) in str(info.value)
    assert started == [], "no well may start when the plate cannot be created"
    assert not list(out.rglob("zarr.json")), "nothing of the plate may be written"
    results = orchestrator(tiny_plate, out).run(steps)  # space freed: the same command works
    assert all(r.status == "done" for r in results.values())
    nothing_lost(out, WELLS)


def test_disk_full_while_updating_the_plate_metadata_keeps_it_valid(
        tiny_plate: Path, out: Path, nothing_lost: Callable[..., None]) -> None:
    """The disk fills up after the first well: every later rewrite of the plate zarr.json fails."""
    plate_json = f"{out / 'synthetic.ome.zarr' / 'zarr.json'}"
    faults = ExitStack()

    def fill_disk_after_first_well(event: Any) -> None:
        if isinstance(event, WellFinished) and not faults._exit_callbacks:
            faults.enter_context(inject_fault(errno.ENOSPC, match=plate_json))

    orch = orchestrator(tiny_plate, out, num_workers=1)
    with faults, pytest.raises(StorageFullError, match="No space left") as info:
        orch.run(pipeline(), progress_callback=fill_disk_after_first_well)
    assert plate_json in str(info.value)
    doc = json.loads(Path(plate_json).read_text())  # never half-written
    assert len(doc["attributes"]["ome"]["plate"]["wells"]) == 1
    check_plate_valid_listed_subset(out)
    results = orchestrator(tiny_plate, out).run(pipeline())  # space freed
    assert all(r.status == "skipped" for r in results.values()), "wells written before the fault are kept"
    nothing_lost(out, WELLS)


def check_plate_valid_listed_subset(out: Path) -> None:
    """The plate validates, and each listed well is complete (later ones are on disk, unlisted)."""
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    plate = output_plate_path(out)
    HCS.from_zarr(zarr.open_group(str(plate), mode="r"))
    doc = json.loads((plate / "zarr.json").read_text())
    for well in doc["attributes"]["ome"]["plate"]["wells"]:
        assert (plate / well["path"] / "zarr.json").is_file()


def test_output_folder_not_writable_is_refused_at_initialize(tiny_plate: Path, out: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A read-only file system, simulated: creating a file in the output folder fails with EROFS."""
    def read_only(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputLocationError, match="is not writable.*Read-only file system") as info:
        orchestrator(tiny_plate, out)
    assert str(out) in str(info.value)


def test_output_becoming_read_only_before_the_run_refuses_to_start(tiny_plate: Path, out: Path,
                                                                   nothing_lost: Callable[..., None]) -> None:
    orch = orchestrator(tiny_plate, out)
    steps = pipeline()
    compiled = orch.compile_pipelines(steps)
    with inject_fault(errno.EROFS, match=str(out)), pytest.raises(OutputNotWritableError) as info:
        orch.execute_compiled_plate(steps, compiled)
    assert "Cannot write to the output folder" in str(info.value) and str(out) in str(info.value)
    assert not list(out.rglob("*/zarr.json")), "nothing of the plate may be written"
    results = orchestrator(tiny_plate, out).run(steps)
    assert all(r.status == "done" for r in results.values())
    nothing_lost(out, WELLS)


def test_output_becoming_read_only_during_a_well_fails_only_that_well(
        tiny_plate: Path, out: Path, nothing_lost: Callable[..., None]) -> None:
    with inject_fault(errno.EROFS, after_bytes=3000, match=BAD_TMP):
        results = run(tiny_plate, out)
    error = results[BAD].error or ""
    assert results[BAD].status == "failed" and "Cannot write to the output folder" in error, error
    assert all(results[w].status == "done" for w in GOOD)
    nothing_lost(out, GOOD, absent=[BAD])
    assert check_plate_valid(out) == sorted(GOOD)
