"""Measurement tables: one CSV per well, consolidated into one plate CSV.

Layout next to the output plate::

    <directory>/<name>/B03.csv     one table per well (write_table_csv / well_table_path)
    <directory>/<name>.csv         all wells, leading ``well`` column (combine_well_tables)
    <directory>/<name>.parquet     the same, when pyarrow is installed
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..microscopes.plate import canonical_well, parse_well
from .atomic import atomic_write_bytes, atomic_write_with

logger = logging.getLogger(__name__)

__all__ = ["combine_well_tables", "read_table_csv", "well_table_path", "write_table_csv"]

Table = Mapping[str, Any] | Sequence[Mapping[str, Any]]


def well_table_path(directory: str | os.PathLike[str], name: str, well: str) -> Path:
    """Return where the table ``name`` of ``well`` goes: ``<directory>/<name>/<well>.csv``."""
    return Path(directory) / name / f"{canonical_well(well)}.csv"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def _columns(table: Table) -> tuple[list[str], list[list[Any]]]:
    """Return ``(header, rows)`` of a dict of columns or a list of row dicts."""
    if isinstance(table, Mapping):
        header = [str(k) for k in table]
        cols = [np.asarray(v) for v in table.values()]
        for key, col in zip(header, cols):
            if col.ndim != 1:
                raise ValueError(f"table column {key!r} must be 1-D, got shape {col.shape}")
        lengths = {len(c) for c in cols}
        if len(lengths) > 1:
            sizes = {k: len(c) for k, c in zip(header, cols)}
            raise ValueError(f"table columns have different lengths: {sizes}")
        return header, [list(row) for row in zip(*cols)]
    header = []
    for row in table:
        header.extend(str(k) for k in row if str(k) not in header)
    return header, [[row.get(k) for k in header] for row in table]


def write_table_csv(path: str | os.PathLike[str], table: Table) -> Path:
    """Write ``table`` as CSV, atomically.

    Parameters
    ----------
    path
        Target file; parent folders are created.
    table
        Either ``{column: 1-D array-like}`` (all the same length) or a list of row
        dicts (columns in order of first appearance; missing cells are empty).

    Returns
    -------
    Path
        ``path``.
    """
    header, rows = _columns(table)
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([_cell(v) for v in row] for row in rows)
    return atomic_write_bytes(path, buf.getvalue().encode("utf-8"))


def _parse_column(values: list[str]) -> np.ndarray:
    for kind in (int, float):
        try:
            return np.array([kind(v) if v != "" else np.nan for v in values])
        except ValueError:
            continue
    return np.array(values, dtype=object)


def read_table_csv(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a CSV written by :func:`write_table_csv` into ``{column: array}``.

    Columns whose cells all parse as integers (or floats) become numeric arrays
    (an empty cell makes the column float with NaN); others are object arrays of str.
    """
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    return {h: _parse_column([r[i] if i < len(r) else "" for r in body]) for i, h in enumerate(header)}


def combine_well_tables(
    directory: str | os.PathLike[str],
    name: str,
    *,
    parquet: bool = True,
    wells: Iterable[str] | None = None,
    plate: str | None = None,
) -> Path:
    """Concatenate the per-well tables ``<directory>/<name>/<well>.csv`` into one.

    The plate table ``<directory>/<name>.csv`` has one row per object, leading
    ``plate`` (when ``plate`` is given) and ``well`` columns, and the union of the
    wells' columns (missing cells empty). Wells are in plate order (A01, A02, …,
    B01, …). When pyarrow is installed and ``parquet`` is true,
    ``<directory>/<name>.parquet`` is written too. With ``wells``, only the tables
    of those wells are read (files in the folder that the run did not write are
    ignored).

    Returns
    -------
    Path
        The plate CSV.
    """
    folder = Path(directory) / name
    wanted = None if wells is None else {canonical_well(w) for w in wells}
    per_well: list[tuple[str, Path]] = []
    if folder.is_dir():
        for path in folder.glob("*.csv"):
            try:
                well = canonical_well(path.stem)
            except ValueError:
                logger.warning("ignoring %s: its name is not a well name", path)
                continue
            if wanted is not None and (well not in wanted or path.name != f"{well}.csv"):
                logger.warning("ignoring %s: not a table of a well of this plate", path)
                continue
            if not path.is_file():
                logger.warning("ignoring %s: not a regular file", path)
                continue
            per_well.append((well, path))
    per_well.sort(key=lambda item: parse_well(item[0]))
    header = ["plate", "well"] if plate is not None else ["well"]
    extra = {"plate": plate} if plate is not None else {}
    rows: list[dict[str, str]] = []
    for well, path in per_well:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            for col in reader.fieldnames or []:
                if col not in header:
                    header.append(col)
            for row in reader:
                rows.append({**row, **extra, "well": well})
    out = Path(directory) / f"{name}.csv"

    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out, buf.getvalue().encode("utf-8"))
    logger.info("combined %d well tables into %s (%d rows)", len(per_well), out, len(rows))
    if parquet:
        _write_parquet(out)
    return out


def _write_parquet(csv_path: Path) -> Path | None:
    try:
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError:
        return None
    target = csv_path.with_suffix(".parquet")
    table = pa_csv.read_csv(csv_path)
    atomic_write_with(target, lambda fh: pq.write_table(table, fh))
    return target
