"""NGFF image metadata the layers need: axis units and the ``labels/`` group of an image.

Written against NGFF 0.5 (attributes under ``ome``), reading 0.4 too (attributes at
the top level): an image group may hold a ``labels`` group whose ``labels`` list
names label images; each is a multiscale image with an ``image-label`` block
(``colors: [{label-value, rgba}]``).
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

#: napari unit of an axis whose unit the metadata does not give.
NO_UNIT = "pixel"


def _ome(attrs: Any) -> dict[str, Any]:
    attrs = dict(attrs)
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, dict) else attrs


def axis_units(group: Any) -> dict[str, str]:
    """Return ``{axis name: unit}`` of a multiscale image group (axes without unit left out)."""
    ms = _ome(group.attrs).get("multiscales") or [{}]
    units = {}
    for ax in ms[0].get("axes", []):
        if isinstance(ax, dict) and ax.get("unit"):
            units[str(ax["name"]).lower()] = str(ax["unit"])
    return units


def label_names(group: Any) -> list[str]:
    """Return the names listed in an image's ``labels`` group (``[]`` if it has none)."""
    try:
        labels = group["labels"]
    except (KeyError, FileNotFoundError):
        return []
    names = _ome(labels.attrs).get("labels", [])
    return [str(n) for n in names] if isinstance(names, list) else []


def label_levels(group: Any, name: str) -> list[Any]:
    """Return the pyramid (full resolution first) of label image ``name`` of an image group."""
    label = group["labels"][name]
    ms = _ome(label.attrs).get("multiscales") or [{}]
    return [label[d["path"]] for d in ms[0].get("datasets", [])]


def label_axes(group: Any, name: str) -> list[str]:
    """Return the axis names of label image ``name``."""
    ms = _ome(group["labels"][name].attrs).get("multiscales") or [{}]
    return [str(a["name"] if isinstance(a, dict) else a).lower() for a in ms[0].get("axes", [])]


def label_colors(group: Any, name: str) -> dict[int, tuple[float, ...]] | None:
    """Return ``{label value: (r, g, b, a)}`` (0–1) from ``image-label.colors``, or ``None``."""
    block = _ome(group["labels"][name].attrs).get("image-label") or {}
    colors = {}
    for entry in block.get("colors", []) or []:
        try:
            colors[int(entry["label-value"])] = tuple(float(v) / 255.0 for v in entry["rgba"])
        except (KeyError, TypeError, ValueError):
            logger.debug("ignoring malformed label colour %r", entry)
    return colors or None
