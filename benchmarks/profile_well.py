"""Profile one well of the reference workload in this process (cProfile), engine or baseline.

::

    python benchmarks/profile_well.py [--plate large] [--well A01] [--top 30]
    python benchmarks/profile_well.py --plate large --repeats 7

The well runs through the same code a worker process runs (``execute_well``), so the
profile shows the engine's own cost next to the library functions'. ``--out FILE``
saves the raw profile for ``snakeviz``/``pstats``. ``--repeats N`` runs the well N
times without the profiler (each into a fresh output folder, after one warm-up run)
and prints a table of every step's seconds (minimum and median) and the CPU seconds
of the whole well (``time.process_time``: this process and its threads), the figures
to compare on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_DATA_DIR, ensure_plate  # noqa: E402


def _well_context(plate: Path, well: str, out_dir: Path):  # noqa: ANN202
    """The compiled stitching pipeline of ``well``, its output plate created under ``out_dir``."""
    from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator
    from napari_openhcs.core.plate_run import _plate_writers, provenance
    from napari_openhcs.pipelines import stitching_pipeline

    steps = stitching_pipeline()
    orch = PipelineOrchestrator(plate, GlobalPipelineConfig(num_workers=1, output_dir=out_dir)).initialize()
    ctx = orch.compile_pipelines(steps, well_filter=[well])[well]
    out_dir.mkdir(parents=True, exist_ok=True)
    _plate_writers(ctx.output, provenance(orch.plate, steps, ctx.output))
    return ctx


def profile_engine_well(plate: Path, well: str, out_dir: Path, profiler: cProfile.Profile) -> float:
    """Compile the stitching pipeline and run ``well`` under ``profiler``; return seconds."""
    from napari_openhcs.core.well_runner import execute_well

    ctx = _well_context(plate, well, out_dir)
    execute_well(ctx)  # warm-up: imports, page cache
    t0 = time.perf_counter()
    profiler.enable()
    result = execute_well(ctx)
    profiler.disable()
    seconds = time.perf_counter() - t0
    if result.status != "done":
        raise RuntimeError(result.error)
    print("step timings:", {k: round(v, 3) for k, v in result.timings.items()})
    return seconds


def time_engine_well(plate: Path, well: str, out_dir: Path, repeats: int) -> list[dict[str, float]]:
    """Run ``well`` once to warm up, then ``repeats`` times; return each run's step timings.

    Each run writes into a fresh output plate (so no run replaces a well written
    before); ``"cpu"`` is the run's ``time.process_time`` (this process and its threads).
    """
    from napari_openhcs.core.well_runner import execute_well

    runs = []
    for i in range(repeats + 1):
        ctx = _well_context(plate, well, out_dir / f"run{i}")
        cpu = time.process_time()
        result = execute_well(ctx)
        cpu = time.process_time() - cpu
        if result.status != "done":
            raise RuntimeError(result.error)
        if i:
            runs.append({**result.timings, "cpu": cpu})
        shutil.rmtree(out_dir / f"run{i}", ignore_errors=True)
    return runs


def print_step_table(runs: list[dict[str, float]]) -> None:
    """Print the minimum and median seconds of every step over ``runs``."""
    print(f"{'step':24s} {'min s':>7s} {'median s':>9s}   ({len(runs)} runs)")
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        print(f"{key:24s} {values[0]:7.3f} {statistics.median(values):9.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plate", default="large", choices=["tiny", "small", "large", "xl"])
    parser.add_argument("--well", default="A01")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--out", type=Path, help="save the raw profile here")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--repeats", type=int, default=0,
                        help="time the well this many times (no profiler) and print the steps' table")
    args = parser.parse_args(argv)
    plate, _ = ensure_plate(args.data_dir.resolve(), args.plate)
    out_dir = Path(tempfile.mkdtemp(prefix="profile-", dir=args.data_dir))
    if args.repeats > 0:
        try:
            runs = time_engine_well(plate, args.well, out_dir, args.repeats)
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        print(f"plate {args.plate}, well {args.well}")
        print_step_table(runs)
        return 0
    profiler = cProfile.Profile()
    try:
        seconds = profile_engine_well(plate, args.well, out_dir / "out", profiler)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    print(f"well {args.well}: {seconds:.2f} s under the profiler")
    stats = pstats.Stats(profiler).strip_dirs().sort_stats(args.sort)
    stats.print_stats(args.top)
    if args.out:
        stats.dump_stats(str(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
