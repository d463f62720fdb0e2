"""The plate mosaic: wells on the plate grid, each well's fields side by side, one Dask array per level.

Each level of a layer is a single Dask array built from a graph of its own: one task
per block of the mosaic, and a block reads, when it is computed, the chunks of the
fields it covers (:func:`._zarr_chunks.read_region`). Blocks follow the wells: small
wells are grouped (a few blocks for a whole 384-well plate), large ones split at
their fields and at the fields' chunks. Nothing is read before napari asks for a block.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._plate_scan import Pyramid
from ._zarr_chunks import read_region

#: Blocks of small wells are grouped up to this edge (pixels of the level).
BLOCK_EDGE = 2048
#: Bytes of blocks kept in memory per opened plate (napari slices a new layer twice).
CACHE_BYTES = 128 * 2**20


class BlockCache:
    """The blocks read last (up to ``max_bytes``), shared by the layers of one opened plate.

    napari reads the plane it shows once when it makes a layer and again when it adds
    it to the viewer; scrolling back to a plane reads it again. Each caller gets its
    own copy, so what it changes stays out of the cache.
    """

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[Any, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # sent to another process: empty there
        return {"max_bytes": self.max_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_bytes"])  # type: ignore[misc]

    def get(self, key: Any) -> np.ndarray | None:
        """Return a copy of the block stored under ``key`` (``None`` if it is not here)."""
        with self._lock:
            block = self._blocks.get(key)
            if block is None:
                return None
            self._blocks.move_to_end(key)
        return block.copy()

    def put(self, key: Any, block: np.ndarray) -> None:
        """Keep a copy of ``block`` under ``key``, dropping the oldest blocks past the budget."""
        if block.nbytes > self.max_bytes:
            return
        block = block.copy()
        with self._lock:
            old = self._blocks.pop(key, None)
            self._bytes += block.nbytes - (old.nbytes if old is not None else 0)
            self._blocks[key] = block
            while self._bytes > self.max_bytes:
                _, dropped = self._blocks.popitem(last=False)
                self._bytes -= dropped.nbytes


@dataclass(frozen=True)
class Geometry:
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


def plate_geometry(pyramids: dict[str, list[Pyramid | None]], pos: dict[str, tuple[int, int]]) -> Geometry:
    """Return the layout of the mosaic of ``{well: [field pyramid, ...]}`` (wells at ``pos``: row, column).

    A cell holds the largest field (rounded up to the coarsest level's factor), wells
    are ``f_rows × f_cols`` cells plus a gap of 8 % of a cell; the mosaic spans the
    bounding box of the wells present.
    """
    present = [p for fields in pyramids.values() for p in fields if p is not None]
    if not present:
        raise ValueError("the plate has no image to show")
    n_levels = min(len(p.metas) for p in present)
    first = present[0]
    factors = [max(1, round(first.size("x") / first.size("x", k))) for k in range(n_levels)]
    fmax = factors[-1]
    t_n, c_n, z_n = (max(p.size(ax) for p in present) for ax in ("t", "c", "z"))
    cell_y = math.ceil(max(p.size("y") for p in present) / fmax) * fmax
    cell_x = math.ceil(max(p.size("x") for p in present) / fmax) * fmax
    n_fields = max(len(f) for f in pyramids.values())
    f_cols = max(1, math.ceil(math.sqrt(n_fields)))
    f_rows = math.ceil(n_fields / f_cols)
    gap = math.ceil(0.08 * max(cell_y, cell_x) / fmax) * fmax
    r0 = min(r for r, _ in pos.values())
    c0 = min(c for _, c in pos.values())
    return Geometry(n_levels, factors, (t_n, c_n, z_n), cell_y, cell_x, f_rows, f_cols,
                    f_rows * cell_y + gap, f_cols * cell_x + gap, dict(pos), r0, c0,
                    max(r for r, _ in pos.values()) - r0 + 1, max(c for _, c in pos.values()) - c0 + 1)


def _axis_blocks(n_wells: int, well: int, n_cells: int, cell: int, chunk: int) -> tuple[int, ...]:
    """Block lengths along one axis of a level: groups of whole wells, or pieces of one well.

    A well longer than :data:`BLOCK_EDGE` is cut at its cells and each cell at multiples
    of the fields' chunk length (``chunk``); the gap after the last cell joins its last piece.
    """
    if well <= BLOCK_EDGE:
        group = max(1, BLOCK_EDGE // well)
        sizes = [group * well] * (n_wells // group)
        return tuple(sizes + ([(n_wells % group) * well] if n_wells % group else []))
    step = max(1, min(chunk, cell))
    pieces = [min(step, cell - s) for _ in range(n_cells) for s in range(0, cell, step)]
    pieces[-1] += well - n_cells * cell
    return tuple(pieces * n_wells)


class MosaicLevel:
    """Reads any ``(t, z, y0:y1, x0:x1)`` block of one level of one channel of the mosaic.

    Parameters
    ----------
    pyramids : dict
        ``{well: [field pyramid or None, ...]}``.
    geometry : Geometry
        The mosaic layout.
    level : int
        Pyramid level.
    channel : int
        Channel read from each field (0 for label images: their first channel).
    dtype
        Type of the mosaic (each field is cast to it).
    cache : BlockCache, optional
        Where blocks read are kept (none kept without it).
    """

    def __init__(self, pyramids: dict[str, list[Pyramid | None]], geometry: Geometry, level: int,
                 channel: int, dtype: Any, cache: BlockCache | None = None) -> None:
        g = geometry
        fk = g.factors[level]
        self.cache = cache
        self.level, self.channel, self.dtype = level, channel, np.dtype(dtype)
        self.cell = (g.cell_y // fk, g.cell_x // fk)
        self.shape = (g.tcz[0], g.tcz[2], g.n_r * (g.well_y // fk), g.n_c * (g.well_x // fk))
        self.sources: list[Pyramid] = []
        origins = []
        dims: dict[int, tuple[int, int, int]] = {}  # per distinct layout: channels, y and x in the cell
        for well, fields in pyramids.items():
            r, c = g.pos[well]
            wy, wx = (r - g.r0) * (g.well_y // fk), (c - g.c0) * (g.well_x // fk)
            for i, p in enumerate(fields):
                if p is None:
                    continue
                d = dims.get(id(p.sizes))
                if d is None:
                    d = dims[id(p.sizes)] = (p.size("c"), min(p.size("y", level), self.cell[0]),
                                             min(p.size("x", level), self.cell[1]))
                if d[0] <= channel:
                    continue
                oy, ox = wy + (i // g.f_cols) * self.cell[0], wx + (i % g.f_cols) * self.cell[1]
                origins.append((oy, ox, oy + d[1], ox + d[2]))
                self.sources.append(p)
        self._boxes = np.array(origins, dtype=np.int64).reshape(-1, 4)

    def _plane(self, p: Pyramid, t: int, z: int) -> tuple[Any, ...] | None:
        """The selection of plane ``(t, z)`` of the channel in ``p``, ``"y"``/``"x"`` standing for the
        rows and columns (``None``: the field has no such plane)."""
        sel: list[Any] = []
        for ax in p.axes:
            if ax in ("y", "x"):
                sel.append(ax)
                continue
            index = {"t": t, "c": self.channel, "z": z}.get(ax)
            if index is None or index >= p.size(ax, self.level):
                return None  # an axis we do not lay out, or a plane this field does not have
            sel.append(index)
        if "t" not in p.axes and t or "z" not in p.axes and z:
            return None  # the field has a single plane on that axis
        return tuple(sel)

    def block(self, t: int, z: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Return the ``(1, 1, y1 - y0, x1 - x0)`` block at plane ``(t, z)`` (0 where no field is)."""
        key = (id(self), t, z, y0, y1, x0, x1)
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None:
            return cached
        out = np.zeros((1, 1, y1 - y0, x1 - x0), dtype=self.dtype)
        b = self._boxes
        hits = np.flatnonzero((b[:, 0] < y1) & (b[:, 2] > y0) & (b[:, 1] < x1) & (b[:, 3] > x0))
        plans: dict[int, Any] = {}
        level = self.level
        for i, (oy, ox, ey, ex) in zip(hits.tolist(), b[hits].tolist()):
            p = self.sources[i]
            plan = plans.get(id(p.sizes), False)
            if plan is False:
                plan = plans[id(p.sizes)] = self._plane(p, t, z)
            if plan is None:
                continue
            ya, yb, xa, xb = max(y0, oy), min(y1, ey), max(x0, ox), min(x1, ex)
            ys, xs = slice(ya - oy, yb - oy), slice(xa - ox, xb - ox)
            if plan[-2:] == ("y", "x"):
                sel = (*plan[:-2], ys, xs)
            else:
                sel = tuple(ys if m == "y" else xs if m == "x" else m for m in plan)
            out[0, 0, ya - y0:yb - y0, xa - x0:xb - x0] = read_region(p.folders[level], p.metas[level], sel)
        if self.cache is not None:
            self.cache.put(key, out)
        return out

    def to_dask(self, chunk_yx: Sequence[int], geometry: Geometry) -> Any:
        """Return the level as one Dask array ``(T, Z, Y, X)`` of its own graph (one task per block)."""
        import dask.array as da

        g, fk = geometry, geometry.factors[self.level]
        ys = _axis_blocks(g.n_r, g.well_y // fk, g.f_rows, self.cell[0], chunk_yx[0])
        xs = _axis_blocks(g.n_c, g.well_x // fk, g.f_cols, self.cell[1], chunk_yx[1])
        y_at, x_at = np.cumsum((0, *ys)), np.cumsum((0, *xs))
        name = f"openhcs-plate-{uuid.uuid4().hex}"
        dsk = {(name, t, z, i, j): (self.block, t, z, int(y_at[i]), int(y_at[i + 1]),
                                    int(x_at[j]), int(x_at[j + 1]))
               for t in range(self.shape[0]) for z in range(self.shape[1])
               for i in range(len(ys)) for j in range(len(xs))}
        chunks = ((1,) * self.shape[0], (1,) * self.shape[1], ys, xs)
        return da.Array(dsk, name, chunks=chunks, dtype=self.dtype)


def mosaic_levels(pyramids: dict[str, list[Pyramid | None]], geometry: Geometry, channel: int, dtype: Any,
                  n_levels: int | None = None, cache: BlockCache | None = None) -> list[Any]:
    """Return one lazy ``(T, Z, Y, X)`` array per level of channel ``channel`` of the mosaic.

    Each level is a Dask array of one graph layer (one task per block, see :class:`MosaicLevel`).
    """
    first = next(p for fields in pyramids.values() for p in fields if p is not None)
    out = []
    for k in range(geometry.n_levels if n_levels is None else n_levels):
        chunks = first.metas[k].chunks
        yx = (chunks[first.axes.index("y")], chunks[first.axes.index("x")])
        out.append(MosaicLevel(pyramids, geometry, k, channel, dtype, cache).to_dask(yx, geometry))
    return out
