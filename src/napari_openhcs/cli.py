"""The ``napari-openhcs`` command: demo, run, info, validate.

Exit codes: 0 success; 1 a well failed or the pipeline/plate is invalid; 2 bad
usage; 130 interrupted by Ctrl-C, 143 stopped by SIGTERM (the run stops its
workers at once, keeps the wells already complete, releases the output lock and
lists what was kept; a rerun completes the rest); 141 the output pipe was closed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from .core.errors import OpenHCSError

EXIT_CODES = """exit codes:
  0    success
  1    a well failed, or the plate, pipeline or output folder is invalid (one-line message)
  2    bad usage
  130  interrupted by Ctrl-C (complete wells are kept; run again to finish)
  141  the output pipe was closed (e.g. `| head`)
  143  stopped by SIGTERM (complete wells are kept; run again to finish)
"""


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the command receives SIGTERM."""


def _on_signal(signum: int, frame: Any) -> None:
    # one signal stops the run; the clean-up that follows must not be interrupted again
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _install_signal_handlers() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)


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
        left = self.total - self.done
        eta = f"{elapsed / self.done * left:5.1f}s left" if self.done and left else "    done"
        line = (f"[{bar:<{self.width}}] {self.done}/{self.total} wells "
                f"({self.failed} failed) {elapsed:5.1f}s, {eta}  {event.well} {status}")
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
    except KeyboardInterrupt as exc:
        cancel.set()
        kept = _kept_wells(orch)
        what = "stopped by SIGTERM" if isinstance(exc, Terminated) else "interrupted"
        listed = f" ({', '.join(kept)})" if kept else ""
        sys.stderr.write(f"\n{what}: completed wells are kept: {len(kept)}{listed} in "
                         f"{orch.output_path}; run again to finish the rest\n")
        return 143 if isinstance(exc, Terminated) else 130
    _print_summary(results, orch.output_path)
    return 1 if any(r.status in ("failed", "cancelled") for r in results.values()) else 0


def _kept_wells(orch: Any) -> list[str]:
    from .io.atomic import read_json

    try:
        doc = read_json(Path(orch.output_path) / "zarr.json") or {}
        wells = doc["attributes"]["ome"]["plate"]["wells"]
        return [w["path"].replace("/", "") for w in wells]
    except Exception:  # nothing written yet
        return []


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
                                  overwrite=args.overwrite, well_timeout_s=args.well_timeout)
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
        well_timeout_s=getattr(args, "well_timeout", None),
        **_stall(args),
        **extra,
    )
    return PipelineOrchestrator(args.plate, global_config=config).initialize()


def _stall(args: argparse.Namespace) -> dict[str, Any]:
    """``heartbeat_timeout_s`` from ``--stall-timeout`` (none given: the config's default)."""
    value = getattr(args, "stall_timeout", None)
    return {} if value is None else {"heartbeat_timeout_s": value or None}


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
        from .core.output_identity import check_output_identity, input_identity

        # what `run` would refuse: an output of another input plate or pipeline
        check_output_identity(first.output.plate_path, input_identity(orch.plate), first.output.pipeline_hash)
        print(first.describe())
    for well, missing in orch.last_compiled.incomplete_wells.items():
        print(f"warning: well {well} is missing images: {'; '.join(missing)}")
    print("pipeline is valid")
    return 0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _stall_seconds(text: str) -> float:
    """``--stall-timeout``: a positive number of seconds, or ``off`` (0)."""
    if text.strip().lower() in ("off", "0"):
        return 0.0
    return _positive_seconds(text)


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (one per CPU core) or more, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``napari-openhcs`` command."""
    from . import __version__

    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="napari-openhcs", description=__doc__.splitlines()[0],
                                epilog=EXIT_CODES, formatter_class=fmt)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details; tracebacks on errors")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def parser(name: str, text: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=text, description=text, epilog=EXIT_CODES, formatter_class=fmt)
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log progress details; tracebacks on errors")
        return sp

    demo = parser("demo", "run the reference pipeline on the built-in synthetic plate")
    demo.add_argument("--out", default="demo_output", help="folder for the plate and results")
    demo.add_argument("--workers", type=_workers, default=None,
                      help="wells in parallel (default: one per CPU core, lowered to fit memory)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of the synthetic plate")
    demo.add_argument("--overwrite", action="store_true", help="recompute wells already complete")
    demo.add_argument("--well-timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                      help="stop a well (its worker is killed) that runs longer than this; it is "
                           "tried once more, then fails (default: no limit)")
    demo.set_defaults(func=cmd_demo)

    def plate_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("plate", help="plate folder (ImageXpress, Opera/Operetta, OME-Zarr, ...)")
        sp.add_argument("--microscope", default=None, help="force the format (default: detect)")
        sp.add_argument("--source", default="planes", choices=("planes", "projections"),
                        help="read the z-planes or the instrument's projections")

    run = parser("run", "run a pipeline file on a plate")
    plate_args(run)
    run.add_argument("--pipeline", required=True, help="pipeline YAML/JSON file")
    run.add_argument("--out", default=None, help="output folder (default: <plate>_outputs)")
    run.add_argument("--workers", type=_workers, default=None,
                     help="wells in parallel (default: one per CPU core, lowered to fit memory)")
    run.add_argument("--wells", default=None, help="comma-separated wells, e.g. A01,B03")
    run.add_argument("--executor", default="processes", choices=("processes", "threads", "dask"),
                     help="where wells run (default: local worker processes)")
    run.add_argument("--scheduler", default=None, help="Dask scheduler address (with --executor dask)")
    run.add_argument("--overwrite", action="store_true",
                     help="recompute complete wells and replace an output of another plate or pipeline "
                          "(old wells are replaced only once their new version is complete; with "
                          "another pipeline, only for all wells at once)")
    run.add_argument("--well-timeout", type=_positive_seconds, default=None, metavar="SECONDS",
                     help="stop a well (its worker is killed) that runs longer than this; it is "
                          "tried once more, then fails (default: no limit)")
    run.add_argument("--stall-timeout", type=_stall_seconds, default=None, metavar="SECONDS",
                     help="kill a worker that reports no progress (no step or group of planes begun) "
                          "for this long; its well is tried once more, then fails naming the step "
                          "(default: 600; 'off' disables)")
    run.set_defaults(func=cmd_run)

    info = parser("info", "describe a plate")
    plate_args(info)
    info.add_argument("--json", action="store_true", help="print the description as JSON")
    info.set_defaults(func=cmd_info)

    val = parser("validate", "compile a pipeline against a plate; print the plan (nothing is run)")
    plate_args(val)
    val.add_argument("--pipeline", required=True, help="pipeline YAML/JSON file")
    val.add_argument("--out", default=None, help="output folder to check (default: <plate>_outputs)")
    val.set_defaults(func=cmd_validate)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-openhcs`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _install_signal_handlers()
    try:
        return int(args.func(args))
    except BrokenPipeError:
        return _closed_pipe()
    except KeyboardInterrupt as exc:
        sys.stderr.write("\nstopped by SIGTERM\n" if isinstance(exc, Terminated) else "\ninterrupted\n")
        return 143 if isinstance(exc, Terminated) else 130
    except (OpenHCSError, ValueError, OSError, RecursionError, MemoryError) as exc:
        return _error(args, exc)
    except Exception as exc:  # a bug or an unforeseen input: still one line without -v
        return _error(args, exc, kind=True)


def _error(args: argparse.Namespace, exc: BaseException, kind: bool = False) -> int:
    import traceback

    if isinstance(exc, RecursionError):
        text = f"input nested too deeply to read ({exc})"
    elif isinstance(exc, MemoryError):
        text = "not enough memory (an input declares more data than this machine can hold)"
    else:
        text = str(exc) or type(exc).__name__
        if kind:
            text = f"{type(exc).__name__}: {text}"
    try:
        if args.verbose:
            traceback.print_exception(exc)
        sys.stderr.write(f"error: {text}\n")
        sys.stderr.flush()
    except BrokenPipeError:
        return _closed_pipe()
    return 1


def _closed_pipe() -> int:
    # the reader went away (`| head`): say nothing, and keep Python from complaining at exit
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
