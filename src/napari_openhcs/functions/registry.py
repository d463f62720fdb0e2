"""The function registry: what the pipeline editor lists and what pipelines name.

Every registered function records its name, category, one-line summary, docstring,
memory type, parameter schema (from its signature, ``Annotated`` metadata included)
and the special inputs/outputs it consumes and produces.  A GPU twin is registered
under the same name with another memory type; :func:`get_function` picks the twin
that fits the requested backend.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

#: Keyword arguments the engine fills in from the plate when a function asks for them.
METADATA_INPUTS: dict[str, str] = {
    "grid_dimensions": "(rows, columns) of the site grid",
    "pixel_size": "µm per pixel (float)",
    "site_positions": "(N, 2) array of stage positions (y, x) in pixels, one row per stacked site",
    "channel_names": "tuple of channel names, one per stacked slice when stacking channels",
}

_ATTR = "__openhcs_info__"
_MEMORY_TYPES = ("numpy", "cupy", "torch")


@dataclass(frozen=True)
class ParameterSpec:
    """One keyword parameter of a registered function, as a form shows it.

    ``choices`` and ``min``/``max``/``step`` come from ``Annotated`` metadata
    (a dict with those keys, e.g. ``Annotated[float, {"min": 0, "max": 100}]``); they
    are the range a form offers. What the function accepts at all is declared with
    ``"limits": (low, high)`` (inclusive; ``None`` for an open end), ``"above": x``
    (strictly greater than ``x``) and ``"less_than": "other"`` (strictly less than
    the parameter ``other``); the compiler refuses a value outside them, so
    ``validate`` finds it before anything runs.
    """

    name: str
    annotation: Any
    default: Any
    required: bool
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None
    step: float | None = None
    description: str = ""
    limits: tuple[float | None, float | None] | None = None
    above: float | None = None
    less_than: str | None = None

    def violation(self, value: Any, kwargs: typing.Mapping[str, Any]) -> str | None:
        """Why ``value`` is outside what the function accepts, else ``None``.

        ``kwargs`` holds the call's arguments (for ``less_than``).

        Only numbers are checked (a wrong type is the function's to report).
        """
        if not _is_number(value):
            return None
        low, high = self.limits if self.limits is not None else (None, None)
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                return f"allowed: {low:g} to {high:g}"
            return f"allowed: >= {low:g}" if low is not None else f"allowed: <= {high:g}"
        if self.above is not None and not value > self.above:
            return f"allowed: > {self.above:g}"
        other = kwargs.get(self.less_than) if self.less_than else None
        if other is not None and _is_number(other) and not value < other:
            return f"it must be less than {self.less_than} ({other:g})"
        return None


def _is_number(value: Any) -> bool:
    import numbers

    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class FunctionInfo:
    """A registered step function and everything the editor and engine need to know."""

    name: str
    func: Callable[..., Any]
    category: str
    summary: str
    doc: str
    memory_type: str = "numpy"
    special_inputs: tuple[str, ...] = ()
    special_outputs: tuple[str, ...] = ()
    metadata_inputs: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    registered: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def parameters(self) -> tuple[ParameterSpec, ...]:
        """User-settable parameters (the first, image argument, special and metadata inputs excluded)."""
        return parameter_specs(self.func, skip=set(self.special_inputs) | set(self.metadata_inputs))


_REGISTRY: dict[str, dict[str, FunctionInfo]] = {}
_LOADED = False


def _summary(doc: str) -> str:
    for line in doc.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def _param_doc(doc: str, name: str) -> str:
    """Extract the numpydoc description of parameter ``name`` (first line only)."""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith(f"{name} :") or stripped == name:
            for nxt in lines[i + 1 :]:
                if nxt.strip():
                    return nxt.strip()
            break
    return ""


def parameter_specs(func: Callable[..., Any], skip: set[str] | None = None) -> tuple[ParameterSpec, ...]:
    """Return the user-settable keyword parameters of ``func``.

    The first positional parameter (the image stack) and any name in ``skip`` are
    left out, as are ``*args``/``**kwargs``.
    """
    skip = skip or set()
    sig = inspect.signature(func)
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:
        hints = {}
    doc = inspect.getdoc(func) or ""
    specs: list[ParameterSpec] = []
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if i == 0 and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or pname in skip:
            continue
        ann = hints.get(pname, p.annotation)
        meta: dict[str, Any] = {}
        if typing.get_origin(ann) is typing.Annotated:
            base, *extras = typing.get_args(ann)
            for extra in extras:
                if isinstance(extra, dict):
                    meta.update(extra)
            ann = base
        choices = meta.get("choices")
        if choices is None and typing.get_origin(ann) is typing.Literal:
            choices = typing.get_args(ann)
        required = p.default is inspect.Parameter.empty
        specs.append(
            ParameterSpec(
                name=pname,
                annotation=ann,
                default=None if required else p.default,
                required=required,
                choices=tuple(choices) if choices is not None else None,
                min=meta.get("min"),
                max=meta.get("max"),
                step=meta.get("step"),
                description=meta.get("description") or _param_doc(doc, pname),
                limits=tuple(meta["limits"]) if meta.get("limits") is not None else None,  # type: ignore[arg-type]
                above=meta.get("above"),
                less_than=meta.get("less_than"),
            )
        )
    return tuple(specs)


def register(
    name: str | None = None,
    *,
    category: str,
    memory_type: str = "numpy",
    special_inputs: Iterable[str] = (),
    special_outputs: Iterable[str] = (),
    keywords: Iterable[str] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a step function (decorator).

    Parameters
    ----------
    name : str, optional
        Registered name (defaults to the function's ``__name__``). A GPU twin uses
        the same name with another ``memory_type``.
    category : str
        Browser category, e.g. ``"Background"``, ``"Projection"``, ``"Stitching"``.
    memory_type : {"numpy", "cupy", "torch"}
        Array type the function takes and returns.
    special_inputs : iterable of str
        Names of keyword arguments filled from earlier steps' special outputs.
    special_outputs : iterable of str
        Names of extra values the function returns after the stack, in order:
        the function returns ``(stack, out1, out2, ...)``.
    keywords : iterable of str
        Extra search words.

    Returns
    -------
    callable
        A decorator returning the function unchanged (with registry info attached).
    """
    if memory_type not in _MEMORY_TYPES:
        raise ValueError(f"memory_type must be one of {_MEMORY_TYPES}, not {memory_type!r}")

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        reg_name = name or func.__name__
        doc = inspect.getdoc(func) or ""
        sig_names = set(inspect.signature(func).parameters)
        info = FunctionInfo(
            name=reg_name,
            func=func,
            category=category,
            summary=_summary(doc),
            doc=doc,
            memory_type=memory_type,
            special_inputs=tuple(special_inputs),
            special_outputs=tuple(special_outputs),
            metadata_inputs=tuple(n for n in METADATA_INPUTS if n in sig_names),
            keywords=tuple(keywords),
        )
        _REGISTRY.setdefault(reg_name, {})[memory_type] = info
        setattr(func, _ATTR, info)
        return func

    return deco


def special_io(
    *, inputs: Iterable[str] = (), outputs: Iterable[str] = ()
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare special inputs/outputs on a plain (unregistered) function (decorator)."""

    def deco(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__openhcs_special_inputs__ = tuple(inputs)  # type: ignore[attr-defined]
        func.__openhcs_special_outputs__ = tuple(outputs)  # type: ignore[attr-defined]
        return func

    return deco


def _ensure_loaded() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import _catalog  # noqa: F401  (registers the library)


def function_info(func: Callable[..., Any]) -> FunctionInfo:
    """Return the :class:`FunctionInfo` of any callable, registered or not.

    A plain function taking and returning a stack is a valid step function; its
    info is derived from its signature and docstring.
    """
    info = getattr(func, _ATTR, None)
    if isinstance(info, FunctionInfo) and info.func is func:
        return info
    doc = inspect.getdoc(func) or ""
    try:
        sig_names = set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        sig_names = set()
    return FunctionInfo(
        name=getattr(func, "__name__", type(func).__name__),
        func=func,
        category="Custom",
        summary=_summary(doc),
        doc=doc,
        special_inputs=tuple(getattr(func, "__openhcs_special_inputs__", ())),
        special_outputs=tuple(getattr(func, "__openhcs_special_outputs__", ())),
        metadata_inputs=tuple(n for n in METADATA_INPUTS if n in sig_names),
        registered=False,
    )


def get_function(name: str, backend: str = "auto") -> FunctionInfo:
    """Look up a registered function by name.

    Parameters
    ----------
    name : str
        Registered name.
    backend : {"auto", "cpu", "gpu", "numpy", "cupy", "torch"}
        ``"cpu"``/``"numpy"`` returns the NumPy implementation; ``"gpu"``/``"cupy"``
        the CuPy twin; ``"auto"`` the NumPy one (the engine swaps in a GPU twin when
        a step is assigned a GPU).

    Raises
    ------
    KeyError
        If no function of that name (or no twin for that backend) is registered;
        the message lists close matches.
    """
    _ensure_loaded()
    twins = _REGISTRY.get(name)
    if not twins:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=5)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise KeyError(f"no function named {name!r} is registered{hint}")
    want = {"auto": "numpy", "cpu": "numpy", "gpu": "cupy"}.get(backend, backend)
    if want in twins:
        return twins[want]
    if backend == "auto":
        return next(iter(twins.values()))
    raise KeyError(f"function {name!r} has no {backend!r} implementation (has {sorted(twins)})")


def twins(name: str) -> dict[str, FunctionInfo]:
    """Return ``{memory_type: FunctionInfo}`` for every implementation of ``name``."""
    _ensure_loaded()
    return dict(_REGISTRY.get(name, {}))


def all_functions(memory_type: str = "numpy") -> list[FunctionInfo]:
    """Return every registered function of one memory type, sorted by category then name."""
    _ensure_loaded()
    infos = [t[memory_type] for t in _REGISTRY.values() if memory_type in t]
    return sorted(infos, key=lambda i: (i.category, i.name))


def categories() -> list[str]:
    """Return the sorted list of categories."""
    return sorted({i.category for i in all_functions()})


def functions_in(category: str) -> list[FunctionInfo]:
    """Return the functions of one category."""
    return [i for i in all_functions() if i.category == category]


def search(text: str) -> list[FunctionInfo]:
    """Return functions whose name, category, summary or keywords contain every word of ``text``."""
    words = text.lower().split()
    out = []
    for info in all_functions():
        hay = " ".join((info.name, info.category, info.summary, *info.keywords)).lower()
        if all(w in hay for w in words):
            out.append(info)
    return out


def registered_name(func: Callable[..., Any]) -> str | None:
    """Return the registered name of ``func`` or ``None`` if it is not registered."""
    info = getattr(func, _ATTR, None)
    if isinstance(info, FunctionInfo) and info.func is func and info.registered:
        return info.name
    return None
