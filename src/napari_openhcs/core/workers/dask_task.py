"""The Dask task that runs one well on a worker, and what it shares with the client.

Imported by Dask workers (and by :mod:`.dask_cluster`), never by
``import napari_openhcs``. A task reads its well's raw images, runs the steps and
writes the well straight into the shared output plate with
:func:`~napari_openhcs.core.well_runner.execute_well`; only the small
:class:`~napari_openhcs.core.results.WellResult` travels back through the scheduler.
Progress events go to the client as Dask structured events
(``Worker.log_event`` on a per-run topic; a well's start is sent to the scheduler and
acknowledged before the well runs, so that a worker killed by the well cannot lose
it); cancel is a ``distributed.Event``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from ..context import ProcessingContext
from ..events import StepFinished, WellStarted
from ..results import WellResult

logger = logging.getLogger(__name__)

#: Progress events a worker sends to the client (the client makes the finish events).
_WORKER_EVENTS: dict[str, type] = {"WellStarted": WellStarted, "StepFinished": StepFinished}

#: Note added to a well found complete on disk by a retried task.
ALREADY_WRITTEN_NOTE = "already written by an earlier attempt whose worker was lost"


def encode_event(event: Any) -> dict[str, Any]:
    """Return a msgpack-friendly dict for a worker-side progress event."""
    return {"type": type(event).__name__, **dataclasses.asdict(event)}


def decode_event(message: Any) -> Any | None:
    """Rebuild the event encoded by :func:`encode_event` (``None`` if not one of ours)."""
    if not isinstance(message, dict):
        return None
    cls = _WORKER_EVENTS.get(str(message.get("type")))
    if cls is None:
        return None
    names = {f.name for f in dataclasses.fields(cls)}  # Dask adds e.g. ``worker``
    return cls(**{k: v for k, v in message.items() if k in names})


def well_folder(context: ProcessingContext) -> Path:
    """Return the final folder of the context's well in the output plate."""
    from ...io import HCSPlateWriter

    out = context.output
    writer = HCSPlateWriter(out.plate_path, plate_name=out.plate_name, rows=out.rows, columns=out.columns)
    return writer.well_path(context.well)


def completed_result(context: ProcessingContext) -> WellResult | None:
    """Return a ``done`` result if the well is already complete on disk for this pipeline.

    A Dask task is run again when its worker dies; if the worker died after the
    well's final atomic rename, the well is complete and must not be written a
    second time. (A plate run removes stale wells before it starts, so a complete
    well found here was written during this run.)
    """
    from ...io._ngff import ATTRS_KEY

    path = well_folder(context) / "zarr.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    attrs = doc.get("attributes", {})
    if attrs.get("ome", {}).get("well", {}).get("images") is None:
        return None
    if attrs.get(ATTRS_KEY, {}).get("pipeline_hash") != context.output.pipeline_hash:
        return None
    outputs: dict[str, Any] = {"image": f"{context.output.plate_path}/{context.well}"}
    tables = context.output.tables_dir
    if tables.is_dir():
        for folder in sorted(p for p in tables.iterdir() if p.is_dir()):
            csv = folder / f"{context.well}.csv"
            if csv.is_file():
                outputs[folder.name] = str(csv)
            elif any(folder.glob(f"{context.well}_*.npz")):
                outputs[folder.name] = str(folder)
    return WellResult(context.well, "done", None, {}, outputs, (ALREADY_WRITTEN_NOTE,))


def on_worker_gpu(context: ProcessingContext) -> ProcessingContext:
    """Run a GPU well on the worker's own GPU (``cuda:0``).

    Devices are compiled against the main machine's GPUs; a worker of a remote
    cluster is expected to see only its own GPU (one worker per GPU with
    ``CUDA_VISIBLE_DEVICES`` set, as ``dask-cuda`` starts them).
    """
    if not context.device.startswith("cuda") or context.device == "cuda:0":
        return context
    steps = tuple(dataclasses.replace(s, device="cuda:0") if s.device.startswith("cuda") else s
                  for s in context.steps)
    return dataclasses.replace(context, device="cuda:0", steps=steps)


def run_well_task(
    context: ProcessingContext,
    topic: str,
    cancel_name: str,
    use_worker_gpu: bool = False,
) -> WellResult:
    """Run one well on a Dask worker; the body of each well's Dask task.

    Parameters
    ----------
    context
        The well's frozen plan.
    topic
        Structured-event topic the client listens on for progress.
    cancel_name
        Name of the run's ``distributed.Event``; set means "cancel".
    use_worker_gpu
        Run a GPU well on the worker's ``cuda:0`` instead of the compiled device.

    Returns
    -------
    WellResult
        As :func:`~napari_openhcs.core.well_runner.execute_well` returns it.
    """
    from distributed import Event, get_worker
    from distributed.utils import sync

    from ..well_runner import execute_well
    from .process import keep_arrays_on_the_heap

    keep_arrays_on_the_heap()
    worker = get_worker()
    cancel = Event(cancel_name)

    def emit(event: Any) -> None:
        worker.log_event(topic, encode_event(event))

    def emit_start(event: WellStarted) -> None:
        # sent to the scheduler and acknowledged before the well runs: a worker that dies
        # right after starting the well (killed by a step) would otherwise take the
        # event with it, unsent, and the well's retry would not be counted
        try:
            sync(worker.loop, worker.scheduler.log_event, topic=topic, msg=encode_event(event))
        except Exception:  # noqa: BLE001 - progress never fails a well: sent the usual way
            logger.debug("could not send the start of well %s directly", event.well, exc_info=True)
            emit(event)

    if cancel.is_set():
        return WellResult(context.well, "cancelled", "cancelled before it started")
    done = completed_result(context)
    if done is not None:
        logger.info("well %s is already complete on disk; not writing it again", context.well)
        return done
    emit_start(WellStarted(context.well))
    if use_worker_gpu:
        context = on_worker_gpu(context)
    return execute_well(context, emit=emit, is_cancelled=cancel.is_set)


def check_paths(plate_root: str, output_dir: str) -> str | None:
    """Return why this worker cannot read ``plate_root`` or write ``output_dir`` (``None``: fine).

    Run on every worker before a plate is submitted to a remote cluster.
    """
    import os
    import tempfile

    if not Path(plate_root).exists():
        return f"cannot see the input plate {plate_root}"
    if not Path(output_dir).is_dir():
        return f"cannot see the output folder {output_dir}"
    try:
        fd, name = tempfile.mkstemp(prefix=".worker-write-test-", dir=output_dir)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        return f"cannot write to the output folder {output_dir} ({exc.strerror or exc})"
    return None
