"""GPU support while a well runs: device scopes, twin selection, out-of-memory recovery.

Nothing here imports CuPy unless a step actually runs on a GPU; on a machine
without one every function is a no-op or returns the CPU choice.

Out of memory on a GPU never fails a plate: the memory pool is freed and the well
is run again once on its GPU; if that fails for lack of memory too, the well runs
on the CPU twins, and its :class:`~napari_openhcs.core.results.WellResult` says so
in ``notes``. :func:`is_gpu_oom` recognises the error by class name and module
(``OutOfMemoryError`` from ``cupy``/``cupy_backends``/``torch``, or a CUDA library's
allocation failure) anywhere in the exception's cause chain, so it needs no GPU
library to be tested.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from .context import BoundCall, ProcessingContext
from .well_state import WellState

logger = logging.getLogger(__name__)

_GPU_MODULES = ("cupy", "cupy_backends", "cupyx", "torch")
_ALLOC_FAILURES = (
    "cudaErrorMemoryAllocation",
    "CUDA_ERROR_OUT_OF_MEMORY",
    "CUFFT_ALLOC_FAILED",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUSOLVER_STATUS_ALLOC_FAILED",
    "CUSPARSE_STATUS_ALLOC_FAILED",
    "CURAND_STATUS_ALLOCATION_FAILED",
)


def device_ordinal(device: str) -> int | None:
    """Return ``N`` for ``"cuda:N"`` (``0`` for ``"cuda"``), ``None`` for the CPU."""
    if not device.startswith("cuda"):
        return None
    _, _, n = device.partition(":")
    return int(n) if n else 0


def on_gpu(device: str) -> bool:
    """True for a ``"cuda..."`` device."""
    return device_ordinal(device) is not None


def _is_oom_class(cls: type) -> bool:
    for klass in cls.__mro__:
        root = (klass.__module__ or "").split(".")[0]
        if root in _GPU_MODULES and klass.__name__ == "OutOfMemoryError":
            return True
    return False


def is_gpu_oom(exc: BaseException | None) -> bool:
    """True when ``exc`` or an exception in its cause/context chain means "GPU out of memory".

    Examples
    --------
    >>> OutOfMemoryError = type("OutOfMemoryError", (MemoryError,), {"__module__": "cupy.cuda.memory"})
    >>> is_gpu_oom(RuntimeError("step failed")), is_gpu_oom(OutOfMemoryError("1 GiB"))
    (False, True)
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if _is_oom_class(type(exc)):
            return True
        root = (type(exc).__module__ or "").split(".")[0]
        if root in _GPU_MODULES and any(code in str(exc) for code in _ALLOC_FAILURES):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def device_scope(device: str) -> Any:
    """Return a context manager making ``device`` CuPy's current GPU (a no-op for the CPU)."""
    ordinal = device_ordinal(device)
    if ordinal is None:
        return nullcontext()
    import cupy  # type: ignore[import-not-found]

    return cupy.cuda.Device(ordinal)


def release_gpu_memory() -> None:
    """Return the memory cached by CuPy's pools to the driver (only if CuPy is loaded).

    Called after every GPU well, so that worker processes sharing a GPU do not keep
    each other's freed blocks, and before an out-of-memory retry.
    """
    if "cupy" not in sys.modules:
        return
    gc.collect()  # arrays held by a failed attempt's traceback
    cupy = sys.modules["cupy"]
    try:
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
    except Exception as exc:  # a broken driver must not hide the well's own result
        logger.debug("could not free the CuPy memory pools: %s", exc)


def resolve_call(call: BoundCall, device: str) -> tuple[Callable[..., Any], str]:
    """Return ``(function, memory type)`` to run ``call`` on ``device``.

    On a GPU a registered function is swapped for its CuPy twin when it has one;
    everything else runs as compiled.
    """
    if on_gpu(device) and call.memory_type != "cupy" and call.registered_name is not None:
        from ..functions.registry import twins

        twin = twins(call.registered_name).get("cupy")
        if twin is not None:
            return twin.func, "cupy"
    return call.func, call.memory_type


def state_to_host(state: WellState) -> WellState:
    """Return ``state`` with every image on the host (the same object when it already is)."""
    from ..functions._xp import asnumpy, is_device_array

    if not any(is_device_array(a) for a in state.images.values()):
        return state
    images = {k: asnumpy(a) for k, a in state.images.items()}
    return WellState(images, state.collapsed, state.collapsed_channels)


def uses_gpu(context: ProcessingContext) -> bool:
    """True when any step of the context runs on a GPU."""
    return any(on_gpu(p.device) for p in context.steps)


def on_cpu(context: ProcessingContext) -> ProcessingContext:
    """Return the context with the well and every step on the CPU."""
    steps = tuple(dataclasses.replace(p, device="cpu") for p in context.steps)
    return dataclasses.replace(context, device="cpu", steps=steps)


def oom_fallback(
    context: ProcessingContext, exc: BaseException, attempt: int
) -> tuple[ProcessingContext, str] | None:
    """Decide how to go on after ``exc`` ended attempt ``attempt`` (0-based) of a well.

    Returns
    -------
    (context, note) or None
        The context of the next attempt and the note for the well's result: the
        same GPU once more, then the CPU. ``None`` when ``exc`` is not a GPU
        out-of-memory error or the CPU was tried already.
    """
    if not is_gpu_oom(exc) or not uses_gpu(context):
        return None
    device = next(p.device for p in context.steps if on_gpu(p.device))
    reason = str(exc).splitlines()[0][:300]
    if attempt == 0:
        return context, (f"GPU out of memory on {device} ({reason}); freed the GPU memory pool and "
                         f"ran the well again")
    return on_cpu(context), f"GPU out of memory again on {device}; the well ran on the CPU instead"


@contextmanager
def gpu_well(context: ProcessingContext) -> Iterator[None]:
    """Around a well's run: log its device, and free the GPU pools afterwards."""
    gpu = uses_gpu(context)
    if gpu:
        logger.info("well %s: running on %s", context.well, context.device)
    try:
        yield
    finally:
        if gpu:
            release_gpu_memory()
