"""The ``napari-openhcs`` command: demo, run, info, validate.

Exit codes: 0 success; 1 a well failed or the pipeline/plate is invalid; 2 bad
usage; 130 interrupted (Ctrl-C cancels the run cleanly: finished wells are kept
and a rerun completes the rest).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .core.errors import OpenHCSError


class ProgressBar:
    """A per-well progress bar on a terminal (plain lines when not a terminal)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.done = self.failed = 0
        self.start = time.monotonic()
        self.tty = stream.isatty()

    def __call__(self, event: Any) -> None:
        from .core.events import WellFailed, WellFinished

        if isinstance(event, WellFinished | WellFailed):
            self.done += 1
            if isinstance(event, WellFailed):
                self.failed += 1
            self._draw(event)

    def _draw(self, event: Any) -> None:
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(frac * self.width)
        status = getattr(getattr(event, "result", None), "status", "failed")
        elapsed = time.monotonic() - self.start
        line = (f"[{bar:<{self.width}}] {self.done}/{self.total} wells "
                f"({self.failed} failed) {elapsed:5.1f}s  {event.well} {status}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if self.done == self.total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _print_summary(results: dict[str, Any], output: Path, out: TextIO = sys.stdout) -> None:
    out.write(f"\n{'well':<6} {'status':<10} {'seconds':>8}  details\n")
    for well in sorted(results):
        r = results[well]
        secs = r.timings.get("total", 0.0)
        detail = r.error or "; ".join(r.notes) or ""
        out.write(f"{well:<6} {r.status:<10} {secs:8.2f}  {detail}\n")
    counts: dict[str, int] = {}
    for r in results.values():
        counts[r.status] = counts.get(r.status, 0) + 1
    out.write(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + "\n")
    out.write(f"output: {output}\n")


def _run(orch: Any, steps: list[Any], wells: list[str] | None, workers: int | None) -> int:

    compiled = orch.compile_pipelines(steps, wells)
    bar = ProgressBar(len(compiled))
    cancel = threading.Event()
    try:
        results = orch.execute_compiled_plate(pipeline_definition=steps, compiled_contexts=compiled,
                                              max_workers=workers, progress_callback=bar,
                                              cancel_event=cancel)
    except KeyboardInterrupt:
        cancel.set()
        sys.stderr.write("\ninterrupted: completed wells are kept; run again to finish the rest\n")
        return 130
    _print_summary(results, orch.output_path)
    return 1 if any(r.status in ("failed", "cancelled") for r in results.values()) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Make the synthetic sample plate and run the reference pipeline on it."""
    from .core.config import GlobalPipelineConfig
    from .core.orchestrator import PipelineOrchestrator
    from .pipelines import reference_pipeline
    from .testing import make_synthetic_plate

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plate_dir = out / "synthetic_plate"
    if not plate_dir.exists():
        print(f"making the synthetic sample plate in {plate_dir} ...")
        plate_dir = make_synthetic_plate(plate_dir.parent, spec="sample", seed=args.seed)
    config = GlobalPipelineConfig(num_workers=args.workers or 0, output_dir=out / "results",
                                  overwrite=args.overwrite)
    orch = PipelineOrchestrator(plate_dir, global_config=config).initialize()
    steps = reference_pipeline()
    print(f"plate {orch.plate.name}: {len(orch.plate.wells)} wells; pipeline: "
          + " -> ".join(s.name for s in steps))
    return _run(orch, steps, None, args.workers)


def _orchestrator(args: argparse.Namespace, **extra: Any) -> Any:
    from .core.config import GlobalPipelineConfig
    from .core.orchestrator import PipelineOrchestrator

    config = GlobalPipelineConfig(
        num_workers=getattr(args, "workers", None) or 0,
        output_dir=getattr(args, "out", None),
        executor=getattr(args, "executor", "processes"),
        overwrite=getattr(args, "overwrite", False),
        microscope=args.microscope,
        source=args.source,
        dask_scheduler=getattr(args, "scheduler", None),
        **extra,
    )
    return PipelineOrchestrator(args.plate, global_config=config).initialize()


def cmd_run(args: argparse.Namespace) -> int:
    """Run a saved pipeline on a plate."""
    from .core.pipeline_io import load_pipeline

    orch = _orchestrator(args)
    steps = load_pipeline(args.pipeline)
    wells = [w.strip() for w in args.wells.split(",") if w.strip()] if args.wells else None
    return _run(orch, steps, wells, args.workers)


def cmd_info(args: argparse.Namespace) -> int:
    """Describe a plate: format, wells, sites, channels, z, timepoints, pixel size."""
    from .microscopes.describe import describe_plate, plate_summary
    from .microscopes.detect import open_plate

    plate = open_plate(args.plate, microscope=args.microscope, source=args.source)
    if args.json:
        print(json.dumps(plate_summary(plate), indent=2))
    else:
        print(describe_plate(plate))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Compile a pipeline against a plate and print the plan (nothing is run)."""
    from .core.pipeline_io import load_pipeline

    steps = load_pipeline(args.pipeline)
    orch = _orchestrator(args)
    compiled = orch.compile_pipelines(steps)
    mem = orch.last_compiled.memory
    print(f"plate {orch.plate.name}: {len(compiled)} wells, {len(steps)} steps; output {orch.output_path}")
    print(f"workers: {mem.workers} (requested {mem.requested_workers}); memory available "
          f"{mem.available_bytes / 2**30:.1f} GiB")
    first = next(iter(compiled.values()), None)
    if first is not None:
        print(first.describe())
    for well, missing in orch.last_compiled.incomplete_wells.items():
        print(f"warning: well {well} is missing images: {'; '.join(missing)}")
    print("pipeline is valid")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``napari-openhcs`` command."""
    p = argparse.ArgumentParser(prog="napari-openhcs", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the reference pipeline on the built-in synthetic plate")
    demo.add_argument("--out", default="demo_output", help="folder for the plate and results")
    demo.add_argument("--workers", type=int, default=None)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true")
    demo.set_defaults(func=cmd_demo)

    def plate_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("plate", help="plate folder")
        sp.add_argument("--microscope", default=None, help="force the format (default: detect)")
        sp.add_argument("--source", default="planes", choices=("planes", "projections"))

    run = sub.add_parser("run", help="run a pipeline file on a plate")
    plate_args(run)
    run.add_argument("--pipeline", required=True, help="pipeline YAML/JSON file")
    run.add_argument("--out", default=None, help="output folder (default: <plate>_outputs)")
    run.add_argument("--workers", type=int, default=None)
    run.add_argument("--wells", default=None, help="comma-separated wells, e.g. A01,B03")
    run.add_argument("--executor", default="processes", choices=("processes", "threads", "dask"))
    run.add_argument("--scheduler", default=None, help="Dask scheduler address (with --executor dask)")
    run.add_argument("--overwrite", action="store_true", help="recompute wells already complete")
    run.set_defaults(func=cmd_run)

    info = sub.add_parser("info", help="describe a plate")
    plate_args(info)
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_info)

    val = sub.add_parser("validate", help="compile a pipeline against a plate; print the plan")
    plate_args(val)
    val.add_argument("--pipeline", required=True)
    val.add_argument("--out", default=None)
    val.set_defaults(func=cmd_validate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-openhcs`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except (OpenHCSError, ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
