"""Development tool: introspect the curated operations and write ``_wrapped_signatures.py``.

The wrapped operations are registered from stored signatures so that building the
registry imports neither scikit-image nor SciPy (they are imported when an
operation first runs). After upgrading either library, regenerate the file::

    python -m napari_openhcs.functions._wrapped_build

``tests/test_functions_wrappers.py`` fails when the stored signatures no longer
match the installed libraries.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from typing import Any

from ._wrapped_table import DEFAULTS, FIXED, OPERATIONS

#: Options never shown in a form (not editable as a number, flag or word, or meaningless per slice).
HIDDEN = frozenset({
    "out", "output", "channel_axis", "multichannel", "mask", "footprint", "structure", "origin", "axes",
    "rng", "random_state", "seed", "workers", "return_distance", "spacing", "sampling", "return_indices",
    "return_distances", "distances", "indices", "extra_arguments", "extra_keywords", "callback", "labels",
    "markers", "parent", "tree_traverser", "init_level_set", "extended_output", "iter_callback",
    "offset_coordinates", "shift_x", "shift_y", "shift_z", "image_shape", "convert2lab",
})

Option = tuple[str, Any, str]
Signature = tuple[str, tuple[Option, ...]]
_PARAMETER_SECTIONS = ("Parameters", "Other Parameters")
_SENTENCE_END = re.compile(r"(?<!e\.g)(?<!i\.e)(?<!etc)\.\s")
_FOOTPRINT_TEXT = "Radius in pixels of the disk used as the neighbourhood."
#: Descriptions that read badly out of their docstring's context.
_OPTION_TEXT = {
    ("scipy.ndimage", "size"): "Width in pixels of the square neighbourhood.",
}


def option_descriptions(doc: str) -> dict[str, str]:
    """Return the first sentence describing each parameter in a numpydoc docstring.

    Examples
    --------
    >>> doc = "Blur.\\n\\nParameters\\n----------\\nimage : ndarray\\n    Input.\\n" \\
    ...       "sigma, truncate : float\\n    Width of the kernel. Larger is smoother.\\n"
    >>> option_descriptions(doc)
    {'image': 'Input.', 'sigma': 'Width of the kernel.', 'truncate': 'Width of the kernel.'}
    """
    lines = doc.splitlines()
    out: dict[str, str] = {}
    section = ""
    names: list[str] = []
    text: list[str] = []

    def flush() -> None:
        if names and text:
            sentence = _SENTENCE_END.split(" ".join(text), maxsplit=1)[0].strip().rstrip(".") + "."
            for n in names:
                out.setdefault(n, sentence[:200])

    for i, line in enumerate(lines):
        if i + 1 < len(lines) and set(lines[i + 1].strip()) == {"-"} and line.strip():
            flush()
            section, names, text = line.strip(), [], []
            continue
        if section not in _PARAMETER_SECTIONS or set(line.strip()) == {"-"}:
            continue
        if line and not line[0].isspace():
            flush()
            names = [n.strip() for n in line.split(":")[0].split(",") if n.strip()]
            text = []
        elif line.strip() and names:
            text.append(line.strip())
    flush()
    return out


def describe(module_name: str, name: str) -> Signature:
    """Return ``(summary, ((option, default, description), ...))`` of one operation as forms show it.

    Options with a number, flag or word default are kept (``DEFAULTS`` fills
    required or ``None`` ones); a scikit-image ``footprint`` becomes
    ``footprint_radius`` (a disk).

    Raises
    ------
    ValueError
        If a required option has no default in ``DEFAULTS``.
    """
    qualified = f"{module_name}.{name}"
    func = getattr(importlib.import_module(module_name), name)
    overrides = DEFAULTS.get(qualified, {})
    fixed = FIXED.get(qualified, {})
    doc = inspect.getdoc(func) or ""
    described = option_descriptions(doc)
    options: list[Option] = []
    for p in list(inspect.signature(func).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in fixed:
            continue
        if p.name == "footprint" and module_name.startswith("skimage"):
            options.insert(0, ("footprint_radius", 1, _FOOTPRINT_TEXT))
            continue
        if p.name in overrides:
            default = overrides[p.name]
        elif p.name in HIDDEN:
            continue
        else:
            default = p.default
        if default is inspect.Parameter.empty:
            raise ValueError(f"{qualified}: option {p.name!r} has no default; add one to DEFAULTS")
        if default is None or not isinstance(default, bool | int | float | str):
            continue  # None ("automatic"), arrays, callables, deprecation markers: keep the original's
        text = _OPTION_TEXT.get((module_name, p.name)) or described.get(p.name, "")
        options.append((p.name, default, text))
    summary = next((line.strip() for line in doc.splitlines() if line.strip()), name)
    return summary, tuple(options)


def describe_all() -> dict[str, Signature]:
    """Return :func:`describe` for every operation of the table, keyed by ``module.name``."""
    return {f"{module}.{name}": describe(module, name)
            for module, _, _, names in OPERATIONS for name in names}


def generate_source() -> str:
    """Return the text of ``_wrapped_signatures.py`` for the installed libraries."""
    from importlib.metadata import version

    lines = [
        '"""Stored signatures of the wrapped operations (generated; do not edit).',
        "",
        f"Generated by ``python -m napari_openhcs.functions._wrapped_build`` from scikit-image "
        f"{version('scikit-image')} and SciPy {version('scipy')}.",
        '"""',
        "",
        "# ruff: noqa: E501  (one operation per line)",
        "",
        "SIGNATURES: dict[str, tuple[str, tuple[tuple[str, object, str], ...]]] = {",
    ]
    for key, (summary, options) in describe_all().items():
        lines.append(f"    {key!r}: ({summary!r}, {options!r}),")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Write ``_wrapped_signatures.py`` next to this module."""
    target = Path(__file__).with_name("_wrapped_signatures.py")
    target.write_text(generate_source(), encoding="utf-8")


if __name__ == "__main__":
    main()
