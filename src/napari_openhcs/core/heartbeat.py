"""Progress beats of a well: what lets a supervisor tell a slow worker from a frozen one.

The well runner calls :func:`beat` as it starts each step and each group of planes
within a step. In a worker process the supervisor installs a sender
(:func:`set_heartbeat`) that passes the beat on (at most a few times a second); a
worker that sends nothing for ``heartbeat_timeout_s`` is stopped and its well retried
or failed. Elsewhere (threads, a preview) a beat does nothing.
"""

from __future__ import annotations

from collections.abc import Callable

_sender: Callable[[int], None] | None = None


def set_heartbeat(sender: Callable[[int], None] | None) -> None:
    """Install ``sender(step_index)`` as this process's receiver of beats (``None``: none)."""
    global _sender
    _sender = sender


def beat(step_index: int) -> None:
    """Report progress in the step at ``step_index`` (0-based) of the well being run."""
    if _sender is not None:
        _sender(step_index)
