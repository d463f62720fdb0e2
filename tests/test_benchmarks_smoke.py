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
        [sys.executable, str(RUN), "--plate", "tiny", "--repeats", "1", "--workers", "1", "--one-cpu",
         "--import-repeats", "1", "--data-dir", str(tmp_path / "data"), "--json", str(report_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert set(report["summary"]) == {"baseline", "engine_1w", "engine_1w_1cpu"}
    for label in ("baseline", "engine_1w", "engine_1w_1cpu"):
        summary = report["summary"][label]
        assert summary["failed_wells"] == []
        assert summary["wall_s"]["median"] > 0
        assert summary["peak_tree_mib"]["median"] > 0
        # both wrote tile positions, and they match the generator's ground truth
        assert summary["pos_err_max_px"]["median"] < 3.0
    engine = report["summary"]["engine_1w"]
    assert {"import", "initialize", "compile", "execute"} <= set(engine["phases_s"])
    assert engine["peak_worker_mib"]["median"] > 0
    first = engine["first_well_s"]["median"]  # a well started after the process did, within the run
    assert 0 < first < engine["wall_s"]["median"]
    assert "engine_1w/baseline" in report["ratios"]
    assert "engine_1w_1cpu/engine_1w" in report["ratios"]
    confined = [r for rep in report["runs"] for r in rep if r["label"] == "engine_1w_1cpu"]
    assert [r["cpus"] for r in confined] == [[0]]
    assert "engine_1w" in proc.stdout and "baseline" in proc.stdout
    assert not list((tmp_path / "data" / "runs").iterdir())  # outputs cleaned up


def test_machine_probe_measures_bandwidth_and_fresh_memory() -> None:
    import importlib.util

    path = REPO_ROOT / "benchmarks" / "probe_machine.py"
    spec = importlib.util.spec_from_file_location("probe_machine", path)
    assert spec and spec.loader
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    figures = probe.streaming_probe(0.0)  # start at once
    assert set(figures) == {"copy GB/s", "sum GB/s", "fft s"}
    assert all(v > 0 for v in figures.values())
    assert probe.fresh_memory_probe(0.0, huge_pages=True) > 0


def test_benchmark_compiles_the_package_bytecode_before_timing() -> None:
    """No timed process pays for compiling the package's sources (an installed copy never does)."""
    import importlib.util

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    try:
        from _common import compile_bytecode
    finally:
        sys.path.remove(str(REPO_ROOT / "benchmarks"))
    import napari_openhcs.core.orchestrator as module

    cached = Path(importlib.util.cache_from_source(module.__file__))
    cached.unlink(missing_ok=True)
    assert compile_bytecode()
    assert cached.is_file() and cached.stat().st_mtime >= Path(module.__file__).stat().st_mtime


def test_scale_benchmark_runs_on_a_few_wells(tmp_path: Path) -> None:
    """``bench_scale.py`` end to end on 2 wells: every figure measured, the output plate opened lazily."""
    report_path = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_scale.py"), "--wells", "2", "--repeats", "1",
         "--workers", "1", "--data-dir", str(tmp_path / "data"), "--json", str(report_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["wells"] == 2 and report["files"] == 2 * 9 * 4 * 5
    rows = {r["measure"]: r for r in report["rows"]}
    assert set(rows) == {"info (subprocess)", "initialize (scan the plate)", "compile reference (2 wells)",
                         "plate map repaint, status (1536)", "plate map repaint, value (1536)",
                         "output layers built (no viewer)", "open output plate (2 wells)",
                         "open output plate, CPU (all threads)"}
    assert all(r["median_s"] > 0 and r["n"] >= 1 for r in rows.values())
    assert report["lazy"] and report["output_layers"] == 5  # 4 channels and the well names
    assert "compile reference (2 wells)" in proc.stdout and "target" in proc.stdout
