"""Stitching: tile positions from phase correlation, and tile assembly.

A stitching pipeline stacks the sites of a well (``variable_components=[SITE]``)
and runs two steps:

1. :func:`compute_tile_positions` measures the displacement of every pair of
   neighbouring tiles and solves for one position per tile; it passes the
   stack through unchanged and returns the ``positions`` table (and the
   ``stitch_pairs`` diagnostics table).
2. :func:`assemble_tiles` consumes ``positions`` and blends the tiles into one
   image per (channel, z, timepoint) group, so every channel of a well is
   assembled with the same positions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np

from ._assembly import assemble
from ._phase_correlation import PairRegistration, register_pair
from ._stitch_solve import residuals, solve_least_squares, solve_spanning_tree
from .registry import register

__all__ = ["assemble_tiles", "compute_tile_positions", "nominal_grid", "neighbour_pairs"]

logger = logging.getLogger(__name__)

#: Weight of a pair that falls back on the stage displacement, next to NCC weights in (0, 1].
_STAGE_WEIGHT = 1e-3


def nominal_grid(
    n_tiles: int, tile_shape: tuple[int, int], grid_dimensions: tuple[int, int], overlap: float
) -> np.ndarray:
    """Return row-major grid origins (y, x) for tiles overlapping by ``overlap``.

    Parameters
    ----------
    n_tiles : int
        Number of tiles (sites), numbered row by row from the top left.
    tile_shape : (int, int)
        Tile height and width (px).
    grid_dimensions : (int, int)
        Rows and columns of the site grid.
    overlap : float
        Fraction of a tile shared with its neighbour, e.g. ``0.1``.

    Returns
    -------
    ndarray, shape (n_tiles, 2)
        Origins in pixels.

    Examples
    --------
    >>> nominal_grid(4, (100, 200), (2, 2), 0.1).tolist()
    [[0.0, 0.0], [0.0, 180.0], [90.0, 0.0], [90.0, 180.0]]
    """
    rows, cols = (int(v) for v in grid_dimensions)
    if rows * cols < n_tiles:
        raise ValueError(
            f"the site grid {rows} x {cols} has room for {rows * cols} sites but the stack "
            f"holds {n_tiles}; check grid_dimensions"
        )
    index = np.arange(n_tiles)
    step = np.array(tile_shape, dtype=np.float64) * (1.0 - overlap)
    return np.stack([index // cols * step[0], index % cols * step[1]], axis=1)


def neighbour_pairs(nominal: np.ndarray, tile_shape: tuple[int, int]) -> list[tuple[int, int]]:
    """Return the pairs of tiles that share a side at their nominal positions.

    Two tiles are neighbours when they overlap and their overlap spans at
    least half a tile along one axis (side neighbours, not corner ones).

    Examples
    --------
    >>> grid = nominal_grid(4, (100, 100), (2, 2), 0.1)
    >>> neighbour_pairs(grid, (100, 100))
    [(0, 1), (0, 2), (1, 3), (2, 3)]
    """
    size = np.asarray(tile_shape, dtype=np.float64)
    delta = np.abs(nominal[None, :, :] - nominal[:, None, :])
    share = (size - delta) / size  # overlap fraction along each axis
    touching = (share > 0).all(axis=2) & (share.max(axis=2) >= 0.5)
    ia, ib = np.nonzero(np.triu(touching, k=1))
    return [(int(i), int(j)) for i, j in zip(ia, ib)]


def _nominal_positions(
    stack: np.ndarray,
    site_positions: np.ndarray | None,
    grid_dimensions: tuple[int, int] | None,
    overlap: float,
) -> np.ndarray:
    n = stack.shape[0]
    if site_positions is not None:
        nominal = np.asarray(site_positions, dtype=np.float64).reshape(-1, 2)
        if len(nominal) != n:
            raise ValueError(
                f"site_positions has {len(nominal)} rows but the stack holds {n} tiles; "
                "they must be one row per stacked site"
            )
        return nominal
    if grid_dimensions is None:
        if n == 1:
            return np.zeros((1, 2))
        raise ValueError(
            "compute_tile_positions needs the nominal tile layout: pass site_positions "
            "(stage positions in px) or grid_dimensions (rows, columns) with overlap"
        )
    return nominal_grid(n, stack.shape[1:], grid_dimensions, overlap)


@register(
    category="Stitching",
    special_outputs=("positions", "stitch_pairs"),
    keywords=("phase correlation", "registration", "mosaic", "tile", "montage"),
)
def compute_tile_positions(
    stack: np.ndarray,
    *,
    site_positions: np.ndarray | None = None,
    grid_dimensions: tuple[int, int] | None = None,
    overlap: Annotated[float, {"min": 0.0, "max": 0.9, "step": 0.01}] = 0.1,
    max_shift_px: Annotated[float, {"min": 0.0, "max": 2000.0, "step": 1.0}] = 50.0,
    min_quality: Annotated[float, {"min": -1.0, "max": 1.0, "step": 0.05}] = 0.3,
    min_contrast: Annotated[float, {"min": 0.0, "max": 1.0, "step": 0.005}] = 0.01,
    method: Literal["least_squares", "spanning_tree"] = "least_squares",
    max_residual_px: Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.5}] = 3.0,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Compute tile positions by phase correlation of neighbouring tiles.

    Starting from the stage positions (or a regular grid), the displacement of
    each pair of side neighbours is measured on their expected overlap: phase
    correlation peaks (each with its FFT wrap alternatives) and a coarse search
    on binned tiles give candidate shifts within ``max_shift_px``; the
    normalized cross-correlation (NCC) of the real overlap picks the best one,
    which is moved to the NCC maximum and refined to subpixel precision by a
    quadratic fit of the NCC around it.  That NCC is the pair's quality.  A
    pair whose overlap has no content, whose quality is below ``min_quality``
    or whose shift strays more than ``max_shift_px`` from the stage falls back
    on the stage displacement and is logged and reported in ``stitch_pairs``.
    A global solve then places every tile: weighted least squares (weights =
    quality, tile 0 anchored, measured pairs that disagree with the others by
    more than ``max_residual_px`` replaced, worst first, by the stage
    displacement) or a maximum spanning tree over quality.

    Strong vignetting biases intensity correlation; correct the illumination
    first (:func:`~napari_openhcs.functions.flatfield.flatfield_correct`) when
    tile edges are much darker than their centres.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        One tile per site, in the order of ``site_positions``.
    site_positions : ndarray, shape (N, 2), optional
        Stage positions (y, x) in pixels, image-y down (filled in by the engine).
    grid_dimensions : (int, int), optional
        Site grid (rows, columns), used with ``overlap`` when there are no stage
        positions; sites are numbered row by row from the top left.
    overlap : float
        Nominal overlap fraction for the grid layout.
    max_shift_px : float
        Largest accepted deviation from the stage displacement per axis (px).
    min_quality : float
        Smallest accepted NCC of a pair's overlap.
    min_contrast : float
        Smallest ratio of an overlap's standard deviation to its mean intensity
        for it to count as having content.
    method : {"least_squares", "spanning_tree"}
        Global solve.
    max_residual_px : float
        Least squares only: measured pairs disagreeing with the solution by
        more than this are dropped (worst first) and reported.

    Returns
    -------
    stack : ndarray
        The input stack, unchanged.
    positions : dict of str to ndarray
        Table with columns ``tile``, ``y``, ``x``: top-left origin of each tile
        (px, float, smallest at 0).
    stitch_pairs : dict of str to ndarray
        One row per neighbour pair: ``tile_a``, ``tile_b``, ``dy``, ``dx`` (the
        displacement used), ``dy_stage``, ``dx_stage``, ``quality`` (NCC),
        ``used`` (``"phase"`` or ``"stage"``), ``reason`` (why the stage was
        used) and ``residual`` (disagreement with the final positions, px).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> canvas = ndimage.gaussian_filter(rng.random((140, 250)), 2) * 1000
    >>> tiles = np.stack([canvas[0:128, 0:128], canvas[3:131, 110:238]])
    >>> stage = np.array([[0.0, 0.0], [0.0, 115.0]])
    >>> _, pos, pairs = compute_tile_positions(tiles, site_positions=stage)
    >>> np.round(pos["y"], 1).tolist(), np.round(pos["x"], 1).tolist()
    ([0.0, 3.0], [0.0, 110.0])
    >>> pairs["used"].tolist()
    ['phase']
    """
    return _tile_positions(
        np.asarray(stack),
        register_pair,
        site_positions=site_positions,
        grid_dimensions=grid_dimensions,
        overlap=overlap,
        max_shift_px=max_shift_px,
        min_quality=min_quality,
        min_contrast=min_contrast,
        method=method,
        max_residual_px=max_residual_px,
    )


def _tile_positions(
    stack: Any,
    measure_pair: Callable[..., PairRegistration],
    *,
    site_positions: np.ndarray | None,
    grid_dimensions: tuple[int, int] | None,
    overlap: float,
    max_shift_px: float,
    min_quality: float,
    min_contrast: float,
    method: str,
    max_residual_px: float,
) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The body of :func:`compute_tile_positions` (and its GPU twin): ``measure_pair``
    measures one pair of tiles (NumPy or CuPy); the solve and the tables are host NumPy.
    """
    if stack.ndim != 3:
        raise ValueError(f"compute_tile_positions needs a (N, Y, X) stack of tiles, got {stack.shape}")
    n = stack.shape[0]
    nominal = _nominal_positions(stack, site_positions, grid_dimensions, overlap)
    pairs = neighbour_pairs(nominal, tuple(stack.shape[1:]))
    e = len(pairs)
    a = np.array([p[0] for p in pairs], dtype=np.intp)
    b = np.array([p[1] for p in pairs], dtype=np.intp)
    stage = nominal[b] - nominal[a] if e else np.zeros((0, 2))
    measured = stage.copy()
    quality = np.full(e, np.nan)
    used_phase = np.zeros(e, dtype=bool)
    reasons = [""] * e
    for k, (i, j) in enumerate(pairs):
        result = measure_pair(
            stack[i],
            stack[j],
            (float(stage[k, 0]), float(stage[k, 1])),
            max_shift=max_shift_px,
            min_quality=min_quality,
            min_contrast=min_contrast,
        )
        measured[k] = (result.dy, result.dx)
        quality[k] = result.quality
        used_phase[k] = result.ok
        reasons[k] = result.reason

    weight = np.where(used_phase, np.clip(np.nan_to_num(quality), 0.05, 1.0), _STAGE_WEIGHT)
    if method == "spanning_tree":
        positions = solve_spanning_tree(nominal, a, b, measured, weight)
    elif method == "least_squares":
        while True:
            positions = solve_least_squares(nominal, a, b, measured, weight)
            res = np.where(used_phase, residuals(positions, a, b, measured), -np.inf)
            worst = int(np.argmax(res)) if e else 0
            if not e or res[worst] <= max_residual_px:
                break
            used_phase[worst] = False
            measured[worst] = stage[worst]
            weight[worst] = _STAGE_WEIGHT
            reasons[worst] = f"inconsistent with the other pairs (residual {res[worst]:.1f} px)"
    else:
        raise ValueError(f"method must be 'least_squares' or 'spanning_tree', not {method!r}")

    for k in map(int, np.flatnonzero(~used_phase)):
        logger.warning(
            "stitching: tiles %d-%d fall back on the stage offset (%.1f, %.1f): %s",
            int(a[k]),
            int(b[k]),
            float(stage[k, 0]),
            float(stage[k, 1]),
            reasons[k],
        )
    positions = positions - positions.min(axis=0)
    table = {"tile": np.arange(n), "y": positions[:, 0], "x": positions[:, 1]}
    pair_table = {
        "tile_a": a,
        "tile_b": b,
        "dy": measured[:, 0],
        "dx": measured[:, 1],
        "dy_stage": stage[:, 0],
        "dx_stage": stage[:, 1],
        "quality": quality,
        "used": np.array(["phase" if u else "stage" for u in used_phase], dtype=str),
        "reason": np.array(reasons, dtype=str),
        "residual": residuals(positions, a, b, measured) if e else np.zeros(0),
    }
    return stack, table, pair_table


def _origins(positions: object, n: int) -> np.ndarray:
    """Return ``(n, 2)`` float origins from a positions table or array."""
    if isinstance(positions, dict):
        if "y" not in positions or "x" not in positions:
            raise ValueError(f"the positions table needs columns 'y' and 'x'; it has {sorted(positions)}")
        origins = np.stack([np.asarray(positions["y"], float), np.asarray(positions["x"], float)], axis=1)
        if "tile" in positions:
            order = np.argsort(np.asarray(positions["tile"]), kind="stable")
            origins = origins[order]
    else:
        origins = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    if len(origins) != n:
        raise ValueError(
            f"the positions table has {len(origins)} tiles but the stack holds {n}; "
            "positions must come from the same well's sites"
        )
    return origins


@register(category="Stitching", special_inputs=("positions",), keywords=("mosaic", "fuse", "blend"))
def assemble_tiles(
    stack: np.ndarray,
    *,
    positions: dict[str, np.ndarray] | np.ndarray,
    blend: Literal["linear", "none"] = "linear",
) -> np.ndarray:
    """Assemble tiles into one image at the given positions.

    Each tile is placed at its origin rounded to the nearest pixel (no
    resampling, so pixel values are never interpolated; the rounding error is
    at most half a pixel).  With ``blend="linear"`` overlapping pixels are a
    weighted mean whose weights fall linearly towards each tile's edges, so
    seams and illumination steps fade out; with ``"none"`` later tiles overwrite
    earlier ones.  The engine calls this once per (channel, z, timepoint) group
    with the same ``positions``, so all channels line up.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        The tiles, in the order of the positions table's ``tile`` column.
    positions : dict of str to ndarray or ndarray
        The ``positions`` table of :func:`compute_tile_positions` (columns
        ``tile``, ``y``, ``x``) or an ``(N, 2)`` array of (y, x) origins.
    blend : {"linear", "none"}
        How overlaps are combined.

    Returns
    -------
    ndarray, shape (1, H, W)
        The assembled image, in the input dtype; uncovered pixels are 0.

    Examples
    --------
    >>> import numpy as np
    >>> tiles = np.stack([np.full((4, 6), 100, np.uint16), np.full((4, 6), 200, np.uint16)])
    >>> table = {"tile": np.array([0, 1]), "y": np.array([0.0, 1.2]), "x": np.array([0.0, 3.9])}
    >>> out = assemble_tiles(tiles, positions=table)
    >>> out.shape, out.dtype, int(out[0, 0, 0]), int(out[0, 4, 9])
    ((1, 5, 10), dtype('uint16'), 100, 200)
    """
    stack = np.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"assemble_tiles needs a (N, Y, X) stack of tiles, got {stack.shape}")
    origins = _origins(positions, stack.shape[0])
    origins = np.rint(origins - origins.min(axis=0)).astype(np.intp)
    return assemble(stack, origins, blend=blend)[None]
