"""Compile phase 5: GPU discovery, assignment of wells to devices, and each step's device.

GPUs are discovered with pynvml (imported lazily; absent → CPU only), honouring
``CUDA_VISIBLE_DEVICES`` (indices and ``GPU-<uuid>`` prefixes). Discovery can be
replaced (:func:`set_gpu_discovery`, :func:`gpu_discovery`), which is how machines
without a GPU test the assignment. Every GPU gets ``min(max_wells_per_gpu,
usable free memory // one well's estimate)`` slots; wells are spread over the
slots of all GPUs, the GPUs with the most free memory first, so each GPU receives
wells in proportion to its slots. The slots bound the wells that share a GPU at
once: the compiler lowers the worker count to the total number of slots.

A step runs on its well's GPU when its backend is ``"auto"`` or ``"gpu"`` and at
least one of its functions has a CuPy twin; otherwise on the CPU. A step with
``backend="gpu"`` that cannot run on a GPU is an error with ``use_gpu="always"``,
and runs on the CPU with a warning otherwise.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..context import BoundCall, StepPlan

logger = logging.getLogger(__name__)

#: Default cap on wells sharing one GPU at a time.
MAX_WELLS_PER_GPU = 4
#: Fraction of a GPU's free memory that wells may plan to use (the rest: allocator slack, FFT plans).
USABLE_FRACTION = 0.9

Discovery = Callable[[], list["GpuDevice"]]
_discovery: Discovery | None = None


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as seen by the engine (``index`` is the CUDA ordinal after masking)."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int
    uuid: str = ""


@dataclass(frozen=True)
class GpuPlan:
    """Phase 5's decision: a device per well and how many wells each GPU takes at once."""

    assignment: dict[str, str]
    slots: dict[int, int] = field(default_factory=dict)
    per_well_bytes: int = 0
    devices: tuple[GpuDevice, ...] = ()

    @property
    def total_slots(self) -> int:
        """Wells that may run on GPUs at the same time."""
        return sum(self.slots.values())

    def describe(self) -> str:
        """One line per GPU: its memory, slots and wells (for the run's log)."""
        if not self.slots:
            return "no GPU used; every well runs on the CPU"
        lines = [f"GPU plan: ~{self.per_well_bytes / 2**30:.2f} GiB of GPU memory per well"]
        for dev in self.devices:
            if dev.index in self.slots:
                n = sum(1 for d in self.assignment.values() if d == f"cuda:{dev.index}")
                lines.append(f"  cuda:{dev.index} {dev.name}: {dev.free_bytes / 2**30:.1f} of "
                             f"{dev.total_bytes / 2**30:.1f} GiB free, {self.slots[dev.index]} wells at "
                             f"a time, {n} wells")
        return "\n".join(lines)


def set_gpu_discovery(func: Discovery | None) -> Discovery | None:
    """Replace GPU discovery with ``func`` (``None`` restores pynvml); return the previous one."""
    global _discovery
    previous, _discovery = _discovery, func
    return previous


@contextmanager
def gpu_discovery(devices: Sequence[GpuDevice] | Discovery) -> Iterator[None]:
    """Within the block, :func:`discover_gpus` returns ``devices`` (a list, or a callable)."""
    func = devices if callable(devices) else (lambda: list(devices))  # type: ignore[arg-type]
    previous = set_gpu_discovery(func)
    try:
        yield
    finally:
        set_gpu_discovery(previous)


def _visible(n_physical: int, uuids: Sequence[str]) -> list[int]:
    """Return the physical indices ``CUDA_VISIBLE_DEVICES`` exposes, in CUDA ordinal order."""
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return list(range(n_physical))
    out: list[int] = []
    for part in (p.strip() for p in mask.split(",")):
        if part.isdigit() and int(part) < n_physical:
            index = int(part)
        elif part.startswith("GPU-") and sum(u.startswith(part) for u in uuids) == 1:
            index = next(i for i, u in enumerate(uuids) if u.startswith(part))
        else:
            break  # CUDA stops at the first entry it cannot resolve (MIG instances are not listed)
        if index in out:
            break
        out.append(index)
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def discover_gpus() -> list[GpuDevice]:
    """Return the visible NVIDIA GPUs with their memory, or ``[]`` when none or pynvml is absent."""
    if _discovery is not None:
        return list(_discovery())
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # no driver
        logger.debug("NVML unavailable: %s", exc)
        return []
    try:
        count = pynvml.nvmlDeviceGetCount()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        uuids = [_text(pynvml.nvmlDeviceGetUUID(h)) for h in handles]
        devices = []
        for ordinal, physical in enumerate(_visible(count, uuids)):
            mem = pynvml.nvmlDeviceGetMemoryInfo(handles[physical])
            devices.append(GpuDevice(ordinal, _text(pynvml.nvmlDeviceGetName(handles[physical])),
                                     int(mem.total), int(mem.free), uuids[physical]))
        if len({d.name for d in devices}) > 1 and os.environ.get("CUDA_DEVICE_ORDER") != "PCI_BUS_ID":
            logger.warning("GPUs of different models: set CUDA_DEVICE_ORDER=PCI_BUS_ID so that CUDA numbers "
                           "them in the order NVML lists them (otherwise a well may run on another GPU "
                           "than the one its memory was checked on)")
        return devices
    except Exception as exc:
        logger.warning("could not list GPUs with NVML (%s); running on the CPU", exc)
        return []
    finally:
        pynvml.nvmlShutdown()


def _no_fit_message(peak: int, devices: Sequence[GpuDevice]) -> str:
    free = ", ".join(f"cuda:{d.index} {d.free_bytes / 2**30:.2f} GiB" for d in devices)
    return (f"each well needs ~{peak / 2**30:.2f} GiB of GPU memory but the GPUs have {free} free "
            f"({USABLE_FRACTION:.0%} of it usable); process fewer images per step or free GPU memory")


def plan_gpus(
    vram_estimates: dict[str, int],
    devices: Sequence[GpuDevice],
    *,
    use_gpu: str = "auto",
    max_wells_per_gpu: int = MAX_WELLS_PER_GPU,
) -> GpuPlan:
    """Assign each well to ``"cuda:N"`` or ``"cpu"`` and count each GPU's slots.

    Wells whose estimate is 0 (no step can run on a GPU) stay on the CPU.

    Raises
    ------
    InsufficientMemoryError
        If ``use_gpu="always"`` and there is no GPU, or a well fits on none.
    """
    from ..errors import InsufficientMemoryError

    gpu_wells = sorted(w for w, v in vram_estimates.items() if v > 0)
    cpu = {w: "cpu" for w in vram_estimates}
    if use_gpu == "never":
        return GpuPlan(cpu)
    if not devices:
        if use_gpu == "always":
            raise InsufficientMemoryError("use_gpu='always' but no GPU was found (pynvml lists none)")
        return GpuPlan(cpu)
    if not gpu_wells:
        return GpuPlan(cpu, devices=tuple(devices))
    peak = max(vram_estimates[w] for w in gpu_wells)
    slots = {d.index: int(min(max_wells_per_gpu, int(d.free_bytes * USABLE_FRACTION) // peak))
             for d in devices}
    slots = {i: n for i, n in slots.items() if n > 0}
    if not slots:
        msg = _no_fit_message(peak, devices)
        if use_gpu == "always":
            raise InsufficientMemoryError(msg)
        logger.warning("%s; running on the CPU", msg)
        return GpuPlan(cpu, per_well_bytes=peak, devices=tuple(devices))
    # one entry per slot, most free memory first, interleaved: each GPU gets wells in
    # proportion to its slots and consecutive wells land on different GPUs
    order = sorted(devices, key=lambda d: (-d.free_bytes, d.index))
    ring = [d.index for k in range(max(slots.values())) for d in order if slots.get(d.index, 0) > k]
    assignment = dict(cpu)
    assignment.update({w: f"cuda:{ring[i % len(ring)]}" for i, w in enumerate(gpu_wells)})
    return GpuPlan(assignment, slots, peak, tuple(devices))


def assign_devices(
    vram_estimates: dict[str, int],
    devices: Sequence[GpuDevice],
    *,
    use_gpu: str = "auto",
    max_wells_per_gpu: int = MAX_WELLS_PER_GPU,
) -> dict[str, str]:
    """Return ``{well: "cuda:N" or "cpu"}`` (see :func:`plan_gpus`)."""
    return plan_gpus(vram_estimates, devices, use_gpu=use_gpu, max_wells_per_gpu=max_wells_per_gpu).assignment


def has_gpu_twin(call: BoundCall) -> bool:
    """True when the call can run on a GPU: it is a CuPy function or has a registered CuPy twin."""
    if call.memory_type == "cupy":
        return True
    if call.registered_name is None:
        return False
    from ...functions.registry import twins

    return "cupy" in twins(call.registered_name)


def _calls(plan: StepPlan) -> list[BoundCall]:
    chains = [plan.calls] + (list(plan.by_group.values()) if plan.by_group else [])
    return [c for chain in chains for c in chain]


def gpu_steps(
    plans: Sequence[StepPlan], backends: Sequence[str], *, use_gpu: str, have_gpu: bool
) -> tuple[frozenset[int], list[str], list[str]]:
    """Decide which steps may run on a GPU.

    Returns
    -------
    steps, problems, notes
        Indices of the steps that run on their well's GPU (when it has one);
        compile errors (``backend="gpu"`` impossible with ``use_gpu="always"``);
        warnings (``backend="gpu"`` steps that will run on the CPU).
    """
    capable: set[int] = set()
    problems: list[str] = []
    notes: list[str] = []
    for plan, backend in zip(plans, backends):
        label = plan.label
        twin = any(has_gpu_twin(c) for c in _calls(plan))
        if backend == "cpu" or use_gpu == "never":
            if backend == "gpu":
                notes.append(f"{label} asks for backend='gpu' but use_gpu='never'; it runs on the CPU")
            continue
        if twin:
            capable.add(plan.index)
            if backend == "gpu" and not have_gpu:
                notes.append(f"{label} asks for backend='gpu' but no GPU was found; it runs on the CPU")
        elif backend == "gpu":
            names = ", ".join(f"{c.name}()" for c in _calls(plan))
            msg = f"{label} asks for backend='gpu' but {names} has no GPU implementation"
            if use_gpu == "always":
                problems.append(msg)
            else:
                notes.append(msg + "; it runs on the CPU")
    return frozenset(capable), problems, notes


def plans_for_device(plans: Sequence[StepPlan], device: str, steps: frozenset[int]) -> tuple[StepPlan, ...]:
    """Return ``plans`` with ``device`` set on the steps in ``steps`` (the others on the CPU)."""
    if not device.startswith("cuda"):
        return tuple(plans)
    return tuple(dataclasses.replace(p, device=device if p.index in steps else "cpu") for p in plans)
