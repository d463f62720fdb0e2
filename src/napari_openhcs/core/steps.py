"""``FunctionStep``: one step of a pipeline (what to do; the compiler decides how)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .components import Component, GroupBy, VariableComponents, as_component
from .frozen import FrozenDict, freeze


class InputSource(str, Enum):
    """Where a step reads its input from."""

    PREVIOUS_STEP = "previous_step"
    PIPELINE_START = "pipeline_start"


def _freeze_pattern(func: Any) -> Any:
    """Freeze a function pattern: callable, (callable, kwargs), list (chain) or dict."""
    if isinstance(func, Mapping):
        return FrozenDict({str(k): _freeze_pattern(v) for k, v in func.items()})
    if isinstance(func, tuple) and len(func) == 2 and callable(func[0]) and isinstance(func[1], Mapping):
        return (func[0], freeze(func[1]))
    if isinstance(func, list | tuple):
        return tuple(_freeze_pattern(f) for f in func)
    if callable(func):
        return func
    raise TypeError(
        f"a step function must be a callable, (callable, kwargs), a list of those or a dict "
        f"keyed by component value; got {type(func).__name__}: {func!r}"
    )


def iter_callables(pattern: Any) -> Iterable[tuple[Callable[..., Any], Mapping[str, Any]]]:
    """Yield ``(callable, kwargs)`` for every function in a (frozen) pattern."""
    if isinstance(pattern, Mapping):
        for sub in pattern.values():
            yield from iter_callables(sub)
    elif isinstance(pattern, tuple) and len(pattern) == 2 and callable(pattern[0]) and isinstance(
        pattern[1], Mapping
    ):
        yield pattern[0], pattern[1]
    elif isinstance(pattern, tuple):
        for sub in pattern:
            yield from iter_callables(sub)
    else:
        yield pattern, FrozenDict()


def _default_name(pattern: Any) -> str:
    names = [getattr(f, "__name__", type(f).__name__) for f, _ in iter_callables(pattern)]
    unique = list(dict.fromkeys(names))
    return "+".join(unique) if unique else "step"


@dataclass(frozen=True, eq=False)
class FunctionStep:
    """A pipeline step: a function pattern applied to stacks of images.

    Parameters
    ----------
    func
        One of four patterns: a callable; ``(callable, kwargs)``; a list of those
        (a chain applied in order); or a dict keyed by the value of ``group_by``
        (e.g. ``{"1": f_dapi, "2": (f_gfp, {"sigma": 2})}`` per channel).
        A plain function taking and returning a ``(N, Y, X)`` NumPy stack is valid.
    name
        Display name; defaults to the function name(s).
    variable_components
        Axes stacked into the array handed to the function. ``[SITE]`` hands all
        sites of one well/channel/z/t (what stitching needs); ``[Z_INDEX]`` hands a
        z-stack (what a projection needs).
    group_by
        Axis whose values key a dict pattern. ``GroupBy.NONE`` for none.
    input_source
        ``PREVIOUS_STEP`` (default) or ``PIPELINE_START`` (the raw images again).
    materialize
        Also write this step's output to disk (the last step's always is).
    enabled
        Disabled steps are skipped by the compiler (kept in saved pipelines).
    backend
        ``"auto"`` (GPU twin when the step is assigned a GPU), ``"cpu"`` or ``"gpu"``.

    Steps are immutable: compiling never changes them.
    """

    func: Any
    name: str | None = None
    variable_components: tuple[Component, ...] | list[Any] = (Component.SITE,)
    group_by: Component | GroupBy | VariableComponents | str | None = GroupBy.CHANNEL
    input_source: InputSource | str = InputSource.PREVIOUS_STEP
    materialize: bool = False
    enabled: bool = True
    backend: str = "auto"
    _frozen: bool = field(default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "func", _freeze_pattern(self.func))
        vcs = self.variable_components
        if isinstance(vcs, str | Enum):
            vcs = [vcs]
        comps: list[Component] = []
        for v in vcs:
            comp = as_component(v)
            if comp is None or comp is Component.WELL:
                raise ValueError(
                    f"variable_components may contain site, channel, z_index or timepoint; got {v!r}"
                )
            comps.append(comp)
        if not comps:
            raise ValueError("variable_components must name at least one component")
        set_(self, "variable_components", tuple(dict.fromkeys(comps)))
        group = as_component(self.group_by) if self.group_by is not None else None
        if group is not None and group in self.variable_components and isinstance(self.func, Mapping):
            raise ValueError(
                f"group_by={group.value} cannot also be a variable component when func is a dict"
            )
        set_(self, "group_by", group)
        set_(self, "input_source", InputSource(getattr(self.input_source, "value", self.input_source)))
        if self.backend not in ("auto", "cpu", "gpu"):
            raise ValueError(f"backend must be 'auto', 'cpu' or 'gpu', not {self.backend!r}")
        if self.name is None:
            set_(self, "name", _default_name(self.func))
        set_(self, "_frozen", True)

    def replace(self, **changes: Any) -> FunctionStep:
        """Return a copy of this step with some fields changed."""
        fields = {
            "func": self.func,
            "name": self.name,
            "variable_components": self.variable_components,
            "group_by": self.group_by,
            "input_source": self.input_source,
            "materialize": self.materialize,
            "enabled": self.enabled,
            "backend": self.backend,
        }
        fields.update(changes)
        return FunctionStep(**fields)

    def callables(self) -> list[tuple[Callable[..., Any], Mapping[str, Any]]]:
        """Return every ``(callable, kwargs)`` of this step's pattern."""
        return list(iter_callables(self.func))

    def __repr__(self) -> str:
        comps = ",".join(c.value for c in self.variable_components)  # type: ignore[union-attr]
        group = self.group_by.value if isinstance(self.group_by, Component) else "none"
        return f"FunctionStep({self.name!r}, variable_components=[{comps}], group_by={group})"
