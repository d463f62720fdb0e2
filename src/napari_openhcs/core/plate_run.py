"""One plate run: lock the output, skip completed wells, run the rest, finish the plate.

The main process owns the plate-level metadata: it lists a well in the plate only
after the well has been written completely, combines per-well tables into plate
tables at the end and records provenance (pipeline as data, versions, input).
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..microscopes.plate import Plate
from .config import GlobalPipelineConfig
from .context import OutputPlan, ProcessingContext
from .errors import OutputLocationError
from .events import WellFailed, WellFinished
from .output_identity import check_output_identity, input_identity, scan_well_inputs
from .results import WellResult
from .steps import FunctionStep
from .well_output import settle_pending_tables
from .workers.local import get_executor

logger = logging.getLogger(__name__)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("napari-openhcs", "numpy", "scipy", "scikit-image", "zarr", "tifffile"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def provenance(
    plate: Plate, steps: list[FunctionStep], output: OutputPlan, identity: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return the provenance record stored in the output plate's attributes."""
    from .pipeline_io import PipelineFileError, pipeline_to_data

    try:
        pipeline: Any = pipeline_to_data(steps)
    except PipelineFileError:
        pipeline = {"unregistered": [repr(s) for s in steps]}
    return {
        "pipeline": pipeline,
        "pipeline_hash": output.pipeline_hash,
        "versions": _versions(),
        "input": identity if identity is not None else input_identity(plate),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _plate_writers(output: OutputPlan, attributes: dict[str, Any]) -> list[Any]:
    from ..io import HCSPlateWriter

    paths = [output.plate_path, *output.step_plates.values()]
    writers = []
    for path in paths:
        w = HCSPlateWriter(
            Path(path),
            plate_name=output.plate_name,
            rows=output.rows,
            columns=output.columns,
            attributes=attributes,
        )
        w.create(overwrite=False)
        writers.append(w)
    return writers


def _combine_tables(output: OutputPlan, wells: list[str], names: set[str]) -> None:
    """Combine the per-well tables ``names`` (the pipeline's) of ``wells`` (those complete
    in our plate) only: nothing else in the output folder is read."""
    from ..io import combine_well_tables

    if not output.tables_dir.is_dir():
        return
    for folder in sorted(output.tables_dir / n for n in names):
        if not folder.is_dir() or folder.is_symlink():
            continue
        if any((folder / f"{w}.csv").is_file() for w in wells):
            combine_well_tables(output.tables_dir, folder.name, wells=wells, plate=output.plate_name)


def _refuse_mixed_pipelines(output: OutputPlan, wells: set[str]) -> None:
    """Refuse an ``--overwrite`` with another pipeline that would leave wells of the old one.

    Wells outside this run keep their results; replacing only some wells by another
    pipeline's would make one plate of two pipelines. Nothing is computed or removed.
    """
    from ..io import HCSPlateWriter

    if not output.plate_path.is_dir():
        return
    old = HCSPlateWriter(Path(output.plate_path), plate_name=output.plate_name, rows=output.rows,
                         columns=output.columns).completed_wells()
    kept = {w: rec.get("pipeline_hash") for w, rec in old.items() if w not in wells}
    other = sorted(w for w, h in kept.items() if h is not None and h != output.pipeline_hash)
    if other:
        hashes = ", ".join(sorted({str(kept[w]) for w in other}))
        shown = ", ".join(other[:8]) + (f" and {len(other) - 8} more" if len(other) > 8 else "")
        raise OutputLocationError(
            f"output {output.plate_path} holds wells {shown} made by another pipeline (hash {hashes}) "
            f"than this run's (hash {output.pipeline_hash}), outside the wells this run computes: "
            f"replacing only some would mix two pipelines in one plate; run all wells, or choose a new --out"
        )


def run_plate(
    plate: Plate,
    config: GlobalPipelineConfig,
    steps: list[FunctionStep],
    contexts: dict[str, ProcessingContext],
    *,
    workers: int,
    emit: Callable[[Any], None],
    cancel: Any,
    executor: str | Any,
) -> dict[str, WellResult]:
    """Run ``contexts`` and finish the output plate; see the module docstring."""
    from ..io import OutputLock

    if not contexts:
        return {}
    output = next(iter(contexts.values())).output
    try:
        output.output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputLocationError(f"cannot create output folder {output.output_dir}: {exc}") from None
    with OutputLock(output.output_dir):
        identity = input_identity(plate)
        if not config.overwrite:
            check_output_identity(output.plate_path, identity, output.pipeline_hash)
        else:
            _refuse_mixed_pipelines(output, set(contexts))
        writers = _plate_writers(output, provenance(plate, steps, output, identity))
        main = writers[0]
        done = main.completed_wells()
        settle_pending_tables(output.tables_dir, done)  # left by a killed run
        results: dict[str, WellResult] = {}
        completed: list[str] = []
        to_run: list[ProcessingContext] = []
        for well, ctx in contexts.items():
            input_key, problem = scan_well_inputs(ctx)  # one stat of each file the well reads
            if problem is not None:
                results[well] = WellResult(well, "failed", f"well {well}: {problem}")
                continue
            record = done.get(well) or {}
            if (
                well in done
                and not config.overwrite
                and record.get("pipeline_hash") == output.pipeline_hash
                and record.get("input_key") == input_key
            ):
                results[well] = WellResult(
                    well,
                    "skipped",
                    None,
                    {},
                    {"image": f"{output.plate_path}/{well}"},
                    ("already complete for this pipeline and these input files",),
                )
                continue
            if well in done:
                # the old well stays until its replacement is complete (write_well swaps it in)
                why = "overwrite" if config.overwrite else "its input files or the pipeline changed"
                logger.info("well %s: recomputing (%s)", well, why)
            to_run.append(ctx)
        completed = list(done)  # a well being recomputed stays listed until it is replaced
        for well in results:
            if results[well].status == "failed":
                emit(WellFailed(well, results[well].error or ""))
            else:
                emit(WellFinished(well, results[well]))

        def on_event(event: Any) -> None:
            if isinstance(event, WellFinished) and event.result.status == "done":
                completed.append(event.well)
                for w in writers:
                    try:
                        # only this well is read again; the others' field counts are known
                        w.register_completed_wells(sorted(set(completed)), reread=(event.well,))
                    except Exception:  # the final registration below retries
                        logger.exception("could not update plate metadata of %s", w.path)
            emit(event)

        if isinstance(executor, str):
            options = {"scheduler_address": config.dask_scheduler} if executor == "dask" else {}
            runner = get_executor(executor, **options)
        else:
            runner = executor
        try:
            results.update(runner.run(to_run, max_workers=workers, emit=on_event, cancel_event=cancel))
        except BaseException:
            # interrupted (Ctrl-C, an executor crash): list every well complete on disk so the
            # plate metadata matches the wells a reader can open; a rerun computes the rest
            for w in writers:
                try:
                    w.register_completed_wells()
                except Exception:
                    logger.exception("could not update plate metadata of %s", w.path)
            raise
        for w in writers:
            w.register_completed_wells(sorted(set(completed)))
        # pending tables of a worker killed after its well's rename (Dask reruns such a task)
        settle_pending_tables(output.tables_dir, main.completed_wells())
        names = {n for c in contexts.values() for sp in c.steps for n in sp.special_outputs}
        _combine_tables(output, sorted(main.completed_wells()), names)
    failed = [w for w, r in results.items() if r.status == "failed"]
    if failed:
        logger.warning("%d of %d wells failed: %s", len(failed), len(results), ", ".join(sorted(failed)))
    return results
