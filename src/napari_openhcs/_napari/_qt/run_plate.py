"""Run plate dock: run the pipeline on every well, with progress, cancel and results."""

from __future__ import annotations

import logging
import threading
from functools import partial
from pathlib import Path
from typing import Any

from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .._pipeline_model import errors_by_step
from .._run_model import RunOutputs, RunPrepared, RunProgress, RunStarted, prepare_outputs, run_job
from .._session import HCSSession
from .._viewer import add_layers, layer_info, layers_of_kind, remove_layers, select_layer
from .layer_batch import LayerBatch
from .pacing import TurnQueue
from .prewarm import warm_glyphs

logger = logging.getLogger(__name__)


def parse_wells(text: str, selected: str | None) -> list[str] | None:
    """Parse the wells field: empty/``all`` → all wells, ``selected``, or ``A01, B02``."""
    from ...microscopes.plate import canonical_well

    text = text.strip()
    if not text or text.lower() == "all":
        return None
    if text.lower() == "selected":
        if selected is None:
            raise ValueError("no well is selected on the plate map")
        return [selected]
    return [canonical_well(w) for w in text.replace(";", ",").replace(" ", ",").split(",") if w]


class RunPlateWidget(QWidget):
    """Runs the session's pipeline on the plate in a worker thread.

    Signals
    -------
    run_finished(object)
        ``{well: WellResult}`` when a run ends, or ``None`` if it could not start.
    """

    run_finished = Signal(object)

    def __init__(self, session: HCSSession, viewer: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.viewer = viewer
        self.progress = RunProgress()
        self.results: dict[str, Any] | None = None
        self.orchestrator: Any = None
        self._worker: Any = None
        self._outputs: RunOutputs | None = None
        self._cancel: threading.Event | None = None
        self._batch = LayerBatch(viewer, self)  # result layers, one per event-loop turn
        s = session.settings

        self.output_edit = QLineEdit(s.output_folder)
        self.output_edit.setPlaceholderText("<plate>_outputs beside the plate")
        browse = QToolButton()
        browse.setText("…")
        browse.clicked.connect(self._browse)
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(browse)
        self.workers = QSpinBox()
        self.workers.setRange(0, 256)
        self.workers.setSpecialValueText("all cores")
        self.workers.setValue(s.workers)
        self.executor = QComboBox()
        self.executor.addItems(["processes", "threads"])
        self.executor.setCurrentText(s.executor)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(0.0, 7 * 24 * 3600.0)
        self.timeout.setDecimals(0)
        self.timeout.setSuffix(" s")
        self.timeout.setSpecialValueText("no limit")
        self.timeout.setToolTip("Fail a well that runs longer than this (0: no limit)")
        self.stall = QDoubleSpinBox()
        self.stall.setRange(0.0, 7 * 24 * 3600.0)
        self.stall.setDecimals(0)
        self.stall.setSuffix(" s")
        self.stall.setSpecialValueText("never")
        self.stall.setValue(600.0)
        self.stall.setToolTip("Stop a worker that makes no progress for this long and retry its well once "
                              "(0: never)")
        self.wells_edit = QLineEdit()
        self.wells_edit.setPlaceholderText("all  |  selected  |  A01, B02")
        self.overwrite = QCheckBox("recompute wells already done")
        self.open_output = QCheckBox("open the results as layers")
        self.open_output.setChecked(True)
        form = QFormLayout()
        form.addRow("Output folder", out_row)
        form.addRow("Workers", self.workers)
        form.addRow("Executor", self.executor)
        form.addRow("Well timeout", self.timeout)
        form.addRow("Stall timeout", self.stall)
        form.addRow("Wells", self.wells_edit)
        form.addRow("", self.overwrite)
        form.addRow("", self.open_output)

        self.run_button = QPushButton("Run plate")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.bar = QProgressBar()
        self.bar.setRange(0, 100)
        self.bar.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addStretch(1)
        self._bar_timer = QTimer(self)
        self._bar_timer.setSingleShot(True)
        self._bar_timer.setInterval(100)
        self._bar_timer.timeout.connect(self._update_bar)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self._warm = TurnQueue(self)
        if viewer is not None:  # the well names of the results are drawn without rendering glyphs
            warm_glyphs(viewer, self._warm)

    @property
    def is_running(self) -> bool:
        """Whether a run is in progress."""
        return self._worker is not None

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_edit.text())
        if folder:
            self.output_edit.setText(folder)

    # ------------------------------------------------------------------ run
    def run(self) -> None:
        """Start the run (the UI stays responsive; progress arrives as events)."""
        if self.is_running:
            return
        session = self.session
        try:
            wells = parse_wells(self.wells_edit.text(), session.well)
            if session.plate is None:
                raise RuntimeError("open a plate first (File > Open Folder..., or the sample plate)")
        except Exception as exc:  # no plate, bad well names
            self._fail_to_start(str(exc))
            return
        options = {"output_dir": self.output_edit.text().strip() or None, "workers": self.workers.value(),
                   "executor": self.executor.currentText(), "overwrite": self.overwrite.isChecked(),
                   "well_timeout_s": self.timeout.value() or None,
                   "stall_timeout_s": self.stall.value() or None}
        self.orchestrator = None
        self._outputs = None
        session.reset_status(wells)
        self.results = None
        self.bar.setValue(0)
        self.status.setText("reading the plate and compiling…")
        self._cancel = threading.Event()
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        worker = create_worker(run_job, session, session.pipeline.steps, wells, options=options,
                               max_workers=self.workers.value() or None, cancel_event=self._cancel,
                               _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_done)
        worker.errored.connect(self._on_error)
        self._worker = worker
        worker.start()

    def cancel(self) -> None:
        """Ask the run to stop: running wells stop between steps, queued ones never start."""
        if self._cancel is not None:
            self._cancel.set()
            self.status.setText("cancelling…")

    def shutdown(self, timeout_s: float = 60.0) -> None:
        """Cancel a run and wait for it to end (before the viewer closes)."""
        import time

        from qtpy.QtWidgets import QApplication

        self.cancel()
        deadline = time.monotonic() + timeout_s
        while self._worker is not None and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        self.cancel()
        self._batch.clear()  # the layers added so far get their controls; the canvas repaints
        super().closeEvent(event)

    def _fail_to_start(self, message: str) -> None:
        self.status.setText(message)
        show_error(f"Cannot run the plate: {message}")
        self.run_finished.emit(None)

    # ------------------------------------------------------------------ events (UI thread)
    def _on_event(self, event: Any) -> None:
        if isinstance(event, RunPrepared):
            self.orchestrator = event.orchestrator
            return
        if isinstance(event, RunOutputs):
            self._outputs = event
            return
        if isinstance(event, RunStarted):
            self.status.setText(f"running {len(event.wells)} wells → {event.output_path}")
        for well, status, error in self.progress.update(event):
            self.session.set_status(well, status, error)
            if status == "failed":
                show_error(f"Well {well} failed: {error}")
        if not self._bar_timer.isActive():  # repaint at most every 100 ms
            self._bar_timer.start()

    def _update_bar(self) -> None:
        self.bar.setValue(self.progress.percent)

    def _on_error(self, exc: Exception) -> None:
        from ...core.errors import PipelineCompileError

        self._finish()
        if isinstance(exc, PipelineCompileError):
            pipeline = self.session.pipeline
            pipeline.set_errors(errors_by_step(str(exc), exc.problems, pipeline.steps))
        self.status.setText(f"the run did not start: {exc}")
        show_error(f"Plate run failed: {exc}")
        self.run_finished.emit(None)

    def _on_done(self, results: dict[str, Any]) -> None:
        self._finish()
        self.results = results
        self.bar.setValue(self.progress.percent)
        summary = self.progress.summary()
        self.status.setText(f"finished: {summary}")
        orch = self.orchestrator
        if orch is not None and orch.output_dir is not None:
            self.session.output_dir = Path(orch.output_dir)
            self.session.measured = dict(self._outputs.values) if self._outputs is not None else {}
            self.session.outputs_changed.emit(Path(orch.output_dir))
        show_info(f"Plate run finished: {summary}")
        if self.open_output.isChecked() and self.viewer is not None and self._outputs is not None:
            # one layer per event-loop turn keeps each UI stall to one layer's creation
            self._add_one_by_one(self._outputs, lambda: self.run_finished.emit(results))
        else:
            self.run_finished.emit(results)

    def _add_one_by_one(self, outputs: RunOutputs, then: Any) -> None:
        """Add the result layers one per event-loop turn (the canvas drawn once at the end),
        select the last, then call ``then``."""
        self._batch.clear()
        self._remove_shown(outputs)
        added: list[Any] = []

        def add(layer_data: Any) -> None:
            added.append(self._batch.add(layer_data))

        self._batch.run([*(partial(add, ld) for ld in outputs.layers),
                         lambda: select_layer(self.viewer, added[-1] if added else None)], then)

    def _remove_shown(self, outputs: RunOutputs) -> None:
        old = [ly for kind in ("output", "output-wells") for ly in layers_of_kind(self.viewer, kind)
               if layer_info(ly).get("plate_path") == str(outputs.plate_path)]
        remove_layers(self.viewer, old)

    def _finish(self) -> None:
        self._bar_timer.stop()
        self._worker = None
        self._cancel = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def open_results(self, plate_path: Path, tables_dir: Path) -> list[Any]:
        """Open an output plate as lazy multiscale layers (replacing an earlier view of it)."""
        outputs = prepare_outputs(Path(plate_path), Path(tables_dir))
        return self.show_outputs(outputs) if outputs is not None else []

    def show_outputs(self, outputs: RunOutputs) -> list[Any]:
        """Add prepared output layers now (replacing an earlier view of the same plate)."""
        self._remove_shown(outputs)
        return add_layers(self.viewer, outputs.layers)
