"""Shared helpers of the benchmark harness: cached plates, memory sampling, accuracy, statistics."""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
#: Default folder of cached plates and run outputs (git-ignored: ``/benchmarks/results/``).
DEFAULT_DATA_DIR = BENCH_DIR / "results"
_DONE = ".complete.json"


def plate_path(data_dir: Path, spec: str, seed: int = 0) -> Path:
    """Return where the cached synthetic plate ``spec`` lives (it may not exist yet)."""
    return data_dir / "plates" / f"{spec}-seed{seed}"


def cached_plate(target: Path, make: Callable[[Path], Any]) -> tuple[Path, float]:
    """Run ``make(target)`` once (it writes a plate under ``target`` and returns its folder).

    Later calls find the plate from the marker written beside it, so an interrupted
    generation is redone rather than used half-written.

    Returns
    -------
    path, seconds
        The plate folder, and the seconds spent generating it (0 when cached).
    """
    marker = target / _DONE
    if marker.is_file():
        return target / json.loads(marker.read_text())["root"], 0.0
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    t0 = time.perf_counter()
    root = Path(make(target))
    seconds = time.perf_counter() - t0
    marker.write_text(json.dumps({"root": root.relative_to(target).as_posix(), "seconds": seconds}))
    return root, seconds


def ensure_plate(data_dir: Path, spec: str, seed: int = 0) -> tuple[Path, float]:
    """Generate the synthetic plate ``spec`` under ``data_dir`` once (see :func:`cached_plate`)."""
    from napari_openhcs.testing import make_synthetic_plate

    return cached_plate(plate_path(data_dir, spec, seed),
                        lambda target: make_synthetic_plate(target / "plate", spec=spec, seed=seed))


def image_files(root: Path) -> list[Path]:
    """Return every TIFF under a plate folder."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))


def warm_page_cache(root: Path) -> int:
    """Read every image file once so that all configurations start from a warm cache."""
    total = 0
    for path in image_files(root):
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 22):
                total += len(chunk)
    return total


def compile_bytecode() -> bool:
    """Write the bytecode of ``napari_openhcs`` (as installing a wheel does); outside the timing.

    An editable install run with ``PYTHONDONTWRITEBYTECODE=1`` (or from a read-only
    checkout) would otherwise compile the package's sources in every timed process
    (~0.1 s in the main process and again in the worker server), a cost no installed
    copy pays. Returns whether every module compiled.
    """
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("napari_openhcs")
    if spec is None or not spec.submodule_search_locations:
        return False
    return all(compileall.compile_dir(folder, quiet=1) for folder in spec.submodule_search_locations)


def fresh_output_dir(data_dir: Path, label: str) -> Path:
    """Return a new (not yet created) folder for one run's outputs."""
    runs = data_dir / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return runs / f"{label}-{os.getpid()}-{time.monotonic_ns()}"


@dataclass
class TreeMemory:
    """Peak resident memory of process trees, sampled in a background thread.

    ``peak_tree_bytes`` is the largest sum of RSS over the root processes and all
    their descendants seen at one sample; ``peak_by_pid`` the largest RSS of each
    process; ``cpu_by_pid`` the CPU seconds (user + system) each process had used at
    its last sample (this also covers workers that a fork server, not the root,
    waits for, which ``RUSAGE_CHILDREN`` misses).
    """

    root_pids: list[int]
    interval_s: float = 0.02
    peak_tree_bytes: int = 0
    peak_by_pid: dict[int, int] = field(default_factory=dict)
    cpu_by_pid: dict[int, float] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        import psutil

        roots = []
        for pid in self.root_pids:
            try:
                roots.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        known: dict[int, psutil.Process] = {p.pid: p for p in roots}
        while not self._stop.is_set():
            for root in roots:
                try:
                    for child in root.children(recursive=True):
                        known.setdefault(child.pid, child)
                except psutil.Error:
                    pass
            total = 0
            for pid, proc in list(known.items()):
                try:
                    rss = proc.memory_info().rss
                    times = proc.cpu_times()
                    self.cpu_by_pid[pid] = times.user + times.system
                except psutil.Error:
                    del known[pid]
                    continue
                total += rss
                if rss > self.peak_by_pid.get(pid, 0):
                    self.peak_by_pid[pid] = rss
            self.peak_tree_bytes = max(self.peak_tree_bytes, total)
            self.samples += 1
            self._stop.wait(self.interval_s)

    def peak_workers(self) -> int:
        """The largest peak RSS of any process that is not a root (0 when there were none)."""
        return max((v for pid, v in self.peak_by_pid.items() if pid not in self.root_pids), default=0)

    def peak_roots(self) -> int:
        """The largest peak RSS of a root process."""
        return max((self.peak_by_pid.get(pid, 0) for pid in self.root_pids), default=0)


def read_positions(output_dir: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """Read the per-well ``positions`` tables a run wrote: ``{well: {tile: (y, x)}}``."""
    folder = output_dir / "tables" / "positions"
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for path in sorted(folder.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                out.setdefault(row.get("well") or path.stem, {})[int(row["tile"])] = (
                    float(row["y"]),
                    float(row["x"]),
                )
    return out


def position_errors(
    measured: dict[str, dict[int, tuple[float, float]]], truth: dict[str, np.ndarray]
) -> dict[str, float]:
    """Compare measured tile origins with the ground truth (px).

    Only relative placement matters (a mosaic may be shifted as a whole), so each
    well's measured origins are compared after removing the mean offset between
    the two sets. Tile ``i`` is the ``i``-th site in site order.

    Returns
    -------
    dict
        ``max_px`` and ``mean_px`` of the Euclidean error over every tile of every
        well, and ``wells`` compared. ``nan`` when nothing could be compared.
    """
    errors: list[float] = []
    wells = 0
    for well, tiles in measured.items():
        gt = truth.get(well)
        if gt is None or not tiles:
            continue
        est = np.array([tiles[i] for i in sorted(tiles)], dtype=np.float64)
        ref = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
        if len(ref) != len(est):
            continue
        diff = est - ref
        diff -= diff.mean(axis=0)
        errors.extend(np.hypot(diff[:, 0], diff[:, 1]).tolist())
        wells += 1
    if not errors:
        return {"max_px": float("nan"), "mean_px": float("nan"), "wells": 0}
    return {"max_px": float(max(errors)), "mean_px": float(np.mean(errors)), "wells": wells}


def ground_truth_origins(plate_root: Path) -> dict[str, np.ndarray]:
    """Return ``{well: (n_sites, 2) array of true tile origins (y, x)}`` in site order.

    Reads this project's synthetic ground truth, or the ``ground_truth_params.json``
    written beside a plate made with OpenHCS's generator (see ``make_openhcs_plate.py``;
    its origins are ``(x, y)``). Empty when the plate has neither.
    """
    for folder in (plate_root, *list(Path(plate_root).parents)[:2]):
        params = Path(folder) / "ground_truth_params.json"
        if params.is_file():
            origins = json.loads(params.read_text(encoding="utf-8")).get("true_tile_origins_xy", {})
            return {w: np.asarray(xy, dtype=np.float64).reshape(-1, 2)[:, ::-1] for w, xy in origins.items()}
    from napari_openhcs.testing import load_ground_truth

    try:
        gt = load_ground_truth(plate_root)
    except (OSError, ValueError, KeyError):
        return {}
    out: dict[str, np.ndarray] = {}
    for well, info in gt["wells"].items():
        sites = sorted(info["sites"], key=lambda s: int(s["site"]))
        out[well] = np.array([s["true_origin"] for s in sites], dtype=np.float64).reshape(-1, 2)
    return out


def summarize(values: Sequence[float]) -> dict[str, float]:
    """Median, min and max of a sample (``nan`` when empty)."""
    vals = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not vals:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan"), "n": 0}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "n": len(vals)}


def mib(n: float) -> float:
    """Bytes to MiB."""
    return n / 2**20
