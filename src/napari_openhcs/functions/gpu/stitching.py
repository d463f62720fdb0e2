"""GPU twins of :mod:`napari_openhcs.functions.stitching`: tile positions and assembly.

:func:`compute_tile_positions` measures every neighbour pair with the array-generic
registration of :mod:`._registration` (FFTs and NCC batches on the tiles' device)
and solves for the positions on the host with the CPU module's solvers (a few
dozen numbers). :func:`assemble_tiles` blends the tiles on their device.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np

from .._assembly import assemble
from .._xp import get_modules
from ..registry import register
from ..stitching import _origins, _tile_positions
from ._registration import register_pair


@register(name="compute_tile_positions", category="Stitching", memory_type="cupy",
          special_outputs=("positions", "stitch_pairs"),
          keywords=("phase correlation", "registration", "mosaic", "tile", "montage"))
def compute_tile_positions(
    stack: Any,
    *,
    site_positions: np.ndarray | None = None,
    grid_dimensions: tuple[int, int] | None = None,
    overlap: Annotated[float, {"min": 0.0, "max": 0.9, "step": 0.01}] = 0.1,
    max_shift_px: Annotated[float, {"min": 0.0, "max": 2000.0, "step": 1.0}] = 50.0,
    min_quality: Annotated[float, {"min": -1.0, "max": 1.0, "step": 0.05}] = 0.3,
    min_contrast: Annotated[float, {"min": 0.0, "max": 1.0, "step": 0.005}] = 0.01,
    method: Literal["least_squares", "spanning_tree"] = "least_squares",
    max_residual_px: Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.5}] = 3.0,
) -> tuple[Any, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Compute tile positions by phase correlation of neighbouring tiles (GPU twin).

    See :func:`napari_openhcs.functions.stitching.compute_tile_positions` for the
    method and every parameter; the tables are host NumPy arrays.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        One tile per site, in the order of ``site_positions``.
    site_positions : ndarray, shape (N, 2), optional
        Stage positions (y, x) in pixels, image-y down (filled in by the engine).
    grid_dimensions : (int, int), optional
        Site grid (rows, columns), used with ``overlap`` without stage positions.
    overlap : float
        Nominal overlap fraction for the grid layout.
    max_shift_px : float
        Largest accepted deviation from the stage displacement per axis (px).
    min_quality : float
        Smallest accepted NCC of a pair's overlap.
    min_contrast : float
        Smallest ratio of an overlap's standard deviation to its mean intensity.
    method : {"least_squares", "spanning_tree"}
        Global solve.
    max_residual_px : float
        Least squares only: measured pairs disagreeing by more than this are dropped.

    Returns
    -------
    stack : ndarray
        The input stack, unchanged.
    positions : dict of str to ndarray
        Columns ``tile``, ``y``, ``x``.
    stitch_pairs : dict of str to ndarray
        One row per neighbour pair (see the CPU function).
    """
    xp, _ = get_modules(stack)
    return _tile_positions(xp.asarray(stack), register_pair, site_positions=site_positions,
                           grid_dimensions=grid_dimensions, overlap=overlap, max_shift_px=max_shift_px,
                           min_quality=min_quality, min_contrast=min_contrast, method=method,
                           max_residual_px=max_residual_px)


@register(name="assemble_tiles", category="Stitching", memory_type="cupy", special_inputs=("positions",),
          keywords=("mosaic", "fuse", "blend"))
def assemble_tiles(
    stack: Any,
    *,
    positions: dict[str, np.ndarray] | np.ndarray,
    blend: Literal["linear", "none"] = "linear",
) -> Any:
    """Assemble tiles into one image at the given positions (GPU twin).

    See :func:`napari_openhcs.functions.stitching.assemble_tiles`.

    Parameters
    ----------
    stack : ndarray, shape (N, Y, X)
        The tiles, in the order of the positions table's ``tile`` column.
    positions : dict of str to ndarray or ndarray
        The ``positions`` table (columns ``tile``, ``y``, ``x``) or an ``(N, 2)`` array.
    blend : {"linear", "none"}
        How overlaps are combined.

    Returns
    -------
    ndarray, shape (1, H, W)
        The assembled image, in the input dtype; uncovered pixels are 0.
    """
    xp, _ = get_modules(stack)
    stack = xp.asarray(stack)
    if stack.ndim != 3:
        raise ValueError(f"assemble_tiles needs a (N, Y, X) stack of tiles, got {stack.shape}")
    origins = _origins(positions, stack.shape[0])
    origins = np.rint(origins - origins.min(axis=0)).astype(np.intp)
    return assemble(stack, origins, blend=blend)[None]
