"""Storage layer: backends for step outputs, the OME-Zarr 0.5 HCS plate writer/reader,
measurement tables, atomic writes and the output lock.

Names are imported lazily (zarr is only imported when a Zarr class is used)::

    from napari_openhcs.io import HCSPlateWriter, OutputChannel, open_output_plate
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "HCSPlateWriter": "omezarr_writer",
    "is_our_plate": "omezarr_writer",
    "OutputChannel": "_ngff",
    "OutputPlate": "omezarr_reader",
    "open_output_plate": "omezarr_reader",
    "write_table_csv": "tables",
    "read_table_csv": "tables",
    "combine_well_tables": "tables",
    "well_table_path": "tables",
    "StorageBackend": "storage",
    "MemoryBackend": "storage",
    "DiskBackend": "storage",
    "ZarrBackend": "storage",
    "validate_key": "storage",
    "OutputLock": "lock",
    "OutputLockedError": "lock",
    "StorageFullError": "atomic",
    "OutputNotWritableError": "atomic",
    "atomic_write_bytes": "atomic",
    "atomic_write_json": "atomic",
    "inject_fault": "atomic",
}

__all__ = [
    "DiskBackend",
    "HCSPlateWriter",
    "MemoryBackend",
    "OutputChannel",
    "OutputLock",
    "OutputLockedError",
    "OutputNotWritableError",
    "OutputPlate",
    "StorageBackend",
    "StorageFullError",
    "ZarrBackend",
    "atomic_write_bytes",
    "atomic_write_json",
    "combine_well_tables",
    "inject_fault",
    "is_our_plate",
    "open_output_plate",
    "read_table_csv",
    "validate_key",
    "well_table_path",
    "write_table_csv",
]

if TYPE_CHECKING:  # pragma: no cover
    from ._ngff import OutputChannel
    from .atomic import (
        OutputNotWritableError,
        StorageFullError,
        atomic_write_bytes,
        atomic_write_json,
        inject_fault,
    )
    from .lock import OutputLock, OutputLockedError
    from .omezarr_reader import OutputPlate, open_output_plate
    from .omezarr_writer import HCSPlateWriter, is_our_plate
    from .storage import DiskBackend, MemoryBackend, StorageBackend, ZarrBackend, validate_key
    from .tables import combine_well_tables, read_table_csv, well_table_path, write_table_csv


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'napari_openhcs.io' has no attribute {name!r}") from None
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
