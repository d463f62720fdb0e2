"""Preview dock: run the selected well (or site) through the pipeline, every step as a layer."""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import Any

from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._layers import META_KEY
from .._pipeline_model import engine_start, errors_by_step, model_index
from .._preview_model import PreviewRequest, PreviewScheduler, preview_layers
from .._session import HCSSession
from .._viewer import add_layer_data, layers_of_kind, remove_layers, select_layer, update_layer
from .layer_batch import LayerBatch

logger = logging.getLogger(__name__)


def compute_preview(session: HCSSession, request: PreviewRequest) -> tuple[str, Any]:
    """Run one preview (in a worker thread).

    Returns
    -------
    tuple
        ``("ok", (WellPreview, layer data))``, ``("compile", PipelineCompileError)`` or
        ``("error", message)``.
    """
    from ...core.errors import PipelineCompileError

    try:
        orch = session.preview_orchestrator()
        preview = orch.preview_well(request.steps, request.well, site=request.site, start_step=request.start,
                                    previous=request.previous, cancel_event=request.cancel_event)
    except PipelineCompileError as exc:
        return "compile", exc
    except Exception as exc:  # plate unreadable, bad site...: shown, never raised into Qt
        logger.exception("preview of %s failed", request.well)
        return "error", str(exc)
    return "ok", (preview, preview_layers(preview, request.steps, session.plate))


class PreviewWidget(QWidget):
    """Previews the session's selected well; re-runs (debounced) when the pipeline changes.

    Signals
    -------
    preview_finished(object)
        A preview run ended (the ``WellPreview``, or ``None`` when it could not run).
    """

    preview_finished = Signal(object)

    def __init__(self, session: HCSSession, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.viewer = viewer
        self.scheduler = PreviewScheduler()
        self.last_preview: Any = None
        self._worker: Any = None
        self._live: set[Any] = set()  # started workers, cancelled ones included, until they finish
        self._cancel: threading.Event | None = None
        self._batch = LayerBatch(viewer, self)  # layer updates, one per event-loop turn
        self._added: Any = None  # the last layer added by the updates in progress

        self.target = QLabel()
        self.auto = QCheckBox("re-run when the pipeline changes")
        self.auto.setChecked(True)
        self.run_button = QPushButton("Preview")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.status = QLabel("select a well, build a pipeline, then Preview")
        self.status.setWordWrap(True)
        self.steps_table = QTableWidget(0, 3)
        self.steps_table.setHorizontalHeaderLabels(["step", "seconds", "output"])
        self.steps_table.horizontalHeader().setStretchLastSection(True)
        self.steps_table.verticalHeader().setVisible(False)
        self.steps_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.target)
        layout.addWidget(self.auto)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(self.steps_table, 1)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(session.settings.debounce_ms)
        self.timer.timeout.connect(self.run_preview)
        self.run_button.clicked.connect(self.run_preview)
        self.cancel_button.clicked.connect(self.cancel)
        session.pipeline.changed.connect(self._on_pipeline_changed)
        session.selection_changed.connect(self._on_selection)
        session.plate_changed.connect(self._on_plate)
        self._on_selection(session.well, session.site)

    # ------------------------------------------------------------------ triggers
    def _on_pipeline_changed(self, first: int) -> None:
        self.scheduler.invalidate(engine_start(self.session.pipeline.steps, first))
        if self.auto.isChecked() and (self.last_preview is not None or self.is_running):
            self.timer.start()

    def _on_plate(self, _: Any) -> None:
        self._on_selection(self.session.well, self.session.site)

    def _on_selection(self, well: str | None, site: int | None) -> None:
        where = "—" if well is None else (f"well {well}" + (f", site {site}" if site is not None else ""))
        self.target.setText(f"<b>Preview:</b> {where}")
        self.scheduler.target_changed()
        if self.auto.isChecked() and self.last_preview is not None:
            self.timer.start()

    @property
    def is_running(self) -> bool:
        """Whether a preview is being computed."""
        return self._worker is not None

    # ------------------------------------------------------------------ run
    def run_preview(self) -> None:
        """Preview the selected well now (cancelling a run in progress)."""
        self.timer.stop()
        session = self.session
        steps = session.pipeline.steps
        if session.well is None or not any(s.enabled for s in steps):
            self.status.setText("nothing to preview: select a well and add an enabled step")
            return
        if self._cancel is not None:
            self._cancel.set()
        self._cancel = threading.Event()
        request = self.scheduler.next_request(steps, session.well, session.site, self._cancel)
        self.status.setText(f"running {session.well} from step {request.start + 1}…")
        self.cancel_button.setEnabled(True)
        worker = create_worker(compute_preview, session, request, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result, r=request: self._on_result(r, result))
        worker.errored.connect(lambda exc, r=request: self._on_result(r, ("error", str(exc))))
        worker.finished.connect(lambda w=worker: self._live.discard(w))
        self._worker = worker
        self._live.add(worker)
        worker.start()

    def cancel(self) -> None:
        """Stop the preview in progress (the layers keep the last result)."""
        self.timer.stop()
        if self._cancel is not None:
            self._cancel.set()
        if self.scheduler.inflight is not None:
            self.scheduler.cancelled(self.scheduler.inflight)
            self.scheduler.generation += 1  # its result is stale now
        self._worker = None
        self.cancel_button.setEnabled(False)
        self.status.setText("preview cancelled")

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Cancel any preview and wait for its thread to end (before the viewer closes)."""
        import time

        from qtpy.QtWidgets import QApplication

        self.cancel()
        deadline = time.monotonic() + timeout_s
        while self._live and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        self.cancel()
        self._batch.clear()  # the layers added so far get their controls; the canvas repaints
        super().closeEvent(event)

    def _on_result(self, request: PreviewRequest, result: tuple[str, Any]) -> None:
        kind, value = result
        preview = value[0] if kind == "ok" else None
        if not self.scheduler.finished(request, preview):
            return  # superseded by a newer run
        self._worker = None
        self.cancel_button.setEnabled(False)
        pipeline = self.session.pipeline
        if kind == "ok":
            self.last_preview = preview
            layers = value[1]
            names = {kw["name"] for _, kw, _ in layers}
            if request.previous is not None:  # steps before the start were reused: their layers stand
                shown = {ly.name for ly in layers_of_kind(self.viewer, "preview")}
                layers = [ld for ld in layers if ld[1]["name"] not in shown
                          or ld[1]["metadata"][META_KEY]["engine_step"] >= request.start]
            self._apply_layers(layers, names, lambda: self._finish(preview, request))
            return
        if kind == "compile":
            pipeline.set_errors(errors_by_step(str(value), getattr(value, "problems", []), request.steps))
            self.status.setText(f"the pipeline does not compile: {value}")
        else:
            pipeline.set_errors({-1: str(value)})
            self.status.setText(f"preview failed: {value}")
        self._done(None)

    def _finish(self, preview: Any, request: PreviewRequest) -> None:
        errors: dict[int, str] = {}
        if preview.error and not preview.cancelled:
            idx = model_index(request.steps, preview.failed_step) if preview.failed_step is not None else None
            errors[-1 if idx is None else idx] = preview.error
        self.session.pipeline.set_errors(errors)
        self._show_timings(preview, request)
        total = sum(sp.elapsed_s for sp in preview.steps)
        if preview.cancelled:
            self.status.setText("preview cancelled")
        elif preview.error:
            self.status.setText(f"step failed: {preview.error}")
        else:
            self.status.setText(f"{preview.well}: {len(preview.steps)} steps, {total:.2f} s of compute "
                                f"(re-ran from step {request.start + 1})")
        self._done(preview)

    def _show_timings(self, preview: Any, request: PreviewRequest) -> None:
        """One row per step: its time on this well and the shape of its output."""
        rows = []
        for sp in preview.steps:
            idx = model_index(request.steps, sp.index)
            reused = request.previous is not None and sp.index < request.start
            shape = "×".join(str(n) for n in sp.data.shape[-2:])
            n_fields = len(getattr(sp, "fields", None) or {}) or 1
            fields = f"{n_fields} fields of " if n_fields > 1 else ""
            rows.append((f"{(idx if idx is not None else sp.index) + 1}. {sp.name}",
                         "cached" if reused else f"{sp.elapsed_s:.3f}",
                         f"{len(sp.channel_names)} ch, {fields}{shape} px, {sp.data.dtype}"))
        if preview.error and preview.failed_step is not None:
            idx = model_index(request.steps, preview.failed_step)
            number = (idx if idx is not None else preview.failed_step) + 1
            rows.append((f"{number}. failed", "", preview.error))
        self.steps_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.steps_table.setItem(r, c, item)
        self.steps_table.resizeColumnsToContents()

    def _done(self, preview: Any) -> None:
        self.preview_finished.emit(preview)
        if self.scheduler.is_dirty and self.auto.isChecked():
            self.timer.start()

    def _apply_layers(self, layers: list[Any], names: set[str], then: Any) -> None:
        """Update ``layers`` one per event-loop turn (short UI stalls, the canvas drawn once
        at the end), select the last one added, drop preview layers not in ``names``, then
        call ``then``."""
        self._added = None
        self._batch.run([*(partial(self._apply_queued, ld) for ld in layers),
                         lambda: select_layer(self.viewer, self._added),
                         lambda: self._drop_stale(set(names))], then)

    def _apply_queued(self, layer_data: Any) -> None:
        added = self._apply_one(layer_data, add=self._batch.add)
        if added is not None:
            self._added = added

    def _apply_one(self, layer_data: Any, *, add: Any = None) -> Any:
        """Show ``layer_data`` in the same-named preview layer; return the layer if one was added.

        ``add(layer_data)`` adds a new layer (default: now, selected, as napari does).
        """
        data, kwargs, layer_type = layer_data
        existing = {ly.name: ly for ly in layers_of_kind(self.viewer, "preview")}
        layer = existing.get(kwargs["name"])
        if layer is not None and layer._type_string == layer_type and layer.ndim == data.ndim:
            update_layer(layer, layer_data)
            return None
        if layer is not None:
            remove_layers(self.viewer, [layer])
        return add(layer_data) if add is not None else add_layer_data(self.viewer, layer_data)

    def update_layers(self, layers: list[Any]) -> None:
        """Show preview layers now: update same-named layers, add new ones, drop stale ones."""
        self._batch.clear()
        for layer_data in layers:
            self._apply_one(layer_data)
        self._drop_stale({kw["name"] for _, kw, _ in layers})

    def _drop_stale(self, names: set[str]) -> None:
        stale = [ly for ly in layers_of_kind(self.viewer, "preview") if ly.name not in names]
        remove_layers(self.viewer, stale)
