"""Misbehaving step functions, for testing how the engine copes with faults.

Each is a plain module-level function (so it can be sent to worker processes).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np


def slow_identity(stack: np.ndarray, *, seconds: float = 0.2) -> np.ndarray:
    """Return ``stack`` unchanged after sleeping ``seconds``."""
    time.sleep(seconds)
    return stack


def raise_error(stack: np.ndarray, *, message: str = "deliberate failure") -> np.ndarray:
    """Raise ``RuntimeError(message)``."""
    raise RuntimeError(message)


def raise_if_bright(stack: np.ndarray, *, threshold: float = 0.0) -> np.ndarray:
    """Raise when the stack's mean exceeds ``threshold``; else return it unchanged."""
    if float(stack.mean()) > threshold:
        raise RuntimeError(f"mean {float(stack.mean()):.1f} above {threshold}")
    return stack


def wrong_shape(stack: np.ndarray) -> np.ndarray:
    """Return a 4-D array (not a stack)."""
    return stack[np.newaxis, np.newaxis]


def wrong_count(stack: np.ndarray) -> np.ndarray:
    """Return one more slice than given."""
    return np.concatenate([stack, stack[:1]])


def return_nan(stack: np.ndarray) -> np.ndarray:
    """Return a float stack containing NaNs."""
    out = stack.astype(np.float32)
    out.flat[0] = np.nan
    return out


def return_strings(stack: np.ndarray) -> np.ndarray:
    """Return an array of strings."""
    return np.full(stack.shape, "x", dtype=object)


def hang(stack: np.ndarray, *, seconds: float = 3600.0) -> np.ndarray:
    """Sleep for ``seconds`` (stands for a function that never returns)."""
    time.sleep(seconds)
    return stack


def kill_worker_once(stack: np.ndarray, *, marker: str) -> np.ndarray:
    """SIGKILL the current process the first time it is called (as the OOM killer would).

    ``marker`` is a file path: the first call creates it and dies; later calls
    (e.g. the retry) see it and return ``stack`` unchanged.
    """
    path = Path(marker)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return stack
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    return stack  # pragma: no cover


def kill_worker_always(stack: np.ndarray) -> np.ndarray:
    """SIGKILL the current process every time."""
    os.kill(os.getpid(), signal.SIGKILL)
    return stack  # pragma: no cover
