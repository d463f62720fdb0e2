"""NGFF image metadata the layers need: axis units and label colours.

Written against NGFF 0.5 (attributes under ``ome``), reading 0.4 too (attributes at
the top level): an image group may hold a ``labels`` group whose ``labels`` list
names label images; each is a multiscale image with an ``image-label`` block
(``colors: [{label-value, rgba}]``). The functions take a group's attributes.
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


def axis_units(attrs: dict[str, Any]) -> dict[str, str]:
    """Return ``{axis name: unit}`` of a multiscale image's attributes (axes without unit left out)."""
    ms = _ome(attrs).get("multiscales") or [{}]
    units = {}
    for ax in ms[0].get("axes", []):
        if isinstance(ax, dict) and ax.get("unit"):
            units[str(ax["name"]).lower()] = str(ax["unit"])
    return units


def label_colors(block: dict[str, Any]) -> dict[int, tuple[float, ...]] | None:
    """Return ``{label value: (r, g, b, a)}`` (0–1) from an ``image-label`` block, or ``None``."""
    colors = {}
    for entry in block.get("colors", []) or []:
        try:
            colors[int(entry["label-value"])] = tuple(float(v) / 255.0 for v in entry["rgba"])
        except (KeyError, TypeError, ValueError):
            logger.debug("ignoring malformed label colour %r", entry)
    return colors or None
