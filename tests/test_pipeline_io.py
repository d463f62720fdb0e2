"""Pipelines saved as data: round trip, refusal of code, clear errors, Python export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pytest

from napari_openhcs import FunctionStep, GroupBy, VariableComponents, load_pipeline, register, save_pipeline
from napari_openhcs.core.pipeline_io import PipelineFileError, export_python, pipeline_to_data
from napari_openhcs.functions import registry


def gain(
    stack: np.ndarray,
    *,
    factor: Annotated[float, {"min": 0, "max": 10}] = 2.0,
    mode: Literal["mul", "add"] = "mul",
) -> np.ndarray:
    """Multiply or add a constant."""
    return stack * factor if mode == "mul" else stack + factor


def maxz(stack: np.ndarray) -> np.ndarray:
    """Max projection."""
    return stack.max(axis=0, keepdims=True)


@pytest.fixture(autouse=True, scope="module")
def registered() -> Iterator[None]:
    """Register the test functions for this module only."""
    register(name="test_io_gain", category="Test")(gain)
    register(name="test_io_maxz", category="Test")(maxz)
    yield
    for name in ("test_io_gain", "test_io_maxz"):
        registry._REGISTRY.pop(name, None)


def steps() -> list[FunctionStep]:
    return [
        FunctionStep(
            func=(gain, {"factor": 3.0}),
            name="gain",
            variable_components=[VariableComponents.SITE, VariableComponents.Z_INDEX],
        ),
        FunctionStep(
            func=[maxz, (gain, {"mode": "add", "factor": 1.0})],
            name="chain",
            variable_components=[VariableComponents.Z_INDEX],
            materialize=True,
        ),
        FunctionStep(
            func={"1": maxz, "2": (gain, {"factor": 0.5})},
            group_by=GroupBy.CHANNEL,
            name="per channel",
            enabled=False,
        ),
    ]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_is_identical(tmp_path: Path, suffix: str) -> None:
    path = save_pipeline(steps(), tmp_path / f"p{suffix}")
    loaded = load_pipeline(path)
    assert pipeline_to_data(loaded, "p") == pipeline_to_data(steps(), "p")
    assert loaded[1].materialize and not loaded[2].enabled
    assert loaded[0].func[0] is gain and dict(loaded[0].func[1]) == {"factor": 3.0}


def test_python_object_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        "napari_openhcs_pipeline: 1\nsteps:\n- function: !!python/object/apply:os.system "
        f"['touch {marker}']\n"
    )
    with pytest.raises(PipelineFileError, match="not a valid pipeline file"):
        load_pipeline(evil)
    assert not marker.exists()


def test_unknown_function_suggests_names(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("napari_openhcs_pipeline: 1\nsteps:\n- function: test_io_gian\n")
    with pytest.raises(
        PipelineFileError, match="no function named 'test_io_gian'.*did you mean: test_io_gain"
    ):
        load_pipeline(f)


@pytest.mark.parametrize(
    "body, message",
    [
        ("- function: test_io_gain\n  kwargs: {factor: fast}\n", "must be a number"),
        ("- function: test_io_gain\n  kwargs: {mode: divide}\n", "must be one of"),
        ("- function: test_io_gain\n  colour: red\n", "unknown keys"),
        ("- function: test_io_gain\n  variable_components: [well]\n", "variable_components"),
        ("- 42\n", "must be a mapping"),
    ],
)
def test_wrong_types_are_refused(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("napari_openhcs_pipeline: 1\nsteps:\n" + body)
    with pytest.raises(PipelineFileError, match=message):
        load_pipeline(f)


def test_schema_version_checked(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("napari_openhcs_pipeline: 99\nsteps: []\n")
    with pytest.raises(PipelineFileError, match="schema version 99"):
        load_pipeline(f)


def test_unregistered_function_cannot_be_saved(tmp_path: Path) -> None:
    with pytest.raises(PipelineFileError, match="not registered"):
        save_pipeline([FunctionStep(func=lambda s: s)], tmp_path / "p.yaml")


def test_export_python_rebuilds_the_same_pipeline(tmp_path: Path) -> None:
    script = export_python(steps(), tmp_path / "pipeline.py")
    namespace: dict = {"__name__": "exported"}
    exec(compile(script.read_text(), str(script), "exec"), namespace)  # the user's own exported file
    assert pipeline_to_data(namespace["steps"], "p") == pipeline_to_data(steps(), "p")
