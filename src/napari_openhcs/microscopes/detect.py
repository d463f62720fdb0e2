"""Format detection and the single entry point :func:`open_plate`.

Each handler module in :data:`HANDLER_MODULES` exposes

- ``NAME``: the format name (``"imagexpress"``, ...),
- ``LOOKS_FOR``: a one-line description of what detection looks for,
- ``detect(root: Path) -> bool``: cheap check on metadata files and file names,
- ``open_plate(root: Path, source: str = "planes") -> Plate``,
- optionally ``explain(root: Path) -> str | None``: a hint added to the "no known plate
  layout" error when the folder is close to the format but not readable.
"""

from __future__ import annotations

import logging
from importlib import import_module
from pathlib import Path
from types import ModuleType

from .plate import Plate

logger = logging.getLogger(__name__)

#: Handler modules, in detection order (most specific first).
HANDLER_MODULES: tuple[str, ...] = ("omezarr", "opera_phenix", "yokogawa", "imagexpress")

#: Accepted aliases for ``microscope=``.
ALIASES: dict[str, str] = {
    "ixm": "imagexpress",
    "metaxpress": "imagexpress",
    "phenix": "opera_phenix",
    "operetta": "opera_phenix",
    "harmony": "opera_phenix",
    "ome-zarr": "omezarr",
    "ome_zarr": "omezarr",
    "zarr": "omezarr",
    "cellvoyager": "yokogawa",
    "cv8000": "yokogawa",
}


class PlateFormatError(ValueError):
    """The folder is not a plate we can read (missing, empty, unknown or malformed)."""


def _handlers() -> list[ModuleType]:
    mods = []
    for name in HANDLER_MODULES:
        try:
            mods.append(import_module(f"{__package__}.{name}"))
        except ModuleNotFoundError as exc:  # a handler not built yet
            if exc.name != f"{__package__}.{name}":
                raise
    return mods


def available_formats() -> list[str]:
    """Return the names of the formats this installation can read."""
    return [m.NAME for m in _handlers()]


def detect_microscope(path: str | Path) -> str:
    """Return the format name of the plate at ``path``.

    Raises
    ------
    PlateFormatError
        If ``path`` is missing, not a folder, empty, or matches no known layout; the
        message lists what was looked for.
    """
    root = Path(path)
    if not root.exists():
        raise PlateFormatError(f"plate path does not exist: {root}")
    if not root.is_dir():
        raise PlateFormatError(f"plate path is not a folder: {root}")
    if not any(root.iterdir()):
        raise PlateFormatError(f"plate folder is empty: {root}")
    handlers = _handlers()
    for mod in handlers:
        if mod.detect(root):
            return str(mod.NAME)
    looked = "\n".join(f"  - {m.NAME}: {m.LOOKS_FOR}" for m in handlers)
    hints = [hint for m in handlers if (hint := _explain(m, root))]
    message = f"no known plate layout found in {root}. Looked for:\n{looked}"
    raise PlateFormatError("\n".join([message, *hints]))


def _explain(mod: ModuleType, root: Path) -> str | None:
    """Return a handler's optional hint about ``root`` (never raises)."""
    explain = getattr(mod, "explain", None)
    if explain is None:
        return None
    try:
        return explain(root)
    except Exception:  # a hint must never hide the real error
        logger.debug("%s.explain failed on %s", mod.NAME, root, exc_info=True)
        return None


def open_plate(path: str | Path, microscope: str | None = None, source: str = "planes") -> Plate:
    """Read a plate folder into a :class:`Plate`.

    Parameters
    ----------
    path : str or Path
        The plate folder as the instrument wrote it (never written to).
    microscope : str, optional
        Force a format (``"imagexpress"``, ``"opera_phenix"``, ``"omezarr"``,
        ``"yokogawa"`` or an alias) instead of detecting it.
    source : {"planes", "projections"}
        Which image set to read: the z-planes (default) or the instrument's own
        projections (ImageXpress ``ZStep_0`` / projection files).

    Returns
    -------
    Plate

    Raises
    ------
    PlateFormatError
        If the folder cannot be read as a plate.
    """
    root = Path(path)
    if source not in ("planes", "projections"):
        raise ValueError(f"source must be 'planes' or 'projections', not {source!r}")
    if microscope is None:
        name = detect_microscope(root)
    else:
        name = ALIASES.get(microscope.lower(), microscope.lower())
        if not root.is_dir():
            raise PlateFormatError(f"plate path is not a folder: {root}")
    for mod in _handlers():
        if mod.NAME == name:
            logger.info("reading %s as %s (%s)", root, name, source)
            return mod.open_plate(root, source=source)
    raise PlateFormatError(
        f"unknown microscope {microscope!r}; known: {', '.join(available_formats())}"
    )
