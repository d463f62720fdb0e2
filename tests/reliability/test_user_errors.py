"""Errors a user can cause, through the CLI: each ends in one line naming the file, step or
parameter (a traceback only with ``-v``), never a hang and never a memory bomb; a plate
folder whose name is not UTF-8 runs. And the command's own manners: ``--version``, help
with exit codes, ``-v`` after the subcommand, a closed pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from napari_openhcs import save_pipeline
from napari_openhcs.io.lock import LOCK_FILE_NAME

from ._cli_run import checksum_tree, cli, cli_env, one_line_error
from ._support import WELLS, copy_plate, output_plate_path, pipeline, run, tiles

pytestmark = [pytest.mark.category("user errors"), pytest.mark.usefixtures("registered_functions")]


@pytest.fixture
def good_pipeline(tmp_path: Path) -> Path:
    return save_pipeline(pipeline(), tmp_path / "good.yaml")


@pytest.fixture(scope="module")
def zarr_plate(tiny_plate: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OME-Zarr plate (one of our outputs), to be copied and spoiled."""
    out = tmp_path_factory.mktemp("zarr-input")
    assert all(r.status == "done" for r in run(tiny_plate, out).values())
    return output_plate_path(out)


def _run(plate: Path, pipeline_file: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("run", plate, "--pipeline", pipeline_file, "--out", out, "--executor", "threads", *extra,
               timeout=60)


@pytest.mark.parametrize("content", ["garbage", "foreign", "stale"])
def test_lock_files_that_are_not_ours_end_in_one_line(tiny_plate: Path, tmp_path: Path,
                                                      good_pipeline: Path, content: str,
                                                      nothing_lost: Callable[..., None]) -> None:
    """A corrupt, foreign or stale lock file: taken over (stale) or refused in one line."""
    out = tmp_path / "out"
    out.mkdir()
    text = {"garbage": "\x00\xff not json", "foreign": json.dumps({"owner": "someone else"}),
            "stale": json.dumps({"pid": 2**22 + 12345, "host": os.uname().nodename, "started": 0})}[content]
    (out / LOCK_FILE_NAME).write_bytes(text.encode("utf-8", "surrogateescape"))
    proc = _run(tiny_plate, good_pipeline, out)
    if proc.returncode == 0:
        nothing_lost(out, WELLS)
    else:
        one_line_error(proc, LOCK_FILE_NAME)


def test_locked_output_ends_in_one_line(tiny_plate: Path, tmp_path: Path, good_pipeline: Path) -> None:
    from napari_openhcs.io import OutputLock

    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):
        proc = _run(tiny_plate, good_pipeline, out)
    one_line_error(proc, str(out))


def test_fifo_as_the_pipeline_file_does_not_hang(tiny_plate: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipeline.yaml"
    os.mkfifo(fifo)
    one_line_error(_run(tiny_plate, fifo, tmp_path / "out"), str(fifo), "not a regular file")


def test_fifo_as_a_zarr_chunk_does_not_hang(zarr_plate: Path, tmp_path: Path, good_pipeline: Path) -> None:
    plate = copy_plate(zarr_plate, tmp_path / "plate.ome.zarr")
    chunk = next(p for p in sorted(plate.rglob("*")) if p.is_file() and "c" in p.relative_to(plate).parts)
    for p in sorted(chunk.parent.iterdir()):
        if p.is_file():
            p.unlink()
            os.mkfifo(p)
    proc = _run(plate, good_pipeline, tmp_path / "out")
    assert proc.returncode in (0, 1), proc.stderr
    assert "Traceback" not in proc.stderr


def test_deeply_nested_zarr_json_ends_in_one_line(zarr_plate: Path, tmp_path: Path,
                                                  good_pipeline: Path) -> None:
    plate = copy_plate(zarr_plate, tmp_path / "plate.ome.zarr")
    (plate / "A" / "01" / "zarr.json").write_text("[" * 200_000 + "]" * 200_000)
    proc = _run(plate, good_pipeline, tmp_path / "out")
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr


def test_zarr_array_declaring_1e8_planes_is_refused(zarr_plate: Path, tmp_path: Path,
                                                    good_pipeline: Path) -> None:
    plate = copy_plate(zarr_plate, tmp_path / "plate.ome.zarr")
    for level in sorted(plate.glob("*/*/*/*/zarr.json")):
        doc = json.loads(level.read_text())
        if doc.get("node_type") == "array":
            doc["shape"][2] = 10**8
            level.write_text(json.dumps(doc))
    proc = _run(plate, good_pipeline, tmp_path / "out")
    one_line_error(proc)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("A/01/zarr.json"))


def test_symlink_loop_among_tiles_ends_cleanly(tiny_plate: Path, tmp_path: Path, good_pipeline: Path) -> None:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    tile = tiles(plate, "A01")[0]
    loop = tile.parent / "loop_A01_s9_w1.TIF"
    loop.symlink_to(loop.name)
    tile.unlink()
    tile.symlink_to(tile.name)
    proc = _run(plate, good_pipeline, tmp_path / "out")
    assert proc.returncode in (0, 1) and "Traceback" not in proc.stderr, proc.stderr
    assert "A01" in proc.stdout + proc.stderr


def test_nan_parameter_is_caught_by_validate(tiny_plate: Path, tmp_path: Path) -> None:
    steps = save_pipeline(pipeline("hang", seconds=float("nan")), tmp_path / "nan.yaml")
    for command in ("validate", "run"):
        proc = cli(command, tiny_plate, "--pipeline", steps, "--out", tmp_path / "out")
        one_line_error(proc, "'seconds'", "NaN", "step 1")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("func", "kwargs", "needles"), [
    ("percentile_normalize", {"low": 150.0}, ("'low'", "150.0", "allowed: 0 to 100")),
    ("percentile_normalize", {"low": 60.0, "high": 40.0}, ("'low'", "60.0", "less than high (40)")),
    ("gaussian_blur", {"sigma": -1.0}, ("'sigma'", "-1.0", "allowed: >= 0")),
], ids=["percentile-above-100", "low-not-below-high", "negative-sigma"])
def test_out_of_range_parameter_is_caught_by_validate(tiny_plate: Path, tmp_path: Path, func: str,
                                                      kwargs: dict[str, float],
                                                      needles: tuple[str, ...]) -> None:
    """A saved pipeline with a parameter outside the range its function declares: ``validate``
    refuses it in one line naming the step, parameter, value and range, as ``run`` does."""
    from napari_openhcs import FunctionStep
    from napari_openhcs.functions.registry import get_function

    steps = [*pipeline(), FunctionStep(func=(get_function(func).func, kwargs), name="tune")]
    saved = save_pipeline(steps, tmp_path / "range.yaml")
    for command in ("validate", "run"):
        proc = cli(command, tiny_plate, "--pipeline", saved, "--out", tmp_path / "out")
        one_line_error(proc, f"step {len(steps)} 'tune'", f"{func}()", *needles)
    assert not (tmp_path / "out").exists()


def test_non_utf8_plate_folder_name_runs(tiny_plate: Path, tmp_path: Path, good_pipeline: Path,
                                         nothing_lost: Callable[..., None]) -> None:
    name = os.fsdecode(b"plate-\xff\xfe")
    plate = copy_plate(tiny_plate, tmp_path / name)
    out = tmp_path / "out"
    proc = _run(plate, good_pipeline, out)
    assert proc.returncode == 0, proc.stderr
    nothing_lost(out, WELLS)


def test_full_disk_names_the_path(tiny_plate: Path, tmp_path: Path, good_pipeline: Path) -> None:
    """A real full disk: a 96 KiB tmpfs (needs ``mount``)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {made.stderr.strip() or made.returncode}")
    try:
        raw = checksum_tree(tiny_plate)
        proc = _run(tiny_plate, good_pipeline, mnt / "out")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert "No space left" in proc.stdout + proc.stderr or "full" in proc.stdout + proc.stderr
        assert str(mnt / "out") in proc.stdout + proc.stderr
        assert checksum_tree(tiny_plate) == raw
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_version_help_and_verbose_after_the_subcommand(tiny_plate: Path) -> None:
    from napari_openhcs import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and __version__ in proc.stdout
    for sub in ("", "run", "validate", "info", "demo"):
        text = cli(*([sub] if sub else []), "--help").stdout
        assert "143" in text and "130" in text, text
        assert "help" not in [line.split()[-1] for line in text.splitlines() if line.strip()[:2] == "--"]
    proc = cli("info", tiny_plate, "-v")
    assert proc.returncode == 0, proc.stderr


def test_closed_pipe_ends_quietly(tiny_plate: Path) -> None:
    r, w = os.pipe()
    os.close(r)
    proc = subprocess.run([sys.executable, "-m", "reliability._cli", "info", str(tiny_plate)],
                          env=cli_env(), stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(w)
    assert "Traceback" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
