"""Compile phase 5: GPU discovery and assignment of wells to devices.

GPUs are discovered with pynvml (imported lazily; absent → CPU only), honouring
``CUDA_VISIBLE_DEVICES``. Wells are spread over all GPUs by free memory, with a cap
on concurrent wells per GPU; without a GPU every well runs on the CPU twins.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuDevice:
    """One GPU as seen by the engine (``index`` is the CUDA ordinal after masking)."""

    index: int
    name: str
    total_bytes: int
    free_bytes: int


def _visible(n_physical: int) -> list[int]:
    mask = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mask is None:
        return list(range(n_physical))
    out = []
    for part in mask.split(","):
        part = part.strip()
        if part.isdigit() and int(part) < n_physical:
            out.append(int(part))
        elif part:
            break  # CUDA stops at the first invalid entry (UUIDs are not resolved here)
    return out


def discover_gpus() -> list[GpuDevice]:
    """Return the visible NVIDIA GPUs with their memory, or ``[]`` when none/pynvml absent."""
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
        devices = []
        for ordinal, physical in enumerate(_visible(pynvml.nvmlDeviceGetCount())):
            handle = pynvml.nvmlDeviceGetHandleByIndex(physical)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            devices.append(GpuDevice(ordinal, name.decode() if isinstance(name, bytes) else str(name),
                                     int(mem.total), int(mem.free)))
        return devices
    finally:
        pynvml.nvmlShutdown()


def assign_devices(
    vram_estimates: dict[str, int],
    devices: list[GpuDevice],
    *,
    use_gpu: str = "auto",
    max_wells_per_gpu: int = 4,
) -> dict[str, str]:
    """Assign each well to ``"cuda:N"`` or ``"cpu"``.

    Wells go round-robin to the GPU with the most free memory left in its budget;
    each GPU takes at most ``min(max_wells_per_gpu, free // estimate)`` concurrent
    wells, which bounds how many wells can share it at once. Wells are assigned to
    slots, not pinned for the whole run: slot ``k`` of GPU ``g`` is reused by later
    wells.

    Raises
    ------
    InsufficientMemoryError
        If ``use_gpu="always"`` and a well does not fit on any GPU.
    """
    from ..errors import InsufficientMemoryError

    if use_gpu == "never" or (not devices and use_gpu == "auto"):
        return {w: "cpu" for w in vram_estimates}
    if not devices:
        raise InsufficientMemoryError("use_gpu='always' but no GPU was found")
    peak = max(vram_estimates.values(), default=0) or 1
    slots: list[int] = []
    for dev in sorted(devices, key=lambda d: -d.free_bytes):
        cap = min(max_wells_per_gpu, dev.free_bytes // peak)
        slots.extend([dev.index] * int(cap))
    if not slots:
        best = max(devices, key=lambda d: d.free_bytes)
        msg = (f"each well needs ~{peak / 2**30:.2f} GiB of GPU memory but the largest free "
               f"GPU memory is {best.free_bytes / 2**30:.2f} GiB (GPU {best.index})")
        if use_gpu == "always":
            raise InsufficientMemoryError(msg)
        logger.warning("%s; running on the CPU", msg)
        return {w: "cpu" for w in vram_estimates}
    # interleave so consecutive wells land on different GPUs
    order = sorted(range(len(slots)), key=lambda i: (slots[:i].count(slots[i]), i))
    slots = [slots[i] for i in order]
    return {w: f"cuda:{slots[i % len(slots)]}" for i, w in enumerate(sorted(vram_estimates))}
