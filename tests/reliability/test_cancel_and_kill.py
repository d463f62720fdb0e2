"""Cancel during a write, an interrupted write, and a run killed with SIGKILL.

A well becomes visible in the output plate only by one atomic rename once it is
completely written, and the plate lists only such wells; so whatever stops a run, no
partial well is ever listed, and a rerun computes exactly the missing wells. The
result then equals an uninterrupted run, array for array.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from napari_openhcs import FunctionStep, save_pipeline
from napari_openhcs.core.events import StepFinished
from napari_openhcs.io import _ngff
from napari_openhcs.io.lock import LOCK_FILE_NAME

from ._support import (
    SLOW_WRITE_ENV,
    TESTS_DIR,
    WELLS,
    check_plate_valid,
    complete_wells_on_disk,
    leftovers,
    orchestrator,
    output_plate_path,
    pipeline,
    wait_for,
)

pytestmark = pytest.mark.category("cancel and killed runs")


def _rerun_completes_exactly_the_rest(plate: Path, out: Path, steps: list[FunctionStep], done: set[str],
                                      nothing_lost: Callable[..., None], **config: Any) -> None:
    """Rerun the same pipeline: completed wells are skipped, the others computed."""
    results = orchestrator(plate, out, **config).run(steps)
    assert {w for w, r in results.items() if r.status == "skipped"} == done
    assert {w for w, r in results.items() if r.status == "done"} == set(WELLS) - done
    nothing_lost(out, WELLS)
    assert leftovers(out) == []


def _check_interrupted_output(out: Path, results: dict[str, Any] | None,
                              nothing_lost: Callable[..., None], *, killed: bool = False) -> set[str]:
    """Check the output a stopped run left; return the wells complete on disk.

    Listed wells equal the uninterrupted run; nothing partial is listed. After a SIGKILL
    a well may be renamed into place but not yet listed: the rerun must then skip it
    (it is complete) and list it, and its data is compared after the rerun.
    """
    listed = set(check_plate_valid(out, exact=not killed))
    if results is not None:
        done = {w for w, r in results.items() if r.status == "done"}
        assert listed == done, f"listed {sorted(listed)} but done {sorted(done)}"
        assert {r.status for r in results.values()} <= {"done", "cancelled"}
    complete = set(complete_wells_on_disk(out))
    nothing_lost(out, listed, absent=set(WELLS) - complete, exact=not killed)
    return complete


def test_cancel_while_a_well_is_being_written(tiny_plate: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              nothing_lost: Callable[..., None]) -> None:
    """Cancel arrives while the first well writes its second field (threads executor)."""
    cancel = threading.Event()
    real = _ngff.multiscales

    def cancel_mid_write(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("name", "").endswith("/1") and not cancel.is_set():
            cancel.set()
            time.sleep(0.3)  # let the other wells see the cancel while this one writes
        return real(*args, **kwargs)

    monkeypatch.setattr(_ngff, "multiscales", cancel_mid_write)
    out = tmp_path / "out"
    orch = orchestrator(tiny_plate, out)
    steps = pipeline(slow_s=0.05)
    results = orch.execute_compiled_plate(steps, orch.compile_pipelines(steps), cancel_event=cancel)
    assert cancel.is_set() and any(r.status == "cancelled" for r in results.values())
    done = _check_interrupted_output(out, results, nothing_lost)
    assert leftovers(out) == []
    monkeypatch.setattr(_ngff, "multiscales", real)
    _rerun_completes_exactly_the_rest(tiny_plate, out, steps, done, nothing_lost)


def test_cancel_while_worker_processes_write(tiny_plate: Path, tmp_path: Path,
                                             nothing_lost: Callable[..., None]) -> None:
    """Cancel as soon as the first well finishes its last step, i.e. while it is written."""
    cancel = threading.Event()
    steps = pipeline(slow_s=0.1)

    def on_event(event: Any) -> None:
        if isinstance(event, StepFinished) and event.step_index == len(steps) - 1:
            cancel.set()

    out = tmp_path / "out"
    orch = orchestrator(tiny_plate, out, executor="processes", num_workers=2)
    results = orch.execute_compiled_plate(steps, orch.compile_pipelines(steps), progress_callback=on_event,
                                          cancel_event=cancel)
    assert cancel.is_set() and any(r.status == "cancelled" for r in results.values())
    done = _check_interrupted_output(out, results, nothing_lost)
    _rerun_completes_exactly_the_rest(tiny_plate, out, steps, done, nothing_lost)


def test_write_interrupted_by_an_exception_leaves_no_partial_well(tiny_plate: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  nothing_lost: Callable[..., None]) -> None:
    """Ctrl-C (KeyboardInterrupt) lands in the middle of writing well A02's third field."""
    real = _ngff.multiscales

    def interrupt(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("name") == "A02/2":
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(_ngff, "multiscales", interrupt)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        orchestrator(tiny_plate, out, num_workers=1).run(pipeline())
    done = _check_interrupted_output(out, None, nothing_lost)
    assert done == {"A01"}, "the wells queued after the interrupt must not run"
    assert not (output_plate_path(out) / "A" / "02").exists()
    assert not (out / LOCK_FILE_NAME).exists(), "the lock must be released"
    monkeypatch.setattr(_ngff, "multiscales", real)
    _rerun_completes_exactly_the_rest(tiny_plate, out, pipeline(), done, nothing_lost)


# --------------------------------------------------------------------------- killed CLI run
def _cli(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``napari-openhcs <args>`` (with the suite's functions registered) in its own
    process group, so that the whole group (workers included) can be killed at once."""
    return subprocess.Popen([sys.executable, "-m", "reliability._cli", *args], env=env,
                            start_new_session=True, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _complete_wells(plate_path: Path) -> list[Path]:
    return [p for p in plate_path.glob("[A-Z]/[0-9]*") if (p / "zarr.json").is_file()]


@pytest.mark.parametrize("how", ["SIGKILL during a step", "SIGKILL during a write", "Ctrl-C during a write"])
@pytest.mark.usefixtures("registered_functions")
def test_stopped_cli_run_is_completed_by_a_rerun(tiny_plate: Path, tmp_path: Path, how: str,
                                                 nothing_lost: Callable[..., None]) -> None:
    """``napari-openhcs run`` (2 worker processes) stopped mid-run, then run again.

    SIGKILL goes to the whole process group (main process and workers): nothing can
    clean up, the lock is left behind and must be taken over. Ctrl-C (SIGINT to the
    group) cancels: exit code 130, the lock is released.
    """
    during_write = how.endswith("during a write")
    out = tmp_path / "out"
    plate_path = out / "synthetic.ome.zarr"
    pipeline_file = save_pipeline(pipeline(slow_s=0.05 if during_write else 0.25), tmp_path / "pipeline.yaml")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    args = ["run", str(tiny_plate), "--pipeline", str(pipeline_file), "--out", str(out), "--workers", "2"]

    first = _cli(args, {**env, SLOW_WRITE_ENV: "0.4" if during_write else "0"}, tmp_path / "first.log")
    sig = signal.SIGINT if how.startswith("Ctrl-C") else signal.SIGKILL
    try:
        def mid_run() -> bool:
            if first.poll() is not None:
                raise AssertionError("the run ended before it could be stopped:\n"
                                     + (tmp_path / "first.log").read_text())
            writing = any(plate_path.glob(".tmp-*"))
            return bool(_complete_wells(plate_path)) and (writing or not during_write)

        wait_for(mid_run, timeout=90, what="one complete well (and a well being written)")
        os.killpg(first.pid, sig)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    first_log = (tmp_path / "first.log").read_text()
    if sig == signal.SIGKILL:
        assert first.returncode == -signal.SIGKILL
        assert (out / LOCK_FILE_NAME).exists(), "the killed run's lock should be left behind"
    else:
        assert first.returncode == 130, first_log
        assert "completed wells are kept" in first_log
        assert not (out / LOCK_FILE_NAME).exists(), "an interrupted run must release its lock"
    done = _check_interrupted_output(out, None, nothing_lost, killed=sig == signal.SIGKILL)
    assert 0 < len(done) < len(WELLS)

    second = _cli([*args, "--executor", "threads"], env, tmp_path / "second.log")
    assert second.wait(timeout=120) == 0, (tmp_path / "second.log").read_text()
    log = (tmp_path / "second.log").read_text()
    assert ("taking over the stale lock" in log) == (sig == signal.SIGKILL), log
    for well in WELLS:
        status = "skipped" if well in done else "done"
        assert any(line.split()[:2] == [well, status] for line in log.splitlines()), log
    nothing_lost(out, WELLS)
    assert leftovers(out) == [] and not (out / LOCK_FILE_NAME).exists()


def test_tables_left_pending_by_a_killed_run_are_settled_by_the_rerun(
        tiny_plate: Path, tmp_path: Path, nothing_lost: Callable[..., None]) -> None:
    """The on-disk state a SIGKILL can leave, built exactly: well A02 was renamed into place
    but its table not yet given its final name; well B01 was killed before its rename."""
    out = tmp_path / "out"
    steps = pipeline()
    orch = orchestrator(tiny_plate, out)
    assert all(r.status == "done" for r in orch.run(steps).values())
    digest = orch.pipeline_hash(steps)
    stats = out / "tables" / "stats"
    (stats / "A02.csv").rename(stats / f".A02.csv.{digest}.pending")
    (stats / "B01.csv").rename(stats / f".B01.csv.{digest}.pending")
    shutil.rmtree(output_plate_path(out) / "B" / "01")
    (stats / ".B02.csv.1234-abcdef.partial").write_text("well,half a ro")
    results = orchestrator(tiny_plate, out).run(steps)
    assert {w: r.status for w, r in results.items()} == {"A01": "skipped", "A02": "skipped", "B01": "done",
                                                         "B02": "skipped"}
    assert sorted(p.name for p in stats.iterdir()) == [f"{w}.csv" for w in WELLS]
    nothing_lost(out, WELLS)
