"""Run plate dock: a user's whole session, cancel, a failing well, compile errors."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from magicgui.widgets import ComboBox, FloatSlider

from engine_steps import normalize
from napari_openhcs import FunctionStep
from napari_openhcs._napari._plate_map_model import STATUS_COLORS
from napari_openhcs.testing.faults import slow_identity

pytestmark = pytest.mark.gui


def run_and_wait(hcs, timeout: int = 120000):
    with hcs.qtbot.waitSignal(hcs.run.run_finished, timeout=timeout) as blocker:
        hcs.run.run_button.click()
    return blocker.args[0]


def test_from_the_browser_to_results(hcs, tmp_path: Path) -> None:
    """Build a pipeline from the browser, tune it on one well, run the plate, inspect the results."""
    hcs.add_function("percentile_normalize", search="normalize")
    hcs.add_function("max_projection", search="max projection")
    count = hcs.add_function("count_nuclei", search="count nuclei")
    form = hcs.editor.form
    assert isinstance(form.param_widget("sigma"), FloatSlider)
    assert isinstance(form.param_widget("threshold_method"), ComboBox)
    # tune on one well
    hcs.session.select("A02")
    hcs.preview.run_button.click()
    preview = hcs.wait_preview(timeout=60000)
    assert preview.error is None, preview.error
    names = hcs.layer_names("preview")
    assert names == [f"{i} {n} [{c}]" for i, n in ((1, "percentile_normalize"), (2, "max_projection"),
                                                   (3, "count_nuclei")) for c in ("DAPI", "FITC")]
    labels = hcs.viewer.layers["3 count_nuclei [DAPI]"]
    assert labels._type_string == "labels" and labels.data.max() > 0
    form.param_widget("sigma").value = 2.5  # the preview re-runs from step 3
    second = hcs.wait_preview(timeout=60000)
    assert second.steps[1] is preview.steps[1]
    assert hcs.session.pipeline[count].func[1]["sigma"] == 2.5
    # run the plate in worker processes
    hcs.run.output_edit.setText(str(tmp_path / "results"))
    hcs.run.workers.setValue(2)
    hcs.run.executor.setCurrentText("processes")
    results = run_and_wait(hcs)
    assert {w: r.status for w, r in results.items()} == {"A01": "done", "A02": "done"}
    assert hcs.run.bar.value() == 100
    model = hcs.plate_map.grid.model
    assert all(model.color(w) == STATUS_COLORS["done"] for w in hcs.session.plate.wells)
    # the output plate is open as lazy layers, with per-well measurements as features
    outputs = [hcs.viewer.layers[n] for n in hcs.layer_names("output")]
    assert len(outputs) == 2
    assert {ly._type_string for ly in outputs} == {"labels"}  # count_nuclei writes label images
    data = outputs[0].data
    levels = list(data) if outputs[0].multiscale else [data]
    assert all(isinstance(level, da.Array) for level in levels)
    wells_layer = hcs.viewer.layers[hcs.layer_names("output-wells")[0]]
    assert list(wells_layer.features["well"]) == ["A01", "A02"]
    assert "cell_counts: total count" in wells_layer.features
    # measurements: table view and plate map colouring by value
    assert "cell_counts" in hcs.measurements.tables
    assert hcs.measurements.table.rowCount() > 0
    hcs.plate_map.set_color_mode("cell_counts: total count")
    assert model.mode == "value" and set(model.values) == {"A01", "A02"}
    assert all(v > 0 for v in model.values.values())


def test_cancel_a_run(hcs, tmp_path: Path) -> None:
    pipeline = hcs.session.pipeline
    for _ in range(3):
        pipeline.add(FunctionStep(func=(slow_identity, {"seconds": 0.4}), name="slow"))
    hcs.run.output_edit.setText(str(tmp_path / "out"))
    hcs.run.executor.setCurrentText("threads")
    hcs.run.workers.setValue(1)
    with hcs.qtbot.waitSignal(hcs.run.run_finished, timeout=60000) as blocker:
        hcs.run.run_button.click()
        hcs.qtbot.waitUntil(lambda: "running" in hcs.session.status.values(), timeout=30000)
        hcs.run.cancel_button.click()
    results = blocker.args[0]
    assert {r.status for r in results.values()} == {"cancelled"}
    assert set(hcs.session.status.values()) == {"cancelled"}
    assert hcs.run.bar.value() < 100
    assert hcs.run.run_button.isEnabled() and not hcs.run.cancel_button.isEnabled()


def test_a_failing_well_turns_red_and_says_why(hcs, plate_copy: Path, tmp_path: Path) -> None:
    from napari.utils.notifications import notification_manager

    broken = next(plate_copy.glob("TimePoint_1/ZStep_1/*A02_s1_w1*"))
    broken.write_bytes(b"not a tiff")
    hcs.plate_map.open_plate(str(plate_copy))
    hcs.session.pipeline.add(FunctionStep(func=normalize, name="normalize"))
    hcs.run.output_edit.setText(str(tmp_path / "out"))
    hcs.run.executor.setCurrentText("threads")
    before = len(notification_manager.records)
    results = run_and_wait(hcs)
    assert results["A01"].status == "done" and results["A02"].status == "failed"
    model = hcs.plate_map.grid.model
    assert model.color("A02") == STATUS_COLORS["failed"]
    assert broken.name in model.tooltip("A02")
    messages = [str(n.message) for n in notification_manager.records[before:]]
    assert any("A02" in m and broken.name in m for m in messages), messages
    assert "1 done, 1 failed" in hcs.run.status.text()


def test_a_compile_error_stops_the_run_and_marks_the_step(hcs, tmp_path: Path) -> None:
    hcs.session.pipeline.add(FunctionStep(func=(normalize, {"lowest": 1.0}), name="normalize"))
    hcs.run.output_edit.setText(str(tmp_path / "out"))
    assert run_and_wait(hcs) is None
    assert hcs.editor.steps.error_marked(0)
    assert "lowest" in hcs.editor.steps.list.item(0).toolTip()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.zarr"))


def test_run_only_the_selected_well(hcs, tmp_path: Path) -> None:
    hcs.session.pipeline.add(FunctionStep(func=normalize, name="normalize"))
    hcs.session.select("A02")
    hcs.run.wells_edit.setText("selected")
    hcs.run.output_edit.setText(str(tmp_path / "out"))
    hcs.run.executor.setCurrentText("threads")
    results = run_and_wait(hcs)
    assert list(results) == ["A02"]
    assert hcs.session.status == {"A01": "pending", "A02": "done"}
    field = np.asarray(hcs.viewer.layers[hcs.layer_names("output")[0]].data[0] if
                       hcs.viewer.layers[hcs.layer_names("output")[0]].multiscale else
                       hcs.viewer.layers[hcs.layer_names("output")[0]].data)
    assert field.max() > 0
