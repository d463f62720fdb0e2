"""Pipeline editor dock: function browser, step list, step form, files."""

from __future__ import annotations

import logging
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from .._pipeline_model import PipelineModel, step_from_function
from .function_browser import FunctionBrowser
from .step_form import StepForm
from .step_list import StepList

logger = logging.getLogger(__name__)

YAML_FILTER = "Pipeline (*.yaml *.yml)"


class PipelineEditorWidget(QWidget):
    """Assemble a pipeline: browse functions, add and order steps, set parameters.

    Parameters
    ----------
    model : PipelineModel
        The pipeline being edited (shared with the preview and run docks).
    """

    def __init__(self, model: PipelineModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.browser = FunctionBrowser()
        self.steps = StepList(model)
        self.form = StepForm(model)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(self.form)
        self.status = QLabel()
        self.status.setWordWrap(True)

        steps_box = QWidget()
        steps_layout = QVBoxLayout(steps_box)
        steps_layout.setContentsMargins(0, 0, 0, 0)
        steps_layout.addWidget(QLabel("<b>Pipeline</b>"))
        steps_layout.addWidget(self.steps)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.browser)
        splitter.addWidget(steps_box)
        splitter.addWidget(scroll)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 1)
        splitter.setStretchFactor(2, 4)
        splitter.setSizes([220, 150, 420])

        self.save_button = QPushButton("Save…")
        self.load_button = QPushButton("Load…")
        self.export_button = QPushButton("Export Python…")
        files = QHBoxLayout()
        for b in (self.save_button, self.load_button, self.export_button):
            files.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter, 1)
        layout.addLayout(files)
        layout.addWidget(self.status)

        self.browser.function_chosen.connect(self.add_function)
        self.save_button.clicked.connect(lambda: self._file_action("save"))
        self.load_button.clicked.connect(lambda: self._file_action("load"))
        self.export_button.clicked.connect(lambda: self._file_action("export"))
        QShortcut(QKeySequence.StandardKey.Undo, self, activated=model.undo)
        QShortcut(QKeySequence.StandardKey.Redo, self, activated=model.redo)

    def add_function(self, name: str) -> int:
        """Add a step running the registered function ``name``; return its index."""
        from ...functions.registry import get_function

        index = self.model.add(step_from_function(get_function(name)))
        self.status.setText(f"added step {index + 1}: {name}")
        return index

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Save the pipeline as YAML."""
        out = self.model.save(path)
        self.status.setText(f"saved {out}")
        return out

    def load(self, path: str | Path) -> None:
        """Replace the pipeline with a saved one (undoable)."""
        self.model.load(path)
        self.status.setText(f"loaded {path}")

    def export_python(self, path: str | Path) -> Path:
        """Export the pipeline as a runnable Python script."""
        out = self.model.export_python(path)
        self.status.setText(f"exported {out}")
        return out

    def _file_action(self, action: str) -> None:
        if action == "load":
            path, _ = QFileDialog.getOpenFileName(self, "Load pipeline", "", YAML_FILTER)
        elif action == "save":
            path, _ = QFileDialog.getSaveFileName(self, "Save pipeline", "pipeline.yaml", YAML_FILTER)
        else:
            path, _ = QFileDialog.getSaveFileName(self, "Export pipeline as Python", "pipeline.py",
                                                  "Python (*.py)")
        if not path:
            return
        try:
            {"load": self.load, "save": self.save, "export": self.export_python}[action](path)
        except Exception as exc:  # show the engine's message (unknown function, bad types...)
            logger.warning("pipeline %s failed: %s", action, exc)
            QMessageBox.warning(self, f"Could not {action} the pipeline", str(exc))
