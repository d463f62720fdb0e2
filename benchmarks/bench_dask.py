"""Dask LocalCluster versus the local process pool on the same plate and worker count.

Usage::

    python benchmarks/bench_dask.py --plate small          # about a minute
    python benchmarks/bench_dask.py --plate large          # 1024² tiles, 4 wells × 3×3 sites × 2 ch × 3 z

Each configuration runs ``--repeats`` times (interleaved, after one untimed warm-up
run that fills the page cache); the table shows the median wall time of
``execute_compiled_plate`` and the overhead relative to the process pool:

- ``processes``: the default local ``spawn`` pool (worker start-up included);
- ``dask``: ``executor="dask"``, a LocalCluster started and closed by the run;
- ``dask (warm cluster)``: a LocalCluster started beforehand, passed as a client.

The pipeline is the reference ``stitching_pipeline()``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

logger = logging.getLogger("bench_dask")


def pipeline() -> tuple[str, list[Any]]:
    """Return ``(description, steps)``: the reference ``stitching_pipeline()``."""
    from napari_openhcs.pipelines import stitching_pipeline

    steps = stitching_pipeline()
    return "stitching_pipeline() (" + " -> ".join(s.name for s in steps) + ")", steps


def run_once(plate: Path, out: Path, steps: list[Any], workers: int, executor: Any) -> float:
    """Compile and run the plate once into ``out``; return the wall time of the execution."""
    from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator

    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
        num_workers=workers, output_dir=out)).initialize()
    compiled = orch.compile_pipelines(steps)
    t0 = time.perf_counter()
    results = orch.execute_compiled_plate(steps, compiled, max_workers=workers, executor=executor)
    elapsed = time.perf_counter() - t0
    bad = {w: r.error for w, r in results.items() if r.status != "done"}
    if bad:
        raise RuntimeError(f"benchmark run failed: {bad}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plate", choices=("small", "large"), default="small")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="folder for the plate and outputs (default: temp)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # also for the worker processes

    import distributed

    from napari_openhcs.core.workers.dask_cluster import DaskExecutor
    from napari_openhcs.testing import make_synthetic_plate

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        plate = make_synthetic_plate(root / "plate", spec=args.plate, seed=0)
        made = time.perf_counter() - t0
        description, steps = pipeline()
        counter = iter(range(10**6))

        def out() -> Path:
            return root / f"out{next(counter)}"

        run_once(plate, out(), steps, args.workers, "processes")  # warm-up: page cache, imports
        times: dict[str, list[float]] = {"processes": [], "dask": [], "dask (warm cluster)": []}
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster, \
                distributed.Client(cluster, set_as_default=False) as client:
            warm = DaskExecutor(client=client)
            run_once(plate, out(), steps, args.workers, warm)  # warm-up of the warm cluster's workers
            for _ in range(args.repeats):
                times["processes"].append(run_once(plate, out(), steps, args.workers, "processes"))
                times["dask"].append(run_once(plate, out(), steps, args.workers, "dask"))
                times["dask (warm cluster)"].append(run_once(plate, out(), steps, args.workers, warm))

    base = statistics.median(times["processes"])
    lines = [
        f"plate: {args.plate} synthetic ({made:.1f} s to make); workers: {args.workers}; "
        f"median of {args.repeats} runs",
        f"pipeline: {description}",
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end "
        "(other load makes the runs noisy)",
        "",
        f"{'executor':<22} {'median s':>9} {'overhead':>9}   runs (s)",
    ]
    for name, values in times.items():
        med = statistics.median(values)
        over = "" if name == "processes" else f"{100 * (med - base) / base:+8.1f}%"
        runs = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"{name:<22} {med:9.2f} {over:>9}   {runs}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
