"""The function registry: lookup, search, categories, forms and special inputs/outputs."""

from __future__ import annotations

import inspect
import subprocess
import sys
import typing

import numpy as np
import pytest

from napari_openhcs.functions import (
    all_functions,
    categories,
    function_info,
    functions_in,
    get_function,
    search,
    special_io,
)
from napari_openhcs.functions.registry import METADATA_INPUTS, parameter_specs, registered_name, twins

#: The image-processing steps of the library (name -> category).
HCS_STEPS = {
    "percentile_normalize": "Intensity",
    "rescale_intensity": "Intensity",
    "convert_dtype": "Intensity",
    "invert_intensity": "Intensity",
    "tophat": "Background",
    "rolling_ball": "Background",
    "gaussian_blur": "Filters",
    "median_filter": "Filters",
    "unsharp_mask": "Filters",
    "clahe": "Exposure",
    "max_projection": "Projection",
    "min_projection": "Projection",
    "mean_projection": "Projection",
    "sum_projection": "Projection",
    "std_projection": "Projection",
    "best_focus_plane": "Projection",
    "best_focus_pixel": "Projection",
    "composite": "Composite",
    "segment_nuclei": "Segmentation",
    "detect_nuclei": "Segmentation",
    "segment_cells": "Segmentation",
    "measure_objects": "Measurement",
    "count_nuclei": "Measurement",
    "segment_and_measure": "Measurement",
}


def test_import_is_cheap_and_loads_the_library_on_first_lookup() -> None:
    code = (
        "import sys\n"
        "import napari_openhcs.functions as f\n"
        "assert 'napari_openhcs.functions._catalog' not in sys.modules\n"
        "assert 'skimage' not in sys.modules and 'scipy' not in sys.modules\n"
        "f.get_function('percentile_normalize')\n"
        "assert 'napari_openhcs.functions._catalog' in sys.modules\n"
        "assert 'napari' not in sys.modules and 'qtpy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loading_the_whole_library_imports_no_scipy_until_a_function_runs() -> None:
    """A plate run's main process builds and compiles pipelines without SciPy/scikit-image."""
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from napari_openhcs.functions import all_functions, get_function\n"
        "from napari_openhcs.pipelines import stitching_pipeline\n"
        "assert len(all_functions()) > 150\n"
        "stitching_pipeline()\n"
        "loaded = sorted(m for m in ('scipy', 'skimage') if m in sys.modules)\n"
        "assert not loaded, loaded\n"
        "get_function('gaussian_blur').func(np.ones((1, 16, 16), np.float32), sigma=1.0)\n"
        "assert 'scipy.ndimage' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("name", "category"), sorted(HCS_STEPS.items()))
def test_hcs_steps_are_registered(name: str, category: str) -> None:
    info = get_function(name)
    assert info.name == name and info.category == category and info.memory_type == "numpy"
    assert info.summary and info.summary == info.doc.splitlines()[0]
    assert registered_name(info.func) == name
    assert get_function(name, backend="cpu") is info


@pytest.mark.parametrize("name", sorted(HCS_STEPS))
def test_hcs_steps_have_forms(name: str) -> None:
    info = get_function(name)
    params = list(inspect.signature(info.func).parameters.values())
    assert params[0].kind is params[0].POSITIONAL_OR_KEYWORD  # the stack
    assert all(p.kind is p.KEYWORD_ONLY for p in params[1:])
    for spec in info.parameters:
        assert not spec.required, f"{name}: {spec.name} has no default"
        assert spec.description, f"{name}: {spec.name} is not documented"
        assert spec.name not in info.special_inputs and spec.name not in METADATA_INPUTS


def test_parameter_specs_read_annotated_limits_and_choices() -> None:
    specs = {s.name: s for s in get_function("percentile_normalize").parameters}
    assert (specs["low"].min, specs["low"].max, specs["low"].default) == (0.0, 100.0, 0.5)
    assert specs["output_dtype"].choices == ("float32", "same")
    assert specs["per_slice"].annotation is bool
    seg = {s.name: s for s in get_function("segment_nuclei").parameters}
    assert seg["threshold_method"].choices == ("otsu", "li", "triangle", "local")
    assert seg["min_area"].min == 0


def test_special_and_metadata_inputs_are_declared() -> None:
    measure = get_function("measure_objects")
    assert measure.special_inputs == ("labels",) and measure.special_outputs == ("cell_table",)
    assert set(measure.metadata_inputs) == {"pixel_size", "channel_names"}
    assert [s.name for s in measure.parameters] == []  # everything is filled by the engine
    assert get_function("detect_nuclei").special_outputs == ("labels",)
    assert get_function("count_nuclei").special_outputs == ("cell_counts",)
    assert get_function("segment_and_measure").special_outputs == ("cell_table", "cell_summary")
    assert get_function("segment_nuclei").special_outputs == ()


def test_unknown_names_suggest_close_matches() -> None:
    with pytest.raises(KeyError, match="segment_nuclei"):
        get_function("segment_nucleii")
    with pytest.raises(KeyError, match="no 'gpu' implementation"):
        get_function("ndimage.label", backend="gpu")
    assert twins("no such function") == {}


def test_categories_and_browsing() -> None:
    cats = categories()
    assert {"Intensity", "Background", "Filters", "Projection", "Composite", "Segmentation", "Measurement",
            "Morphology", "Exposure", "Restoration", "Thresholding"} <= set(cats)
    assert cats == sorted(cats)
    infos = all_functions()
    assert infos == sorted(infos, key=lambda i: (i.category, i.name))
    assert len({i.name for i in infos}) == len(infos)
    projections = {i.name for i in functions_in("Projection")}
    assert {"max_projection", "best_focus_plane", "best_focus_pixel"} <= projections


def test_search_matches_every_word() -> None:
    names = [i.name for i in search("nuclei")]
    assert {"segment_nuclei", "detect_nuclei", "count_nuclei"} <= set(names)
    focus = {i.name for i in search("focus z-stack")}
    assert {"best_focus_plane", "best_focus_pixel"} <= focus and "max_projection" not in focus
    assert {i.name for i in search("gaussian")} >= {"gaussian_blur", "skimage.filters.gaussian",
                                                    "ndimage.gaussian_filter"}
    assert search("no-such-word-anywhere") == []


def test_plain_functions_get_an_unregistered_info() -> None:
    def brighten(stack: np.ndarray, *, gain: typing.Annotated[float, {"min": 0}] = 2.0,
                 pixel_size: float | None = None) -> np.ndarray:
        """Multiply by a gain."""
        return stack * gain

    info = function_info(brighten)
    assert not info.registered and info.category == "Custom" and info.summary == "Multiply by a gain."
    assert info.metadata_inputs == ("pixel_size",)
    assert [(s.name, s.min) for s in info.parameters] == [("gain", 0)]
    assert registered_name(brighten) is None


def test_special_io_on_a_plain_function() -> None:
    @special_io(inputs=("labels",), outputs=("areas",))
    def areas(stack: np.ndarray, *, labels: np.ndarray) -> tuple[np.ndarray, dict]:
        return stack, {"area": np.bincount(labels.ravel())[1:]}

    info = function_info(areas)
    assert info.special_inputs == ("labels",) and info.special_outputs == ("areas",)
    assert [s.name for s in parameter_specs(areas, skip=set(info.special_inputs))] == []


@pytest.mark.parametrize("name", sorted(HCS_STEPS))
def test_hcs_steps_run_on_a_realistic_stack(name: str) -> None:
    """Every step returns a stack of N or 1 slices (plus its declared special outputs)."""
    from skimage.draw import disk

    rng = np.random.default_rng(0)
    image = np.full((2, 64, 64), 150.0)
    for i, centre in enumerate([(16, 16), (40, 44), (20, 48)]):
        image[:, disk(centre, 7)[0], disk(centre, 7)[1]] = 900 + 200 * i
    stack = rng.poisson(image).astype(np.uint16)
    info = get_function(name)
    kwargs = {}
    if "labels" in info.special_inputs:
        kwargs["labels"] = get_function("segment_nuclei").func(stack)
    out = info.func(stack, **kwargs)
    if info.special_outputs:
        assert isinstance(out, tuple) and len(out) == 1 + len(info.special_outputs)
        out, *extras = out
        for extra in extras:
            if isinstance(extra, dict):
                assert len({len(v) for v in extra.values()}) == 1  # a table: equal-length columns
    assert isinstance(out, np.ndarray) and out.ndim == 3 and out.shape[0] in (1, 2)
    assert out.shape[1:] == stack.shape[1:]
