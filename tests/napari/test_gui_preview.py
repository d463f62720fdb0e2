"""Preview dock: one layer per step, re-run from the changed step, errors on the step."""

from __future__ import annotations

import numpy as np
import pytest

from engine_steps import max_project, normalize, scale
from napari_openhcs import FunctionStep
from napari_openhcs.testing.faults import raise_error, slow_identity

pytestmark = pytest.mark.gui


def seed(hcs) -> None:
    pipeline = hcs.session.pipeline
    pipeline.add(FunctionStep(func=(normalize, {"low": 1.0, "high": 99.0}), name="normalize"))
    pipeline.add(FunctionStep(func=max_project, name="max z", variable_components=["z_index"]))
    pipeline.add(FunctionStep(func=(scale, {"factor": 2.0}), name="scale"))


def layer(hcs, name: str):
    return hcs.viewer.layers[name]


def test_preview_shows_every_step_as_layers(hcs) -> None:
    seed(hcs)
    hcs.preview.run_button.click()
    preview = hcs.wait_preview()
    assert preview is not None and preview.error is None
    assert hcs.layer_names("preview") == [f"{i} {n} [{c}]" for i, n in ((1, "normalize"), (2, "max z"),
                                                                         (3, "scale"))
                                          for c in ("DAPI", "FITC")]
    plate = hcs.session.plate
    norm = layer(hcs, "1 normalize [DAPI]")
    maxz = layer(hcs, "2 max z [DAPI]")
    assert norm.data.shape[:2] == (1, len(plate.z_indices)) and maxz.data.shape[:2] == (1, 1)
    np.testing.assert_allclose(np.asarray(maxz.data)[0, 0], np.asarray(norm.data)[0].max(axis=0))
    assert tuple(norm.scale[-2:]) == (plate.pixel_size_um, plate.pixel_size_um)
    from napari_openhcs._napari._layers import raw_well_layers

    raw = raw_well_layers(plate, "A01")[0][1]  # what the reader shows for site 1
    assert tuple(norm.translate[-2:]) == tuple(raw["translate"][-2:])  # lies on the raw images
    assert norm.colormap.name == "blue"
    assert "re-ran from step 1" in hcs.preview.status.text()


def test_parameter_change_reruns_from_that_step_only(hcs) -> None:
    seed(hcs)
    hcs.preview.run_preview()
    first = hcs.wait_preview()
    before = np.asarray(layer(hcs, "3 scale [FITC]").data).copy()
    hcs.session.pipeline.select(2)
    hcs.editor.form.param_widget("factor").value = 3.0  # as a user edits the form
    second = hcs.wait_preview()
    np.testing.assert_allclose(np.asarray(layer(hcs, "3 scale [FITC]").data), before * 1.5, rtol=1e-6)
    assert second.steps[0] is first.steps[0] and second.steps[1] is first.steps[1]  # reused
    assert "re-ran from step 3" in hcs.preview.status.text()


def test_rapid_changes_are_debounced_into_one_run(hcs) -> None:
    seed(hcs)
    hcs.preview.run_preview()
    hcs.wait_preview()
    runs: list = []
    hcs.preview.preview_finished.connect(runs.append)
    for value in (2.5, 3.0, 3.5, 4.0):
        hcs.session.pipeline.set_argument(2, "factor", value)
        hcs.qtbot.wait(20)
    hcs.qtbot.waitUntil(lambda: len(runs) == 1, timeout=10000)
    hcs.qtbot.wait(hcs.session.settings.debounce_ms + 300)
    assert len(runs) == 1
    assert layer(hcs, "3 scale [DAPI]").data.max() > 0


def test_a_failing_step_is_marked_with_its_error(hcs) -> None:
    seed(hcs)
    hcs.session.pipeline.add(FunctionStep(func=(raise_error, {"message": "no nuclei found"}), name="segment"),
                             index=2)
    hcs.preview.run_preview()
    preview = hcs.wait_preview()
    assert preview.failed_step == 2 and "no nuclei found" in preview.error
    steps = hcs.editor.steps
    assert steps.error_marked(2) and not steps.error_marked(1)
    assert "no nuclei found" in steps.list.item(2).toolTip()
    assert "1 normalize [DAPI]" in hcs.layer_names("preview")  # steps before it are shown


def test_a_compile_error_marks_the_step(hcs) -> None:
    seed(hcs)
    hcs.session.pipeline.add(FunctionStep(func=scale, name="no factor"))  # 'factor' is required
    hcs.preview.run_preview()
    assert hcs.wait_preview() is None
    assert hcs.editor.steps.error_marked(3)
    assert "factor" in hcs.editor.steps.list.item(3).toolTip()


def test_a_site_preview_and_cancel(hcs) -> None:
    seed(hcs)
    hcs.session.select("A02", 2)
    hcs.preview.run_preview()
    preview = hcs.wait_preview()
    assert (preview.well, preview.site) == ("A02", 2)
    plate = hcs.session.plate
    assert layer(hcs, "1 normalize [DAPI]").data.shape[-2:] == plate.image_shape
    assert tuple(layer(hcs, "1 normalize [DAPI]").translate[-2:]) == plate.site_position_um("A02", 2)
    hcs.session.pipeline.add(FunctionStep(func=(slow_identity, {"seconds": 0.3}), name="slow"), index=0)
    hcs.preview.run_preview()
    assert hcs.preview.is_running
    hcs.preview.cancel_button.click()
    assert not hcs.preview.is_running and "cancelled" in hcs.preview.status.text()


def test_a_rerun_updates_the_layer_in_place_keeping_the_users_contrast(hcs) -> None:
    seed(hcs)
    hcs.preview.run_preview()
    hcs.wait_preview()
    shown = layer(hcs, "3 scale [DAPI]")
    shown.contrast_limits = (0.25, 1.5)  # the user adjusts the display
    count = len(hcs.viewer.layers)
    hcs.session.pipeline.select(2)
    hcs.editor.form.param_widget("factor").value = 3.0
    hcs.wait_preview()
    assert layer(hcs, "3 scale [DAPI]") is shown and len(hcs.viewer.layers) == count
    assert tuple(shown.contrast_limits) == pytest.approx((0.25, 1.5))
    assert np.asarray(shown.data).max() > 0
