"""The benchmark harness runs end to end on a tiny plate (so that it cannot rot)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
RUN = REPO_ROOT / "benchmarks" / "run.py"

pytest.importorskip("napari_openhcs.testing", reason="the synthetic plate generator is not available")


def test_benchmark_harness_runs_on_a_tiny_plate(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(RUN), "--plate", "tiny", "--repeats", "1", "--workers", "1",
         "--import-repeats", "1", "--data-dir", str(tmp_path / "data"), "--json", str(report_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert set(report["summary"]) == {"baseline", "engine_1w"}
    for label in ("baseline", "engine_1w"):
        summary = report["summary"][label]
        assert summary["failed_wells"] == []
        assert summary["wall_s"]["median"] > 0
        assert summary["peak_tree_mib"]["median"] > 0
        # both wrote tile positions, and they match the generator's ground truth
        assert summary["pos_err_max_px"]["median"] < 3.0
    engine = report["summary"]["engine_1w"]
    assert {"import", "initialize", "compile", "execute"} <= set(engine["phases_s"])
    assert engine["peak_worker_mib"]["median"] > 0
    assert "engine_1w/baseline" in report["ratios"]
    assert "engine_1w" in proc.stdout and "baseline" in proc.stdout
    assert not list((tmp_path / "data" / "runs").iterdir())  # outputs cleaned up
