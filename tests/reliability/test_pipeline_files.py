"""Pipeline files: unknown functions, wrong types, files that try to construct Python
objects or expand without bound. Each is refused with a ``PipelineFileError`` that
says where the problem is, and nothing from the file is executed or imported."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_openhcs import load_pipeline
from napari_openhcs.core.pipeline_io import PipelineFileError

from ._support import TESTS_DIR

pytestmark = [pytest.mark.category("pipeline files"), pytest.mark.usefixtures("registered_functions")]

HEADER = "napari_openhcs_pipeline: 1\nsteps:\n"
MAX_Z = "reliability_max_z"  # registered by the registered_functions fixture
CHECK = "reliability_misbehave_if_marked"


def _load(tmp_path: Path, text: str | bytes) -> list:
    path = tmp_path / "pipeline.yaml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return load_pipeline(path)


@pytest.mark.parametrize("body, message", [
    (f"- function: {MAX_Z}x\n",
     rf"step 1 '': no function named '{MAX_Z}x' is registered; did you mean: {MAX_Z}"),
    ("- function: os.system\n", r"no function named 'os.system' is registered"),
    ("- function: napari_openhcs.testing.faults.kill_worker_always\n",
     r"no function named 'napari_openhcs.testing.faults.kill_worker_always' is registered"),
    ("- function: antigravity\n", r"no function named 'antigravity' is registered"),
])
def test_unknown_function_is_refused_and_nothing_is_imported(tmp_path: Path, body: str, message: str) -> None:
    before = set(sys.modules)
    with pytest.raises(PipelineFileError, match=message):
        _load(tmp_path, HEADER + body)
    assert not {"antigravity", "this"} & (set(sys.modules) - before)


@pytest.mark.parametrize("body, message", [
    (f"- function: {CHECK}\n  kwargs: {{seconds: soon}}\n",
     r"argument 'seconds' must be a number, got 'soon'"),
    (f"- function: {CHECK}\n  kwargs: {{seconds: true}}\n", r"argument 'seconds' must be a number, got True"),
    (f"- function: {CHECK}\n  kwargs: {{fault: 3}}\n", r"argument 'fault' must be text, got 3"),
    (f"- function: {CHECK}\n  kwargs: [1, 2]\n", r"'kwargs' must be a mapping, got list"),
    (f"- function: [{CHECK}]\n", r"'function' must be a registered name \(text\)"),
    (f"- function: {CHECK}\n  enabled: 'no'\n", r"'enabled' must be true or false, got 'no'"),
    (f"- function: {CHECK}\n  materialize: 'false'\n", r"'materialize' must be true or false, got 'false'"),
    (f"- function: {CHECK}\n  name: [1]\n", r"'name' must be text, got \[1\]"),
    (f"- function: {CHECK}\n  variable_components: [well]\n", r"variable_components may contain"),
    (f"- function: {CHECK}\n  group_by: plate\n", r"unknown component 'plate'"),
    (f"- function: {CHECK}\n  backend: quantum\n", r"backend must be 'auto', 'cpu' or 'gpu'"),
    (f"- function: {CHECK}\n  colour: red\n", r"unknown keys \['colour'\]"),
    (f"- chain: [{{function: {CHECK}}}, 5]\n", r"chain item 2: must be a mapping"),
    ("- per_group: {1: 5}\n", r"\[1\]: must be a mapping"),
    ("- 42\n", r"step 1: must be a mapping, got int"),
])
def test_wrong_types_are_refused_naming_the_step(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(PipelineFileError, match=message):
        _load(tmp_path, HEADER + body)


@pytest.mark.parametrize("text, message", [
    ("napari_openhcs_pipeline: 2\nsteps: []\n", r"unsupported pipeline schema version 2"),
    ("steps: []\n", r"unsupported pipeline schema version None"),
    ("- just a list\n", r"expected a mapping with 'steps'"),
    ("", r"expected a mapping with 'steps'"),
    (b"napari_openhcs_pipeline: 1\nsteps:\n- function: \xff\xfe\n", r"cannot read pipeline file"),
    ("napari_openhcs_pipeline: 1\nsteps: [\n", r"is not a valid pipeline file"),
])
def test_malformed_file_is_refused(tmp_path: Path, text: str | bytes, message: str) -> None:
    with pytest.raises(PipelineFileError, match=message):
        _load(tmp_path, text)


@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {marker}']",
    "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "!!python/name:os.system",
    "!!python/module:os",
])
def test_yaml_constructing_python_objects_is_refused_and_never_runs(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "pwned"
    text = HEADER + f"- function: {MAX_Z}\n  kwargs: {{x: {tag.format(marker=marker)}}}\n"
    with pytest.raises(PipelineFileError, match="not a valid pipeline file"):
        _load(tmp_path, text)
    text = HEADER + f"- function: {tag.format(marker=marker)}\n"
    with pytest.raises(PipelineFileError, match="not a valid pipeline file"):
        _load(tmp_path, text)
    assert not marker.exists()


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    """'Billion laughs': nine levels of nine aliases would expand to 9**9 items."""
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    text = ("napari_openhcs_pipeline: 1\n" + "\n".join(lines)
            + f"\nsteps:\n- function: {CHECK}\n  kwargs: {{fault: *a9}}\n")
    t0 = time.monotonic()
    with pytest.raises(PipelineFileError, match=r"aliases \(\*name\) are not allowed"):
        _load(tmp_path, text)
    assert time.monotonic() - t0 < 2.0


def test_deeply_nested_yaml_is_refused(tmp_path: Path) -> None:
    text = HEADER + f"- function: {CHECK}\n  kwargs: {{x: " + "[" * 50_000 + "]" * 50_000 + "}\n"
    with pytest.raises(PipelineFileError, match="nested too deeply|not a valid pipeline file"):
        _load(tmp_path, text)


def test_cli_refuses_a_bad_pipeline_before_touching_the_output(tiny_plate: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(HEADER + f"- function: !!python/object/apply:os.system ['touch {marker}']\n")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "reliability._cli", "run", str(tiny_plate), "--pipeline",
                           str(evil), "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: {evil} is not a valid pipeline file"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists() and not out.exists()
