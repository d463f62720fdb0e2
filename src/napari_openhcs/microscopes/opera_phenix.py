"""PerkinElmer/Revvity Opera Phenix and Operetta CLS (Harmony export) plates.

Layout: ``<measurement>/Images/Index.idx.xml`` (Harmony V5) or ``Images/Index.xml``
(Harmony V7) next to single-plane TIFFs named ``r<RR>c<CC>f<FF>p<PP>-ch<C>sk<T>fk<K>fl<L>.tiff``.

- The files on disk are the truth: images the index lists but the disk lacks go to
  :attr:`Plate.missing`; files the index does not list are still used when their name parses.
- Sites are the fields re-numbered in raster order (top row first, left to right) from
  their stage positions; the original field number is kept in ``metadata``
  (``field_to_site``). Positions are µm relative to the well centre with image-y down
  (``y = -PositionY``: Harmony's stage y points up).
- ``Plate.root`` is the folder holding the index (``Images/``); record paths are file names.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from pathlib import Path

from ._handler_utils import (
    check_image_size,
    find_below,
    plate_z_spacing,
    raster_order,
    relative_inside,
    single_plate_dir,
    tiff_header,
)
from ._harmony_xml import HarmonyIndex, parse_harmony_index
from .detect import PlateFormatError
from .plate import ChannelInfo, ImageRecord, Plate, fit_layout, layout_for_wells, well_name

logger = logging.getLogger(__name__)

NAME = "opera_phenix"
LOOKS_FOR = (
    "Harmony export: Images/Index.idx.xml (V5) or Images/Index.xml (V7) "
    "next to r01c01f01p01-ch1sk1fk1fl1.tiff images"
)

#: Index file names, in order of preference.
INDEX_NAMES: tuple[str, ...] = ("Index.idx.xml", "Index.xml")

FILE_RE = re.compile(
    r"^r(?P<row>\d{2,3})c(?P<col>\d{2,3})f(?P<field>\d+)p(?P<plane>\d+)"
    r"-ch(?P<ch>\d+)sk(?P<t>\d+)fk(?P<fk>\d+)fl(?P<fl>\d+)\.tiff?$",
    re.IGNORECASE,
)

_Key = tuple[str, int, int, int, int]  # well, field, channel, plane, timepoint


def find_index(folder: Path) -> Path | None:
    """Return the Harmony index file in ``folder`` (``None`` if there is none)."""
    for name in INDEX_NAMES:
        candidate = Path(folder) / name
        if candidate.is_file():
            try:
                with open(candidate, "rb") as fh:
                    head = fh.read(4096)
            except OSError:
                continue
            if b"EvaluationInputData" in head or b"E\x00v\x00a\x00l\x00" in head:
                return candidate
    return None


def _is_images_dir(folder: Path) -> bool:
    return find_index(folder) is not None


def detect(root: Path) -> bool:
    """Return True if ``root`` (or ``root/Images``, or one level deeper) is a Harmony export."""
    try:
        return bool(find_below(Path(root), _is_images_dir, max_depth=2))
    except OSError:
        return False


def explain(root: Path) -> str | None:
    """Name an ``Index.idx.xml``/``Index.xml`` below ``root`` that is not a Harmony index.

    Used by :func:`~napari_openhcs.microscopes.detect.detect_microscope` to extend its
    "no known plate layout" error when the index is damaged beyond recognition.
    """

    def has_index_file(folder: Path) -> bool:
        return any((folder / name).is_file() for name in INDEX_NAMES)

    for folder in find_below(Path(root), has_index_file, max_depth=2):
        if find_index(folder) is None:
            names = ", ".join(str(folder / n) for n in INDEX_NAMES if (folder / n).is_file())
            return (f"Harmony: {names} is not a Harmony index (no <EvaluationInputData> at its "
                    "start): the file is damaged or truncated; re-export it from Harmony")
    return None


def parse_file_name(name: str) -> tuple[str, int, int, int, int, int, int] | None:
    """Parse a Harmony image name into ``(well, field, plane, channel, timepoint, fk, fl)``.

    Returns ``None`` when ``name`` is not a Harmony image name.
    """
    m = FILE_RE.match(name)
    if not m:
        return None
    g = {k: int(v) for k, v in m.groupdict().items()}
    if g["row"] < 1 or g["col"] < 1:
        return None
    well = well_name(g["row"] - 1, g["col"])
    return well, g["field"], g["plane"], g["ch"], g["t"], g["fk"], g["fl"]


_Positions = dict[tuple[str, int], tuple[float | None, float | None]]


def _listed(
    index: HarmonyIndex, folder: Path, on_disk: set[str]
) -> tuple[dict[_Key, list[tuple[int, int, str]]], list[tuple[str, str]], _Positions]:
    """Cross-check the index's images with the disk.

    Returns the candidate files per key (sortable by ``(fk, fl)``), the missing images and
    the stage positions ``(x_um, y_um)`` per ``(well, field)``. Listed files found on disk
    are removed from ``on_disk``.
    """
    candidates: dict[_Key, list[tuple[int, int, str]]] = defaultdict(list)
    missing: list[tuple[str, str]] = []
    positions: _Positions = {}
    for img in index.images:
        rel = relative_inside(folder, img.url, index.path)
        parsed = parse_file_name(rel.rsplit("/", 1)[-1])
        if parsed:
            well, fld, plane, ch, t, fk, _ = parsed
        else:
            well, fld, plane, ch, t, fk = (
                well_name(img.row - 1, img.col), img.field, img.plane, img.channel,
                img.timepoint, 1,
            )
        positions.setdefault((well, fld), (img.x_um, img.y_um))
        exists = rel in on_disk if "/" not in rel else (folder / rel).is_file()
        if not exists:
            missing.append((well, f"{rel} is listed in {index.path.name} but not on disk"))
            continue
        on_disk.discard(rel)
        candidates[(well, fld, ch, plane, t)].append((fk, img.flim, rel))
    return candidates, missing, positions


def _channels(index: HarmonyIndex, present: set[int]) -> tuple[ChannelInfo, ...]:
    out = []
    for cid in sorted(present):
        ch = index.channels.get(cid)
        name = (ch.name if ch and ch.name else None) or f"ch{cid}"
        wl = ch.emission_nm if ch and ch.emission_nm else None
        out.append(ChannelInfo(index=cid, name=name, wavelength_nm=wl))
    return tuple(out)


def _sites(
    positions: _Positions, fields: dict[str, set[int]], tol_um: float
) -> tuple[dict[tuple[str, int], int], tuple[int, int] | None, list[tuple[str, int, float, float]]]:
    """Map (well, field) to raster-ordered sites; return the mapping, grid and positions."""
    mapping: dict[tuple[str, int], int] = {}
    grids: set[tuple[int, int] | None] = set()
    site_positions: list[tuple[str, int, float, float]] = []
    for well, flds in sorted(fields.items()):
        yx: dict[int, tuple[float, float]] = {}
        for f in flds:
            x, y = positions.get((well, f), (None, None))
            if x is not None and y is not None:
                yx[f] = (0.0 - y, 0.0 + x)  # image y points down; avoids -0.0
        if len(yx) == len(flds):
            order, grid = raster_order(yx, tol_um)
            grids.add(grid)
            for f, site in order.items():
                mapping[(well, f)] = site
                site_positions.append((well, site, float(yx[f][0]), float(yx[f][1])))
        else:
            logger.info("%s: fields without stage positions; sites keep field numbers", well)
            grids.add(None)
            mapping.update({(well, f): f for f in flds})
    grid = grids.pop() if len(grids) == 1 else None
    return mapping, grid, sorted(site_positions)


def open_plate(root: Path, source: str = "planes") -> Plate:
    """Read a Harmony export (Opera Phenix / Operetta CLS) into a :class:`Plate`.

    Parameters
    ----------
    root : Path
        The measurement folder, its ``Images/`` folder, or a folder holding one measurement.
    source : {"planes"}
        Harmony exports hold planes only; ``"projections"`` is refused.

    Returns
    -------
    Plate

    Raises
    ------
    PlateFormatError
        If no index is found, it is malformed, or no image file is present.
    """
    if source != "planes":
        raise PlateFormatError(
            f"{root}: Harmony exports hold z-planes only (no instrument projections); "
            "use source='planes' and project in the pipeline"
        )
    folder = single_plate_dir(Path(root), _is_images_dir, "Harmony Index.idx.xml / Index.xml")
    index_path = find_index(folder)
    assert index_path is not None
    index = parse_harmony_index(index_path)
    with os.scandir(folder) as it:
        on_disk = {e.name for e in it if e.is_file() and FILE_RE.match(e.name)}

    candidates, missing, positions = _listed(index, folder, on_disk)
    for name in sorted(on_disk):  # present but not listed: used when the name parses
        parsed = parse_file_name(name)
        if parsed:
            well, fld, plane, ch, t, fk, fl = parsed
            logger.info("%s is not listed in %s; using it", name, index_path.name)
            candidates[(well, fld, ch, plane, t)].append((fk, fl, name))

    if not candidates:
        raise PlateFormatError(
            f"{index_path}: none of the {len(index.images)} images it lists is on disk "
            f"in {folder}"
        )
    ignored = 0
    chosen: dict[_Key, str] = {}
    for key, cands in candidates.items():
        cands.sort()
        chosen[key] = cands[0][2]
        ignored += len(cands) - 1
    if ignored:
        logger.warning("%s: %d extra images (fk/fl > 1) ignored", folder, ignored)

    fields: dict[str, set[int]] = defaultdict(set)
    z_by_group: dict[tuple, dict[int, float]] = defaultdict(dict)
    for well, fld, *_ in chosen:
        fields[well].add(fld)
    for img in index.images:
        if img.z_um is not None:
            z_by_group[(img.row, img.col, img.field, img.channel, img.timepoint)][img.plane] = (
                img.z_um
            )

    for info in index.channels.values():  # refuse absurd sizes before touching pixels
        if info.size_x is not None or info.size_y is not None:
            check_image_size((info.size_y or 1, info.size_x or 1), index_path)
    first_key = min(chosen)
    ch_info = index.channels.get(first_key[2])
    declared = (ch_info.size_y, ch_info.size_x) if ch_info else (None, None)
    shape, dtype = tiff_header(folder / chosen[first_key])
    if None not in declared and declared != shape:
        logger.warning("%s declares %s px images but %s is %s; using the file", index_path,
                       declared, chosen[first_key], shape)
    pixel_size = ch_info.pixel_size_um if ch_info else None
    if pixel_size is not None and not 0 < pixel_size < 1e4:
        logger.warning("%s: implausible pixel size %r µm ignored", index_path, pixel_size)
        pixel_size = None
    tol = 0.1 * shape[1] * pixel_size if pixel_size else 1.0
    site_of, grid, site_positions = _sites(positions, fields, tol)

    records = tuple(sorted(
        ImageRecord(well=w, site=site_of[(w, f)], channel=c, z=p, t=t, path=rel)
        for (w, f, c, p, t), rel in chosen.items()
    ))
    wells = tuple(sorted({r.well for r in records}))
    plate = index.plate
    rows, columns = _layout(plate, wells)
    mag = ch_info.objective_magnification if ch_info else None
    meta = [
        ("format", f"Harmony {index.version} ({index_path.name})"),
        ("instrument", index.instrument),
        ("user", index.user),
        ("plate_type", plate.get("PlateTypeName", "")),
        ("measurement_id", plate.get("MeasurementID", "")),
        ("measurement_start", plate.get("MeasurementStartTime", "")),
        ("objective", f"{mag:g}x NA {ch_info.objective_na:g}" if mag and ch_info and
         ch_info.objective_na else ""),
        ("field_to_site", ", ".join(
            f"{w}:f{f}->s{s}" for (w, f), s in sorted(site_of.items()) if f != s)),
    ]
    if ignored:
        meta.append(("ignored_images", str(ignored)))
    return Plate(
        root=folder,
        microscope=NAME,
        name=plate.get("Name") or plate.get("PlateID") or folder.parent.name,
        rows=int(rows),
        columns=int(columns),
        wells=wells,
        sites=tuple(sorted({r.site for r in records})),
        channels=_channels(index, {r.channel for r in records}),
        z_indices=tuple(sorted({r.z for r in records})),
        timepoints=tuple(sorted({r.t for r in records})),
        image_shape=shape,
        dtype=dtype,
        records=records,
        pixel_size_um=pixel_size,
        z_spacing_um=plate_z_spacing(z_by_group.values()),
        site_grid=grid,
        site_positions=tuple(site_positions),
        missing=tuple(sorted(missing)),
        source="planes",
        reader="tiff",
        metadata=tuple((k, v) for k, v in meta if v),
    )


def _layout(plate: dict[str, str], wells: tuple[str, ...]) -> tuple[int, int]:
    """Return ``(rows, columns)`` from PlateRows/PlateColumns, else from the wells."""
    try:
        rows, columns = int(plate["PlateRows"]), int(plate["PlateColumns"])
    except (KeyError, ValueError):
        return layout_for_wells(wells)
    if not (0 < rows <= 64 and 0 < columns <= 96):
        return layout_for_wells(wells)
    return fit_layout((rows, columns), wells, "the Harmony index")
