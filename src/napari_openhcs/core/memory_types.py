"""Converting stacks between memory types (NumPy, CuPy, Torch) on a step's device.

GPU libraries are imported only when a step actually needs them.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def memory_type_of(array: Any) -> str:
    """Return ``"numpy"``, ``"cupy"`` or ``"torch"`` for an array."""
    module = type(array).__module__.split(".")[0]
    if module == "cupy":
        return "cupy"
    if module == "torch":
        return "torch"
    return "numpy"


def _device_ordinal(device: str) -> int:
    return int(device.split(":", 1)[1]) if device.startswith("cuda:") else 0


def to_memory_type(array: Any, memory_type: str, device: str = "cpu") -> Any:
    """Return ``array`` as ``memory_type`` (converting once; no copy when already there).

    Parameters
    ----------
    array
        A NumPy, CuPy or Torch array.
    memory_type : {"numpy", "cupy", "torch"}
        The type the next function takes.
    device : str
        ``"cpu"`` or ``"cuda:N"``: where GPU arrays are placed.
    """
    current = memory_type_of(array)
    if current == memory_type:
        return array
    if memory_type == "numpy":
        if current == "cupy":
            return array.get()
        return array.detach().cpu().numpy()  # torch
    if memory_type == "cupy":
        import cupy as cp  # type: ignore[import-not-found]

        with cp.cuda.Device(_device_ordinal(device)):
            if current == "torch":
                return cp.from_dlpack(array)
            return cp.asarray(array)
    if memory_type == "torch":
        import torch  # type: ignore[import-not-found]

        if current == "cupy":
            return torch.from_dlpack(array)
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        return tensor.to(device) if device.startswith("cuda") else tensor
    raise ValueError(f"unknown memory type {memory_type!r}")
