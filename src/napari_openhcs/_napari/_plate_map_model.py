"""What the plate map draws: well colours, tooltips and the legend (no Qt)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..microscopes.plate import parse_well, row_name, well_name

#: Fill colour of a well per run status; ``"absent"`` for wells without images.
STATUS_COLORS: dict[str, str] = {
    "absent": "#262930",
    "pending": "#7f8590",
    "running": "#f5a623",
    "done": "#3cb44b",
    "skipped": "#4a90d9",
    "cancelled": "#9b8fc9",
    "failed": "#e6194b",
}

# viridis at 0, .25, .5, .75, 1
_VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


def value_color(fraction: float) -> str:
    """Return the viridis colour ``#RRGGBB`` at ``fraction`` (0..1; NaN is grey)."""
    if fraction is None or math.isnan(fraction):
        return STATUS_COLORS["pending"]
    f = min(max(fraction, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(f), len(_VIRIDIS) - 2)
    t = f - i
    rgb = [round(a + (b - a) * t) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1])]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


@dataclass(frozen=True)
class Legend:
    """The plate map's legend: colour swatches, or a gradient between two values."""

    title: str
    swatches: tuple[tuple[str, str], ...] = ()
    gradient: tuple[float, float] | None = None


class PlateMapModel:
    """Colours and labels of a plate's wells, for status or for a measured value.

    Parameters
    ----------
    rows, columns
        Plate layout (8 × 12, 16 × 24, 32 × 48...).
    wells
        Wells that have images.
    """

    def __init__(self, rows: int, columns: int, wells: tuple[str, ...] | list[str]) -> None:
        self.rows = rows
        self.columns = columns
        self.wells = tuple(wells)
        self._present = set(self.wells)
        self.mode = "status"
        self.status: Mapping[str, str] = {}
        self.errors: Mapping[str, str] = {}
        self.values: Mapping[str, float] = {}
        self.value_name = ""

    def well_at(self, row: int, column: int) -> str | None:
        """Return the well at 0-based ``row`` and ``column`` if it has images."""
        if not (0 <= row < self.rows and 0 <= column < self.columns):
            return None
        name = well_name(row, column + 1)
        return name if name in self._present else None

    def position(self, well: str) -> tuple[int, int]:
        """Return the 0-based ``(row, column)`` of a well."""
        r, c = parse_well(well)
        return r, c - 1

    def row_label(self, row: int) -> str:
        """Return the row letters (``A``..``AF``)."""
        return row_name(row)

    def _value_range(self) -> tuple[float, float] | None:
        vals = [v for w, v in self.values.items() if w in self._present and not math.isnan(v)]
        if not vals:
            return None
        return min(vals), max(vals)

    def color(self, well: str) -> str:
        """Return the fill colour of ``well`` in the current mode."""
        return self._color(well, self._value_range() if self.mode == "value" else None)

    def _color(self, well: str, rng: tuple[float, float] | None) -> str:
        if well not in self._present:
            return STATUS_COLORS["absent"]
        status = self.status.get(well, "pending")
        if self.mode == "value" and status != "failed":
            value = self.values.get(well)
            if rng is None or value is None:
                return STATUS_COLORS["pending"]
            lo, hi = rng
            return value_color(0.5 if hi == lo else (value - lo) / (hi - lo))
        return STATUS_COLORS.get(status, STATUS_COLORS["pending"])

    def cells(self) -> dict[str, list[tuple[int, int]]]:
        """Return every grid position ``(row, column)`` (0-based) grouped by its fill colour.

        One pass over the plate (the value range is found once), for painting all wells.
        """
        rng = self._value_range() if self.mode == "value" else None
        groups: dict[str, list[tuple[int, int]]] = {}
        present: set[tuple[int, int]] = set()
        for well in self.wells:
            r, c = self.position(well)
            if 0 <= r < self.rows and 0 <= c < self.columns:
                present.add((r, c))
                groups.setdefault(self._color(well, rng), []).append((r, c))
        absent = [(r, c) for r in range(self.rows) for c in range(self.columns) if (r, c) not in present]
        if absent:
            groups.setdefault(STATUS_COLORS["absent"], []).extend(absent)
        return groups

    def tooltip(self, well: str) -> str:
        """Return the tooltip of ``well``: name, status, value, and the error of a failed well."""
        if well not in self._present:
            return f"{well}: no images"
        lines = [f"{well}: {self.status.get(well, 'pending')}"]
        if well in self.values:
            lines.append(f"{self.value_name}: {self.values[well]:.4g}")
        if well in self.errors:
            lines.append(self.errors[well])
        return "\n".join(lines)

    def legend(self) -> Legend:
        """Return the legend for the current mode."""
        if self.mode == "value":
            return Legend(self.value_name or "value", gradient=self._value_range() or (0.0, 0.0))
        present = set(self.status.values())
        shown = [s for s in ("pending", "running", "done", "failed", "skipped", "cancelled")
                 if s in ("pending", "running", "done", "failed") or s in present]
        return Legend("status", swatches=tuple((s, STATUS_COLORS[s]) for s in shown))


def per_well_values(tables_dir: str | Path) -> dict[str, dict[str, float]]:
    """Return measured values per well from the plate tables in ``tables_dir``.

    For every plate CSV (``<name>.csv`` with a ``well`` column) this gives
    ``"<name>: rows"`` (rows per well, e.g. cells when a row is a cell), and
    ``"<name>: mean <column>"`` and ``"<name>: total <column>"`` for each numeric
    column (e.g. ``cell_counts: total count``).

    Returns
    -------
    dict
        ``{label: {well: value}}``.
    """
    out: dict[str, dict[str, float]] = {}
    folder = Path(tables_dir)
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "well" not in reader.fieldnames:
                continue
            rows = list(reader)
        name = path.stem
        counts: dict[str, float] = {}
        sums: dict[str, dict[str, list[float]]] = {}
        for row in rows:
            well = row["well"]
            counts[well] = counts.get(well, 0) + 1
            for col, cell in row.items():
                if col == "well" or col is None:
                    continue
                try:
                    value = float(cell)
                except (TypeError, ValueError):
                    sums.setdefault(col, {})["__text__"] = []
                    continue
                sums.setdefault(col, {}).setdefault(well, []).append(value)
        out[f"{name}: rows"] = counts
        for col, per_well in sums.items():
            if "__text__" in per_well:
                continue
            out[f"{name}: mean {col}"] = {w: sum(v) / len(v) for w, v in per_well.items() if v}
            out[f"{name}: total {col}"] = {w: float(sum(v)) for w, v in per_well.items() if v}
    return out
