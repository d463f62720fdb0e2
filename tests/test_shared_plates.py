"""Plates made by other tools, opened as they are: OpenHCS's synthetic generator, and every
shared plate with pixels through the reference pipeline via the ``napari-openhcs`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator, open_plate
from napari_openhcs.io import open_output_plate, read_table_csv
from napari_openhcs.microscopes._handler_utils import plate_z_spacing
from napari_openhcs.microscopes._ixm_files import parse_image_name
from napari_openhcs.microscopes.plate import fit_layout
from napari_openhcs.pipelines import reference_pipeline

OPENHCS = "openhcs_generator_tiny_3wells"
REPO = Path(__file__).resolve().parents[1]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "napari_openhcs.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **env})


# ------------------------------------------------------------------ the OpenHCS generator's plate
def test_openhcs_names_parse_like_metaxpress_ones() -> None:
    bare = parse_image_name("A01_s001_w2.tif")
    assert bare is not None and (bare.plate, bare.well, bare.site, bare.wave) == ("", "A01", 1, 2)
    prefixed = parse_image_name("9987_A01_s1_w2.TIF")
    assert prefixed is not None and prefixed[1:4] == bare[1:4] and prefixed.plate == "9987"
    assert parse_image_name("D04_s012_w1.tif")[1:4] == ("D04", 12, 1)  # type: ignore[index]
    assert parse_image_name("s001_w1.tif") is None and parse_image_name("1.tif") is None


def test_info_reports_what_the_provenance_says(shared_data: Path) -> None:
    res = _cli("info", str(shared_data / OPENHCS))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Plate openhcs_synthetic_tiny (imagexpress)" in out
    assert "wells:       3 with images: A01, B02, D04" in out
    assert "sites:       4 per well: 1-4 (grid 2 x 2)" in out
    assert "channels:    2: 1 W1, 2 W2" in out
    assert "z-planes:    3: 1-3" in out
    assert "pixel size:  0.65 µm" in out
    assert "128 x 128 px (width x height), uint16" in out
    assert "planes; 72 images" in out and "missing:     none" in out
    # the HTD says 3 x 4 wells; D04 is on disk in row D: the layout widens, with a warning
    assert "layout:      4 rows x 4 columns" in out
    assert "3 x 4" in res.stderr and "D04" in res.stderr
    assert "layout_widened:       openhcs_synthetic_tiny.HTD declares 3 x 4 wells" in out


def test_info_json_on_the_openhcs_plate(shared_data: Path) -> None:
    res = _cli("info", str(shared_data / OPENHCS), "--json")
    assert res.returncode == 0, res.stderr
    assert "D04" in res.stdout and "0.65" in res.stdout


@pytest.fixture(scope="module")
def openhcs_run(
    shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, PipelineOrchestrator, dict]:
    out = tmp_path_factory.mktemp("openhcs")
    orch = PipelineOrchestrator(shared_data / OPENHCS,
                                global_config=GlobalPipelineConfig(num_workers=2, output_dir=out))
    return shared_data / OPENHCS, orch, orch.run(reference_pipeline())


def test_reference_pipeline_processes_every_well_including_d04(openhcs_run) -> None:
    _, orch, results = openhcs_run
    assert {w: r.status for w, r in results.items()} == {"A01": "done", "B02": "done", "D04": "done"}
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    hcs = HCS.from_zarr(zarr.open_group(orch.output_path, mode="r"))
    plate = hcs.attributes.ome.plate
    assert [r.name for r in plate.rows] == ["A", "B", "C", "D"]
    assert [c.name for c in plate.columns] == ["01", "02", "03", "04"]
    assert sorted(w.path for w in plate.wells) == ["A/01", "B/02", "D/04"]
    out = open_output_plate(orch.output_path)
    assert [c.name for c in out.channels] == ["W1", "W2"]
    assert out.pixel_size_um == pytest.approx(0.65)
    t, c, z, y, x = out.fields("D04")[0].shape
    assert (t, c, z) == (1, 2, 1)
    extent = out.field_attributes("D04", 0)["extent"]  # the mosaic inside the plate's canvas
    assert 230 <= extent["y"] <= 260 and 230 <= extent["x"] <= 260  # 2 x 2 tiles of 128 px
    assert y >= extent["y"] and x >= extent["x"]
    assert {f.shape for w in ("A01", "B02", "D04") for f in out.fields(w)} == {(t, c, z, y, x)}


def test_tiles_within_one_pixel_of_the_generators_ground_truth(openhcs_run) -> None:
    plate_dir, orch, _ = openhcs_run
    truth = json.loads((plate_dir / "ground_truth_params.json").read_text())["true_tile_origins_xy"]
    table = read_table_csv(orch.output_dir / "tables" / "positions.csv")
    worst = 0.0
    for well, origins_xy in truth.items():
        rows = table["well"] == well
        order = np.argsort(table["tile"][rows])
        found = np.stack([table["x"][rows][order], table["y"][rows][order]], axis=1)
        true = np.asarray(origins_xy, float)  # site 1..4, (x, y)
        assert found.shape == true.shape, well
        err = (found - found.mean(axis=0)) - (true - true.mean(axis=0))  # well offset removed
        worst = max(worst, float(np.abs(err).max()))
    assert worst <= 1.0, f"max tile position error {worst:.3f} px"


# ------------------------------------------------------------------ layout and z spacing rules
def test_declared_layout_is_kept_or_widened_to_the_wells() -> None:
    assert fit_layout((3, 4), ["A01", "B02"]) == (3, 4)
    assert fit_layout((3, 4), ["A01", "D04"]) == (4, 4)
    assert fit_layout((2, 1), ["A01", "B01"]) == (2, 1)
    assert fit_layout((8, 12), ["A01", "H14"]) == (8, 14)
    assert fit_layout(None, ["A01", "B01"]) == (2, 3)  # nothing declared: smallest standard plate


def test_bioformats2raw_plate_keeps_its_declared_rows_and_column(shared_data: Path) -> None:
    plate = open_plate(shared_data / "omezarr_hcs_bf2raw_plate_rows2")
    assert (plate.rows, plate.columns) == (2, 1) and plate.wells == ("A01", "B01")


def test_z_spacing_is_the_plates_not_the_first_stacks() -> None:
    stacks = [{1: 0.0, 2: 4.98}, {1: 10.0, 2: 15.0}, {1: 3.0, 2: 8.0, 3: 13.0}]
    assert plate_z_spacing(stacks) == pytest.approx(5.0)
    assert plate_z_spacing(stacks, declared=5.0) == 5.0
    assert plate_z_spacing([{1: 2.0}]) is None


# ------------------------------------------------------------------ every shared plate with pixels
#: folder -> (plate name, wells, channel names, pixel size µm, (c, z) of the output, wells to run)
PLATES = {
    "imagexpress_mxp_export_minimal_9987_3420": ("9987", ["B02"], ["DAPI"], 1.3672, None),
    "imagexpress_mxp_export_zstack_9987_3434": ("9987", ["B02", "B03"], ["DAPI", "FITC", "Texas Red"],
                                                1.3672, "B02"),
    "imagexpress_mxp_native_timepoints_1well": ("1well-3C-2S-Zmix-T", ["C07"],
                                                ["Copy of FITC", "Copy of Cy3", "Copy of Texas Red"],
                                                13.5504, None),
    "omezarr_hcs_bf2raw_plate_rows2": ("Plate Name 0", ["A01", "B01"], ["w1"], 1.0, None),
    "omezarr_hcs_faimipa_converted_9987_3434": ("ix_9987_3434", ["B02", "B03"],
                                                ["DAPI", "Maximum-Projection_FITC", "Texas Red"], 1.3672,
                                                "B03"),
    "operetta_cls_harmonyv5_operetta_compose": ("Test_Sample_BALL", ["C03"], ["Fluorescein (FITC)"],
                                                1.19595, None),
    "phenix_harmonyv5_jump_BR00121482": ("BR00121482", ["A01"],
                                         ["Alexa 647", "Alexa 568", "488 long", "Alexa 488",
                                          "HOECHST 33342", "Brightfield"], 0.597976, None),
    OPENHCS: ("openhcs_synthetic_tiny", ["A01", "B02", "D04"], ["W1", "W2"], 0.65, "D04"),
}


@pytest.mark.parametrize("folder", sorted(PLATES))
def test_every_shared_plate_runs_the_reference_pipeline(shared_data: Path, tmp_path: Path,
                                                        folder: str) -> None:
    from napari_openhcs.core.pipeline_io import save_pipeline

    name, wells, channels, pixel, only = PLATES[folder]
    plate = open_plate(shared_data / folder)
    assert plate.name == name and list(plate.wells) == wells
    assert [c.name for c in plate.channels] == channels
    assert plate.pixel_size_um == pytest.approx(pixel, rel=1e-5)
    pipeline = save_pipeline(reference_pipeline(), tmp_path / "reference.yaml")
    out = tmp_path / "out"
    args = ["run", str(shared_data / folder), "--pipeline", str(pipeline), "--out", str(out)]
    res = _cli(*args, "--workers", "1", *(["--wells", only] if only else []))
    assert res.returncode == 0, res.stdout + res.stderr
    done = [only] if only else wells
    result = open_output_plate(next(out.glob("*.ome.zarr")))
    assert sorted(result.wells) == done
    assert [c.name for c in result.channels] == channels
    assert result.pixel_size_um == pytest.approx(pixel, rel=1e-5)
    assert result.rows == [chr(ord("A") + r) for r in range(plate.rows)]
    assert len(result.columns) == plate.columns
    for well in done:
        t, c, z, y, x = result.fields(well)[0].shape
        assert (t, c, z) == (len(plate.timepoints), len(channels), 1), well  # max over z
        grid = plate.site_grid or (1, 1)
        h, w = plate.image_shape
        # the tiles overlap, and stage positions may shift them a little off the grid; a stitched
        # mosaic sits in the plate's canvas, whose padding is recorded as the real extent
        extent = result.field_attributes(well, 0).get("extent", {"y": y, "x": x})
        ey, ex = extent["y"], extent["x"]
        assert ey <= y and ex <= x, (extent, y, x)
        assert 0.75 * grid[0] * h <= ey <= 1.1 * grid[0] * h, (ey, ex)
        assert 0.75 * grid[1] * w <= ex <= 1.1 * grid[1] * w, (ey, ex)


# ------------------------------------------------------------------ the benchmark on OpenHCS's input
def test_benchmark_harness_runs_on_the_openhcs_plate(shared_data: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--plate", str(shared_data / OPENHCS),
         "--repeats", "1", "--workers", "1", "--import-repeats", "1", "--data-dir", str(tmp_path / "data"),
         "--json", str(report_path)],
        capture_output=True, text=True, timeout=240, cwd=REPO,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["plate"]["wells"] == 3 and report["plate"]["images"] == 72
    for label in ("baseline", "engine_1w"):
        summary = report["summary"][label]
        assert summary["failed_wells"] == []
        # tile origins checked against the generator's ground_truth_params.json
        assert summary["pos_err_max_px"]["median"] <= 1.0
    assert "engine_1w" in res.stdout
