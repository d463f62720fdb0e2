"""The pipeline model: edits, undo/redo and files, scripted without Qt."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine_steps import max_project, normalize, scale
from napari_openhcs import FunctionStep
from napari_openhcs._napari._pipeline_model import (
    PipelineModel,
    call_slots,
    engine_start,
    errors_by_step,
    model_index,
    step_from_function,
    with_call_kwargs,
)
from napari_openhcs.core.components import Component
from napari_openhcs.core.pipeline_io import pipeline_to_data
from napari_openhcs.functions.registry import get_function


def three_steps() -> list[FunctionStep]:
    return [
        FunctionStep(func=(normalize, {"low": 1.0}), name="normalize"),
        FunctionStep(func=max_project, name="max z", variable_components=["z_index"]),
        FunctionStep(func=(scale, {"factor": 2.0}), name="scale"),
    ]


def names(model: PipelineModel) -> list[str]:
    return [s.name for s in model.steps]


def test_add_remove_move_duplicate_and_undo_everything() -> None:
    model = PipelineModel()
    changes: list[int] = []
    model.changed.connect(changes.append)
    for step in three_steps():
        model.add(step, len(model))
    assert names(model) == ["normalize", "max z", "scale"]
    model.move(2, 0)
    assert names(model) == ["scale", "normalize", "max z"]
    assert changes[-1] == 0 and model.selected == 0
    model.duplicate(1)
    assert names(model) == ["scale", "normalize", "normalize", "max z"]
    assert model[2] is not model[1]
    model.remove(0)
    assert names(model) == ["normalize", "normalize", "max z"]
    for expected in (["scale", "normalize", "normalize", "max z"], ["scale", "normalize", "max z"],
                     ["normalize", "max z", "scale"]):
        model.undo()
        assert names(model) == expected
    model.redo()
    assert names(model) == ["scale", "normalize", "max z"]
    while model.can_undo:
        model.undo()
    assert names(model) == []
    assert not model.can_undo and model.can_redo


def test_an_edit_after_undo_drops_the_redo_history() -> None:
    model = PipelineModel(three_steps())
    model.remove(0)
    model.undo()
    model.remove(2)
    assert not model.can_redo


def test_set_argument_reports_the_changed_step_and_merges_slider_drags() -> None:
    model = PipelineModel(three_steps())
    changes: list[int] = []
    model.changed.connect(changes.append)
    for value in (2.0, 3.0, 4.0):
        model.set_argument(2, "factor", value)
    assert call_slots(model[2])[0].kwargs == {"factor": 4.0}
    assert changes == [2, 2, 2]
    model.set_argument(0, "low", 5.0)
    model.undo()
    assert call_slots(model[0])[0].kwargs == {"low": 1.0}
    model.undo()  # the three drags of "factor" undo at once
    assert call_slots(model[2])[0].kwargs == {"factor": 2.0}


def test_enable_and_options() -> None:
    model = PipelineModel(three_steps())
    model.set_enabled(1, False)
    assert not model[1].enabled
    model.set_options(0, variable_components=["site", "channel"], group_by="none")
    assert model[0].variable_components == (Component.SITE, Component.CHANNEL)
    assert model[0].group_by is None
    with pytest.raises(ValueError):
        model.set_options(0, variable_components=[])
    assert model[0].variable_components == (Component.SITE, Component.CHANNEL)


def test_engine_indices_skip_disabled_steps() -> None:
    steps = three_steps()
    steps[0] = steps[0].replace(enabled=False)
    assert engine_start(steps, 2) == 1
    assert model_index(steps, 0) == 1 and model_index(steps, 1) == 2 and model_index(steps, 5) is None
    # the engine numbers steps by their place in the pipeline, disabled ones included
    problem = "step 3 'scale': scale() needs argument 'factor', which is not set"
    gone = "step 9 'gone': no such step"
    errors = errors_by_step("3 problems", [problem, gone, "memory: too little"], steps)
    assert errors == {2: problem, -1: gone + "\nmemory: too little"}


def test_call_slots_of_chains_and_dicts() -> None:
    chain = FunctionStep(func=[(normalize, {"low": 2.0}), max_project], name="chain")
    slots = call_slots(chain)
    assert [s.label for s in slots] == ["normalize", "max_project"]
    edited = chain.replace(func=with_call_kwargs(chain.func, 1, {}))
    assert [s.kwargs for s in call_slots(edited)] == [{"low": 2.0}, {}]
    per_channel = FunctionStep(func={"1": (scale, {"factor": 1.0}), "2": normalize}, name="per channel",
                               group_by="channel")
    slots = call_slots(per_channel)
    assert [s.label for s in slots] == ["channel 1: scale", "channel 2: normalize"]
    edited = per_channel.replace(func=with_call_kwargs(per_channel.func, 1, {"high": 90.0}))
    assert call_slots(edited)[1].kwargs == {"high": 90.0}
    assert call_slots(edited)[0].kwargs == {"factor": 1.0}


def registered_steps() -> list[FunctionStep]:
    names = ("compute_tile_positions", "assemble_tiles")
    return [step_from_function(get_function(n)) for n in names]


def test_save_and_load_reproduce_the_pipeline(tmp_path: Path) -> None:
    model = PipelineModel(registered_steps())
    model.set_argument(0, "overlap", 0.2)
    model.set_enabled(1, False)
    path = model.save(tmp_path / "p.yaml")
    other = PipelineModel()
    other.load(path)
    assert pipeline_to_data(other.steps) == pipeline_to_data(model.steps)
    other.undo()
    assert len(other) == 0


def test_export_python(tmp_path: Path) -> None:
    model = PipelineModel(registered_steps())
    out = model.export_python(tmp_path / "p.py")
    compile(out.read_text(), str(out), "exec")
