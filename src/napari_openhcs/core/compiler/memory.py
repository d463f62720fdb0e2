"""Compile phase 4: memory validation.

Each well's peak host memory is estimated from the shapes and dtypes of its images:
the raw images (kept while a later step reads from the pipeline start) plus a step's
input and output at float32 precision. The estimate times the worker count is
compared with the memory available; the worker count is lowered to fit, or the plan
is refused with the numbers in the message.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from ..context import StepPlan, WellInput
from ..errors import InsufficientMemoryError

logger = logging.getLogger(__name__)

#: Headroom kept free for the operating system and the main process.
HEADROOM_FRACTION = 0.8


@dataclass(frozen=True)
class MemoryPlan:
    """Result of memory validation."""

    per_well_bytes: dict[str, int]
    available_bytes: int
    workers: int
    requested_workers: int

    @property
    def reduced(self) -> bool:
        """True when the worker count had to be lowered."""
        return self.workers < self.requested_workers


def well_input_bytes(inputs: WellInput) -> int:
    """Return the bytes of one well's raw images."""
    per_image = int(np.prod(inputs.image_shape, dtype=np.int64)) * np.dtype(inputs.dtype).itemsize
    return per_image * len(inputs.records)


def estimate_well_peak(inputs: WellInput, plans: tuple[StepPlan, ...]) -> int:
    """Estimate the peak host memory (bytes) of running ``plans`` on one well."""
    raw = well_input_bytes(inputs)
    itemsize = np.dtype(inputs.dtype).itemsize
    widen = max(1.0, 4.0 / itemsize)  # functions typically work in float32
    keeps_raw = any(p.from_pipeline_start for p in plans[1:])
    working = 2.0 * widen * raw  # one step's input and output
    return int((raw if keeps_raw else 0) + working)


#: GPU memory a worker process needs before it allocates an array (CUDA context, libraries).
CUDA_CONTEXT_BYTES = 512 * 2**20


def estimate_well_vram(
    inputs: WellInput, plans: tuple[StepPlan, ...], gpu_steps: Collection[int] | None = None
) -> int:
    """Estimate the peak GPU memory (bytes) of one well; 0 when no step runs on a GPU.

    Between consecutive GPU steps the well's images stay on the device, so the
    working set is the whole well at float32 precision: a step's input and output
    plus as much again for the functions' temporaries (FFTs, filters), plus the
    worker's CUDA context.

    Parameters
    ----------
    inputs : WellInput
        The well's images.
    plans : tuple of StepPlan
        The compiled steps.
    gpu_steps : collection of int, optional
        Indices of the steps that run on a GPU (default: every step).
    """
    steps = [p for p in plans if gpu_steps is None or p.index in gpu_steps]
    if not steps:
        return 0
    widen = max(1.0, 4.0 / np.dtype(inputs.dtype).itemsize)
    return int(3.0 * widen * well_input_bytes(inputs)) + CUDA_CONTEXT_BYTES


def available_memory() -> int:
    """Return the host memory available to a run (bytes)."""
    import psutil

    return int(psutil.virtual_memory().available * HEADROOM_FRACTION)


def validate_memory(
    estimates: dict[str, int], requested_workers: int, limit_bytes: int | None = None
) -> MemoryPlan:
    """Check the per-well estimates against the memory available.

    Raises
    ------
    InsufficientMemoryError
        If even one well at a time does not fit (the message gives the numbers).
    """
    available = int(limit_bytes) if limit_bytes else available_memory()
    peak = max(estimates.values(), default=0)
    if peak > available:
        worst = max(estimates, key=lambda w: estimates[w])
        raise InsufficientMemoryError(
            f"well {worst} needs an estimated {peak / 2**30:.2f} GiB of memory but only "
            f"{available / 2**30:.2f} GiB is available; process fewer images per step "
            f"(e.g. variable_components), use a machine with more memory, or set "
            f"GlobalPipelineConfig(memory_limit_bytes=...) if the estimate is too cautious"
        )
    fit = max(1, available // peak) if peak else requested_workers
    workers = int(min(requested_workers, fit))
    if workers < requested_workers:
        logger.warning(
            "lowering workers from %d to %d: each well needs ~%.0f MiB and %.0f MiB is available",
            requested_workers, workers, peak / 2**20, available / 2**20,
        )
    return MemoryPlan(dict(estimates), available, workers, requested_workers)
