"""``PipelineOrchestrator``: detect the plate, compile the pipeline, run the wells.

::

    orchestrator = PipelineOrchestrator(plate_path, global_config=GlobalPipelineConfig(num_workers=2))
    orchestrator.initialize()
    compiled = orchestrator.compile_pipelines(steps)
    results = orchestrator.execute_compiled_plate(pipeline_definition=steps,
                                                  compiled_contexts=compiled, max_workers=2)
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..microscopes.plate import Plate
from .compiler import CompiledPlate, compile_plate
from .compiler.zarr_stores import safe_name
from .config import GlobalPipelineConfig
from .context import ProcessingContext
from .errors import NotInitializedError, OutputLocationError
from .events import PlateFinished, WellFinished
from .results import WellResult
from .steps import FunctionStep

if TYPE_CHECKING:
    from .preview import WellPreview

logger = logging.getLogger(__name__)


class _AnyEvent:
    """``is_set()`` is true when any of the wrapped events is set."""

    def __init__(self, *events: threading.Event | None) -> None:
        self._events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


def default_output_dir(plate_root: Path) -> Path:
    """Return ``<plate>_outputs`` beside the plate folder."""
    root = plate_root.resolve()
    return root.parent / f"{root.name}_outputs"


def _ancestors_ids(path: Path) -> list[tuple[int, int]]:
    """``(st_dev, st_ino)`` of ``path``'s existing ancestors (itself included)."""
    ids = []
    for p in (path, *path.parents):
        try:
            st = p.stat()
        except OSError:
            continue
        ids.append((st.st_dev, st.st_ino))
    return ids


def _inside(inner: Path, outer: Path) -> bool:
    """Whether ``inner`` is ``outer`` or below it, by real path or by device and inode
    (a bind mount or a second path to the same folder)."""
    if inner == outer or outer in inner.parents:
        return True
    try:
        st = outer.stat()
    except OSError:
        return False
    return (st.st_dev, st.st_ino) in _ancestors_ids(inner)


def check_output_location(output_dir: Path, plate_root: Path) -> None:
    """Refuse an output folder that overlaps the input plate, or one that cannot be written.

    The output may be neither inside the input plate nor hold it (e.g. an OME-Zarr
    plate written by an earlier run into the same folder): compared by real path and,
    through bind mounts, by device and inode of every ancestor.

    Raises
    ------
    OutputLocationError
        With the folder and the reason.
    """
    out = output_dir.resolve()
    root = plate_root.resolve()
    if _inside(out, root):
        raise OutputLocationError(
            f"output folder {out} is inside the input plate {root}; the raw plate is never "
            f"written to — choose a folder outside it (default: {default_output_dir(root)})"
        )
    if _inside(root, out):
        raise OutputLocationError(
            f"input plate {root} is inside the output folder {out}; a run could replace its own "
            f"input — choose an output folder that does not contain the input "
            f"(default: {default_output_dir(root)})"
        )
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputLocationError(f"output folder {out} cannot be created: {probe} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".write-test-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise OutputLocationError(
            f"output folder {out} is not writable ({probe}: {exc.strerror or exc})"
        ) from None


class PipelineOrchestrator:
    """Runs a pipeline of :class:`FunctionStep` s over a plate.

    Parameters
    ----------
    plate_path : str or Path
        The plate folder (ImageXpress, Opera Phenix/Operetta, OME-Zarr, Yokogawa).
    global_config : GlobalPipelineConfig, optional
        Workers, output folder, executor and other run-wide settings.
    """

    def __init__(self, plate_path: str | Path, global_config: GlobalPipelineConfig | None = None) -> None:
        self.plate_path = Path(plate_path)
        self.config = global_config or GlobalPipelineConfig()
        self.plate: Plate | None = None
        self.output_dir: Path | None = None
        self.last_compiled: CompiledPlate | None = None
        self._cancel = threading.Event()

    # ------------------------------------------------------------------ setup
    def initialize(self) -> PipelineOrchestrator:
        """Detect the format, read the plate's metadata and check the output location.

        Raises
        ------
        PlateFormatError
            If the path is missing or not a readable plate.
        OutputLocationError
            If the output folder is inside the plate or not writable.
        """
        from ..microscopes.detect import open_plate

        if self.plate_path.exists() and (self.config.executor == "processes" or (
            self.config.executor == "dask" and not self.config.dask_scheduler
        )):  # local worker processes: their fork server's imports overlap reading and compiling
            from .workers.start import DASK_PRELOAD, start_worker_server

            start_worker_server(DASK_PRELOAD if self.config.executor == "dask" else ())
        self.plate = open_plate(self.plate_path, microscope=self.config.microscope, source=self.config.source)
        out = self.config.output_dir
        self.output_dir = Path(out).resolve() if out else default_output_dir(self.plate_path)
        check_output_location(self.output_dir, self.plate_path)
        logger.info(
            "plate %s (%s): %d wells; output %s",
            self.plate.name,
            self.plate.microscope,
            len(self.plate.wells),
            self.output_dir,
        )
        return self

    def _require(self) -> Plate:
        if self.plate is None or self.output_dir is None:
            raise NotInitializedError("call orchestrator.initialize() first")
        return self.plate

    @property
    def output_path(self) -> Path:
        """The output OME-Zarr plate (``<output_dir>/<plate name>.ome.zarr``)."""
        plate = self._require()
        assert self.output_dir is not None
        return self.output_dir / f"{safe_name(plate.name)}.ome.zarr"

    def pipeline_hash(self, steps: list[FunctionStep]) -> str:
        """Hash of the pipeline and the input plate's identity (used to skip completed wells)."""
        from .pipeline_io import pipeline_hash

        plate = self._require()
        return pipeline_hash(list(steps), f"{Path(plate.root).resolve()}|{plate.source}")

    # ---------------------------------------------------------------- compile
    def compile_pipelines(
        self, pipeline_definition: list[FunctionStep], well_filter: list[str] | None = None
    ) -> dict[str, ProcessingContext]:
        """Compile the steps into one frozen :class:`ProcessingContext` per well.

        Raises
        ------
        PipelineCompileError
            For every problem found (unknown/missing arguments, bad dict keys, special
            inputs without a producer, too little memory, ...), before any pixel is read.
        """
        plate = self._require()
        assert self.output_dir is not None
        compiled = compile_plate(
            plate,
            list(pipeline_definition),
            self.config,
            self.output_dir,
            self.pipeline_hash(pipeline_definition),
            well_filter,
        )
        self.last_compiled = compiled
        return compiled.contexts

    # ---------------------------------------------------------------- execute
    def cancel(self) -> None:
        """Ask a running plate to stop: running wells stop between steps, queued ones never start."""
        self._cancel.set()

    def execute_compiled_plate(
        self,
        pipeline_definition: list[FunctionStep],
        compiled_contexts: dict[str, ProcessingContext],
        max_workers: int | None = None,
        progress_callback: Callable[[Any], None] | None = None,
        cancel_event: threading.Event | None = None,
        executor: str | Any | None = None,
    ) -> dict[str, WellResult]:
        """Run the compiled wells and write the output plate and tables.

        Parameters
        ----------
        pipeline_definition : list of FunctionStep
            The steps that were compiled (recorded as provenance).
        compiled_contexts : dict
            ``compile_pipelines``' result (or a subset of it).
        max_workers : int, optional
            Wells in parallel (default: the config's, lowered if memory requires).
        progress_callback : callable, optional
            Receives :mod:`~napari_openhcs.core.events` as they happen.
        cancel_event : threading.Event, optional
            Set it to cancel (as :meth:`cancel` does).
        executor : str or executor object, optional
            ``"processes"``, ``"threads"``, ``"dask"`` or an object with ``run(...)``.

        Returns
        -------
        dict
            ``{well: WellResult}``; a failed well does not stop the others.
        """
        from .plate_run import run_plate

        self._require()
        self._cancel.clear()
        workers = max_workers or self.config.workers
        if self.last_compiled is not None and self.last_compiled.contexts is compiled_contexts:
            workers = min(workers, self.last_compiled.memory.workers)
        results = run_plate(
            self._require(),
            self.config,
            list(pipeline_definition),
            compiled_contexts,
            workers=workers,
            emit=_safe_callback(progress_callback),
            cancel=_AnyEvent(self._cancel, cancel_event),  # type: ignore[arg-type]
            executor=executor or self.config.executor,
        )
        for well, result in self._skipped_incomplete(compiled_contexts).items():
            results[well] = result
            _safe_callback(progress_callback)(WellFinished(well, result))
        _safe_callback(progress_callback)(PlateFinished(results))
        return results

    def _skipped_incomplete(self, contexts: dict[str, ProcessingContext]) -> dict[str, WellResult]:
        """Return a ``skipped`` result, with its missing images, per well that
        ``skip_incomplete_wells`` left out of ``contexts`` (so it is reported, not silently absent)."""
        compiled = self.last_compiled
        if not self.config.skip_incomplete_wells or compiled is None or compiled.contexts is not contexts:
            return {}
        return {
            well: WellResult(well, "skipped", None, {}, {}, ("missing images: " + "; ".join(missing),))
            for well, missing in compiled.incomplete_wells.items()
            if well not in contexts
        }

    def run(
        self, steps: list[FunctionStep], well_filter: list[str] | None = None, **kwargs: Any
    ) -> dict[str, WellResult]:
        """Compile and execute in one call (initializing first if needed)."""
        if self.plate is None:
            self.initialize()
        compiled = self.compile_pipelines(steps, well_filter)
        return self.execute_compiled_plate(steps, compiled, **kwargs)

    # ---------------------------------------------------------------- preview
    def preview_well(
        self,
        steps: list[FunctionStep],
        well: str,
        *,
        site: int | None = None,
        start_step: int = 0,
        previous: WellPreview | None = None,
        cancel_event: threading.Event | None = None,
    ) -> WellPreview:
        """Run one well (or one site) through the pipeline, keeping every step's output.

        Same code path as the plate run, nothing written. Pass ``previous`` (an earlier
        preview of the same well/site) and ``start_step`` to re-run only from that step.
        """
        from .preview import preview_well

        plate = self._require()
        assert self.output_dir is not None
        config = self.config.replace(executor="threads", num_workers=1)
        compiled = compile_plate(plate, list(steps), config, self.output_dir,
                                 self.pipeline_hash(steps), [well])
        context = next(iter(compiled.contexts.values()))
        return preview_well(context, site=site, start_step=start_step, previous=previous,
                            cancel_event=cancel_event)


def _safe_callback(callback: Callable[[Any], None] | None) -> Callable[[Any], None]:
    def emit(event: Any) -> None:
        if callback is None:
            return
        try:
            callback(event)
        except Exception:  # a broken progress display must not break the run
            logger.exception("progress callback failed on %r", event)

    return emit
