"""Read the plane napari shows first, off the UI thread, so adding a layer decodes no pixels.

napari slices a new layer on the UI thread: for a lazy (Zarr/Dask) layer that means
reading and decoding chunks there. :func:`prefetch_first_plane` reads the first
``(t, z)`` plane of every pyramid level in the calling (worker) thread and splices it
into the lazy array as an in-memory chunk; the rest stays lazy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layers import LayerData

#: Largest first plane (all levels together) held in memory per layer.
MAX_PLANE_BYTES = 256 * 2**20


def _assemble(level: Any, cached: Any) -> Any:
    """Return ``level`` with its ``[0, …, 0]`` plane taken from ``cached``."""
    import dask.array as da

    lead = level.ndim - 2
    out = cached
    for axis in range(lead - 1, -1, -1):
        index = (0,) * axis + (slice(1, None),)
        rest = level[index]
        rest = rest[(None,) * axis] if axis else rest
        if rest.shape[axis] > 0:
            out = da.concatenate([out, rest], axis=axis)
    return out


def prefetch_first_plane(layers: list[LayerData]) -> list[LayerData]:
    """Return ``layers`` with the first plane of each image/labels level read into memory.

    Layers whose first plane is larger than :data:`MAX_PLANE_BYTES` stay fully lazy.
    Image layers also get their contrast limits from the coarsest level, so napari
    does not compute them on the UI thread.
    """
    out: list[LayerData] = []
    for data, kwargs, kind in layers:
        if kind not in ("image", "labels"):
            out.append((data, kwargs, kind))
            continue
        levels = data if isinstance(data, list) else [data]
        size = sum(int(np.prod(lv.shape[-2:])) * np.dtype(lv.dtype).itemsize for lv in levels)
        if size > MAX_PLANE_BYTES:
            out.append((data, kwargs, kind))
            continue
        new = [_assemble(lv, _first_plane(lv)) if getattr(lv, "ndim", 0) >= 3 else lv for lv in levels]
        kwargs = dict(kwargs)
        if kind == "image" and "contrast_limits" not in kwargs:
            coarse = np.asarray(new[-1][(0,) * (new[-1].ndim - 2)])
            lo, hi = (float(coarse.min()), float(coarse.max())) if coarse.size else (0.0, 1.0)
            kwargs["contrast_limits"] = (lo, hi if hi > lo else lo + 1.0)
        out.append((new if isinstance(data, list) else new[0], kwargs, kind))
    return out


def _first_plane(level: Any) -> Any:
    import dask.array as da

    lead = level.ndim - 2
    plane = np.asarray(level[(0,) * lead])[(None,) * lead]
    return da.from_array(plane, chunks=plane.shape)
