"""The curated scikit-image / scipy.ndimage operations registered as step functions."""

from __future__ import annotations

import inspect
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

from napari_openhcs.functions import all_functions, get_function
from napari_openhcs.functions._skimage_wrappers import _WRAPPED, WrappedOperation, registered_name
from napari_openhcs.functions._wrapped_build import describe_all
from napari_openhcs.functions._wrapped_signatures import SIGNATURES
from napari_openhcs.functions._wrapped_table import OPERATIONS
from napari_openhcs.functions.registry import parameter_specs

NAMES = sorted(_WRAPPED)
KINDS = {registered_name(m, n): kind for m, _, kind, names in OPERATIONS for n in names}
#: scikit-image's morphological snakes cycle a module-level operator sequence across calls,
#: so two calls on the same image can differ by a few pixels.
STATEFUL = {"skimage.segmentation.morphological_chan_vese"}


def intensity_stack() -> np.ndarray:
    """Two small uint16 slices: blobs on a noisy background."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :48]
    blobs = 1500 * np.exp(-(((yy - 12) ** 2 + (xx - 14) ** 2) / 30.0))
    blobs += 1000 * np.exp(-(((yy - 28) ** 2 + (xx - 34) ** 2) / 50.0))
    return rng.poisson(np.stack([blobs + 200, blobs[::-1] + 250])).astype(np.uint16)


def test_a_few_hundred_operations_are_wrapped() -> None:
    listed = sum(len(names) for *_, names in OPERATIONS)
    assert len(NAMES) == listed >= 150
    assert set(SIGNATURES) == {f"{m}.{n}" for m, _, _, names in OPERATIONS for n in names}
    assert all(n.startswith(("skimage.", "ndimage.")) for n in NAMES)


def test_stored_signatures_match_the_installed_libraries() -> None:
    """Fails after a scikit-image or SciPy upgrade.

    Regenerate with ``python -m napari_openhcs.functions._wrapped_build``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        live = describe_all()
    assert live == SIGNATURES


@pytest.mark.parametrize("name", NAMES)
def test_every_wrapped_operation_runs_on_a_stack(name: str) -> None:
    stack = intensity_stack()
    if KINDS[name] == "mask":
        stack = (stack > 600).astype(np.uint8)  # these expect a mask
    op = get_function(name).func
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = op(stack)
    assert isinstance(out, np.ndarray) and out.shape == stack.shape, (name, getattr(out, "shape", None))
    assert out.dtype != np.float64 and out.dtype != np.int64
    assert np.issubdtype(out.dtype, np.number) or out.dtype == bool
    if np.issubdtype(out.dtype, np.floating):
        assert np.isfinite(out).all(), name
    if KINDS[name] == "rank" or name in STATEFUL:
        return  # rank: rescaled to 8 bits over the whole stack, not slice by slice
    # slices are processed independently: the second slice alone gives the same result
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(op(stack[1:]), out[1:])


@pytest.mark.parametrize("name", NAMES)
def test_every_wrapped_operation_has_a_form(name: str) -> None:
    info = get_function(name)
    assert info.summary and info.category in {"Filters", "Thresholding", "Morphology", "Exposure",
                                              "Restoration", "Segmentation", "Intensity", "Transform"}
    sig = inspect.signature(info.func)
    first, *rest = sig.parameters.values()
    assert first.name == "stack" and first.kind is first.POSITIONAL_ONLY
    assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in rest)
    specs = parameter_specs(info.func)
    assert [s.name for s in specs] == [p.name for p in rest]
    for spec in specs:
        assert not spec.required and spec.description
        assert spec.annotation in (bool, int, float, str) or spec.choices


def test_options_reach_the_wrapped_function() -> None:
    stack = intensity_stack()
    gaussian = get_function("skimage.filters.gaussian").func
    assert gaussian(stack, sigma=3).std() < gaussian(stack, sigma=0.5).std()
    median = get_function("ndimage.median_filter").func
    from scipy import ndimage as ndi

    np.testing.assert_array_equal(median(stack, size=5)[0], ndi.median_filter(stack[0], size=5))
    dilation = get_function("skimage.morphology.dilation").func
    assert (dilation(stack, footprint_radius=3) >= dilation(stack, footprint_radius=1)).all()
    with pytest.raises(TypeError, match="unknown options"):
        gaussian(stack, sigmaa=2)


def test_thresholds_give_masks_and_multiotsu_gives_classes() -> None:
    stack = intensity_stack()
    otsu = get_function("skimage.filters.threshold_otsu").func(stack)
    from skimage.filters import threshold_otsu

    assert otsu.dtype == bool
    np.testing.assert_array_equal(otsu[0], stack[0] > threshold_otsu(stack[0]))
    classes = get_function("skimage.filters.threshold_multiotsu").func(stack, classes=3)
    assert classes.dtype == np.uint8 and set(np.unique(classes)) == {0, 1, 2}


def test_labels_come_back_as_int32() -> None:
    mask = (intensity_stack() > 600).astype(np.uint8)
    labels = get_function("ndimage.label").func(mask)
    assert labels.dtype == np.int32 and labels[0].max() >= 1
    assert get_function("skimage.measure.label").func(mask).dtype == np.int32


def test_rank_filters_run_on_8_bit_copies() -> None:
    stack = intensity_stack()
    out = get_function("skimage.filters.rank.median").func(stack, footprint_radius=2)
    assert out.dtype == np.uint8 and out.max() > 200


def test_wrapped_operations_pickle_by_name() -> None:
    op = get_function("ndimage.gaussian_filter").func
    clone = pickle.loads(pickle.dumps(op))
    assert clone is op
    assert isinstance(op, WrappedOperation) and repr(op) == "<wrapped operation ndimage.gaussian_filter>"


def test_a_worker_process_unpickles_and_runs_a_wrapped_operation() -> None:
    payload = pickle.dumps((get_function("ndimage.uniform_filter").func, intensity_stack()))
    code = (
        "import pickle, sys\n"
        "op, stack = pickle.loads(sys.stdin.buffer.read())\n"
        "print(op.__name__, op(stack, size=5).shape)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], input=payload, capture_output=True, check=True)
    assert run.stdout.decode().split() == ["ndimage.uniform_filter", "(2,", "40,", "48)"]


def test_registering_imports_neither_library_and_is_fast() -> None:
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "import napari_openhcs.functions._skimage_wrappers as w\n"
        "print(time.perf_counter() - t, len(w._WRAPPED), 'skimage' in sys.modules, 'scipy' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = run.stdout.split()
    seconds, count, skimage_loaded, scipy_loaded = float(out[0]), int(out[1]), out[2], out[3]
    assert count == len(NAMES) and skimage_loaded == "False" and scipy_loaded == "False"
    assert seconds < 1.0


def test_wrapped_names_are_in_the_browser() -> None:
    names = {i.name for i in all_functions()}
    assert set(NAMES) <= names
