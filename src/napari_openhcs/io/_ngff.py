"""OME-NGFF 0.5 metadata: plate, well, image (``multiscales`` + ``omero``) blocks.

Plain functions returning JSON-ready dicts, so they can be tested without a disk.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..microscopes.plate import parse_well, row_name

NGFF_VERSION = "0.5"
#: Key of our own attributes in every group we write (NGFF allows extra keys).
ATTRS_KEY = "napari_openhcs"
#: Marker identifying a plate written by this package.
WRITER_NAME = "napari-openhcs"
#: Version of our plate layout (bump on incompatible layout changes).
LAYOUT_VERSION = 1
AXIS_NAMES = ("t", "c", "z", "y", "x")

_HEX_RE = re.compile(r"^[0-9A-Fa-f]{6}$")


@dataclass(frozen=True)
class OutputChannel:
    """A channel of an output image: its name and display colour.

    Attributes
    ----------
    name
        Channel label shown in viewers (``omero`` ``label``).
    color
        Display colour as ``"RRGGBB"`` hex (a leading ``#`` is accepted and dropped).
    """

    name: str
    color: str = "FFFFFF"

    def __post_init__(self) -> None:
        color = self.color.lstrip("#")
        if not _HEX_RE.match(color):
            raise ValueError(f"channel {self.name!r}: colour {self.color!r} is not a 'RRGGBB' hex colour")
        object.__setattr__(self, "color", color.upper())


def well_path_parts(well: str) -> tuple[str, str]:
    """Return the ``(row, column)`` group names of ``well``: ``"B03"`` → ``("B", "03")``."""
    r, c = parse_well(well)
    return row_name(r), f"{c:02d}"


def layout_names(rows: int, columns: int) -> tuple[list[str], list[str]]:
    """Return the row names (``A``…) and zero-padded column names (``01``…) of a plate."""
    return [row_name(r) for r in range(rows)], [f"{c:02d}" for c in range(1, columns + 1)]


def group_doc(attributes: dict[str, Any]) -> dict[str, Any]:
    """Return the ``zarr.json`` document of a Zarr v3 group with ``attributes``."""
    return {"zarr_format": 3, "node_type": "group", "attributes": attributes}


def plate_attributes(
    *,
    name: str,
    rows: int,
    columns: int,
    wells: Sequence[str],
    field_count: int | None,
    custom: dict[str, Any],
) -> dict[str, Any]:
    """Return the attributes of the plate group.

    Every row and column of the layout is listed (so ``rowIndex``/``columnIndex``
    are positions on the physical plate); only ``wells`` are listed as wells.
    ``plate.version`` is written as well as ``ome.version``: the 0.5 JSON schema
    still requires it (ome-zarr-py writes it too).
    """
    row_names, col_names = layout_names(rows, columns)
    well_entries = []
    for well in sorted(wells, key=parse_well):
        r, c = parse_well(well)
        if r >= rows or c > columns:
            raise ValueError(f"well {well} is outside the {rows} × {columns} plate layout")
        well_entries.append(
            {"path": f"{row_names[r]}/{col_names[c - 1]}", "rowIndex": r, "columnIndex": c - 1}
        )
    plate: dict[str, Any] = {
        "version": NGFF_VERSION,
        "name": name,
        "rows": [{"name": n} for n in row_names],
        "columns": [{"name": n} for n in col_names],
        "wells": well_entries,
    }
    if field_count:
        plate["field_count"] = int(field_count)
    return {"ome": {"version": NGFF_VERSION, "plate": plate}, ATTRS_KEY: custom}


def well_attributes(n_fields: int, record: dict[str, Any]) -> dict[str, Any]:
    """Return the attributes of a well group with ``n_fields`` fields."""
    images = [{"path": str(i)} for i in range(n_fields)]
    return {"ome": {"version": NGFF_VERSION, "well": {"images": images}}, ATTRS_KEY: record}


def _axes(
    pixel_size_um: float | None, z_spacing_um: float | None, time_interval_s: float | None
) -> list[dict[str, Any]]:
    t: dict[str, Any] = {"name": "t", "type": "time"}
    if time_interval_s is not None:
        t["unit"] = "second"
    axes = [t, {"name": "c", "type": "channel"}]
    z: dict[str, Any] = {"name": "z", "type": "space"}
    if z_spacing_um is not None or pixel_size_um is not None:
        z["unit"] = "micrometer"  # every space axis in one unit (scale 1 where z is unknown)
    axes.append(z)
    for n in ("y", "x"):
        ax: dict[str, Any] = {"name": n, "type": "space"}
        if pixel_size_um is not None:
            ax["unit"] = "micrometer"
        axes.append(ax)
    return axes


def multiscales(
    *,
    name: str,
    n_levels: int,
    pixel_size_um: float | None,
    z_spacing_um: float | None,
    time_interval_s: float | None = None,
    downsample: str = "mean",
) -> list[dict[str, Any]]:
    """Return the ``multiscales`` list of a 5-D (t, c, z, y, x) image.

    Level ``i`` is at path ``"i"`` with scale ``pixel_size * 2**i`` on y and x.
    """
    px = float(pixel_size_um) if pixel_size_um is not None else 1.0
    dz = float(z_spacing_um) if z_spacing_um is not None else 1.0
    dt = float(time_interval_s) if time_interval_s is not None else 1.0
    datasets = [
        {
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": [dt, 1.0, dz, px * 2**level, px * 2**level]}
            ],
        }
        for level in range(n_levels)
    ]
    return [
        {
            "name": name,
            "axes": _axes(pixel_size_um, z_spacing_um, time_interval_s),
            "datasets": datasets,
            "type": downsample,
        }
    ]


def _finite(v: float, default: float) -> float:
    v = float(v)
    return v if np.isfinite(v) else default


def channel_window(data: np.ndarray, *, max_samples: int = 1_000_000) -> dict[str, float]:
    """Return an ``omero`` window for one channel's pixels ``data`` (any shape).

    ``min``/``max`` are the data range; ``start``/``end`` the 0.1 and 99.9
    percentiles of a regular subsample of at most about ``max_samples`` pixels.
    """
    if data.size == 0:
        return {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}
    if data.ndim >= 2:
        return planes_window(list(data.reshape(-1, *data.shape[-2:])), max_samples=max_samples)
    step = max(1, int(np.ceil(np.sqrt(data.size / max_samples))))
    return _window(np.nanmin(data), np.nanmax(data), data[::step])


def planes_window(planes: Sequence[np.ndarray], *, max_samples: int = 1_000_000) -> dict[str, float]:
    """:func:`channel_window` of the 2-D ``planes`` of one channel, as if stacked (without the copy).

    The range is the planes' range and the subsample every plane's ``[::step, ::step]``,
    ``step`` chosen for their total size, so the window equals ``channel_window(np.stack(planes))``.
    """
    size = sum(int(p.size) for p in planes)
    if size == 0:
        return {"min": 0.0, "max": 1.0, "start": 0.0, "end": 1.0}
    step = max(1, int(np.ceil(np.sqrt(size / max_samples))))
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a plane of NaN only: left out below
        lows = [v for v in (np.nanmin(p) for p in planes if p.size) if not np.isnan(v)]
        highs = [v for v in (np.nanmax(p) for p in planes if p.size) if not np.isnan(v)]
    lo, hi = (min(lows), max(highs)) if lows else (np.nan, np.nan)
    samples = [p[::step, ::step].astype(np.float64).reshape(-1) for p in planes]
    return _window(lo, hi, samples[0] if len(samples) == 1 else np.concatenate(samples))


def _window(lo_value: Any, hi_value: Any, sample: np.ndarray) -> dict[str, float]:
    lo = _finite(lo_value, 0.0)
    hi = _finite(hi_value, lo + 1.0)
    sample = sample.astype(np.float64, copy=False)
    finite = sample[np.isfinite(sample)]
    if finite.size:
        start, end = np.percentile(finite, [0.1, 99.9])
    else:
        start, end = lo, hi
    start, end = _finite(start, lo), _finite(end, hi)
    if end <= start:
        start, end = lo, (hi if hi > lo else lo + 1.0)
    return {"min": lo, "max": hi, "start": start, "end": end}


def omero(
    channels: Sequence[OutputChannel], windows: Sequence[dict[str, float]], *, n_z: int
) -> dict[str, Any]:
    """Return the ``omero`` block (channel labels, colours and display windows)."""
    return {
        "channels": [
            {
                "label": ch.name,
                "color": ch.color,
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
                "window": dict(win),
            }
            for ch, win in zip(channels, windows, strict=True)
        ],
        "rdefs": {"model": "color", "defaultT": 0, "defaultZ": n_z // 2},
    }


def image_attributes(
    multiscales_meta: list[dict[str, Any]],
    omero_meta: dict[str, Any],
    custom: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the attributes of a field (image) group (``custom`` under our key)."""
    attrs: dict[str, Any] = {
        "ome": {"version": NGFF_VERSION, "multiscales": multiscales_meta, "omero": omero_meta}
    }
    if custom:
        attrs[ATTRS_KEY] = custom
    return attrs


def label_colors(values: Sequence[int]) -> list[dict[str, Any]]:
    """Return ``image-label`` ``colors``: a distinct, deterministic RGBA per label value.

    The background (0) is transparent.

    Examples
    --------
    >>> label_colors([0, 1])[0]
    {'label-value': 0, 'rgba': [0, 0, 0, 0]}
    """
    out = []
    for v in sorted({int(v) for v in values}):
        if v == 0:
            out.append({"label-value": 0, "rgba": [0, 0, 0, 0]})
            continue
        hue = (v * 0.618033988749895) % 1.0  # golden-ratio hues: neighbours differ
        i, f = int(hue * 6), hue * 6 - int(hue * 6)
        q, t = 1.0 - f, f
        rgb = [(1, t, 0), (q, 1, 0), (0, 1, t), (0, q, 1), (t, 0, 1), (1, 0, q)][i % 6]
        out.append({"label-value": v, "rgba": [int(round(255 * c)) for c in rgb] + [255]})
    return out


def label_image_attributes(
    multiscales_meta: list[dict[str, Any]], values: Sequence[int]
) -> dict[str, Any]:
    """Return the attributes of a label image under ``<image>/labels/<name>``."""
    return {
        "ome": {
            "version": NGFF_VERSION,
            "multiscales": multiscales_meta,
            "image-label": {
                "version": NGFF_VERSION,
                "colors": label_colors(values),
                "source": {"image": "../../"},
            },
        }
    }


def labels_group_attributes(names: Sequence[str]) -> dict[str, Any]:
    """Return the attributes of an image's ``labels`` group listing its label images."""
    return {"ome": {"version": NGFF_VERSION, "labels": list(names)}}
