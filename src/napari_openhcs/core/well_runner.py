"""Run a compiled pipeline on one well: read, apply each step, write.

The same code serves the plate run (worker process or thread, results written to
the output plate) and the napari preview (intermediates kept in memory, nothing
written). :func:`execute_well` never raises: a failure becomes a failed
:class:`WellResult` naming the step.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .components import Component
from .context import BoundCall, ProcessingContext, StepPlan, WellInput
from .errors import StepExecutionError, WellCancelledError
from .events import StepFinished
from .gpu_runtime import device_scope, gpu_well, oom_fallback, release_gpu_memory, resolve_call, state_to_host
from .heartbeat import beat
from .memory_types import memory_type_of, to_memory_type
from .raw_images import RawReadError, lazy_raw_state, read_groups, read_seconds, read_well
from .results import WellResult
from .step_reuse import repeated_steps
from .well_state import (
    AXIS_POS,
    ImageKey,
    SpecialStore,
    WellState,
    group_images,
    special_key,
    stack_images,
    take_stack,
)
from .workers.process import trim_heap

logger = logging.getLogger(__name__)

Emit = Callable[[Any], None]
IsCancelled = Callable[[], bool]

@dataclass
class WellRun:
    """In-memory outcome of running steps on a well (used by preview and writers)."""

    final: WellState | None
    specials: SpecialStore
    intermediates: list[WellState] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    failed_step: int | None = None
    error: str | None = None


def _metadata_value(name: str, inputs: WellInput, keys: list[tuple[int, int, int, int]]) -> Any:
    if name == "pixel_size":
        return inputs.pixel_size_um
    if name == "grid_dimensions":
        return inputs.site_grid
    if name == "channel_names":
        return tuple(inputs.channel_names.get(k[1], f"w{k[1]}") for k in keys)
    if name == "site_positions":
        if not inputs.site_positions_um or not inputs.pixel_size_um:
            return None
        try:
            pos = [inputs.site_positions_um[k[0]] for k in keys]
        except KeyError:
            return None
        return np.asarray(pos, dtype=np.float64) / float(inputs.pixel_size_um)
    raise KeyError(name)


def _check_output(out: Any, call: BoundCall, n_in: int) -> Any:
    """Validate a function's output stack; a GPU array is checked, and returned, on its device."""
    on_device = memory_type_of(out) == "cupy"
    arr = out if on_device or isinstance(out, np.ndarray) else np.asarray(out)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise StepExecutionError(
            f"{call.name}() returned an array of shape {arr.shape}; expected a (N, Y, X) stack"
        )
    if arr.shape[0] not in (n_in, 1):
        raise StepExecutionError(
            f"{call.name}() returned {arr.shape[0]} slices for {n_in} input slices; a step "
            f"must return as many slices as it was given, or one"
        )
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise StepExecutionError(f"{call.name}() returned an array of dtype {arr.dtype}; expected numbers")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise StepExecutionError(
            f"{call.name}() returned an array of dtype {arr.dtype}; expected real numbers")
    if np.issubdtype(arr.dtype, np.floating):
        from ..functions._xp import get_modules

        xp, _ = get_modules(arr)
        # one read of the array, no temporary: NaN and infinity make the sum non-finite; a sum
        # that overflows to infinity is told apart by the exact count below
        with np.errstate(over="ignore", invalid="ignore"):
            total = arr.sum()
        if arr.size and not bool(xp.isfinite(total)):
            bad = int(arr.size - int(xp.count_nonzero(xp.isfinite(arr))))
            if bad:
                raise StepExecutionError(f"{call.name}() returned {bad} NaN or infinite values")
    return arr


def _stack(state: WellState, keys: list[tuple[int, int, int, int]], consume: bool) -> Any:
    """Stack a group's images (see ``run_step``); on the GPU when any of them is already there."""
    arrays = [state.images[k] for k in keys]
    if all(memory_type_of(a) != "cupy" for a in arrays):
        return take_stack(state, keys) if consume else stack_images(state, keys)
    from ..functions._xp import get_modules

    if len({a.shape for a in arrays}) > 1:
        return stack_images(state_to_host(state), keys)  # raises, naming the images
    if consume:
        for k in keys:
            del state.images[k]
    xp, _ = get_modules(next(a for a in arrays if memory_type_of(a) == "cupy"))
    return xp.stack([xp.asarray(a) for a in arrays])


def apply_calls(
    calls: tuple[BoundCall, ...],
    stack: np.ndarray,
    group: dict[Component, int],
    keys: list[tuple[int, int, int, int]],
    inputs: WellInput,
    specials: SpecialStore,
    collapsed: frozenset[Component],
    device: str,
) -> np.ndarray:
    """Apply a chain of calls to one group's stack, storing its special outputs.

    On a GPU (``device`` ``"cuda:N"``) each registered function with a CuPy twin runs
    as its twin; the stack moves to the device once and back to the host only for a
    function without a twin (special outputs are always kept on the host). The
    returned stack may be a device array.
    """
    from ..functions._xp import to_host

    for call in calls:
        kwargs = dict(call.kwargs)
        for name in call.special_inputs:
            kwargs[name] = specials.get(name, group)
        for name in call.metadata_inputs:
            kwargs[name] = _metadata_value(name, inputs, keys)
        func, memory_type = resolve_call(call, device)
        data = to_memory_type(stack, memory_type, device)
        out = func(data, **kwargs)
        if call.special_outputs:
            if not isinstance(out, tuple) or len(out) != 1 + len(call.special_outputs):
                raise StepExecutionError(
                    f"{call.name}() declares special outputs {list(call.special_outputs)} and must "
                    f"return (stack, {', '.join(call.special_outputs)}); got {type(out).__name__}"
                )
            out, *extras = out
            for sname, value in zip(call.special_outputs, extras):
                specials.put(sname, special_key(group, collapsed), to_host(value))
        elif isinstance(out, tuple):
            raise StepExecutionError(f"{call.name}() returned a tuple but declares no special outputs")
        stack = _check_output(out, call, stack.shape[0])
    return stack


def run_step(
    plan: StepPlan,
    state: WellState,
    inputs: WellInput,
    specials: SpecialStore,
    device: str = "cpu",
    *,
    consume: bool = False,
) -> WellState:
    """Apply one step to a well's state and return the new state.

    With ``consume=True`` the images are removed from ``state`` group by group as
    they are stacked (the caller is discarding ``state``), so that the memory of the
    input is released while the output grows.
    """
    variable = plan.variable_components
    new_images: dict[tuple[int, int, int, int], np.ndarray] = {}
    collapsed = set(state.collapsed)
    collapsed_channels = state.collapsed_channels
    groups = group_images(state, variable)
    if consume and not plan.special_outputs:
        groups = _in_storage_order(state, groups)
    for group, keys in groups:
        beat(plan.index)
        if plan.by_group is not None:
            gval = group.get(plan.group_by) if plan.group_by else None
            calls = plan.by_group.get(str(gval)) if gval is not None else None
            if calls is None:  # dict pattern without an entry: passed through unchanged
                for k in keys:
                    new_images[k] = state.images[k]
                continue
        else:
            calls = plan.calls
        stack = _stack(state, keys, consume)
        out = apply_calls(calls, stack, group, keys, inputs, specials,
                          frozenset(collapsed), device)
        del stack
        if out.shape[0] == len(keys):
            for k, img in zip(keys, out):
                new_images[k] = img
        else:
            new_images[keys[0]] = out[0]
            if len(keys) > 1:
                for c in variable:
                    if len({k[AXIS_POS[c]] for k in keys}) > 1:
                        collapsed.add(c)
                        if c is Component.CHANNEL:
                            collapsed_channels = tuple(sorted({k[1] for k in keys}))
    return WellState(new_images, frozenset(collapsed), collapsed_channels)


def _in_storage_order(
    state: WellState, groups: list[tuple[dict[Component, int], list[ImageKey]]]
) -> list[tuple[dict[Component, int], list[ImageKey]]]:
    """Order groups by where their images come in ``state`` (the order the previous step made them).

    A previous step's output for one group is one block of memory, freed once all of
    its images are consumed; taking the groups in this order finishes one block
    before starting the next (e.g. a channel composite per site and z, after a
    normalization per channel and z over sites, frees each z's blocks as soon as its
    sites are done). The groups are independent and each group's images keep their
    order, so the results are the same; steps with special outputs keep the sorted
    order, which their tables follow.
    """
    position = {k: i for i, k in enumerate(state.images)}
    return sorted(groups, key=lambda g: min(position[k] for k in g[1]))


def _stays_on_device(context: ProcessingContext, plan: StepPlan, keep_intermediates: bool) -> bool:
    """True when a step's output may stay on its GPU: the next step runs on the same one."""
    following = context.steps[plan.index + 1] if plan.index + 1 < len(context.steps) else None
    return (not keep_intermediates and following is not None and plan.device.startswith("cuda")
            and following.device == plan.device)


def run_steps(
    context: ProcessingContext,
    *,
    raw: WellState | None = None,
    start_step: int = 0,
    start_state: WellState | None = None,
    specials: SpecialStore | None = None,
    keep_intermediates: bool = False,
    on_step: Callable[[StepPlan, WellState, float], None] | None = None,
    is_cancelled: IsCancelled | None = None,
) -> WellRun:
    """Run the steps of ``context`` from ``start_step`` on; raise on the first failure.

    ``on_step(plan, state, seconds)`` is called after each step (e.g. to write a
    materialized step's output, or to emit progress). Each step runs on its plan's
    device; between two steps on the same GPU the images stay there, otherwise (and
    always with ``keep_intermediates``) the state handed on is on the host.
    """
    specials = specials if specials is not None else SpecialStore()
    timings: dict[str, float] = {}
    # Images this function read itself may be released as they are used (unless the
    # caller keeps every step's output): a step's input is consumed group by group,
    # and the raw images are read again, rather than held, for a later step that
    # starts from the pipeline start. A step's input and output are then the only
    # full copies of a well in memory at any time.
    own_raw = raw is None and not keep_intermediates
    own_state = own_raw and start_state is None
    if raw is None:
        t0 = time.perf_counter()
        first = next((p for p in context.steps[start_step:]
                      if p.from_pipeline_start or (start_state is None and p.index == start_step)), None)
        raw = _raw_state(context.inputs, first, own_raw)
        timings["read"] = time.perf_counter() - t0
    state: WellState | None = start_state if start_state is not None else raw
    run = WellRun(None, specials, timings=timings)
    # a step repeating an earlier one on the raw images gets that step's output, kept
    repeats = repeated_steps(context.steps) if own_state and start_step == 0 else {}
    kept: dict[int, WellState] = {}
    last_raw_use = max((p.index for p in context.steps if p.from_pipeline_start and p.index not in repeats),
                       default=0)
    for plan in context.steps[start_step:]:
        beat(plan.index)
        if is_cancelled is not None and is_cancelled():
            raise WellCancelledError(f"well {context.well} cancelled before {plan.label}")
        if plan.index in repeats:
            earlier = repeats[plan.index]
            state = kept[earlier]
            if not any(e == earlier and later > plan.index for later, e in repeats.items()):
                del kept[earlier]  # its last user: the next step may consume it
            timings.setdefault(plan.name, 0.0)
            if on_step is not None:
                on_step(plan, state, 0.0)
            continue
        if plan.from_pipeline_start:
            if own_state:
                state = None  # replaced by this step's output; not an input of it
            if raw is None:
                t0 = time.perf_counter()
                raw = _raw_state(context.inputs, plan, own_raw)
                timings["read"] = timings.get("read", 0.0) + time.perf_counter() - t0
            source, consume = raw, own_raw
        else:
            assert state is not None
            source, consume = state, own_state
        if consume and source is raw:
            raw = None  # read again if a later step needs it
        if any(source is k for k in kept.values()):
            consume = False  # a later step reuses it
        t0 = time.perf_counter()
        try:
            with device_scope(plan.device):
                state = run_step(plan, source, context.inputs, specials, plan.device, consume=consume)
        except (WellCancelledError, RawReadError):
            raise
        except Exception as exc:
            run.failed_step = plan.index
            raise StepExecutionError(
                f"{plan.label} failed on well {context.well}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        reading = read_seconds(source)  # a lazily read input's reading is not the step's time
        timings["read"] = timings.get("read", 0.0) + reading
        del source
        if consume:
            trim_heap()  # the input's memory is free now: give it back before the next step
        own_state = own_state or own_raw
        if not _stays_on_device(context, plan, keep_intermediates):
            state = state_to_host(state)
        elapsed = time.perf_counter() - t0 - reading
        timings[plan.name] = timings.get(plan.name, 0.0) + elapsed
        if plan.index in repeats.values():
            kept[plan.index] = state
        if keep_intermediates:
            run.intermediates.append(state)
        if on_step is not None:
            on_step(plan, state, elapsed)
        if plan.index >= last_raw_use and not keep_intermediates:
            raw = None  # type: ignore[assignment]  # free the raw images once no step needs them
    run.final = state
    return run


def _raw_state(inputs: WellInput, plan: StepPlan | None, consumed: bool) -> WellState:
    """The raw images for ``plan``: read group by group as it consumes them, else all at once."""
    if consumed:
        return lazy_raw_state(inputs, read_groups(inputs, plan))
    return read_well(inputs)


def _run_and_write(
    context: ProcessingContext,
    emit: Emit | None,
    cancelled: IsCancelled,
    reported: set[int],
) -> tuple[dict[str, float], dict[str, Any]]:
    """One attempt at a well: run its steps and write its outputs; raise on failure.

    ``reported`` holds the steps whose ``StepFinished`` was already emitted (by an
    earlier attempt), which are not reported twice.
    """
    from .well_output import WellWriter

    writer = WellWriter(context)

    def on_step(plan: StepPlan, state: WellState, elapsed: float) -> None:
        if plan.output != "memory" and plan.index != len(context.steps) - 1:
            writer.write_step(plan, state_to_host(state))
        if emit is not None and plan.index not in reported:
            reported.add(plan.index)
            emit(StepFinished(context.well, plan.index, plan.name, elapsed))

    try:
        run = run_steps(context, on_step=on_step, is_cancelled=cancelled)
        if cancelled():
            raise WellCancelledError(f"well {context.well} cancelled before writing")
        t0 = time.perf_counter()
        outputs = writer.write_final(run.final, run.specials)  # type: ignore[arg-type]
        run.timings["write"] = time.perf_counter() - t0 + writer.step_write_seconds
        return run.timings, outputs
    except BaseException:  # also KeyboardInterrupt, SystemExit: leave no table of an unfinished well
        writer.discard()
        raise


def execute_well(
    context: ProcessingContext,
    emit: Emit | None = None,
    is_cancelled: IsCancelled | None = None,
) -> WellResult:
    """Run one well end to end and write its outputs; never raises.

    A well that runs out of GPU memory is run again once on its GPU (the memory
    pool freed), then on the CPU; ``WellResult.notes`` says so.

    Returns
    -------
    WellResult
        ``done``, ``failed`` (with the step and reason) or ``cancelled``.
    """
    t_start = time.perf_counter()
    deadline = t_start + context.timeout_s if context.timeout_s else None

    def cancelled() -> bool:
        if deadline is not None and time.perf_counter() > deadline:
            raise StepExecutionError(
                f"well {context.well} exceeded the per-well timeout of {context.timeout_s:g} s"
            )
        return bool(is_cancelled and is_cancelled())

    notes: list[str] = []
    reported: set[int] = set()
    attempt, current = 0, context
    while True:
        retry: tuple[ProcessingContext, str] | None = None
        try:
            with gpu_well(current):
                timings, outputs = _run_and_write(current, emit, cancelled, reported)
            timings["total"] = time.perf_counter() - t_start
            return WellResult(context.well, "done", None, timings, outputs, tuple(notes))
        except WellCancelledError as exc:
            return WellResult(context.well, "cancelled", str(exc),
                              {"total": time.perf_counter() - t_start}, notes=tuple(notes))
        except Exception as exc:
            retry = oom_fallback(current, exc, attempt)
            if retry is None:
                msg = str(exc) if isinstance(exc, StepExecutionError) else f"{type(exc).__name__}: {exc}"
                logger.debug("well %s failed:\n%s", context.well, traceback.format_exc())
                return WellResult(context.well, "failed", msg, {"total": time.perf_counter() - t_start},
                                  notes=tuple(notes))
        # outside the except block, so the failed attempt's arrays can be freed
        current, note = retry
        notes.append(note)
        logger.warning("well %s: %s", context.well, note)
        release_gpu_memory()
        attempt += 1
