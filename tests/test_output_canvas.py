"""The plate canvas: decided at compile time, images padded into it, too-large mosaics refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator
from napari_openhcs.core.compiler.zarr_stores import canvas_margin, mosaic_canvas
from napari_openhcs.core.well_output import CanvasTooSmallError, state_to_fields
from napari_openhcs.core.well_state import WellState
from napari_openhcs.pipelines import stitching_pipeline
from napari_openhcs.testing import make_synthetic_plate


def test_images_are_padded_to_the_canvas_and_their_extent_and_missing_slots_reported() -> None:
    state = WellState(images={(0, 1, 0, 0): np.ones((5, 7), np.uint16),
                              (0, 1, 0, 1): np.full((6, 7), 2, np.uint16),
                              (0, 2, 0, 0): np.full((5, 6), 3, np.uint16)})
    sites, fields, missing, extents = state_to_fields(state, (8, 9))
    assert sites == [0] and fields[0].shape == (2, 2, 1, 8, 9)
    assert missing == [[(1, 1, 0)]]  # channel 2 has no image at the second timepoint
    assert extents == [(6, 7)]
    assert fields[0][1, 0, 0, :6, :7].min() == 2 and not fields[0][1, 0, 0, 6:].any()
    assert not fields[0][1, 1].any()


def test_a_mosaic_larger_than_the_canvas_is_an_error_that_says_so() -> None:
    state = WellState(images={(0, 1, 0, 0): np.ones((10, 12), np.uint16)})
    with pytest.raises(CanvasTooSmallError, match=r"10 × 12 px but the plate's canvas is 8 × 9 px"):
        state_to_fields(state, (8, 9))


def test_the_canvas_covers_every_well_of_the_plate_plus_a_margin(tmp_path: Path) -> None:
    plate_dir = make_synthetic_plate(tmp_path, spec="tiny", seed=1)
    orch = PipelineOrchestrator(plate_dir, global_config=GlobalPipelineConfig(
        num_workers=1, output_dir=tmp_path / "out", executor="threads")).initialize()
    canvas = mosaic_canvas(orch.plate)
    my, mx = canvas_margin(orch.plate.image_shape)
    # 2 x 2 tiles of 64 px overlapping by 10 %: a nominal mosaic of about 122 px, plus margins
    assert canvas[0] >= 2 * 64 * 0.9 + 2 * my and canvas[1] >= 2 * 64 * 0.9 + 2 * mx
    # one well alone (a filtered or resumed run) gets the same canvas as the whole plate
    compiled = orch.compile_pipelines(stitching_pipeline(), well_filter=["A02"])
    (ctx,) = compiled.values() if isinstance(compiled, dict) else compiled.contexts.values()
    assert ctx.output.canvases[ctx.steps[-1].index] == canvas
