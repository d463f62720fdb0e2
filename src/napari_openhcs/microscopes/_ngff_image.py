"""OME-NGFF image metadata: ``multiscales`` (axes, level-0 path, transforms) and ``omero``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._handler_utils import unit_factor_um
from ._ngff import as_str, check_relative
from .detect import PlateFormatError


@dataclass(frozen=True, slots=True)
class NgffImage:
    """The first ``multiscales`` entry (full resolution) and ``omero`` channels of an image."""

    axes: tuple[str, ...]
    axis_types: tuple[str | None, ...]
    to_um: tuple[float | None, ...]
    dataset_path: str
    scale: tuple[float, ...] | None
    translation: tuple[float, ...] | None
    channel_names: tuple[str | None, ...] = ()
    channel_colors: tuple[str | None, ...] = ()

    def physical(self, axis: str) -> tuple[float | None, float | None]:
        """Return ``(step, origin)`` in µm along ``axis`` (``None`` when unknown)."""
        if axis not in self.axes:
            return None, None
        i = self.axes.index(axis)
        factor = self.to_um[i]
        if factor is None:
            return None, None
        step = self.scale[i] * factor if self.scale else None
        origin = self.translation[i] * factor if self.translation else None
        return step, origin


def _transforms(items: Any, ndim: int) -> tuple[list[float] | None, list[float] | None]:
    scale = translation = None
    for tr in items if isinstance(items, list) else []:
        if not isinstance(tr, dict):
            continue
        values = tr.get(tr.get("type", ""))
        if isinstance(values, list) and len(values) == ndim:
            try:
                if tr["type"] == "scale":
                    scale = [float(v) for v in values]
                elif tr["type"] == "translation":
                    translation = [float(v) for v in values]
            except (TypeError, ValueError):
                continue
    return scale, translation


def parse_image(ome: dict[str, Any], source: Path | str, ndim: int | None = None) -> NgffImage:
    """Parse ``multiscales[0]`` (axes, level-0 path and transforms) and ``omero`` channels.

    NGFF < 0.3 images without ``axes`` are taken as ``t, c, z, y, x`` (5-D). Units are
    converted to µm (unit-less spatial axes are assumed to be µm).

    Raises
    ------
    PlateFormatError
        If there is no ``multiscales`` with at least one dataset.
    """
    ms = ome.get("multiscales")
    if not (isinstance(ms, list) and ms and isinstance(ms[0], dict) and ms[0].get("datasets")):
        raise PlateFormatError(f"{source}: no OME-NGFF 'multiscales' with datasets")
    ms0 = ms[0]
    raw_axes = ms0.get("axes") or (["t", "c", "z", "y", "x"][-(ndim or 5):])
    names, types, factors = [], [], []
    for ax in raw_axes:
        ax = ax if isinstance(ax, dict) else {"name": str(ax)}
        names.append(str(ax.get("name", "")).lower())
        types.append(as_str(ax.get("type")))
        spatial = ax.get("type") == "space" or names[-1] in ("x", "y", "z")
        factors.append(unit_factor_um(ax.get("unit")) if spatial else None)
    ds0 = ms0["datasets"][0]
    path = check_relative(str(ds0.get("path", "")), source)
    scale, translation = _transforms(ds0.get("coordinateTransformations"), len(names))
    g_scale, g_translation = _transforms(ms0.get("coordinateTransformations"), len(names))
    if g_scale is not None:
        scale = [a * b for a, b in zip(scale or [1.0] * len(names), g_scale, strict=True)]
        if translation is not None:
            translation = [a * b for a, b in zip(translation, g_scale, strict=True)]
    if g_translation is not None:
        translation = [a + b for a, b in zip(translation or [0.0] * len(names), g_translation,
                                             strict=True)]
    omero = ome.get("omero")
    raw_channels = omero.get("channels") if isinstance(omero, dict) else None
    channels = [c for c in raw_channels or [] if isinstance(c, dict)]
    return NgffImage(
        axes=tuple(names),
        axis_types=tuple(types),
        to_um=tuple(factors),
        dataset_path=path,
        scale=tuple(scale) if scale else None,
        translation=tuple(translation) if translation else None,
        channel_names=tuple(as_str(c.get("label")) or None for c in channels),
        channel_colors=tuple(as_str(c.get("color")) for c in channels),
    )
