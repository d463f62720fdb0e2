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


def state_to_fields(state: WellState) -> tuple[list[int], list[np.ndarray]]:
    """Arrange a state's images into one ``(T, C, Z, Y, X)`` array per site.

    Images missing from the full (t, c, z) grid (a channel without z-planes, say)
    are left at zero. Raises ``ValueError`` if images of a field differ in shape.
    """
    sites = sorted({k[0] for k in state.images})
    chans = sorted({k[1] for k in state.images})
    zs = sorted({k[2] for k in state.images})
    ts = sorted({k[3] for k in state.images})
    dtype = np.result_type(*{a.dtype for a in state.images.values()})
    fields = []
    for s in sites:
        keys = [k for k in state.images if k[0] == s]
        shapes = {state.images[k].shape for k in keys}
        if len(shapes) != 1:
            raise ValueError(f"site {s}: images differ in shape {sorted(shapes)}; cannot write one field")
        y, x = shapes.pop()
        arr = np.zeros((len(ts), len(chans), len(zs), y, x), dtype=dtype)
        for k in keys:
            arr[ts.index(k[3]), chans.index(k[1]), zs.index(k[2])] = state.images[k]
        fields.append(arr)
    return sites, fields


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


def well_input_key(ctx: ProcessingContext) -> str:
    """The key of the files the well read (see :mod:`..output_identity`)."""
    from .output_identity import well_input_key as key

    return key(ctx)


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

    def _write_plate_well(self, plate_path: Path, state: WellState) -> None:
        from ..io import HCSPlateWriter, OutputChannel

        ctx = self.context
        _, fields = state_to_fields(state)
        channels = [OutputChannel(name, color) for _, name, color in output_channels(state, ctx.inputs)]
        zsp = None if Component.Z_INDEX in state.collapsed else ctx.inputs.z_spacing_um
        writer = HCSPlateWriter(plate_path, plate_name=ctx.output.plate_name,
                                rows=ctx.output.rows, columns=ctx.output.columns,
                                compression_level=ctx.output.compression_level)
        writer.write_well(
            ctx.well, fields, channels=channels, pixel_size_um=ctx.inputs.pixel_size_um,
            z_spacing_um=zsp,
            well_attributes={"pipeline_hash": ctx.output.pipeline_hash, "input_key": well_input_key(ctx)},
            # signed integers are label images: keep labels intact in the pyramid
            downsample="nearest" if fields and np.issubdtype(fields[0].dtype, np.signedinteger) else "mean",
        )

    def write_step(self, plan: StepPlan, state: WellState) -> None:
        """Write a materialized intermediate step's output."""
        t0 = time.perf_counter()
        self._write_plate_well(Path(plan.output), state)
        self.step_write_seconds += time.perf_counter() - t0

    def write_tables(self, specials: SpecialStore) -> dict[str, str]:
        """Write special outputs: tables as CSV, arrays as .npy, per well."""
        from ..io import write_table_csv

        out: dict[str, str] = {}
        tables_dir = self.context.output.tables_dir
        well = self.context.well
        for name, entries in specials.values.items():
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
        outputs: dict[str, Any] = dict(self.write_tables(specials))
        self._write_plate_well(self.context.output.plate_path, state)
        outputs["image"] = f"{self.context.output.plate_path}/{self.context.well}"
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
