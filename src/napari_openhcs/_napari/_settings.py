"""Plugin settings: defaults for plate runs and the preview.

They are declared in ``napari.yaml`` (``contributions.configurations``), so napari
shows them in its preferences and stores them; :func:`load_settings` reads them,
falling back to the defaults below when napari's plugin settings are unavailable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from typing import Any

logger = logging.getLogger(__name__)

PLUGIN_NAME = "napari-openhcs"


@dataclass(frozen=True)
class RunSettings:
    """Defaults used by the run and preview docks.

    Attributes
    ----------
    workers
        Wells in parallel (0: one per CPU core).
    output_folder
        Output folder; empty for ``<plate>_outputs`` beside the plate.
    use_gpu
        ``"auto"``, ``"never"`` or ``"always"``.
    executor
        ``"processes"`` or ``"threads"``.
    debounce_ms
        Delay between a parameter change and the preview re-run.
    """

    workers: int = 0
    output_folder: str = ""
    use_gpu: str = "auto"
    executor: str = "processes"
    debounce_ms: int = 300

    def replace(self, **changes: Any) -> RunSettings:
        """Return a copy with some settings changed."""
        return replace(self, **changes)


def load_settings() -> RunSettings:
    """Return the settings stored by napari for this plugin (defaults if none).

    Returns
    -------
    RunSettings
    """
    try:
        from napari.settings import get_plugin_settings

        stored = get_plugin_settings(PLUGIN_NAME)
    except Exception as exc:  # napari without plugin settings, or the plugin not registered
        logger.debug("plugin settings unavailable (%s); using defaults", exc)
        return RunSettings()
    values: dict[str, Any] = {}
    for section in ("run", "preview"):
        group = getattr(stored, section, None)
        for f in fields(RunSettings):
            if group is not None and hasattr(group, f.name):
                values[f.name] = getattr(group, f.name)
    try:
        return RunSettings(**values)
    except TypeError:  # pragma: no cover - unexpected stored values
        return RunSettings()
