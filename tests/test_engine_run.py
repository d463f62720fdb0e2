"""The seed workflow end to end, failures, cancel and resume, and input safety."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from engine_steps import max_project, normalize, shift_by_offsets, site_offsets
from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
from napari_openhcs.core.events import StepFinished, WellFailed, WellFinished, WellStarted
from napari_openhcs.testing import make_synthetic_plate
from napari_openhcs.testing.faults import slow_identity


@pytest.fixture(scope="module")
def tiny_plate(tmp_path_factory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("plates"), spec="tiny", seed=1)


def seed_steps() -> list[FunctionStep]:
    return [
        FunctionStep(
            func=(normalize, {"low": 1.0, "high": 99.0}),
            name="normalize",
            variable_components=[VariableComponents.SITE],
        ),
        FunctionStep(func=max_project, name="max z", variable_components=[VariableComponents.Z_INDEX]),
        FunctionStep(
            func=[site_offsets, shift_by_offsets],
            name="offsets",
            variable_components=[VariableComponents.SITE],
        ),
    ]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def test_seed_workflow_two_workers(tiny_plate: Path, tmp_path: Path) -> None:
    before = snapshot(tiny_plate)
    out = tmp_path / "out"
    orchestrator = PipelineOrchestrator(
        tiny_plate, global_config=GlobalPipelineConfig(num_workers=2, output_dir=out)
    )
    orchestrator.initialize()
    steps = seed_steps()
    compiled = orchestrator.compile_pipelines(steps)
    events: list = []
    results = orchestrator.execute_compiled_plate(
        pipeline_definition=steps, compiled_contexts=compiled, max_workers=2, progress_callback=events.append
    )
    plate = orchestrator.plate
    assert set(results) == set(plate.wells)
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    assert {type(e) for e in events} >= {WellStarted, StepFinished, WellFinished}
    assert sum(isinstance(e, StepFinished) for e in events) == 3 * len(plate.wells)

    from napari_openhcs.io import open_output_plate

    output = open_output_plate(orchestrator.output_path)
    assert sorted(output.wells) == sorted(plate.wells)
    field = np.asarray(output.fields(plate.wells[0])[0])
    t, c, z, y, x = field.shape
    assert (c, z, (y, x)) == (len(plate.channels), 1, plate.image_shape)
    assert field.dtype == np.float32 and 0.0 <= field.min() and field.max() <= 1.0
    # recompute one field in plain numpy and compare
    w = plate.wells[0]
    recs = [r for r in plate.records_for(w) if r.channel == plate.channels[0].index]
    stack = np.stack([plate.read(r) for r in sorted(recs, key=lambda r: (r.z, r.site))])
    sites = sorted({r.site for r in recs})
    per_z = {}
    for zi in sorted({r.z for r in recs}):
        zrecs = sorted((r for r in recs if r.z == zi), key=lambda r: r.site)
        per_z[zi] = normalize(np.stack([plate.read(r) for r in zrecs]))
    expected = np.max(np.stack([per_z[zi][0] for zi in per_z]), axis=0)
    assert stack.shape[0] == len(sites) * len(per_z)
    np.testing.assert_allclose(field[0, 0, 0], expected, rtol=1e-6)
    # tables: one CSV per well plus the plate CSV
    tables = orchestrator.output_dir / "tables"
    assert (tables / "offsets" / f"{w}.csv").is_file()
    assert any(p.suffix == ".csv" for p in tables.iterdir())
    # provenance in the plate attributes
    attrs = json.loads((orchestrator.output_path / "zarr.json").read_text())["attributes"]
    prov = attrs["napari_openhcs"]
    assert prov["pipeline_hash"] and prov["input"]["name"] == plate.name and prov["versions"]["numpy"]
    assert snapshot(tiny_plate) == before, "the input plate was modified"


@pytest.mark.parametrize("level", [None, 0, 6])
def test_compression_level_reaches_the_written_chunks(
    tiny_plate: Path, tmp_path: Path, level: int | None
) -> None:
    config = GlobalPipelineConfig(num_workers=1, output_dir=tmp_path, executor="threads")
    if level is not None:
        config = config.replace(compression_level=level)
    orch = PipelineOrchestrator(tiny_plate, global_config=config)
    results = orch.run([FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])])
    assert all(r.status == "done" for r in results.values())
    arrays = sorted(orch.output_path.glob("*/*/*/0/zarr.json"))
    assert arrays
    for path in arrays:
        codecs = json.loads(path.read_text())["codecs"]
        blosc = [c["configuration"] for c in codecs if c["name"] == "blosc"]
        assert blosc and blosc[0]["cname"] == "zstd"
        assert blosc[0]["clevel"] == (1 if level is None else level)  # 1 (zstd level 1) by default
        assert blosc[0]["blocksize"] == 1 << 19


@pytest.mark.parametrize("level", [-1, 10])
def test_compression_level_out_of_range_is_rejected(level: int) -> None:
    with pytest.raises(ValueError, match="compression_level must be 0 to 9"):
        GlobalPipelineConfig(compression_level=level)


def test_output_validates_against_ngff_and_reads_with_ome_zarr(tiny_plate: Path, tmp_path: Path) -> None:
    """A stitched plate: every well on one canvas, so ome-zarr-py reads it as one Plate."""
    from napari_openhcs.pipelines import stitching_pipeline

    orch = PipelineOrchestrator(
        tiny_plate, global_config=GlobalPipelineConfig(num_workers=1, output_dir=tmp_path, executor="threads")
    )
    results = orch.run(stitching_pipeline())
    assert all(r.status == "done" for r in results.values()), {w: r.error for w, r in results.items()}
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    nodes = list(Reader(parse_url(str(orch.output_path)))())
    assert nodes, "ome-zarr-py found no node"
    assert any(isinstance(spec, Plate) for spec in nodes[0].specs), nodes[0].specs
    assert "plate" in nodes[0].metadata["metadata"]
    assert np.asarray(nodes[0].data[-1]).any()  # reads every well into one grid
    import zarr
    from ome_zarr_models.v05.hcs import HCS

    HCS.from_zarr(zarr.open_group(orch.output_path, mode="r"))


def test_failing_well_does_not_stop_the_others(tiny_plate: Path, tmp_path: Path) -> None:
    import shutil

    plate = tmp_path / "plate"
    shutil.copytree(tiny_plate, plate)
    bad = sorted(plate.rglob("ZStep_2/*_A01_s2_w2.TIF"))
    assert bad, "expected an A01 plane in ZStep_2"
    bad[0].write_bytes(bad[0].read_bytes()[:300])  # a plane truncated after its header
    orch = PipelineOrchestrator(
        plate, global_config=GlobalPipelineConfig(num_workers=2, output_dir=tmp_path / "o")
    )
    events: list = []
    results = orch.run(
        [FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX])],
        progress_callback=events.append,
    )
    assert results["A01"].status == "failed"
    assert bad[0].name in results["A01"].error
    others = [w for w in results if w != "A01"]
    assert others and all(results[w].status == "done" for w in others)
    assert any(isinstance(e, WellFailed) and e.well == "A01" for e in events)
    from napari_openhcs.io import open_output_plate

    assert sorted(open_output_plate(orch.output_path).wells) == sorted(others)


def test_cancel_leaves_no_partial_well_and_rerun_completes_the_rest(tiny_plate: Path, tmp_path: Path) -> None:
    cfg = GlobalPipelineConfig(num_workers=1, output_dir=tmp_path, executor="threads")
    steps = [
        FunctionStep(
            func=(slow_identity, {"seconds": 0.3}), variable_components=[VariableComponents.Z_INDEX]
        ),
        FunctionStep(func=max_project, variable_components=[VariableComponents.Z_INDEX]),
    ]
    orch = PipelineOrchestrator(tiny_plate, global_config=cfg).initialize()
    cancel = threading.Event()

    def on_event(ev) -> None:
        if isinstance(ev, WellFinished):
            cancel.set()

    results = orch.execute_compiled_plate(
        steps, orch.compile_pipelines(steps), progress_callback=on_event, cancel_event=cancel
    )
    done = {w for w, r in results.items() if r.status == "done"}
    assert len(done) == 1 and any(r.status == "cancelled" for r in results.values())
    from napari_openhcs.io import open_output_plate

    assert set(open_output_plate(orch.output_path).wells) == done
    leftovers = [p for p in orch.output_path.rglob("*") if ".tmp" in p.name]
    assert not leftovers
    orch2 = PipelineOrchestrator(tiny_plate, global_config=cfg).initialize()
    results2 = orch2.execute_compiled_plate(steps, orch2.compile_pipelines(steps))
    assert {w for w, r in results2.items() if r.status == "skipped"} == done
    assert {w for w, r in results2.items() if r.status == "done"} == set(results) - done
    assert set(open_output_plate(orch.output_path).wells) == set(results)


def test_processes_and_threads_give_identical_output(tiny_plate: Path, tmp_path: Path) -> None:
    steps = seed_steps()
    outs = []
    for name in ("processes", "threads"):
        orch = PipelineOrchestrator(
            tiny_plate,
            global_config=GlobalPipelineConfig(num_workers=2, output_dir=tmp_path / name, executor=name),
        )
        assert all(r.ok for r in orch.run(steps).values())
        outs.append(orch.output_path)
    from napari_openhcs.io import open_output_plate

    a, b = (open_output_plate(p) for p in outs)
    for well in a.wells:
        np.testing.assert_array_equal(np.asarray(a.fields(well)[0]), np.asarray(b.fields(well)[0]))


def test_engine_import_pulls_in_no_napari_or_qt() -> None:
    code = (
        "import sys, napari_openhcs; from napari_openhcs import PipelineOrchestrator, FunctionStep;"
        "import napari_openhcs.core.orchestrator, napari_openhcs.functions, napari_openhcs.io, "
        "napari_openhcs.microscopes.detect, napari_openhcs.cli;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('napari','qtpy','PyQt5','PyQt6','PySide6',"
        "'magicgui','cupy','torch','vispy')]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _core_import_graph() -> dict[str, set[str]]:
    """Every import between modules of ``napari_openhcs.core`` (lazy and type-only ones too)."""
    import ast

    import napari_openhcs.core as core

    root = Path(core.__file__).parent
    modules = {".".join(("core", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                if node.level and node.module:
                    base = [*base, *node.module.split(".")]
                for alias in node.names:
                    for candidate in (".".join([*base, alias.name]), ".".join(base)):
                        if candidate in modules and candidate != name:
                            targets.add(candidate)
                            break
        graph[name] = targets
    return graph


def test_engine_modules_import_each_other_in_one_direction() -> None:
    """No import cycle inside the engine's core (orchestrator -> plate run/preview, never back)."""
    graph = _core_import_graph()
    assert "core.plate_run" in graph["core.orchestrator"]
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own modules
            assert state.get(nxt) != 1, " -> ".join([*path, node, nxt])
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_steps_are_named_by_their_place_in_the_pipeline(tiny_plate: Path, tmp_path: Path) -> None:
    """Messages and step output folders count disabled steps, as the pipeline file does."""
    from napari_openhcs.testing.faults import raise_error

    steps = [
        FunctionStep(func=normalize, name="off", enabled=False),
        FunctionStep(func=normalize, name="norm", variable_components=[VariableComponents.SITE],
                     materialize=True),
        FunctionStep(func=max_project, name="max z", variable_components=[VariableComponents.Z_INDEX]),
        FunctionStep(func=(raise_error, {"message": "no"}), name="boom"),
    ]
    orch = PipelineOrchestrator(tiny_plate,
                                global_config=GlobalPipelineConfig(num_workers=1, output_dir=tmp_path / "o"))
    results = orch.run(steps, well_filter=["A01"])
    assert results["A01"].status == "failed"
    assert results["A01"].error.startswith("step 4 'boom' failed on well A01"), results["A01"].error
    assert [p.name for p in (tmp_path / "o" / "steps").iterdir()] == ["02_norm.ome.zarr"]
    plan = orch.last_compiled.contexts["A01"].describe()  # what `napari-openhcs validate` prints
    assert "\n  2. norm: " in plan and "\n  4. boom: " in plan and "off" not in plan
