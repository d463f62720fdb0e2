"""A step that repeats an earlier one on the raw images reuses its output: the same plate, less work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_openhcs import (
    FunctionStep,
    GlobalPipelineConfig,
    InputSource,
    PipelineOrchestrator,
    VariableComponents,
)
from napari_openhcs.core import well_runner
from napari_openhcs.core.pipeline_io import load_pipeline, save_pipeline
from napari_openhcs.core.step_reuse import repeated_steps
from napari_openhcs.functions.registry import get_function
from napari_openhcs.io import open_output_plate
from napari_openhcs.pipelines import stitching_pipeline
from napari_openhcs.testing import make_synthetic_plate


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="tiny", seed=3, wells=("A01", "B02"))


def compiled_steps(plate: Path, steps: list[FunctionStep], tmp_path: Path):
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(num_workers=1, output_dir=tmp_path,
                                                                           executor="threads")).initialize()
    return next(iter(orch.compile_pipelines(steps).values())).steps


def test_the_stitching_pipelines_second_normalization_repeats_its_first(plate: Path, tmp_path: Path) -> None:
    saved = save_pipeline(stitching_pipeline(), tmp_path / "stitch.yaml")
    for pipeline in (stitching_pipeline(), load_pipeline(saved)):  # also as the saved file loads it
        steps = compiled_steps(plate, pipeline, tmp_path)
        names = [s.name for s in steps]
        assert repeated_steps(steps) == {names.index("normalize raw tiles"): names.index("normalize")}


def test_other_parameters_or_grouping_are_not_a_repeat(plate: Path, tmp_path: Path) -> None:
    norm = get_function("percentile_normalize").func
    first = FunctionStep(func=(norm, {"low": 0.5, "high": 99.5}), name="a",
                         variable_components=[VariableComponents.SITE])

    def again(**changes) -> FunctionStep:
        kw = {"func": (norm, {"low": 0.5, "high": 99.5}), "name": "b",
              "variable_components": [VariableComponents.SITE], "input_source": InputSource.PIPELINE_START,
              **changes}
        return FunctionStep(**kw)

    assert repeated_steps(compiled_steps(plate, [first, again()], tmp_path / "same")) == {1: 0}
    for changed in ({"func": (norm, {"low": 0.5, "high": 99.0})},
                    {"variable_components": [VariableComponents.Z_INDEX]},
                    {"input_source": InputSource.PREVIOUS_STEP}):
        steps = compiled_steps(plate, [first, again(**changed)], tmp_path / "other")
        assert repeated_steps(steps) == {}, changed


def test_reuse_writes_the_same_plate_bit_for_bit_and_reads_the_raw_images_once(
        plate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    real = well_runner._raw_state

    def counting(inputs, plan, consumed):
        reads.append(plan.index if plan is not None else -1)
        return real(inputs, plan, consumed)

    monkeypatch.setattr(well_runner, "_raw_state", counting)
    outputs = {}
    for mode in ("reused", "recomputed"):
        if mode == "recomputed":
            monkeypatch.setattr(well_runner, "repeated_steps", lambda steps: {})
        reads.clear()
        orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
            num_workers=1, output_dir=tmp_path / mode, executor="threads"))
        assert all(r.ok for r in orch.run(stitching_pipeline()).values())
        outputs[mode] = (orch.output_path, sorted(reads))
    names = [s.name for s in stitching_pipeline()]
    assert outputs["reused"][1] == [0, 0]  # one read per well, for the first step
    assert outputs["recomputed"][1] == sorted([0, names.index("normalize raw tiles")] * 2)
    a, b = (open_output_plate(p) for p, _ in outputs.values())
    assert a.wells == b.wells
    for well in a.wells:
        for fa, fb in zip(a.fields(well), b.fields(well), strict=True):
            np.testing.assert_array_equal(np.asarray(fa), np.asarray(fb))
