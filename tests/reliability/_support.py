"""Shared pieces of the reliability suite: step functions, plate surgery, output checks.

The step functions are module-level, so they can be sent to spawned worker processes;
:func:`register_functions` registers them under ``reliability_*`` names for the tests
that save pipeline files (the CLI loads them by name).

A fault is aimed at one well by *marking* one of its tiles: the tile is overwritten
with the constant :data:`MARK` (same shape and dtype), and :func:`misbehave_if_marked`
misbehaves only on a stack that holds such a slice. Every other well goes through the
same pipeline as an uninterrupted run and must produce identical output.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.functions.registry import register
from napari_openhcs.testing import faults

#: Pixel value of a marked tile (a constant tile: never produced by the synthetic plate).
MARK = 4242

#: The ``tests`` folder (on ``sys.path`` of child processes that import this package).
TESTS_DIR = Path(__file__).resolve().parents[1]

#: Wells of the reliability plate (the "tiny" synthetic plate with a few more wells).
WELLS = ("A01", "A02", "B01", "B02")


# --------------------------------------------------------------------------- step functions
def _is_marked(stack: np.ndarray) -> bool:
    return bool(np.issubdtype(stack.dtype, np.integer)
                and any(bool((s == MARK).all()) for s in stack))


def misbehave_if_marked(stack: np.ndarray, *, fault: str = "none", seconds: float = 3600.0) -> np.ndarray:
    """Return ``stack`` unchanged, unless one of its slices is a marked tile: then misbehave.

    ``fault`` is one of ``none``, ``raise``, ``wrong_shape``, ``wrong_count``, ``nan``,
    ``inf``, ``strings``, ``complex``, ``hang``, ``kill_always``.
    """
    if fault == "none" or not _is_marked(stack):
        return stack
    if fault == "raise":
        return faults.raise_error(stack, message="deliberate failure on the marked tile")
    if fault == "wrong_shape":
        return faults.wrong_shape(stack)
    if fault == "wrong_count":
        return faults.wrong_count(stack)
    if fault == "nan":
        return faults.return_nan(stack)
    if fault == "inf":
        out = stack.astype(np.float32)
        out.flat[0] = np.inf
        return out
    if fault == "strings":
        return faults.return_strings(stack)
    if fault == "complex":
        return stack.astype(np.complex64)
    if fault == "hang":
        return faults.hang(stack, seconds=seconds)
    if fault == "kill_always":
        return faults.kill_worker_always(stack)
    raise ValueError(f"unknown fault {fault!r}")


def kill_once(stack: np.ndarray, *, marker: str) -> np.ndarray:
    """SIGKILL the worker the first time any well gets here (``marker``: a file path)."""
    return faults.kill_worker_once(stack, marker=marker)


def slow(stack: np.ndarray, *, seconds: float = 0.2) -> np.ndarray:
    """Return ``stack`` unchanged after ``seconds``."""
    return faults.slow_identity(stack, seconds=seconds)


def gate(stack: np.ndarray, *, path: str, timeout: float = 60.0) -> np.ndarray:
    """Return ``stack`` unchanged once the file ``path`` exists (a run can be held mid-way)."""
    deadline = time.monotonic() + timeout
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {path} was never opened")
        time.sleep(0.02)
    return stack


def max_z_with_stats(stack: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Maximum projection, plus a small per-group table (so tables are checked too)."""
    out = stack.max(axis=0, keepdims=True)
    return out, {"planes": np.array([stack.shape[0]]), "max": np.array([int(out.max())])}


max_z_with_stats.__openhcs_special_outputs__ = ("stats",)  # type: ignore[attr-defined]

#: Registered names of the step functions (pipeline files name them).
REGISTERED = {
    "reliability_misbehave_if_marked": misbehave_if_marked,
    "reliability_kill_once": kill_once,
    "reliability_slow": slow,
    "reliability_gate": gate,
    "reliability_max_z": max_z_with_stats,
}


def register_functions() -> None:
    """Register the step functions under their ``reliability_*`` names."""
    for name, func in REGISTERED.items():
        outputs = ("stats",) if func is max_z_with_stats else ()
        register(name=name, category="Testing", special_outputs=outputs)(func)


def unregister_functions() -> None:
    """Remove them from the registry again (other tests compare the registry with the docs)."""
    from napari_openhcs.functions.registry import _REGISTRY

    for name in REGISTERED:
        _REGISTRY.pop(name, None)


def pipeline(fault: str = "none", *, seconds: float = 3600.0, slow_s: float = 0.0,
             kill_marker: Path | None = None, gate_file: Path | None = None) -> list[FunctionStep]:
    """The reliability pipeline: an (optionally misbehaving) identity step, then a max over z.

    ``slow_s`` adds a sleep per group (for cancel/kill timing); ``kill_marker`` adds a
    step that kills the first worker to reach it (see :func:`kill_once`); ``gate_file``
    holds every well at the first step until that file exists (see :func:`gate`).
    """
    steps = [FunctionStep(func=(misbehave_if_marked, {"fault": fault, "seconds": seconds}),
                          name="check", variable_components=[VariableComponents.SITE])]
    if gate_file is not None:
        steps.insert(0, FunctionStep(func=(gate, {"path": str(gate_file)}), name="gate",
                                     variable_components=[VariableComponents.SITE]))
    if slow_s:
        steps.append(FunctionStep(func=(slow, {"seconds": slow_s}), name="slow",
                                  variable_components=[VariableComponents.SITE]))
    if kill_marker is not None:
        steps.append(FunctionStep(func=(kill_once, {"marker": str(kill_marker)}), name="kill once",
                                  variable_components=[VariableComponents.SITE]))
    steps.append(FunctionStep(func=max_z_with_stats, name="max z",
                              variable_components=[VariableComponents.Z_INDEX]))
    return steps


# --------------------------------------------------------------------------- plates
def copy_plate(plate: Path, dest: Path) -> Path:
    """Copy a pristine plate to ``dest`` (tests only ever corrupt copies)."""
    shutil.copytree(plate, dest)
    return dest


def tiles(plate: Path, well: str, *, site: int | None = None, wave: int | None = None) -> list[Path]:
    """Return the plane TIFFs of ``well`` (optionally one site/wave), projections excluded."""
    pattern = f"*_{well}_s{site if site is not None else '*'}_w{wave if wave is not None else '*'}.TIF"
    return sorted(p for p in plate.rglob(pattern) if "ZStep_0" not in p.parts)


def mark_tile(path: Path) -> Path:
    """Overwrite a tile with the constant :data:`MARK` (same shape and dtype)."""
    data = tifffile.imread(path)
    tifffile.imwrite(path, np.full_like(data, MARK))
    return path


def orchestrator(plate: Path, out: Path, **config: Any) -> PipelineOrchestrator:
    """Return an initialized orchestrator (threads, 2 workers unless told otherwise)."""
    settings: dict[str, Any] = {"num_workers": 2, "executor": "threads", "output_dir": out}
    settings.update(config)
    return PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(**settings)).initialize()


def run(plate: Path, out: Path, steps: list[FunctionStep] | None = None, **config: Any) -> dict[str, Any]:
    """Initialize, compile and run; return ``{well: WellResult}``."""
    orch = orchestrator(plate, out, **config)
    steps = steps if steps is not None else pipeline()
    return orch.execute_compiled_plate(steps, orch.compile_pipelines(steps))


def output_plate_path(out: Path) -> Path:
    """Return the single ``*.ome.zarr`` plate in an output folder."""
    plates = sorted(out.glob("*.ome.zarr"))
    assert len(plates) == 1, f"expected one output plate in {out}, found {plates}"
    return plates[0]


# --------------------------------------------------------------------------- output checks
@dataclass
class Snapshot:
    """What an output folder holds: per-well pyramids and per-well table rows."""

    images: dict[str, list[list[np.ndarray]]] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)


def snapshot(out: Path) -> Snapshot:
    """Read every listed well of the output plate (all fields, all levels) and its table."""
    from napari_openhcs.io import open_output_plate

    plate_path = output_plate_path(out)
    plate = open_output_plate(plate_path)
    snap = Snapshot()
    for well in plate.wells:
        snap.images[well] = [[np.asarray(level) for level in plate.levels(well, f)]
                             for f in range(len(plate.field_paths(well)))]
        table = out / "tables" / "stats" / f"{well}.csv"
        if table.is_file():
            snap.tables[well] = table.read_text()
    return snap


def lost_wells(out: Path, baseline: Snapshot, wells: Iterable[str]) -> list[str]:
    """Return the wells of ``wells`` whose output is missing or differs from ``baseline``."""
    snap = snapshot(out)
    lost = []
    for well in wells:
        got, want = snap.images.get(well), baseline.images[well]
        same = got is not None and len(got) == len(want) and all(
            len(g) == len(w) and all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(g, w))
            for g, w in zip(got, want))
        if not same or snap.tables.get(well) != baseline.tables.get(well):
            lost.append(well)
    return lost


def complete_wells_on_disk(out: Path) -> list[str]:
    """Return the wells present at their final path in the output plate (``A01``, ...)."""
    plate_path = output_plate_path(out)
    return sorted(p.parent.name + p.name for p in plate_path.glob("*/*")
                  if p.is_dir() and (p / "zarr.json").is_file() and not p.parent.name.startswith("."))


def check_plate_valid(out: Path, *, exact: bool = True) -> list[str]:
    """Validate the output plate; return the wells it lists.

    Checks: the plate ``zarr.json`` is valid JSON; the plate validates against the
    OME-NGFF 0.5 HCS schema (ome-zarr-models); every listed well is complete on disk
    and (``exact``) every complete well on disk is listed. A run killed with SIGKILL may
    leave a well renamed into place but not yet listed (``exact=False``): the next run
    lists it.
    """
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    plate_path = output_plate_path(out)
    doc = json.loads((plate_path / "zarr.json").read_text(encoding="utf-8"))
    listed = [w["path"] for w in doc["attributes"]["ome"]["plate"]["wells"]]
    HCS.from_zarr(zarr.open_group(str(plate_path), mode="r"))
    listed = sorted(p.replace("/", "") for p in listed)
    on_disk = complete_wells_on_disk(out)
    if exact:
        assert listed == on_disk, f"listed wells {listed} != complete wells on disk {on_disk}"
    else:
        assert set(listed) <= set(on_disk), f"listed wells {listed} are not all complete on disk {on_disk}"
    return listed


def leftovers(out: Path) -> list[str]:
    """Return temporary files/folders left in the output plate."""
    plate_path = output_plate_path(out)
    return sorted(p.name for p in plate_path.rglob("*") if p.name.startswith((".tmp-", ".trash-"))
                  or p.name.endswith(".partial"))


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate()`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- memory bombs
def huge_tiff(path: Path, width: int, height: int) -> Path:
    """Write a tiny TIFF whose header claims ``width`` x ``height`` uint16 pixels.

    Decoding it naively allocates ``2 * width * height`` bytes (18.6 GiB for 100000²).
    """
    entries = [(256, 4, width), (257, 4, height), (258, 3, 16), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, 128)]
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, kind, 1) + packed
    path.write_bytes(b"II*\x00" + struct.pack("<I", 8 + 128) + bytes(128) + ifd + struct.pack("<I", 0))
    return path


def run_isolated(cases: list[tuple[Path, Path]], *, memory_gib: float,
                 timeout_s: float) -> list[dict[str, Any]]:
    """Initialize, compile and run the reliability pipeline on each ``(plate, out)``, in one
    child process.

    The child's address space is limited to ``memory_gib`` and its run time to
    ``timeout_s``, so a memory or time bomb fails the test instead of the machine.
    Returns one ``{"error", "error_type", "incomplete", "results": {well: {"status",
    "error"}}}`` per case.
    """
    def limit() -> None:  # pragma: no cover - in the child
        size = int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])}
    args = [str(p) for case in cases for p in case]
    try:
        proc = subprocess.run([sys.executable, "-m", "reliability._isolated", *args],
                              capture_output=True, text=True, timeout=timeout_s, env=env, preexec_fn=limit)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"the runs did not finish within {timeout_s:g} s (a time bomb?)") from exc
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 0 and len(lines) == len(cases), (
        f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in lines]


# --------------------------------------------------------------------------- slow writes
#: Seconds each field write sleeps (set in the environment of a child process, so that
#: its spawned workers inherit it): makes "killed in the middle of a write" reproducible.
SLOW_WRITE_ENV = "NAPARI_OPENHCS_TEST_SLOW_WRITE_S"


def _install_slow_writes() -> None:
    delay = float(os.environ.get(SLOW_WRITE_ENV) or 0)
    if delay <= 0:
        return
    from napari_openhcs.io import _ngff

    real = _ngff.multiscales

    def slow_multiscales(*args: Any, **kwargs: Any) -> Any:
        time.sleep(delay)
        return real(*args, **kwargs)

    _ngff.multiscales = slow_multiscales  # type: ignore[assignment]


_install_slow_writes()
