"""The state the docks share: plate, selected well/site, run status, pipeline (no Qt).

One :class:`HCSSession` exists per viewer (:func:`session_for`); the plate map, the
pipeline editor, the preview and the run dock all read and change it, so it can
be scripted without any widget.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psygnal import Signal

from ._layers import META_KEY, load_plate
from ._pipeline_model import PipelineModel
from ._settings import RunSettings, load_settings

if TYPE_CHECKING:
    from ..core.orchestrator import PipelineOrchestrator
    from ..microscopes.plate import Plate

logger = logging.getLogger(__name__)

#: Run status of a well, in the order a run moves through them.
STATUSES: tuple[str, ...] = ("pending", "running", "done", "skipped", "cancelled", "failed")


class HCSSession:
    """Shared state of the docks of one viewer.

    Signals
    -------
    plate_changed(object)
        A plate was opened (the :class:`~napari_openhcs.microscopes.plate.Plate`).
    selection_changed(object, object)
        The selected ``(well, site)``; ``site`` is ``None`` for the whole well.
    status_changed(object)
        A well's run status changed (the well; ``None`` when all changed).
    values_changed()
        The measured values shown on the plate map changed.
    outputs_changed(object)
        A run finished writing to this output folder (``Path``).
    """

    plate_changed = Signal(object)
    selection_changed = Signal(object, object)
    status_changed = Signal(object)
    values_changed = Signal()
    outputs_changed = Signal(object)

    def __init__(self, settings: RunSettings | None = None) -> None:
        self.settings = settings or load_settings()
        self.pipeline = PipelineModel()
        self.plate: Plate | None = None
        self.plate_path: Path | None = None
        self.well: str | None = None
        self.site: int | None = None
        self.status: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.values: dict[str, float] = {}
        self.value_name = ""
        self.output_dir: Path | None = None
        #: ``{label: {well: value}}`` from the last run's tables (see ``per_well_values``).
        self.measured: dict[str, dict[str, float]] = {}
        self._preview_orch: PipelineOrchestrator | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ plate
    def open_plate(self, path: str | Path) -> Plate:
        """Open a raw plate folder and make it the session's plate.

        Raises
        ------
        PlateFormatError
            If the folder is not a readable plate.
        """
        plate = load_plate(path)
        self.set_plate(plate)
        return plate

    def set_plate(self, plate: Plate) -> None:
        """Make ``plate`` the session's plate: all wells pending, the first one selected."""
        self.plate = plate
        self.plate_path = Path(plate.root)
        self._preview_orch = None
        self.status = {w: "pending" for w in plate.wells}
        self.errors = {}
        self.values, self.value_name = {}, ""
        self.output_dir = None
        self.measured = {}
        self.plate_changed.emit(plate)
        self.status_changed.emit(None)
        self.values_changed.emit()
        self.select(plate.wells[0] if plate.wells else None, None)

    def adopt_layer_metadata(self, metadata: Mapping[str, Any]) -> bool:
        """Open the plate a layer came from (raw plates the reader opened); return True if opened."""
        info = metadata.get(META_KEY) if isinstance(metadata, Mapping) else None
        if not isinstance(info, Mapping) or info.get("kind") != "raw":
            return False
        path = Path(str(info.get("plate_path")))
        if self.plate_path is not None and path.resolve() == self.plate_path.resolve():
            return False
        self.open_plate(path)
        return True

    # ------------------------------------------------------------------ selection
    def select(self, well: str | None, site: int | None = None) -> None:
        """Select a well (and optionally one site; ``None`` for the whole well)."""
        if self.plate is not None and well is not None and well not in self.plate.wells:
            raise ValueError(f"well {well} is not on the plate (wells: {', '.join(self.plate.wells)})")
        if self.plate is not None and site is not None and site not in self.plate.sites:
            raise ValueError(f"site {site} is not on the plate (sites: {self.plate.sites})")
        if (well, site) != (self.well, self.site):
            self.well, self.site = well, site
            self.selection_changed.emit(well, site)

    # ------------------------------------------------------------------ status
    def set_status(self, well: str, status: str, error: str | None = None) -> None:
        """Set the run status of one well (and the error shown for a failed one)."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        self.status[well] = status
        if error:
            self.errors[well] = error
        else:
            self.errors.pop(well, None)
        self.status_changed.emit(well)

    def reset_status(self, wells: list[str] | None = None) -> None:
        """Mark ``wells`` (default: all) pending again."""
        for w in wells if wells is not None else list(self.status):
            self.status[w] = "pending"
            self.errors.pop(w, None)
        self.status_changed.emit(None)

    def set_values(self, name: str, values: Mapping[str, float]) -> None:
        """Set the measured value per well shown on the plate map (``{}`` to clear)."""
        self.value_name, self.values = name, dict(values)
        self.values_changed.emit()

    # ------------------------------------------------------------------ engine
    def make_orchestrator(self, *, output_dir: str | Path | None = None, workers: int | None = None,
                          executor: str | None = None, use_gpu: str | None = None,
                          overwrite: bool = False,
                          well_timeout_s: float | None = None,
                          stall_timeout_s: float | None = 600.0) -> PipelineOrchestrator:
        """Return an initialized orchestrator for the session's plate.

        Unset arguments come from :attr:`settings`; ``well_timeout_s`` fails a well
        that runs longer (``None`` or 0: no limit); ``stall_timeout_s`` stops a worker
        that reports no progress for that long and retries its well once (``None`` or 0:
        never).

        Raises
        ------
        RuntimeError
            If no plate is open.
        OutputLocationError
            If the output folder is inside the plate or not writable.
        """
        from ..core.config import GlobalPipelineConfig
        from ..core.orchestrator import PipelineOrchestrator

        if self.plate_path is None:
            raise RuntimeError("open a plate first (File > Open Folder..., or the sample plate)")
        s = self.settings
        out = output_dir if output_dir is not None else (s.output_folder or None)
        config = GlobalPipelineConfig(
            num_workers=s.workers if workers is None else workers,
            output_dir=Path(out) if out else None,
            executor=executor or s.executor,  # type: ignore[arg-type]
            use_gpu=use_gpu or s.use_gpu,  # type: ignore[arg-type]
            overwrite=overwrite,
            well_timeout_s=well_timeout_s or None,
            heartbeat_timeout_s=stall_timeout_s or None,
        )
        return PipelineOrchestrator(self.plate_path, global_config=config).initialize()

    def preview_orchestrator(self) -> PipelineOrchestrator:
        """Return the orchestrator used for previews (created once per plate; writes nothing)."""
        with self._lock:
            if self._preview_orch is None:
                from ._sample_data import cache_dir

                scratch = cache_dir() / "preview-scratch"
                scratch.mkdir(parents=True, exist_ok=True)
                self._preview_orch = self.make_orchestrator(output_dir=scratch, workers=1,
                                                            executor="threads")
            return self._preview_orch


_SESSIONS: weakref.WeakKeyDictionary[Any, HCSSession] = weakref.WeakKeyDictionary()


def real_viewer(viewer: Any) -> Any:
    """Return the viewer behind napari's ``PublicOnlyProxy`` (``viewer`` itself if not a proxy)."""
    inner = getattr(viewer, "__wrapped__", None)
    while inner is not None and inner is not viewer:  # proxies may nest
        viewer, inner = inner, getattr(inner, "__wrapped__", None)
    return viewer


def session_for(viewer: Any) -> HCSSession:
    """Return the session of ``viewer`` (created on first use).

    ``viewer`` may be napari's ``PublicOnlyProxy``: the session is keyed (weakly) on
    the real viewer behind it, so every dock of one viewer shares it and a proxy
    being garbage-collected does not drop it. The session follows the viewer's
    layers: a raw plate opened by the reader (or the sample data) becomes the
    session's plate.
    """
    viewer = real_viewer(viewer)
    session = _SESSIONS.get(viewer)
    if session is None:
        from ._warmup import warm_up

        warm_up()  # napari's first labels/points layer imports pandas: do it off the UI thread
        session = HCSSession()
        _SESSIONS[viewer] = session
        _follow_layers(viewer, session)
    return session


def _follow_layers(viewer: Any, session: HCSSession) -> None:
    def on_inserted(event: Any) -> None:
        try:
            session.adopt_layer_metadata(event.value.metadata)
        except Exception:  # a layer we cannot follow must not break napari
            logger.exception("could not open the plate of layer %r", getattr(event.value, "name", "?"))

    def on_removed(event: Any) -> None:
        from ._warmup import thaw_for

        thaw_for(event.value)  # a layer frozen with the heap is freed only once thawed

    viewer.layers.events.inserted.connect(on_inserted)
    viewer.layers.events.removed.connect(on_removed)
    for layer in list(viewer.layers)[::-1]:
        if session.adopt_layer_metadata(layer.metadata):
            break
