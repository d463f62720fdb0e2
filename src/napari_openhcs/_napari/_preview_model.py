"""Preview logic without Qt: which step to re-run from, and the layers a preview shows.

:class:`PreviewScheduler` tracks what changed since the last preview so a parameter
change re-runs only from the changed step on (the engine reuses the cached
intermediates of the steps before it). :func:`preview_layers` turns a
``WellPreview`` into layer data tuples named ``"<step> <step name> [<channel>]"``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.steps import FunctionStep
from ._layers import META_KEY, LayerData, channel_colormap, site_offsets_um
from ._ngff_labels import NO_UNIT
from ._pipeline_model import model_index

logger = logging.getLogger(__name__)

_XY_COLUMNS = (("centroid_y", "centroid_x"), ("y", "x"), ("centroid-0", "centroid-1"), ("row", "col"))


@dataclass
class PreviewRequest:
    """One preview run: the pipeline, the well/site and the engine step to start from."""

    generation: int
    steps: list[FunctionStep]
    well: str
    site: int | None
    start: int
    previous: Any = None
    cancel_event: Any = field(default=None, repr=False)


class PreviewScheduler:
    """Decides where the next preview starts, given what changed since the last one."""

    def __init__(self) -> None:
        self.last: Any = None
        self.dirty_from: int | None = 0
        self.inflight: PreviewRequest | None = None
        self.generation = 0

    def invalidate(self, engine_start: int) -> None:
        """The pipeline changed from engine step ``engine_start`` on."""
        self.dirty_from = engine_start if self.dirty_from is None else min(self.dirty_from, engine_start)

    def target_changed(self) -> None:
        """Another well or site was selected: the next preview starts from scratch."""
        self.last = None
        self.dirty_from = 0

    @property
    def is_dirty(self) -> bool:
        """Whether something changed since the last preview started."""
        return self.dirty_from is not None

    def next_request(self, steps: Sequence[FunctionStep], well: str, site: int | None,
                     cancel_event: Any = None) -> PreviewRequest:
        """Return the next run; anything in flight is considered superseded."""
        if self.inflight is not None:
            self.cancelled(self.inflight)
        last = self.last
        same = last is not None and last.well == well and last.site == site
        start = (self.dirty_from or 0) if same else 0
        self.generation += 1
        request = PreviewRequest(self.generation, list(steps), well, site, start,
                                 previous=last if same and start > 0 else None, cancel_event=cancel_event)
        self.inflight = request
        self.dirty_from = None
        return request

    def cancelled(self, request: PreviewRequest) -> None:
        """``request`` was stopped before it finished: its steps still need running."""
        if self.inflight is request:
            self.inflight = None
        self.invalidate(request.start)

    def finished(self, request: PreviewRequest, preview: Any) -> bool:
        """Record a finished run; return False if it is stale (a newer one was started)."""
        if request.generation != self.generation:
            return False
        self.inflight = None
        if preview is not None and getattr(preview, "cancelled", False):
            self.invalidate(request.start)
            return True
        if preview is not None:
            self.last = preview
        return True


def _mosaic(fields: dict[int, np.ndarray], offsets_px: dict[int, tuple[int, int]]) -> np.ndarray:
    """Paste ``(C, T, Z, Y, X)`` fields at their pixel offsets into one array."""
    first = next(iter(fields.values()))
    lead = first.shape[:3]
    ys = [offsets_px[s][0] for s in fields]
    xs = [offsets_px[s][1] for s in fields]
    y0, x0 = min(ys), min(xs)
    h = max(offsets_px[s][0] - y0 + a.shape[3] for s, a in fields.items())
    w = max(offsets_px[s][1] - x0 + a.shape[4] for s, a in fields.items())
    dtype = np.result_type(*[a.dtype for a in fields.values()])
    out = np.zeros((*lead, h, w), dtype=dtype)
    for s, a in sorted(fields.items()):
        y, x = offsets_px[s][0] - y0, offsets_px[s][1] - x0
        out[..., y:y + a.shape[3], x:x + a.shape[4]] = a
    return out


def step_image(step_preview: Any, plate: Any, well: str,
               site: int | None) -> tuple[np.ndarray, tuple[float, float]]:
    """Return a step's ``(C, T, Z, Y, X)`` image and its ``(y, x)`` origin in µm.

    Several fields (sites of an unstitched well) are pasted at their stage positions;
    a single field sits at its site's position (the well's first site for an
    assembled image).
    """
    offsets = site_offsets_um(plate, well) if plate is not None else {}
    fields = getattr(step_preview, "fields", None) or {}
    origin_all = ((min(v[0] for v in offsets.values()), min(v[1] for v in offsets.values()))
                  if offsets else (0.0, 0.0))
    if len(fields) > 1 and all(s in offsets for s in fields):
        px = step_preview.scale_um[1] or 1.0
        off_px = {s: (round(offsets[s][0] / px), round(offsets[s][1] / px)) for s in fields}
        origin = (min(offsets[s][0] for s in fields), min(offsets[s][1] for s in fields))
        return _mosaic(fields, off_px), origin
    if site is not None and site in offsets:
        return step_preview.data, offsets[site]
    return step_preview.data, origin_all


def is_label_image(image: np.ndarray) -> bool:
    """Return True for a label image (signed integers: what segmentation functions return)."""
    return np.dtype(image.dtype).kind == "i"


def preview_layers(preview: Any, steps: Sequence[FunctionStep], plate: Any = None) -> list[LayerData]:
    """Return the layers of a preview: one image per step and channel, points for tables.

    Parameters
    ----------
    preview : WellPreview
        From ``orchestrator.preview_well``.
    steps : list of FunctionStep
        The pipeline that was previewed (maps engine step indices to list positions,
        disabled steps included).
    plate : Plate, optional
        Gives the sites' stage positions, so the preview lies on the raw images.

    Returns
    -------
    list of (data, kwargs, layer_type)
        Image data ``(T, Z, Y, X)`` (a labels layer for signed-integer label images);
        names ``"<n> <step name> [<channel>]"`` with ``n`` the step's number in the
        list (1-based).
    """
    layers: list[LayerData] = []
    for sp in preview.steps:
        idx = model_index(steps, sp.index)
        number = (idx if idx is not None else sp.index) + 1
        image, (oy, ox) = step_image(sp, plate, preview.well, preview.site)
        z_um, y_um, x_um = (float(v or 1.0) for v in sp.scale_um)
        # one z plane has no z extent: call it µm like y/x so all layers agree (napari renders
        # units only then)
        flat = getattr(image, "shape", (0,) * 4)[-3] == 1 and bool(sp.scale_um[1])
        units = (NO_UNIT, *("µm" if v or (i == 0 and flat) else NO_UNIT for i, v in enumerate(sp.scale_um)))
        colors = list(getattr(sp, "channel_colors", []) or [])
        for c, channel in enumerate(sp.channel_names):
            color = colors[c] if c < len(colors) else None
            meta = {"kind": "preview", "step": number - 1, "engine_step": sp.index, "channel": channel,
                    "well": preview.well, "site": preview.site}
            kwargs: dict[str, Any] = {
                "name": f"{number} {sp.name} [{channel}]",
                "scale": (1.0, z_um, y_um, x_um),
                "units": units,
                "translate": (0.0, 0.0, oy, ox),
                "axis_labels": ("t", "z", "y", "x"),
                "metadata": {META_KEY: meta},
            }
            if is_label_image(image):
                layers.append((image[c], {**kwargs, "opacity": 0.6}, "labels"))
                continue
            kwargs.update(colormap=channel_colormap(color, c, len(sp.channel_names)), blending="additive")
            layers.append((image[c], kwargs, "image"))
        for table_name, table in (sp.tables or {}).items():
            pts = _table_points(table, y_um, x_um, oy, ox)
            if pts is None:
                continue
            data, features = pts
            layers.append((data, {
                "name": f"{number} {sp.name} [{table_name}]",
                "features": features,
                "units": units[-2:],
                "size": 6 * y_um,
                "face_color": "transparent",
                "border_color": "yellow",
                "metadata": {META_KEY: {"kind": "preview", "step": number - 1, "engine_step": sp.index,
                                        "table": table_name, "well": preview.well, "site": preview.site}},
            }, "points"))
    return layers


def _table_points(table: dict[str, Any], y_um: float, x_um: float, oy: float,
                  ox: float) -> tuple[np.ndarray, dict[str, Any]] | None:
    """Return ``(points in µm, features)`` for a table with centroid columns, else ``None``."""
    for ycol, xcol in _XY_COLUMNS:
        if ycol in table and xcol in table:
            try:
                ys = np.asarray(table[ycol], dtype=float)
                xs = np.asarray(table[xcol], dtype=float)
            except (TypeError, ValueError):
                return None
            points = np.column_stack([ys * y_um + oy, xs * x_um + ox])
            return points, {k: np.asarray(v) for k, v in table.items()}
    return None
