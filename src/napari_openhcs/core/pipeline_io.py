"""Pipelines as data: YAML (or JSON) files with a schema version, functions by name.

Loading uses ``yaml.safe_load`` (no Python object tags) and resolves functions only
through the registry, so a pipeline file can never run code. A pipeline can also
be exported as a runnable Python script.
"""

from __future__ import annotations

import hashlib
import json
import pprint
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .components import Component
from .frozen import thaw
from .steps import FunctionStep, InputSource, iter_callables

SCHEMA_VERSION = 1
_STEP_KEYS = {
    "name",
    "function",
    "kwargs",
    "chain",
    "per_group",
    "variable_components",
    "group_by",
    "input_source",
    "materialize",
    "enabled",
    "backend",
}


class PipelineFileError(ValueError):
    """A pipeline file is malformed, names an unknown function or has wrong types."""


class _PipelineLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also refuses aliases (``*name``).

    Pipelines never need them, and nested aliases expand exponentially (a few
    hundred bytes of "billion laughs" would otherwise exhaust memory and time).
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in pipeline files", event.start_mark
            )
        return super().compose_node(parent, index)


def _call_to_data(func: Any, kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    from ..functions.registry import registered_name

    name = registered_name(func)
    if name is None:
        raise PipelineFileError(
            f"{where}: function {getattr(func, '__name__', func)!r} is not registered, so it "
            f"cannot be saved by name; register it with napari_openhcs.register(...)"
        )
    data: dict[str, Any] = {"function": name}
    if kwargs:
        data["kwargs"] = {k: _plain(v, f"{where} argument {k!r}") for k, v in thaw(kwargs).items()}
    return data


def _plain(value: Any, where: str) -> Any:
    """Return ``value`` as YAML-safe plain data or raise."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v, where) for k, v in value.items()}
    raise PipelineFileError(f"{where}: value {value!r} of type {type(value).__name__} cannot be saved")


def _pattern_to_data(pattern: Any, where: str) -> dict[str, Any]:
    if isinstance(pattern, Mapping):
        return {"per_group": {str(k): _pattern_to_data(v, f"{where}[{k}]") for k, v in pattern.items()}}
    calls = list(iter_callables(pattern))
    if len(calls) == 1:
        return _call_to_data(calls[0][0], calls[0][1], where)
    return {"chain": [_call_to_data(f, kw, where) for f, kw in calls]}


def pipeline_to_data(steps: list[FunctionStep], name: str = "pipeline") -> dict[str, Any]:
    """Return the plain-data form of a pipeline (what is saved as YAML)."""
    out = []
    for i, step in enumerate(steps):
        where = f"step {i + 1} '{step.name}'"
        d: dict[str, Any] = {"name": step.name}
        d.update(_pattern_to_data(step.func, where))
        d["variable_components"] = [c.value for c in step.variable_components]  # type: ignore[union-attr]
        d["group_by"] = step.group_by.value if isinstance(step.group_by, Component) else "none"
        d["input_source"] = step.input_source.value  # type: ignore[union-attr]
        d["materialize"] = bool(step.materialize)
        d["enabled"] = bool(step.enabled)
        d["backend"] = step.backend
        out.append(d)
    return {"napari_openhcs_pipeline": SCHEMA_VERSION, "name": name, "steps": out}


def _data_to_pattern(d: Mapping[str, Any], where: str) -> Any:
    from ..functions.registry import get_function

    if not isinstance(d, Mapping):
        raise PipelineFileError(
            f"{where}: must be a mapping with 'function', 'chain' or 'per_group', got {d!r}"
        )
    if "per_group" in d:
        groups = d["per_group"]
        if not isinstance(groups, Mapping):
            raise PipelineFileError(f"{where}: 'per_group' must be a mapping of value -> function")
        return {str(k): _data_to_pattern(v, f"{where}[{k}]") for k, v in groups.items()}
    if "chain" in d:
        chain = d["chain"]
        if not isinstance(chain, list) or not chain:
            raise PipelineFileError(f"{where}: 'chain' must be a non-empty list")
        return [_data_to_pattern(c, f"{where} chain item {i + 1}") for i, c in enumerate(chain)]
    if "function" not in d:
        raise PipelineFileError(f"{where}: needs 'function', 'chain' or 'per_group'")
    fname = d["function"]
    if not isinstance(fname, str):
        raise PipelineFileError(f"{where}: 'function' must be a registered name (text), got {fname!r}")
    try:
        info = get_function(fname, backend="cpu")
    except KeyError as exc:
        raise PipelineFileError(f"{where}: {exc.args[0]}") from None
    kwargs = d.get("kwargs") or {}
    if not isinstance(kwargs, Mapping):
        raise PipelineFileError(f"{where}: 'kwargs' must be a mapping, got {type(kwargs).__name__}")
    _check_kwarg_types(info, kwargs, where)
    return (info.func, dict(kwargs)) if kwargs else info.func


def _check_kwarg_types(info: Any, kwargs: Mapping[str, Any], where: str) -> None:
    specs = {p.name: p for p in info.parameters}
    for key, value in kwargs.items():
        spec = specs.get(key)
        if spec is None:
            continue  # unknown names are reported by the compiler with the full list
        ann = spec.annotation
        if ann in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise PipelineFileError(f"{where}: argument {key!r} must be a number, got {value!r}")
        if ann is int and isinstance(value, float) and not value.is_integer():
            raise PipelineFileError(f"{where}: argument {key!r} must be a whole number, got {value!r}")
        if ann is bool and not isinstance(value, bool):
            raise PipelineFileError(f"{where}: argument {key!r} must be true/false, got {value!r}")
        if ann is str and not isinstance(value, str):
            raise PipelineFileError(f"{where}: argument {key!r} must be text, got {value!r}")
        if spec.choices and value not in spec.choices:
            raise PipelineFileError(
                f"{where}: argument {key!r} must be one of {list(spec.choices)}, got {value!r}"
            )


def _check_step_field_types(d: Mapping[str, Any], where: str) -> None:
    """Refuse step fields of the wrong type (``enabled: "no"`` must not read as true)."""
    for key in ("materialize", "enabled"):
        if key in d and not isinstance(d[key], bool):
            raise PipelineFileError(f"{where}: {key!r} must be true or false, got {d[key]!r}")
    for key in ("name", "group_by", "input_source", "backend"):
        if key in d and d[key] is not None and not isinstance(d[key], str):
            raise PipelineFileError(f"{where}: {key!r} must be text, got {d[key]!r}")
    comps = d.get("variable_components", [])
    comps = [comps] if isinstance(comps, str) else comps
    if not isinstance(comps, list) or not all(isinstance(c, str) for c in comps):
        raise PipelineFileError(f"{where}: 'variable_components' must be a list of names, got {comps!r}")


def pipeline_from_data(data: Any) -> list[FunctionStep]:
    """Build steps from plain data (as loaded from YAML/JSON).

    Raises
    ------
    PipelineFileError
        On a wrong schema version, unknown keys, unknown functions or wrong types.
    """
    if not isinstance(data, Mapping) or "steps" not in data:
        raise PipelineFileError("not a napari-openhcs pipeline: expected a mapping with 'steps'")
    version = data.get("napari_openhcs_pipeline")
    if version != SCHEMA_VERSION:
        raise PipelineFileError(
            f"unsupported pipeline schema version {version!r} (this version reads {SCHEMA_VERSION})"
        )
    if not isinstance(data["steps"], list):
        raise PipelineFileError("'steps' must be a list")
    steps = []
    for i, d in enumerate(data["steps"]):
        where = f"step {i + 1}"
        if not isinstance(d, Mapping):
            raise PipelineFileError(f"{where}: must be a mapping, got {type(d).__name__}")
        unknown = set(d) - _STEP_KEYS
        if unknown:
            raise PipelineFileError(
                f"{where}: unknown keys {sorted(unknown)} (allowed: {sorted(_STEP_KEYS)})"
            )
        where = f"step {i + 1} '{d.get('name', '')}'"
        _check_step_field_types(d, where)
        func = _data_to_pattern(d, where)
        try:
            steps.append(
                FunctionStep(
                    func=func,
                    name=d.get("name"),
                    variable_components=d.get("variable_components", ["site"]),
                    group_by=d.get("group_by", "channel"),
                    input_source=InputSource(d.get("input_source", "previous_step")),
                    materialize=bool(d.get("materialize", False)),
                    enabled=bool(d.get("enabled", True)),
                    backend=d.get("backend", "auto"),
                )
            )
        except (TypeError, ValueError) as exc:
            raise PipelineFileError(f"{where}: {exc}") from None
    return steps


def save_pipeline(steps: list[FunctionStep], path: str | Path, name: str | None = None) -> Path:
    """Save a pipeline as YAML (``.yaml``/``.yml``) or JSON (``.json``).

    Parameters
    ----------
    steps : list of FunctionStep
        The pipeline; every function must be registered.
    path : str or Path
        Destination file.
    name : str, optional
        Pipeline name stored in the file (default: the file stem).
    """
    path = Path(path)
    data = pipeline_to_data(list(steps), name or path.stem)
    text = json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def load_pipeline(path: str | Path) -> list[FunctionStep]:
    """Load a pipeline saved by :func:`save_pipeline`; never executes code from the file.

    Raises
    ------
    PipelineFileError
        If the file is not valid YAML/JSON, uses Python object tags, or describes an
        invalid pipeline (the message says where).
    """
    path = Path(path)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            raise PipelineFileError(f"pipeline file {path} is not a regular file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineFileError(f"cannot read pipeline file {path}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_PipelineLoader)  # a SafeLoader that refuses aliases
    except yaml.YAMLError as exc:
        raise PipelineFileError(f"{path} is not a valid pipeline file: {exc}") from None
    except RecursionError:
        raise PipelineFileError(f"{path} is not a valid pipeline file: nested too deeply") from None
    try:
        return pipeline_from_data(data)
    except PipelineFileError as exc:
        raise PipelineFileError(f"{path}: {exc}") from None


def pipeline_hash(steps: list[FunctionStep], extra: str = "") -> str:
    """Return a stable hash of a pipeline (plus ``extra``, e.g. the input plate's identity)."""
    try:
        payload = json.dumps(pipeline_to_data(list(steps)), sort_keys=True)
    except PipelineFileError:
        payload = repr(
            [
                (
                    s.name,
                    [
                        (
                            getattr(f, "__module__", ""),
                            getattr(f, "__qualname__", repr(f)),
                            sorted(thaw(kw).items(), key=str),
                        )
                        for f, kw in s.callables()
                    ],
                    s.variable_components,
                    s.group_by,
                    s.input_source,
                )
                for s in steps
            ]
        )
    return hashlib.sha256((payload + extra).encode("utf-8", "surrogateescape")).hexdigest()[:16]


def export_python(
    steps: list[FunctionStep], path: str | Path, plate_placeholder: str = "PLATE_FOLDER"
) -> Path:
    """Write a runnable Python script that rebuilds and runs the pipeline."""
    data = pipeline_to_data(list(steps))
    lines = [
        '"""Pipeline exported from napari-openhcs; run with: python this_script.py PLATE [OUT]."""',
        "import sys",
        "",
        "from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator",
        "from napari_openhcs.core.pipeline_io import pipeline_from_data",
        "",
        f"PIPELINE = {pprint.pformat(data, sort_dicts=False)}",
        "",
        "steps: list[FunctionStep] = pipeline_from_data(PIPELINE)",
        "",
        'if __name__ == "__main__":',
        f'    plate = sys.argv[1] if len(sys.argv) > 1 else "{plate_placeholder}"',
        "    out = sys.argv[2] if len(sys.argv) > 2 else None",
        "    orchestrator = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(output_dir=out))",
        "    orchestrator.initialize()",
        "    compiled = orchestrator.compile_pipelines(steps)",
        "    results = orchestrator.execute_compiled_plate(",
        "        pipeline_definition=steps, compiled_contexts=compiled",
        "    )",
        "    for well, result in sorted(results.items()):",
        "        print(well, result.status, result.error or '')",
        "    print('output:', orchestrator.output_path)",
    ]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
