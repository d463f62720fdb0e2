"""One OpenHCS 0.8.6 run of the reference stitching workload (run by OpenHCS's Python, in a fresh process).

::

    benchmarks/.openhcs-venv/bin/python benchmarks/openhcs_run.py PLATE --workers 2

The pipeline is OpenHCS's own synthetic-plate demo pipeline
(``openhcs/demo/synthetic_plate_pipeline.py``) without its last step (cell
counting), built from OpenHCS's own functions: ``stack_percentile_normalize``
(0.5/99.5) → ``create_composite`` over the channels → ``create_projection`` over z
→ ``ashlar_compute_tile_positions_cpu`` → ``stack_percentile_normalize`` of the raw
tiles (``InputSource.PIPELINE_START``) → ``assemble_stack_cpu`` → ``create_projection``
over z. It runs with OpenHCS's ``PipelineOrchestrator``: ``initialize()``,
``compile_pipelines()``, ``execute_compiled_plate(max_workers=N)`` with
``GlobalPipelineConfig(num_workers=N)`` (worker processes, OpenHCS's default spawn
start), and writes what OpenHCS writes by default: the stitched image of every well
and channel (TIFF) under ``PLATE_openhcs/images`` and the tile positions under
``PLATE_openhcs/results``. OpenHCS also writes ``openhcs_metadata.json`` into the plate
folder, so the harness gives it a copy of the plate (hard links).

Prints one JSON line: the phase times, the wells done, the wells that failed and the
tile origins OpenHCS found, ``{well: [[y, x] per site]}``.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def build_pipeline() -> list[Any]:
    """The workload as OpenHCS ``FunctionStep`` objects (OpenHCS's demo pipeline, steps 1–7)."""
    from openhcs.constants.constants import VariableComponents
    from openhcs.constants.input_source import InputSource
    from openhcs.core.config import LazyProcessingConfig
    from openhcs.core.steps.function_step import FunctionStep
    from openhcs.processing.backends.assemblers.assemble_stack_cpu import assemble_stack_cpu
    from openhcs.processing.backends.pos_gen.ashlar_main_cpu import ashlar_compute_tile_positions_cpu
    from openhcs.processing.backends.processors.numpy_processor import (
        create_composite,
        create_projection,
        stack_percentile_normalize,
    )

    percentiles = {"low_percentile": 0.5, "high_percentile": 99.5}
    channels = LazyProcessingConfig(variable_components=[VariableComponents.CHANNEL])
    return [
        FunctionStep(func=(stack_percentile_normalize, percentiles), name="normalize"),
        FunctionStep(func=create_composite, name="composite", processing_config=channels),
        FunctionStep(func=create_projection, name="max z",
                     processing_config=LazyProcessingConfig(variable_components=[VariableComponents.Z_INDEX])),
        FunctionStep(func=ashlar_compute_tile_positions_cpu, name="tile positions"),
        FunctionStep(func=(stack_percentile_normalize, percentiles), name="normalize raw",
                     processing_config=LazyProcessingConfig(input_source=InputSource.PIPELINE_START)),
        FunctionStep(func=assemble_stack_cpu, name="assemble"),
        FunctionStep(func=create_projection, name="max z stitched",
                     processing_config=LazyProcessingConfig(variable_components=[VariableComponents.Z_INDEX])),
    ]


def run_openhcs(plate: Path, workers: int) -> dict[str, Any]:
    """Run the workload on ``plate`` with OpenHCS's orchestrator; return timings and tile origins."""
    phases: dict[str, float] = {}
    t = time.perf_counter()
    import multiprocessing

    from objectstate.lazy_factory import ensure_global_config_context
    from openhcs.core.config import GlobalPipelineConfig, PipelineConfig
    from openhcs.core.orchestrator.orchestrator import PipelineOrchestrator
    from openhcs.core.progress import set_progress_queue

    phases["import"] = time.perf_counter() - t
    t = time.perf_counter()
    steps = build_pipeline()
    phases["pipeline"] = time.perf_counter() - t
    ensure_global_config_context(GlobalPipelineConfig, GlobalPipelineConfig(num_workers=workers))
    # OpenHCS requires a progress queue (its GUI reads it); drain it so it never fills
    queue = multiprocessing.get_context("spawn").Queue()

    def drain() -> None:
        while queue.get() is not None:
            pass

    drainer = threading.Thread(target=drain, daemon=True)
    drainer.start()
    set_progress_queue(queue)
    t = time.perf_counter()
    orch = PipelineOrchestrator(plate_path=plate, pipeline_config=PipelineConfig())
    orch.initialize()
    phases["initialize"] = time.perf_counter() - t
    t = time.perf_counter()
    bundle = orch.compile_pipelines(steps)
    phases["compile"] = time.perf_counter() - t
    t = time.perf_counter()
    results = orch.execute_compiled_plate(
        bundle, max_workers=workers, progress_queue=queue,
        progress_context={"execution_id": "benchmark", "plate_id": str(plate)},
    )
    phases["execute"] = time.perf_counter() - t
    queue.put(None)
    drainer.join(timeout=5)
    failed = {w: str(r.error_message) for w, r in results.items() if r.status.value != "success"}
    out = plate.parent / f"{plate.name}_openhcs"
    positions: dict[str, list[list[float]]] = {}
    for path in sorted((out / "results").glob("*_positions_*.json")):
        xy = json.loads(path.read_text(encoding="utf-8"))
        positions[path.name.split("_", 1)[0]] = [[float(y), float(x)] for x, y in xy]
    return {"phases": phases, "wells": len(results), "failed": failed, "positions_yx": positions,
            "output_plate": str(out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plate", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    result = run_openhcs(args.plate.resolve(), args.workers)
    result["process_s"] = time.perf_counter() - _T0
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 1 if result["failed"] or not result["wells"] else 0


if __name__ == "__main__":
    sys.exit(main())
