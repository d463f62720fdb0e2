"""Compile phase 2: declare the output stores (the OME-Zarr plates and table folders)."""

from __future__ import annotations

import re
from pathlib import Path

from ...microscopes.plate import Plate
from ..context import OutputPlan, StepPlan
from ..frozen import FrozenDict


def safe_name(name: str) -> str:
    """Return ``name`` reduced to characters safe in a file name."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "plate"


def declare_output_stores(
    plate: Plate,
    plans: tuple[StepPlan, ...],
    output_dir: Path,
    pipeline_hash: str,
    compression_level: int,
) -> OutputPlan:
    """Return the :class:`OutputPlan`: the main plate, one plate per materialized step, tables."""
    step_plates = {
        p.index: output_dir / "steps" / f"{p.number:02d}_{safe_name(p.name)}.ome.zarr"
        for p in plans[:-1]
        if p.materialize
    }
    return OutputPlan(
        output_dir=output_dir,
        plate_path=output_dir / f"{safe_name(plate.name)}.ome.zarr",
        plate_name=plate.name,
        rows=plate.rows,
        columns=plate.columns,
        step_plates=FrozenDict(step_plates),
        tables_dir=output_dir / "tables",
        pipeline_hash=pipeline_hash,
        compression_level=compression_level,
    )
