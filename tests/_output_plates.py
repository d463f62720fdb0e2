"""Output plates that every interoperability test opens: how each is made.

- ``demo``: ``napari-openhcs demo`` (the built-in synthetic plate, reference pipeline).
- ``real``: the reference pipeline on a real two-site ImageXpress z-stack plate (FITC is
  acquired only as a projection: a slot with no raw image).
- ``timeseries``: the stitching pipeline on a synthetic time series whose tiles drift by a
  fraction of a pixel between timepoints.
- ``labels``: stitching, then nuclei segmented (``detect_nuclei``) and measured: the
  labels are written as NGFF label images.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.functions.registry import get_function
from napari_openhcs.pipelines import reference_pipeline, stitching_pipeline
from napari_openhcs.testing import make_synthetic_plate
from napari_openhcs.testing.spec import SyntheticPlateSpec

KINDS = ("demo", "real", "timeseries", "labels")
#: The real instrument plates (``../shared/data`` next to the repository).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_PLATE = "imagexpress_mxp_export_zstack_9987_3434"

#: A small time series: 2 wells of 1 × 2 sites, 3 timepoints, tiles drifting < 0.5 px.
TIMESERIES = SyntheticPlateSpec(plate_name="drift", wells=("A01", "B02"), grid=(1, 2), tile_shape=(96, 128),
                                z_planes=1, timepoints=3, time_drift_px=0.5, nuclei_per_site=10)


def segmentation_pipeline() -> list[FunctionStep]:
    """Stitching, then nuclei labels of the first channel and their measurements."""
    return [
        *stitching_pipeline(),
        FunctionStep(func={"1": get_function("detect_nuclei").func}, name="nuclei",
                     variable_components=[VariableComponents.SITE]),
        FunctionStep(func={"1": get_function("measure_objects").func}, name="measure",
                     variable_components=[VariableComponents.SITE]),
    ]


def _run(plate: Path, steps: list[FunctionStep], out: Path) -> Path:
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
        num_workers=2, output_dir=out, executor="threads"))
    results = orch.run(steps)
    failed = {w: r.error for w, r in results.items() if r.status != "done"}
    assert not failed, failed
    return orch.output_path


def make_output_plate(kind: str, base: Path, shared_data: Path | None) -> Path:
    """Make the output plate ``kind`` under ``base``; return its path."""
    if kind == "demo":
        out = base / "demo"
        proc = subprocess.run([sys.executable, "-m", "napari_openhcs.cli", "demo", "--out", str(out),
                               "--workers", "2"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (plate,) = (out / "results").glob("*.ome.zarr")
        return plate
    if kind == "real":
        assert shared_data is not None
        return _run(shared_data / REAL_PLATE, reference_pipeline(), base / "real")
    if kind == "timeseries":
        plate = make_synthetic_plate(base / "ts-in", spec=TIMESERIES, seed=2)
        return _run(plate, stitching_pipeline(), base / "ts")
    if kind == "labels":
        spec = SyntheticPlateSpec(plate_name="seg", wells=("A01", "A02", "B01"), grid=(2, 2),
                                  tile_shape=(96, 96), z_planes=2, nuclei_per_site=12)
        plate = make_synthetic_plate(base / "seg-in", spec=spec, seed=4)
        return _run(plate, segmentation_pipeline(), base / "seg")
    raise ValueError(kind)
