"""napari-openhcs: a high-content-screening processing engine with a napari front end.

The public API is small and imported lazily so ``import napari_openhcs`` stays cheap::

    from napari_openhcs import PipelineOrchestrator, FunctionStep, GlobalPipelineConfig
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "PipelineOrchestrator": "napari_openhcs.core.orchestrator",
    "GlobalPipelineConfig": "napari_openhcs.core.config",
    "FunctionStep": "napari_openhcs.core.steps",
    "InputSource": "napari_openhcs.core.steps",
    "VariableComponents": "napari_openhcs.core.components",
    "GroupBy": "napari_openhcs.core.components",
    "WellResult": "napari_openhcs.core.results",
    "open_plate": "napari_openhcs.microscopes.detect",
    "load_pipeline": "napari_openhcs.core.pipeline_io",
    "save_pipeline": "napari_openhcs.core.pipeline_io",
    "get_function": "napari_openhcs.functions.registry",
    "register": "napari_openhcs.functions.registry",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from .core.components import GroupBy, VariableComponents
    from .core.config import GlobalPipelineConfig
    from .core.orchestrator import PipelineOrchestrator
    from .core.pipeline_io import load_pipeline, save_pipeline
    from .core.results import WellResult
    from .core.steps import FunctionStep, InputSource
    from .functions.registry import get_function, register
    from .microscopes.detect import open_plate


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'napari_openhcs' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
