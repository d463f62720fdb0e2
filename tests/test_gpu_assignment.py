"""GPU discovery (pynvml, CUDA_VISIBLE_DEVICES) and the spreading of wells over GPUs, without a GPU.

A fake ``pynvml`` module stands in for the driver, and :func:`gpu_discovery` injects
device lists into a full compile.
"""

from __future__ import annotations

import logging
import sys
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.core.compiler.gpu import (
    GpuDevice,
    assign_devices,
    discover_gpus,
    gpu_discovery,
    plan_gpus,
)
from napari_openhcs.core.compiler.memory import CUDA_CONTEXT_BYTES, estimate_well_vram
from napari_openhcs.core.errors import InsufficientMemoryError, PipelineCompileError
from napari_openhcs.functions.registry import get_function
from napari_openhcs.testing import make_synthetic_plate

GiB = 2**30


# ----------------------------------------------------------------------------- fake pynvml
def fake_pynvml(gpus: list[tuple[str, int, int, str]], *, init_error: bool = False) -> types.ModuleType:
    """A pynvml module listing ``(name, total, free, uuid)`` GPUs in physical (NVML) order."""
    mod = types.ModuleType("pynvml")
    mod.calls = Counter()  # type: ignore[attr-defined]

    def init() -> None:
        mod.calls["init"] += 1
        if init_error:
            raise RuntimeError("NVML Shared Library Not Found")

    def shutdown() -> None:
        mod.calls["shutdown"] += 1

    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: len(gpus)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetName = lambda h: gpus[h][0].encode()  # type: ignore[attr-defined]  # old pynvml: bytes
    mod.nvmlDeviceGetUUID = lambda h: gpus[h][3]  # type: ignore[attr-defined]
    mod.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        total=gpus[h][1], free=gpus[h][2], used=gpus[h][1] - gpus[h][2])
    return mod


PHYSICAL = [
    ("NVIDIA A100", 40 * GiB, 30 * GiB, "GPU-aaaa1111-0000"),
    ("NVIDIA A100", 40 * GiB, 10 * GiB, "GPU-bbbb2222-0000"),
    ("NVIDIA L4", 24 * GiB, 20 * GiB, "GPU-cccc3333-0000"),
]


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = fake_pynvml(PHYSICAL)
    monkeypatch.setitem(sys.modules, "pynvml", mod)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return mod


def test_discovery_lists_every_gpu_with_its_memory(nvml: types.ModuleType) -> None:
    gpus = discover_gpus()
    assert [(g.index, g.name, g.total_bytes, g.free_bytes) for g in gpus] == [
        (0, "NVIDIA A100", 40 * GiB, 30 * GiB), (1, "NVIDIA A100", 40 * GiB, 10 * GiB),
        (2, "NVIDIA L4", 24 * GiB, 20 * GiB)]
    assert nvml.calls["init"] == nvml.calls["shutdown"] == 1


@pytest.mark.parametrize(
    ("mask", "physical"),
    [
        ("2,0", [2, 0]),  # CUDA ordinals follow the mask's order
        ("1", [1]),
        ("GPU-cccc", [2]),  # UUID prefix
        ("GPU-cccc3333-0000,0", [2, 0]),
        ("0,7,2", [0]),  # CUDA stops at the first entry it cannot resolve
        ("0,0", [0]),
        ("", []),
        ("-1", []),
        ("MIG-1234", []),
    ],
)
def test_discovery_respects_cuda_visible_devices(nvml: types.ModuleType, monkeypatch: pytest.MonkeyPatch,
                                                 mask: str, physical: list[int]) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    gpus = discover_gpus()
    assert [g.index for g in gpus] == list(range(len(physical)))  # ordinals as CUDA numbers them
    assert [g.uuid for g in gpus] == [PHYSICAL[p][3] for p in physical]
    assert [g.free_bytes for g in gpus] == [PHYSICAL[p][2] for p in physical]


def test_discovery_warns_about_cuda_ordering_of_mixed_gpus(nvml: types.ModuleType,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("CUDA_DEVICE_ORDER", raising=False)
    with caplog.at_level(logging.WARNING):
        discover_gpus()
    assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in caplog.text
    caplog.clear()
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    with caplog.at_level(logging.WARNING):
        discover_gpus()
    assert "CUDA_DEVICE_ORDER" not in caplog.text


def test_discovery_without_driver_or_pynvml_finds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(PHYSICAL, init_error=True))
    assert discover_gpus() == []
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails
    assert discover_gpus() == []


def test_injected_discovery_replaces_pynvml(nvml: types.ModuleType) -> None:
    fake = [GpuDevice(0, "fake", 8 * GiB, 8 * GiB)]
    with gpu_discovery(fake):
        assert discover_gpus() == fake
    assert len(discover_gpus()) == 3  # restored


# ----------------------------------------------------------------------------- assignment
DEVICES = [
    GpuDevice(0, "big", 80 * GiB, 60 * GiB),
    GpuDevice(1, "small", 16 * GiB, 9 * GiB),
    GpuDevice(2, "busy", 16 * GiB, 1 * GiB),
]


def test_wells_spread_over_gpus_in_proportion_to_their_free_memory() -> None:
    wells = {f"A{i:02d}": 4 * GiB for i in range(1, 25)}
    plan = plan_gpus(wells, DEVICES, max_wells_per_gpu=4)
    # 60 GiB * 0.9 / 4 -> 13, capped at 4; 9 GiB * 0.9 / 4 -> 2; 1 GiB -> none
    assert plan.slots == {0: 4, 1: 2}
    assert plan.total_slots == 6
    counts = Counter(plan.assignment.values())
    assert counts == {"cuda:0": 16, "cuda:1": 8}
    ordered = [plan.assignment[w] for w in sorted(wells)]
    assert ordered[:6] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0", "cuda:0"]
    assert "cuda:2" not in counts
    text = plan.describe()
    assert "cuda:0 big" in text and "4 wells at a time" in text and "cuda:2" not in text


def test_cap_of_wells_per_gpu() -> None:
    plan = plan_gpus({"A01": GiB, "A02": GiB}, DEVICES[:1], max_wells_per_gpu=1)
    assert plan.slots == {0: 1}
    assert set(plan.assignment.values()) == {"cuda:0"}


def test_a_well_that_fits_no_gpu_is_refused_with_the_numbers() -> None:
    with pytest.raises(InsufficientMemoryError) as err:
        plan_gpus({"A01": 70 * GiB}, DEVICES, use_gpu="always")
    msg = str(err.value)
    assert "70.00 GiB" in msg and "cuda:0 60.00 GiB" in msg and "cuda:2 1.00 GiB" in msg


def test_auto_falls_back_to_the_cpu_when_nothing_fits(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert assign_devices({"A01": 70 * GiB}, DEVICES) == {"A01": "cpu"}
    assert "running on the CPU" in caplog.text


def test_no_gpu_never_and_cpu_only_pipelines() -> None:
    assert assign_devices({"A01": GiB}, []) == {"A01": "cpu"}
    assert assign_devices({"A01": GiB}, DEVICES, use_gpu="never") == {"A01": "cpu"}
    assert assign_devices({"A01": 0, "A02": 0}, DEVICES) == {"A01": "cpu", "A02": "cpu"}
    with pytest.raises(InsufficientMemoryError, match="no GPU was found"):
        assign_devices({"A01": GiB}, [], use_gpu="always")


# ----------------------------------------------------------------------------- compile
@pytest.fixture(scope="module")
def plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="tiny", seed=3)


def custom_double(stack: np.ndarray) -> np.ndarray:
    """A plain function: no GPU twin."""
    return stack * 2


def pipeline(backend_last: str = "auto") -> list[FunctionStep]:
    return [
        FunctionStep(func=get_function("gaussian_blur").func, name="blur",
                     variable_components=[VariableComponents.SITE]),
        FunctionStep(func=custom_double, name="double", variable_components=[VariableComponents.SITE]),
        FunctionStep(func=get_function("max_projection").func, name="project", backend=backend_last,
                     variable_components=[VariableComponents.Z_INDEX]),
    ]


def compile_with(plate: Path, tmp_path: Path, devices: list[GpuDevice], steps: list[FunctionStep],
                 **config: object) -> PipelineOrchestrator:
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
        num_workers=8, output_dir=tmp_path / "out", executor="threads", **config))  # type: ignore[arg-type]
    orch.initialize()
    with gpu_discovery(devices):
        orch.compile_pipelines(steps)
    return orch


def test_compiled_contexts_carry_the_well_and_step_devices(plate: Path, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    devices = [GpuDevice(0, "fake-a", 24 * GiB, 20 * GiB), GpuDevice(1, "fake-b", 24 * GiB, 12 * GiB)]
    with caplog.at_level(logging.INFO, logger="napari_openhcs"):
        orch = compile_with(plate, tmp_path, devices, pipeline(backend_last="cpu"))
    compiled = orch.last_compiled
    assert compiled is not None and compiled.gpu is not None
    devs = {w: c.device for w, c in compiled.contexts.items()}
    assert devs == {"A01": "cuda:0", "A02": "cuda:1"}  # most free memory first, then the next GPU
    for well, ctx in compiled.contexts.items():
        # blur has a twin; the custom function has none; backend="cpu" keeps the projection on the CPU
        assert [p.device for p in ctx.steps] == [devs[well], "cpu", "cpu"]
    assert compiled.memory.workers == compiled.gpu.total_slots == 8  # 4 wells per GPU
    assert "GPU plan" in caplog.text and "cuda:1 fake-b" in caplog.text
    assert "device cuda:0" in compiled.contexts["A01"].describe()


def test_workers_are_lowered_to_the_gpu_slots(plate: Path, tmp_path: Path) -> None:
    orch = compile_with(plate, tmp_path, [GpuDevice(0, "fake", 8 * GiB, 8 * GiB)], pipeline())
    assert orch.last_compiled is not None
    assert orch.last_compiled.memory.workers == 4


def test_no_gpu_keeps_every_step_on_the_cpu(plate: Path, tmp_path: Path) -> None:
    orch = compile_with(plate, tmp_path, [], pipeline())
    compiled = orch.last_compiled
    assert compiled is not None
    assert {c.device for c in compiled.contexts.values()} == {"cpu"}
    assert all(p.device == "cpu" for c in compiled.contexts.values() for p in c.steps)
    assert compiled.memory.workers == 8


def test_backend_gpu_without_twin_is_an_error_when_gpu_is_required(plate: Path, tmp_path: Path) -> None:
    steps = [FunctionStep(func=custom_double, name="double", backend="gpu")]
    devices = [GpuDevice(0, "fake", 8 * GiB, 8 * GiB)]
    with pytest.raises(PipelineCompileError, match=r"'double' asks for backend='gpu' but custom_double"):
        compile_with(plate, tmp_path, devices, steps, use_gpu="always")
    orch = compile_with(plate, tmp_path, devices, steps)  # auto: runs on the CPU, with a note
    assert orch.last_compiled is not None
    assert any("has no GPU implementation; it runs on the CPU" in n for n in orch.last_compiled.notes)


def test_backend_gpu_without_a_gpu(plate: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    steps = [FunctionStep(func=get_function("gaussian_blur").func, name="blur", backend="gpu")]
    with caplog.at_level(logging.WARNING):
        orch = compile_with(plate, tmp_path, [], steps)
    assert orch.last_compiled is not None
    assert orch.last_compiled.notes == ("step 1 'blur' asks for backend='gpu' but no GPU was found; "
                                        "it runs on the CPU",)
    assert "no GPU was found" in caplog.text
    with pytest.raises(InsufficientMemoryError, match="no GPU was found"):
        compile_with(plate, tmp_path, [], steps, use_gpu="always")


def test_vram_estimate(plate: Path, tmp_path: Path) -> None:
    orch = compile_with(plate, tmp_path, [], pipeline())
    compiled = orch.last_compiled
    assert compiled is not None
    inputs = compiled.contexts["A01"].inputs
    raw = len(inputs.records) * int(np.prod(inputs.image_shape)) * 2  # uint16
    assert estimate_well_vram(inputs, compiled.plans, set()) == 0
    assert estimate_well_vram(inputs, compiled.plans, {0}) == 3 * 2 * raw + CUDA_CONTEXT_BYTES
