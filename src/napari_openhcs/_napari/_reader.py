"""npe2 reader: raw plate folders (any format the engine reads) and OME-Zarr HCS plates."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ._layers import LayerData, load_plate, raw_well_layers
from ._output_layers import is_zarr_plate, output_plate_layers

logger = logging.getLogger(__name__)

ReaderFunction = Callable[[str | list[str]], list[LayerData]]


def _single_path(path: str | list[str]) -> Path | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(path)


def get_reader(path: str | list[str]) -> ReaderFunction | None:
    """Return a reader for a plate folder, or ``None`` if ``path`` is not a plate.

    Parameters
    ----------
    path : str or list of str
        What the user opened. Only a single folder can be a plate.

    Returns
    -------
    callable or None
        :func:`read_zarr_plate` for an OME-Zarr HCS plate, :func:`read_raw_plate` for
        an instrument plate folder, ``None`` otherwise (decided without reading pixels).
    """
    from ..microscopes.detect import PlateFormatError, detect_microscope

    p = _single_path(path)
    if p is None or not p.is_dir():
        return None
    if is_zarr_plate(p):
        return read_zarr_plate
    try:
        detect_microscope(p)  # cheap signature check: declines other folders at once
        load_plate(p)  # metadata only; cached for read_raw_plate
    except PlateFormatError as exc:
        logger.debug("%s is not a plate: %s", p, exc)
        return None
    except OSError as exc:  # unreadable folder: not ours to open
        logger.debug("cannot inspect %s: %s", p, exc)
        return None
    return read_raw_plate


def read_raw_plate(path: str | list[str]) -> list[LayerData]:
    """Read the first well of a raw plate as lazy layers (one per site and channel).

    Other wells are shown by selecting them in the plate map.
    """
    p = _single_path(path)
    assert p is not None
    plate = load_plate(p)
    return raw_well_layers(plate, plate.wells[0])


def read_zarr_plate(path: str | list[str]) -> list[LayerData]:
    """Read an OME-Zarr HCS plate as lazy multiscale layers, one per channel."""
    p = _single_path(path)
    assert p is not None
    return output_plate_layers(p)
