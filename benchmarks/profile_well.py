"""Profile one well of the reference workload in this process (cProfile), engine or baseline.

::

    python benchmarks/profile_well.py [--plate large] [--well A01] [--what engine|baseline] [--top 30]

The well runs through the same code a worker process runs (``execute_well``), so the
profile shows the engine's own cost next to the library functions'. ``--out FILE``
saves the raw profile for ``snakeviz``/``pstats``.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_DATA_DIR, ensure_plate  # noqa: E402


def profile_engine_well(plate: Path, well: str, out_dir: Path, profiler: cProfile.Profile) -> float:
    """Compile the stitching pipeline and run ``well`` under ``profiler``; return seconds."""
    from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator
    from napari_openhcs.core.plate_run import _plate_writers, provenance
    from napari_openhcs.core.well_runner import execute_well
    from napari_openhcs.pipelines import stitching_pipeline

    steps = stitching_pipeline()
    orch = PipelineOrchestrator(plate, GlobalPipelineConfig(num_workers=1, output_dir=out_dir)).initialize()
    contexts = orch.compile_pipelines(steps, well_filter=[well])
    ctx = contexts[well]
    out_dir.mkdir(parents=True, exist_ok=True)
    _plate_writers(ctx.output, provenance(orch.plate, steps, ctx.output))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plate", default="large", choices=["tiny", "small", "large", "xl"])
    parser.add_argument("--well", default="A01")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--out", type=Path, help="save the raw profile here")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    plate, _ = ensure_plate(args.data_dir.resolve(), args.plate)
    out_dir = Path(tempfile.mkdtemp(prefix="profile-", dir=args.data_dir))
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
