"""Compile phase 1: step plans.

Per step: where its input comes from, its function calls with keyword arguments
bound against the signature, dict-pattern keys checked against the plate, and
special inputs wired to an earlier producer. All problems are collected and raised
together, before any pixel is read.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ...functions.registry import METADATA_INPUTS, function_info, parameter_specs, registered_name
from ...microscopes.plate import Plate
from ..components import Component
from ..context import BoundCall, StepPlan, step_label
from ..frozen import FrozenDict
from ..steps import FunctionStep, InputSource


def _fname(func: Callable[..., Any]) -> str:
    return getattr(func, "__name__", type(func).__name__)


def _non_finite(value: Any, depth: int = 0) -> str | None:
    """``"NaN"``/``"infinite"`` when ``value`` (or a number inside it) is not finite."""
    if isinstance(value, bool) or depth > 20:
        return None
    if isinstance(value, float | np.floating):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "infinite"
        return None
    if isinstance(value, list | tuple):
        return next((b for b in (_non_finite(v, depth + 1) for v in value) if b), None)
    if isinstance(value, Mapping):
        return next((b for b in (_non_finite(v, depth + 1) for v in value.values()) if b), None)
    return None


def _check_ranges(step_label: str, name: str, func: Any, kwargs: Mapping[str, Any], info: Any,
                  problems: list[str]) -> bool:
    """Append a problem for each argument outside the range its function declares; True if none."""
    try:
        specs = parameter_specs(func, skip=set(info.special_inputs) | set(info.metadata_inputs))
    except (TypeError, ValueError):
        return True
    ok = True
    merged = {s.name: s.default for s in specs} | dict(kwargs)
    for spec in specs:
        if spec.name not in kwargs and spec.less_than not in kwargs:
            continue  # a default is the function's own choice
        why = spec.violation(merged.get(spec.name), merged)
        if why is not None:
            value = merged[spec.name]
            problems.append(f"{step_label}: argument {spec.name!r} of {name}() is {value!r}; {why}")
            ok = False
    return ok


def bind_call(
    step_label: str, func: Any, kwargs: Mapping[str, Any], problems: list[str]
) -> BoundCall | None:
    """Check ``kwargs`` against ``func``'s signature and return the bound call.

    Unknown and missing arguments are appended to ``problems`` (naming the step
    and the argument); ``None`` is returned when the call cannot be bound.
    """
    if not callable(func):
        problems.append(f"{step_label}: {func!r} is not callable")
        return None
    info = function_info(func)
    name = _fname(func)
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):
        return BoundCall(func, name, FrozenDict(kwargs), info.special_inputs, info.special_outputs, (),
                         info.memory_type, registered_name(func))
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional and not any(p.kind is p.VAR_POSITIONAL for p in params):
        problems.append(f"{step_label}: {name}() must take the image stack as its first argument")
        return None
    rest = params[1:] if positional and params[0] is positional[0] else params
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in rest)
    named = {p.name: p for p in rest if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    ok = True
    for key in kwargs:
        if key in info.special_inputs:
            problems.append(
                f"{step_label}: argument {key!r} of {name}() is a special input filled from an "
                f"earlier step's output; do not set it"
            )
            ok = False
        elif key not in named and not accepts_any:
            valid = ", ".join(named) or "none"
            problems.append(f"{step_label}: {name}() has no argument {key!r} (its arguments: {valid})")
            ok = False
    for key, value in kwargs.items():
        bad = _non_finite(value)
        if bad is not None:
            problems.append(
                f"{step_label}: argument {key!r} of {name}() is {bad}; give a finite number "
                f"(results and their metadata cannot hold NaN or infinity)"
            )
            ok = False
    if ok:
        ok = _check_ranges(step_label, name, func, kwargs, info, problems)
    metadata = []
    for pname, p in named.items():
        if pname in kwargs or pname in info.special_inputs:
            continue
        if pname in METADATA_INPUTS:
            metadata.append(pname)
            continue
        if p.default is inspect.Parameter.empty and p.kind is not p.POSITIONAL_ONLY:
            problems.append(f"{step_label}: {name}() needs argument {pname!r}, which is not set")
            ok = False
    for sin in info.special_inputs:
        if sin not in named and not accepts_any:
            problems.append(f"{step_label}: {name}() declares special input {sin!r} but has no such argument")
            ok = False
    if not ok:
        return None
    return BoundCall(
        func=func,
        name=info.name if info.registered else name,
        kwargs=FrozenDict(kwargs),
        special_inputs=info.special_inputs,
        special_outputs=info.special_outputs,
        metadata_inputs=tuple(metadata),
        memory_type=info.memory_type,
        registered_name=registered_name(func),
    )


def _chain(step_label: str, pattern: Any, problems: list[str]) -> tuple[BoundCall, ...] | None:
    """Bind a non-dict pattern (callable, (callable, kwargs) or list) into a chain."""
    from ..steps import iter_callables

    calls = []
    for func, kwargs in iter_callables(pattern):
        bound = bind_call(step_label, func, kwargs, problems)
        if bound is None:
            return None
        calls.append(bound)
    return tuple(calls)


def group_key_values(plate: Plate, comp: Component) -> dict[str, str]:
    """Map every accepted dict-pattern key for ``comp`` to its canonical string value."""
    out: dict[str, str] = {}
    if comp is Component.CHANNEL:
        for ch in plate.channels:
            out[str(ch.index)] = str(ch.index)
            out[ch.name] = str(ch.index)
    else:
        for v in plate.values(comp):
            out[str(v)] = str(v)
    return out


def compile_step_plans(steps: list[FunctionStep], plate: Plate) -> tuple[StepPlan, ...]:
    """Compile the enabled steps into :class:`StepPlan` s (output still ``"memory"``).

    Raises
    ------
    PipelineCompileError
        With every problem found: unknown or missing arguments, dict-pattern keys
        not in the plate, special inputs without a producer.
    """
    from ..errors import PipelineCompileError

    problems: list[str] = []
    plans: list[StepPlan] = []
    produced: dict[str, str] = {}
    enabled = [(number, s) for number, s in enumerate(steps, 1) if isinstance(s, FunctionStep) and s.enabled]
    for bad in (s for s in steps if not isinstance(s, FunctionStep)):
        problems.append(f"pipeline item {bad!r} is not a FunctionStep")
    if not enabled and not problems:
        problems.append("the pipeline has no enabled steps")
    for index, (number, step) in enumerate(enabled):
        label = step_label(number, step.name)
        group = step.group_by if isinstance(step.group_by, Component) else None
        calls: tuple[BoundCall, ...] = ()
        by_group: FrozenDict[str, tuple[BoundCall, ...]] | None = None
        if isinstance(step.func, Mapping):
            if group is None:
                problems.append(f"{label}: a dict pattern needs group_by (e.g. GroupBy.CHANNEL)")
                continue
            valid = group_key_values(plate, group)
            resolved: dict[str, tuple[BoundCall, ...]] = {}
            for key, sub in step.func.items():
                if str(key) not in valid:
                    choices = ", ".join(sorted(set(valid), key=str))
                    problems.append(
                        f"{label}: dict key {key!r} is not a {group.value} of this plate "
                        f"(valid: {choices})"
                    )
                    continue
                chain = _chain(label, sub, problems)
                if chain is not None:
                    resolved[valid[str(key)]] = chain
            by_group = FrozenDict(resolved)
            all_calls = [c for chain in resolved.values() for c in chain]
        else:
            chain = _chain(label, step.func, problems)
            if chain is None:
                continue
            calls = chain
            all_calls = list(chain)
        sins = tuple(dict.fromkeys(s for c in all_calls for s in c.special_inputs))
        souts = tuple(dict.fromkeys(s for c in all_calls for s in c.special_outputs))
        chains = [calls] if by_group is None else list(by_group.values())
        for chain in chains:
            available = set(produced)
            for call in chain:  # a chain may consume what an earlier call of it produced
                for sin in call.special_inputs:
                    if sin not in available:
                        problems.append(
                            f"{label}: special input {sin!r} of {call.name}() has no producer; an "
                            f"earlier step must output {sin!r} (produced so far: "
                            f"{', '.join(sorted(available)) or 'nothing'})"
                        )
                        available.add(sin)
                available.update(call.special_outputs)
        for sout in souts:
            produced.setdefault(sout, step.name or "")
        plans.append(
            StepPlan(
                index=index,
                name=step.name or f"step{number}",
                number=number,
                variable_components=tuple(step.variable_components),  # type: ignore[arg-type]
                group_by=group,
                from_pipeline_start=step.input_source is InputSource.PIPELINE_START,
                calls=calls,
                by_group=by_group,
                materialize=step.materialize,
                output="memory",
                special_outputs=souts,
                special_inputs=sins,
            )
        )
    if problems:
        raise PipelineCompileError(problems)
    return tuple(plans)
