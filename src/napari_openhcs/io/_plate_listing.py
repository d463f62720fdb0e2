"""Find the complete wells of an output plate from their ``zarr.json`` documents (no pixels read)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..microscopes.plate import row_index, well_name
from ._ngff import ATTRS_KEY
from .atomic import read_json

_ROW_RE = re.compile(r"^[A-Z]{1,2}$")


def well_record(path: Path) -> tuple[dict[str, Any], int] | None:
    """``(completion record, field count)`` from a well's ``zarr.json``; ``None`` for no complete well."""
    doc = read_json(path)
    if not doc:
        return None
    attrs = doc.get("attributes", {})
    images = attrs.get("ome", {}).get("well", {}).get("images")
    if images is None:
        return None
    return dict(attrs.get(ATTRS_KEY, {})), len(images)


def scan_complete_wells(plate: Path) -> dict[str, tuple[dict[str, Any], int]]:
    """``{well: (completion record, field count)}`` of every complete well under ``plate``."""
    out: dict[str, tuple[dict[str, Any], int]] = {}
    if not plate.is_dir():
        return out
    for row_dir in sorted(plate.iterdir()):
        if not (row_dir.is_dir() and _ROW_RE.match(row_dir.name)):
            continue
        for col_dir in sorted(row_dir.iterdir()):
            if not col_dir.name.isdigit():
                continue
            found = well_record(col_dir / "zarr.json")
            if found is not None:
                out[well_name(row_index(row_dir.name), int(col_dir.name))] = found
    return out
