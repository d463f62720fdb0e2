"""Run UI-thread work in pieces, one per event-loop turn, so the UI answers between them.

Adding a napari layer is UI-thread work (Qt widgets, the OpenGL scene) that cannot be
moved to a thread; what we can choose is how much of it happens before the event loop
gets control back. :class:`TurnQueue` runs one queued piece per turn.

It is driven by a zero-interval ``QTimer`` object, not ``QTimer.singleShot(0, ...)``:
Qt 6 turns the latter into a posted event, and a chain of posted events runs ahead of
the timers that are due, so two or more pieces ran back to back before a paint or a
heartbeat timer could. A restarted timer is only due on the next pass of the
dispatcher, after the timers, input and paints already waiting.

After a piece the timer is restarted from a low-priority posted event, that is after
the repaint the piece asked for (a posted ``UpdateRequest``). Restarted at once, a
short piece's timer came due before a heartbeat waiting behind that repaint, and the
next piece ran in the same stall as the repaint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from qtpy.QtCore import QCoreApplication, QEvent, QObject, Qt, QTimer

_RESTART = QEvent.Type(QEvent.registerEventType())


class TurnQueue(QObject):
    """Callables run one per event-loop turn, in the order they were queued."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: deque[Callable[[], object]] = deque()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._step)

    def put(self, *pieces: Callable[[], object]) -> None:
        """Queue ``pieces``; the first runs on a later turn of the event loop, not now."""
        self._queue.extend(pieces)
        if self._queue and not self._timer.isActive():
            self._timer.start()

    def clear(self) -> None:
        """Drop the pieces not yet run."""
        self._queue.clear()
        self._timer.stop()

    @property
    def pending(self) -> int:
        """How many pieces are waiting."""
        return len(self._queue)

    def event(self, event: QEvent) -> bool:  # noqa: D102 (Qt's)
        if event.type() == _RESTART:
            if self._queue and not self._timer.isActive():
                self._timer.start()
            return True
        return super().event(event)

    def _step(self) -> None:
        if not self._queue:
            return
        piece = self._queue.popleft()
        try:
            piece()
        finally:
            if self._queue:  # after the repaint this piece asked for
                QCoreApplication.postEvent(self, QEvent(_RESTART), Qt.EventPriority.LowEventPriority.value)
