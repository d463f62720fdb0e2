"""GPU benchmark: per-function speed-ups of the CuPy twins, and the large plate on GPU, CPU and the I/O floor.

::

    python benchmarks/bench_gpu.py [--size 2048] [--repeats 3] [--plate large] [--workers N]
                                   [--skip-plate] [--json out.json]

Part 1 times every twin against its CPU function on a ``size`` x ``size`` uint16
image (stacks of such images where the function needs one): the CPU function,
the twin on a CuPy array (kernels only, synchronised) and the twin including the
host-to-device and device-to-host copies. Part 2 runs the reference stitching
pipeline on the synthetic plate (generated once, cached under
``benchmarks/results/plates``) with the engine: on the GPUs (``use_gpu="auto"``)
and on the CPU (``use_gpu="never"``) with the same worker count, next to the I/O
floor: each worker reads its wells' images with the engine's reader and writes an
output of the pipeline's output shape and dtype (built from the raw pixels) with
the engine's OME-Zarr writer. Targets: the GPU pipeline within 1.5x of the I/O
floor, and at least 10x faster than the CPU pipeline.

Without CuPy or a GPU everything CPU-side still runs and the GPU columns read
"no GPU: skipped GPU columns", so the script cannot rot on CPU-only machines.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / "results"
NO_GPU = "no GPU: skipped GPU columns"
TARGET_FLOOR_RATIO = 1.5
TARGET_SPEEDUP = 10.0


# --------------------------------------------------------------------------- GPU and timing
def find_cupy() -> Any:
    """Return the ``cupy`` module when it imports and sees a GPU, else ``None``."""
    try:
        import cupy
    except Exception:
        return None
    try:
        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:
        return None


def timed(func: Callable[[], Any], repeats: int, sync: Callable[[], None] | None = None) -> float:
    """Median seconds of ``func()`` over ``repeats`` runs, after one warm-up run."""
    func()
    if sync:
        sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        func()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --------------------------------------------------------------------------- inputs
def scene(size: int, seed: int = 0, n: int | None = None) -> np.ndarray:
    """A fluorescence-like uint16 image: blurred nuclei on a shaded background, Poisson noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    spots = np.zeros((size, size), np.float32)
    count = n or max(50, size * size // 8000)
    spots[rng.integers(0, size, count), rng.integers(0, size, count)] = 1.0
    nuclei = ndimage.gaussian_filter(spots, 6) * 2.5e4
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    shading = (1.0 - 0.3 * (yy**2 + xx**2)).astype(np.float32)
    return rng.poisson((200 + nuclei) * shading).astype(np.uint16)


def tiles_2x2(size: int, overlap: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Four ``size`` tiles of one scene on a 2 x 2 grid with ``overlap``, and their stage positions."""
    step = int(size * (1 - overlap))
    canvas = scene(step + size + 8, seed=1)
    rng = np.random.default_rng(2)
    tiles, stage = [], []
    for r in range(2):
        for c in range(2):
            y, x = r * step + int(rng.integers(0, 8)), c * step + int(rng.integers(0, 8))
            tiles.append(canvas[y : y + size, x : x + size])
            stage.append((r * step, c * step))
    return np.stack(tiles), np.asarray(stage, dtype=np.float64)


def function_cases(size: int) -> list[tuple[str, dict[str, Any], np.ndarray]]:
    """``(registered name, arguments, input stack)`` of every timed function."""
    image = scene(size)[None]
    zstack = np.stack([scene(size, seed=s) for s in range(3)])
    tiles, stage = tiles_2x2(size)
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    flat = (1.0 - 0.3 * (yy**2 + xx**2)).astype(np.float32)
    illumination = {"flatfield": flat / flat.mean(), "darkfield": np.zeros_like(flat)}
    return [
        ("percentile_normalize", {}, image),
        ("gaussian_blur", {"sigma": 2.0}, image),
        ("median_filter", {"radius": 2}, image),
        ("tophat", {"radius": 50.0}, image),
        ("max_projection", {}, zstack),
        ("mean_projection", {}, zstack),
        ("std_projection", {}, zstack),
        ("composite", {"normalize": True}, zstack[:2]),
        ("correct_illumination", {"illumination": illumination}, zstack),
        ("compute_tile_positions", {"site_positions": stage}, tiles),
        ("assemble_tiles", {"positions": {"tile": np.arange(4), "y": stage[:, 0], "x": stage[:, 1]}}, tiles),
        ("segment_nuclei", {"split_touching": False}, image),
        ("segment_nuclei", {}, image),
    ]


def bench_function(cpu: Callable[..., Any], twin: Callable[..., Any], stack: np.ndarray,
                   kwargs: dict[str, Any], repeats: int, cupy: Any) -> dict[str, float]:
    """Time one CPU function and, with a GPU, its twin (kernels only, and with the copies)."""
    row = {"cpu_s": timed(lambda: cpu(stack, **kwargs), repeats)}
    if cupy is not None:
        sync = cupy.cuda.Device().synchronize
        device = cupy.asarray(stack)
        row["gpu_s"] = timed(lambda: twin(device, **kwargs), repeats, sync)
        row["gpu_copy_s"] = timed(lambda: _host(twin(cupy.asarray(stack), **kwargs)), repeats, sync)
        row["speedup"] = row["cpu_s"] / row["gpu_s"]
    return row


def bench_functions(size: int, repeats: int, cupy: Any) -> list[dict[str, Any]]:
    """Time each function on the CPU and, with a GPU, its twin; return one row per function."""
    from napari_openhcs.functions.registry import twins

    rows = []
    for name, kwargs, stack in function_cases(size):
        impl = twins(name)
        args = ", ".join(f"{k}={v}" for k, v in kwargs.items() if np.isscalar(v))
        row: dict[str, Any] = {"function": f"{name}({args})", "input": "x".join(map(str, stack.shape))}
        row.update(bench_function(impl["numpy"].func, impl["cupy"].func, stack, kwargs, repeats, cupy))
        rows.append(row)
    return rows


def _host(value: Any) -> Any:
    from napari_openhcs.functions._xp import to_host

    return to_host(value)


# --------------------------------------------------------------------------- the plate
def plate_root(spec: str, data_dir: Path) -> Path:
    """The cached synthetic plate ``spec`` (shared with ``benchmarks/run.py``), generated once."""
    from napari_openhcs.testing import make_synthetic_plate

    target = data_dir / "plates" / f"{spec}-seed0"
    marker = target / ".complete.json"
    if marker.is_file():
        return target / json.loads(marker.read_text())["root"]
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    root = Path(make_synthetic_plate(target / "plate", spec=spec, seed=0))
    marker.write_text(json.dumps({"spec": spec, "seed": 0, "root": root.relative_to(target).as_posix()}))
    return root


def run_pipeline(root: Path, out: Path, workers: int, use_gpu: str) -> dict[str, Any]:
    """Run the stitching pipeline on ``root``; return wall seconds and what ran where."""
    from napari_openhcs import GlobalPipelineConfig, PipelineOrchestrator
    from napari_openhcs.pipelines import stitching_pipeline

    steps = stitching_pipeline()
    config = GlobalPipelineConfig(num_workers=workers, output_dir=out, use_gpu=use_gpu)  # type: ignore[arg-type]
    orch = PipelineOrchestrator(root, global_config=config).initialize()
    compiled = orch.compile_pipelines(steps)
    t0 = time.perf_counter()
    results = orch.execute_compiled_plate(steps, compiled, max_workers=workers)
    wall = time.perf_counter() - t0
    failed = {w: r.error for w, r in results.items() if not r.ok}
    if failed:
        raise RuntimeError(f"pipeline failed on {failed}")
    devices = sorted({c.device for c in compiled.values()})
    notes = sorted({n for r in results.values() for n in r.notes})
    return {"wall_s": wall, "devices": devices, "notes": notes, "output": orch.output_path}


def _io_well(task: tuple[Any, Path, str, list[tuple[tuple[int, ...], str]], list[Any]]) -> None:
    """Read one well's images and write an output of the given field shapes (worker process)."""
    from napari_openhcs.core.raw_images import read_well
    from napari_openhcs.io import HCSPlateWriter

    inputs, plate_path, well, shapes, channels = task
    raw = np.concatenate([a.ravel() for a in read_well(inputs).images.values()])
    fields = []
    for shape, dtype in shapes:
        data = np.resize(raw, int(np.prod(shape))).reshape(shape)  # the raw pixels, repeated as needed
        fields.append((data / 65535.0).astype(dtype) if np.dtype(dtype).kind == "f" else data.astype(dtype))
    writer = HCSPlateWriter(plate_path, plate_name="floor", rows=8, columns=12)
    writer.write_well(well, fields, channels=channels, pixel_size_um=None)


def io_floor(root: Path, reference: Path, out: Path, workers: int) -> float:
    """Wall seconds to read every input image and write outputs shaped like ``reference``'s."""
    from napari_openhcs.core.compiler import well_input
    from napari_openhcs.io import HCSPlateWriter, open_output_plate
    from napari_openhcs.microscopes.detect import open_plate

    plate = open_plate(root)
    ref = open_output_plate(reference)
    channels = ref.channels
    tasks = []
    for well in ref.wells:
        shapes = [(tuple(f.shape), str(f.dtype)) for f in ref.fields(well)]
        tasks.append((well_input(plate, well), out, well, shapes, channels))
    HCSPlateWriter(out, plate_name="floor", rows=8, columns=12).create()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_io_well, tasks[:1]))  # start the workers outside the timing
        t0 = time.perf_counter()
        list(pool.map(_io_well, tasks))
        return time.perf_counter() - t0


def bench_plate(spec: str, workers: int, data_dir: Path, cupy: Any) -> dict[str, Any]:
    """Floor, CPU pipeline and (with a GPU) GPU pipeline on the synthetic plate ``spec``."""
    root = plate_root(spec, data_dir)
    scratch = Path(tempfile.mkdtemp(prefix="bench-gpu-", dir=data_dir))
    try:
        cpu = run_pipeline(root, scratch / "cpu", workers, "never")
        floor = io_floor(root, cpu["output"], scratch / "floor.ome.zarr", workers)
        out: dict[str, Any] = {"plate": spec, "workers": workers, "floor_s": floor, "cpu_s": cpu["wall_s"]}
        if cupy is not None:
            gpu = run_pipeline(root, scratch / "gpu", workers, "auto")
            out.update(gpu_s=gpu["wall_s"], gpu_devices=gpu["devices"], gpu_notes=gpu["notes"])
        return out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- report
def _fmt(seconds: float | None) -> str:
    return f"{'-':>9s}" if seconds is None else f"{seconds * 1000:9.1f}"


def print_functions(rows: list[dict[str, Any]], size: int, gpu: bool) -> None:
    print(f"\nper-function times on {size}x{size} uint16 images (ms, median)")
    print(f"{'function':48s} {'input':>14s} {'CPU':>9s} {'GPU':>9s} {'GPU+copy':>9s} {'speed-up':>9s}")
    for r in rows:
        speed = f"{r['speedup']:8.1f}x" if gpu else "-"
        print(f"{r['function'][:48]:48s} {r['input']:>14s} {_fmt(r['cpu_s'])} {_fmt(r.get('gpu_s'))} "
              f"{_fmt(r.get('gpu_copy_s'))} {speed:>9s}")
    if not gpu:
        print(NO_GPU)


def print_plate(p: dict[str, Any]) -> None:
    print(f"\nstitching pipeline on the '{p['plate']}' synthetic plate, {p['workers']} workers (s)")
    floor = p["floor_s"]
    print(f"{'I/O floor (read input, write output)':44s} {floor:8.2f}")
    print(f"{'CPU pipeline':44s} {p['cpu_s']:8.2f}   {p['cpu_s'] / floor:5.1f}x floor")
    if "gpu_s" in p:
        print(f"{'GPU pipeline ' + ','.join(p['gpu_devices']):44s} {p['gpu_s']:8.2f}   "
              f"{p['gpu_s'] / floor:5.1f}x floor (target <= {TARGET_FLOOR_RATIO}x), "
              f"{p['cpu_s'] / p['gpu_s']:5.1f}x faster than CPU (target >= {TARGET_SPEEDUP:g}x)")
        for note in p.get("gpu_notes", []):
            print(f"  note: {note}")
    else:
        print(f"{'GPU pipeline':44s} {'-':>8s}   {NO_GPU}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side for the per-function table")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plate", default="large", help="synthetic plate preset (tiny, small, large, xl)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--skip-plate", action="store_true", help="only the per-function table")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)
    cupy = find_cupy()
    print(f"GPU: {cupy.cuda.runtime.getDeviceProperties(0)['name'].decode() if cupy else NO_GPU}")
    report: dict[str, Any] = {"gpu": cupy is not None, "size": args.size}
    report["functions"] = bench_functions(args.size, args.repeats, cupy)
    print_functions(report["functions"], args.size, cupy is not None)
    if not args.skip_plate:
        args.data_dir.mkdir(parents=True, exist_ok=True)
        report["plate"] = bench_plate(args.plate, args.workers, args.data_dir, cupy)
        print_plate(report["plate"])
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
