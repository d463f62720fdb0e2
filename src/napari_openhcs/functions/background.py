"""Background subtraction: white top-hat and rolling ball, with shrinking for large radii.

Both estimate a smooth background under objects smaller than ``radius`` and subtract
it. A morphological opening or rolling ball with a large radius is slow on a full
camera image (cost grows with the square of the radius), so, like ImageJ's *Subtract
Background*, the image is first shrunk by block averaging (``downsample`` x
``downsample`` blocks), the background is computed on the small image with the radius
divided by the same factor, and it is brought back to full size by bilinear
interpolation. This is an approximation: the background is smooth at the scale of one
block, so a background feature narrower than a block is not followed exactly; for
cell-sized objects and radii of tens of pixels it is indistinguishable in practice.
Block averaging also averages out camera noise, so the shrunk background sits
closer to the true background than the full-resolution one, which follows the noise
minima (leaving the subtracted image a few noise standard deviations above 0).
``downsample=1`` computes the exact operation at full resolution.

Dtype rule: the subtracted image (or the background) keeps the input dtype; negative
values are clipped to 0 (a pixel darker than the background becomes 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

import numpy as np

from ._lazy import LazyModule
from ._slicewise import as_stack, map_slices, restore_dtype
from .registry import register

ndi = LazyModule("scipy.ndimage")

Radius = Annotated[float, {"min": 1.0, "max": 1000.0, "step": 1.0, "above": 0.0}]
Downsample = Annotated[int, {"min": 0, "max": 64, "limits": (0, None)}]
Output = Literal["subtracted", "background"]


def shrink_factor(radius: float, downsample: int) -> int:
    """Return the block size used for ``radius``: ``downsample``, or automatic when it is 0.

    The automatic factor keeps the radius on the shrunk image at 10 pixels or more.

    Examples
    --------
    >>> shrink_factor(50, 0), shrink_factor(8, 0), shrink_factor(50, 2)
    (5, 1, 2)
    """
    if downsample < 0:
        raise ValueError(f"downsample must be 0 (automatic) or a positive factor, got {downsample}")
    if downsample:
        return int(downsample)
    return max(1, int(radius // 10))


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks (edges padded by repetition).

    Examples
    --------
    >>> import numpy as np
    >>> block_mean(np.arange(16.0).reshape(4, 4), 2)
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    y, x = image.shape
    py, px = (-y) % factor, (-x) % factor
    padded = np.pad(image, ((0, py), (0, px)), mode="edge") if py or px else image
    ny, nx = padded.shape[0] // factor, padded.shape[1] // factor
    return padded.reshape(ny, factor, nx, factor).mean(axis=(1, 3))


def _upsample(small: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a block-mean image back to ``shape``."""
    big = ndi.zoom(small, factor, order=1, mode="nearest", grid_mode=True)
    return big[: shape[0], : shape[1]]


def shrunk_background(
    image: np.ndarray, radius: float, factor: int, estimate: Callable[[np.ndarray, float], np.ndarray]
) -> np.ndarray:
    """Estimate a background with ``estimate(image, radius)`` on a shrunk copy of ``image``.

    Parameters
    ----------
    image : ndarray
        2-D float image.
    radius : float
        Radius at full resolution.
    factor : int
        Block size (1: full resolution, no approximation).
    estimate : callable
        ``estimate(image, radius) -> background`` of the same shape.

    Returns
    -------
    ndarray
        Float background of ``image``'s shape.
    """
    if factor <= 1:
        return estimate(image, radius)
    small = block_mean(image, factor)
    return _upsample(estimate(small, radius / factor), factor, image.shape)


def _opening(image: np.ndarray, radius: float) -> np.ndarray:
    from skimage.morphology import disk, opening

    r = max(1, int(round(radius)))
    return opening(image, disk(r, decomposition="sequence"))


def _rolling_ball(image: np.ndarray, radius: float) -> np.ndarray:
    from skimage.restoration import rolling_ball as sk_rolling_ball

    return sk_rolling_ball(image, radius=radius)


def _subtract(stack: np.ndarray, radius: float, downsample: int, output: Output,
              estimate: Callable[[np.ndarray, float], np.ndarray], scale_intensity: bool) -> np.ndarray:
    if output not in ("subtracted", "background"):
        raise ValueError(f"output must be 'subtracted' or 'background', not {output!r}")
    arr = as_stack(stack)
    factor = shrink_factor(radius, downsample)

    def one(plane: np.ndarray) -> np.ndarray:
        img = plane.astype(np.float32)
        if scale_intensity and factor > 1:
            # a ball shrinks in all three axes: scale intensities with x and y
            bg = shrunk_background(img / factor, radius, factor, estimate) * factor
        else:
            bg = shrunk_background(img, radius, factor, estimate)
        bg = np.minimum(bg, img)
        return bg if output == "background" else img - bg

    return restore_dtype(map_slices(one, arr), arr.dtype)


@register(category="Background", keywords=("background", "tophat", "top-hat", "subtract", "opening"))
def tophat(
    stack: np.ndarray, *, radius: Radius = 50.0, downsample: Downsample = 0, output: Output = "subtracted"
) -> np.ndarray:
    """Subtract the background with a white top-hat (image minus its opening by a disk).

    Objects smaller than the disk are kept; everything broader (uneven illumination,
    out-of-focus haze) is removed. Large radii are computed on a shrunk image (see
    the module notes on the approximation).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    radius : float
        Disk radius in pixels; larger than the largest object to keep.
    downsample : int
        Block size for shrinking before the opening; 0 chooses it from the radius
        (radius / 10), 1 computes the exact top-hat at full resolution.
    output : {"subtracted", "background"}
        Return the background-subtracted image, or the background itself.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` stack of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:128, :128]
    >>> ramp = 500 + 5 * xx                                    # uneven background
    >>> spot = 1000 * ((yy - 64) ** 2 + (xx - 64) ** 2 < 25)   # a small object
    >>> stack = (ramp + spot)[np.newaxis].astype(np.uint16)
    >>> out = tophat(stack, radius=15)
    >>> out.dtype, int(out[0, 64, 64]) > 900, int(out[0, 10, 100]) < 30
    (dtype('uint16'), True, True)
    """
    return _subtract(stack, radius, downsample, output, _opening, scale_intensity=False)


@register(category="Background", keywords=("background", "rolling ball", "subtract", "imagej"))
def rolling_ball(
    stack: np.ndarray, *, radius: Radius = 50.0, downsample: Downsample = 0, output: Output = "subtracted"
) -> np.ndarray:
    """Subtract the background found by rolling a ball of ``radius`` under the intensity surface.

    Uses :func:`skimage.restoration.rolling_ball`. Large radii are computed on a
    shrunk image, the ball scaled in x, y and intensity alike (see the module notes).

    Parameters
    ----------
    stack : ndarray
        ``(N, Y, X)`` stack.
    radius : float
        Ball radius in pixels (and intensity units); larger than the largest object.
    downsample : int
        Block size for shrinking before rolling; 0 chooses it from the radius
        (radius / 10), 1 computes the exact rolling ball at full resolution.
    output : {"subtracted", "background"}
        Return the background-subtracted image, or the background itself.

    Returns
    -------
    ndarray
        ``(N, Y, X)`` stack of the input dtype.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:96, :96]
    >>> background = 400 + 0.5 * yy
    >>> spot = 800 * ((yy - 48) ** 2 + (xx - 48) ** 2 < 16)
    >>> stack = (background + spot)[np.newaxis].astype(np.uint16)
    >>> out = rolling_ball(stack, radius=20)
    >>> int(out[0, 48, 48]) > 700, int(out[0, 80, 10]) < 10
    (True, True)
    """
    return _subtract(stack, radius, downsample, output, _rolling_ball, scale_intensity=True)
