"""Signals and hung work, through the CLI with real signals: SIGTERM (what ``timeout``,
systemd, SLURM and docker send) and one Ctrl-C stop the workers within seconds, release
the lock, keep only complete wells and say which (exit 143/130); no worker process is
left behind. A frozen worker (SIGSTOP) is found by the heartbeat (or the per-well
timeout) and killed; its well is retried once, then fails with the reason. A rerun
then completes the plate, equal to an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from napari_openhcs import save_pipeline
from napari_openhcs.io.lock import LOCK_FILE_NAME

from ._cli_run import checksum_tree, cli, start_cli
from ._support import WELLS, complete_wells_on_disk, output_plate_path, pipeline, wait_for

pytestmark = [pytest.mark.category("signals and hung work"), pytest.mark.usefixtures("registered_functions")]


def _workers(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _gone(procs: list[psutil.Process], timeout: float = 10.0) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.parametrize("how", ["SIGTERM", "Ctrl-C"])
def test_signal_stops_the_run_cleanly(tiny_plate: Path, tmp_path: Path, how: str,
                                      nothing_lost: Callable[..., None]) -> None:
    """SIGTERM to the command alone (as ``timeout`` sends it), or SIGINT to its process group
    (as a terminal sends Ctrl-C), once, in the middle of a run of 2 worker processes."""
    raw = checksum_tree(tiny_plate)
    out = tmp_path / "out"
    steps = save_pipeline(pipeline(slow_s=0.3), tmp_path / "slow.yaml")
    args = ["run", tiny_plate, "--pipeline", steps, "--out", out, "--workers", "2"]
    log = tmp_path / "run.log"
    proc = start_cli(*args, log=log)
    try:
        wait_for(lambda: out.joinpath("synthetic.ome.zarr").is_dir() and len(_workers(proc.pid)) >= 2
                 and proc.poll() is None, timeout=60, what="a run with its workers")
        time.sleep(0.5)
        children = _workers(proc.pid)
        if how == "SIGTERM":
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        t0 = time.monotonic()
        code = proc.wait(timeout=30)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors="replace")
    assert code == (143 if how == "SIGTERM" else 130), text
    assert stopped_in < 10, f"took {stopped_in:.1f} s to stop"
    assert "Traceback" not in text, text
    assert "completed wells are kept" in text, text
    assert not (out / LOCK_FILE_NAME).exists(), "the lock must be released"
    orphans = _gone(children)
    assert not orphans, f"worker processes left running: {orphans}"
    kept = complete_wells_on_disk(out)
    nothing_lost(out, kept, absent=set(WELLS) - set(kept))
    rerun = cli(*args[:-2], "--executor", "threads")
    assert rerun.returncode == 0, rerun.stderr
    nothing_lost(out, WELLS)
    assert checksum_tree(tiny_plate) == raw


@pytest.mark.parametrize("check", ["heartbeat", "well timeout"])
def test_frozen_worker_is_stopped_retried_then_failed(tiny_plate: Path, tmp_path: Path, check: str,
                                                      nothing_lost: Callable[..., None]) -> None:
    """``kill -STOP`` the only worker mid-well, then the worker that retries its well: the
    heartbeat (no well timeout set) or ``--well-timeout`` (heartbeat off) kills each, the
    well is retried once, then fails with the reason and the step; the other wells
    complete (exit 1), and a rerun completes the failed one."""
    out = tmp_path / "out"
    steps = save_pipeline(pipeline(slow_s=0.15), tmp_path / "slow.yaml")
    args = ["run", tiny_plate, "--pipeline", steps, "--out", out, "--workers", "1"]
    limits = (["--stall-timeout", "3"] if check == "heartbeat"
              else ["--well-timeout", "4", "--stall-timeout", "off"])
    log = tmp_path / "run.log"
    proc = start_cli(*args, *limits, log=log)
    frozen: list[psutil.Process] = []
    try:
        found: list[psutil.Process] = []

        def settled_worker() -> bool:
            """A worker not frozen yet that is still one 0.3 s later (mid-well by then): the
            fork server, between its fork and its exec, carries the command's own command
            line and would pass for a worker (seen on a loaded machine)."""
            if proc.poll() is not None:
                raise AssertionError(log.read_text())
            fresh = [p for p in _stoppable(proc.pid) if p.pid not in {f.pid for f in frozen}]
            if not fresh:
                return False
            time.sleep(0.3)
            still = [p for p in _stoppable(proc.pid) if p.pid == fresh[0].pid]
            found[:] = still
            return bool(still)

        for _ in range(2):  # the worker running the well, then the one retrying it
            wait_for(settled_worker, timeout=60, what="a worker")
            worker = found[0]
            worker.send_signal(signal.SIGSTOP)
            frozen.append(worker)
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = log.read_text(errors="replace")
    assert code == 1, text
    reason = "no progress for 3 s in step" if check == "heartbeat" else "per-well timeout of 4 s in step"
    assert "retrying it" in text and reason in text and "(tried 2 times)" in text, text
    assert "Traceback" not in text, text
    failed = [line.split()[0] for line in text.splitlines() if line[:3] in WELLS and " failed " in line]
    assert len(failed) == 1, text
    for p in frozen:
        assert not psutil.pid_exists(p.pid) or p.status() == psutil.STATUS_ZOMBIE
    done = set(WELLS) - set(failed)
    nothing_lost(out, done, absent=failed)
    rerun = cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    nothing_lost(out, WELLS)
    assert output_plate_path(out).is_dir()


def _stoppable(pid: int) -> list[psutil.Process]:
    """Worker processes: the children of the command's fork server (or its own children
    that are neither the fork server nor the resource tracker)."""
    out = []
    for p in _workers(pid):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if "resource_tracker" in cmd or "forkserver" in cmd and p.ppid() == pid:
            continue
        out.append(p)
    return out
