"""The side-by-side benchmark against OpenHCS and the cost-per-well benchmark (so that they cannot rot)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT / "benchmarks"
DATA = REPO_ROOT / ".." / "shared" / "data"
OPENHCS_VENV_READY = BENCH / ".openhcs-venv" / ".ready-pipeline"

pytest.importorskip("napari_openhcs.testing", reason="the synthetic plate generator is not available")


@pytest.fixture
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import against_openhcs
        import bench_wells

        yield against_openhcs, bench_wells
    finally:
        sys.path.remove(str(BENCH))


def _run(label: str, tool: str, n: int, wall: float, peak: int = 100 << 20) -> dict:
    return {"label": f"{tool}_{n}w", "wall_s": wall, "cpu_s": wall, "peak_tree_bytes": peak,
            "phases": {"execute": wall / 2}, "accuracy": {"max_px": 0.5, "mean_px": 0.1}, "loadavg_1min": 1.0,
            "failed": {}, "tool": tool, "workers": n, "note": label}


def test_side_by_side_ratio_is_paired_within_each_repeat(bench_modules) -> None:
    against, _ = bench_modules
    repeats = [
        [_run("a", "openhcs", 1, 40.0), _run("a", "engine", 1, 8.0),
         _run("a", "openhcs", 2, 30.0), _run("a", "engine", 2, 5.0)],
        [_run("b", "engine", 1, 10.0), _run("b", "openhcs", 1, 60.0),
         _run("b", "engine", 2, 6.0), _run("b", "openhcs", 2, 30.0)],
        [_run("c", "openhcs", 1, 44.0), _run("c", "engine", 1, 11.0),
         _run("c", "openhcs", 2, 28.0), _run("c", "engine", 2, 4.0)],
    ]
    report = against.build_report(repeats, [1, 2])
    one, two = report["rows"]
    assert one["ratio"]["median"] == pytest.approx(5.0)  # 40/8, 60/10, 44/11 -> 5, 6, 4
    assert (one["ratio"]["min"], one["ratio"]["max"]) == (pytest.approx(4.0), pytest.approx(6.0))
    assert two["ratio"]["median"] == pytest.approx(6.0)  # 6, 5, 7
    assert one["openhcs"]["wall_s"]["median"] == 44.0 and one["engine"]["wall_s"]["median"] == 10.0
    report.update(plate={"spec": "x", "wells": 4, "images": 216, "bytes": 1 << 30},
                  machine={"cpus": 2}, openhcs="0.8.6", repeats=3, runs=repeats)
    table = against.format_table(report)
    assert "OpenHCS wall s" in table and "ratio" in table
    assert "5.00 (4.00–6.00)" in table and "6.00 (5.00–7.00)" in table


def test_openhcs_gets_a_linked_copy_of_the_plate(bench_modules, tmp_path: Path) -> None:
    against, _ = bench_modules
    plate = tmp_path / "plate"
    (plate / "TimePoint_1").mkdir(parents=True)
    (plate / "TimePoint_1" / "A01_s001_w1.tif").write_bytes(b"pixels")
    (plate / "openhcs_metadata.json").write_text("{}")  # what an earlier OpenHCS run left
    copy = against._copy_plate(plate, tmp_path / "run")
    linked = copy / "TimePoint_1" / "A01_s001_w1.tif"
    assert linked.read_bytes() == b"pixels"
    assert linked.stat().st_ino == (plate / "TimePoint_1" / "A01_s001_w1.tif").stat().st_ino
    assert not (copy / "openhcs_metadata.json").exists()


def test_marginal_cost_per_well_between_consecutive_counts(bench_modules) -> None:
    _, wells = bench_modules
    costs = wells.marginal_costs({96: 100.0, 4: 8.0, 24: 28.0})
    assert [(c["from"], c["to"]) for c in costs] == [(4, 24), (24, 96)]
    assert costs[0]["s_per_well"] == pytest.approx(1.0)
    assert costs[1]["s_per_well"] == pytest.approx(1.0)
    assert wells.plate_wells(14)[-2:] == ("B01", "B02")
    with pytest.raises(ValueError):
        wells.plate_wells(97)


def test_cost_per_well_benchmark_runs_on_small_plates(tmp_path: Path) -> None:
    report_path = tmp_path / "wells.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "bench_wells.py"), "--wells", "1,2,3", "--tile", "32", "--workers", "1",
         "--repeats", "1", "--data-dir", str(tmp_path / "data"), "--json", str(report_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert [row["wells"] for row in report["rows"]] == [1, 2, 3]
    assert all(not row["failed"] and row["peak_worker_mib"]["median"] > 0 for row in report["rows"])
    assert [(m["from"], m["to"]) for m in report["marginal"]] == [(1, 2), (2, 3)]
    assert [(m["from"], m["to"]) for m in report["marginal_cpu"]] == [(1, 2), (2, 3)]
    assert "marginal wall seconds per well, 2 → 3 wells" in proc.stdout
    assert "flat CPU cost per well" in proc.stdout
    assert not list((tmp_path / "data" / "runs").iterdir())  # outputs cleaned up


@pytest.mark.skipif(not OPENHCS_VENV_READY.is_file(),
                    reason="OpenHCS's benchmark environment is not made (python benchmarks/run.py "
                           "--against-openhcs makes it; it needs the package registry)")
def test_side_by_side_runs_openhcs_and_the_engine_on_openhcs_plate(tmp_path: Path) -> None:
    source = DATA / "openhcs_generator_tiny_3wells"
    if not source.is_dir():
        pytest.skip(f"shared data folder absent: {source}")
    shutil.copytree(source, tmp_path / "plate")
    report_path = tmp_path / "side.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--against-openhcs", "--plate",
         str(tmp_path / "plate" / "openhcs_synthetic_tiny"), "--workers", "1", "--repeats", "1",
         "--data-dir", str(tmp_path / "data"), "--json", str(report_path)],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    (row,) = report["rows"]
    assert report["openhcs"] == "0.8.6"
    for tool in ("openhcs", "engine"):
        assert row[tool]["failed_wells"] == []
        assert row[tool]["wall_s"]["median"] > 0 and row[tool]["peak_tree_mib"]["median"] > 0
        assert row[tool]["pos_err_max_px"]["median"] < 3.0  # both found the tiles
    assert row["ratio"]["median"] > 0
    assert "OpenHCS wall s" in proc.stdout
    assert not (tmp_path / "plate" / "openhcs_synthetic_tiny" / "openhcs_metadata.json").exists()
