"""Bad steps: a step that raises, returns the wrong shape or dtype, NaN/Inf, or hangs.

Only the well whose tile is marked misbehaves; it fails with a message naming the
step and the reason, and every other well's output equals an uninterrupted run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ._support import copy_plate, mark_tile, pipeline, run, tiles

pytestmark = pytest.mark.category("bad steps")

BAD = "A02"
GOOD = ("A01", "B01", "B02")


@pytest.fixture
def marked_plate(tiny_plate: Path, tmp_path: Path) -> Path:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    mark_tile(tiles(plate, BAD, site=2, wave=1)[0])
    return plate


@pytest.mark.parametrize("fault, reason", [
    ("raise", r"RuntimeError: deliberate failure on the marked tile"),
    ("wrong_shape", r"returned an array of shape \(1, 1, 4, 64, 64\); expected a \(N, Y, X\) stack"),
    ("wrong_count", r"returned 5 slices for 4 input slices"),
    ("nan", r"returned 1 NaN or infinite values"),
    ("inf", r"returned 1 NaN or infinite values"),
    ("strings", r"returned an array of dtype object; expected numbers"),
    ("complex", r"returned an array of dtype complex64; expected real numbers"),
])
def test_misbehaving_step_fails_only_its_well(marked_plate: Path, tmp_path: Path, fault: str, reason: str,
                                              nothing_lost: Callable[..., None]) -> None:
    out = tmp_path / "out"
    results = run(marked_plate, out, pipeline(fault))
    assert results[BAD].status == "failed"
    assert results[BAD].error is not None
    assert "step 1 'check' failed on well A02" in results[BAD].error
    assert re.search(reason, results[BAD].error), results[BAD].error
    assert all(results[w].status == "done" for w in GOOD), {w: results[w].error for w in GOOD}
    nothing_lost(out, GOOD, absent=[BAD])


def test_hanging_step_is_stopped_by_the_well_timeout(marked_plate: Path, tmp_path: Path,
                                                      nothing_lost: Callable[..., None]) -> None:
    """A step that never returns, in a worker process: the supervisor kills it after the timeout."""
    out = tmp_path / "out"
    t0 = time.monotonic()
    # 3 s, not less: a worker's first well also pays for its imports (about 1.3 s on a busy 2-core box)
    results = run(marked_plate, out, pipeline("hang"), executor="processes", num_workers=2,
                  well_timeout_s=3.0)
    elapsed = time.monotonic() - t0
    assert results[BAD].status == "failed"
    assert "exceeded the per-well timeout of 3 s" in (results[BAD].error or "")
    assert all(results[w].status == "done" for w in GOOD), {w: results[w].error for w in GOOD}
    assert elapsed < 60, f"the hung well held the run for {elapsed:.0f} s"
    nothing_lost(out, GOOD, absent=[BAD])
