"""Plate map dock: wells as a grid coloured by run status or by a measured value."""

from __future__ import annotations

import logging
from typing import Any

from qtpy.QtCore import QEvent, QPointF, QRectF, Qt, QTimer, Signal
from qtpy.QtGui import QColor, QLinearGradient, QPainter, QPen
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from .._layers import raw_well_layers
from .._plate_map_model import PlateMapModel, per_well_values, value_color
from .._session import HCSSession
from .._viewer import layer_info, layers_of_kind, sync_layers

logger = logging.getLogger(__name__)

STATUS_MODE = "run status"


class PlateGrid(QWidget):
    """The painted grid of wells; emits ``well_clicked(well)``."""

    well_clicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model: PlateMapModel | None = None
        self.selected: str | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(240, 170)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_model(self, model: PlateMapModel | None) -> None:
        """Show another plate."""
        self.model = model
        self.update()

    def _geometry(self) -> tuple[float, float, float]:
        """Return ``(cell size, x0, y0)`` of the well grid inside the widget."""
        assert self.model is not None
        m = self.model
        cell = min(self.width() / (m.columns + 1), self.height() / (m.rows + 1))
        return cell, cell, cell

    def well_rect(self, well: str) -> QRectF:
        """Return the rectangle a well occupies (widget coordinates)."""
        assert self.model is not None
        cell, x0, y0 = self._geometry()
        r, c = self.model.position(well)
        return QRectF(x0 + c * cell, y0 + r * cell, cell, cell)

    def well_at(self, pos: QPointF) -> str | None:
        """Return the well under ``pos`` (only wells with images)."""
        if self.model is None:
            return None
        cell, x0, y0 = self._geometry()
        if pos.x() < x0 or pos.y() < y0:
            return None
        return self.model.well_at(int((pos.y() - y0) // cell), int((pos.x() - x0) // cell))

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        m = self.model
        if m is None:
            painter.setPen(QColor("#9aa0a6"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no plate open")
            return
        cell, x0, y0 = self._geometry()
        step = 1 if cell >= 14 else (2 if cell >= 7 else 4)
        font = painter.font()
        font.setPointSizeF(max(5.0, min(9.0, cell * 0.45)))
        painter.setFont(font)
        painter.setPen(QColor("#9aa0a6"))
        for c in range(0, m.columns, step):
            painter.drawText(QRectF(x0 + c * cell, 0, cell * step, y0), Qt.AlignmentFlag.AlignLeft
                             | Qt.AlignmentFlag.AlignVCenter, str(c + 1))
        for r in range(0, m.rows, step):
            painter.drawText(QRectF(0, y0 + r * cell, x0, cell), Qt.AlignmentFlag.AlignCenter, m.row_label(r))
        pad = max(0.5, cell * 0.08)
        painter.setPen(Qt.PenStyle.NoPen)
        size = cell - 2 * pad
        for color, positions in m.cells().items():  # one brush per colour, not per well
            painter.setBrush(QColor(color))
            for r, c in positions:
                painter.drawEllipse(QRectF(x0 + c * cell + pad, y0 + r * cell + pad, size, size))
        if self.selected and self.selected in m.wells:
            painter.setPen(QPen(QColor("white"), max(1.5, cell * 0.1)))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(self.well_rect(self.selected).adjusted(pad / 2, pad / 2, -pad / 2, -pad / 2))

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        well = self.well_at(QPointF(event.position()))
        if well is not None:
            self.well_clicked.emit(well)

    def event(self, event: Any) -> bool:
        if event.type() == QEvent.Type.ToolTip and self.model is not None:
            well = self.well_at(QPointF(event.pos()))
            if well is not None:
                QToolTip.showText(event.globalPos(), self.model.tooltip(well), self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)


class LegendBar(QWidget):
    """Status swatches or a value gradient under the grid."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model: PlateMapModel | None = None
        self.setFixedHeight(22)

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt API)
        if self.model is None:
            return
        legend = self.model.legend()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QColor("#c8cbd0"))
        h = self.height()
        if legend.gradient is not None:
            lo, hi = legend.gradient
            text_w = 60
            bar = QRectF(text_w, 4, max(10, self.width() - 2 * text_w), h - 8)
            grad = QLinearGradient(bar.topLeft(), bar.topRight())
            for i in range(5):
                grad.setColorAt(i / 4, QColor(value_color(i / 4)))
            painter.fillRect(bar, grad)
            painter.drawText(QRectF(0, 0, text_w - 4, h), Qt.AlignmentFlag.AlignRight
                             | Qt.AlignmentFlag.AlignVCenter, f"{lo:.4g}")
            painter.drawText(QRectF(bar.right() + 4, 0, text_w, h), Qt.AlignmentFlag.AlignVCenter,
                             f"{hi:.4g}")
            return
        x = 2.0
        for label, color in legend.swatches:
            painter.setBrush(QColor(color))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawEllipse(QRectF(x, h / 2 - 5, 10, 10))
            painter.setPen(QColor("#c8cbd0"))
            width = painter.fontMetrics().horizontalAdvance(label)
            painter.drawText(QPointF(x + 13, h / 2 + 4), label)
            x += 22 + width


class PlateMapWidget(QWidget):
    """Dock widget: the plate map, a site selector and the colouring choice.

    Parameters
    ----------
    session : HCSSession
        Shared state (plate, selection, run status, measured values).
    viewer : napari.Viewer, optional
        Where the raw images of the selected well are shown.
    """

    def __init__(self, session: HCSSession, viewer: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.viewer = viewer
        self.title = QLabel("no plate open")
        self.title.setWordWrap(True)
        self.open_button = QPushButton("Open plate…")
        self.open_button.setToolTip("Open a plate folder (ImageXpress, Opera Phenix/Operetta, OME-Zarr, "
                                    "CellVoyager)")
        self.grid = PlateGrid(self)
        self.legend = LegendBar(self)
        self.site_box = QComboBox()
        self.color_box = QComboBox()
        self.show_raw = QCheckBox("show the raw images of the selected well")
        self.show_raw.setChecked(viewer is not None)
        self.show_raw.setEnabled(viewer is not None)
        self._value_sets: dict[str, dict[str, float]] = {}
        form = QFormLayout()
        form.addRow("Site", self.site_box)
        form.addRow("Colour by", self.color_box)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.open_button)
        layout.addLayout(top)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.legend)
        layout.addLayout(form)
        layout.addWidget(self.show_raw)

        self._repaint = QTimer(self)
        self._repaint.setSingleShot(True)
        self._repaint.setInterval(100)
        self._repaint.timeout.connect(self._paint_now)
        self.grid.well_clicked.connect(self._on_well_clicked)
        self.open_button.clicked.connect(self._choose_plate)
        self.site_box.currentIndexChanged.connect(self._on_site_chosen)
        self.color_box.currentTextChanged.connect(self._on_color_mode)
        session.plate_changed.connect(self._on_plate)
        session.selection_changed.connect(self._on_selection)
        session.status_changed.connect(self._on_status)
        session.values_changed.connect(self._on_status)
        session.outputs_changed.connect(self._on_outputs)
        if session.plate is not None:
            self._on_plate(session.plate)

    # ------------------------------------------------------------------ session → widget
    def _on_plate(self, plate: Any) -> None:
        model = PlateMapModel(plate.rows, plate.columns, plate.wells)
        self.grid.set_model(model)
        self.legend.model = model
        n = plate.rows * plate.columns
        self.title.setText(f"{plate.name} — {plate.microscope}, {len(plate.wells)} of {n} wells")
        self.site_box.blockSignals(True)
        self.site_box.clear()
        self.site_box.addItem("whole well", None)
        for s in plate.sites:
            self.site_box.addItem(f"site {s}", s)
        self.site_box.blockSignals(False)
        self._value_sets = {}
        self._refresh_color_choices()
        self._on_status(None)
        self._on_selection(self.session.well, self.session.site)

    def _on_selection(self, well: str | None, site: int | None) -> None:
        if well is not None and well != self.grid.selected and self.show_raw.isChecked():
            self._show_raw_well(well)
        self.grid.selected = well
        idx = self.site_box.findData(site) if site is not None else 0
        self.site_box.blockSignals(True)
        self.site_box.setCurrentIndex(max(0, idx))
        self.site_box.blockSignals(False)
        self.grid.update()

    def _on_status(self, *_: Any) -> None:
        model = self.grid.model
        if model is None:
            return
        model.status, model.errors = self.session.status, self.session.errors
        model.values, model.value_name = self.session.values, self.session.value_name
        if not self._repaint.isActive():  # a run reports many wells: repaint at most every 100 ms
            self._repaint.start()

    def _paint_now(self) -> None:
        self.grid.update()
        self.legend.update()

    def _on_outputs(self, output_dir: Any) -> None:
        from pathlib import Path

        measured = self.session.measured  # prepared off the UI thread by the run
        self._value_sets = measured or per_well_values(Path(output_dir) / "tables")
        self._refresh_color_choices()

    def _refresh_color_choices(self) -> None:
        current = self.color_box.currentText()
        self.color_box.blockSignals(True)
        self.color_box.clear()
        self.color_box.addItem(STATUS_MODE)
        self.color_box.addItems(sorted(self._value_sets))
        self.color_box.setCurrentIndex(max(0, self.color_box.findText(current)))
        self.color_box.blockSignals(False)

    def _show_raw_well(self, well: str) -> None:
        plate = self.session.plate
        if self.viewer is None or plate is None:
            return
        current = [ly for ly in layers_of_kind(self.viewer, "raw")
                   if layer_info(ly).get("plate_path") == str(plate.root)]
        if current and all(layer_info(ly).get("well") == well for ly in current):
            return
        sync_layers(self.viewer, current, raw_well_layers(plate, well))

    # ------------------------------------------------------------------ widget → session
    def open_plate(self, path: str) -> None:
        """Open a plate folder in the session (its wells appear on the map)."""
        self.session.open_plate(path)

    def _choose_plate(self) -> None:
        from ...microscopes.detect import PlateFormatError

        folder = QFileDialog.getExistingDirectory(self, "Open a plate folder")
        if not folder:
            return
        try:
            self.open_plate(folder)
        except PlateFormatError as exc:
            QMessageBox.warning(self, "Not a plate", str(exc))

    def _on_well_clicked(self, well: str) -> None:
        self.session.select(well, self.site_box.currentData())

    def _on_site_chosen(self, _: int) -> None:
        if self.session.well is not None:
            self.session.select(self.session.well, self.site_box.currentData())

    def _on_color_mode(self, text: str) -> None:
        model = self.grid.model
        if model is None:
            return
        if text in self._value_sets:
            self.session.set_values(text, self._value_sets[text])
            model.mode = "value"
        else:
            model.mode = "status"
        self._on_status()

    def set_color_mode(self, label: str) -> None:
        """Colour wells by ``label`` (``"run status"`` or one of the measured values)."""
        index = self.color_box.findText(label)
        if index < 0:
            raise ValueError(f"no colouring {label!r}; choices: {self.color_choices()}")
        self.color_box.setCurrentIndex(index)

    def color_choices(self) -> list[str]:
        """Return the colourings offered (status first, then measured values)."""
        return [self.color_box.itemText(i) for i in range(self.color_box.count())]
