"""Per-plate facts of an ImageXpress plate: headers read in parallel, stage positions, site
grid, image size checks and the images missing from a well."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ._handler_utils import raster_order
from ._metaseries import ImageHeader, read_header
from .describe import compact_numbers
from .detect import PlateFormatError
from .plate import ImageRecord

logger = logging.getLogger(__name__)

#: Threads reading TIFF headers (I/O bound; helps most on network shares).
HEADER_THREADS = 16


class HeaderCache:
    """Reads and caches the headers of image files (relative paths under ``root``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cache: dict[str, ImageHeader] = {}
        self._lock = threading.Lock()

    def __call__(self, rel: str) -> ImageHeader:
        """Return the header of ``rel``; raises :class:`PlateFormatError` naming the file."""
        with self._lock:
            cached = self._cache.get(rel)
        if cached is not None:
            return cached
        header = read_header(self.root / rel)
        with self._lock:
            self._cache[rel] = header
        return header

    def read_many(self, rels: list[str]) -> dict[str, ImageHeader | PlateFormatError]:
        """Read many headers in parallel; a failure is returned in place of its header."""

        def one(rel: str) -> ImageHeader | PlateFormatError:
            try:
                return self(rel)
            except PlateFormatError as exc:
                return exc

        if len(rels) < 32:
            return {rel: one(rel) for rel in rels}
        with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
            return dict(zip(rels, pool.map(one, rels)))

    def cached(self) -> dict[str, ImageHeader]:
        """Every header read so far."""
        with self._lock:
            return dict(self._cache)


def odd_sized_images(
    headers: dict[str, ImageHeader], channel_of: dict[str, int], well_of: dict[str, str]
) -> tuple[dict[str, ImageHeader], list[tuple[str, str]]]:
    """Set aside images whose size or pixel type disagrees with most images of their channel.

    One damaged or foreign file must cost its well, not the plate: when one ``(size,
    dtype)`` holds a strict majority of a channel's headers, the other images of that
    channel that belong to a well become ``(well, message)`` entries (the well fails
    with the message) and are left out of the returned headers. Without a strict
    majority nothing is set aside, and :func:`check_image_sizes` refuses the plate.
    """
    by_channel: dict[int, list[str]] = defaultdict(list)
    for rel in headers:
        by_channel[channel_of.get(rel, 0)].append(rel)
    kept = dict(headers)
    odd: list[tuple[str, str]] = []
    for ch, rels in by_channel.items():
        counts: dict[tuple[tuple[int, int], str], int] = defaultdict(int)
        for rel in rels:
            counts[(headers[rel].shape, headers[rel].dtype)] += 1
        (usual, n), *_ = sorted(counts.items(), key=lambda kv: -kv[1])
        if len(counts) == 1 or 2 * n <= len(rels):
            continue
        for rel in rels:
            h = headers[rel]
            if (h.shape, h.dtype) != usual and rel in well_of:
                del kept[rel]
                odd.append((well_of[rel], f"{h.path} is {_size(h)} but the other images of channel w{ch} "
                                          f"are {usual[0][1]} x {usual[0][0]} px {usual[1]}; the file is "
                                          "damaged or from another acquisition"))
    return kept, odd


def check_image_sizes(
    headers: dict[str, ImageHeader], channel_of: dict[str, int]
) -> tuple[tuple[int, int], str]:
    """Return the plate's ``(shape, dtype)`` after checking every header read agrees.

    Raises
    ------
    PlateFormatError
        If images of one channel, or of two channels, differ in size or pixel type; the
        message names one file of each kind.
    """
    first: dict[int, tuple[str, ImageHeader]] = {}
    for rel in sorted(headers, key=lambda r: (channel_of.get(r, 0), r)):
        h, ch = headers[rel], channel_of.get(rel, 0)
        ref_rel, ref = first.setdefault(ch, (rel, h))
        if (h.shape, h.dtype) != (ref.shape, ref.dtype):
            raise PlateFormatError(
                f"images of channel w{ch} differ in size: {ref_rel} is {_size(ref)} but {rel} is "
                f"{_size(h)}; every image of a channel must have the same size"
            )
    refs = [first[c] for c in sorted(first)]
    for rel, h in refs[1:]:
        ref_rel, ref = refs[0]
        if (h.shape, h.dtype) != (ref.shape, ref.dtype):
            raise PlateFormatError(
                f"channels differ in image size: {ref_rel} is {_size(ref)} but {rel} is {_size(h)}; "
                "the plate's channels must share one image size"
            )
    rel, h = refs[0]
    return h.shape, h.dtype


def _size(h: ImageHeader) -> str:
    return f"{h.shape[1]} x {h.shape[0]} px {h.dtype}"


def stage_position(h: ImageHeader) -> tuple[float, float] | None:
    """``(y_um, x_um)`` of an image with image-y down (stage y grows with ``SiteY``)."""
    x = h.number("stage-position-x")
    y = h.number("stage-position-y")
    if x is None or y is None:
        x, y = h.number("ImageXpress Micro X"), h.number("ImageXpress Micro Y")
    if x is None or y is None:
        return None
    return 0.0 + y, 0.0 + x


def site_grid(
    headers: dict[tuple[str, int], ImageHeader],
    positions: dict[tuple[str, int], tuple[float, float]],
    n_sites: int,
    declared: tuple[int, int] | None,
    tol_um: float,
) -> tuple[int, int] | None:
    """Return the ``(rows, columns)`` of the site grid.

    The HTD's ``YSites x XSites`` when it matches the sites present, else the per-image
    ``SiteY``/``SiteX`` when they fill a grid, else the stage positions of the first well.
    """
    if declared and declared[0] * declared[1] == n_sites:
        return declared
    cells: set[tuple[int, int]] = set()
    for h in headers.values():
        sx, sy = h.number("SiteX"), h.number("SiteY")
        if sx is None or sy is None:
            cells = set()
            break
        cells.add((int(sy), int(sx)))
    if cells:
        rows, cols = max(c[0] for c in cells), max(c[1] for c in cells)
        if rows * cols == n_sites and len(cells) == n_sites:
            return rows, cols
    by_well: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for (well, site), pos in positions.items():
        by_well[well][site] = pos
    for well in sorted(by_well):
        if len(by_well[well]) == n_sites:
            return raster_order(by_well[well], tol_um)[1]
    return None


def missing_images(records: Iterable[ImageRecord], channel_names: dict[int, str]) -> list[tuple[str, str]]:
    """List, per well, the images other wells have and it lacks.

    Returns
    -------
    list
        ``(well, message)``, one message per site and channel, sorted.
    """
    have: dict[str, set[tuple[int, int, int, int]]] = defaultdict(set)
    for r in records:
        have[r.well].add((r.site, r.channel, r.z, r.t))
    expected = set().union(*have.values()) if have else set()
    out = []
    for well in sorted(have):
        absent = expected - have[well]
        by_sc: dict[tuple[int, int], list[tuple[int, int]]] = defaultdict(list)
        for s, c, z, t in absent:
            by_sc[(s, c)].append((z, t))
        for (s, c), zt in sorted(by_sc.items()):
            zs = compact_numbers(z for z, _ in zt)
            ts = compact_numbers(t for _, t in zt)
            name = channel_names.get(c, f"w{c}")
            n = len(zt)
            out.append((well, f"site {s}, channel {c} ({name}): {n} image{'s' if n > 1 else ''} "
                              f"missing (z {zs}; timepoint {ts}) that other wells have"))
    return out
