"""Process faults: a worker process killed with SIGKILL in the middle of a well.

The supervisor attributes the dead worker to its well, retries the well once in a
fresh worker, and reports it failed if the retry dies too; the other wells go on and
the output stays readable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from ._support import WELLS, copy_plate, mark_tile, pipeline, run, tiles

pytestmark = pytest.mark.category("process faults")

BAD = "A02"
GOOD = tuple(w for w in WELLS if w != BAD)


def test_worker_killed_once_is_retried_and_the_well_succeeds(
        tiny_plate: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        nothing_lost: Callable[..., None]) -> None:
    marker = tmp_path / "killed-once"
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="napari_openhcs.core.workers.local"):
        results = run(tiny_plate, out, pipeline(kill_marker=marker), executor="processes", num_workers=2)
    assert marker.exists(), "no worker was killed: the test did not exercise the fault"
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 1 and "killed by a signal" in retried[0], retried
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    nothing_lost(out, WELLS)


def test_worker_killed_every_time_fails_its_well_after_one_retry(
        tiny_plate: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        nothing_lost: Callable[..., None]) -> None:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    mark_tile(tiles(plate, BAD, site=1, wave=2)[0])
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="napari_openhcs.core.workers.local"):
        results = run(plate, out, pipeline("kill_always"), executor="processes", num_workers=2)
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 1 and retried[0].startswith(f"well {BAD}:"), retried
    assert results[BAD].status == "failed"
    assert results[BAD].error == (f"well {BAD}: its worker process died (exit code -9, killed by a signal, "
                                  "e.g. the out-of-memory killer) (tried 2 times)")
    assert all(results[w].status == "done" for w in GOOD), {w: results[w].error for w in GOOD}
    nothing_lost(out, GOOD, absent=[BAD])
