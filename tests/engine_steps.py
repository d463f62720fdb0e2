"""Plain step functions used by the engine tests (module level, so workers can import them)."""

from __future__ import annotations

import numpy as np


def normalize(stack: np.ndarray, *, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Percentile-normalize the stack to float32 [0, 1]."""
    lo, hi = (float(v) for v in np.percentile(stack, [low, high]))
    return np.clip((stack.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1)


def max_project(stack: np.ndarray) -> np.ndarray:
    """Maximum over the stack."""
    return stack.max(axis=0, keepdims=True)


def mean_project(stack: np.ndarray) -> np.ndarray:
    """Mean over the stack."""
    return stack.mean(axis=0, keepdims=True, dtype=np.float32)


def scale(stack: np.ndarray, *, factor: float) -> np.ndarray:
    """Multiply by ``factor`` (a required argument)."""
    return (stack * factor).astype(np.float32)


def site_offsets(stack: np.ndarray, *, site_positions=None, pixel_size=None):
    """Return the stack and, as a special output, a table of the injected site positions."""
    pos = np.zeros((stack.shape[0], 2)) if site_positions is None else np.asarray(site_positions)
    return stack, {"tile": np.arange(stack.shape[0]), "y": pos[:, 0], "x": pos[:, 1]}


site_offsets.__openhcs_special_outputs__ = ("offsets",)  # type: ignore[attr-defined]


def shift_by_offsets(stack: np.ndarray, *, offsets) -> np.ndarray:
    """Consume the ``offsets`` special input (checks it has one row per tile)."""
    if len(offsets["tile"]) != stack.shape[0]:
        raise ValueError(f"{len(offsets['tile'])} offsets for {stack.shape[0]} tiles")
    return stack


shift_by_offsets.__openhcs_special_inputs__ = ("offsets",)  # type: ignore[attr-defined]


def require_env(stack: np.ndarray, *, name: str) -> np.ndarray:
    """Return the stack unchanged; fail when the environment variable ``name`` is not set."""
    import os

    if name not in os.environ:
        raise RuntimeError(f"{name} is not set in the worker")
    return stack
