"""Layer data for OME-Zarr HCS plates: lazy multiscale mosaics of the wells, with NGFF labels."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..microscopes.plate import parse_well
from . import _ngff_labels as ngff
from ._layers import META_KEY, LayerData, channel_colormap
from ._ngff_labels import NO_UNIT


@dataclass(frozen=True)
class _Geometry:
    """How the wells and fields of a plate are laid out side by side (level-0 pixels)."""

    n_levels: int
    factors: list[int]
    tcz: tuple[int, int, int]
    cell_y: int
    cell_x: int
    f_rows: int
    f_cols: int
    well_y: int
    well_x: int
    pos: dict[str, tuple[int, int]]
    r0: int
    c0: int
    n_r: int
    n_c: int


def _tile(arrays: dict[str, list[list[Any]]], g: _Geometry, dtype: Any) -> list[Any]:
    """Return one lazy ``(T, C, Z, Y, X)`` array per level: every well's fields on the plate grid.

    ``arrays[well][field]`` is the list of levels of one field (``None`` for a field
    missing here, shown as zeros).
    """
    import dask.array as da

    t_n, c_n, z_n = g.tcz
    levels: list[Any] = []
    for k in range(g.n_levels):
        fk = g.factors[k]
        cy, cx, wy, wx = g.cell_y // fk, g.cell_x // fk, g.well_y // fk, g.well_x // fk
        blank = da.zeros((t_n, c_n, z_n, cy, cx), dtype=dtype, chunks=(1, 1, 1, cy, cx))
        rows = []
        for r in range(g.n_r):
            row = []
            for c in range(g.n_c):
                well = next((w for w, rc in g.pos.items() if rc == (r + g.r0, c + g.c0)), None)
                if well is None:
                    row.append(da.zeros((t_n, c_n, z_n, wy, wx), dtype=dtype, chunks=(1, 1, 1, wy, wx)))
                    continue
                fields = [blank if f is None else _pad_to(f[k].astype(dtype), (t_n, c_n, z_n, cy, cx))
                          for f in arrays[well]]
                fields += [blank] * (g.f_rows * g.f_cols - len(fields))
                grid = [fields[i * g.f_cols:(i + 1) * g.f_cols] for i in range(g.f_rows)]
                row.append(_pad_to(da.block(grid), (t_n, c_n, z_n, wy, wx)))
            rows.append(row)
        levels.append(da.block(rows))
    return levels


def _to_tczyx(arr: Any, axes: Sequence[str]) -> Any:
    """Return a dask array with axes ``(t, c, z, y, x)`` (missing axes inserted)."""
    names = [a.lower() for a in axes] if axes else ["t", "c", "z", "y", "x"][-arr.ndim:]
    index: list[Any] = []
    for ax in ("t", "c", "z", "y", "x"):
        index.append(slice(None) if ax in names else None)
    order = [names.index(ax) for ax in ("t", "c", "z", "y", "x") if ax in names]
    return arr.transpose(order)[tuple(index)]


def _pad_to(arr: Any, shape: Sequence[int]) -> Any:
    import dask.array as da

    pads = [(0, max(0, s - n)) for n, s in zip(arr.shape, shape)]
    if not any(p[1] for p in pads):
        return arr
    return da.pad(arr, pads, mode="constant")


def is_zarr_plate(path: str | Path) -> bool:
    """Return True if ``path`` is an OME-Zarr HCS plate group (NGFF 0.4 or 0.5)."""
    import json

    p = Path(path)
    for name, getter in (("zarr.json", lambda d: d.get("attributes", {}).get("ome", {})),
                         (".zattrs", lambda d: d)):
        f = p / name
        if f.is_file():
            try:
                doc = json.loads(f.read_text())
            except (OSError, ValueError):
                return False
            meta = getter(doc)
            return isinstance(meta, dict) and isinstance(meta.get("plate"), dict)
    return False


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
    import dask.array as da

    from ..io import open_output_plate

    plate = open_output_plate(path)
    wells = plate.wells
    if not wells:
        return []
    axes = plate.axes
    arrays: dict[str, list[list[Any]]] = {}
    groups: dict[str, list[Any]] = {}  # each field's image group: its units and NGFF labels
    for well in wells:  # every well and field opened once (the metadata reads are what cost)
        pyramids = plate.field_pyramids(well)
        groups[well] = [group for group, _ in pyramids]
        arrays[well] = [[_to_tczyx(da.from_zarr(a), axes) for a in levels] for _, levels in pyramids]
    n_levels = min(len(levels) for fields in arrays.values() for levels in fields)
    first = arrays[wells[0]][0]
    factors = [max(1, round(first[0].shape[-1] / first[k].shape[-1])) for k in range(n_levels)]
    fmax = factors[-1]
    all0 = [f[0] for fields in arrays.values() for f in fields]
    t_n, c_n, z_n = (max(a.shape[i] for a in all0) for i in range(3))
    cell_y = math.ceil(max(a.shape[3] for a in all0) / fmax) * fmax
    cell_x = math.ceil(max(a.shape[4] for a in all0) / fmax) * fmax
    n_fields = max(len(f) for f in arrays.values())
    f_cols = max(1, math.ceil(math.sqrt(n_fields)))
    f_rows = math.ceil(n_fields / f_cols)
    gap = math.ceil(0.08 * max(cell_y, cell_x) / fmax) * fmax
    well_y, well_x = f_rows * cell_y + gap, f_cols * cell_x + gap
    pos = {w: parse_well(w) for w in wells}
    r0 = min(r for r, _ in pos.values())
    c0 = min(c for _, c in pos.values())
    n_r = max(r for r, _ in pos.values()) - r0 + 1
    n_c = max(c for _, c in pos.values()) - c0 + 1

    geometry = _Geometry(n_levels, factors, (t_n, c_n, z_n), cell_y, cell_x, f_rows, f_cols,
                         well_y, well_x, pos, r0, c0, n_r, n_c)
    levels = _tile(arrays, geometry, all0[0].dtype)

    scale = plate.scale
    names = [a.lower() for a in axes]

    def axis_scale(ax: str) -> float:
        return float(scale[names.index(ax)]) if ax in names and len(scale) == len(names) else 1.0

    sy, sx, sz, st = axis_scale("y"), axis_scale("x"), axis_scale("z"), axis_scale("t")
    found = ngff.axis_units(groups[wells[0]][0])
    # t stays unit-less like the raw layers (napari renders units only when all layers agree)
    if z_n == 1 and "y" in found:  # one plane: no z extent, same unit as y/x so all layers agree
        found.setdefault("z", found["y"])
    units = (NO_UNIT, *(found.get(ax, NO_UNIT) for ax in ("z", "y", "x")))
    channels = plate.channels
    meta = {"kind": "output", "plate_path": str(Path(path)), "wells": list(wells)}
    out: list[LayerData] = []
    labels = np.dtype(all0[0].dtype).kind == "i"  # segmentation output: a label image
    for ci in range(c_n):
        ch = channels[ci] if ci < len(channels) else None
        name = ch.name if ch else f"c{ci}"
        data = [lvl[:, ci] for lvl in levels]
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
        out.append((data if n_levels > 1 else data[0], kwargs, "labels" if labels else "image"))
    common = {"scale": (st, sz, sy, sx), "units": units, "axis_labels": ("t", "z", "y", "x")}
    out += _label_layers(plate.name, groups, geometry, common, meta)
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


def _label_layers(plate_name: str, groups: dict[str, list[Any]], g: _Geometry,
                  common: dict[str, Any], meta: dict[str, Any]) -> list[LayerData]:
    """Return one lazy multiscale labels layer per NGFF label name found under the plate's images.

    Each label image is laid out like its image (same wells, fields and scale); a
    field without that label shows as background.
    """
    import dask.array as da

    names: list[str] = []
    for fields in groups.values():
        for group in fields:
            names += [n for n in ngff.label_names(group) if n not in names]
    out: list[LayerData] = []
    for name in names:
        arrays: dict[str, list[Any]] = {}
        colors = None
        dtype = None
        for well, fields in groups.items():
            arrays[well] = []
            for group in fields:
                if name not in ngff.label_names(group):
                    arrays[well].append(None)
                    continue
                axes = ngff.label_axes(group, name)
                levels = [_to_tczyx(da.from_zarr(a), axes)[:, :1] for a in ngff.label_levels(group, name)]
                arrays[well].append(levels)
                dtype = dtype or levels[0].dtype
                colors = colors or ngff.label_colors(group, name)
        n = min([g.n_levels] + [len(f) for fs in arrays.values() for f in fs if f is not None])
        geometry = replace(g, n_levels=n, tcz=(g.tcz[0], 1, g.tcz[2]))
        levels = [lvl[:, 0] for lvl in _tile(arrays, geometry, dtype)]
        kwargs: dict[str, Any] = {"name": f"{plate_name} {name}", "multiscale": n > 1, **common,
                                  "metadata": {META_KEY: {**meta, "kind": "output-labels", "label": name}}}
        if colors:
            kwargs["colormap"] = {None: (0.0, 0.0, 0.0, 0.0), 0: (0.0, 0.0, 0.0, 0.0), **colors}
        out.append((levels if n > 1 else levels[0], kwargs, "labels"))
    return out
