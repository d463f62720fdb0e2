"""Function browser: the registry's categories as a tree, with a search box."""

from __future__ import annotations

import logging
from typing import Any

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

logger = logging.getLogger(__name__)

_NAME_ROLE = Qt.ItemDataRole.UserRole


class FunctionBrowser(QWidget):
    """Lists registered functions by category; emits ``function_chosen(name)``.

    A double click or the *Add step* button chooses the highlighted function.
    """

    function_chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.search_box = QLineEdit()
        self.search_box.setPlaceholderText("search functions (e.g. 'threshold', 'max projection')")
        self.search_box.setClearButtonEnabled(True)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["function", "summary"])
        self.tree.setColumnWidth(0, 190)
        self.tree.setUniformRowHeights(True)
        self.add_button = QPushButton("Add step")
        self.add_button.setToolTip("Add the highlighted function after the selected step")
        row = QHBoxLayout()
        row.addWidget(self.search_box, 1)
        row.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.tree, 1)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(150)
        self._search_timer.timeout.connect(self._apply_filter)
        self.search_box.textChanged.connect(lambda _: self._search_timer.start())
        self.tree.itemDoubleClicked.connect(self._on_double_click)
        self.add_button.clicked.connect(self.choose_current)
        self.populate()

    def populate(self, infos: list[Any] | None = None) -> None:
        """Fill the tree with ``infos`` (default: every registered function)."""
        from ...functions.registry import all_functions

        infos = all_functions() if infos is None else infos
        self.tree.clear()
        groups: dict[str, QTreeWidgetItem] = {}
        for info in infos:
            group = groups.get(info.category)
            if group is None:
                group = QTreeWidgetItem(self.tree, [info.category])
                group.setFlags(group.flags() & ~Qt.ItemFlag.ItemIsSelectable)
                groups[info.category] = group
            item = QTreeWidgetItem(group, [info.name, info.summary])
            item.setData(0, _NAME_ROLE, info.name)
            item.setToolTip(0, info.doc or info.summary)
            item.setToolTip(1, info.summary)
        expand = len(infos) <= 60
        for group in groups.values():
            group.setExpanded(expand)
            group.setText(1, f"{group.childCount()} functions")

    def _apply_filter(self) -> None:
        from ...functions.registry import search

        text = self.search_box.text().strip()
        self.populate(search(text) if text else None)
        first = self._first_function()
        if text and first is not None:
            self.tree.setCurrentItem(first)

    def set_search(self, text: str) -> None:
        """Filter the tree now (as typing in the search box does after a pause)."""
        self.search_box.setText(text)
        self._search_timer.stop()
        self._apply_filter()

    def _first_function(self) -> QTreeWidgetItem | None:
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            if group is not None and group.childCount():
                return group.child(0)
        return None

    def visible_names(self) -> list[str]:
        """Return the names of the functions listed now."""
        names = []
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount() if group is not None else 0):
                names.append(group.child(j).data(0, _NAME_ROLE))
        return names

    def select_function(self, name: str) -> None:
        """Highlight the function ``name``.

        Raises
        ------
        KeyError
            If it is not listed (check the search box).
        """
        for i in range(self.tree.topLevelItemCount()):
            group = self.tree.topLevelItem(i)
            for j in range(group.childCount() if group is not None else 0):
                if group.child(j).data(0, _NAME_ROLE) == name:
                    self.tree.setCurrentItem(group.child(j))
                    return
        raise KeyError(f"function {name!r} is not listed")

    def current_name(self) -> str | None:
        """Return the highlighted function's name."""
        item = self.tree.currentItem()
        return item.data(0, _NAME_ROLE) if item is not None else None

    def choose_current(self) -> None:
        """Emit ``function_chosen`` for the highlighted function."""
        name = self.current_name()
        if name:
            self.function_chosen.emit(name)

    def _on_double_click(self, item: QTreeWidgetItem, _: int) -> None:
        name = item.data(0, _NAME_ROLE)
        if name:
            self.function_chosen.emit(name)
