"""The examples in the function library's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "napari_openhcs.functions._slicewise",
    "napari_openhcs.functions._object_table",
    "napari_openhcs.functions._skimage_wrappers",
    "napari_openhcs.functions._wrapped_build",
    "napari_openhcs.functions.intensity",
    "napari_openhcs.functions.background",
    "napari_openhcs.functions.filters",
    "napari_openhcs.functions.projection",
    "napari_openhcs.functions.composite",
    "napari_openhcs.functions.segmentation",
    "napari_openhcs.functions.measurement",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


@pytest.mark.parametrize("name", MODULES[4:])
def test_every_registered_step_has_a_runnable_example(name: str) -> None:
    from napari_openhcs.functions.registry import function_info

    module = importlib.import_module(name)
    steps = [obj for obj in vars(module).values()
             if callable(obj) and getattr(obj, "__module__", None) == name and function_info(obj).registered]
    assert steps
    for step in steps:
        assert "Examples\n--------\n>>>" in function_info(step).doc, step.__name__
