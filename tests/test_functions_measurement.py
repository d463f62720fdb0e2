"""Object tables, nucleus counts and whole-field measurement, alone and through the engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk, ellipse

from _nuclei_images import nuclei_scene
from napari_openhcs.functions._object_table import column_suffixes, summary_row
from napari_openhcs.functions.measurement import count_nuclei, measure_objects, segment_and_measure
from napari_openhcs.functions.segmentation import detect_nuclei


@pytest.fixture
def two_objects() -> tuple[np.ndarray, np.ndarray]:
    """A label image with a disk (label 1) and an elongated ellipse (label 2), and a 2-channel stack."""
    labels = np.zeros((64, 64), np.int32)
    labels[disk((20, 20), 8)] = 1
    labels[ellipse(45, 40, 4, 14)] = 2
    ch0 = np.where(labels == 1, 1000, np.where(labels == 2, 400, 100)).astype(np.uint16)
    ch1 = np.where(labels > 0, 50 * labels, 10).astype(np.uint16)
    return labels, np.stack([ch0, ch1])


def test_measure_objects_per_slice_layout(two_objects) -> None:
    labels, stack = two_objects
    out, table = measure_objects(stack, labels=np.stack([labels, labels]), pixel_size=0.5)
    assert out is stack or np.array_equal(out, stack)
    lengths = {len(v) for v in table.values()}
    assert lengths == {4}  # two objects in each of two slices
    assert table["slice"].tolist() == [0, 0, 1, 1] and table["label"].tolist() == [1, 2, 1, 2]
    areas = [int((labels == i).sum()) for i in (1, 2)]
    assert table["area"].tolist() == areas * 2
    np.testing.assert_allclose(table["area_um2"], np.array(areas * 2) * 0.25)
    np.testing.assert_allclose(table["mean_intensity"], [1000, 400, 50, 100])
    np.testing.assert_allclose(table["integrated_intensity"], [1000 * areas[0], 400 * areas[1],
                                                               50 * areas[0], 100 * areas[1]])
    np.testing.assert_allclose(table["centroid_y"][:2], [20, 45], atol=0.01)
    np.testing.assert_allclose(table["centroid_x"][:2], [20, 40], atol=0.01)
    assert table["eccentricity"][0] < 0.2 < 0.9 < table["eccentricity"][1]
    assert np.all((table["solidity"] > 0.9) & (table["solidity"] <= 1.0))


def test_measure_objects_channel_layout_names_columns(two_objects) -> None:
    labels, stack = two_objects
    _, table = measure_objects(stack, labels=labels[np.newaxis], channel_names=("DAPI", "GFP 488"))
    assert "slice" not in table and table["label"].tolist() == [1, 2]
    np.testing.assert_allclose(table["mean_intensity_DAPI"], [1000, 400])
    np.testing.assert_allclose(table["mean_intensity_GFP_488"], [50, 100])
    _, unnamed = measure_objects(stack, labels=labels[np.newaxis])
    assert "mean_intensity_ch1" in unnamed


def test_measure_objects_with_the_channel_name_of_each_slice(two_objects) -> None:
    labels, stack = two_objects
    _, table = measure_objects(stack, labels=np.stack([labels, labels]), channel_names=("w1", "w2"))
    assert table["channel_name"].tolist() == ["w1", "w1", "w2", "w2"]


def test_measure_objects_empty_labels_give_an_empty_table(two_objects) -> None:
    _, stack = two_objects
    _, table = measure_objects(stack, labels=np.zeros_like(stack, dtype=np.int32))
    assert table and all(len(v) == 0 for v in table.values())


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (np.zeros((3, 64, 64), np.int32), "slices"),
        (np.zeros((1, 32, 32), np.int32), "shape"),
        (np.zeros((1, 64, 64), np.float32), "integer"),
    ],
)
def test_measure_objects_rejects_mismatched_labels(two_objects, labels, match) -> None:
    _, stack = two_objects
    with pytest.raises(ValueError, match=match):
        measure_objects(stack, labels=labels)


def test_detect_then_measure_in_one_chain() -> None:
    scene = nuclei_scene(seed=3)
    stack = scene.nuclei[np.newaxis]
    image, labels = detect_nuclei(stack)
    _, table = measure_objects(image, labels=labels)
    assert abs(len(table["label"]) - scene.count) <= 0.05 * scene.count
    assert np.all(table["mean_intensity"] > 500)  # nuclei are the bright objects


def test_count_nuclei_per_slice() -> None:
    scenes = [nuclei_scene(seed=s, n_single=10 + 5 * s, n_pairs=3) for s in range(3)]
    stack = np.stack([s.nuclei for s in scenes])
    labels, counts = count_nuclei(stack, pixel_size=0.65)
    assert labels.dtype == np.int32 and labels.shape == stack.shape
    assert counts["slice"].tolist() == [0, 1, 2]
    for scene, n in zip(scenes, counts["count"]):
        assert abs(int(n) - scene.count) <= max(1, 0.05 * scene.count)
    true_area = [np.mean(np.bincount(s.labels.ravel())[1:]) for s in scenes]
    np.testing.assert_allclose(counts["mean_area"], true_area, rtol=0.25)
    np.testing.assert_allclose(counts["mean_area_um2"], counts["mean_area"] * 0.65**2)
    assert np.all(counts["mean_intensity"] > 800)


def test_count_nuclei_can_keep_the_image() -> None:
    scene = nuclei_scene(seed=1)
    image, counts = count_nuclei(scene.nuclei, keep_image=True)
    np.testing.assert_array_equal(image, scene.nuclei[np.newaxis])
    assert abs(int(counts["count"][0]) - scene.count) <= 0.05 * scene.count


def test_count_nuclei_of_an_empty_field() -> None:
    noise = np.random.default_rng(0).poisson(np.full((1, 64, 64), 200.0)).astype(np.uint16)
    labels, counts = count_nuclei(noise)
    assert labels.max() == 0 and counts["count"].tolist() == [0]
    assert np.isnan(counts["mean_area"][0])


def test_segment_and_measure_nuclei_and_cells() -> None:
    scene = nuclei_scene(seed=4, n_single=15, n_pairs=3)
    stack = np.stack([scene.nuclei, scene.cytoplasm])
    labels, table, summary = segment_and_measure(stack, channel_names=("DAPI", "FITC"), pixel_size=0.5)
    assert labels.shape == (1, *scene.nuclei.shape) and labels.dtype == np.int32
    assert abs(len(table["label"]) - scene.count) <= 1 and "nucleus_area" not in table
    assert summary["count"].tolist() == [len(table["label"])]
    assert summary["mean_intensity_DAPI"][0] == pytest.approx(table["mean_intensity_DAPI"].mean())
    cells, cell_table, _ = segment_and_measure(stack, cytoplasm_channel=1, channel_names=("DAPI", "FITC"))
    assert cell_table["label"].tolist() == table["label"].tolist()  # one cell per nucleus, same ids
    assert np.all(cell_table["area"] > cell_table["nucleus_area"])
    np.testing.assert_array_equal(cell_table["nucleus_area"], table["area"])
    # the cytoplasm stain is brighter in the cells than in the nuclei alone
    assert cell_table["mean_intensity_FITC"].mean() > table["mean_intensity_FITC"].mean()


def test_column_suffixes_and_summary() -> None:
    assert column_suffixes(3, None) == ["_ch0", "_ch1", "_ch2"]
    assert column_suffixes(2, ("a b", "a-b")) == ["_ch0", "_ch1"]  # would collide
    row = summary_row({"label": np.array([1, 2]), "area": np.array([10, 30]),
                       "mean_intensity_x": np.array([1.0, 3.0])})
    assert {k: v.tolist() for k, v in row.items()} == {"count": [2], "mean_area": [20.0],
                                                      "mean_intensity_x": [2.0]}


def test_measurement_through_the_engine(tmp_path: Path) -> None:
    """Counts per site and per-cell tables come out as CSV per well and per plate."""
    from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
    from napari_openhcs.io import read_table_csv
    from napari_openhcs.testing import make_synthetic_plate
    from napari_openhcs.testing.synthetic import load_ground_truth

    plate = make_synthetic_plate(tmp_path, spec="sample", wells=("A01", "B02"), grid=(1, 2), z_planes=1,
                                 nuclei_per_site=30, seed=2)
    truth = load_ground_truth(plate)["wells"]
    steps = [
        FunctionStep(func={"1": count_nuclei}, name="count", variable_components=[VariableComponents.SITE]),
        FunctionStep(func=segment_and_measure, name="measure",
                     variable_components=[VariableComponents.CHANNEL], input_source="pipeline_start"),
    ]
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
        num_workers=1, output_dir=tmp_path / "out", executor="threads"))
    results = orch.run(steps)
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    assert orch.output_dir is not None
    tables = orch.output_dir / "tables"
    counts = read_table_csv(tables / "cell_counts.csv")
    assert counts["well"].tolist() == ["A01", "A01", "B02", "B02"]
    for well in ("A01", "B02"):
        got = counts["count"][counts["well"] == well]
        expected = [s["n_nuclei"] for s in truth[well]["sites"]]
        # the truth counts nuclei centred in the tile; a few cut by the edge are counted too
        tolerance = np.maximum(3, 0.1 * np.array(expected))
        assert np.all(np.abs(got - expected) <= tolerance), (well, got, expected)
    cells = read_table_csv(tables / "cell_table" / "A01.csv")
    assert {"well", "site", "label", "area", "mean_intensity_DAPI", "mean_intensity_FITC"} <= set(cells)
    assert set(cells["site"].tolist()) == {1, 2}
    summary = read_table_csv(tables / "cell_summary.csv")
    for well in ("A01", "B02"):
        np.testing.assert_array_equal(summary["count"][summary["well"] == well],
                                      counts["count"][counts["well"] == well])
