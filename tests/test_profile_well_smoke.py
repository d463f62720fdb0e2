"""``benchmarks/profile_well.py`` profiles and times one well end to end on a tiny plate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILE = REPO_ROOT / "benchmarks" / "profile_well.py"

pytest.importorskip("napari_openhcs.testing", reason="the synthetic plate generator is not available")


def _run(*args: str, data: Path) -> str:
    proc = subprocess.run([sys.executable, str(PROFILE), "--plate", "tiny", "--data-dir", str(data), *args],
                          capture_output=True, text=True, timeout=240, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_repeats_print_every_step_and_the_cpu_time_of_the_well(tmp_path: Path) -> None:
    out = _run("--repeats", "2", data=tmp_path)
    rows = {line.split()[0]: line.split()[-2:] for line in out.splitlines()[2:] if line.strip()}
    assert {"read", "normalize", "assemble", "write", "total", "cpu"} <= set(rows)
    assert "tile" in rows  # "tile positions"
    assert all(0 <= float(v) for pair in rows.values() for v in pair)
    assert float(rows["total"][0]) > 0 and float(rows["cpu"][0]) > 0
    assert "(2 runs)" in out.splitlines()[1]
    assert [p.name for p in tmp_path.iterdir()] == ["plates"]  # the run outputs are removed


def test_profile_lists_the_functions_of_a_well(tmp_path: Path) -> None:
    out = _run("--top", "5", data=tmp_path)
    assert "step timings:" in out and "well A01:" in out and "function calls" in out
