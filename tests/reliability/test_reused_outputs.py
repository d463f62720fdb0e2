"""What careless users do with output folders, through the CLI on copies of plates:
reuse one output for two plates or two pipelines, run an output plate back into its own
folder, ``--overwrite`` with a pipeline that fails, replace input images and rerun, drop
foreign CSVs among the tables. No result is removed before its replacement is complete;
an output belongs to one input and one pipeline; the raw plates never change.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pytest

from napari_openhcs import save_pipeline
from napari_openhcs.testing import make_synthetic_plate

from ._cli_run import checksum_tree, cli, one_line_error
from ._support import WELLS, copy_plate, mark_tile, output_plate_path, pipeline, tiles

pytestmark = [pytest.mark.category("reused outputs and reruns"),
              pytest.mark.usefixtures("registered_functions")]


def _run(plate: Path, pipeline_file: Path, out: Path, *extra: str) -> object:
    return cli("run", plate, "--pipeline", pipeline_file, "--out", out, "--executor", "threads",
               "--workers", "2", *extra)


@pytest.fixture
def good_pipeline(tmp_path: Path) -> Path:
    return save_pipeline(pipeline(), tmp_path / "good.yaml")


@pytest.fixture
def other_pipeline(tmp_path: Path) -> Path:
    return save_pipeline(pipeline(slow_s=0.001), tmp_path / "other.yaml")


def test_output_plate_run_back_into_its_own_folder_is_refused(
        tiny_plate: Path, tmp_path: Path, good_pipeline: Path, other_pipeline: Path,
        nothing_lost: Callable[..., None]) -> None:
    """``run P --out R`` then ``run R/<plate>.ome.zarr --out R``: the input is inside the output."""
    out = tmp_path / "R"
    assert _run(tiny_plate, good_pipeline, out).returncode == 0
    before = checksum_tree(out)
    proc = _run(output_plate_path(out), other_pipeline, out)
    one_line_error(proc, "inside the output folder")
    assert checksum_tree(out) == before
    nothing_lost(out, WELLS)


def test_overwrite_with_a_failing_pipeline_keeps_the_old_wells(
        tiny_plate: Path, tmp_path: Path, good_pipeline: Path, nothing_lost: Callable[..., None]) -> None:
    """Every well of the ``--overwrite`` run fails: the old wells and their tables stay."""
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    out = tmp_path / "out"
    assert _run(plate, good_pipeline, out).returncode == 0
    for well in WELLS:
        mark_tile(tiles(plate, well, site=1, wave=1)[0])
    raw = checksum_tree(plate)
    failing = save_pipeline(pipeline("raise"), tmp_path / "failing.yaml")
    proc = _run(plate, failing, out, "--overwrite")
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("failed") >= len(WELLS), proc.stdout
    nothing_lost(out, WELLS)
    assert checksum_tree(plate) == raw


def test_second_plate_into_the_first_plates_output_is_refused(
        tiny_plate: Path, tmp_path: Path, good_pipeline: Path, nothing_lost: Callable[..., None]) -> None:
    """Two plates of the same name, one ``--out``: refused, naming both; with ``--overwrite``
    the second replaces the first (never a mix)."""
    other = make_synthetic_plate(tmp_path / "second", spec="tiny", seed=7, wells=WELLS)
    raw = checksum_tree(other)
    out = tmp_path / "out"
    assert _run(tiny_plate, good_pipeline, out).returncode == 0
    proc = _run(other, good_pipeline, out)
    one_line_error(proc, "another input plate", str(tiny_plate.resolve()), str(other.resolve()))
    nothing_lost(out, WELLS)
    proc = _run(other, good_pipeline, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert checksum_tree(other) == raw
    import json
    attrs = json.loads((output_plate_path(out) / "zarr.json").read_text())["attributes"]["napari_openhcs"]
    assert attrs["input"]["path"] == str(other.resolve())


def test_another_pipeline_for_some_wells_is_refused(
        tiny_plate: Path, tmp_path: Path, good_pipeline: Path, other_pipeline: Path,
        nothing_lost: Callable[..., None]) -> None:
    """``--wells A01`` with another pipeline would mix two pipelines in one plate."""
    out = tmp_path / "out"
    assert _run(tiny_plate, good_pipeline, out).returncode == 0
    proc = _run(tiny_plate, other_pipeline, out, "--wells", "A01")
    one_line_error(proc, "another pipeline", "--overwrite")
    checked = cli("validate", tiny_plate, "--pipeline", other_pipeline, "--out", out)
    one_line_error(checked, "another pipeline")  # validate refuses what run refuses
    nothing_lost(out, WELLS)


def test_overwrite_with_another_pipeline_for_some_wells_is_refused(
        tiny_plate: Path, tmp_path: Path, good_pipeline: Path, other_pipeline: Path,
        nothing_lost: Callable[..., None]) -> None:
    """``--overwrite --wells A01`` with another pipeline would leave the other wells of the old
    one: refused before computing, naming both pipelines; nothing changes. All wells: replaced."""
    import json

    out = tmp_path / "out"
    assert _run(tiny_plate, good_pipeline, out).returncode == 0
    before = checksum_tree(out)
    proc = _run(tiny_plate, other_pipeline, out, "--overwrite", "--wells", "A01")
    line = one_line_error(proc, "another pipeline (hash ", "this run's (hash ", "run all wells", "new --out")
    assert [w for w in WELLS if w != "A01"][0] in line, line
    assert checksum_tree(out) == before
    nothing_lost(out, WELLS)
    proc = _run(tiny_plate, other_pipeline, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    plate = output_plate_path(out)
    new_hash = json.loads((plate / "zarr.json").read_text())["attributes"]["napari_openhcs"]["pipeline_hash"]
    for well in WELLS:
        doc = json.loads((plate / well[0] / well[1:] / "zarr.json").read_text())
        assert doc["attributes"]["napari_openhcs"]["pipeline_hash"] == new_hash, well
    nothing_lost(out, WELLS)


def test_foreign_csvs_in_tables_are_not_read(
        tiny_plate: Path, tmp_path: Path, good_pipeline: Path, nothing_lost: Callable[..., None]) -> None:
    """CSVs we did not write, in ``tables/``, stay out of the plate tables; rows name plate and well."""
    out = tmp_path / "out"
    (out / "tables" / "stats").mkdir(parents=True)
    (out / "tables" / "stats" / "H12.csv").write_text("well,max\nH12,999999\n")
    (out / "tables" / "stats" / "notes.csv").write_text("anything\n1\n")
    (out / "tables" / "foreign").mkdir()
    (out / "tables" / "foreign" / "A01.csv").write_text("x\n1\n")
    assert _run(tiny_plate, good_pipeline, out).returncode == 0
    with open(out / "tables" / "stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["well"] for r in rows} == set(WELLS)
    assert {r["plate"] for r in rows} == {"synthetic"}
    assert not (out / "tables" / "foreign.csv").exists()
    nothing_lost(out, WELLS)


def test_images_replaced_at_the_same_paths_are_recomputed(
        tiny_plate: Path, tmp_path: Path, good_pipeline: Path) -> None:
    """Resume by content: a well whose files changed is computed again, the others skipped."""
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    out = tmp_path / "out"
    assert _run(plate, good_pipeline, out).returncode == 0
    for tile in tiles(plate, "B02"):
        mark_tile(tile)
    proc = _run(plate, good_pipeline, out)
    assert proc.returncode == 0, proc.stderr
    status = {line.split()[0]: line.split()[1] for line in proc.stdout.splitlines()
              if line[:3] in WELLS}
    assert status == {"A01": "skipped", "A02": "skipped", "B01": "skipped", "B02": "done"}, proc.stdout
