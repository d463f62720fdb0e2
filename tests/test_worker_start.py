"""How worker processes start: a fork server with the engine imported, or spawn."""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine_steps import max_project, require_env
from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.core.workers import start as worker_start
from napari_openhcs.testing import make_synthetic_plate

HAS_FORKSERVER = "forkserver" in mp.get_all_start_methods()


@pytest.fixture(scope="module")
def tiny_plate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="tiny", seed=3)


def test_default_start_method_and_override(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv(worker_start.START_METHOD_ENV, raising=False)
    assert worker_start.start_method() == ("forkserver" if HAS_FORKSERVER else "spawn")
    monkeypatch.setenv(worker_start.START_METHOD_ENV, "spawn")
    assert worker_start.start_method() == "spawn"
    assert worker_start.worker_context().get_start_method() == "spawn"
    monkeypatch.setenv(worker_start.START_METHOD_ENV, "fork")  # not offered: copies the caller's threads
    with caplog.at_level(logging.WARNING, logger=worker_start.__name__):
        assert worker_start.start_method() == ("forkserver" if HAS_FORKSERVER else "spawn")
    assert "not usable" in caplog.text


def test_background_imports_import_and_leave_failures_to_the_import_that_needs_them() -> None:
    sys.modules.pop("colorsys", None)
    thread = worker_start.import_in_background(("napari_openhcs_no_such_module", "colorsys"))
    thread.join(10)
    assert not thread.is_alive() and "colorsys" in sys.modules
    assert "numcodecs.blosc" in worker_start.BACKGROUND_IMPORTS and "zarr" not in worker_start.PRELOAD


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_see_the_environment_of_the_run_not_of_the_server(
    tiny_plate: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    if method not in mp.get_all_start_methods():
        pytest.skip(f"{method} is not available on this platform; the other start method is tested")
    monkeypatch.setenv(worker_start.START_METHOD_ENV, method)
    orch = PipelineOrchestrator(
        tiny_plate, global_config=GlobalPipelineConfig(num_workers=2, output_dir=tmp_path / "out")
    ).initialize()  # starts the fork server (if any) before the variable below exists
    monkeypatch.setenv("NAPARI_OPENHCS_TEST_RUN_VARIABLE", "1")
    steps = [
        FunctionStep(
            func=(require_env, {"name": "NAPARI_OPENHCS_TEST_RUN_VARIABLE"}),
            name="needs the variable",
            variable_components=[VariableComponents.SITE],
        ),
        FunctionStep(func=max_project, name="max z", variable_components=[VariableComponents.Z_INDEX]),
    ]
    results = orch.execute_compiled_plate(steps, orch.compile_pipelines(steps), max_workers=2)
    assert {r.status for r in results.values()} == {"done"}, {w: r.error for w, r in results.items()}

    monkeypatch.delenv("NAPARI_OPENHCS_TEST_RUN_VARIABLE")
    again = PipelineOrchestrator(
        tiny_plate,
        global_config=GlobalPipelineConfig(num_workers=2, output_dir=tmp_path / "again"),
    ).initialize()
    failed = again.execute_compiled_plate(steps, again.compile_pipelines(steps), max_workers=2)
    assert all(r.status == "failed" and "is not set in the worker" in (r.error or "")
               for r in failed.values())


_ON_HEAP = """
import sys
import numpy as np
from napari_openhcs.core.workers.process import keep_arrays_on_the_heap
if sys.argv[1] == "fix":
    keep_arrays_on_the_heap()
heap = []
for line in open("/proc/self/maps"):
    if line.rstrip().endswith("[heap]"):
        heap.append([int(x, 16) for x in line.split()[0].split("-")])
a = np.ones(1 << 20)  # 8 MiB: from the heap (reused when freed) or mapped anew
print(any(lo <= a.ctypes.data < hi for lo, hi in heap))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc thresholds (Linux)")
def test_worker_undoes_a_small_malloc_trim_threshold_from_the_environment() -> None:
    """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536: arrays are mapped anew each time."""
    env = dict(os.environ, MALLOC_TRIM_THRESHOLD_="65536")

    def on_heap(mode: str) -> str:
        done = subprocess.run([sys.executable, "-c", _ON_HEAP, mode], env=env, capture_output=True, text=True,
                              check=True)
        return done.stdout.strip()

    assert on_heap("as-started") == "False"  # the fixed 128 KiB mmap threshold maps it
    assert on_heap("fix") == "True"


_UNGUARDED = """
import sys
from engine_steps import max_project
from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents

steps = [FunctionStep(func=max_project, name="max z", variable_components=[VariableComponents.Z_INDEX])]
config = GlobalPipelineConfig(output_dir=sys.argv[2])
orch = PipelineOrchestrator(sys.argv[1], global_config=config).initialize()
results = orch.execute_compiled_plate(steps, orch.compile_pipelines(steps), max_workers=1)
print("RESULT", next(iter(results.values())).error)
"""


def test_a_script_without_the_main_guard_gets_a_clear_reason(tiny_plate: Path, tmp_path: Path) -> None:
    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    done = subprocess.run([sys.executable, str(script), str(tiny_plate), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    reason = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert reason, done.stdout[-2000:] + done.stderr[-2000:]
    assert "could not start" in reason[0] and 'if __name__ == "__main__":' in reason[0], reason[0]


_GUARDED = """
import json
import sys
from multiprocessing import forkserver
from engine_steps import max_project
from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents

if __name__ == "__main__":
    steps = [FunctionStep(func=max_project, name="max z", variable_components=[VariableComponents.Z_INDEX])]
    orch = PipelineOrchestrator(sys.argv[1], global_config=GlobalPipelineConfig(output_dir=sys.argv[2]))
    results = orch.initialize().run(steps, max_workers=1)
    print("DONE", json.dumps({"statuses": sorted({r.status for r in results.values()}),
                              "server": forkserver._forkserver._forkserver_pid,
                              "hook_in_caller": "napari_openhcs.core.workers.server_exit" in sys.modules}))
"""


@pytest.mark.skipif(not HAS_FORKSERVER, reason="no fork server on this platform (workers are spawned)")
def test_the_fork_server_ends_with_the_caller(tiny_plate: Path, tmp_path: Path) -> None:
    """The server shares the caller's output streams: a reader of them gets EOF once the caller ends."""
    script = tmp_path / "guarded.py"
    script.write_text(_GUARDED, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), *sys.path]))
    env.pop(worker_start.START_METHOD_ENV, None)
    done = subprocess.run([sys.executable, str(script), str(tiny_plate), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)  # returns at EOF
    line = [ln for ln in done.stdout.splitlines() if ln.startswith("DONE")]
    assert done.returncode == 0 and line, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(line[0].split(" ", 1)[1])
    assert report["statuses"] == ["done"] and report["server"]
    assert report["hook_in_caller"] is False  # the quick exit is the server's alone
    import psutil

    try:  # it closed the streams when it exited; give the kernel a moment to finish ending it
        psutil.Process(report["server"]).wait(timeout=10)
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(report["server"]) or (
        psutil.Process(report["server"]).status() == psutil.STATUS_ZOMBIE)
