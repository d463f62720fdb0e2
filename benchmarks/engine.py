"""One engine run of the reference workload, timed phase by phase (run in a fresh process).

::

    python benchmarks/engine.py PLATE OUTPUT_DIR --workers 2 [--cpus 0]

Prints one JSON line: the phase times (``import``, ``pipeline``, ``initialize``,
``compile``, ``execute``), the wells done, the per-well step timings and when the
first well started (seconds after the process started). ``--cpus`` confines the
run (this process, the worker server and every worker it starts) to the listed
CPUs, e.g. ``--cpus 0`` for a 1-worker run that cannot use a second core.
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402


def run_engine(plate: Path, output_dir: Path, workers: int, executor: str = "processes") -> dict[str, Any]:
    """Run ``stitching_pipeline()`` on ``plate`` with the orchestrator; return timings."""
    phases: dict[str, float] = {}
    t = time.perf_counter()
    from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator
    from napari_openhcs.core.events import WellStarted

    phases["import"] = time.perf_counter() - t
    t = time.perf_counter()
    config = GlobalPipelineConfig(num_workers=workers, output_dir=output_dir, executor=executor)  # type: ignore[arg-type]
    orch = PipelineOrchestrator(plate, global_config=config).initialize()
    phases["initialize"] = time.perf_counter() - t
    t = time.perf_counter()
    from napari_openhcs.pipelines import stitching_pipeline

    steps = stitching_pipeline()
    phases["pipeline"] = time.perf_counter() - t
    t = time.perf_counter()
    compiled = orch.compile_pipelines(steps)
    phases["compile"] = time.perf_counter() - t
    t = time.perf_counter()
    started: list[float] = []

    def on_event(event: Any) -> None:
        if isinstance(event, WellStarted) and not started:
            started.append(time.perf_counter() - _T0)

    results = orch.execute_compiled_plate(pipeline_definition=steps, compiled_contexts=compiled,
                                          max_workers=workers, progress_callback=on_event)
    phases["execute"] = time.perf_counter() - t
    failed = {w: r.error for w, r in results.items() if r.status != "done"}
    step_times: dict[str, float] = {}
    for r in results.values():
        for name, sec in (r.timings or {}).items():
            step_times[name] = step_times.get(name, 0.0) + float(sec)
    workers_used = orch.last_compiled.memory.workers if orch.last_compiled else workers
    return {
        "phases": phases,
        "wells": len(results),
        "failed": failed,
        "workers_planned": min(workers, workers_used),
        "well_seconds": step_times,
        "first_well_s": started[0] if started else float("nan"),
        "output_plate": str(orch.output_path),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plate", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--executor", default="processes")
    parser.add_argument("--cpus", help="comma-separated CPU numbers to confine the whole run to")
    args = parser.parse_args(argv)
    if args.cpus:
        # inherited by the worker server and the workers, which are all started after this
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    result = run_engine(args.plate, args.output, args.workers, args.executor)
    result["process_s"] = time.perf_counter() - _T0
    result["cpus"] = sorted(os.sched_getaffinity(0))
    sys.stdout.write(json.dumps(result) + "\n")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
