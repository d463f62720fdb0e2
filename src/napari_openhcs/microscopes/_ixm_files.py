"""Finding and listing ImageXpress / MetaXpress image files.

Two layouts share one file-name grammar:

- export: ``<acq>/[TimePoint_t/][ZStep_z/]<Plate>_<Well>[_s<site>][_w<wave>].TIF`` plus an HTD;
- native storage: ``<Plate>/<date>/<acq>/[TimePoint_t/][ZStep_z/]``
  ``<Plate>_<Well>[_s<site>][_w<wave>]<GUID>.tif``, where the GUID follows the one-digit
  wave (or the site, or the well) with no separator and ``_thumb`` thumbnails sit beside
  every image.

Files are listed with :func:`os.scandir` only (no per-file ``stat``), so a 1536-well plate of
500 000 files lists in seconds. Each image is keyed ``(well, site, wave, t)`` with a *slot*:
0 for a file directly in the acquisition/TimePoint folder or in ``ZStep_0``, ``z`` for ``ZStep_z``.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from .detect import PlateFormatError
from .io_readers import ImageReadError, resolve_inside

logger = logging.getLogger(__name__)

#: Rows A-Z, then AA-AF (1536-well plates); 2-digit columns.
_WELL = r"(?P<well>(?:A[A-F]|[A-Z])\d{2})"
_GUID = r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}"
_TIF = r"\.[tT][iI][fF][fF]?"

#: Native MetaXpress name: the GUID follows the one-digit wave, the site or the well.
GUID_NAME_RE = re.compile(
    rf"^(?P<plate>.+)_{_WELL}(?:_s(?P<site>\d+))?(?:_w(?P<wave>[1-9]))?"
    rf"(?P<thumb>_thumb)?(?P<guid>{_GUID}){_TIF}$"
)
#: Export name: no GUID, ``_s``/``_w`` optional. The plate prefix is optional too: OpenHCS's
#: synthetic plates name images ``A01_s001_w1.tif`` (no plate name, zero-padded site).
PLAIN_NAME_RE = re.compile(
    rf"^(?:(?P<plate>.+)_)?{_WELL}(?:_s(?P<site>\d+))?(?:_w(?P<wave>\d+))?(?P<thumb>_thumb)?{_TIF}$"
)
TIMEPOINT_RE = re.compile(r"^TimePoint_(\d+)$", re.IGNORECASE)
ZSTEP_RE = re.compile(r"^ZStep_(\d+)$", re.IGNORECASE)

#: Largest column number of a well (1536-well plates have 48).
MAX_COLUMN = 48

#: ``(well, site, wave, timepoint)``.
GroupKey = tuple[str, int, int, int]


class ParsedName(NamedTuple):
    """The parts of an ImageXpress image file name."""

    plate: str
    well: str
    site: int
    wave: int
    thumbnail: bool
    guid: str | None


def parse_image_name(name: str) -> ParsedName | None:
    """Parse an ImageXpress file name; ``None`` when it is not one.

    The plate name may contain ``_`` and ``-``: the well is the *last* ``_<Well>`` that
    lets the rest of the name match. A missing ``_s``/``_w`` means site 1 / wave 1. A name
    without plate prefix (``A01_s001_w1.tif``) has plate ``""``; site and wave numbers may
    be zero-padded.
    """
    m = GUID_NAME_RE.match(name) or PLAIN_NAME_RE.match(name)
    if m is None:
        return None
    plate, well, site, wave, thumb = m.group("plate", "well", "site", "wave", "thumb")
    site_n = int(site) if site else 1
    wave_n = int(wave) if wave else 1
    if site_n < 1 or wave_n < 1 or not 1 <= int(well[-2:]) <= MAX_COLUMN:
        return None
    # the well pattern only admits canonical names (upper-case row, 2-digit column)
    return ParsedName(plate or "", well, site_n, wave_n, bool(thumb), m.groupdict().get("guid"))


@dataclass
class FileIndex:
    """The image files of one acquisition folder.

    Attributes
    ----------
    root
        The acquisition folder (export: the folder with the HTD).
    groups
        ``{(well, site, wave, t): {slot: relative path}}``.
    has_zsteps
        Whether any ``ZStep_<z>`` folder holds images.
    plates
        How many images carry each plate name.
    guid_names
        Whether the names carry GUIDs (native storage).
    thumbnails, ignored
        Thumbnails skipped; other files skipped (with the reason).
    """

    root: Path
    groups: dict[GroupKey, dict[int, str]] = field(default_factory=dict)
    has_zsteps: bool = False
    plates: Counter[str] = field(default_factory=Counter)
    guid_names: bool = False
    thumbnails: int = 0
    ignored: list[str] = field(default_factory=list)

    @property
    def n_files(self) -> int:
        """Number of image files indexed."""
        return sum(len(slots) for slots in self.groups.values())


def _entries(folder: Path, root: Path) -> list[os.DirEntry[str]]:
    """List ``folder``, refusing symbolic links that lead outside ``root``."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise PlateFormatError(f"cannot list {folder}: {exc}") from exc
    for e in entries:
        if e.is_symlink():
            try:
                resolve_inside(root, os.path.relpath(e.path, root))
            except ImageReadError:
                raise PlateFormatError(
                    f"{e.path} is a link that leads outside the plate folder {root}; "
                    "refusing to read it"
                ) from None
    return entries


def _add_files(index: FileIndex, entries: list[os.DirEntry[str]], prefix: str, t: int, slot: int) -> None:
    for e in entries:
        if not e.is_file():
            continue
        parsed = parse_image_name(e.name)
        if parsed is None:
            if not e.name.lower().endswith(".htd"):
                index.ignored.append(f"{prefix}{e.name}: not an image name")
            continue
        if parsed.thumbnail:
            index.thumbnails += 1
            continue
        index.guid_names |= parsed.guid is not None
        index.plates[parsed.plate] += 1
        slots = index.groups.setdefault((parsed.well, parsed.site, parsed.wave, t), {})
        rel = f"{prefix}{e.name}"
        if slot in slots:
            logger.warning("%s and %s are the same image (well %s, site %d, w%d); using the first",
                           slots[slot], rel, parsed.well, parsed.site, parsed.wave)
            index.ignored.append(f"{rel}: second file for the image {slots[slot]}")
            continue
        slots[slot] = rel


def _scan_level(index: FileIndex, folder: Path, prefix: str, t: int) -> None:
    """Index the images of a TimePoint (or acquisition) folder and its ZStep folders."""
    entries = _entries(folder, index.root)
    _add_files(index, entries, prefix, t, 0)
    for e in entries:
        m = ZSTEP_RE.match(e.name)
        if m and e.is_dir():
            before = index.n_files
            _add_files(index, _entries(Path(e.path), index.root), f"{prefix}{e.name}/", t, int(m.group(1)))
            index.has_zsteps |= int(m.group(1)) > 0 and index.n_files > before


def scan_acquisition(root: Path) -> FileIndex:
    """List the image files of an acquisition folder.

    Parameters
    ----------
    root : Path
        The acquisition folder: the one holding ``TimePoint_<t>``/``ZStep_<z>`` folders or the
        images themselves.

    Returns
    -------
    FileIndex

    Raises
    ------
    PlateFormatError
        If a folder cannot be listed or a link leads outside ``root``.
    """
    index = FileIndex(root=Path(root))
    entries = _entries(index.root, index.root)
    timepoints = [(int(m.group(1)), e) for e in entries
                  if (m := TIMEPOINT_RE.match(e.name)) and e.is_dir()]
    if not timepoints:
        _scan_level(index, index.root, "", 1)
        return index
    for t, e in sorted(timepoints, key=lambda p: p[0]):
        if t < 1:
            index.ignored.append(f"{e.name}/: timepoints are numbered from 1")
            continue
        _scan_level(index, Path(e.path), f"{e.name}/", t)
    loose = [e.name for e in entries if e.is_file() and parse_image_name(e.name)]
    if loose:
        logger.warning("%s: %d images beside the TimePoint folders ignored (e.g. %s)",
                       root, len(loose), loose[0])
        index.ignored.extend(f"{n}: beside the TimePoint folders" for n in loose)
    return index


def _holds_images(folder: str, depth: int) -> bool:
    """Return True if ``folder`` (or its TimePoint/ZStep sub-folders) holds an image file."""
    try:
        with os.scandir(folder) as it:
            subdirs = []
            for e in it:
                if e.name.lower().endswith(".htd") and depth == 0 and e.is_file():
                    return True
                if e.is_file():
                    parsed = parse_image_name(e.name)
                    if parsed is not None and not parsed.thumbnail:
                        return True
                elif (TIMEPOINT_RE.match(e.name) or ZSTEP_RE.match(e.name)) and e.is_dir():
                    subdirs.append(e.path)
    except OSError:
        return False
    return depth < 2 and any(_holds_images(d, depth + 1) for d in sorted(subdirs))


def is_acquisition_dir(folder: Path) -> bool:
    """Return True if ``folder`` is an ImageXpress acquisition (HTD, images or TimePoint/ZStep folders)."""
    if TIMEPOINT_RE.match(folder.name) or ZSTEP_RE.match(folder.name):
        return False  # a part of an acquisition; its parent is the acquisition
    return _holds_images(str(folder), 0)


def find_htd(folder: Path, plate: str | None) -> Path | None:
    """Return the HTD in ``folder`` (the one named after ``plate`` when there are several)."""
    try:
        with os.scandir(folder) as it:
            htds = sorted(Path(e.path) for e in it if e.is_file() and e.name.lower().endswith(".htd"))
    except OSError:
        return None
    if not htds:
        return None
    for p in htds:
        if plate is not None and p.stem == plate:
            return p
    return htds[0]


def group_by_channel_time(groups: dict[GroupKey, dict[int, str]]) -> dict[tuple[int, int], list[GroupKey]]:
    """Return ``{(wave, t): [group keys]}`` with the keys sorted."""
    out: dict[tuple[int, int], list[GroupKey]] = defaultdict(list)
    for key in sorted(groups):
        out[(key[2], key[3])].append(key)
    return out
