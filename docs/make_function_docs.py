"""Regenerate docs/functions.md from the function registry: python docs/make_function_docs.py."""

from __future__ import annotations

from pathlib import Path

from napari_openhcs.functions.registry import all_functions, categories, twins

HEADER = """# Functions

Every step function the pipeline editor offers, by category (generated from the registry by
`python docs/make_function_docs.py`; do not edit by hand). Each takes a `(N, Y, X)` stack and
returns a stack; options are keyword-only. *GPU* marks functions with a CuPy twin, used
automatically when a well is assigned a GPU (`backend="auto"`). Names starting with
`skimage.` or `ndimage.` wrap scikit-image and `scipy.ndimage` operations, applied slice by slice.

Look functions up from Python with `napari_openhcs.get_function(name)`,
`napari_openhcs.functions.search("words")` and `napari_openhcs.functions.functions_in(category)`.
"""


def _params(info) -> str:  # noqa: ANN001
    parts = []
    for p in info.parameters:
        parts.append(p.name if p.required else f"{p.name}={p.default!r}")
    return ", ".join(parts)


def render() -> str:
    """Return the Markdown page."""
    infos = all_functions()
    lines = [HEADER, f"{len(infos)} functions in {len(categories())} categories.\n"]
    for cat in categories():
        group = [i for i in infos if i.category == cat]
        lines.append(f"## {cat} ({len(group)})\n")
        lines.append("| function | options | special I/O | GPU | summary |")
        lines.append("|---|---|---|---|---|")
        for i in group:
            io = []
            if i.special_inputs:
                io.append("in: " + ", ".join(i.special_inputs))
            if i.special_outputs:
                io.append("out: " + ", ".join(i.special_outputs))
            gpu = "yes" if "cupy" in twins(i.name) else ""
            summary = i.summary.replace("|", "\\|")
            opts = _params(i).replace("|", "\\|")
            lines.append(f"| `{i.name}` | {opts} | {'; '.join(io)} | {gpu} | {summary} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    out = Path(__file__).with_name("functions.md")
    out.write_text(render(), encoding="utf-8")
    print(f"wrote {out}")
