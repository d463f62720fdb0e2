"""The GPU benchmark runs on a CPU-only machine too (GPU columns skipped), so that it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT / "benchmarks" / "bench_gpu.py"


def test_gpu_benchmark_runs_on_a_tiny_plate(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--size", "128", "--repeats", "1", "--plate", "tiny", "--workers", "1",
         "--data-dir", str(tmp_path / "data"), "--json", str(report_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    names = {row["function"].split("(")[0] for row in report["functions"]}
    assert {"gaussian_blur", "compute_tile_positions", "segment_nuclei", "max_projection"} <= names
    assert all(row["cpu_s"] > 0 for row in report["functions"])
    plate = report["plate"]
    assert plate["floor_s"] > 0 and plate["cpu_s"] > 0
    assert "per-function times" in proc.stdout and "I/O floor" in proc.stdout
    if not report["gpu"]:
        assert "no GPU: skipped GPU columns" in proc.stdout
        assert "gpu_s" not in plate
    else:
        assert plate["gpu_s"] > 0 and all(row["gpu_s"] > 0 for row in report["functions"])
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith("bench-gpu-")]  # cleaned up
