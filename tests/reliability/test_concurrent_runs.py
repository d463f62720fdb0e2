"""Two runs writing the same output at once: the second is refused (``OutputLockedError``)
before it touches anything, and the first completes as if it were alone."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from napari_openhcs import save_pipeline
from napari_openhcs.io import OutputLockedError, open_output_plate
from napari_openhcs.io.lock import LOCK_FILE_NAME

from ._support import TESTS_DIR, WELLS, orchestrator, output_plate_path, pipeline, snapshot, wait_for

pytestmark = pytest.mark.category("concurrent runs")


@pytest.mark.parametrize("second", ["same pipeline", "other pipeline, overwrite"])
def test_second_run_in_the_same_process_is_refused(tiny_plate: Path, tmp_path: Path, second: str,
                                                   nothing_lost: Callable[..., None]) -> None:
    out = tmp_path / "out"
    gate_file = tmp_path / "go"
    steps = pipeline(gate_file=gate_file)  # the first run waits at its first step until told to go
    first = orchestrator(tiny_plate, out)
    compiled = first.compile_pipelines(steps)
    outcome: dict[str, Any] = {}

    def run_first() -> None:
        try:
            outcome["results"] = first.execute_compiled_plate(steps, compiled)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        wait_for(lambda: (out / LOCK_FILE_NAME).exists(), 30, "the first run's lock")
        other = orchestrator(tiny_plate, out, overwrite=second.endswith("overwrite"))
        other_steps = steps if second == "same pipeline" else pipeline()
        with pytest.raises(OutputLockedError, match=f"in use by another run \\(pid {os.getpid()}"):
            other.run(other_steps)
    finally:
        gate_file.touch()
        thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert all(r.status == "done" for r in outcome["results"].values())
    nothing_lost(out, WELLS)
    # every well, and the plate's provenance, come from the first run alone
    plate = open_output_plate(output_plate_path(out))
    digest = first.pipeline_hash(steps)
    assert plate.attributes["pipeline_hash"] == digest
    assert {plate.well_attributes(w)["pipeline_hash"] for w in WELLS} == {digest}
    assert not (out / LOCK_FILE_NAME).exists()


@pytest.mark.usefixtures("registered_functions")
def test_second_run_in_another_process_is_refused(tiny_plate: Path, tmp_path: Path,
                                                  nothing_lost: Callable[..., None]) -> None:
    """The CLI holds the output; a run started here meanwhile is refused and changes nothing."""
    out = tmp_path / "out"
    gate_file = tmp_path / "go"
    pipeline_file = save_pipeline(pipeline(gate_file=gate_file), tmp_path / "pipeline.yaml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    log = tmp_path / "cli.log"
    cli = subprocess.Popen([sys.executable, "-m", "reliability._cli", "run", str(tiny_plate), "--pipeline",
                            str(pipeline_file), "--out", str(out), "--workers", "2", "--executor", "threads"],
                           env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (out / LOCK_FILE_NAME).exists() or cli.poll() is not None, 60, "the CLI's lock")
        assert cli.poll() is None, log.read_text()
        with pytest.raises(OutputLockedError, match=f"in use by another run \\(pid {cli.pid}"):
            orchestrator(tiny_plate, out).run(pipeline(), well_filter=["B02"])
    finally:
        gate_file.touch()
        assert cli.wait(timeout=120) == 0, log.read_text()
    nothing_lost(out, WELLS)
    assert sorted(snapshot(out).images) == sorted(WELLS)
