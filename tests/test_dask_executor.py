"""Running a plate on a Dask cluster: same output as the local pool, events, cancel, worker loss."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine_steps import max_project, normalize, shift_by_offsets, site_offsets
from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.core.events import StepFinished, WellFailed, WellFinished, WellStarted
from napari_openhcs.testing import make_synthetic_plate
from napari_openhcs.testing.faults import hang, kill_worker_always, kill_worker_once, slow_identity

distributed = pytest.importorskip("distributed")

from napari_openhcs.core.workers.dask_cluster import DaskClusterError, DaskExecutor  # noqa: E402
from napari_openhcs.core.workers.dask_task import (  # noqa: E402
    ALREADY_WRITTEN_NOTE,
    completed_result,
    on_worker_gpu,
    run_well_task,
)

WELLS = ("A01", "A02", "B01", "B02")


@pytest.fixture(scope="module")
def plate(tmp_path_factory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="tiny", seed=3, wells=WELLS)


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster (2 single-threaded worker processes) shared by the module."""
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cl = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=":0")
    yield cl
    cl.close()


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


def seed_steps() -> list[FunctionStep]:
    return [
        FunctionStep(func=(normalize, {"low": 1.0, "high": 99.0}), name="normalize",
                     variable_components=[VariableComponents.SITE]),
        FunctionStep(func=max_project, name="max z", variable_components=[VariableComponents.Z_INDEX]),
        FunctionStep(func=[site_offsets, shift_by_offsets], name="offsets",
                     variable_components=[VariableComponents.SITE]),
    ]


def orchestrator(plate: Path, out: Path) -> PipelineOrchestrator:
    return PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(output_dir=out)).initialize()


def run(plate: Path, out: Path, steps: list[FunctionStep], using, events: list | None = None,
        **config) -> tuple[PipelineOrchestrator, dict]:
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
        num_workers=2, output_dir=out, **config)).initialize()
    results = orch.execute_compiled_plate(steps, orch.compile_pipelines(steps), max_workers=2,
                                          progress_callback=None if events is None else events.append,
                                          executor=using)
    return orch, results


@pytest.fixture(scope="module")
def reference(plate: Path, tmp_path_factory) -> Path:
    """The seed pipeline's output from the local process pool."""
    orch, results = run(plate, tmp_path_factory.mktemp("ref"), seed_steps(), "processes")
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    return orch.output_dir


def create_output_plate(contexts) -> None:
    """What a plate run does before its executor runs (for tests that call ``run`` directly)."""
    from napari_openhcs.io import HCSPlateWriter

    out = next(iter(contexts)).output
    out.output_dir.mkdir(parents=True, exist_ok=True)
    HCSPlateWriter(out.plate_path, plate_name=out.plate_name, rows=out.rows, columns=out.columns).create()


def assert_same_output(a_dir: Path, b_dir: Path) -> None:
    """Every field array of every well and every table is identical."""
    from napari_openhcs.io import open_output_plate

    (a_plate,) = a_dir.glob("*.ome.zarr")
    (b_plate,) = b_dir.glob("*.ome.zarr")
    a, b = open_output_plate(a_plate), open_output_plate(b_plate)
    assert list(a.wells) == list(b.wells) and len(set(b.wells)) == len(b.wells)
    for well in a.wells:
        fa, fb = a.fields(well), b.fields(well)
        assert len(fa) == len(fb)
        for x, y in zip(fa, fb):
            x, y = np.asarray(x), np.asarray(y)
            assert x.dtype == y.dtype
            np.testing.assert_array_equal(x, y)
    tables_a = sorted(p.relative_to(a_dir) for p in (a_dir / "tables").rglob("*.csv"))
    tables_b = sorted(p.relative_to(b_dir) for p in (b_dir / "tables").rglob("*.csv"))
    assert tables_a == tables_b and tables_a
    for rel in tables_a:
        assert (a_dir / rel).read_text() == (b_dir / rel).read_text(), rel
    assert not [p for p in b_plate.rglob("*") if p.name.startswith((".tmp-", ".trash-"))]


def test_dask_run_is_pixel_identical_to_the_process_pool(plate, reference, client, tmp_path) -> None:
    events: list = []
    orch, results = run(plate, tmp_path / "dask", seed_steps(), DaskExecutor(client=client), events)
    assert set(results) == set(WELLS)
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    assert_same_output(reference, orch.output_dir)
    for well in WELLS:  # each well's events arrive, in order
        kinds = [type(e) for e in events if getattr(e, "well", None) == well]
        assert kinds == [WellStarted, StepFinished, StepFinished, StepFinished, WellFinished], (well, kinds)
    steps = [e.step_name for e in events if isinstance(e, StepFinished) and e.well == "A01"]
    assert steps == ["normalize", "max z", "offsets"]


def test_executor_dask_by_name_starts_and_closes_a_local_cluster(plate, reference, tmp_path) -> None:
    import psutil

    before = {p.pid for p in psutil.Process().children(recursive=True)}
    orch, results = run(plate, tmp_path / "local", seed_steps(), None, executor="dask")
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    assert_same_output(reference, orch.output_dir)
    deadline = time.monotonic() + 10
    while True:
        left = {p.pid for p in psutil.Process().children(recursive=True)} - before
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"worker processes of the run's LocalCluster are still alive: {left}"


def test_scheduler_address_from_the_config_is_used(plate, client, cluster, tmp_path) -> None:
    topics_before = set(client.get_events())
    _, results = run(plate, tmp_path / "addr", seed_steps(), None, executor="dask",
                     dask_scheduler=cluster.scheduler_address)
    assert all(r.status == "done" for r in results.values())
    new = {t for t in client.get_events() if t.startswith("napari-openhcs-")} - topics_before
    assert len(new) == 1, "the run's progress events did not go through the configured scheduler"


def test_unreachable_scheduler_is_a_clear_error(plate, tmp_path) -> None:
    orch = orchestrator(plate, tmp_path)
    steps = [FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
    executor = DaskExecutor(scheduler_address="tcp://127.0.0.1:9", connect_timeout=1)
    with pytest.raises(DaskClusterError, match="127.0.0.1:9"):
        orch.execute_compiled_plate(steps, orch.compile_pipelines(steps), executor=executor)


def test_cancel_stops_running_wells_and_drops_queued_ones(plate, client, tmp_path) -> None:
    steps = [FunctionStep(func=(slow_identity, {"seconds": 0.05}), name=f"slow {i}",
                          variable_components=[VariableComponents.Z_INDEX]) for i in range(3)]
    cancel = threading.Event()
    events: list = []

    def on_event(ev) -> None:
        events.append(ev)
        if isinstance(ev, StepFinished):
            cancel.set()

    orch = orchestrator(plate, tmp_path)
    results = orch.execute_compiled_plate(steps, orch.compile_pipelines(steps), progress_callback=on_event,
                                          cancel_event=cancel, executor=DaskExecutor(client=client))
    assert set(results) == set(WELLS)
    assert all(r.status == "cancelled" for r in results.values()), {w: r.status for w, r in results.items()}
    started = {e.well for e in events if isinstance(e, WellStarted)}
    assert started and len(started) < len(WELLS)  # queued wells never started
    assert all(results[w].error == "cancelled before it started" for w in set(WELLS) - started)
    from napari_openhcs.io import open_output_plate

    assert list(open_output_plate(orch.output_path).wells) == []
    assert not [p for p in orch.output_path.rglob("*") if p.name.startswith(".tmp-")]
    # a rerun completes every well
    orch2 = orchestrator(plate, tmp_path)
    results2 = orch2.execute_compiled_plate(steps, orch2.compile_pipelines(steps),
                                            executor=DaskExecutor(client=client))
    assert all(r.status == "done" for r in results2.values())


def test_killed_worker_costs_nothing_and_duplicates_nothing(plate, reference, client, tmp_path) -> None:
    marker = tmp_path / "killed-once"
    steps = [FunctionStep(func=(kill_worker_once, {"marker": str(marker)}), name="kill once",
                          variable_components=[VariableComponents.Z_INDEX]), *seed_steps()]
    events: list = []
    orch, results = run(plate, tmp_path / "out", steps, DaskExecutor(client=client), events)
    assert marker.exists(), "no worker was killed"
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    assert_same_output(reference, orch.output_dir)
    retried = [w for w, r in results.items() if any("ran 2 times" in n for n in r.notes)]
    assert len(retried) == 1
    finished = [e.well for e in events if isinstance(e, WellFinished)]
    assert sorted(finished) == sorted(WELLS)  # one finish event per well
    client.wait_for_workers(2, timeout=30)


def test_well_that_kills_every_worker_fails_and_others_complete(plate, client, tmp_path) -> None:
    orch = orchestrator(plate, tmp_path)
    steps = [FunctionStep(func={"1": kill_worker_always}, name="kill", group_by=VariableComponents.CHANNEL,
                          variable_components=[VariableComponents.Z_INDEX]),
             FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
    bad = orch.compile_pipelines(steps, well_filter=["A01"])
    good = orch.compile_pipelines(steps[1:], well_filter=["A02"])
    events: list = []
    create_output_plate(bad.values())
    executor = DaskExecutor(client=client)
    results = executor.run([*bad.values(), *good.values()], max_workers=2, emit=events.append,
                           cancel_event=threading.Event())
    assert results["A01"].status == "failed"
    assert "worker died every time" in results["A01"].error and "2 attempts" in results["A01"].error
    assert results["A02"].status == "done"
    assert any(isinstance(e, WellFailed) and e.well == "A01" for e in events)
    client.wait_for_workers(2, timeout=30)


def test_well_past_its_timeout_is_abandoned_and_not_written(plate, client, tmp_path, monkeypatch) -> None:
    import napari_openhcs.core.workers.dask_cluster as dx

    monkeypatch.setattr(dx, "HANG_GRACE_S", 0.5)
    orch = PipelineOrchestrator(plate, global_config=GlobalPipelineConfig(
        output_dir=tmp_path, well_timeout_s=0.5)).initialize()
    steps = [FunctionStep(func=(hang, {"seconds": 2.0}), variable_components=[VariableComponents.SITE]),
             FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
    t0 = time.monotonic()
    results = orch.execute_compiled_plate(steps, orch.compile_pipelines(steps, well_filter=["A01"]),
                                          executor=DaskExecutor(client=client))
    assert time.monotonic() - t0 < 2.0, "the run waited for the hung step"
    assert results["A01"].status == "failed" and "timeout of 0.5 s" in results["A01"].error
    time.sleep(2.0)  # the abandoned task returns; it must not write the well
    from napari_openhcs.io import open_output_plate

    assert list(open_output_plate(orch.output_path).wells) == []
    assert not (orch.output_path / "A" / "01").exists()


def test_retried_well_already_on_disk_is_not_written_again(plate, client, tmp_path) -> None:
    steps = [FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
    orch, results = run(plate, tmp_path, steps, DaskExecutor(client=client))
    ctx = orch.compile_pipelines(steps, well_filter=["A01"])["A01"]
    folder = Path(results["A01"].outputs["image"].rsplit("/", 1)[0]) / "A" / "01"
    stamp = (folder.stat().st_ino, folder.stat().st_mtime_ns)
    again = client.submit(run_well_task, ctx, "unused-topic", "unused-cancel", pure=False).result()
    assert again.status == "done" and ALREADY_WRITTEN_NOTE in again.notes
    assert (folder.stat().st_ino, folder.stat().st_mtime_ns) == stamp
    other = dataclasses.replace(ctx, output=dataclasses.replace(ctx.output, pipeline_hash="different"))
    assert completed_result(other) is None


def test_workers_that_cannot_see_the_plate_are_refused(plate, client, tmp_path) -> None:
    orch = orchestrator(plate, tmp_path)
    steps = [FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
    ctx = orch.compile_pipelines(steps)["A01"]
    moved = dataclasses.replace(ctx, inputs=dataclasses.replace(ctx.inputs, root=tmp_path / "not-mounted"))
    with pytest.raises(DaskClusterError, match="not-mounted"):
        DaskExecutor(client=client).run([moved], max_workers=1, emit=lambda e: None,
                                        cancel_event=threading.Event())


def test_workers_with_too_little_memory_are_reported(plate, client, tmp_path, caplog) -> None:
    """A well estimated above the workers' memory limit is warned about before it runs."""
    orch = orchestrator(plate, tmp_path)
    steps = [FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
    compiled = orch.compile_pipelines(steps, well_filter=["A01", "A02"])
    limits = [w["memory_limit"] for w in client.scheduler_info()["workers"].values()]
    assert len(limits) == 2 and min(limits) > 0
    create_output_plate(compiled.values())
    for peak, expected in ((max(limits) + 2**20, True), (min(limits) // 2, False)):
        contexts = [dataclasses.replace(c, estimated_peak_bytes=peak) for c in compiled.values()]
        caplog.clear()
        with caplog.at_level("WARNING", logger="napari_openhcs.core.workers.dask_cluster"):
            results = DaskExecutor(client=client).run(contexts, max_workers=2, emit=lambda e: None,
                                                      cancel_event=threading.Event())
        assert all(r.status == "done" for r in results.values())  # a warning, not a refusal
        warned = [r.getMessage() for r in caplog.records if "memory limit" in r.getMessage()]
        assert bool(warned) == expected, warned
        if expected:
            assert warned[0].startswith("2 of 2 Dask workers") and f"{peak / 2**20:.0f} MiB" in warned[0]


def test_gpu_wells_only_go_to_gpu_workers(plate, client, cluster, tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    dask_cli = Path(sys.executable).with_name("dask")
    proc = subprocess.Popen([str(dask_cli), "worker", cluster.scheduler_address, "--nthreads", "1",
                             "--resources", "GPU=1", "--name", "gpu-worker", "--no-dashboard"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client.wait_for_workers(3, timeout=60)
        gpu_addr = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "gpu-worker")
        orch = orchestrator(plate, tmp_path)
        steps = [FunctionStep(func=(slow_identity, {"seconds": 0.1}),
                              variable_components=[VariableComponents.Z_INDEX]),
                 FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
        gpu_wells = {"A01", "B02"}
        contexts = [dataclasses.replace(c, device="cuda:3") if w in gpu_wells else c
                    for w, c in orch.compile_pipelines(steps).items()]
        create_output_plate(contexts)
        with distributed.get_task_stream(client=client) as stream:
            results = DaskExecutor(client=client).run(contexts, max_workers=3, emit=lambda e: None,
                                                      cancel_event=threading.Event())
        assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
        ran_on = {rec["key"].split("-")[1]: rec["worker"] for rec in stream.data
                  if str(rec["key"]).startswith("well-")}
        assert {w for w in gpu_wells} <= set(ran_on)
        assert all(ran_on[w] == gpu_addr for w in gpu_wells), ran_on
    finally:
        client.retire_workers([a for a, w in client.scheduler_info()["workers"].items()
                               if w["name"] == "gpu-worker"], close_workers=True)
        proc.terminate()
        proc.wait(timeout=30)


def test_gpu_context_runs_on_the_worker_gpu(plate, tmp_path) -> None:
    orch = orchestrator(plate, tmp_path)
    steps = [FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])]
    ctx = orch.compile_pipelines(steps)["A01"]
    gpu = dataclasses.replace(ctx, device="cuda:2",
                              steps=tuple(dataclasses.replace(s, device="cuda:2") for s in ctx.steps))
    moved = on_worker_gpu(gpu)
    assert moved.device == "cuda:0" and all(s.device == "cuda:0" for s in moved.steps)
    assert on_worker_gpu(ctx) is ctx


def test_importing_the_engine_or_the_executor_module_does_not_import_dask() -> None:
    code = ("import sys, napari_openhcs; from napari_openhcs import PipelineOrchestrator;"
            "import napari_openhcs.core.plate_run, napari_openhcs.core.workers.local, "
            "napari_openhcs.core.workers.dask_cluster, napari_openhcs.cli;"
            "bad=[m for m in sys.modules if m.split('.')[0] in ('dask','distributed')];"
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
