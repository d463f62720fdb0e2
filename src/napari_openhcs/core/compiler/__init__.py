"""The five compile phases, run in order by :func:`compile_plate`.

1. :mod:`.step_plans` — step plans, kwargs bound, special I/O wired.
2. :mod:`.zarr_stores` — output plates and table folders declared.
3. :mod:`.materialization` — which outputs are written, which stay in memory.
4. :mod:`.memory` — per-well peak memory estimated and checked.
5. :mod:`.gpu` — wells assigned to GPUs (or the CPU), and each step's device.
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

from ...microscopes.plate import Plate, canonical_well
from ..config import GlobalPipelineConfig
from ..context import ProcessingContext, StepPlan, WellInput
from ..errors import PipelineCompileError
from ..frozen import FrozenDict
from ..steps import FunctionStep
from .gpu import GpuPlan, discover_gpus, gpu_steps, plan_gpus, plans_for_device
from .materialization import plan_materialization
from .memory import MemoryPlan, estimate_well_peak, estimate_well_vram, validate_memory
from .step_plans import compile_step_plans
from .zarr_stores import declare_output_stores

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompiledPlate:
    """Everything compilation decided: per-well contexts plus run-wide figures.

    ``gpu`` is phase 5's plan (devices, wells per GPU); ``notes`` are warnings the
    user should see (e.g. a ``backend="gpu"`` step that runs on the CPU).
    """

    contexts: dict[str, ProcessingContext]
    plans: tuple[StepPlan, ...]
    memory: MemoryPlan
    incomplete_wells: dict[str, tuple[str, ...]]
    gpu: GpuPlan | None = None
    notes: tuple[str, ...] = ()


def well_input(plate: Plate, well: str) -> WellInput:
    """Return the :class:`WellInput` slice of ``plate`` for one well."""
    positions = {s: (y, x) for w, s, y, x in plate.site_positions if w == well}
    return WellInput(
        root=Path(plate.root),
        reader=plate.reader,
        well=well,
        records=plate.records_for(well),
        channel_names=FrozenDict({c.index: c.name for c in plate.channels}),
        channel_colors=FrozenDict({c.index: c.color for c in plate.channels if c.color}),
        pixel_size_um=plate.pixel_size_um,
        z_spacing_um=plate.z_spacing_um,
        site_grid=plate.site_grid,
        site_positions_um=FrozenDict(positions),
        image_shape=tuple(plate.image_shape),  # type: ignore[arg-type]
        dtype=str(plate.dtype),
        missing=plate.missing_for(well),
    )


def select_wells(plate: Plate, well_filter: list[str] | None) -> list[str]:
    """Return the wells to run, checking a user's filter against the plate."""
    if not well_filter:
        return list(plate.wells)
    wells, unknown = [], []
    for w in well_filter:
        try:
            cw = canonical_well(w)
        except ValueError:
            unknown.append(w)
            continue
        (wells if cw in plate.wells else unknown).append(cw if cw in plate.wells else w)
    if unknown:
        raise PipelineCompileError(
            f"wells not in the plate: {', '.join(unknown)} (plate has: {', '.join(plate.wells)})"
        )
    return list(dict.fromkeys(wells))


def compile_plate(
    plate: Plate,
    steps: list[FunctionStep],
    config: GlobalPipelineConfig,
    output_dir: Path,
    pipeline_hash: str,
    well_filter: list[str] | None = None,
) -> CompiledPlate:
    """Run the five compile phases and return one frozen context per well.

    Raises
    ------
    PipelineCompileError
        For every problem found, before any pixel is read.
    """
    wells = select_wells(plate, well_filter)
    plans = compile_step_plans(list(steps), plate)  # phase 1
    output = declare_output_stores(plate, plans, output_dir, pipeline_hash,
                                   config.compression_level)  # phase 2
    plans = plan_materialization(plans, output)  # phase 3
    if config.executor != "threads":
        unpicklable = []
        for p in plans:
            chains = [p.calls] + (list(p.by_group.values()) if p.by_group else [])
            for call in (c for chain in chains for c in chain):
                try:
                    pickle.dumps(call.func)
                except Exception:
                    unpicklable.append(f"{p.label}: function {call.name}")
        if unpicklable:
            raise PipelineCompileError(
                [f"{u} cannot be sent to worker processes (a lambda or a function defined "
                 f"inside another function?); define it at module level or use "
                 f"executor='threads'" for u in unpicklable]
            )
    inputs = {w: well_input(plate, w) for w in wells}
    incomplete = {w: i.missing for w, i in inputs.items() if i.missing}
    if config.skip_incomplete_wells:
        inputs = {w: i for w, i in inputs.items() if not i.missing}
    estimates = {w: estimate_well_peak(i, plans) for w, i in inputs.items()}
    memory = validate_memory(estimates, config.workers, config.memory_limit_bytes)  # phase 4
    gpus = [] if config.use_gpu == "never" else discover_gpus()  # phase 5
    backends = [s.backend for s in steps if isinstance(s, FunctionStep) and s.enabled]
    on_gpu, problems, notes = gpu_steps(plans, backends, use_gpu=config.use_gpu, have_gpu=bool(gpus))
    if problems:
        raise PipelineCompileError(problems)
    vram = {w: estimate_well_vram(i, plans, on_gpu) for w, i in inputs.items()}
    gpu = plan_gpus(vram, gpus, use_gpu=config.use_gpu)
    for note in notes:
        logger.warning("%s", note)
    if gpu.slots:
        logger.info("%s", gpu.describe())
        if gpu.total_slots < memory.workers:
            logger.info("lowering workers from %d to %d: at most that many wells fit on the GPUs at once",
                        memory.workers, gpu.total_slots)
            memory = dataclasses.replace(memory, workers=gpu.total_slots)
    by_device: dict[str, tuple[StepPlan, ...]] = {}
    contexts = {
        w: ProcessingContext(
            well=w,
            inputs=i,
            steps=by_device.setdefault(gpu.assignment[w], plans_for_device(plans, gpu.assignment[w], on_gpu)),
            output=output,
            estimated_peak_bytes=estimates[w],
            device=gpu.assignment[w],
            timeout_s=config.well_timeout_s,
            heartbeat_timeout_s=config.heartbeat_timeout_s,
        )
        for w, i in inputs.items()
    }
    return CompiledPlate(contexts, plans, memory, incomplete, gpu, tuple(notes))
