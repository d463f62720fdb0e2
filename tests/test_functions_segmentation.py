"""Nucleus and cell segmentation on synthetic images with touching nuclei."""

from __future__ import annotations

import numpy as np
import pytest

from _nuclei_images import NucleiScene, nuclei_scene
from napari_openhcs.functions.segmentation import detect_nuclei, segment_cells, segment_nuclei


def matched(truth: np.ndarray, labels: np.ndarray) -> tuple[int, int]:
    """Return (true nuclei covered by exactly one predicted label, true nuclei split apart from their pair).

    A true nucleus is matched when one predicted label covers > 50 % of it and that
    label is mostly (> 50 %) inside it.
    """
    n_true = int(truth.max())
    ok = 0
    for t in range(1, n_true + 1):
        inside = labels[truth == t]
        ids, counts = np.unique(inside[inside > 0], return_counts=True)
        if not len(ids):
            continue
        best = ids[np.argmax(counts)]
        if counts.max() > 0.5 * inside.size and np.mean(truth[labels == best] == t) > 0.5:
            ok += 1
    return ok, n_true


@pytest.fixture(scope="module")
def scenes() -> list[NucleiScene]:
    return [nuclei_scene(seed=seed, n_single=20, n_pairs=8) for seed in range(4)]


@pytest.mark.parametrize("method", ["otsu", "li", "triangle", "local"])
def test_nucleus_count_within_five_percent(scenes: list[NucleiScene], method: str) -> None:
    stack = np.stack([s.nuclei for s in scenes])
    labels = segment_nuclei(stack, threshold_method=method)
    assert labels.dtype == np.int32 and labels.shape == stack.shape
    for scene, slice_labels in zip(scenes, labels):
        assert abs(int(slice_labels.max()) - scene.count) <= 0.05 * scene.count, (method, scene.count)
        assert len(np.unique(slice_labels)) == slice_labels.max() + 1  # labels are 1..n per slice


def test_touching_nuclei_are_split_and_matched(scenes: list[NucleiScene]) -> None:
    for scene in scenes:
        labels = segment_nuclei(scene.nuclei[np.newaxis])[0]
        ok, n = matched(scene.labels, labels)
        assert ok >= 0.95 * n, f"{ok} of {n} nuclei matched"


def test_without_splitting_touching_pairs_merge(scenes: list[NucleiScene]) -> None:
    scene = scenes[0]
    labels = segment_nuclei(scene.nuclei[np.newaxis], split_touching=False)[0]
    assert int(labels.max()) == scene.count - scene.n_touching_pairs


def test_empty_and_flat_images_give_no_objects() -> None:
    rng = np.random.default_rng(0)
    flat = np.full((1, 64, 64), 300, dtype=np.uint16)
    assert segment_nuclei(flat).max() == 0
    noise = rng.poisson(np.full((1, 64, 64), 300.0)).astype(np.uint16)
    # noise only: a threshold always finds two classes, but there is no contrast between them
    assert segment_nuclei(noise).max() == 0
    ramp = noise + np.linspace(0, 80, 64).astype(np.uint16)  # uneven illumination, still empty
    assert segment_nuclei(ramp).max() == 0
    assert segment_nuclei(ramp, threshold_method="local").max() == 0


def test_size_filter_and_border_clearing() -> None:
    scene = nuclei_scene(seed=7, n_single=15, n_pairs=0)
    image = scene.nuclei.astype(np.float64)
    image[0:12, 100:112] = 1500  # a nucleus cut by the top border
    image[200:203, 20:23] = 1500  # a 9-pixel speck
    stack = np.rint(image)[np.newaxis].astype(np.uint16)
    base = segment_nuclei(stack, min_area=5)[0]
    assert base[1, 105] > 0 and base[201, 21] > 0
    filtered = segment_nuclei(stack, min_area=30)[0]
    assert filtered[201, 21] == 0 and filtered[1, 105] > 0
    cleared = segment_nuclei(stack, min_area=30, clear_border=True)[0]
    assert cleared[1, 105] == 0 and int(cleared.max()) == int(filtered.max()) - 1
    capped = segment_nuclei(stack, max_area=120)[0]
    assert capped.max() < filtered.max()


def test_threshold_factor_makes_objects_smaller() -> None:
    scene = nuclei_scene(seed=2)
    loose = segment_nuclei(scene.nuclei[np.newaxis], threshold_factor=0.8)
    strict = segment_nuclei(scene.nuclei[np.newaxis], threshold_factor=1.3)
    assert (strict > 0).sum() < (loose > 0).sum()


def test_bad_options_are_refused() -> None:
    image = np.zeros((1, 16, 16), np.uint16)
    with pytest.raises(ValueError, match="threshold_method"):
        segment_nuclei(image, threshold_method="kmeans")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_area"):
        segment_nuclei(image, min_area=50, max_area=10)
    with pytest.raises(ValueError, match="threshold_factor"):
        segment_nuclei(image, threshold_factor=0)


def test_detect_nuclei_passes_the_image_on(scenes: list[NucleiScene]) -> None:
    stack = np.stack([s.nuclei for s in scenes[:2]])
    out, labels = detect_nuclei(stack)
    assert out is stack or np.array_equal(out, stack)
    np.testing.assert_array_equal(labels, segment_nuclei(stack))


def test_segment_cells_grows_each_nucleus_into_its_cell() -> None:
    scene = nuclei_scene(seed=5, n_single=18, n_pairs=4)
    stack = np.stack([scene.nuclei, scene.cytoplasm])
    cells = segment_cells(stack)
    assert cells.shape == (1, *scene.nuclei.shape) and cells.dtype == np.int32
    cells = cells[0]
    nuclei = segment_nuclei(scene.nuclei[np.newaxis])[0]
    assert int(cells.max()) == int(nuclei.max())
    # each cell contains its nucleus and is larger than it
    for label in range(1, int(nuclei.max()) + 1):
        nucleus = nuclei == label
        assert np.mean(cells[nucleus] == label) > 0.95
        assert (cells == label).sum() > 1.5 * nucleus.sum()
    # the cells cover the stained area
    stained = scene.cytoplasm > 350
    assert np.mean(cells[stained] > 0) > 0.9


def test_segment_cells_channel_order_and_errors() -> None:
    scene = nuclei_scene(seed=6, n_single=10, n_pairs=2)
    forward = segment_cells(np.stack([scene.nuclei, scene.cytoplasm]))
    swapped = segment_cells(np.stack([scene.cytoplasm, scene.nuclei]), nuclei_channel=1, cytoplasm_channel=0)
    np.testing.assert_array_equal(forward, swapped)
    with pytest.raises(ValueError, match="variable_components"):
        segment_cells(scene.nuclei[np.newaxis])
