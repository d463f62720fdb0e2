"""Yokogawa CellVoyager (CV7000/CV8000) measurement folders.

Layout: ``MeasurementData.mlf`` (one ``bts:MeasurementRecord`` per image),
``MeasurementDetail.mrf`` (channels, pixel size, plate size), a ``.mes`` protocol, and
``<Title>_<Well>_T<tttt>F<fff>L<ll>A<aa>Z<zz>C<cc>.tif`` images beside them. ``SC_*``
(shading) and ``DC_*`` (dark) TIFFs are not images of the plate.

- The files on disk are the truth: images the ``.mlf`` lists but the disk lacks go to
  :attr:`Plate.missing`; files it does not list are still used when their name parses.
- Sites are the fields re-numbered in raster order from the ``.mlf`` X/Y positions (µm);
  positions are given with image-y down (``y = -Y``, the stage y points up).
- Channel names come from the ``.mes`` protocol (fluorophore, else excitation and filter).
- The same (well, field, channel, z, t) from several timelines/actions keeps the lowest
  ``L``/``A``; the others are counted in ``metadata`` (``ignored_images``).
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
from ._safe_xml import iter_elements, local_attrib, local_name, parse_file
from .detect import PlateFormatError
from .io_readers import ImageReadError, resolve_inside
from .plate import ChannelInfo, ImageRecord, Plate, canonical_well, fit_layout, layout_for_wells, well_name

logger = logging.getLogger(__name__)

NAME = "yokogawa"
LOOKS_FOR = (
    "CellVoyager measurement: MeasurementData.mlf (+ MeasurementDetail.mrf) next to "
    "<title>_B03_T0001F001L01A01Z01C01.tif images"
)

MLF_NAME = "MeasurementData.mlf"
MRF_NAME = "MeasurementDetail.mrf"

FILE_RE = re.compile(
    r"^(?P<title>.*)_(?P<well>[A-Z]{1,2}\d{2,3})_T(?P<t>\d{4})F(?P<f>\d{3})L(?P<l>\d{2})"
    r"A(?P<a>\d{2})Z(?P<z>\d{2})C(?P<c>\d{2})\.tiff?$",
    re.IGNORECASE,
)
_CORRECTION_PREFIXES = ("SC_", "DC_")

# (well, field, channel, z, t)
_Key = tuple[str, int, int, int, int]


def parse_file_name(name: str) -> tuple[str, int, int, int, int, int, int] | None:
    """Parse an image name into ``(well, t, field, timeline, action, z, channel)``.

    Returns ``None`` for other files, including ``SC_*`` / ``DC_*`` correction images.
    """
    if name.upper().startswith(_CORRECTION_PREFIXES):
        return None
    m = FILE_RE.match(name)
    if not m:
        return None
    g = m.groupdict()
    try:
        well = canonical_well(g["well"])
    except ValueError:
        return None
    return well, int(g["t"]), int(g["f"]), int(g["l"]), int(g["a"]), int(g["z"]), int(g["c"])


def _is_measurement(folder: Path) -> bool:
    return (folder / MLF_NAME).is_file()


def detect(root: Path) -> bool:
    """Return True if ``root`` (or a folder up to two levels below) holds a ``.mlf``."""
    try:
        return bool(find_below(Path(root), _is_measurement, max_depth=2))
    except OSError:
        return False


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _int(value: str | None) -> int | None:
    v = _float(value)
    return int(v) if v is not None and v == int(v) else None


def _read_mlf(path: Path) -> list[tuple[str, dict[str, str]]]:
    """Return ``(file name, attributes)`` for every IMG record of a ``.mlf``."""
    out = []
    for event, elem in iter_elements(path):
        if event == "end" and local_name(elem.tag) == "MeasurementRecord":
            attrs = local_attrib(elem)
            if attrs.get("Type", "IMG") == "IMG" and (elem.text or "").strip():
                out.append(((elem.text or "").strip(), attrs))
            elem.clear()
    return out


def _read_detail(folder: Path) -> tuple[dict[str, str], dict[int, dict[str, str]]]:
    """Return the ``.mrf`` root attributes and its ``MeasurementChannel`` attributes by Ch."""
    path = folder / MRF_NAME
    if not path.is_file():
        logger.warning("%s: no %s; pixel size unknown", folder, MRF_NAME)
        return {}, {}
    root = parse_file(path)
    channels = {}
    for elem in root.iter():
        if local_name(elem.tag) == "MeasurementChannel":
            attrs = local_attrib(elem)
            ch = _int(attrs.get("Ch"))
            if ch is not None:
                channels[ch] = attrs
    return local_attrib(root), channels


def _read_protocol(
    folder: Path, detail: dict[str, str]
) -> tuple[dict[int, dict[str, str]], float | None]:
    """Return the ``.mes`` protocol's ``Channel`` attributes by Ch (empty when absent) and its
    z step (``SliceLength`` of its 3-D acquisitions, when they agree)."""
    name = detail.get("MeasurementSettingFileName")
    candidates = [name] if name else sorted(p.name for p in folder.glob("*.mes"))[:1]
    for cand in candidates:
        try:
            path = resolve_inside(folder, cand)
        except ImageReadError as exc:
            raise PlateFormatError(f"{folder / MRF_NAME}: protocol file {exc}") from None
        if not path.is_file():
            continue
        try:
            root = parse_file(path)
        except PlateFormatError as exc:
            logger.warning("ignoring the protocol file: %s", exc)
            return {}, None
        out = {}
        steps = set()
        for elem in root.iter():
            if local_name(elem.tag) == "Channel":
                attrs = local_attrib(elem)
                if (ch := _int(attrs.get("Ch"))) is not None:
                    out[ch] = attrs
            elif local_name(elem.tag) == "ActionAcquire3D":
                steps.add(_float(local_attrib(elem).get("SliceLength")))
        return out, (steps.pop() if len(steps) == 1 else None)
    return {}, None


def _channel_info(ch: int, proto: dict[str, str] | None) -> ChannelInfo:
    if not proto:
        return ChannelInfo(index=ch, name=f"Ch{ch}")
    fluor = proto.get("Fluorophore", "").strip()
    target = proto.get("Target", "").strip()
    filt = proto.get("Acquisition", "").strip().replace("/", "-")
    name = fluor or " ".join(p for p in (f"{target}nm" if target else "", filt) if p) or f"Ch{ch}"
    m = re.match(r"^BP(\d+)", filt)
    color = proto.get("Color", "").lstrip("#")
    return ChannelInfo(
        index=ch,
        name=name,
        wavelength_nm=float(m.group(1)) if m else None,
        color=color[-6:].upper() if len(color) in (6, 8) else None,
    )


def open_plate(root: Path, source: str = "planes") -> Plate:
    """Read a CellVoyager measurement folder into a :class:`Plate`.

    Parameters
    ----------
    root : Path
        The measurement folder (holding ``MeasurementData.mlf``) or a folder up to two
        levels above it holding exactly one.
    source : {"planes"}
        Only z-planes are read; ``"projections"`` is refused.

    Returns
    -------
    Plate

    Raises
    ------
    PlateFormatError
        If no ``.mlf`` is found, a metadata file is malformed, or no image is on disk.
    """
    if source != "planes":
        raise PlateFormatError(f"{root}: CellVoyager folders are read as z-planes only; "
                               "use source='planes' and project in the pipeline")
    folder = single_plate_dir(Path(root), _is_measurement, f"CellVoyager {MLF_NAME}")
    mlf = folder / MLF_NAME
    listed = _read_mlf(mlf)
    detail, mrf_channels = _read_detail(folder)
    protocol, z_step = _read_protocol(folder, detail)
    with os.scandir(folder) as it:
        on_disk = {e.name for e in it if e.is_file() and parse_file_name(e.name)}

    candidates: dict[_Key, list[tuple[int, int, str]]] = defaultdict(list)
    missing: list[tuple[str, str]] = []
    xy: dict[tuple[str, int], tuple[float, float]] = {}
    z_by_stack: dict[tuple, dict[int, float]] = defaultdict(dict)
    for name, attrs in listed:
        rel = relative_inside(folder, name, mlf)
        parsed = parse_file_name(rel.rsplit("/", 1)[-1])
        if parsed:
            well, t, fld, tl, act, z, ch = parsed
        else:
            row, col = _int(attrs.get("Row")), _int(attrs.get("Column"))
            vals = [_int(attrs.get(k)) for k in
                    ("TimePoint", "FieldIndex", "TimelineIndex", "ActionIndex", "ZIndex", "Ch")]
            if row is None or col is None or None in vals:
                logger.warning("%s: cannot place record %s; skipped", mlf.name, name)
                continue
            well = well_name(row - 1, col)
            t, fld, tl, act, z, ch = vals  # type: ignore[assignment]
        x, y, zpos = (_float(attrs.get(k)) for k in ("X", "Y", "Z"))
        if x is not None and y is not None:
            xy.setdefault((well, fld), (0.0 - y, 0.0 + x))
        if zpos is not None:
            z_by_stack[(well, fld, ch, t, tl, act)][z] = zpos
        if (rel not in on_disk) if "/" not in rel else not (folder / rel).is_file():
            missing.append((well, f"{rel} is listed in {MLF_NAME} but not on disk"))
            continue
        on_disk.discard(rel)
        candidates[(well, fld, ch, z, t)].append((tl, act, rel))
    for name in sorted(on_disk):
        well, t, fld, tl, act, z, ch = parse_file_name(name)  # type: ignore[misc]
        logger.info("%s is not listed in %s; using it", name, MLF_NAME)
        candidates[(well, fld, ch, z, t)].append((tl, act, name))
    if not candidates:
        raise PlateFormatError(f"{mlf}: none of the {len(listed)} images it lists is on disk")

    chosen = {key: sorted(c)[0][2] for key, c in candidates.items()}
    ignored = sum(len(c) - 1 for c in candidates.values())
    if ignored:
        logger.warning("%s: %d images from other timelines/actions ignored", folder, ignored)

    fields: dict[str, set[int]] = defaultdict(set)
    for well, fld, *_ in chosen:
        fields[well].add(fld)
    first = min(chosen)
    for attrs in mrf_channels.values():  # refuse absurd sizes before touching pixels
        sizes = (_int(attrs.get("VerticalPixels")), _int(attrs.get("HorizontalPixels")))
        if sizes != (None, None):
            check_image_size((sizes[0] or 1, sizes[1] or 1), folder / MRF_NAME)
    mrf = mrf_channels.get(first[2], next(iter(mrf_channels.values()), {}))
    declared = (_int(mrf.get("VerticalPixels")), _int(mrf.get("HorizontalPixels")))
    shape, dtype = tiff_header(folder / chosen[first])
    if None not in declared and declared != shape:
        logger.warning("%s declares %s px but %s is %s; using the file", MRF_NAME, declared,
                       chosen[first], shape)
    pixel = _float(mrf.get("HorizontalPixelDimension"))
    if pixel is not None and not 0 < pixel < 1e4:
        logger.warning("%s: implausible pixel size %r µm ignored", MRF_NAME, pixel)
        pixel = None
    site_of, grid, positions = _sites(xy, fields, 0.1 * shape[1] * pixel if pixel else 1.0)

    records = tuple(sorted(
        ImageRecord(well=w, site=site_of[(w, f)], channel=c, z=z, t=t, path=rel)
        for (w, f, c, z, t), rel in chosen.items()
    ))
    wells = tuple(sorted(fields))
    rows, cols = _int(detail.get("RowCount")), _int(detail.get("ColumnCount"))
    if not (rows and cols and 0 < rows <= 64 and 0 < cols <= 96):
        rows, cols = layout_for_wells(wells)
    else:
        rows, cols = fit_layout((rows, cols), wells, f"{folder}: MeasurementDetail.mrf")
    present_z = {r.z for r in records}
    meta = [
        ("instrument", detail.get("TargetSystem", "")),
        ("software", detail.get("ReleaseNumber", "")),
        ("operator", detail.get("OperatorName", "")),
        ("measurement_start", detail.get("BeginTime", "")),
        ("field_to_site", ", ".join(
            f"{w}:F{f}->s{s}" for (w, f), s in sorted(site_of.items()) if f != s)),
        ("ignored_images", str(ignored) if ignored else ""),
    ]
    return Plate(
        root=folder,
        microscope=NAME,
        name=detail.get("Title") or folder.name,
        rows=int(rows),
        columns=int(cols),
        wells=wells,
        sites=tuple(sorted({r.site for r in records})),
        channels=tuple(_channel_info(c, protocol.get(c)) for c in sorted({r.channel for r in
                                                                          records})),
        z_indices=tuple(sorted(present_z)),
        timepoints=tuple(sorted({r.t for r in records})),
        image_shape=shape,
        dtype=dtype,
        records=records,
        pixel_size_um=pixel,
        z_spacing_um=plate_z_spacing(
            ({z: v for z, v in st.items() if z in present_z} for st in z_by_stack.values()),
            z_step if len(present_z) > 1 else None,
        ),
        site_grid=grid,
        site_positions=positions,
        missing=tuple(sorted(missing)),
        reader="tiff",
        metadata=tuple((k, v) for k, v in meta if v),
    )


def _sites(
    xy: dict[tuple[str, int], tuple[float, float]], fields: dict[str, set[int]], tol: float
) -> tuple[dict[tuple[str, int], int], tuple[int, int] | None,
           tuple[tuple[str, int, float, float], ...]]:
    """Map (well, field) to raster-ordered sites; return mapping, grid and positions."""
    mapping: dict[tuple[str, int], int] = {}
    grids = set()
    positions = []
    for well, flds in sorted(fields.items()):
        if all((well, f) in xy for f in flds):
            order, grid = raster_order({f: xy[(well, f)] for f in flds}, tol)
            grids.add(grid)
            for f, s in order.items():
                mapping[(well, f)] = s
                positions.append((well, s, *xy[(well, f)]))
        else:
            grids.add(None)
            mapping.update({(well, f): f for f in flds})
    grid = grids.pop() if len(grids) == 1 else None
    return mapping, grid, tuple(sorted(positions))
