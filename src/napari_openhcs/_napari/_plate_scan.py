"""The metadata of every well and field of an OME-Zarr HCS plate, each file read once.

A field is one multiscale image: its pyramid (one array folder per level), its axes,
its ``omero`` display windows and its NGFF label images. Groups are read as JSON
(:mod:`._zarr_chunks`), not opened through Zarr: a 384-well plate has thousands of
fields. A plate written by napari-openhcs has one canvas: every field has the same
array layout at each level, so the arrays of its first field describe them all (a
chunk that does not decode to that layout is read through Zarr); other plates' arrays
are all read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ._ngff_labels import axis_units, label_colors
from ._zarr_chunks import ArrayMeta, from_zarr, read_array_meta, read_attrs


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, dict) else dict(attrs)


@dataclass(frozen=True)
class Pyramid:
    """One multiscale image: array folders (full resolution first), their layouts and axes."""

    folders: tuple[str, ...]
    metas: tuple[ArrayMeta, ...]
    axes: tuple[str, ...]
    sizes: tuple[dict[str, int], ...] = ()

    def size(self, axis: str, level: int = 0) -> int:
        """Length of ``axis`` (``t``, ``c``, ``z``, ``y``, ``x``) at ``level``; 1 if the image has none."""
        return self.sizes[level].get(axis, 1)


@dataclass
class Field:
    """One field (image) of a well: its pyramid, axis units, display windows and label images.

    Only these are kept of the field's metadata (a plate has thousands of fields).
    """

    pyramid: Pyramid
    units: dict[str, str]
    windows: tuple[tuple[float, float] | None, ...] = ()
    labels: dict[str, Pyramid] = field(default_factory=dict)
    label_colors: dict[str, Any] = field(default_factory=dict)

    def window(self, channel: int) -> tuple[float, float] | None:
        """``(min, max)`` of the field's ``omero`` window of ``channel`` (its data range), if given."""
        return self.windows[channel] if channel < len(self.windows) else None


def _windows(ome: dict[str, Any]) -> tuple[tuple[float, float] | None, ...]:
    out: list[tuple[float, float] | None] = []
    channels = (ome.get("omero") or {}).get("channels") or []
    for ch in channels if isinstance(channels, list) else []:
        try:
            out.append((float(ch["window"]["min"]), float(ch["window"]["max"])))
        except (KeyError, TypeError, ValueError):
            out.append(None)
    return tuple(out)


def _multiscale(attrs: dict[str, Any]) -> tuple[list[str], tuple[str, ...]]:
    ms = (_ome(attrs).get("multiscales") or [{}])[0]
    paths = [str(d["path"]) for d in ms.get("datasets", [])]
    axes = tuple(str(a["name"] if isinstance(a, dict) else a).lower() for a in ms.get("axes", []))
    return paths, axes


def _metas(folders: tuple[str, ...]) -> tuple[ArrayMeta, ...] | None:
    """Array layouts of ``folders`` (``None``: one is missing)."""
    out = []
    for folder in folders:
        meta = read_array_meta(folder)
        if meta is None:  # a layout this module does not parse: let Zarr read it
            import zarr

            try:
                meta = from_zarr(zarr.open_array(folder, mode="r"))
            except (FileNotFoundError, KeyError, ValueError, TypeError):
                return None
        out.append(meta)
    return tuple(out)


def _pyramid(folder: str, attrs: dict[str, Any], like: Pyramid | None) -> Pyramid | None:
    """The pyramid of the image in ``folder``; the layout of ``like`` when given (one canvas)."""
    paths, axes = _multiscale(attrs)
    folders = tuple(f"{folder}/{p}" for p in paths)
    if like is not None and len(like.metas) == len(folders) and like.axes == axes:
        return Pyramid(folders, like.metas, like.axes, like.sizes)
    metas = _metas(folders) if folders else None
    if metas is None:
        return None
    if not axes:  # NGFF 0.1–0.3: no axes; the last ones of t, c, z, y, x
        axes = ("t", "c", "z", "y", "x")[-len(metas[0].shape):]
    sizes = tuple(dict(zip(axes, m.shape)) for m in metas)
    return Pyramid(folders, metas, axes, sizes)


def scan_fields(root: str, well_paths: dict[str, str], one_canvas: bool) -> dict[str, list[Field | None]]:
    """Return ``{well: [field, ...]}`` of a plate (``None`` for a field missing on disk).

    Parameters
    ----------
    root : str
        The plate folder.
    well_paths : dict
        ``{well name: its path in the plate ("B/03")}``, as the plate metadata lists them.
    one_canvas : bool
        Every field has the same arrays (a napari-openhcs plate): read the first field's only.
    """
    out: dict[str, list[Field | None]] = {}
    like: Pyramid | None = None
    label_like: dict[str, Pyramid] = {}
    for well, path in well_paths.items():
        folder = f"{root}/{path}"
        attrs = read_attrs(folder)
        images = _ome(attrs).get("well", {}).get("images", []) if attrs else []
        fields: list[Field | None] = []
        for image in images:
            image_dir = f"{folder}/{image.get('path', '')}"
            image_attrs = read_attrs(image_dir)
            pyramid = _pyramid(image_dir, image_attrs, like) if image_attrs is not None else None
            if pyramid is None:
                fields.append(None)
                continue
            if one_canvas and like is None:
                like = pyramid
            ome = _ome(image_attrs)
            item = Field(pyramid, axis_units(image_attrs), _windows(ome))
            _scan_labels(item, image_dir, label_like if one_canvas else None)
            fields.append(item)
        out[well] = fields
    return out


def _scan_labels(item: Field, image_dir: str, like: dict[str, Pyramid] | None) -> None:
    labels_dir = f"{image_dir}/labels"
    if not os.path.isdir(labels_dir):
        return
    attrs = read_attrs(labels_dir)
    names = _ome(attrs).get("labels", []) if attrs else []
    for name in names if isinstance(names, list) else []:
        label_dir = f"{labels_dir}/{name}"
        label_attrs = read_attrs(label_dir)
        if label_attrs is None:
            continue
        pyramid = _pyramid(label_dir, label_attrs, (like or {}).get(str(name)))
        if pyramid is None:
            continue
        if like is not None:
            like.setdefault(str(name), pyramid)
        item.labels[str(name)] = pyramid
        item.label_colors[str(name)] = label_colors(_ome(label_attrs).get("image-label") or {})
