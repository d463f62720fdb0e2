"""The compiled, frozen plan of one well (``ProcessingContext``) and its parts.

Everything here is immutable (tuples, frozen dataclasses, :class:`FrozenDict`) and
picklable, so a context can be shipped to a worker process or a Dask worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..microscopes.plate import ImageRecord
from .components import Component
from .frozen import FrozenDict


@dataclass(frozen=True)
class BoundCall:
    """One function call of a step with its user keyword arguments bound and checked."""

    func: Any
    name: str
    kwargs: FrozenDict[str, Any]
    special_inputs: tuple[str, ...]
    special_outputs: tuple[str, ...]
    metadata_inputs: tuple[str, ...]
    memory_type: str = "numpy"
    registered_name: str | None = None


@dataclass(frozen=True)
class StepPlan:
    """How one step runs on one well.

    ``calls`` is a chain (applied in order); ``by_group`` maps a ``group_by`` value
    (as a string) to its own chain for dict patterns. ``output`` is ``"memory"`` or
    the path of the OME-Zarr plate the step writes to. ``index`` counts the compiled
    (enabled) steps from 0; ``number`` is the step's place in the pipeline as written,
    from 1, disabled steps included: what messages and output folders name it by.
    """

    index: int
    name: str
    number: int
    variable_components: tuple[Component, ...]
    group_by: Component | None
    from_pipeline_start: bool
    calls: tuple[BoundCall, ...]
    by_group: FrozenDict[str, tuple[BoundCall, ...]] | None
    materialize: bool
    output: str
    special_outputs: tuple[str, ...]
    special_inputs: tuple[str, ...]
    device: str = "cpu"

    @property
    def label(self) -> str:
        """``step N 'name'``, N being the step's place in the pipeline as written."""
        return step_label(self.number, self.name)


def step_label(number: int, name: str) -> str:
    """How messages name a step: ``step N 'name'`` (N from 1, disabled steps counted)."""
    return f"step {number} '{name}'"


@dataclass(frozen=True)
class WellInput:
    """The well's images and the plate metadata the steps may ask for."""

    root: Path
    reader: str
    well: str
    records: tuple[ImageRecord, ...]
    channel_names: FrozenDict[int, str]
    channel_colors: FrozenDict[int, str]
    pixel_size_um: float | None
    z_spacing_um: float | None
    site_grid: tuple[int, int] | None
    site_positions_um: FrozenDict[int, tuple[float, float]]
    image_shape: tuple[int, int]
    dtype: str
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutputPlan:
    """Where a well's results go."""

    output_dir: Path
    plate_path: Path
    plate_name: str
    rows: int
    columns: int
    step_plates: FrozenDict[int, Path]
    tables_dir: Path
    pipeline_hash: str
    compression_level: int  # the run's GlobalPipelineConfig.compression_level
    #: ``(Y, X)`` image shape of every well of a plate, by the index of the step that
    #: writes it (the last step for the main plate); a plate not listed keeps the
    #: shape its images have (unstitched tiles)
    canvases: FrozenDict[int, tuple[int, int]] = FrozenDict({})


@dataclass(frozen=True)
class ProcessingContext:
    """The frozen plan of one well: inputs, step plans, outputs and budgets."""

    well: str
    inputs: WellInput
    steps: tuple[StepPlan, ...]
    output: OutputPlan
    estimated_peak_bytes: int
    device: str = "cpu"
    timeout_s: float | None = None
    heartbeat_timeout_s: float | None = None

    def describe(self) -> str:
        """Return a human-readable plan (what ``napari-openhcs validate`` prints)."""
        lines = [f"well {self.well}: {len(self.inputs.records)} images, device {self.device}, "
                 f"estimated peak {self.estimated_peak_bytes / 2**20:.0f} MiB"]
        for sp in self.steps:
            comps = ",".join(c.value for c in sp.variable_components)
            src = "pipeline start" if sp.from_pipeline_start else "previous step"
            fn = " -> ".join(c.name for c in sp.calls) if sp.calls else "per-" + (
                sp.group_by.value if sp.group_by else "group") + " functions"
            extra = []
            if sp.special_inputs:
                extra.append("needs " + ",".join(sp.special_inputs))
            if sp.special_outputs:
                extra.append("makes " + ",".join(sp.special_outputs))
            lines.append(f"  {sp.number}. {sp.name}: {fn} over [{comps}] from {src} -> {sp.output}"
                         + (f" ({'; '.join(extra)})" if extra else ""))
        return "\n".join(lines)
