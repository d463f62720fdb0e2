"""Render the glyphs of well names in idle turns, before a layer needs them.

The first draw of a points layer with text (the output plate's well names) makes the
canvas render every glyph it shows, plus the glyphs vispy measures a line with, into
its font atlas: a signed distance field computed per glyph on the CPU, ~10 ms each,
0.3–0.5 s in the middle of showing a run's results. The atlas belongs to the canvas
and keeps what it rendered, so rendering those glyphs one per idle event-loop turn
when the dock opens leaves that draw only its own work. Nothing is shown meanwhile.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from .pacing import TurnQueue

logger = logging.getLogger(__name__)

#: Characters of well names (rows A–AF of a 1536-well plate, columns 01–48) and the
#: ones vispy's text visual measures its line height with.
WELL_GLYPHS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + " ÅÉÑŐjgpqy"


def canvas_font(viewer: Any) -> Any:
    """Return the font the viewer's canvas draws layer text with, or ``None`` if unknown."""
    try:
        info = viewer.window._qt_viewer.canvas.font_info()
        return info.font_manager.get_font(info.face)
    except Exception:  # another napari: no warm-up
        logger.debug("no canvas font to warm up", exc_info=True)
        return None


def _render(font: Any, char: str) -> None:
    try:
        font[char]
    except Exception:
        logger.debug("could not render glyph %r", char, exc_info=True)


def warm_glyphs(viewer: Any, turns: TurnQueue, chars: str = WELL_GLYPHS) -> int:
    """Queue the rendering of ``chars`` in the canvas font, one glyph per turn of ``turns``.

    Returns
    -------
    int
        How many glyphs were queued (0 when the canvas font is not reachable).
    """
    font = canvas_font(viewer)
    if font is None:
        return 0
    todo = [c for c in dict.fromkeys(chars) if c not in getattr(font, "_glyphs", {})]
    turns.put(*(partial(_render, font, c) for c in todo))
    return len(todo)
