"""Compile phase 2: declare the output stores (the OME-Zarr plates and table folders).

Every well image of one output plate has one shape, the plate's *canvas*, decided here
from the nominal layout (so that wells written in parallel, and wells added by a resumed
run, agree without seeing each other): for a plate of stitched mosaics, the largest
nominal mosaic of the plate's wells (stage positions, else the site grid without
overlap) plus a margin for stage error on each side.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ...microscopes.plate import Plate
from ..context import OutputPlan, StepPlan
from ..frozen import FrozenDict

#: Special input that marks a step assembling a mosaic from tile positions.
MOSAIC_INPUT = "positions"
#: Smallest canvas margin for stage error (px), and the share of a tile side it grows to.
MIN_MARGIN_PX = 32
MARGIN_FRACTION = 0.1


def safe_name(name: str) -> str:
    """Return ``name`` reduced to characters safe in a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "plate"


def canvas_margin(tile_shape: tuple[int, int]) -> tuple[int, int]:
    """Return the margin (px, on y and x) a mosaic canvas keeps for stage error.

    Examples
    --------
    >>> canvas_margin((256, 1024))
    (32, 103)
    """
    return tuple(max(MIN_MARGIN_PX, math.ceil(MARGIN_FRACTION * s)) for s in tile_shape)  # type: ignore[return-value]


def _nominal_extent(
    plate: Plate, sites: list[int], positions: dict[int, tuple[float, float]]
) -> tuple[float, float]:
    """Return the ``(Y, X)`` extent (px) of a well's tiles at their nominal positions."""
    h, w = plate.image_shape
    if len(sites) <= 1:
        return float(h), float(w)
    px = plate.pixel_size_um
    if px and all(s in positions for s in sites):
        yx = np.asarray([positions[s] for s in sites], dtype=np.float64) / float(px)
        span = yx.max(axis=0) - yx.min(axis=0)
        return float(span[0] + h), float(span[1] + w)
    if plate.site_grid:
        rows, cols = plate.site_grid
        return float(rows * h), float(cols * w)
    return float(h), float(len(sites) * w)  # unknown layout: a row of tiles side by side


def mosaic_canvas(plate: Plate) -> tuple[int, int]:
    """Return the ``(Y, X)`` canvas of the plate's stitched wells.

    The largest nominal mosaic over every well of the plate (not only the wells of this
    run), plus :func:`canvas_margin` on each side.
    """
    positions: dict[str, dict[int, tuple[float, float]]] = {}
    for w, s, y, x in plate.site_positions:
        positions.setdefault(w, {})[s] = (y, x)
    extents = [
        _nominal_extent(plate, sorted({r.site for r in plate.records_for(w)}), positions.get(w, {}))
        for w in plate.wells
    ]
    big = np.array(extents or [plate.image_shape], float).max(axis=0)
    my, mx = canvas_margin(tuple(plate.image_shape))  # type: ignore[arg-type]
    return int(math.ceil(big[0])) + 2 * my, int(math.ceil(big[1])) + 2 * mx


def declare_output_stores(
    plate: Plate,
    plans: tuple[StepPlan, ...],
    output_dir: Path,
    pipeline_hash: str,
    compression_level: int,
) -> OutputPlan:
    """Return the :class:`OutputPlan`: the main plate, one plate per materialized step, tables."""
    step_plates = {
        p.index: output_dir / "steps" / f"{p.number:02d}_{safe_name(p.name)}.ome.zarr"
        for p in plans[:-1]
        if p.materialize
    }
    canvases: dict[int, tuple[int, int]] = {}
    first_mosaic = next((p.index for p in plans if MOSAIC_INPUT in p.special_inputs), None)
    if first_mosaic is not None:
        canvas = mosaic_canvas(plate)
        for index in [*step_plates, plans[-1].index]:
            if index >= first_mosaic:
                canvases[index] = canvas
    return OutputPlan(
        output_dir=output_dir,
        plate_path=output_dir / f"{safe_name(plate.name)}.ome.zarr",
        plate_name=plate.name,
        rows=plate.rows,
        columns=plate.columns,
        step_plates=FrozenDict(step_plates),
        tables_dir=output_dir / "tables",
        pipeline_hash=pipeline_hash,
        compression_level=compression_level,
        canvases=FrozenDict(canvases),
    )
