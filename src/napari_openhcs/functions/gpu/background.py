"""GPU twin of the white top-hat background subtraction (:func:`~napari_openhcs.functions.background.tophat`).

The opening uses scikit-image's decomposition of the disk into a sequence of small
footprints (``disk(r, decomposition="sequence")``), applied with ``grey_erosion``
and ``grey_dilation`` of ``xp``'s ndimage exactly as :func:`skimage.morphology.opening`
applies them, so the CPU path of this code reproduces the CPU function. The shrink
(block mean) and the bilinear upsampling are those of the CPU module.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from .._xp import as_stack, get_modules, restore_dtype
from ..background import Downsample, Output, Radius, shrink_factor
from ..registry import register


def _disk_sequence(radius: float) -> list[tuple[np.ndarray, int]]:
    """Return the ``(footprint, iterations)`` sequence skimage uses for a disk of ``radius``."""
    from skimage.morphology import disk, pad_footprint

    r = max(1, int(round(radius)))
    seq = pad_footprint(disk(r, decomposition="sequence"), pad_end=False)
    if isinstance(seq, np.ndarray):
        return [(seq.astype(bool), 1)]
    return [(np.asarray(fp, dtype=bool), int(n)) for fp, n in seq]


def _opening(xp: ModuleType, ndi: ModuleType, image: Any, radius: float) -> Any:
    """Grey opening by a disk: erosion then dilation, each as a footprint sequence (mode reflect)."""
    sequence = [(xp.asarray(fp), n) for fp, n in _disk_sequence(radius)]
    out = image
    for fp, n in sequence:
        for _ in range(n):
            out = ndi.grey_erosion(out, footprint=fp, mode="reflect")
    # skimage's opening mirrors the footprint and its dilation mirrors it back
    for fp, n in sequence:
        for _ in range(n):
            out = ndi.grey_dilation(out, footprint=fp, mode="reflect")
    return out


def _block_mean(xp: ModuleType, image: Any, factor: int) -> Any:
    y, x = image.shape
    py, px = (-y) % factor, (-x) % factor
    padded = xp.pad(image, ((0, py), (0, px)), mode="edge") if py or px else image
    ny, nx = padded.shape[0] // factor, padded.shape[1] // factor
    return padded.reshape(ny, factor, nx, factor).mean(axis=(1, 3))


def _background(xp: ModuleType, ndi: ModuleType, image: Any, radius: float, factor: int) -> Any:
    if factor <= 1:
        return _opening(xp, ndi, image, radius)
    small = _block_mean(xp, image, factor)
    big = ndi.zoom(_opening(xp, ndi, small, radius / factor), factor, order=1, mode="nearest",
                   grid_mode=True)
    return big[: image.shape[0], : image.shape[1]]


@register(name="tophat", category="Background", memory_type="cupy",
          keywords=("background", "tophat", "top-hat", "subtract", "opening"))
def tophat(stack: Any, *, radius: Radius = 50.0, downsample: Downsample = 0,
           output: Output = "subtracted") -> Any:
    """Subtract the background with a white top-hat (image minus its opening by a disk) (GPU twin).

    See :func:`napari_openhcs.functions.background.tophat`.

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    radius : float
        Disk radius in pixels; larger than the largest object to keep.
    downsample : int
        Block size for shrinking before the opening; 0 chooses it from the radius.
    output : {"subtracted", "background"}
        Return the background-subtracted image, or the background itself.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` stack of the input dtype.
    """
    if output not in ("subtracted", "background"):
        raise ValueError(f"output must be 'subtracted' or 'background', not {output!r}")
    xp, ndi = get_modules(stack)
    arr = as_stack(xp, stack)
    factor = shrink_factor(radius, downsample)
    planes = []
    for plane in arr:
        img = plane.astype(np.float32)
        bg = xp.minimum(_background(xp, ndi, img, radius, factor), img)
        planes.append(bg if output == "background" else img - bg)
    return restore_dtype(xp, xp.stack(planes), arr.dtype)
