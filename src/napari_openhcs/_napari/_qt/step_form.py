"""Step form: the selected step's options and one generated form per function."""

from __future__ import annotations

import logging
from typing import Any

from magicgui.widgets import Container
from magicgui.widgets.bases import ValueWidget
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ...core.components import Component
from ...core.steps import InputSource
from ...functions.registry import function_info
from .._param_widgets import set_widget_value, widget_for_parameter, widget_value
from .._pipeline_model import PipelineModel, call_slots, component_names

logger = logging.getLogger(__name__)

_INVALID = "background-color: #5c1f2a;"


class StepForm(QWidget):
    """Edits the selected step of a :class:`PipelineModel`."""

    def __init__(self, model: PipelineModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._index = -1
        self._funcs: tuple[Any, ...] = ()
        self._widgets: dict[tuple[int, str], ValueWidget] = {}
        self._containers: list[Container] = []

        self.name_edit = QLineEdit()
        self.vc_boxes = {name: QCheckBox(name) for name in component_names()}
        vc_row = QGridLayout()
        for i, box in enumerate(self.vc_boxes.values()):
            vc_row.addWidget(box, i // 2, i % 2)
            box.toggled.connect(self._on_options)
        self.group_box = QComboBox()
        self.group_box.addItems(["none", *component_names()])
        self.source_box = QComboBox()
        self.source_box.addItems([s.value for s in InputSource])
        self.materialize_box = QCheckBox("also write this step's output")
        self.options = QGroupBox("Step options")
        form = QFormLayout(self.options)
        form.addRow("Name", self.name_edit)
        form.addRow("Variable components", vc_row)
        form.addRow("Group by", self.group_box)
        form.addRow("Input", self.source_box)
        form.addRow("", self.materialize_box)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color: #e6194b")
        self.message.hide()
        self.params = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.options)
        layout.addWidget(self.message)
        layout.addLayout(self.params)
        layout.addStretch(1)

        self.name_edit.editingFinished.connect(self._on_options)
        self.group_box.currentTextChanged.connect(self._on_options)
        self.source_box.currentTextChanged.connect(self._on_options)
        self.materialize_box.toggled.connect(self._on_options)
        model.selection_changed.connect(self._on_selection)
        model.changed.connect(self._on_changed)
        self._on_selection(model.selected)

    # ------------------------------------------------------------------ build
    def _on_selection(self, index: int) -> None:
        self._index = index
        self._rebuild()

    def _on_changed(self, _: int) -> None:
        if self._index != self.model.selected or self._index >= len(self.model):
            self._index = self.model.selected
            self._rebuild()
            return
        if self._index < 0:
            return
        slots = call_slots(self.model[self._index])
        if tuple(s.func for s in slots) != self._funcs:
            self._rebuild()
            return
        self._show_options()
        for slot in slots:
            for spec in function_info(slot.func).parameters:
                widget = self._widgets.get((slot.index, spec.name))
                value = slot.kwargs.get(spec.name, spec.default)
                if widget is not None and _differs(widget, value):
                    set_widget_value(widget, value)

    def _rebuild(self) -> None:
        while self.params.count():
            item = self.params.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget is not None:
                widget.setParent(None)  # gone from the form now, deleted later
                widget.deleteLater()
        self._widgets.clear()
        self._containers.clear()
        self._funcs = ()
        has_step = 0 <= self._index < len(self.model)
        self.options.setEnabled(has_step)
        self.message.hide()
        if not has_step:
            return
        self._show_options()
        slots = call_slots(self.model[self._index])
        self._funcs = tuple(s.func for s in slots)
        for slot in slots:
            info = function_info(slot.func)
            widgets = []
            for spec in info.parameters:
                widget = widget_for_parameter(spec, slot.kwargs.get(spec.name),
                                              explicit=spec.name in slot.kwargs)
                widget.changed.connect(self._param_callback(slot.index, spec.name, widget))
                self._widgets[(slot.index, spec.name)] = widget
                widgets.append(widget)
            box = QGroupBox(slot.label)
            box.setToolTip(info.doc or info.summary)
            box_layout = QVBoxLayout(box)
            if widgets:
                container = Container(widgets=widgets, labels=True)
                self._containers.append(container)
                box_layout.addWidget(container.native)
            else:
                box_layout.addWidget(QLabel("no parameters"))
            unknown = sorted(set(slot.kwargs) - {s.name for s in info.parameters})
            if unknown:
                note = QLabel("not parameters of this function: " + ", ".join(unknown))
                note.setStyleSheet("color: #e6194b")
                box_layout.addWidget(note)
            self.params.addWidget(box)

    def _show_options(self) -> None:
        step = self.model[self._index]
        widgets = [self.name_edit, self.group_box, self.source_box, self.materialize_box,
                   *self.vc_boxes.values()]
        for w in widgets:
            w.blockSignals(True)
        self.name_edit.setText(step.name or "")
        for name, box in self.vc_boxes.items():
            box.setChecked(Component(name) in step.variable_components)
        self.group_box.setCurrentText(step.group_by.value if step.group_by else "none")
        self.source_box.setCurrentText(step.input_source.value)
        self.materialize_box.setChecked(step.materialize)
        for w in widgets:
            w.blockSignals(False)

    # ------------------------------------------------------------------ edits
    def _param_callback(self, call: int, name: str, widget: ValueWidget) -> Any:
        def on_change(*_: Any) -> None:
            try:
                value = widget_value(widget)
            except ValueError as exc:
                widget.native.setStyleSheet(_INVALID)
                widget.native.setToolTip(str(exc))
                return
            widget.native.setStyleSheet("")
            self.model.set_argument(self._index, name, value, call)

        return on_change

    def _on_options(self, *_: Any) -> None:
        if not 0 <= self._index < len(self.model):
            return
        step = self.model[self._index]
        changes: dict[str, Any] = {
            "name": self.name_edit.text().strip() or step.name,
            "variable_components": [n for n, b in self.vc_boxes.items() if b.isChecked()],
            "group_by": self.group_box.currentText(),
            "input_source": self.source_box.currentText(),
            "materialize": self.materialize_box.isChecked(),
        }
        try:
            new = step.replace(**changes)
        except ValueError as exc:
            self.message.setText(str(exc))
            self.message.show()
            self._show_options()
            return
        self.message.hide()
        if _options(new) != _options(step):
            self.model.replace(self._index, new)

    def param_widget(self, name: str, call: int = 0) -> ValueWidget:
        """Return the widget editing argument ``name`` of the ``call``-th function."""
        return self._widgets[(call, name)]


def _options(step: Any) -> tuple[Any, ...]:
    return (step.name, step.variable_components, step.group_by, step.input_source, step.materialize)


def _differs(widget: ValueWidget, value: Any) -> bool:
    try:
        return bool(widget_value(widget) != value)
    except (ValueError, TypeError):
        return True
