"""OME-NGFF (OME-Zarr) HCS metadata: plate, well and image (multiscales/omero) documents.

Works on the JSON alone, for NGFF 0.4 (Zarr v2 ``.zattrs``) and 0.5 (Zarr v3 ``zarr.json``
with ``attributes.ome``), so metadata can be inspected without opening any array.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .detect import PlateFormatError
from .plate import parse_well, well_name

logger = logging.getLogger(__name__)

#: Largest metadata JSON we read (bytes); larger files are refused as implausible.
MAX_JSON_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class NgffWell:
    """One entry of ``plate.wells``: its group path and canonical well name (``A01``)."""

    path: str
    well: str
    row_index: int
    column_index: int


@dataclass(frozen=True, slots=True)
class NgffPlate:
    """The ``plate`` attributes of an HCS plate group."""

    name: str | None
    version: str | None
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: tuple[NgffWell, ...]
    field_count: int | None
    acquisitions: tuple[int, ...]
    bioformats2raw_layout: int | None = None


@dataclass(frozen=True, slots=True)
class NgffWellImages:
    """The ``well`` attributes of a well group: field paths and their acquisition ids."""

    version: str | None
    images: tuple[tuple[str, int | None], ...]


@dataclass(frozen=True, slots=True)
class NgffDocument:
    """What one metadata JSON document describes (``kind``: plate, well, image or other)."""

    path: Path
    zarr_format: int | None
    version: str | None
    kind: str
    plate: NgffPlate | None = None
    well: NgffWellImages | None = None

    def summary(self) -> str:
        """Return a one-line description for humans."""
        head = f"NGFF {self.version or '?'} (Zarr v{self.zarr_format or '?'}) {self.kind}"
        if self.plate is not None:
            p = self.plate
            wells = ", ".join(w.well for w in p.wells[:8]) + (" ..." if len(p.wells) > 8 else "")
            return (f"{head} {p.name!r}: {len(p.wells)} wells ({wells}), rows x columns "
                    f"listed {len(p.rows)} x {len(p.columns)}, field_count {p.field_count}")
        if self.well is not None:
            return f"{head}: {len(self.well.images)} fields"
        return head


def load_json(path: Path) -> dict[str, Any]:
    """Load a metadata JSON object, refusing huge or malformed files with a clear message.

    Raises
    ------
    PlateFormatError
        If the file is unreadable, larger than :data:`MAX_JSON_BYTES`, not JSON, or not
        a JSON object.
    """
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise PlateFormatError(f"{path}: {size} bytes is too large for a metadata file")
        data = json.loads(path.read_bytes())
    except PlateFormatError:
        raise
    except (OSError, ValueError) as exc:
        raise PlateFormatError(f"cannot read metadata JSON {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PlateFormatError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def ome_attributes(doc: dict[str, Any]) -> tuple[dict[str, Any], int | None, str | None]:
    """Return ``(ome attributes, zarr_format, NGFF version)`` of a ``.zattrs``/``zarr.json``.

    For Zarr v3 the attributes are ``attributes.ome`` (NGFF 0.5); for ``.zattrs`` they
    are the document itself (NGFF <= 0.4, version inside ``plate``/``well``/``multiscales``).
    """
    if doc.get("zarr_format") == 3 or "node_type" in doc:
        attrs = doc.get("attributes") or {}
        ome = attrs.get("ome", attrs) if isinstance(attrs, dict) else {}
        return (ome if isinstance(ome, dict) else {}), 3, as_str(ome.get("version"))
    version = None
    for key in ("plate", "well"):
        if isinstance(doc.get(key), dict):
            version = as_str(doc[key].get("version"))
    if version is None and isinstance(doc.get("multiscales"), list) and doc["multiscales"]:
        ms = doc["multiscales"][0]
        version = as_str(ms.get("version")) if isinstance(ms, dict) else None
    return doc, (2 if doc.get("zarr_format") in (None, 2) else None), version


def group_attributes(folder: Path) -> tuple[dict[str, Any], int, str | None] | None:
    """Return the OME attributes of the Zarr group at ``folder`` (``None`` if not a group)."""
    v3 = folder / "zarr.json"
    if v3.is_file():
        doc = load_json(v3)
        if doc.get("node_type") != "group":
            return None
        ome, _, version = ome_attributes(doc)
        return ome, 3, version
    v2 = folder / ".zattrs"
    if v2.is_file() or (folder / ".zgroup").is_file():
        doc = load_json(v2) if v2.is_file() else {}
        ome, _, version = ome_attributes(doc)
        return ome, 2, version
    return None


def array_metadata(folder: Path) -> tuple[tuple[int, ...], str] | None:
    """Return ``(shape, dtype)`` of the Zarr array at ``folder`` (``None`` if there is none)."""
    import numpy as np

    v3 = folder / "zarr.json"
    if v3.is_file():
        doc = load_json(v3)
        if doc.get("node_type") != "array":
            return None
        shape, dtype = doc.get("shape"), doc.get("data_type")
    elif (folder / ".zarray").is_file():
        doc = load_json(folder / ".zarray")
        shape, dtype = doc.get("shape"), doc.get("dtype")
    else:
        return None
    try:
        return tuple(int(s) for s in shape), str(np.dtype(dtype))  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise PlateFormatError(
            f"{folder}: unsupported array metadata (shape {shape!r}, data type {dtype!r})"
        ) from None


def as_str(value: Any) -> str | None:
    """Return ``value`` as a string (``None`` stays ``None``)."""
    return None if value is None else str(value)


def check_relative(path: str, source: Path | str) -> str:
    """Return ``path`` if it is a safe relative Zarr path, else raise PlateFormatError."""
    parts = str(path).split("/")
    if not path or str(path).startswith("/") or "\\" in str(path) or any(
        p in ("", ".", "..") for p in parts
    ):
        raise PlateFormatError(f"{source}: refusing path {path!r} (must stay inside the plate)")
    return str(path)


def _well_of(entry: dict[str, Any], rows: list[str], cols: list[str], source: str) -> NgffWell:
    path = check_relative(str(entry.get("path", "")), source)
    parts = path.split("/")
    ri, ci = entry.get("rowIndex"), entry.get("columnIndex")
    row_name = parts[0] if len(parts) == 2 else (rows[ri] if isinstance(ri, int) and
                                                 0 <= ri < len(rows) else "")
    col_name = parts[-1] if len(parts) == 2 else (cols[ci] if isinstance(ci, int) and
                                                  0 <= ci < len(cols) else "")
    try:
        r, c = parse_well(f"{row_name}{int(col_name)}")
    except ValueError:
        if not (isinstance(ri, int) and isinstance(ci, int)):
            raise PlateFormatError(
                f"{source}: cannot tell the well of {path!r} (no row/column names or indices)"
            ) from None
        r, c = ri, ci + 1
    return NgffWell(path=path, well=well_name(r, c), row_index=r, column_index=c - 1)


def parse_plate(ome: dict[str, Any], source: Path | str, version: str | None = None) -> NgffPlate:
    """Parse ``plate`` attributes (NGFF 0.4 ``.zattrs`` or 0.5 ``attributes.ome``).

    Raises
    ------
    PlateFormatError
        If ``plate`` is missing or its ``wells`` are malformed.
    """
    plate = ome.get("plate")
    if not isinstance(plate, dict) or not isinstance(plate.get("wells"), list):
        raise PlateFormatError(f"{source}: no OME-NGFF 'plate' with a 'wells' list")
    rows = [str(r.get("name", "")) for r in plate.get("rows", []) if isinstance(r, dict)]
    cols = [str(c.get("name", "")) for c in plate.get("columns", []) if isinstance(c, dict)]
    wells = tuple(
        _well_of(w, rows, cols, str(source)) for w in plate["wells"] if isinstance(w, dict)
    )
    acqs = tuple(
        int(a["id"]) for a in plate.get("acquisitions", []) or []
        if isinstance(a, dict) and isinstance(a.get("id"), int)
    )
    fc = plate.get("field_count")
    layout = ome.get("bioformats2raw.layout")
    return NgffPlate(
        name=as_str(plate.get("name")),
        version=as_str(plate.get("version")) or version,
        rows=tuple(rows),
        columns=tuple(cols),
        wells=wells,
        field_count=fc if isinstance(fc, int) else None,
        acquisitions=acqs,
        bioformats2raw_layout=layout if isinstance(layout, int) else None,
    )


def parse_well_images(
    ome: dict[str, Any], source: Path | str, version: str | None = None
) -> NgffWellImages:
    """Parse ``well`` attributes: the field (image) paths in order.

    Raises
    ------
    PlateFormatError
        If ``well.images`` is missing or a path would leave the well group.
    """
    well = ome.get("well")
    if not isinstance(well, dict) or not isinstance(well.get("images"), list):
        raise PlateFormatError(f"{source}: no OME-NGFF 'well' with an 'images' list")
    images = []
    for im in well["images"]:
        if isinstance(im, dict) and "path" in im:
            acq = im.get("acquisition")
            images.append((check_relative(str(im["path"]), source),
                           acq if isinstance(acq, int) else None))
    return NgffWellImages(version=as_str(well.get("version")) or version, images=tuple(images))


def parse_ngff_document(path: Path) -> NgffDocument:
    """Parse one metadata JSON document (``.zattrs``, ``zarr.json`` or a spec example).

    Parameters
    ----------
    path : Path
        The JSON file.

    Returns
    -------
    NgffDocument
        ``kind`` is ``"plate"``, ``"well"``, ``"image"`` (multiscales) or ``"other"``.

    Raises
    ------
    PlateFormatError
        If the file is not JSON or its plate/well attributes are malformed.
    """
    path = Path(path)
    ome, zarr_format, version = ome_attributes(load_json(path))
    if "plate" in ome:
        plate = parse_plate(ome, path, version)
        return NgffDocument(path, zarr_format, plate.version, "plate", plate=plate)
    if "well" in ome:
        well = parse_well_images(ome, path, version)
        return NgffDocument(path, zarr_format, well.version, "well", well=well)
    kind = "image" if "multiscales" in ome else "other"
    return NgffDocument(path, zarr_format, version, kind)


def find_ngff_documents(
    root: Path, max_depth: int = 4, max_entries: int = 20_000, max_documents: int = 200
) -> list[NgffDocument]:
    """Return the plate and well metadata documents in JSON files at or below ``root``.

    The walk is bounded (``max_depth`` folders deep, ``max_entries`` entries seen,
    ``max_documents`` JSON files parsed); files that are not NGFF plate/well documents
    are skipped.
    """
    root = Path(root)
    found: list[NgffDocument] = []
    visited = parsed = 0
    for folder, dirs, files in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if depth < max_depth else []
        visited += len(dirs) + len(files)
        if visited > max_entries:
            break
        for name in sorted(files):
            if not (name.lower().endswith(".json") or name == ".zattrs"):
                continue
            parsed += 1
            if parsed > max_documents:
                return sorted(found, key=lambda d: d.path)
            try:
                doc = parse_ngff_document(Path(folder) / name)
            except PlateFormatError as exc:
                logger.debug("skipping %s: %s", name, exc)
                continue
            if doc.kind in ("plate", "well"):
                found.append(doc)
    return sorted(found, key=lambda d: d.path)
