"""Step list: the pipeline's steps with enable boxes, error marks and edit buttons."""

from __future__ import annotations

import logging
from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .._pipeline_model import PipelineModel

logger = logging.getLogger(__name__)

ERROR_COLOR = "#e6194b"


class StepList(QWidget):
    """Shows a :class:`PipelineModel` and edits it (order, enable, duplicate, remove, undo)."""

    def __init__(self, model: PipelineModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.list = QListWidget()
        self.pipeline_error = QLabel()
        self.pipeline_error.setWordWrap(True)
        self.pipeline_error.setStyleSheet(f"color: {ERROR_COLOR}")
        self.pipeline_error.hide()
        self.buttons: dict[str, QToolButton] = {}
        row = QHBoxLayout()
        for key, text, tip in (
            ("up", "Up", "Move the step up"),
            ("down", "Down", "Move the step down"),
            ("duplicate", "Duplicate", "Insert a copy of the step after it"),
            ("remove", "Remove", "Remove the step"),
            ("undo", "Undo", "Undo (Ctrl+Z)"),
            ("redo", "Redo", "Redo (Ctrl+Shift+Z)"),
        ):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            row.addWidget(button)
            self.buttons[key] = button
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.pipeline_error)
        layout.addLayout(row)

        self.buttons["up"].clicked.connect(lambda: self._move(-1))
        self.buttons["down"].clicked.connect(lambda: self._move(+1))
        self.buttons["duplicate"].clicked.connect(lambda: self._with_selected(model.duplicate))
        self.buttons["remove"].clicked.connect(lambda: self._with_selected(model.remove))
        self.buttons["undo"].clicked.connect(model.undo)
        self.buttons["redo"].clicked.connect(model.redo)
        self.list.currentRowChanged.connect(self._on_row)
        self.list.itemChanged.connect(self._on_item_changed)
        model.changed.connect(self.refresh)
        model.errors_changed.connect(self.refresh)
        model.selection_changed.connect(self._on_model_selection)
        self.refresh()

    # ------------------------------------------------------------------ view
    def refresh(self, *_: Any) -> None:
        """Redraw the list from the model."""
        self.list.blockSignals(True)
        self.list.clear()
        errors = self.model.errors
        for i, step in enumerate(self.model.steps):
            item = QListWidgetItem(f"{i + 1}. {step.name}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if step.enabled else Qt.CheckState.Unchecked)
            tip = [f"variable components: {', '.join(c.value for c in step.variable_components)}",
                   f"group by: {step.group_by.value if step.group_by else 'none'}"]
            if not step.enabled:
                item.setForeground(QBrush(QColor("#7f8590")))
                tip.insert(0, "disabled: skipped when the pipeline runs")
            if i in errors:
                item.setText(f"● {i + 1}. {step.name}")
                item.setForeground(QBrush(QColor(ERROR_COLOR)))
                tip.insert(0, errors[i])
            item.setToolTip("\n".join(tip))
            self.list.addItem(item)
        if -1 in errors:
            self.pipeline_error.setText(errors[-1])
            self.pipeline_error.show()
        else:
            self.pipeline_error.hide()
        self.list.setCurrentRow(self.model.selected)
        self.list.blockSignals(False)
        self.buttons["undo"].setEnabled(self.model.can_undo)
        self.buttons["redo"].setEnabled(self.model.can_redo)
        has = self.model.selected >= 0
        for key in ("up", "down", "duplicate", "remove"):
            self.buttons[key].setEnabled(has)

    def error_marked(self, index: int) -> bool:
        """Return whether step ``index`` is shown with an error mark."""
        item = self.list.item(index)
        return item is not None and item.text().startswith("●")

    # ------------------------------------------------------------------ edits
    def _with_selected(self, action: Any) -> None:
        if self.model.selected >= 0:
            action(self.model.selected)

    def _move(self, delta: int) -> None:
        i = self.model.selected
        if i >= 0:
            self.model.move(i, i + delta)

    def _on_row(self, row: int) -> None:
        self.model.select(row)

    def _on_model_selection(self, index: int) -> None:
        self.list.blockSignals(True)
        self.list.setCurrentRow(index)
        self.list.blockSignals(False)
        self.refresh()

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        row = self.list.row(item)
        enabled = item.checkState() == Qt.CheckState.Checked
        if 0 <= row < len(self.model) and self.model[row].enabled != enabled:
            # the list is rebuilt on change: not while Qt is still inside this item's signal
            QTimer.singleShot(0, lambda: self.model.set_enabled(row, enabled))
