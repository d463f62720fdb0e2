"""Helpers shared by the format handlers: locating the plate folder, units, sanity
limits, and ordering fields into a raster site grid."""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .detect import PlateFormatError

logger = logging.getLogger(__name__)

#: Largest image side (pixels) we accept from metadata; anything larger is refused.
MAX_IMAGE_SIDE = 100_000

#: How many sub-folders are inspected per level when looking for a plate below ``root``.
_MAX_DIRS_PER_LEVEL = 256

_UNIT_TO_UM: dict[str, float] = {
    "m": 1e6,
    "meter": 1e6,
    "metre": 1e6,
    "cm": 1e4,
    "centimeter": 1e4,
    "mm": 1e3,
    "millimeter": 1e3,
    "um": 1.0,
    "µm": 1.0,
    "μm": 1.0,
    "micrometer": 1.0,
    "micron": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "angstrom": 1e-4,
    "pm": 1e-6,
    "picometer": 1e-6,
}


def unit_factor_um(unit: str | None, default: float = 1.0) -> float | None:
    """Return the factor converting a length in ``unit`` to µm.

    ``None``/empty units give ``default``; unknown units give ``None``.
    """
    if not unit:
        return default
    return _UNIT_TO_UM.get(unit.strip().lower())


def check_image_size(shape: Iterable[int], source: Path | str) -> tuple[int, int]:
    """Return ``(y, x)`` after checking the declared image size is sane.

    Raises
    ------
    PlateFormatError
        If a side is not a positive integer up to :data:`MAX_IMAGE_SIDE` pixels, or
        the image has more than ``io_readers.MAX_IMAGE_PIXELS`` pixels.
    """
    from .io_readers import MAX_IMAGE_PIXELS

    y, x = (int(v) for v in shape)
    for side in (y, x):
        if side <= 0 or side > MAX_IMAGE_SIDE:
            raise PlateFormatError(
                f"{source}: declared image size {x} x {y} px is not plausible "
                f"(each side must be 1..{MAX_IMAGE_SIDE}); the metadata is corrupt"
            )
    if y * x > MAX_IMAGE_PIXELS:
        raise PlateFormatError(
            f"{source}: declared image size {x} x {y} px is not plausible (more than "
            f"{MAX_IMAGE_PIXELS} pixels in one image); the metadata is corrupt"
        )
    return y, x


def relative_inside(root: Path, name: str, source: Path | str) -> str:
    """Return ``name`` as a POSIX path relative to ``root``, refusing paths that escape it.

    Plain file names take a fast path (no file-system calls); anything with a separator
    is resolved against ``root``.

    Raises
    ------
    PlateFormatError
        If ``name`` is empty or would lead outside ``root``.
    """
    from .io_readers import ImageReadError, resolve_inside

    if name and "/" not in name and "\\" not in name and name not in (".", ".."):
        return name
    try:
        target = resolve_inside(root, name.replace("\\", "/"))
    except ImageReadError as exc:
        raise PlateFormatError(f"{source}: image path {exc}") from None
    rel = target.relative_to(Path(root).resolve()).as_posix()
    if rel == ".":
        raise PlateFormatError(f"{source}: image path {name!r} names the plate folder itself")
    return rel


def tiff_header(path: Path) -> tuple[tuple[int, int], str]:
    """Return ``((y, x), dtype)`` of a single-image TIFF from its header only.

    Raises
    ------
    PlateFormatError
        If the file cannot be read as a 2-D TIFF.
    """
    import numpy as np
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            shape = tuple(int(s) for s in page.shape)
            dtype = str(np.dtype(page.dtype))
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise PlateFormatError(f"cannot read TIFF header of {path}: {exc}") from exc
    if len(shape) > 2:
        shape = tuple(s for s in shape if s != 1)
    if len(shape) != 2:
        raise PlateFormatError(f"{path}: expected a 2-D image, found shape {shape}")
    return check_image_size(shape, path), dtype


def find_below(root: Path, is_plate: Callable[[Path], bool], max_depth: int = 2) -> list[Path]:
    """Return the folders at ``root`` or up to ``max_depth`` levels below it that hold a plate.

    Stops at the first level where any plate folder is found; folders that are
    themselves plates are not descended into. Hidden folders are skipped.
    """
    level = [root]
    for depth in range(max_depth + 1):
        found = [d for d in level if is_plate(d)]
        if found or depth == max_depth:
            return sorted(found)
        nxt: list[Path] = []
        for d in level:
            try:
                with os.scandir(d) as it:
                    subs = sorted(
                        Path(e.path)
                        for e in it
                        if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)
                    )
            except OSError:
                continue
            nxt.extend(subs[:_MAX_DIRS_PER_LEVEL])
        level = nxt
    return []


def single_plate_dir(
    root: Path, is_plate: Callable[[Path], bool], what: str, max_depth: int = 2
) -> Path:
    """Return the one plate folder at or below ``root`` (see :func:`find_below`).

    Raises
    ------
    PlateFormatError
        If there is none or more than one (the message lists them).
    """
    found = find_below(Path(root), is_plate, max_depth)
    if not found:
        raise PlateFormatError(f"no {what} found in {root} or its sub-folders")
    if len(found) > 1:
        listing = "\n".join(f"  - {p}" for p in found[:20])
        raise PlateFormatError(
            f"{root} holds {len(found)} plates ({what}); open one of them:\n{listing}"
        )
    return found[0]


def _cluster(values: list[float], tol: float) -> list[float]:
    """Return sorted cluster centres of ``values`` (values within ``tol`` merge)."""
    centres: list[list[float]] = []
    for v in sorted(values):
        if centres and v - centres[-1][-1] <= tol:
            centres[-1].append(v)
        else:
            centres.append([v])
    return [sum(c) / len(c) for c in centres]


def raster_order(
    positions: Mapping[int, tuple[float, float]], tol_um: float = 1.0
) -> tuple[dict[int, int], tuple[int, int] | None]:
    """Order fields into a raster (row by row, top-left first, image-y down).

    Parameters
    ----------
    positions : mapping
        ``{field: (y_um, x_um)}`` with y pointing down in the image.
    tol_um : float
        Positions closer than this along an axis count as the same grid row/column.

    Returns
    -------
    order : dict
        ``{field: site}`` with 1-based sites in raster order.
    grid : tuple or None
        ``(rows, columns)`` from the distinct y and x positions when the fields fill
        that grid exactly (no holes, one field per cell); ``None`` otherwise.
    """
    if not positions:
        return {}, None
    ys = _cluster([p[0] for p in positions.values()], tol_um)
    xs = _cluster([p[1] for p in positions.values()], tol_um)

    def cell(field: int) -> tuple[int, int, int]:
        y, x = positions[field]
        r = min(range(len(ys)), key=lambda i: abs(ys[i] - y))
        c = min(range(len(xs)), key=lambda i: abs(xs[i] - x))
        return r, c, field

    cells = sorted(cell(f) for f in positions)
    order = {f: i + 1 for i, (_, _, f) in enumerate(cells)}
    occupied = {(r, c) for r, c, _ in cells}
    full = len(occupied) == len(cells) == len(ys) * len(xs)
    return order, ((len(ys), len(xs)) if full else None)


def plane_spacing(z_by_plane: Mapping[int, float]) -> float | None:
    """Return the median distance (µm) between consecutive planes, ``None`` for one plane."""
    if len(z_by_plane) < 2:
        return None
    zs = [z_by_plane[k] for k in sorted(z_by_plane)]
    steps = [abs(b - a) for a, b in zip(zs, zs[1:], strict=False)]
    spacing = statistics.median(steps)
    return float(round(spacing, 6)) if spacing > 0 else None


def plate_z_spacing(
    stacks: Iterable[Mapping[int, float]], declared: float | None = None
) -> float | None:
    """Return the plate's z spacing (µm): the declared step, else the median over its stacks.

    One stack's spacing can be off (4.98 µm where every other stack says 5.00); the median
    of every stack's own spacing (see :func:`plane_spacing`) is the plate's. A declared step
    (the acquisition protocol's) wins when it is positive.
    """
    if declared is not None and declared > 0:
        return float(round(declared, 6))
    spacings = [sp for st in stacks if (sp := plane_spacing(st))]
    return float(round(statistics.median(spacings), 6)) if spacings else None
