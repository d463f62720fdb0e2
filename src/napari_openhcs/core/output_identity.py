"""What an output plate is: the input it came from and the pipeline that made it.

An output folder belongs to one input plate and one pipeline. The plate's
attributes record the input's resolved path and a content fingerprint (the
relative paths and sizes of the files it is read from) and the pipeline's hash;
a run that does not match is refused unless it overwrites. Each well records a
key of the files it read (path, size, modification time in ns), so a rerun skips
a well only when those files and the pipeline are unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from ..io.atomic import read_json
from ..microscopes.plate import Plate
from .context import ProcessingContext
from .errors import OutputLocationError


def _record_files(root: Path, paths: set[str]) -> list[Path]:
    """The files on disk behind record paths (a Zarr array path → its folder's files)."""
    files: list[Path] = []
    for rel in sorted(paths):
        p = root / rel
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                files.extend(Path(dirpath) / f for f in sorted(filenames))
        else:
            files.append(p)
    return files


def _stat_items(root: Path, files: list[Path], *, mtime: bool) -> tuple[str, str | None]:
    """Hash the relative path and size (and mtime, ns) of each file, stat-ing each once.

    Returns the key and why the files cannot be read safely (``None``: they can): every
    file must be a regular file before a worker opens it (a FIFO where a chunk or tile
    should be would block the reader for ever; a symlink loop never resolves). A missing
    file is left to the reader, which reports it with its context.
    """
    h = hashlib.sha256()
    problem: str | None = None
    for f in files:
        try:
            st = f.stat()
            item: Any = [st.st_size, st.st_mtime_ns] if mtime else [st.st_size]
            if problem is None and not stat.S_ISREG(st.st_mode):
                problem = f"{os.fsdecode(f)} is not a regular file (a FIFO, device or socket); it is not read"
        except FileNotFoundError:
            item = None
        except OSError as exc:
            item = None
            problem = problem or f"cannot read {os.fsdecode(f)}: {exc.strerror or exc}"
        try:
            rel = f.relative_to(root).as_posix()
        except ValueError:
            rel = str(f)
        h.update(json.dumps([rel, item]).encode("utf-8", "surrogateescape"))
    return h.hexdigest()[:24], problem


def plate_fingerprint(plate: Plate) -> str:
    """A fingerprint of the plate's content: relative paths and sizes of its image files."""
    root = Path(plate.root)
    return _stat_items(root, _record_files(root, {r.path for r in plate.records}), mtime=False)[0]


def scan_well_inputs(ctx: ProcessingContext) -> tuple[str, str | None]:
    """Return the key of the files one well reads (relative path, size and mtime in ns of
    each) and why they cannot be read safely (``None``: they can), in one pass."""
    root = Path(ctx.inputs.root)
    return _stat_items(root, _record_files(root, {r.path for r in ctx.inputs.records}), mtime=True)


def well_input_key(ctx: ProcessingContext) -> str:
    """A key of the files one well reads: relative path, size and mtime (ns) of each."""
    return scan_well_inputs(ctx)[0]


def input_identity(plate: Plate) -> dict[str, Any]:
    """The input plate's identity as stored in the output's attributes."""
    return {
        "path": os.fsdecode(Path(plate.root).resolve()),
        "name": plate.name,
        "microscope": plate.microscope,
        "source": plate.source,
        "wells": len(plate.wells),
        "fingerprint": plate_fingerprint(plate),
    }


def recorded_provenance(plate_path: Path) -> dict[str, Any] | None:
    """The provenance stored in an existing output plate (``None``: no plate there)."""
    doc = read_json(plate_path / "zarr.json")
    if doc is None:
        return None
    attrs = doc.get("attributes", {})
    record = attrs.get("napari_openhcs") if isinstance(attrs, dict) else None
    return record if isinstance(record, dict) else None


def check_output_identity(plate_path: Path, identity: dict[str, Any], pipeline_hash: str) -> None:
    """Refuse to write into an output plate made from another input plate or pipeline.

    Raises
    ------
    OutputLocationError
        Naming what the output holds and what this run would write.
    """
    old = recorded_provenance(plate_path)
    if not old:
        return
    old_input = old.get("input") or {}
    same_path = old_input.get("path") == identity["path"]
    old_fp = old_input.get("fingerprint")
    if not same_path:
        raise OutputLocationError(
            f"output {plate_path} holds results of another input plate ({old_input.get('path')}, "
            f"fingerprint {old_fp}), not of {identity['path']} (fingerprint "
            f"{identity['fingerprint']}); choose another --out or pass --overwrite to replace it"
        )
    old_hash = old.get("pipeline_hash")
    if old_hash is not None and old_hash != pipeline_hash:
        raise OutputLocationError(
            f"output {plate_path} was made by another pipeline (hash {old_hash}) than this run's "
            f"(hash {pipeline_hash}); choose another --out or pass --overwrite to replace its wells"
        )
