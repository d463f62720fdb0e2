"""Write an OME-Zarr 0.5 (Zarr v3) HCS plate, one well at a time, atomically.

Layout: ``<plate>/zarr.json`` (plate), ``<plate>/<row>/zarr.json`` (row group),
``<plate>/<row>/<col>/zarr.json`` (well), ``<plate>/<row>/<col>/<field>/zarr.json``
(image with ``multiscales`` and ``omero``), ``<plate>/<row>/<col>/<field>/<level>``
(Zarr v3 arrays, axes ``t, c, z, y, x``). Rows are letters (``B``), columns are
zero-padded (``03``), as many instruments and tools write them.

Guarantees
----------
- A well is written into a temporary folder ``<plate>/.tmp-<row>-<col>-<uuid>``
  and renamed to ``<plate>/<row>/<col>`` only once every byte is written: a well
  visible at its final path is complete. On failure the temporary folder is removed.
- :meth:`HCSPlateWriter.write_well` never touches the plate's ``zarr.json``, so
  several processes may write different wells of one plate at once. Only the
  main process lists the wells, with :meth:`HCSPlateWriter.register_completed_wells`
  (temporary file + :func:`os.replace`).
- Data is not ``fsync``-ed unless ``fsync=True``: a killed process never leaves a
  partial well, but a power cut may lose recently written wells.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..microscopes.plate import canonical_well, parse_well, row_index, well_name
from . import _ngff
from ._ngff import ATTRS_KEY, LAYOUT_VERSION, WRITER_NAME, OutputChannel
from ._plate_listing import scan_complete_wells, well_record
from ._pyramid import Downsample
from ._well_tree import CLEVEL, check_fields, fsync_tree, move_into_place, remove_path, write_well_tree
from .atomic import (
    StorageFullError,
    atomic_write_json,
    read_json,
    storage_errors,
    translate_os_error,
)
from .lock import LOCK_FILE_NAME

logger = logging.getLogger(__name__)

__all__ = ["HCSPlateWriter", "OutputChannel", "is_our_plate"]

#: Default chunk edge (pixels) on y and x.
CHUNK_YX = 1024
_TMP_PREFIXES = (".tmp-", ".trash-")


def is_our_plate(path: str | os.PathLike[str]) -> bool:
    """Return True if ``path`` holds an OME-Zarr plate written by napari-openhcs."""
    doc = read_json(Path(path) / "zarr.json")
    if not doc:
        return False
    attrs = doc.get("attributes", {})
    writer = attrs.get(ATTRS_KEY, {}).get("writer", {})
    return "plate" in attrs.get("ome", {}) and writer.get("name") == WRITER_NAME


def _package_version() -> str:
    from .. import __version__

    return __version__


class HCSPlateWriter:
    """Writer of one OME-Zarr 0.5 HCS plate. Creating it does not touch the disk.

    Parameters
    ----------
    path
        Plate folder (conventionally ending in ``.zarr``).
    plate_name
        Plate name written to the metadata.
    rows, columns
        Plate layout (8 × 12 for a 96-well plate); all rows and columns are listed.
    attributes
        Custom plate attributes (provenance, run info), stored under
        ``attributes["napari_openhcs"]`` of the plate ``zarr.json``.
    chunk_yx
        Chunk edge on y and x; chunks are ``(1, 1, 1, min(Y, chunk_yx), min(X, chunk_yx))``.
    compression_level
        Blosc compression level (0-9; zstd codec at level 2 x n - 1, byte shuffle) of the
        image chunks: higher is smaller and slower; 0 stores them uncompressed.
    fsync
        ``fsync`` every file of a well before it is renamed into place.

    Notes
    -----
    The writer is picklable (plain attributes), so it can be sent to worker processes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        plate_name: str,
        rows: int,
        columns: int,
        attributes: dict[str, Any] | None = None,
        chunk_yx: int = CHUNK_YX,
        fsync: bool = False,
        compression_level: int = CLEVEL,
    ) -> None:
        if rows < 1 or columns < 1:
            raise ValueError(f"plate layout must be at least 1 × 1, got {rows} × {columns}")
        self._path = Path(path)
        self.plate_name = plate_name
        self.rows = int(rows)
        self.columns = int(columns)
        self.attributes = dict(attributes or {})
        self.chunk_yx = int(chunk_yx)
        self.compression_level = int(compression_level)
        self.fsync = fsync
        #: well -> field count, as last read from its ``zarr.json`` (main process; see
        #: ``register_completed_wells``)
        self._field_counts: dict[str, int] = {}

    @property
    def path(self) -> Path:
        """The plate folder."""
        return self._path

    def __repr__(self) -> str:
        return f"HCSPlateWriter({str(self._path)!r}, {self.rows}×{self.columns})"

    # ------------------------------------------------------------------ plate
    def _custom_attributes(self) -> dict[str, Any]:
        writer = {"name": WRITER_NAME, "version": _package_version(), "layout": LAYOUT_VERSION}
        return {**self.attributes, "writer": writer}

    def create(self, overwrite: bool = False) -> None:
        """Create the plate, or open an existing one of ours to resume it.

        Parameters
        ----------
        overwrite
            Delete an existing plate first. Only a plate written by napari-openhcs
            is ever deleted (the lock file, if any, is kept).

        Raises
        ------
        FileExistsError
            ``path`` exists, is not empty and is not a napari-openhcs plate; or it
            is one with another layout and ``overwrite`` is False.
        OutputNotWritableError
            The folder cannot be written.
        """
        path = self._path
        with storage_errors(path):
            if path.exists() and not path.is_dir():
                raise FileExistsError(f"output {path} exists and is a file, not a plate folder")
            content = [p for p in path.iterdir() if p.name != LOCK_FILE_NAME] if path.exists() else []
            wells: list[str] = []
            if content and not is_our_plate(path):
                raise FileExistsError(
                    f"refusing to {'delete' if overwrite else 'write into'} {path}: it is not "
                    "empty and is not an OME-Zarr plate written by napari-openhcs; choose an "
                    "empty or new output folder"
                )
            if content and overwrite:
                logger.info("overwriting plate %s", path)
                for entry in content:
                    remove_path(entry)
            elif content:
                self._check_layout()
                self._remove_leftovers()
                wells = sorted(self.completed_wells(), key=parse_well)
                logger.info("resuming plate %s with %d completed wells", path, len(wells))
            path.mkdir(parents=True, exist_ok=True)
        self._write_plate_metadata(wells)

    def _check_layout(self) -> None:
        doc = read_json(self._path / "zarr.json") or {}
        plate = doc.get("attributes", {}).get("ome", {}).get("plate", {})
        old = (len(plate.get("rows", [])), len(plate.get("columns", [])))
        if old != (self.rows, self.columns):
            raise FileExistsError(
                f"{self._path} holds a {old[0]} × {old[1]} plate but this run writes "
                f"{self.rows} × {self.columns}; overwrite it or choose another output folder"
            )

    def _remove_leftovers(self) -> None:
        """Remove temporary folders left by interrupted runs (main process only)."""
        for entry in self._path.iterdir():
            if entry.name.startswith(_TMP_PREFIXES):
                logger.info("removing leftover %s", entry)
                remove_path(entry)

    def _write_plate_metadata(self, wells: Sequence[str], field_count: int | None = None) -> None:
        attrs = _ngff.plate_attributes(
            name=self.plate_name,
            rows=self.rows,
            columns=self.columns,
            wells=wells,
            field_count=field_count,
            custom=self._custom_attributes(),
        )
        # rewritten after every well: compact, so that its encoding stays cheap on a full plate
        atomic_write_json(self._path / "zarr.json", _ngff.group_doc(attrs), fsync=self.fsync, compact=True)

    def register_completed_wells(
        self, wells: Sequence[str] | None = None, *, reread: Sequence[str] | None = None
    ) -> list[str]:
        """List ``wells`` (default: every complete well on disk) in the plate metadata.

        Main process only: rewrites the plate ``zarr.json`` atomically. Wells not
        present at their final path are skipped with a warning.

        Parameters
        ----------
        wells : sequence of str, optional
            The wells to list; ``None`` scans the plate and lists every complete well.
        reread : sequence of str, optional
            With ``wells`` given, the wells whose ``zarr.json`` may have changed since this
            writer last read it (the well just written): the others are read once and
            remembered, so listing one more well reads one well, not every well of the
            plate. ``None`` reads every listed well again.

        Returns
        -------
        list of str
            The wells now listed, sorted.
        """
        if wells is None:
            present = {w: n for w, (_, n) in self._scan_wells().items()}
            wanted = list(present)
        else:
            wanted = [canonical_well(w) for w in wells]
            again = set(wanted) if reread is None else {canonical_well(w) for w in reread}
            present = {}
            for well in set(wanted):
                if well in again or well not in self._field_counts:
                    found = self._read_well(well)
                    if found is None:
                        self._field_counts.pop(well, None)
                        continue
                    self._field_counts[well] = found[1]
                present[well] = self._field_counts[well]
        listed = []
        for well in sorted(set(wanted), key=parse_well):
            if well in present:
                listed.append(well)
            else:
                logger.warning("well %s is not complete in %s; not listed", well, self._path)
        field_count = max((present[w] for w in listed), default=None)
        self._write_plate_metadata(listed, field_count)
        return listed

    # ------------------------------------------------------------------ wells
    def well_path(self, well: str) -> Path:
        """Return the final folder of ``well`` (``<plate>/B/03`` for ``B03``)."""
        row, col = _ngff.well_path_parts(well)
        return self._path / row / col

    def _scan_wells(self) -> dict[str, tuple[dict[str, Any], int]]:
        """``{well: (completion record, field count)}`` of every complete well on disk."""
        out = scan_complete_wells(self._path)
        self._field_counts = {w: n for w, (_, n) in out.items()}
        return out

    def _read_well(self, well: str) -> tuple[dict[str, Any], int] | None:
        """``(completion record, field count)`` of ``well`` when it is complete on disk."""
        return well_record(self.well_path(well) / "zarr.json")

    def completed_wells(self) -> dict[str, dict[str, Any]]:
        """Return ``{well: completion record}`` for every well complete on disk.

        The record is what ``write_well`` stored: its ``well_attributes`` plus
        ``completed_at`` (ISO 8601, UTC).
        """
        return {w: rec for w, (rec, _) in self._scan_wells().items()}

    def remove_well(self, well: str) -> None:
        """Delete ``well`` and drop it from the plate metadata (main process only)."""
        final = self.well_path(well)
        with storage_errors(final):
            if final.exists():
                trash = self._path / f".trash-{uuid.uuid4().hex}"
                os.rename(final, trash)
                remove_path(trash)
        self._field_counts.pop(canonical_well(well), None)
        doc = read_json(self._path / "zarr.json") or {}
        listed = doc.get("attributes", {}).get("ome", {}).get("plate", {}).get("wells", [])
        names = [well_name(row_index(w["path"].split("/")[0]), int(w["path"].split("/")[1])) for w in listed]
        keep = [w for w in names if w != canonical_well(well)]
        if keep != names:
            self.register_completed_wells(keep)

    def write_well(
        self,
        well: str,
        fields: Sequence[np.ndarray],
        *,
        channels: Sequence[OutputChannel],
        pixel_size_um: float | None,
        z_spacing_um: float | None = None,
        well_attributes: dict[str, Any] | None = None,
        time_interval_s: float | None = None,
        downsample: Downsample = "mean",
        missing_planes: Sequence[Sequence[tuple[int, int, int]]] | None = None,
        extents: Sequence[tuple[int, int]] | None = None,
        labels: Sequence[dict[str, np.ndarray]] | None = None,
    ) -> None:
        """Write one well (all its fields) atomically; an existing well is replaced.

        Parameters
        ----------
        well
            Well name such as ``"B03"``.
        fields
            One numpy array per field (site), each 5-D ``(T, C, Z, Y, X)``; all
            fields of a well have the same shape and dtype.
        channels
            One :class:`OutputChannel` per ``C``.
        pixel_size_um
            µm per pixel on y and x (``None``: unknown, unit-less scale 1).
        z_spacing_um
            µm between z planes (``None``: unknown).
        well_attributes
            Completion record (e.g. ``{"pipeline_hash": ...}``), stored under the
            well's ``attributes["napari_openhcs"]`` and returned by :meth:`completed_wells`.
        time_interval_s
            Seconds between timepoints (``None``: unknown).
        downsample
            ``"mean"`` for intensity images, ``"nearest"`` for label images.
        missing_planes
            Per field, the ``(t, c, z)`` slots with no image: their chunks are not
            written (they read as the fill value, 0), they are listed in the image's
            ``attributes["napari_openhcs"]["missing_planes"]`` and left out of the
            ``omero`` windows.
        extents
            Per field, the ``(Y, X)`` extent of the real image at the top-left of a
            plate-wide canvas; the rest is padding (fill value). Recorded as
            ``attributes["napari_openhcs"]["extent"]`` of the image; the ``omero``
            windows use only the extent.
        labels
            Per field, label images (name → integer ``(T, 1, Z, Y, X)`` array of the
            field's ``T``, ``Z``, ``Y`` and ``X``), written as NGFF 0.5 label images
            (``image-label``, nearest-neighbour pyramid) under ``<field>/labels/<name>``.

        Raises
        ------
        ValueError
            The arrays do not have the expected shape, or channels do not match ``C``.
        StorageFullError
            The disk filled up; nothing of the well is left behind.
        """
        well = canonical_well(well)
        r, c = parse_well(well)
        if r >= self.rows or c > self.columns:
            raise ValueError(f"well {well} is outside the {self.rows} × {self.columns} plate layout")
        arrays = check_fields(well, fields, channels)
        if not (self._path / "zarr.json").is_file():
            raise FileNotFoundError(f"plate {self._path} does not exist: call create() first")
        row, col = _ngff.well_path_parts(well)
        final = self._path / row / col
        tmp = self._path / f".tmp-{row}-{col}-{uuid.uuid4().hex}"
        record = {
            "completed_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(well_attributes or {}),
        }
        try:
            write_well_tree(
                tmp,
                well,
                arrays,
                channels,
                pixel_size_um=pixel_size_um,
                z_spacing_um=z_spacing_um,
                time_interval_s=time_interval_s,
                downsample=downsample,
                record=record,
                missing_planes=missing_planes,
                extents=extents,
                labels=labels,
                chunk_yx=self.chunk_yx,
                clevel=self.compression_level,
            )
            if self.fsync:
                fsync_tree(tmp)
            self._ensure_row_group(row)
            move_into_place(tmp, final, self._path)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                new = translate_os_error(exc, final)
                if isinstance(new, StorageFullError):
                    raise StorageFullError(final, new.errno or 0) from exc
                if new is not exc:
                    raise new from exc
            raise
        logger.debug("well %s written to %s", well, final)

    def _ensure_row_group(self, row: str) -> None:
        """Create ``<plate>/<row>`` if missing; safe when processes race to create it."""
        row_dir = self._path / row
        row_dir.mkdir(exist_ok=True)
        if not (row_dir / "zarr.json").is_file():
            atomic_write_json(row_dir / "zarr.json", _ngff.group_doc({}))
