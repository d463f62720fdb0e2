"""Measurements dock: the plate tables (CSV) of the last run, as a table."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .._session import HCSSession

logger = logging.getLogger(__name__)

#: Rows shown at most (the CSV holds them all).
MAX_ROWS = 5000


def plate_tables(output_dir: str | Path | None) -> dict[str, Path]:
    """Return ``{table name: plate CSV}`` in ``<output_dir>/tables``."""
    if output_dir is None:
        return {}
    folder = Path(output_dir) / "tables"
    return {p.stem: p for p in sorted(folder.glob("*.csv"))} if folder.is_dir() else {}


class MeasurementsWidget(QWidget):
    """Shows one plate table, optionally only the rows of the selected well."""

    def __init__(self, session: HCSSession, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.tables: dict[str, Path] = {}
        self.table_box = QComboBox()
        self.only_selected = QCheckBox("only the selected well")
        self.table = QTableWidget()
        self.table.setSortingEnabled(True)
        self.note = QLabel("run the plate to see its measurements")
        top = QHBoxLayout()
        top.addWidget(self.table_box, 1)
        top.addWidget(self.only_selected)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.note)
        self.table_box.currentTextChanged.connect(lambda _: self.show_table())
        self.only_selected.toggled.connect(lambda _: self.show_table())
        session.outputs_changed.connect(self.load)
        session.selection_changed.connect(self._on_selection)
        if session.output_dir is not None:
            self.load(session.output_dir)

    def _on_selection(self, *_: Any) -> None:
        if self.only_selected.isChecked():
            self.show_table()

    def load(self, output_dir: Any) -> None:
        """List the plate tables written under ``output_dir``."""
        self.tables = plate_tables(output_dir)
        self.table_box.blockSignals(True)
        self.table_box.clear()
        self.table_box.addItems(list(self.tables))
        self.table_box.blockSignals(False)
        self.show_table()

    def show_table(self) -> None:
        """Fill the table view from the chosen CSV."""
        path = self.tables.get(self.table_box.currentText())
        self.table.setSortingEnabled(False)
        self.table.clear()
        if path is None:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            self.note.setText("no measurement tables" if self.session.output_dir else
                              "run the plate to see its measurements")
            return
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            well_col = header.index("well") if "well" in header else None
            well = self.session.well if self.only_selected.isChecked() else None
            rows: list[list[str]] = []
            truncated = False
            for r in reader:  # stop reading at MAX_ROWS: plate tables can hold millions of rows
                if well is None or well_col is None or r[well_col] == well:
                    if len(rows) == MAX_ROWS:
                        truncated = True
                        break
                    rows.append(r)
        shown = rows
        self.table.setColumnCount(len(header))
        self.table.setHorizontalHeaderLabels(header)
        self.table.setRowCount(len(shown))
        for i, row in enumerate(shown):
            for j, cell in enumerate(row):
                item = QTableWidgetItem()
                try:
                    item.setData(0, float(cell))
                except ValueError:
                    item.setText(cell)
                self.table.setItem(i, j, item)
        self.table.setSortingEnabled(True)
        count = f"first {MAX_ROWS} rows shown" if truncated else f"{len(rows)} rows"
        self.note.setText(f"{path.name}: {count}")
