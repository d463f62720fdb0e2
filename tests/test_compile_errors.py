"""Every bad input is refused at compile time, with a message that says what to fix."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from engine_steps import max_project, normalize, scale, shift_by_offsets, site_offsets
from napari_openhcs import (
    FunctionStep,
    GlobalPipelineConfig,
    GroupBy,
    PipelineOrchestrator,
    VariableComponents,
)
from napari_openhcs.core.errors import InsufficientMemoryError, OutputLocationError, PipelineCompileError
from napari_openhcs.microscopes.detect import PlateFormatError
from napari_openhcs.testing import make_synthetic_plate


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("p"), spec="tiny", seed=2)


@pytest.fixture
def orch(plate: Path, tmp_path: Path) -> PipelineOrchestrator:
    return PipelineOrchestrator(
        plate, global_config=GlobalPipelineConfig(output_dir=tmp_path / "o")
    ).initialize()


def test_unknown_argument_names_step_and_argument(orch) -> None:
    with pytest.raises(PipelineCompileError, match=r"step 1 'norm'.*no argument 'lowww'"):
        orch.compile_pipelines([FunctionStep(func=(normalize, {"lowww": 1}), name="norm")])


def test_missing_required_argument(orch) -> None:
    with pytest.raises(PipelineCompileError, match=r"step 2 'scale'.*needs argument 'factor'"):
        orch.compile_pipelines([FunctionStep(func=normalize), FunctionStep(func=scale, name="scale")])


def test_step_numbers_count_disabled_steps(orch) -> None:
    """A problem names the step by its place in the pipeline as written."""
    steps = [FunctionStep(func=normalize, enabled=False), FunctionStep(func=normalize),
             FunctionStep(func=scale, name="scale")]
    with pytest.raises(PipelineCompileError, match=r"step 3 'scale'.*needs argument 'factor'"):
        orch.compile_pipelines(steps)


def test_dict_key_not_in_plate_lists_valid_ones(orch) -> None:
    with pytest.raises(PipelineCompileError, match=r"dict key '7'.*valid: .*1.*DAPI"):
        orch.compile_pipelines([FunctionStep(func={"7": normalize}, group_by=GroupBy.CHANNEL)])


def test_dict_keys_accept_channel_names(orch) -> None:
    compiled = orch.compile_pipelines([FunctionStep(func={"DAPI": normalize}, group_by=GroupBy.CHANNEL)])
    assert list(next(iter(compiled.values())).steps[0].by_group) == ["1"]


def test_special_input_without_producer(orch) -> None:
    with pytest.raises(
        PipelineCompileError, match=r"special input .offsets. of shift_by_offsets\(\) has no producer"
    ):
        orch.compile_pipelines([FunctionStep(func=shift_by_offsets)])
    orch.compile_pipelines([FunctionStep(func=site_offsets), FunctionStep(func=shift_by_offsets)])


def test_all_problems_reported_together(orch) -> None:
    with pytest.raises(PipelineCompileError) as info:
        orch.compile_pipelines([FunctionStep(func=(normalize, {"bad": 1})), FunctionStep(func=scale)])
    assert len(info.value.problems) == 2


def test_output_inside_input_plate_refused(plate: Path) -> None:
    o = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(output_dir=plate / "results"))
    with pytest.raises(OutputLocationError, match="inside the input plate"):
        o.initialize()


def test_output_not_writable(plate: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    o = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(output_dir=blocker / "out"))
    with pytest.raises(OutputLocationError, match="not a folder"):
        o.initialize()


def test_plate_missing_or_not_a_plate(tmp_path: Path) -> None:
    with pytest.raises(PlateFormatError, match="does not exist"):
        PipelineOrchestrator(tmp_path / "nope").initialize()
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlateFormatError, match="empty"):
        PipelineOrchestrator(tmp_path / "empty").initialize()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    with pytest.raises(PlateFormatError, match="no known plate layout"):
        PipelineOrchestrator(tmp_path / "junk").initialize()


def test_more_memory_than_the_machine_has(plate: Path, tmp_path: Path) -> None:
    o = PipelineOrchestrator(
        plate, global_config=GlobalPipelineConfig(output_dir=tmp_path, memory_limit_bytes=1000)
    ).initialize()
    with pytest.raises(InsufficientMemoryError, match=r"needs an estimated .* GiB .* only .* available"):
        o.compile_pipelines([FunctionStep(func=normalize)])


def test_worker_count_lowered_to_fit_memory(plate: Path, tmp_path: Path) -> None:
    o = PipelineOrchestrator(
        plate, global_config=GlobalPipelineConfig(output_dir=tmp_path, num_workers=8)
    ).initialize()
    ctx = o.compile_pipelines([FunctionStep(func=normalize)])
    peak = next(iter(ctx.values())).estimated_peak_bytes
    o2 = PipelineOrchestrator(
        plate,
        global_config=GlobalPipelineConfig(output_dir=tmp_path, num_workers=8, memory_limit_bytes=3 * peak),
    ).initialize()
    o2.compile_pipelines([FunctionStep(func=normalize)])
    assert o2.last_compiled.memory.workers == 3


def test_unknown_well_filter(orch) -> None:
    with pytest.raises(PipelineCompileError, match="wells not in the plate: H12"):
        orch.compile_pipelines([FunctionStep(func=normalize)], well_filter=["H12"])


def test_lambda_refused_for_processes_but_fine_for_threads(plate: Path, tmp_path: Path) -> None:
    o = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(output_dir=tmp_path)).initialize()
    with pytest.raises(PipelineCompileError, match="cannot be sent to worker processes"):
        o.compile_pipelines([FunctionStep(func=lambda s: s)])
    t = PipelineOrchestrator(
        plate, global_config=GlobalPipelineConfig(output_dir=tmp_path, executor="threads")
    ).initialize()
    t.compile_pipelines([FunctionStep(func=lambda s: s)])


def test_same_steps_compile_twice_unchanged_and_contexts_are_frozen(orch) -> None:
    steps = [
        FunctionStep(func=(normalize, {"low": 2.0}), variable_components=[VariableComponents.SITE]),
        FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX]),
    ]
    before = [repr(s) + repr(s.func) for s in steps]
    a = orch.compile_pipelines(steps)
    b = orch.compile_pipelines(steps)
    assert [repr(s) + repr(s.func) for s in steps] == before
    assert a.keys() == b.keys()
    ctx = next(iter(a.values()))
    assert pickle.loads(pickle.dumps(ctx)) == ctx
    with pytest.raises(AttributeError):
        ctx.well = "B02"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ctx.steps[0].calls[0].kwargs["low"] = 5  # type: ignore[index]
    with pytest.raises(AttributeError):
        steps[0].name = "x"  # type: ignore[misc]
