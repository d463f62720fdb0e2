"""The pipeline being edited: a list of ``FunctionStep`` s with undo/redo (no Qt).

Every edit replaces an immutable step with a modified copy and records the previous
list, so undo/redo is a matter of swapping lists. ``changed`` carries the index of
the first step whose output may differ, which is where a preview re-runs from.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psygnal import Signal

from ..core.components import Component
from ..core.frozen import thaw
from ..core.steps import FunctionStep, iter_callables

logger = logging.getLogger(__name__)

#: Index used in ``changed`` when the whole pipeline was replaced.
ALL = 0
_STEP_RE = re.compile(r"^step (\d+) '")
_VC_RE = re.compile(r"variable_components=\[([A-Za-z_, ]+)\]")


@dataclass(frozen=True)
class CallSlot:
    """One function of a step's pattern, as a parameter form edits it.

    Attributes
    ----------
    index
        Position in the pattern's flattened order (see ``iter_callables``).
    label
        What the form's title shows (``"channel 1: tophat"`` for a dict pattern).
    func
        The callable.
    kwargs
        Its current keyword arguments.
    """

    index: int
    label: str
    func: Callable[..., Any]
    kwargs: dict[str, Any]


def call_slots(step: FunctionStep) -> list[CallSlot]:
    """Return every function of ``step``'s pattern with its keyword arguments."""
    slots: list[CallSlot] = []

    def walk(pattern: Any, prefix: str) -> None:
        if isinstance(pattern, Mapping):
            for key, sub in pattern.items():
                walk(sub, f"{prefix}{step.group_by.value if step.group_by else 'key'} {key}: ")
            return
        for func, kwargs in iter_callables(pattern):
            name = getattr(func, "__name__", type(func).__name__)
            slots.append(CallSlot(len(slots), f"{prefix}{name}", func, dict(thaw(kwargs))))

    walk(step.func, "")
    return slots


def with_call_kwargs(pattern: Any, index: int, kwargs: Mapping[str, Any]) -> Any:
    """Return ``pattern`` with the keyword arguments of its ``index``-th function replaced."""
    counter = [0]

    def rebuild(p: Any) -> Any:
        if isinstance(p, Mapping):
            return {k: rebuild(v) for k, v in p.items()}
        if isinstance(p, tuple) and len(p) == 2 and callable(p[0]) and isinstance(p[1], Mapping):
            return one(p[0], p[1])
        if isinstance(p, tuple | list):
            return [rebuild(sub) for sub in p]
        return one(p, {})

    def one(func: Callable[..., Any], old: Mapping[str, Any]) -> Any:
        i = counter[0]
        counter[0] += 1
        new = dict(kwargs) if i == index else dict(thaw(old))
        return (func, new) if new else func

    return rebuild(pattern)


def suggested_components(info: Any) -> list[str] | None:
    """Return the ``variable_components`` a function's documentation asks for, if any.

    ``info.extra["variable_components"]`` wins; otherwise the first
    ``variable_components=[...]`` in the function's or its module's docstring.
    """
    extra = getattr(info, "extra", {}) or {}
    if "variable_components" in extra:
        return [getattr(c, "value", str(c)).lower() for c in extra["variable_components"]]
    module = inspect.getmodule(info.func)
    for doc in (info.doc or "", inspect.getdoc(module) or "" if module else ""):
        m = _VC_RE.search(doc)
        if m:
            names = [n.strip().lower() for n in m.group(1).split(",") if n.strip()]
            valid = set(component_names())
            if names and all(n in valid for n in names):
                return names
    return None


def step_from_function(info: Any) -> FunctionStep:
    """Return a new step for a registered function (its defaults, its suggested axes).

    Parameters
    ----------
    info : FunctionInfo
        From :func:`~napari_openhcs.functions.registry.get_function`.
    """
    extra = getattr(info, "extra", {}) or {}
    options: dict[str, Any] = {}
    components = suggested_components(info)
    if components:
        options["variable_components"] = components
        if "channel" in components:
            options["group_by"] = "none"
    if "group_by" in extra:
        options["group_by"] = extra["group_by"]
    return FunctionStep(func=(info.func, {}), name=info.name, **options)


def enabled_positions(steps: Sequence[FunctionStep]) -> list[int]:
    """Return the model indices of the enabled steps (the engine numbers only those)."""
    return [i for i, s in enumerate(steps) if s.enabled]


def engine_start(steps: Sequence[FunctionStep], model_index: int) -> int:
    """Return the engine step index to re-run from after step ``model_index`` changed."""
    return sum(1 for s in steps[:model_index] if s.enabled)


def model_index(steps: Sequence[FunctionStep], engine_index: int) -> int | None:
    """Return the model index of the ``engine_index``-th enabled step (``None`` if out of range)."""
    pos = enabled_positions(steps)
    return pos[engine_index] if 0 <= engine_index < len(pos) else None


def errors_by_step(message: str, problems: Sequence[str], steps: Sequence[FunctionStep]) -> dict[int, str]:
    """Attribute compile problems (``"step 2 'name': ..."``) to model step indices.

    The engine numbers steps by their place in the pipeline (from 1, disabled steps
    included). Problems naming no step are attached to index ``-1``.
    """
    out: dict[int, list[str]] = {}
    for problem in problems or [message]:
        m = _STEP_RE.match(problem)
        idx = int(m.group(1)) - 1 if m else None
        if idx is not None and not 0 <= idx < len(steps):
            idx = None
        out.setdefault(-1 if idx is None else idx, []).append(problem)
    return {k: "\n".join(v) for k, v in out.items()}


class PipelineModel:
    """The edited pipeline: steps, the selected step, per-step errors, undo/redo.

    Signals
    -------
    changed(int)
        The steps changed; the argument is the first model index whose output may differ.
    selection_changed(int)
        The selected step (``-1``: none).
    errors_changed()
        :attr:`errors` changed.
    """

    changed = Signal(int)
    selection_changed = Signal(int)
    errors_changed = Signal()

    def __init__(self, steps: Sequence[FunctionStep] = (), max_undo: int = 200) -> None:
        self._steps: tuple[FunctionStep, ...] = tuple(steps)
        self._selected = 0 if steps else -1
        self._undo: list[tuple[tuple[FunctionStep, ...], int, object]] = []
        self._redo: list[tuple[tuple[FunctionStep, ...], int]] = []
        self._max_undo = max_undo
        self.errors: dict[int, str] = {}

    # ------------------------------------------------------------------ state
    @property
    def steps(self) -> list[FunctionStep]:
        """The steps, in order (a copy)."""
        return list(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def __getitem__(self, index: int) -> FunctionStep:
        return self._steps[index]

    @property
    def selected(self) -> int:
        """Index of the selected step (``-1``: none)."""
        return self._selected

    def select(self, index: int) -> None:
        """Select a step (clamped to the list)."""
        index = max(-1, min(index, len(self._steps) - 1))
        if index != self._selected:
            self._selected = index
            self.selection_changed.emit(index)

    # ------------------------------------------------------------------ edits
    def _commit(self, steps: Sequence[FunctionStep], first: int, select: int | None = None,
                merge_key: object = None) -> None:
        top = self._undo[-1] if self._undo else None
        if not (merge_key is not None and top is not None and top[2] == merge_key and not self._redo):
            self._undo.append((self._steps, self._selected, merge_key))
            del self._undo[: -self._max_undo]
        self._redo.clear()
        self._steps = tuple(steps)
        self._emit(first, select)

    def _emit(self, first: int, select: int | None) -> None:
        if self.errors:
            self.errors = {}
            self.errors_changed.emit()
        self.changed.emit(max(0, first))
        if select is not None:
            self._selected = -2  # force the signal
            self.select(select)
        elif self._selected >= len(self._steps):
            self.select(len(self._steps) - 1)

    def add(self, step: FunctionStep, index: int | None = None) -> int:
        """Insert ``step`` (after the selected one by default); return its index."""
        if index is None:
            index = self._selected + 1 if self._selected >= 0 else len(self._steps)
        steps = list(self._steps)
        steps.insert(index, step)
        self._commit(steps, index, select=index)
        return index

    def remove(self, index: int) -> None:
        """Remove the step at ``index``."""
        steps = list(self._steps)
        del steps[index]
        self._commit(steps, index, select=min(index, len(steps) - 1))

    def move(self, index: int, new_index: int) -> None:
        """Move the step at ``index`` to ``new_index`` (e.g. ``index - 1`` for up)."""
        if not 0 <= new_index < len(self._steps) or new_index == index:
            return
        steps = list(self._steps)
        steps.insert(new_index, steps.pop(index))
        self._commit(steps, min(index, new_index), select=new_index)

    def duplicate(self, index: int) -> int:
        """Insert a copy of the step at ``index`` right after it; return the copy's index."""
        return self.add(self._steps[index].replace(), index + 1)

    def set_enabled(self, index: int, enabled: bool) -> None:
        """Enable or disable a step (disabled steps are kept but not run)."""
        if self._steps[index].enabled != enabled:
            self.replace(index, self._steps[index].replace(enabled=enabled))

    def replace(self, index: int, step: FunctionStep, merge_key: object = None) -> None:
        """Replace the step at ``index``; edits with the same ``merge_key`` undo as one."""
        steps = list(self._steps)
        steps[index] = step
        self._commit(steps, index, merge_key=merge_key)

    def set_options(self, index: int, **changes: Any) -> None:
        """Change step options (``name``, ``variable_components``, ``group_by``, ``materialize``...).

        Raises
        ------
        ValueError
            If the options are invalid for the step (the step is left unchanged).
        """
        self.replace(index, self._steps[index].replace(**changes))

    def set_argument(self, index: int, name: str, value: Any, call: int = 0) -> None:
        """Set one keyword argument of the ``call``-th function of step ``index``.

        Consecutive changes of the same argument (a slider being dragged) undo as one.
        """
        step = self._steps[index]
        kwargs = dict(call_slots(step)[call].kwargs)
        kwargs[name] = value
        self.replace(index, step.replace(func=with_call_kwargs(step.func, call, kwargs)),
                     merge_key=("argument", index, call, name))

    def set_steps(self, steps: Sequence[FunctionStep]) -> None:
        """Replace the whole pipeline (undoable)."""
        self._commit(list(steps), ALL, select=0 if steps else -1)

    # ------------------------------------------------------------------ undo
    @property
    def can_undo(self) -> bool:
        """Whether there is an edit to undo."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """Whether there is an undone edit to redo."""
        return bool(self._redo)

    def undo(self) -> None:
        """Undo the last edit."""
        if not self._undo:
            return
        steps, selected, _ = self._undo.pop()
        self._redo.append((self._steps, self._selected))
        first = _first_difference(self._steps, steps)
        self._steps = steps
        self._emit(first, selected)

    def redo(self) -> None:
        """Redo the last undone edit."""
        if not self._redo:
            return
        steps, selected = self._redo.pop()
        self._undo.append((self._steps, self._selected, None))
        first = _first_difference(self._steps, steps)
        self._steps = steps
        self._emit(first, selected)

    # ------------------------------------------------------------------ errors
    def set_errors(self, errors: Mapping[int, str]) -> None:
        """Mark steps as failed (``{model index: message}``; ``-1`` for the whole pipeline)."""
        self.errors = dict(errors)
        self.errors_changed.emit()

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Save the pipeline as YAML (functions by registered name)."""
        from ..core.pipeline_io import save_pipeline

        return Path(save_pipeline(list(self._steps), path))

    def load(self, path: str | Path) -> None:
        """Replace the pipeline with the one saved in ``path`` (undoable)."""
        from ..core.pipeline_io import load_pipeline

        self.set_steps(load_pipeline(path))

    def export_python(self, path: str | Path) -> Path:
        """Write the pipeline as a runnable Python script."""
        from ..core.pipeline_io import export_python

        return Path(export_python(list(self._steps), path))


def _first_difference(a: Sequence[FunctionStep], b: Sequence[FunctionStep]) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x is not y:
            return i
    return min(len(a), len(b))


def component_names() -> list[str]:
    """Return the names offered for ``variable_components`` (every axis but the well)."""
    return [c.value for c in Component if c is not Component.WELL]
