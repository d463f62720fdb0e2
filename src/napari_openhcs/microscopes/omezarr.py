"""OME-Zarr HCS plates as input: NGFF 0.4 (Zarr v2) and 0.5 (Zarr v3).

Plate → wells → fields; each field becomes a site. Nothing is read eagerly: every
record points at the field's full-resolution array (``B/02/0/0``, relative to the plate
group) with ``index`` = the leading indices (t, c, z as the axes say) of one 2-D plane,
and ``Plate.reader`` is ``"zarr"``.

- Column names may be unpadded (``"1"``) or padded (``"01"``); wells are canonical (A01).
- bioformats2raw plates (``bioformats2raw.layout: 3``) work as is: only the wells the
  plate lists are read, so the ``OME/`` sidecar group is never taken for a well.
- The root may be the plate group or a folder holding exactly one plate group.
- A folder with NGFF plate/well JSON documents but no arrays (the spec examples) is not
  detected as a plate; opening it raises :class:`PlateFormatError` with a metadata-only
  description (see :func:`describe_metadata_only`).
- Wells with several fields from different acquisitions keep them all as sites, in the
  order of the well's ``images`` list.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from itertools import product
from pathlib import Path

from ._handler_utils import check_image_size, find_below, raster_order
from ._ngff import (
    NgffDocument,
    NgffPlate,
    NgffWell,
    NgffWellImages,
    array_metadata,
    find_ngff_documents,
    group_attributes,
    parse_ngff_document,
    parse_plate,
    parse_well_images,
)
from ._ngff_image import NgffImage, parse_image
from .detect import PlateFormatError
from .io_readers import ImageReadError, resolve_inside
from .plate import ChannelInfo, ImageRecord, Plate, fit_layout, row_index

logger = logging.getLogger(__name__)

NAME = "omezarr"
LOOKS_FOR = (
    "OME-Zarr HCS plate: a Zarr group whose .zattrs (NGFF 0.4) or zarr.json "
    "(NGFF 0.5, attributes.ome) has 'plate', with well/field arrays"
)

__all__ = [
    "LOOKS_FOR",
    "NAME",
    "NgffDocument",
    "NgffPlate",
    "NgffWell",
    "NgffWellImages",
    "describe_metadata_only",
    "detect",
    "explain",
    "find_ngff_documents",
    "open_plate",
    "parse_ngff_document",
    "parse_plate",
    "parse_well_images",
]

_ROLE_BY_NAME = {"t": "t", "time": "t", "c": "c", "channel": "c", "z": "z"}
_ROLE_BY_TYPE = {"time": "t", "channel": "c", "space": "z"}


def _plate_attrs(folder: Path) -> tuple[dict, int, str | None] | None:
    try:
        found = group_attributes(folder)
    except PlateFormatError:
        return None
    if found and isinstance(found[0].get("plate"), dict):
        return found
    return None


def _is_plate_group(folder: Path) -> bool:
    return _plate_attrs(folder) is not None


def _first_array_exists(root: Path) -> bool:
    """Return True if one of the first wells listed has a readable field array."""
    attrs = _plate_attrs(root)
    if attrs is None:
        return False
    try:
        plate = parse_plate(attrs[0], root, attrs[2])
        for well in plate.wells[:3]:
            if _field_arrays(root, well, shallow=True)[0]:
                return True
    except (PlateFormatError, ImageReadError, OSError):
        return False
    return False


def _why_unreadable(root: Path) -> str | None:
    """Return the error that made :func:`_first_array_exists` give up on ``root``, if any."""
    attrs = _plate_attrs(root)
    if attrs is None:
        return None
    try:
        plate = parse_plate(attrs[0], root, attrs[2])
        for well in plate.wells[:3]:
            _field_arrays(root, well, shallow=True)
    except (PlateFormatError, ImageReadError, OSError) as exc:
        return str(exc)
    return None


def detect(root: Path) -> bool:
    """Return True if ``root`` is (or holds one) OME-Zarr HCS plate group with arrays."""
    try:
        return any(_first_array_exists(p) for p in find_below(Path(root), _is_plate_group, 2))
    except OSError:
        return False


def describe_metadata_only(root: Path) -> str | None:
    """Describe NGFF plate/well JSON documents under ``root`` that come without arrays.

    Returns
    -------
    str or None
        One line per document (``path: NGFF 0.4 (Zarr v2) plate 'name': ...``), or
        ``None`` when ``root`` holds no NGFF plate/well documents.
    """
    docs = find_ngff_documents(Path(root))
    if not docs:
        return None
    return "\n".join(f"  - {d.path.relative_to(root).as_posix()}: {d.summary()}" for d in docs)


def explain(root: Path) -> str | None:
    """Return why ``root`` is not a readable OME-Zarr plate when it is close to one.

    Used by :func:`~napari_openhcs.microscopes.detect.detect_microscope` to extend its
    "no known plate layout" error: a folder of NGFF plate/well JSON documents without
    arrays (the spec examples), or a plate group whose wells hold no arrays.
    """
    root = Path(root)
    plates = find_below(root, _is_plate_group, 2)
    if plates:
        reason = _why_unreadable(plates[0])
        return (f"OME-Zarr: {', '.join(map(str, plates[:5]))} has plate metadata but no "
                "readable well/field arrays" + (f" ({reason})" if reason else ""))
    described = describe_metadata_only(root)
    if described:
        return ("OME-Zarr: only NGFF metadata documents were found (no Zarr plate with "
                f"image arrays):\n{described}")
    return None


_Field = tuple[int, str, NgffImage, tuple[int, ...], str]  # site, array path, image, shape, dtype


def _field_arrays(
    root: Path, well: NgffWell, shallow: bool = False
) -> tuple[list[_Field], list[str]]:
    """Return the fields of ``well`` that have a level-0 array, and what is missing.

    Sites are the 1-based positions in the well's ``images`` list, so a missing field
    leaves a gap rather than renumbering the others.
    """
    well_dir = resolve_inside(root, well.path)
    attrs = group_attributes(well_dir) if well_dir.is_dir() else None
    if attrs is None:
        return [], [f"well group {well.path} listed in the plate metadata is absent"]
    images: NgffWellImages = parse_well_images(attrs[0], well_dir, attrs[2])
    out: list[_Field] = []
    missing: list[str] = []
    for site, (field_path, _) in enumerate(images.images, start=1):
        field_dir = resolve_inside(well_dir, field_path)
        fattrs = group_attributes(field_dir) if field_dir.is_dir() else None
        if fattrs is None:
            missing.append(f"field {well.path}/{field_path} listed in the well metadata is absent")
            continue
        image = parse_image(fattrs[0], field_dir)
        meta = array_metadata(resolve_inside(field_dir, image.dataset_path))
        if meta is None:
            missing.append(f"array {well.path}/{field_path}/{image.dataset_path} is absent")
            continue
        if len(meta[0]) != len(image.axes) and not fattrs[0]["multiscales"][0].get("axes"):
            image = parse_image(fattrs[0], field_dir, ndim=len(meta[0]))  # NGFF < 0.3
        out.append((site, f"{well.path}/{field_path}/{image.dataset_path}", image, *meta))
        if shallow:
            break
    return out, missing


#: Planes (t × c × z) one field's array may declare; more is a corrupt or hostile zarr.json.
MAX_PLANES_PER_ARRAY = 1_000_000


def _plane_indices(image: NgffImage, shape: tuple[int, ...], source: str) -> Iterator[
    tuple[int, int, int, tuple[int, ...]]
]:
    """Yield ``(t, c, z, index)`` (1-based t/c/z) for every 2-D plane of an array."""
    if len(shape) != len(image.axes) or len(shape) < 2:
        raise PlateFormatError(f"{source}: array has {len(shape)} dimensions but the "
                               f"multiscales axes are {list(image.axes)}")
    if image.axes[-2:] != ("y", "x"):
        raise PlateFormatError(f"{source}: the last two axes must be y, x (found "
                               f"{list(image.axes)})")
    check_image_size(shape[-2:], source)
    planes = math.prod(int(n) for n in shape[:-2])
    if planes > MAX_PLANES_PER_ARRAY:  # bounded before a record is made for each
        raise PlateFormatError(f"{source}: the array declares {planes} planes (shape {list(shape)}); "
                               f"more than {MAX_PLANES_PER_ARRAY} planes per field is not plausible")
    roles: list[str | None] = []
    lead = len(shape) - 2
    for name, typ, size in zip(image.axes[:lead], image.axis_types[:lead], shape[:lead],
                               strict=True):
        role = _ROLE_BY_NAME.get(name) or _ROLE_BY_TYPE.get(typ or "")
        if role is None or role in roles:
            if size != 1:
                raise PlateFormatError(f"{source}: cannot map axis {name!r} (size {size}) "
                                       "to time, channel or z")
            role = None
        roles.append(role)
    for combo in product(*(range(n) for n in shape[:-2])):
        val = {"t": 0, "c": 0, "z": 0}
        for role, i in zip(roles, combo, strict=True):
            if role:
                val[role] = i
        yield val["t"] + 1, val["c"] + 1, val["z"] + 1, tuple(combo)


def _layout(meta: NgffPlate, wells: tuple[str, ...], source: Path) -> tuple[int, int]:
    """The layout the plate declares (its last row and column), widened to hold its wells.

    bioformats2raw lists only the rows and columns it wrote (rows A, B x column "1" is a
    2 x 1 plate, not a 6-well one); sparse lists (columns "5", "7") extend to the last one.
    """
    try:
        if not all(re.fullmatch(r"[A-Za-z]{1,2}", r) for r in meta.rows):
            raise ValueError("row names are not letters")
        declared: tuple[int, int] | None = (max(row_index(r) for r in meta.rows) + 1,
                                            max(int(c) for c in meta.columns))
    except ValueError:  # empty lists, or names that are not row letters / column numbers
        declared = None
    if declared and not (0 < declared[0] <= 64 and 0 < declared[1] <= 96):
        declared = None
    return fit_layout(declared, wells, str(source))


def _channels(image: NgffImage, n: set[int]) -> tuple[ChannelInfo, ...]:
    out = []
    for c in sorted(n):
        name = image.channel_names[c - 1] if c <= len(image.channel_names) else None
        color = image.channel_colors[c - 1] if c <= len(image.channel_colors) else None
        ok = color is not None and re.fullmatch(r"[0-9A-Fa-f]{6}", color) is not None
        out.append(ChannelInfo(index=c, name=name or f"w{c}",
                               color=color.upper() if ok and color else None))
    return tuple(out)


def _find_plate(root: Path) -> Path:
    found = find_below(root, _is_plate_group, 2)
    if len(found) > 1:
        listing = "\n".join(f"  - {p}" for p in found[:20])
        raise PlateFormatError(f"{root} holds {len(found)} OME-Zarr plates; open one:\n{listing}")
    if found:
        return found[0]
    described = describe_metadata_only(root)
    if described:
        raise PlateFormatError(
            f"{root} holds OME-NGFF plate/well metadata documents but no Zarr plate with "
            f"image arrays, so there is nothing to read. Metadata found:\n{described}"
        )
    raise PlateFormatError(
        f"no OME-Zarr HCS plate in {root}: expected a .zattrs (NGFF 0.4) or zarr.json "
        "(NGFF 0.5) with 'plate' attributes"
    )


def open_plate(root: Path, source: str = "planes") -> Plate:
    """Read an OME-Zarr HCS plate (NGFF 0.4 or 0.5) into a :class:`Plate`, lazily.

    Parameters
    ----------
    root : Path
        The plate group (``plate.zarr``) or a folder holding exactly one.
    source : {"planes"}
        OME-Zarr plates hold planes only; ``"projections"`` is refused.

    Returns
    -------
    Plate
        With ``reader="zarr"``; records point at level-0 arrays.

    Raises
    ------
    PlateFormatError
        If no plate is found, its metadata is malformed, arrays disagree in plane shape
        or dtype, or no well has image data.
    """
    if source != "planes":
        raise PlateFormatError(f"{root}: OME-Zarr plates hold planes only; use source='planes'")
    plate_dir = _find_plate(Path(root))
    attrs = _plate_attrs(plate_dir)
    assert attrs is not None
    zattrs = plate_dir / ("zarr.json" if attrs[1] == 3 else ".zattrs")
    meta = parse_plate(attrs[0], zattrs, attrs[2])
    records: list[ImageRecord] = []
    missing: list[tuple[str, str]] = []
    positions: dict[str, dict[int, tuple[float, float]]] = {}
    first: tuple[NgffImage, tuple[int, int], str] | None = None
    for well in sorted(meta.wells, key=lambda w: w.well):
        try:
            fields, absent = _field_arrays(plate_dir, well)
        except ImageReadError as exc:
            raise PlateFormatError(f"{zattrs}: {exc}") from None
        missing.extend((well.well, msg) for msg in absent)
        for site, rel, image, shape, dtype in fields:
            plane = (int(shape[-2]), int(shape[-1])) if len(shape) >= 2 else (0, 0)
            if first is None:
                first = (image, plane, dtype)
            elif (plane, dtype) != first[1:]:
                raise PlateFormatError(
                    f"{plate_dir}: {rel} has {plane} {dtype} planes but the plate's first "
                    f"field has {first[1]} {first[2]}; one Plate needs one plane shape"
                )
            for t, c, z, index in _plane_indices(image, shape, f"{plate_dir}/{rel}"):
                records.append(ImageRecord(well.well, site, c, z, t, rel, index))
            (_, y0), (_, x0) = image.physical("y"), image.physical("x")
            if y0 is not None and x0 is not None:
                positions.setdefault(well.well, {})[site] = (y0, x0)
    if first is None or not records:
        raise PlateFormatError(f"{zattrs}: none of the {len(meta.wells)} wells has image arrays")
    image, plane, dtype = first
    records.sort()
    wells = tuple(sorted({r.well for r in records}))
    sites = tuple(sorted({r.site for r in records}))
    pixel, _ = image.physical("x")
    y_pixel, _ = image.physical("y")
    if pixel and y_pixel and abs(pixel - y_pixel) > 1e-9 * pixel:
        logger.warning("%s: pixels are not square (%g x %g µm); using x", plate_dir, pixel,
                       y_pixel)
    z_step, _ = image.physical("z")
    zs = tuple(sorted({r.z for r in records}))
    site_positions, grid = _site_layout(positions, wells, sites, plane, pixel)
    layout = _layout(meta, wells, plate_dir)
    extra = [
        ("format", f"OME-NGFF {meta.version or '?'} (Zarr v{attrs[1]})"),
        ("axes", ",".join(image.axes)),
        ("acquisitions", ",".join(map(str, meta.acquisitions))),
        ("bioformats2raw.layout", str(meta.bioformats2raw_layout or "")),
    ]
    return Plate(
        root=plate_dir,
        microscope=NAME,
        name=meta.name or plate_dir.name.removesuffix(".zarr").removesuffix(".ome"),
        rows=layout[0],
        columns=layout[1],
        wells=wells,
        sites=sites,
        channels=_channels(image, {r.channel for r in records}),
        z_indices=zs,
        timepoints=tuple(sorted({r.t for r in records})),
        image_shape=plane,
        dtype=dtype,
        records=tuple(records),
        pixel_size_um=pixel,
        z_spacing_um=z_step if len(zs) > 1 else None,
        site_grid=grid,
        site_positions=site_positions,
        missing=tuple(sorted(missing)),
        reader="zarr",
        metadata=tuple((k, v) for k, v in extra if v),
    )


def _site_layout(
    positions: dict[str, dict[int, tuple[float, float]]],
    wells: tuple[str, ...],
    sites: tuple[int, ...],
    plane: tuple[int, int],
    pixel: float | None,
) -> tuple[tuple[tuple[str, int, float, float], ...], tuple[int, int] | None]:
    """Return site positions (from level-0 translations) and the site grid."""
    grid: tuple[int, int] | None = (1, 1) if len(sites) == 1 else None
    grids: set[tuple[int, int] | None] = set()
    out: list[tuple[str, int, float, float]] = []
    tol = 0.1 * min(plane) * pixel if pixel else 1.0
    for well in wells:
        pos = positions.get(well)
        if not pos or (len(pos) > 1 and len(set(pos.values())) == 1):
            continue  # no translations, or all fields at one spot: not real positions
        out.extend((well, s, float(y), float(x)) for s, (y, x) in sorted(pos.items()))
        if len(sites) > 1 and len(pos) == len(sites):
            grids.add(raster_order(pos, tol)[1])
    if len(grids) == 1:
        grid = grids.pop()
    return tuple(out), grid
