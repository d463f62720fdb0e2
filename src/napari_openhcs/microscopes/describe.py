"""Describing a :class:`Plate` for people (``napari-openhcs info``) and for scripts (``--json``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .plate import PLATE_FORMATS, Plate, parse_well, row_name

#: How many missing-image lines the text description shows before summarising.
MAX_MISSING_LINES = 10


def compact_numbers(values: Iterable[int]) -> str:
    """Return sorted integers with runs collapsed (``[1, 2, 3, 5]`` → ``"1-3, 5"``)."""
    nums = sorted(set(values))
    parts: list[str] = []
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        parts.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return ", ".join(parts)


def compact_wells(wells: Iterable[str]) -> str:
    """Return well names with runs along a row collapsed (``B02-B05, C03, AA01-AA48``)."""
    by_row: dict[int, list[int]] = {}
    for w in wells:
        r, c = parse_well(w)
        by_row.setdefault(r, []).append(c)
    parts: list[str] = []
    for r in sorted(by_row):
        name = row_name(r)
        for run in compact_numbers(by_row[r]).split(", "):
            lo, _, hi = run.partition("-")
            parts.append(f"{name}{int(lo):02d}" + (f"-{name}{int(hi):02d}" if hi else ""))
    return ", ".join(parts)


def _number(value: float) -> str:
    return f"{value:.6g}"


def _channel_text(plate: Plate) -> str:
    items = []
    for ch in plate.channels:
        extra = f" ({_number(ch.wavelength_nm)} nm)" if ch.wavelength_nm else ""
        items.append(f"{ch.index} {ch.name}{extra}")
    return f"{len(plate.channels)}: " + ", ".join(items)


def _layout_text(plate: Plate) -> str:
    n = plate.rows * plate.columns
    kind = f"{n}-well plate" if n in PLATE_FORMATS else f"{n} wells, not a standard plate"
    return f"{plate.rows} rows x {plate.columns} columns ({kind})"


def describe_plate(plate: Plate) -> str:
    """Return a human-readable description of ``plate`` (what ``napari-openhcs info`` prints).

    Parameters
    ----------
    plate : Plate
        The plate to describe.

    Returns
    -------
    str
        Several lines: format, name, layout, wells, sites, channels, z, timepoints,
        pixel size, image shape and dtype, image set, missing images and metadata.
    """
    lines = [f"Plate {plate.name} ({plate.microscope})"]

    def add(label: str, value: str) -> None:
        lines.append(f"  {label + ':':<13}{value}")

    add("folder", str(plate.root))
    add("layout", _layout_text(plate))
    add("wells", f"{len(plate.wells)} with images: {compact_wells(plate.wells)}")
    grid = f" (grid {plate.site_grid[0]} x {plate.site_grid[1]})" if plate.site_grid else ""
    add("sites", f"{len(plate.sites)} per well: {compact_numbers(plate.sites)}{grid}")
    add("channels", _channel_text(plate))
    spacing = f", spacing {_number(plate.z_spacing_um)} µm" if plate.z_spacing_um else ""
    add("z-planes", f"{len(plate.z_indices)}: {compact_numbers(plate.z_indices)}{spacing}")
    add("timepoints", f"{len(plate.timepoints)}: {compact_numbers(plate.timepoints)}")
    add("pixel size", f"{_number(plate.pixel_size_um)} µm" if plate.pixel_size_um else "unknown")
    add("image", f"{plate.image_shape[1]} x {plate.image_shape[0]} px (width x height), {plate.dtype}")
    add("image set", f"{plate.source}; {len(plate.records)} images")
    if plate.missing:
        wells = sorted({w for w, _ in plate.missing})
        add("missing", f"{len(plate.missing)} problem(s) in {len(wells)} well(s): {compact_wells(wells)}")
        for well, msg in plate.missing[:MAX_MISSING_LINES]:
            lines.append(f"    {well}: {msg}")
        if len(plate.missing) > MAX_MISSING_LINES:
            lines.append(f"    ... and {len(plate.missing) - MAX_MISSING_LINES} more")
    else:
        add("missing", "none")
    if plate.metadata:
        lines.append("  metadata:")
        width = max(len(k) for k, _ in plate.metadata) + 2
        lines.extend(f"    {k + ':':<{width}}{v}" for k, v in plate.metadata)
    return "\n".join(lines)


def plate_summary(plate: Plate) -> dict[str, Any]:
    """Return a JSON-serialisable summary of ``plate`` (what ``napari-openhcs info --json`` prints).

    Parameters
    ----------
    plate : Plate
        The plate to summarise.

    Returns
    -------
    dict
        Plain ``str``/``int``/``float``/``list``/``dict``/``None`` values only.
    """
    metadata: dict[str, str] = {}
    for key, value in plate.metadata:
        metadata.setdefault(key, value)
    return {
        "format": plate.microscope,
        "name": plate.name,
        "root": str(plate.root),
        "layout": {"rows": plate.rows, "columns": plate.columns, "wells": plate.rows * plate.columns},
        "wells": list(plate.wells),
        "sites": list(plate.sites),
        "site_grid": list(plate.site_grid) if plate.site_grid else None,
        "channels": [
            {"index": c.index, "name": c.name, "wavelength_nm": c.wavelength_nm, "color": c.color}
            for c in plate.channels
        ],
        "z_indices": list(plate.z_indices),
        "z_spacing_um": plate.z_spacing_um,
        "timepoints": list(plate.timepoints),
        "pixel_size_um": plate.pixel_size_um,
        "image_shape": list(plate.image_shape),
        "dtype": plate.dtype,
        "source": plate.source,
        "reader": plate.reader,
        "n_images": len(plate.records),
        "missing": [{"well": w, "message": m} for w, m in plate.missing],
        "site_positions": [
            {"well": w, "site": s, "y_um": y, "x_um": x} for w, s, y, x in plate.site_positions
        ],
        "metadata": metadata,
    }
