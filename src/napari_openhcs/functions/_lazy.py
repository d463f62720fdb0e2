"""Modules imported on their first use, so that loading the function library stays cheap.

Registering the library's functions needs only NumPy; SciPy and scikit-image
(~0.3 s to import) are imported when a function that uses them first runs. The
main process of a plate run (which builds and compiles the pipeline but runs no
well), the command line and napari's plugin start-up never pay for them.
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for a module and imports it when one of its attributes is first read.

    Parameters
    ----------
    name
        The module's full name, e.g. ``"scipy.ndimage"``.

    Examples
    --------
    >>> ndi = LazyModule("scipy.ndimage")
    >>> ndi.gaussian_filter.__name__
    'gaussian_filter'
    """

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(importlib.import_module(self._name), attr)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"
