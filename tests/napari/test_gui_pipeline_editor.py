"""Pipeline editor dock: browse, add, order, edit, undo, save and reload."""

from __future__ import annotations

from pathlib import Path

import pytest
from magicgui.widgets import ComboBox, FloatSlider
from qtpy.QtCore import Qt

from napari_openhcs._napari._pipeline_model import PipelineModel, call_slots
from napari_openhcs._napari._qt.pipeline_editor import PipelineEditorWidget
from napari_openhcs.core.components import Component
from napari_openhcs.core.pipeline_io import pipeline_to_data

pytestmark = pytest.mark.gui


@pytest.fixture
def editor(qtbot) -> PipelineEditorWidget:
    widget = PipelineEditorWidget(PipelineModel())
    qtbot.addWidget(widget)
    return widget


def add(editor: PipelineEditorWidget, name: str) -> int:
    editor.browser.set_search(name)
    editor.browser.select_function(name)
    editor.browser.add_button.click()
    return editor.model.selected


def test_browser_lists_categories_and_searches(editor) -> None:
    tree = editor.browser.tree
    categories = {tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())}
    assert {"Stitching", "Illumination"} <= categories
    editor.browser.set_search("assemble tiles")
    assert editor.browser.visible_names() == ["assemble_tiles"]
    editor.browser.set_search("no such function at all")
    assert editor.browser.visible_names() == []


def test_forms_are_generated_from_parameter_specs(editor) -> None:
    add(editor, "compute_tile_positions")
    overlap = editor.form.param_widget("overlap")
    assert isinstance(overlap, FloatSlider)
    assert (overlap.min, overlap.max, overlap.value) == (0.0, 0.9, 0.1)
    assert isinstance(editor.form.param_widget("method"), ComboBox)
    assert editor.form.param_widget("method").choices == ("least_squares", "spanning_tree")
    overlap.value = 0.25
    assert call_slots(editor.model[0])[0].kwargs == {"overlap": 0.25}
    editor.model.undo()
    assert call_slots(editor.model[0])[0].kwargs == {}
    assert editor.form.param_widget("overlap").value == pytest.approx(0.1)


def test_step_list_edits(editor, qtbot) -> None:
    add(editor, "compute_tile_positions")
    add(editor, "assemble_tiles")
    steps = editor.steps
    assert [steps.list.item(i).text() for i in range(2)] == ["1. compute_tile_positions", "2. assemble_tiles"]
    steps.buttons["up"].click()
    assert [s.name for s in editor.model.steps] == ["assemble_tiles", "compute_tile_positions"]
    steps.buttons["duplicate"].click()
    assert len(editor.model) == 3 and editor.model.selected == 1
    steps.buttons["remove"].click()
    assert [s.name for s in editor.model.steps] == ["assemble_tiles", "compute_tile_positions"]
    steps.list.item(1).setCheckState(Qt.CheckState.Unchecked)
    qtbot.waitUntil(lambda: not editor.model[1].enabled)
    steps.buttons["undo"].click()
    assert editor.model[1].enabled
    steps.buttons["redo"].click()
    assert not editor.model[1].enabled


def test_step_options(editor) -> None:
    add(editor, "flatfield_correct")
    form = editor.form
    form.vc_boxes["z_index"].setChecked(True)
    assert editor.model[0].variable_components == (Component.SITE, Component.Z_INDEX)
    form.group_box.setCurrentText("none")
    assert editor.model[0].group_by is None
    form.name_edit.setText("flat")
    form.name_edit.editingFinished.emit()
    assert editor.model[0].name == "flat"
    # an invalid choice is refused with a message, the step is unchanged
    for box in form.vc_boxes.values():
        box.setChecked(False)
    assert editor.model[0].variable_components
    assert form.message.isVisibleTo(form) and "variable_components" in form.message.text()


def test_error_marks(editor) -> None:
    add(editor, "compute_tile_positions")
    add(editor, "assemble_tiles")
    editor.model.set_errors({1: "step 2 'assemble_tiles': boom"})
    assert editor.steps.error_marked(1) and not editor.steps.error_marked(0)
    assert "boom" in editor.steps.list.item(1).toolTip()
    editor.model.set_errors({-1: "too little memory"})
    assert editor.steps.pipeline_error.isVisibleTo(editor.steps)
    editor.model.set_argument(0, "overlap", 0.2)  # an edit clears the marks
    assert not editor.steps.error_marked(1)


def test_save_load_and_export(editor, qtbot, tmp_path: Path) -> None:
    add(editor, "compute_tile_positions")
    editor.form.param_widget("min_quality").value = 0.5
    add(editor, "assemble_tiles")
    editor.form.param_widget("blend").value = "none"
    editor.model.set_enabled(0, False)
    path = editor.save(tmp_path / "pipeline.yaml")
    other = PipelineEditorWidget(PipelineModel())
    qtbot.addWidget(other)
    other.load(path)
    assert pipeline_to_data(other.model.steps) == pipeline_to_data(editor.model.steps)
    assert other.steps.list.count() == 2
    script = editor.export_python(tmp_path / "pipeline.py")
    compile(script.read_text(), str(script), "exec")
