"""Writing a well's results: images to OME-Zarr plates, special outputs to tables.

Order matters for "nothing half-written is ever visible": tables and materialized
steps first, the final image last. The final well appears at its path in one
atomic rename, so its presence means the whole well is complete.

Per-well tables are written under hidden *pending* names
(``.<B03.csv>.<pipeline hash>.pending``) and renamed to their final names only after
the image: a table never shows for a well that is not complete. A run killed between
the two leaves pending tables; :func:`settle_pending_tables` (run by the next plate
run) renames those of complete wells and deletes the others.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .components import Component
from .context import ProcessingContext, StepPlan, WellInput
from .output_identity import well_input_key
from .well_state import SpecialStore, WellState

logger = logging.getLogger(__name__)

_NAMED_COLORS = (
    (("dapi", "hoechst", "405", "blue"), "0000FF"),
    (("fitc", "gfp", "488", "green", "alexa 488"), "00FF00"),
    (("cy3", "tritc", "texas", "568", "561", "rfp", "mcherry", "red"), "FF0000"),
    (("cy5", "647", "640", "far"), "FF00FF"),
    (("bright", "phase", "dic", "trans"), "FFFFFF"),
)
_PALETTE = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


def channel_color(name: str, position: int) -> str:
    """Pick a display colour (RRGGBB) for a channel from its name, else a palette."""
    low = name.lower()
    for words, color in _NAMED_COLORS:
        if any(w in low for w in words):
            return color
    return _PALETTE[position % len(_PALETTE)]


def output_channels(state: WellState, inputs: WellInput) -> list[tuple[int, str, str]]:
    """Return ``(channel value, name, colour)`` for the channels of a state."""
    values = sorted({k[1] for k in state.images})
    out = []
    for pos, c in enumerate(values):
        if Component.CHANNEL in state.collapsed:
            members = state.collapsed_channels or values
            name = "+".join(inputs.channel_names.get(m, f"w{m}") for m in members)
        else:
            name = inputs.channel_names.get(c, f"w{c}")
        color = inputs.channel_colors.get(c) or channel_color(name, pos)
        out.append((c, name, color))
    return out


class CanvasTooSmallError(ValueError):
    """A well's image is larger than the plate's canvas."""


def state_to_fields(
    state: WellState, canvas: tuple[int, int] | None = None
) -> tuple[list[int], list[np.ndarray], list[list[tuple[int, int, int]]], list[tuple[int, int]]]:
    """Arrange a state's images into one ``(T, C, Z, Y, X)`` array per site.

    Parameters
    ----------
    state
        The well's images.
    canvas
        ``(Y, X)`` of every field (the plate's canvas): each image is placed at the
        top-left corner and the rest is the fill value (0). ``None``: the fields take
        the shape of their images, which must then all be one shape.

    Returns
    -------
    sites, fields, missing, extents
        The site of each field, its array, the ``(t, c, z)`` slots that have no image
        (a channel without z-planes, say: left at the fill value, never data), and the
        ``(Y, X)`` extent of the real images inside the canvas.

    Raises
    ------
    ValueError
        Without a canvas, images of a field differ in shape; with one, an image is
        larger than the canvas (:class:`CanvasTooSmallError`).
    """
    sites = sorted({k[0] for k in state.images})
    chans = sorted({k[1] for k in state.images})
    zs = sorted({k[2] for k in state.images})
    ts = sorted({k[3] for k in state.images})
    dtype = np.result_type(*{a.dtype for a in state.images.values()})
    fields, missing, extents = [], [], []
    for s in sites:
        keys = [k for k in state.images if k[0] == s]
        shapes = {state.images[k].shape for k in keys}
        extent = (max(sh[0] for sh in shapes), max(sh[1] for sh in shapes))
        if canvas is None:
            if len(shapes) != 1:
                raise ValueError(f"site {s}: images differ in shape {sorted(shapes)}; cannot write one field")
            y, x = extent
        else:
            y, x = canvas
            if extent[0] > y or extent[1] > x:
                raise CanvasTooSmallError(
                    f"the stitched image is {extent[0]} × {extent[1]} px but the plate's canvas is "
                    f"{y} × {x} px (the largest nominal mosaic of the plate plus a margin for stage "
                    "error): the tile positions stray further from the stage positions than a "
                    "stage error can explain; check the positions and stitch_pairs tables, or "
                    "lower compute_tile_positions' max_shift_px"
                )
        arr = np.zeros((len(ts), len(chans), len(zs), y, x), dtype=dtype)
        present = set()
        for k in keys:
            img = state.images[k]
            slot = (ts.index(k[3]), chans.index(k[1]), zs.index(k[2]))
            arr[slot][: img.shape[0], : img.shape[1]] = img
            present.add(slot)
        grid = [(t, c, z) for t in range(len(ts)) for c in range(len(chans)) for z in range(len(zs))]
        fields.append(arr)
        missing.append([g for g in grid if g not in present])
        extents.append(extent)
    return sites, fields, missing, extents


#: The special output written as NGFF label images of the well's fields.
LABELS_OUTPUT = "labels"


def label_fields(
    state: WellState,
    entries: list[tuple[dict[Component, int], Any]],
    canvas: tuple[int, int],
    channel_names: Mapping[int, str],
) -> list[dict[str, np.ndarray]] | None:
    """Arrange a ``labels`` special output into NGFF label images, one dict per field.

    Each entry is an integer ``(N, Y, X)`` stack with one plane per field of the well
    (sites in order), produced for one group (channel, z, timepoint; a component absent
    from its key applies to every value). Labels of one channel form one label image
    (``(T, 1, Z, Y, X)`` on the field's canvas), named ``labels`` when one channel has
    labels, else ``labels-<channel name>``. Returns ``None`` when the entries do not fit
    the fields (another number of planes, not integers, larger than the canvas): they
    are then written as arrays under ``tables/``.
    """
    sites = sorted({k[0] for k in state.images})
    zs = sorted({k[2] for k in state.images})
    ts = sorted({k[3] for k in state.images})
    for key, value in entries:
        arr = value if isinstance(value, np.ndarray) else None
        if (arr is None or arr.ndim != 3 or arr.shape[0] != len(sites) or Component.SITE in key
                or not np.issubdtype(arr.dtype, np.integer)
                or arr.shape[1] > canvas[0] or arr.shape[2] > canvas[1]):
            return None
        if key.get(Component.TIMEPOINT, ts[0]) not in ts or key.get(Component.Z_INDEX, zs[0]) not in zs:
            return None
    by_channel: dict[int | None, list[tuple[dict[Component, int], np.ndarray]]] = {}
    for key, value in entries:
        by_channel.setdefault(key.get(Component.CHANNEL), []).append((key, value))
    dtype = np.result_type(*[v.dtype for _, v in entries])
    out: list[dict[str, np.ndarray]] = [{} for _ in sites]
    for chan, group in by_channel.items():
        name = LABELS_OUTPUT
        if len(by_channel) > 1:
            name = f"{LABELS_OUTPUT}-{channel_names.get(chan, f'w{chan}') if chan is not None else 'all'}"
        name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
        for i in range(len(sites)):
            arr = np.zeros((len(ts), 1, len(zs), *canvas), dtype=dtype)
            for key, value in group:
                t_sel = [ts.index(key[Component.TIMEPOINT])] if Component.TIMEPOINT in key else range(len(ts))
                z_sel = [zs.index(key[Component.Z_INDEX])] if Component.Z_INDEX in key else range(len(zs))
                plane = value[i]
                for t in t_sel:
                    for z in z_sel:
                        arr[t, 0, z, : plane.shape[0], : plane.shape[1]] = plane
            out[i][name] = arr
    return out


def _is_table(value: Any) -> bool:
    if isinstance(value, Mapping) and value:
        return all(np.ndim(v) == 1 for v in value.values())
    return isinstance(value, list) and all(isinstance(r, Mapping) for r in value)


def _table_rows(value: Any) -> dict[str, list[Any]]:
    if isinstance(value, list):
        cols: dict[str, list[Any]] = {}
        for row in value:
            for k in row:
                cols.setdefault(k, [])
        for row in value:
            for k in cols:
                cols[k].append(row.get(k, ""))
        return cols
    return {k: list(np.asarray(v).tolist()) for k, v in value.items()}


PENDING_SUFFIX = ".pending"


def _pending_name(final: Path, pipeline_hash: str) -> Path:
    return final.with_name(f".{final.name}.{pipeline_hash}{PENDING_SUFFIX}")


def settle_pending_tables(tables_dir: Path, complete: Mapping[str, Mapping[str, Any]]) -> None:
    """Finish or remove the pending tables left by an interrupted run.

    Parameters
    ----------
    tables_dir
        The run's ``tables`` folder.
    complete
        ``{well: completion record}`` of the wells complete in the output plate. A
        pending table of such a well, written by the same pipeline, is renamed to its
        final name; every other pending (or partially written) table is deleted.
    """
    from ..microscopes.plate import canonical_well

    if not tables_dir.is_dir():
        return
    for folder in (p for p in tables_dir.iterdir() if p.is_dir()):
        for path in folder.iterdir():
            name = path.name
            if name.startswith(".") and name.endswith(".partial"):
                path.unlink(missing_ok=True)  # an atomic write cut short
                continue
            if not (name.startswith(".") and name.endswith(PENDING_SUFFIX)):
                continue
            final_name, _, digest = name[1:-len(PENDING_SUFFIX)].rpartition(".")
            try:
                well = canonical_well(final_name.split(".", 1)[0].split("_", 1)[0])
            except ValueError:
                continue
            record = complete.get(well)
            if record is not None and record.get("pipeline_hash") == digest:
                logger.info("completing table %s of well %s (interrupted run)", final_name, well)
                os.replace(path, folder / final_name)
            else:
                logger.info("removing table %s of incomplete well %s (interrupted run)", name, well)
                path.unlink(missing_ok=True)


class WellWriter:
    """Writes one well's outputs as the well runner produces them."""

    def __init__(self, context: ProcessingContext) -> None:
        self.context = context
        self.step_write_seconds = 0.0
        self._written_tables: list[Path] = []
        self._pending: list[tuple[Path, Path]] = []

    def _pending_path(self, final: Path) -> Path:
        pending = _pending_name(final, self.context.output.pipeline_hash)
        self._pending.append((pending, final))
        self._written_tables.append(pending)
        return pending

    def _write_plate_well(self, plate_path: Path, state: WellState, step_index: int,
                          labels: list[tuple[dict[Component, int], Any]] | None = None) -> bool:
        """Write the well's image; ``labels`` entries become NGFF label images when they
        fit the fields. Returns whether they were written as label images."""
        from ..io import HCSPlateWriter, OutputChannel

        ctx = self.context
        canvas = ctx.output.canvases.get(step_index)
        try:
            _, fields, missing, extents = state_to_fields(state, canvas)
        except CanvasTooSmallError as exc:
            raise CanvasTooSmallError(f"well {ctx.well}: {exc}") from None
        label_images = None
        if labels and fields:
            label_images = label_fields(state, labels, tuple(fields[0].shape[-2:]), ctx.inputs.channel_names)
        channels = [OutputChannel(name, color) for _, name, color in output_channels(state, ctx.inputs)]
        # a projection leaves one z plane; it keeps the axis' unit and the plate's spacing
        zsp = ctx.inputs.z_spacing_um
        writer = HCSPlateWriter(plate_path, plate_name=ctx.output.plate_name,
                                rows=ctx.output.rows, columns=ctx.output.columns,
                                compression_level=ctx.output.compression_level)
        writer.write_well(
            ctx.well, fields, channels=channels, pixel_size_um=ctx.inputs.pixel_size_um,
            z_spacing_um=zsp,
            well_attributes={"pipeline_hash": ctx.output.pipeline_hash, "input_key": well_input_key(ctx)},
            missing_planes=missing,
            extents=extents if canvas is not None else None,
            labels=label_images,
            # signed integers are label images: keep labels intact in the pyramid
            downsample="nearest" if fields and np.issubdtype(fields[0].dtype, np.signedinteger) else "mean",
        )
        return label_images is not None

    def write_step(self, plan: StepPlan, state: WellState) -> None:
        """Write a materialized intermediate step's output."""
        t0 = time.perf_counter()
        self._write_plate_well(Path(plan.output), state, plan.index)
        self.step_write_seconds += time.perf_counter() - t0

    def write_tables(self, specials: SpecialStore, skip: tuple[str, ...] = ()) -> dict[str, str]:
        """Write special outputs (but ``skip``): tables as CSV, arrays as .npz, per well."""
        from ..io import write_table_csv

        out: dict[str, str] = {}
        tables_dir = self.context.output.tables_dir
        well = self.context.well
        for name, entries in specials.values.items():
            if name in skip:
                continue
            folder = tables_dir / name
            folder.mkdir(parents=True, exist_ok=True)
            if all(_is_table(v) for _, v in entries):
                merged: list[dict[str, Any]] = []
                for key, value in entries:
                    cols = _table_rows(value)
                    n = len(next(iter(cols.values()), []))
                    base = {"well": well, **{c.value: v for c, v in key.items()}}
                    for i in range(n):
                        row = dict(base)
                        row.update({col: vals[i] for col, vals in cols.items()})
                        merged.append(row)
                path = folder / f"{well}.csv"
                write_table_csv(self._pending_path(path), merged)
                out[name] = str(path)
            else:
                for i, (key, value) in enumerate(entries):
                    suffix = "_".join(f"{c.value}{v}" for c, v in key.items()) or str(i)
                    path = folder / f"{well}_{suffix}.npz"
                    arrays = dict(value) if isinstance(value, Mapping) else {"data": value}
                    with open(self._pending_path(path), "wb") as fh:
                        np.savez_compressed(fh, **{k: np.asarray(v) for k, v in arrays.items()})
                out[name] = str(folder)
        return out

    def write_final(self, state: WellState, specials: SpecialStore) -> dict[str, Any]:
        """Write tables (pending), then the final image (its appearance marks the well
        complete), then give the tables their final names."""
        ctx = self.context
        labels = specials.values.get(LABELS_OUTPUT)
        fit = None
        if labels:
            canvas = ctx.output.canvases.get(ctx.steps[-1].index)
            shape = canvas or next(iter(state.images.values())).shape[-2:]
            fit = label_fields(state, labels, tuple(shape), ctx.inputs.channel_names)
        outputs: dict[str, Any] = dict(self.write_tables(specials, (LABELS_OUTPUT,) if fit else ()))
        self._write_plate_well(ctx.output.plate_path, state, ctx.steps[-1].index, labels if fit else None)
        outputs["image"] = f"{ctx.output.plate_path}/{ctx.well}"
        if fit:
            outputs[LABELS_OUTPUT] = f"{outputs['image']}/<field>/labels"
        for pending, final in self._pending:
            os.replace(pending, final)
        self._pending.clear()
        self._written_tables.clear()
        return outputs

    def discard(self) -> None:
        """Remove the per-well tables of a well that did not complete."""
        for path in self._written_tables:
            try:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            except OSError as exc:  # pragma: no cover - best effort
                logger.warning("could not remove %s: %s", path, exc)
