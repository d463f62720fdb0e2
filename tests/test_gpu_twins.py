"""Every GPU twin matches its CPU function: with NumPy input (the twin's CPU path) and with CuPy arrays.

The twins are written once for NumPy and CuPy, so running them on NumPy arrays
checks the very code that runs on a GPU, on any machine. Stated tolerances:

- NumPy path: bit-identical to the CPU function, except the flatfield estimate
  (its profile is resampled from float32, ``rtol=1e-5``; corrected pixels within 1).
- CuPy path (``@pytest.mark.gpu``): GPU reductions, FFTs and filters round
  differently, see ``GPU_TOL``.
"""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_openhcs.functions.registry import _REGISTRY, get_function, twins
from napari_openhcs.testing import make_synthetic_plate


def _cupy() -> Any:
    try:
        import cupy
    except Exception:
        return None
    try:
        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # no driver
        return None


CUPY = _cupy()


# ------------------------------------------------------------------------------ data
@dataclass
class Images:
    """Stacks of one data set: tiles of a well (with stage positions), a z-stack, a field's channels."""

    tiles: np.ndarray
    positions: np.ndarray | None
    zstack: np.ndarray
    channels: np.ndarray
    nuclei: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)


def _random() -> Images:
    rng = np.random.default_rng(7)
    tiles = rng.poisson(rng.uniform(100, 3000, size=(4, 1, 1)), size=(4, 96, 112)).astype(np.uint16)
    return Images(tiles, None, tiles[:3], tiles[:2], tiles)


def _from_plate(root: Path, well: str, nuclear: int) -> Images:
    from napari_openhcs.microscopes.detect import open_plate

    plate = open_plate(root)
    recs = plate.records_for(well)

    def stack(items: list[Any]) -> np.ndarray:
        return np.stack([plate.read(r) for r in items])

    z1 = sorted((r for r in recs if r.channel == nuclear and r.z == 1), key=lambda r: r.site)
    pos = {s: (y, x) for w, s, y, x in plate.site_positions if w == well}
    positions = np.array([pos[r.site] for r in z1]) / plate.pixel_size_um if pos else None
    zs = sorted((r for r in recs if r.channel == nuclear and r.site == 1), key=lambda r: r.z)
    chans = sorted((r for r in recs if r.site == 1 and r.z == 1), key=lambda r: r.channel)
    all_nuclear = [r for w in plate.wells for r in plate.records_for(w) if r.channel == nuclear][:8]
    return Images(stack(z1), positions, stack(zs), stack(chans), stack(all_nuclear))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Images:
    root = make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="small", seed=2)
    return _from_plate(root, "A01", 1)


@pytest.fixture(scope="module")
def real(shared_data: Path) -> Images:
    return _from_plate(shared_data / "imagexpress_mxp_export_zstack_9987_3434", "B02", 1)


@pytest.fixture(scope="module")
def random_images() -> Images:
    return _random()


DATASETS = ["random_images", "synthetic", "real"]


# ------------------------------------------------------------------------------ cases
@dataclass(frozen=True)
class Case:
    """One comparison: function, arguments, which stack it takes."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    data: str = "tiles"

    def __str__(self) -> str:
        args = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


CASES = [
    Case("percentile_normalize"),
    Case("percentile_normalize", {"low": 2.0, "high": 98.0, "per_slice": True, "output_dtype": "same"}),
    Case("rescale_intensity", {"in_min": 200.0, "in_max": 3000.0}),
    Case("rescale_intensity", {"output_dtype": "same"}),
    Case("convert_dtype", {"dtype": "uint8"}),
    Case("convert_dtype", {"dtype": "float32", "mode": "clip"}),
    Case("invert_intensity"),
    Case("gaussian_blur", {"sigma": 2.0}),
    Case("median_filter", {"radius": 2}),
    Case("unsharp_mask", {"sigma": 1.5, "amount": 0.7}),
    Case("tophat", {"radius": 12.0, "downsample": 1}),
    Case("tophat", {"radius": 40.0}),
    Case("tophat", {"radius": 25.0, "downsample": 3, "output": "background"}),
    Case("max_projection", data="zstack"),
    Case("min_projection", data="zstack"),
    Case("mean_projection", data="zstack"),
    Case("sum_projection", data="zstack"),
    Case("std_projection", data="zstack"),
    Case("best_focus_plane", data="zstack"),
    Case("best_focus_pixel", {"window": 9}, data="zstack"),
    Case("composite", data="channels"),
    Case("composite", {"normalize": True}, data="channels"),
    Case("flatfield_correct", {"working_size": 64}, data="nuclei"),
    Case("segment_nuclei", data="nuclei"),
    Case("segment_nuclei", {"split_touching": False, "clear_border": True, "min_area": 20}, data="nuclei"),
    Case("segment_nuclei", {"threshold_method": "local", "block_size": 51, "threshold_factor": 1.1},
         data="nuclei"),
    Case("segment_nuclei", {"threshold_method": "li", "max_area": 400}, data="nuclei"),
]

#: CuPy path: (absolute tolerance, relative tolerance, largest fraction of elements allowed outside them).
GPU_TOL: dict[str, tuple[float, float, float]] = {
    "percentile_normalize": (1e-6, 1e-5, 0.0),
    "rescale_intensity": (1e-6, 0.0, 0.0),
    "convert_dtype": (0.0, 0.0, 0.0),
    "invert_intensity": (0.0, 0.0, 0.0),
    "gaussian_blur": (1.0, 0.0, 0.0),  # uint16 results within one count (float32 rounding at .5)
    "median_filter": (0.0, 0.0, 0.0),
    "unsharp_mask": (1.0, 0.0, 0.0),
    "tophat": (1.0, 0.0, 0.0),
    "max_projection": (0.0, 0.0, 0.0),
    "min_projection": (0.0, 0.0, 0.0),
    "mean_projection": (0.0, 1e-6, 0.0),
    "sum_projection": (0.0, 1e-6, 0.0),
    "std_projection": (1e-4, 1e-5, 0.0),
    "best_focus_plane": (0.0, 0.0, 0.0),
    "best_focus_pixel": (0.0, 0.0, 0.01),  # near-ties in local sharpness may pick the other plane
    "composite": (1e-4, 1e-5, 0.0),
    "flatfield_correct": (1.0, 0.0, 0.0),
    "segment_nuclei": (0.0, 0.0, 0.01),  # labels: boundary pixels of a float32 threshold
}


def cpu_and_twin(name: str) -> tuple[Any, Any]:
    impl = twins(name)
    return impl["numpy"].func, impl["cupy"].func


def assert_close(expected: Any, got: Any, atol: float = 0.0, rtol: float = 0.0, frac: float = 0.0) -> None:
    expected, got = np.asarray(expected), np.asarray(got)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    if atol == rtol == frac == 0.0:
        np.testing.assert_array_equal(got, expected)
        return
    diff = np.abs(got.astype(np.float64) - expected.astype(np.float64))
    bad = diff > atol + rtol * np.abs(expected.astype(np.float64))
    assert bad.mean() <= frac, f"{bad.sum()} of {bad.size} elements differ (max {diff.max():g})"


# ------------------------------------------------------------------------------ signatures
def _twin_names() -> list[str]:
    get_function("max_projection")  # loads the library
    return sorted(n for n, impls in _REGISTRY.items() if "cupy" in impls)


TWIN_NAMES = _twin_names()


def test_twins_are_registered_for_the_library() -> None:
    assert set(TWIN_NAMES) >= {
        "percentile_normalize", "gaussian_blur", "median_filter", "tophat", "max_projection",
        "mean_projection", "min_projection", "sum_projection", "std_projection", "composite",
        "correct_illumination", "compute_tile_positions", "assemble_tiles", "segment_nuclei", "detect_nuclei"}
    assert get_function("gaussian_blur", "auto").memory_type == "numpy"
    assert get_function("gaussian_blur", "gpu").memory_type == "cupy"


@pytest.mark.parametrize("name", TWIN_NAMES)
def test_twin_has_the_signature_and_special_io_of_its_cpu_function(name: str) -> None:
    impl = twins(name)
    assert "numpy" in impl, f"{name} has a GPU twin but no CPU function"
    cpu, gpu = impl["numpy"], impl["cupy"]
    params = [list(inspect.signature(i.func).parameters.values())[1:] for i in (cpu, gpu)]
    described = [[(p.name, p.kind, p.default) for p in ps] for ps in params]
    assert described[0] == described[1]
    hints = [typing.get_type_hints(i.func, include_extras=True) for i in (cpu, gpu)]
    for p in params[0]:
        assert hints[0].get(p.name) == hints[1].get(p.name), p.name
    for attr in ("special_inputs", "special_outputs", "metadata_inputs", "category", "keywords"):
        assert getattr(cpu, attr) == getattr(gpu, attr), attr
    # what a form shows, descriptions aside (the twin's docstring points at the CPU function)
    specs = [[dataclasses.replace(s, description="") for s in i.parameters] for i in (cpu, gpu)]
    assert specs[0] == specs[1]


def test_twins_import_no_gpu_library() -> None:
    code = ("import sys; from napari_openhcs.functions.registry import get_function; "
            "get_function('gaussian_blur', 'gpu'); import napari_openhcs.core.well_runner; "
            "print(sorted(m for m in ('cupy', 'cupyx', 'pynvml') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ image -> image
@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_twin_matches_cpu_on_numpy(case: Case, dataset: str, request: pytest.FixtureRequest) -> None:
    stack = getattr(request.getfixturevalue(dataset), case.data)
    cpu, twin = cpu_and_twin(case.name)
    expected = cpu(stack.copy(), **case.kwargs)
    got = twin(stack.copy(), **case.kwargs)
    assert isinstance(got, np.ndarray)
    if case.name == "flatfield_correct":
        assert_close(expected, got, atol=1.0)
    else:
        assert_close(expected, got)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.gpu
@pytest.mark.skipif(CUPY is None, reason="needs CuPy and an NVIDIA GPU")
def test_twin_matches_cpu_on_cupy(case: Case, dataset: str, request: pytest.FixtureRequest) -> None:
    stack = getattr(request.getfixturevalue(dataset), case.data)
    cpu, twin = cpu_and_twin(case.name)
    expected = cpu(stack.copy(), **case.kwargs)
    got = twin(CUPY.asarray(stack), **case.kwargs)
    assert isinstance(got, CUPY.ndarray), "the twin must return a device array"
    if case.name == "segment_nuclei":
        got_host = got.get()
        assert_close(expected > 0, got_host > 0, frac=GPU_TOL[case.name][2])
        counts = [(int(e.max()), int(g.max())) for e, g in zip(expected, got_host)]
        assert all(abs(e - g) <= max(1, 0.02 * e) for e, g in counts), counts
    else:
        assert_close(expected, got.get(), *GPU_TOL[case.name])


# ------------------------------------------------------------------------------ special inputs/outputs
def _stitch_inputs(images: Images) -> tuple[np.ndarray, dict[str, Any]]:
    if images.positions is not None:
        return images.tiles, {"site_positions": images.positions}
    return images.tiles, {"grid_dimensions": (2, 2), "overlap": 0.1}


def _special_io_runs(images: Images, to_device: Any) -> list[tuple[str, Any, Any]]:
    """Run the special-output twins; return ``(what, cpu result, twin result on the host)``."""
    from napari_openhcs.functions._xp import to_host

    out = []
    tiles, kwargs = _stitch_inputs(images)
    cpu, twin = cpu_and_twin("compute_tile_positions")
    _, pos_cpu, pairs_cpu = cpu(tiles, **kwargs)
    stack, pos, pairs = twin(to_device(tiles), **kwargs)
    out += [("positions", pos_cpu, pos), ("pairs", pairs_cpu, pairs), ("passthrough", tiles, to_host(stack))]
    for blend in ("linear", "none"):
        cpu, twin = cpu_and_twin("assemble_tiles")
        out.append((f"assembled {blend}", cpu(tiles, positions=pos_cpu, blend=blend),
                    to_host(twin(to_device(tiles), positions=pos_cpu, blend=blend))))
    cpu, twin = cpu_and_twin("estimate_flatfield")
    _, ill_cpu = cpu(images.nuclei, working_size=64, darkfield=True, max_iterations=100)
    _, ill = twin(to_device(images.nuclei), working_size=64, darkfield=True, max_iterations=100)
    out.append(("illumination", ill_cpu, to_host(ill)))
    cpu, twin = cpu_and_twin("correct_illumination")
    out.append(("corrected", cpu(images.nuclei, illumination=ill_cpu),
                to_host(twin(to_device(images.nuclei), illumination=ill_cpu))))
    cpu, twin = cpu_and_twin("detect_nuclei")
    out.append(("labels", cpu(images.nuclei)[1], to_host(twin(to_device(images.nuclei))[1])))
    return out


@pytest.mark.parametrize("dataset", DATASETS)
def test_special_io_twins_match_cpu_on_numpy(dataset: str, request: pytest.FixtureRequest) -> None:
    for what, expected, got in _special_io_runs(request.getfixturevalue(dataset), np.asarray):
        if what == "illumination":
            for key in ("flatfield", "darkfield"):
                np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-4 * max(
                    1.0, float(np.abs(expected[key]).max())), err_msg=key)
        elif what == "corrected":
            assert_close(expected, got, atol=1.0)
        elif isinstance(expected, dict):
            assert expected.keys() == got.keys()
            for key in expected:
                np.testing.assert_array_equal(got[key], expected[key], err_msg=f"{what}.{key}")
        else:
            assert_close(expected, got)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.gpu
@pytest.mark.skipif(CUPY is None, reason="needs CuPy and an NVIDIA GPU")
def test_special_io_twins_match_cpu_on_cupy(dataset: str, request: pytest.FixtureRequest) -> None:
    for what, expected, got in _special_io_runs(request.getfixturevalue(dataset), CUPY.asarray):
        if what == "positions":  # tile origins within 0.1 px
            for key in ("y", "x"):
                np.testing.assert_allclose(got[key], expected[key], atol=0.1)
        elif what == "pairs":
            np.testing.assert_array_equal(got["used"], expected["used"])
            np.testing.assert_allclose(got["quality"], expected["quality"], atol=1e-3)
        elif what == "illumination":
            for key in ("flatfield", "darkfield"):
                np.testing.assert_allclose(got[key], expected[key], rtol=1e-3, atol=1e-3 * max(
                    1.0, float(np.abs(expected[key]).max())), err_msg=key)
        elif what == "labels":
            assert_close(expected > 0, got > 0, frac=0.01)
        else:  # pass-through, assembled and corrected images: within one count
            assert_close(expected, got, atol=1.0, rtol=1e-5)
