"""Ready-made pipelines: the reference HCS workload (the demo's default pipeline)."""

from __future__ import annotations

from .core.components import GroupBy, VariableComponents
from .core.steps import FunctionStep, InputSource


def _f(name: str):  # noqa: ANN202
    from .functions.registry import get_function

    return get_function(name).func


def stitching_pipeline(low: float = 0.5, high: float = 99.5) -> list[FunctionStep]:
    """Normalize, find tile positions on a channel composite, assemble every channel and z.

    normalize (per channel and z, a well's tiles together) → mean of the channels →
    max over z → mean over time → tile positions (phase correlation) → normalize the raw
    tiles again → assemble every channel, z and timepoint with those positions (linear
    blend) → max over z.

    The positions are solved once per well, on the mean over the timepoints, and used
    for every timepoint: all timepoints of a well share one set of tile positions and
    one mosaic (a stage that drifts by a fraction of a pixel between timepoints gives
    the same canvas at every timepoint).
    """
    norm = (_f("percentile_normalize"), {"low": low, "high": high})
    return [
        FunctionStep(
            func=norm,
            name="normalize",
            variable_components=[VariableComponents.SITE],
            group_by=GroupBy.CHANNEL,
        ),
        FunctionStep(
            func=_f("composite"),
            name="channel composite",
            variable_components=[VariableComponents.CHANNEL],
            group_by=GroupBy.NONE,
        ),
        FunctionStep(
            func=_f("max_projection"), name="max over z", variable_components=[VariableComponents.Z_INDEX]
        ),
        FunctionStep(
            func=_f("mean_projection"),
            name="mean over time",
            variable_components=[VariableComponents.TIMEPOINT],
        ),
        FunctionStep(
            func=_f("compute_tile_positions"),
            name="tile positions",
            variable_components=[VariableComponents.SITE],
        ),
        FunctionStep(
            func=norm,
            name="normalize raw tiles",
            variable_components=[VariableComponents.SITE],
            input_source=InputSource.PIPELINE_START,
        ),
        FunctionStep(
            func=_f("assemble_tiles"), name="assemble", variable_components=[VariableComponents.SITE]
        ),
        FunctionStep(
            func=_f("max_projection"),
            name="max over z (stitched)",
            variable_components=[VariableComponents.Z_INDEX],
        ),
    ]


def reference_pipeline() -> list[FunctionStep]:
    """The reference workload: :func:`stitching_pipeline`, then nuclei counted per well.

    The output plate holds the stitched, max-projected channels; the nuclei counts of
    the first channel go to the ``cell_counts`` table.
    """
    steps = stitching_pipeline()
    steps.append(
        FunctionStep(
            func={"1": (_f("count_nuclei"), {"keep_image": True})},
            name="count nuclei",
            variable_components=[VariableComponents.SITE],
            group_by=GroupBy.CHANNEL,
        )
    )
    return steps
