"""Layer data for OME-Zarr HCS plates: lazy multiscale mosaics of the wells, with NGFF labels."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..microscopes.plate import parse_well
from ._layers import META_KEY, LayerData, channel_colormap
from ._ngff_labels import NO_UNIT
from ._plate_mosaic import BlockCache, Geometry, mosaic_levels, plate_geometry
from ._plate_scan import Field, _ome, scan_fields
from ._zarr_chunks import read_attrs


def is_zarr_plate(path: str | Path) -> bool:
    """Return True if ``path`` is an OME-Zarr HCS plate group (NGFF 0.4 or 0.5)."""
    attrs = read_attrs(str(path))
    return attrs is not None and isinstance(_ome(attrs).get("plate"), dict)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (the scan makes and keeps many small objects).

    In a napari process each full collection walks hundreds of thousands of objects;
    paused, building the layers of a 384-well plate takes about half the CPU time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def output_plate_layers(path: str | Path, features: dict[str, Any] | None = None) -> list[LayerData]:
    """Return lazy multiscale layers for an OME-Zarr HCS plate, one per channel.

    Wells are laid out as on the plate (the bounding box of the wells present),
    each well's fields side by side; a points layer labels every well.

    Parameters
    ----------
    path : str or Path
        The plate folder (ours or any NGFF 0.4/0.5 HCS plate).
    features : dict, optional
        Per-well table ``{column: values}`` with a ``well`` column; attached as the
        label layer's features.

    Returns
    -------
    list of (data, kwargs, layer_type)
        One image layer per channel (a labels layer when the plate holds signed-integer
        label images), then the ``points`` layer of well names.
    """
    with _collector_paused():
        return _plate_layers(path, features)


def _plate_layers(path: str | Path, features: dict[str, Any] | None) -> list[LayerData]:
    from ..io import is_our_plate, open_output_plate

    plate = open_output_plate(path)
    wells = plate.wells
    if not wells:
        return []
    # every well's and field's metadata read once; a plate of ours has one canvas
    fields = scan_fields(str(plate.path), plate.well_paths, is_our_plate(plate.path))
    pyramids = {w: [f.pyramid if f else None for f in fs] for w, fs in fields.items()}
    pos = {w: parse_well(w) for w in wells}
    geometry = plate_geometry(pyramids, pos)
    first = next(f for fs in fields.values() for f in fs if f is not None)
    dtype = first.pyramid.metas[0].dtype
    n_levels = geometry.n_levels
    t_n, c_n, z_n = geometry.tcz
    well_y, well_x, r0, c0 = geometry.well_y, geometry.well_x, geometry.r0, geometry.c0
    cache = BlockCache()  # the layers of this plate share it

    scale = plate.scale
    names = [a.lower() for a in plate.axes]

    def axis_scale(ax: str) -> float:
        return float(scale[names.index(ax)]) if ax in names and len(scale) == len(names) else 1.0

    sy, sx, sz, st = axis_scale("y"), axis_scale("x"), axis_scale("z"), axis_scale("t")
    found = dict(first.units)
    # t stays unit-less like the raw layers (napari renders units only when all layers agree)
    if z_n == 1 and "y" in found:  # one plane: no z extent, same unit as y/x so all layers agree
        found.setdefault("z", found["y"])
    units = (NO_UNIT, *(found.get(ax, NO_UNIT) for ax in ("z", "y", "x")))
    channels = plate.channels
    meta = {"kind": "output", "plate_path": str(Path(path)), "wells": list(wells)}
    out: list[LayerData] = []
    labels = dtype.kind == "i"  # segmentation output: a label image
    for ci in range(c_n):
        ch = channels[ci] if ci < len(channels) else None
        name = ch.name if ch else f"c{ci}"
        data = mosaic_levels(pyramids, geometry, ci, dtype, cache=cache)
        kwargs: dict[str, Any] = {
            "name": f"{plate.name} {name}",
            "multiscale": n_levels > 1,
            "scale": (st, sz, sy, sx),
            "units": units,
            "axis_labels": ("t", "z", "y", "x"),
            "metadata": {META_KEY: {**meta, "channel": name}},
        }
        if not labels:
            kwargs.update(colormap=channel_colormap(ch.color if ch else None, ci, c_n), blending="additive")
            limits = _data_range(fields, ci)
            if limits is not None:  # napari would otherwise read the whole plate to find it
                kwargs["contrast_limits"] = limits
        out.append((data if n_levels > 1 else data[0], kwargs, "labels" if labels else "image"))
    common = {"scale": (st, sz, sy, sx), "units": units, "axis_labels": ("t", "z", "y", "x")}
    out += _label_layers(plate.name, fields, geometry, common, meta, cache)
    label_pos = np.array([[(pos[w][0] - r0) * well_y * sy, (pos[w][1] - c0) * well_x * sx] for w in wells])
    feats: dict[str, Any] = {"well": list(wells)}
    if features and "well" in features:
        index = {str(w): i for i, w in enumerate(features["well"])}
        for col, values in features.items():
            if col != "well":
                feats[col] = [values[index[w]] if w in index else np.nan for w in wells]
    out.append((label_pos, {
        "name": f"{plate.name} wells",
        "units": units[-2:],
        "features": feats,
        "text": {"string": "{well}", "anchor": "upper_left", "color": "white", "size": 10},
        "size": 0.0,
        "face_color": "transparent",
        "border_width": 0.0,
        "metadata": {META_KEY: {**meta, "kind": "output-wells"}},
    }, "points"))
    return out


def _data_range(fields: dict[str, list[Field | None]], channel: int) -> tuple[float, float] | None:
    """Return the range of channel ``channel`` over the plate, from every field's ``omero`` window.

    The window's ``min``/``max`` is the field's data range; the mosaic's gaps and padding
    (0) belong to the range too, as napari would find reading every pixel. ``None`` when
    a field gives no window.
    """
    lo, hi = 0.0, 0.0
    for fs in fields.values():
        for f in fs:
            if f is None:
                continue
            win = f.window(channel)
            if win is None:
                return None
            lo, hi = min(lo, win[0]), max(hi, win[1])
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def _label_layers(plate_name: str, fields: dict[str, list[Field | None]], g: Geometry,
                  common: dict[str, Any], meta: dict[str, Any], cache: BlockCache) -> list[LayerData]:
    """Return one lazy multiscale labels layer per NGFF label name found under the plate's images.

    Each label image is laid out like its image (same wells, fields and scale); a
    field without that label shows as background.
    """
    names: list[str] = []
    for fs in fields.values():
        for f in fs:
            names += [n for n in (f.labels if f else ()) if n not in names]
    out: list[LayerData] = []
    for name in names:
        pyramids = {w: [f.labels.get(name) if f else None for f in fs] for w, fs in fields.items()}
        present = [(f.labels[name], f.label_colors[name]) for fs in fields.values() for f in fs
                   if f and name in f.labels]
        n = min([g.n_levels] + [len(p.metas) for p, _ in present])
        colors = next((c for _, c in present if c), None)
        levels = mosaic_levels(pyramids, g, 0, present[0][0].metas[0].dtype, n_levels=n, cache=cache)
        kwargs: dict[str, Any] = {"name": f"{plate_name} {name}", "multiscale": n > 1, **common,
                                  "metadata": {META_KEY: {**meta, "kind": "output-labels", "label": name}}}
        if colors:
            kwargs["colormap"] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0), **colors}
        out.append((levels if n > 1 else levels[0], kwargs, "labels"))
    return out
