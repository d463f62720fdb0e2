"""The reference workload end to end: stitching accuracy and nuclei counts, synthetic and real."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator
from napari_openhcs.io import open_output_plate, read_table_csv
from napari_openhcs.pipelines import reference_pipeline
from napari_openhcs.testing import load_ground_truth, make_synthetic_plate


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory) -> tuple[Path, PipelineOrchestrator, dict]:
    base = tmp_path_factory.mktemp("ref")
    plate = make_synthetic_plate(base, spec="sample", seed=3)
    orch = PipelineOrchestrator(
        plate, global_config=GlobalPipelineConfig(num_workers=2, output_dir=base / "out")
    )
    results = orch.run(reference_pipeline())
    return plate, orch, results


def test_every_well_completes_and_the_output_is_a_stitched_plate(sample_run) -> None:
    plate_dir, orch, results = sample_run
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    out = open_output_plate(orch.output_path)
    assert sorted(out.wells) == sorted(orch.plate.wells)
    field = out.fields(out.wells[0])
    assert len(field) == 1  # the sites were assembled into one field
    t, c, z, y, x = field[0].shape
    assert (t, c, z) == (1, 2, 1)
    assert y > orch.plate.image_shape[0] * 1.5 and x > orch.plate.image_shape[1] * 1.5
    assert [ch.name for ch in out.channels] == ["DAPI", "FITC"]


def test_tile_positions_match_the_ground_truth_within_half_a_pixel(sample_run) -> None:
    plate_dir, orch, _ = sample_run
    truth = load_ground_truth(plate_dir)
    table = read_table_csv(orch.output_dir / "tables" / "positions.csv")
    worst = 0.0
    for well, info in truth["wells"].items():
        sites = info["sites"].values() if isinstance(info["sites"], dict) else info["sites"]
        true = np.array([s["true_origin"] for s in sorted(sites, key=lambda s: s["site"])], float)
        rows = table["well"] == well
        found = np.stack([table["y"][rows], table["x"][rows]], axis=1)
        err = (found - found[0]) - (true - true[0])
        worst = max(worst, float(np.abs(err).max()))
    assert worst <= 0.5, f"max tile position error {worst:.3f} px"


def test_nuclei_counts_within_5_percent_of_the_truth(sample_run) -> None:
    plate_dir, orch, _ = sample_run
    truth = load_ground_truth(plate_dir)
    counts = read_table_csv(orch.output_dir / "tables" / "cell_counts.csv")
    tile = truth["spec"]["tile_shape"]
    for well, info in truth["wells"].items():
        yx = np.asarray(info["nuclei_yx"], float)
        yx = yx[0] if yx.ndim == 3 else yx
        sites = info["sites"].values() if isinstance(info["sites"], dict) else info["sites"]
        inside = np.zeros(len(yx), bool)
        for s in sites:
            oy, ox = s["true_origin"]
            inside |= (
                (yx[:, 0] >= oy) & (yx[:, 0] < oy + tile[0]) & (yx[:, 1] >= ox) & (yx[:, 1] < ox + tile[1])
            )
        expected = int(inside.sum())
        found = int(counts["count"][counts["well"] == well][0])
        assert abs(found - expected) <= 0.05 * expected, f"{well}: counted {found}, truth {expected}"


def test_reference_workload_on_a_real_imagexpress_plate(shared_data: Path, tmp_path: Path) -> None:
    plate = shared_data / "imagexpress_mxp_export_zstack_9987_3434"
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(num_workers=2, output_dir=tmp_path))
    results = orch.run(reference_pipeline())
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    out = open_output_plate(orch.output_path)
    assert sorted(out.wells) == ["B02", "B03"]
    arr = np.asarray(out.fields("B03")[0])
    assert arr.shape[:3] == (1, 3, 1) and arr.shape[-1] > 256  # two overlapping sites side by side
    pairs = read_table_csv(tmp_path / "tables" / "stitch_pairs.csv")
    b03 = pairs["well"] == "B03"
    # cells in B03's overlap: phase correlation is used and agrees with the stage within 5 px
    assert pairs["used"][b03][0] == "phase"
    assert abs(pairs["dx"][b03][0] - pairs["dx_stage"][b03][0]) <= 5
    assert abs(pairs["dy"][b03][0] - pairs["dy_stage"][b03][0]) <= 5
    counts = read_table_csv(tmp_path / "tables" / "cell_counts.csv")
    assert set(counts["well"]) == {"B02", "B03"} and (counts["count"] > 0).all()
