"""Layer data for raw plates (lazy dask arrays; no napari import); output plates: ``_output_layers``.

Every function returns napari *layer data tuples* ``(data, kwargs, layer_type)``
so the reader, the widgets and the tests share one code path.
"""

from __future__ import annotations

import logging
import math
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..microscopes.plate import ImageRecord, Plate
from ._ngff_labels import NO_UNIT

logger = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]

#: Key of our entry in ``layer.metadata``.
META_KEY = "napari_openhcs"

#: Colormaps for channels without a colour in the metadata (more than one channel).
PALETTE: tuple[str, ...] = ("blue", "green", "red", "magenta", "cyan", "yellow")


def channel_colormap(color: str | None, index: int, count: int, wavelength_nm: float | None = None) -> str:
    """Return a napari colormap for a channel.

    Parameters
    ----------
    color : str or None
        ``"RRGGBB"`` (with or without ``#``) from the plate metadata.
    index : int
        0-based position of the channel.
    count : int
        Number of channels (a single channel without colour is shown in grey).
    wavelength_nm : float, optional
        Emission wavelength, used when there is no colour.

    Returns
    -------
    str
        A hex colour ``"#RRGGBB"`` or a colormap name.
    """
    if color:
        return "#" + color.lstrip("#").upper()
    if count == 1:
        return "gray"
    if wavelength_nm:
        for limit, name in ((490, "blue"), (560, "green"), (590, "yellow"), (680, "red")):
            if wavelength_nm < limit:
                return name
        return "magenta"
    return PALETTE[index % len(PALETTE)]


@lru_cache(maxsize=8)
def _open_plate_cached(path: str, mtime_ns: int) -> Plate:
    from ..microscopes.detect import open_plate

    return open_plate(path)


def load_plate(path: str | Path) -> Plate:
    """Open a raw plate, reusing an earlier read of the same unchanged folder."""
    p = Path(path).resolve()
    return _open_plate_cached(str(p), p.stat().st_mtime_ns)


# ---------------------------------------------------------------- raw plates
class _RecordStack:
    """A lazy ``(T, Z, Y, X)`` array of one site and channel, read plane by plane."""

    def __init__(self, plate: Plate, records: dict[tuple[int, int], ImageRecord]) -> None:
        self.plate = plate
        self.records = records
        self.ts = list(plate.timepoints)
        self.zs = list(plate.z_indices)
        self.shape = (len(self.ts), len(self.zs), *plate.image_shape)
        self.dtype = np.dtype(plate.dtype)
        self.ndim = 4

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (4 - len(key))
        t_idx = np.arange(self.shape[0])[key[0]]
        z_idx = np.arange(self.shape[1])[key[1]]
        t_list = np.atleast_1d(t_idx)
        z_list = np.atleast_1d(z_idx)
        out = np.zeros((len(t_list), len(z_list), *self.shape[2:]), dtype=self.dtype)
        for i, ti in enumerate(t_list):
            for j, zi in enumerate(z_list):
                rec = self.records.get((self.ts[ti], self.zs[zi]))
                if rec is not None:
                    out[i, j] = self.plate.read(rec)
        out = out[(slice(None), slice(None), key[2], key[3])]
        if np.ndim(t_idx) == 0:
            out = out[0]
            if np.ndim(z_idx) == 0:
                out = out[0]
        elif np.ndim(z_idx) == 0:
            out = out[:, 0]
        return out


def site_offsets_um(plate: Plate, well: str) -> dict[int, tuple[float, float]]:
    """Return the ``(y, x)`` position in µm of every site of ``well``.

    Stage positions are used when the plate has them; otherwise sites are laid
    out on the site grid (row by row) without overlap.
    """
    px = plate.pixel_size_um or 1.0
    sites = sorted({r.site for r in plate.records_for(well)})
    known = {s: plate.site_position_um(well, s) for s in sites}
    if sites and all(v is not None for v in known.values()) and plate.pixel_size_um:
        return {s: (float(v[0]), float(v[1])) for s, v in known.items() if v is not None}
    h, w = plate.image_shape
    cols = plate.site_grid[1] if plate.site_grid else max(1, math.ceil(math.sqrt(len(sites))))
    return {s: (i // cols * h * px, i % cols * w * px) for i, s in enumerate(sites)}


def raw_well_layers(plate: Plate, well: str | None = None) -> list[LayerData]:
    """Return one lazy image layer per site and channel of one well of a raw plate.

    Parameters
    ----------
    plate : Plate
        The plate (from :func:`~napari_openhcs.microscopes.detect.open_plate`).
    well : str, optional
        Well to show (default: the first well).

    Returns
    -------
    list of (data, kwargs, "image")
        ``data`` is a dask array ``(T, Z, Y, X)``; sites are placed at their stage
        positions (``translate`` in µm, ``scale`` = pixel size).
    """
    import dask.array as da

    well = well or plate.wells[0]
    px = plate.pixel_size_um or 1.0
    dz = plate.z_spacing_um or 1.0
    um = "µm" if plate.pixel_size_um else NO_UNIT
    flat = len(plate.z_indices) == 1  # one plane: no z extent, µm like y/x so all layers agree
    units = (NO_UNIT, um if plate.z_spacing_um or flat else NO_UNIT, um, um)
    offsets = site_offsets_um(plate, well)
    by_site_channel: dict[tuple[int, int], dict[tuple[int, int], ImageRecord]] = {}
    for rec in plate.records_for(well):
        by_site_channel.setdefault((rec.site, rec.channel), {})[(rec.t, rec.z)] = rec
    sites = sorted({s for s, _ in by_site_channel})
    layers: list[LayerData] = []
    for ci, ch in enumerate(plate.channels):
        for site in sites:
            records = by_site_channel.get((site, ch.index), {})
            stack = _RecordStack(plate, records)
            data = da.from_array(stack, chunks=(1, 1, *plate.image_shape), asarray=False,
                                 name=f"openhcs-raw-{uuid.uuid4().hex}",
                                 meta=np.empty((0, 0, 0, 0), stack.dtype))
            name = f"{well} s{site} {ch.name}" if len(sites) > 1 else f"{well} {ch.name}"
            y, x = offsets.get(site, (0.0, 0.0))
            layers.append((data, {
                "name": name,
                "colormap": channel_colormap(ch.color, ci, len(plate.channels), ch.wavelength_nm),
                "blending": "additive",
                "scale": (1.0, dz, px, px),
                "units": units,
                "translate": (0.0, 0.0, y, x),
                "axis_labels": ("t", "z", "y", "x"),
                "metadata": {META_KEY: {"kind": "raw", "plate_path": str(plate.root), "well": well,
                                        "site": site, "channel": ch.name}},
            }, "image"))
    return layers
