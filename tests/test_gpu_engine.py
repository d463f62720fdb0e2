"""The engine's GPU path without a GPU: a stand-in CuPy backed by NumPy.

``DeviceArray`` is a NumPy array whose class lives in a module called ``cupy``, so
the engine treats it as a GPU array; the stand-in ``cupy`` module counts every
upload and download. That checks twin selection, data staying on the device
between GPU steps, conversion back to NumPy only where needed, device scopes, the
pool being freed, and the out-of-memory retry and CPU fallback.
"""

from __future__ import annotations

import sys
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.core.compiler.gpu import GpuDevice, gpu_discovery
from napari_openhcs.core.events import StepFinished
from napari_openhcs.core.gpu_runtime import is_gpu_oom
from napari_openhcs.functions.registry import _REGISTRY, register
from napari_openhcs.testing import make_synthetic_plate

GiB = 2**30
LOG: list[tuple[str, ...]] = []  # ("upload",), ("download",), ("call", name, "gpu"/"cpu"), ("device", n)
OOM_LEFT = [0]  # how many more times the OOM twin runs out of memory


class DeviceArray(np.ndarray):
    """A NumPy array the engine takes for a CuPy array."""

    def get(self) -> np.ndarray:
        LOG.append(("download",))
        return np.array(self)


DeviceArray.__module__ = "cupy._core.core"


class OutOfMemoryError(MemoryError):
    """Stands in for ``cupy.cuda.memory.OutOfMemoryError``."""


OutOfMemoryError.__module__ = "cupy.cuda.memory"


class _Device:
    def __init__(self, ordinal: int) -> None:
        self.ordinal = ordinal

    def __enter__(self) -> _Device:
        LOG.append(("device", str(self.ordinal)))
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _fake_cupy(pool: Counter[str]) -> tuple[types.ModuleType, types.ModuleType]:
    cupy = types.ModuleType("cupy")

    def asarray(a: Any, dtype: Any = None) -> DeviceArray:
        if isinstance(a, DeviceArray):
            return a if dtype is None else a.astype(dtype)
        LOG.append(("upload",))
        return np.array(a, dtype=dtype).view(DeviceArray)

    class _Pool:
        def __init__(self, name: str) -> None:
            self.name = name

        def free_all_blocks(self) -> None:
            pool[self.name] += 1

    cupy.ndarray = DeviceArray  # type: ignore[attr-defined]
    cupy.asarray = asarray  # type: ignore[attr-defined]
    cupy.stack = lambda arrays: np.stack([np.asarray(a) for a in arrays]).view(DeviceArray)  # type: ignore[attr-defined]
    cupy.isfinite = np.isfinite  # type: ignore[attr-defined]
    cupy.count_nonzero = np.count_nonzero  # type: ignore[attr-defined]
    cupy.cuda = types.SimpleNamespace(Device=_Device)  # type: ignore[attr-defined]
    cupy.get_default_memory_pool = lambda: _Pool("device")  # type: ignore[attr-defined]
    cupy.get_default_pinned_memory_pool = lambda: _Pool("pinned")  # type: ignore[attr-defined]
    cupyx = types.ModuleType("cupyx")
    cupyx.scipy = types.SimpleNamespace(ndimage=ndimage)  # type: ignore[attr-defined]
    return cupy, cupyx


# ------------------------------------------------------------------------------ test functions
def scale_cpu(stack: np.ndarray, *, factor: float = 2.0) -> np.ndarray:
    """Multiply by ``factor`` (CPU)."""
    assert type(stack) is np.ndarray
    LOG.append(("call", "scale", "cpu"))
    return stack.astype(np.float32) * np.float32(factor)


def scale_gpu(stack: Any, *, factor: float = 2.0) -> Any:
    """Multiply by ``factor`` (GPU twin)."""
    assert isinstance(stack, DeviceArray)
    LOG.append(("call", "scale", "gpu"))
    return (np.asarray(stack).astype(np.float32) * np.float32(factor)).view(DeviceArray)


def offset_cpu(stack: np.ndarray) -> np.ndarray:
    """Add 1: a function without a GPU twin."""
    assert type(stack) is np.ndarray
    LOG.append(("call", "offset", "cpu"))
    return stack + np.float32(1.0)


def oom_cpu(stack: np.ndarray) -> np.ndarray:
    """Square (CPU)."""
    assert type(stack) is np.ndarray
    LOG.append(("call", "square", "cpu"))
    return stack.astype(np.float32) ** 2


def oom_gpu(stack: Any) -> Any:
    """Square (GPU twin that may run out of memory)."""
    LOG.append(("call", "square", "gpu"))
    if OOM_LEFT[0] > 0:
        OOM_LEFT[0] -= 1
        raise OutOfMemoryError("Out of memory allocating 8,589,934,592 bytes (allocated so far: 0 bytes).")
    return (np.asarray(stack).astype(np.float32) ** 2).view(DeviceArray)


def broken_gpu(stack: Any) -> Any:
    """A GPU twin with a bug (not a memory problem)."""
    LOG.append(("call", "broken", "gpu"))
    raise ValueError("bad kernel argument")


def broken_cpu(stack: np.ndarray) -> np.ndarray:
    """CPU side of ``broken_gpu``."""
    return stack


TEST_FUNCTIONS = {
    "_gpu_test_scale": (scale_cpu, scale_gpu),
    "_gpu_test_square": (oom_cpu, oom_gpu),
    "_gpu_test_broken": (broken_cpu, broken_gpu),
}


@pytest.fixture(scope="module", autouse=True)
def registered() -> Iterator[None]:
    for name, (cpu, gpu) in TEST_FUNCTIONS.items():
        register(name=name, category="Test")(cpu)
        register(name=name, category="Test", memory_type="cupy")(gpu)
    yield
    for name in TEST_FUNCTIONS:
        _REGISTRY.pop(name, None)


@pytest.fixture
def fake_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """CuPy stand-in in ``sys.modules`` and two injected GPUs; yields the pool-free counter."""
    pool: Counter[str] = Counter()
    cupy, cupyx = _fake_cupy(pool)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", cupyx.scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.ndimage", ndimage)
    LOG.clear()
    OOM_LEFT[0] = 0
    gpus = [GpuDevice(0, "fake-0", 16 * GiB, 16 * GiB), GpuDevice(1, "fake-1", 16 * GiB, 12 * GiB)]
    with gpu_discovery(gpus):
        yield pool


@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="tiny", seed=5)


def run(plate: Path, out: Path, steps: list[FunctionStep],
        **config: Any) -> tuple[PipelineOrchestrator, dict[str, Any]]:
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
        num_workers=1, output_dir=out, executor="threads", **config))
    events: list[Any] = []
    orch.initialize()
    compiled = orch.compile_pipelines(steps)
    results = orch.execute_compiled_plate(steps, compiled, progress_callback=events.append)
    orch.events = events  # type: ignore[attr-defined]
    return orch, results


def output_fields(orch: PipelineOrchestrator) -> dict[str, np.ndarray]:
    from napari_openhcs.io import open_output_plate

    out = open_output_plate(orch.output_path)
    return {w: np.asarray(out.fields(w)[0]) for w in out.wells}


def fn(name: str) -> Any:
    return TEST_FUNCTIONS[name][0]


SITE, Z = [VariableComponents.SITE], [VariableComponents.Z_INDEX]


# ------------------------------------------------------------------------------ data flow
def test_gpu_steps_use_twins_and_keep_images_on_the_device(plate: Path, tmp_path: Path,
                                                           fake_gpu: Counter[str]) -> None:
    steps = [
        FunctionStep(func=fn("_gpu_test_scale"), name="scale", variable_components=SITE),
        FunctionStep(func=(fn("_gpu_test_scale"), {"factor": 0.5}), name="scale back",
                     variable_components=SITE),
        FunctionStep(func=offset_cpu, name="offset", variable_components=SITE),
        FunctionStep(func=fn("_gpu_test_scale"), name="scale again", variable_components=Z),
    ]
    orch, results = run(plate, tmp_path / "gpu", steps)
    assert all(r.status == "done" and not r.notes for r in results.values()), results
    compiled = orch.last_compiled
    assert compiled is not None
    assert {w: c.device for w, c in compiled.contexts.items()} == {"A01": "cuda:0", "A02": "cuda:1"}
    assert {("device", "0"), ("device", "1")} <= set(LOG)  # each well ran under its own GPU

    calls = [e[1:] for e in LOG if e[0] == "call"]
    assert set(calls) == {("scale", "gpu"), ("offset", "cpu")}
    # per well: uploaded once for the first GPU step, nothing moved between the two GPU
    # steps, downloaded before the CPU step, uploaded again for the last step, downloaded to write
    kinds = [e[0] if e[0] != "call" else f"{e[1]}:{e[2]}" for e in LOG if e[0] != "device"]
    well_log = kinds[: len(kinds) // 2]  # one worker: A01 ran first, then A02 (same steps)
    off = well_log.index("offset:cpu")
    before, after = well_log[:off], well_log[off:]
    assert before.count("upload") == before.count("scale:gpu") // 2 > 0
    last_gpu = max(i for i, k in enumerate(before) if k == "scale:gpu")
    assert "download" not in before[:last_gpu]
    assert before[last_gpu + 1:] == ["download"] * (len(before) - last_gpu - 1) and before[-1] == "download"
    assert after.count("upload") == after.count("scale:gpu") > 0
    assert well_log[-1] == "download"

    # same output as the CPU run
    orch_cpu, results_cpu = run(plate, tmp_path / "cpu", steps, use_gpu="never")
    assert all(r.status == "done" for r in results_cpu.values())
    gpu_out, cpu_out = output_fields(orch), output_fields(orch_cpu)
    for well in cpu_out:
        np.testing.assert_array_equal(gpu_out[well], cpu_out[well])
    assert fake_gpu["device"] >= len(results)  # the pool is emptied after every GPU well


def test_backend_cpu_step_gets_numpy_even_on_a_gpu_well(plate: Path, tmp_path: Path,
                                                        fake_gpu: Counter[str]) -> None:
    steps = [FunctionStep(func=fn("_gpu_test_scale"), name="scale", variable_components=SITE, backend="cpu")]
    _, results = run(plate, tmp_path / "out", steps)
    assert all(r.status == "done" for r in results.values())
    assert {e for e in LOG if e[0] == "call"} == {("call", "scale", "cpu")}
    assert ("upload",) not in LOG


# ------------------------------------------------------------------------------ out of memory
def test_out_of_memory_frees_the_pool_and_retries_on_the_gpu(plate: Path, tmp_path: Path,
                                                             fake_gpu: Counter[str]) -> None:
    OOM_LEFT[0] = 1  # the first well's first group runs out of memory once
    steps = [FunctionStep(func=fn("_gpu_test_square"), name="square", variable_components=SITE)]
    orch, results = run(plate, tmp_path / "out", steps)
    assert all(r.status == "done" for r in results.values())
    noted = {w: r.notes for w, r in results.items() if r.notes}
    assert list(noted) == ["A01"]
    (note,) = noted["A01"]
    assert "GPU out of memory on cuda:0" in note and "ran the well again" in note and "8,589,934,592" in note
    assert ("call", "square", "cpu") not in LOG  # the retry succeeded on the GPU
    assert fake_gpu["device"] >= 1 + len(results)
    steps_finished = [e for e in orch.events if isinstance(e, StepFinished)]  # type: ignore[attr-defined]
    assert len(steps_finished) == len(results)  # the failed attempt's steps are not reported twice


def test_out_of_memory_twice_runs_the_well_on_the_cpu(plate: Path, tmp_path: Path,
                                                      fake_gpu: Counter[str]) -> None:
    OOM_LEFT[0] = 10**6  # never fits
    steps = [FunctionStep(func=fn("_gpu_test_square"), name="square", variable_components=SITE)]
    orch, results = run(plate, tmp_path / "gpu", steps)
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    for result in results.values():
        assert len(result.notes) == 2
        assert "ran the well again" in result.notes[0]
        assert "GPU out of memory again on cuda:" in result.notes[1]
        assert "on the CPU instead" in result.notes[1]
    assert ("call", "square", "cpu") in LOG
    orch_cpu, _ = run(plate, tmp_path / "cpu", steps, use_gpu="never")
    gpu_out, cpu_out = output_fields(orch), output_fields(orch_cpu)
    for well in cpu_out:
        np.testing.assert_array_equal(gpu_out[well], cpu_out[well])


def test_other_gpu_errors_fail_the_well_without_retry(plate: Path, tmp_path: Path,
                                                      fake_gpu: Counter[str]) -> None:
    steps = [FunctionStep(func=fn("_gpu_test_broken"), name="broken", variable_components=SITE)]
    _, results = run(plate, tmp_path / "out", steps)
    assert {r.status for r in results.values()} == {"failed"}
    for result in results.values():
        assert "ValueError: bad kernel argument" in (result.error or "") and not result.notes
    assert sum(1 for e in LOG if e[0] == "call") == len(results)


def test_gpu_oom_recognition() -> None:
    assert is_gpu_oom(OutOfMemoryError("out of memory"))
    try:
        try:
            raise OutOfMemoryError("out of memory")
        except MemoryError as inner:
            raise RuntimeError("step 2 'blur' failed") from inner
    except RuntimeError as outer:
        assert is_gpu_oom(outer)
    cufft = type("CuFFTError", (RuntimeError,), {"__module__": "cupy_backends.cuda.libs.cufft"})
    assert is_gpu_oom(cufft("CUFFT_ALLOC_FAILED"))
    assert not is_gpu_oom(cufft("CUFFT_INVALID_PLAN"))
    torch_oom = type("OutOfMemoryError", (RuntimeError,), {"__module__": "torch.cuda"})
    assert is_gpu_oom(torch_oom("CUDA out of memory"))
    assert not is_gpu_oom(MemoryError("host memory"))
    assert not is_gpu_oom(type("OutOfMemoryError", (Exception,), {"__module__": "mylib"})("x"))
    assert not is_gpu_oom(None)


# ------------------------------------------------------------------------------ parallel reading
def test_parallel_read_matches_sequential_and_names_the_first_bad_file(
        plate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_openhcs.core import raw_images
    from napari_openhcs.core.compiler import well_input
    from napari_openhcs.microscopes.detect import open_plate

    inputs = well_input(open_plate(plate), "A01")
    parallel = raw_images.read_well(inputs)
    monkeypatch.setattr(raw_images, "READ_THREADS", 1)
    sequential = raw_images.read_well(inputs)
    assert parallel.images.keys() == sequential.images.keys()
    for key in parallel.images:
        np.testing.assert_array_equal(parallel.images[key], sequential.images[key])
    monkeypatch.setattr(raw_images, "READ_THREADS", 8)
    real_read = raw_images.read_record
    bad = {inputs.records[2].path, inputs.records[5].path}

    def failing(inp: Any, rec: Any, out: np.ndarray | None = None) -> np.ndarray:
        if rec.path in bad:
            raise OSError(f"{rec.path}: truncated file")
        return real_read(inp, rec, out)

    monkeypatch.setattr(raw_images, "read_record", failing)
    with pytest.raises(OSError, match=str(inputs.records[2].path).replace(".", r"\.")):
        raw_images.read_well(inputs)


def test_preview_of_a_gpu_well_hands_back_host_arrays(plate: Path, tmp_path: Path,
                                                      fake_gpu: Counter[str]) -> None:
    steps = [
        FunctionStep(func=fn("_gpu_test_scale"), name="scale", variable_components=SITE),
        FunctionStep(func=fn("_gpu_test_scale"), name="scale again", variable_components=SITE),
    ]
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(output_dir=tmp_path / "out"))
    orch.initialize()
    preview = orch.preview_well(steps, "A02")
    assert preview.error is None and len(preview.steps) == 2
    assert ("call", "scale", "gpu") in LOG
    for step in preview.steps:
        assert type(step.data) is np.ndarray
        assert all(type(f) is np.ndarray for f in step.fields.values())
