"""384-well scale: scan, compile, plate map and lazy output browsing on a full plate.

One command (``python benchmarks/bench_scale.py``; ``--wells 8`` for a smoke test) that

1. generates, once, a synthetic ImageXpress plate of ``--wells`` wells of a 384-well
   plate × 3 × 3 sites × 4 channels × 5 z with 32 × 32 tiles (384 wells: 69,120 TIFFs),
   cached under ``--data-dir`` (default ``benchmarks/results/``, git-ignored);
2. times ``napari-openhcs info PLATE`` as a subprocess (target ≤ 3 s);
3. times ``PipelineOrchestrator(plate).initialize()`` and
   ``compile_pipelines(reference_pipeline())`` for every well (target ≤ 2 s compile);
4. in a napari child process (under ``xvfb-run -a`` when there is no display): opens
   a 1536-well plate (one tiny image per well) in the Plate map dock and times a full
   repaint of the 1536 wells (``grid.grab()``), by run status and by a measured value
   (target ≤ 50 ms);
5. times ``viewer.open(output_plate, plugin="napari-openhcs")`` in a fresh viewer on an
   output plate of every well (target ≤ 2 s; also its CPU time, all threads, and the
   layer data built alone without a viewer), written once by a one-step pipeline (max
   over z, per site and channel) on the same plate and cached.

Every figure is the median of ``--repeats`` runs (≥ 3 by default); the table lists
min and max too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cached_plate  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
DEFAULT_DATA_DIR = BENCH_DIR / "results"
#: Targets, in seconds.
TARGETS = {"info": 3.0, "compile": 2.0, "plate map repaint": 0.050, "open output": 2.0}


def scale_wells(n: int, plate_format: int = 384) -> tuple[str, ...]:
    """Return the first ``n`` wells of a plate, row by row (``A01, A02, ...``)."""
    from napari_openhcs.microscopes.plate import PLATE_FORMATS, well_name

    rows, cols = PLATE_FORMATS[plate_format]
    if not 1 <= n <= rows * cols:
        raise ValueError(f"--wells must be 1..{rows * cols}, not {n}")
    return tuple(well_name(r, c) for r in range(rows) for c in range(1, cols + 1))[:n]


def ensure_scale_plate(data_dir: Path, n_wells: int) -> tuple[Path, float]:
    """The raw plate: ``n_wells`` wells × 9 sites × 4 channels × 5 z, 32 × 32 tiles."""
    from napari_openhcs.testing import make_synthetic_plate

    def make(target: Path) -> Path:
        return make_synthetic_plate(
            target, plate_name="scale", plate_format=384, wells=scale_wells(n_wells), grid=(3, 3),
            tile_shape=(32, 32), channels=("DAPI", "FITC", "TRITC", "CY5"), z_planes=5, projections=False,
            nuclei_per_site=3, jitter_px=1)

    return cached_plate(data_dir / "scale" / f"raw-{n_wells}w", make)


def ensure_map_plate(data_dir: Path) -> tuple[Path, float]:
    """A 1536-well plate with one 16 × 16 image in every well (the plate map's largest layout)."""
    from napari_openhcs.testing import make_synthetic_plate

    def make(target: Path) -> Path:
        return make_synthetic_plate(
            target, plate_name="map1536", plate_format=1536, wells=scale_wells(1536, 1536), grid=(1, 1),
            tile_shape=(16, 16), channels=("DAPI",), z_planes=1, nuclei_per_site=1, jitter_px=0)

    return cached_plate(data_dir / "scale" / "map-1536w", make)


def ensure_output_plate(data_dir: Path, raw: Path, n_wells: int, workers: int) -> tuple[Path, float]:
    """The output plate of every well: max over z per site and channel (one step)."""
    from napari_openhcs import FunctionStep, GlobalPipelineConfig, PipelineOrchestrator, VariableComponents
    from napari_openhcs.functions.registry import get_function

    def make(target: Path) -> Path:
        step = FunctionStep(func=get_function("max_projection").func, name="max over z",
                            variable_components=[VariableComponents.Z_INDEX])
        orch = PipelineOrchestrator(raw, global_config=GlobalPipelineConfig(
            num_workers=workers, output_dir=target / "out"))
        results = orch.run([step])
        failed = {w: r.error for w, r in results.items() if r.status != "done"}
        if failed:
            raise RuntimeError(f"the output plate could not be written: {failed}")
        return orch.output_path

    return cached_plate(data_dir / "scale" / f"output-{n_wells}w", make)


def time_info(plate: Path, repeats: int) -> list[float]:
    """Wall time of ``napari-openhcs info PLATE`` as a fresh process, ``repeats`` times."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "napari_openhcs.cli", "info", str(plate)],
                              capture_output=True, text=True, timeout=300)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"info failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return times


def time_compile(plate: Path, repeats: int) -> dict[str, Any]:
    """Seconds of ``initialize()`` and of compiling the reference pipeline for every well."""
    from napari_openhcs import PipelineOrchestrator
    from napari_openhcs.pipelines import reference_pipeline

    init, comp, wells = [], [], 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        orch = PipelineOrchestrator(plate).initialize()
        t1 = time.perf_counter()
        compiled = orch.compile_pipelines(reference_pipeline())
        t2 = time.perf_counter()
        init.append(t1 - t0)
        comp.append(t2 - t1)
        wells = len(compiled)
    return {"initialize": init, "compile": comp, "wells": wells}


# ---------------------------------------------------------------------- napari child
def _napari_child(map_plate: Path, output_plate: Path, repeats: int) -> dict[str, Any]:
    """Measured inside a napari process: plate-map repaints and lazy opening of the output plate."""
    from qtpy.QtWidgets import QApplication

    import napari

    viewer = napari.Viewer(show=False)
    _, widget = viewer.window.add_plugin_dock_widget("napari-openhcs", "Plate map")
    widget.open_plate(str(map_plate))
    grid = widget.grid
    grid.setFixedSize(980, 660)  # cells of 19.6 px: a 1536-well map on a large dock
    model = grid.model
    n_wells = len(model.wells)
    app = QApplication.instance()
    app.processEvents()

    def repaints(n: int) -> list[float]:
        grid.grab()  # first paint (fonts, pixmap) outside the timing
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            grid.grab()
            out.append(time.perf_counter() - t0)
        return out

    status = repaints(max(repeats, 10))
    session = widget.session
    values = {w: float(i % 97) for i, w in enumerate(model.wells)}
    session.set_values("nuclei", values)
    model.mode = "value"
    widget._on_status()
    by_value = repaints(max(repeats, 10))
    size = [grid.width(), grid.height()]

    viewer.close()
    from napari_openhcs._napari._output_layers import output_plate_layers

    builds = []
    for _ in range(repeats):  # the layer data alone, no viewer: metadata read, graphs built
        t0 = time.perf_counter()
        output_plate_layers(output_plate)
        builds.append(time.perf_counter() - t0)
    opens, cpu, layer_counts, lazy = [], [], 0, True
    for _ in range(repeats):
        v = napari.Viewer(show=False)
        t0, c0 = time.perf_counter(), time.process_time()
        layers = v.open(str(output_plate), plugin="napari-openhcs")
        opens.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        layer_counts = len(layers)
        for layer in (ly for ly in layers if type(ly).__name__ in ("Image", "Labels")):
            data = layer.data if not layer.multiscale else layer.data[0]
            lazy &= type(data).__module__.split(".")[0] != "numpy"
        v.close()
    return {"map_wells": n_wells, "map_size": size, "repaint_status": status,
            "repaint_value": by_value, "build_output": builds, "open_output": opens, "open_output_cpu": cpu,
            "output_layers": layer_counts, "lazy": lazy}


def run_napari_child(map_plate: Path, output_plate: Path, repeats: int) -> dict[str, Any]:
    """Run :func:`_napari_child` in a fresh process, under ``xvfb-run -a`` when there is no display."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--napari-child", str(map_plate), str(output_plate),
           "--repeats", str(repeats)]
    if not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        cmd = ["xvfb-run", "-a", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the napari measurements failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# ---------------------------------------------------------------------- report
def _row(name: str, times: list[float], target: float | None, note: str = "") -> dict[str, Any]:
    med = statistics.median(times)
    return {"measure": name, "median_s": med, "min_s": min(times), "max_s": max(times), "n": len(times),
            "target_s": target, "met": None if target is None else med <= target, "note": note}


def _fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_table(rows: list[dict[str, Any]]) -> None:
    """Print the rows as a fixed-width table."""
    head = f"{'measure':<34}{'median':>11}{'min':>11}{'max':>11}{'n':>4}{'target':>11}  met  note"
    print(head)
    print("-" * len(head))
    for r in rows:
        target = _fmt(r["target_s"]) if r["target_s"] is not None else "-"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"{r['measure']:<34}{_fmt(r['median_s']):>11}{_fmt(r['min_s']):>11}{_fmt(r['max_s']):>11}"
              f"{r['n']:>4}{target:>11}  {met:<4} {r['note']}")


def main(argv: list[str] | None = None) -> int:
    """Run the 384-well scale benchmark and print its table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wells", type=int, default=384, help="wells of the raw plate (default 384)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure (median reported)")
    ap.add_argument("--workers", type=int, default=2, help="workers writing the output plate (once)")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="where plates are cached")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--no-napari", action="store_true", help="skip the plate map and output-plate figures")
    ap.add_argument("--napari-child", nargs=2, type=Path, metavar=("MAP_PLATE", "OUTPUT_PLATE"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.data_dir = args.data_dir.resolve()  # the plate makers return absolute paths
    if args.napari_child:
        print(json.dumps(_napari_child(*args.napari_child, args.repeats)), flush=True)
        return 0

    raw, gen_s = ensure_scale_plate(args.data_dir, args.wells)
    n_files = sum(1 for p in raw.rglob("*.TIF"))
    made = f"generated in {_fmt(gen_s)}" if gen_s else "cached"
    print(f"raw plate: {args.wells} wells, {n_files} TIFFs ({made}) at {raw}", flush=True)
    rows = [_row("info (subprocess)", time_info(raw, args.repeats), TARGETS["info"])]
    comp = time_compile(raw, args.repeats)
    rows.append(_row("initialize (scan the plate)", comp["initialize"], None))
    rows.append(_row(f"compile reference ({comp['wells']} wells)", comp["compile"], TARGETS["compile"]))
    extra: dict[str, Any] = {}
    if not args.no_napari:
        map_plate, _ = ensure_map_plate(args.data_dir)
        output, out_s = ensure_output_plate(args.data_dir, raw, args.wells, args.workers)
        if out_s:
            print(f"output plate written in {_fmt(out_s)} (max over z, {args.workers} workers)", flush=True)
        child = run_napari_child(map_plate, output, args.repeats)
        size = "×".join(map(str, child["map_size"]))
        rows.append(_row(f"plate map repaint, status ({child['map_wells']})", child["repaint_status"],
                         TARGETS["plate map repaint"], f"grid {size} px"))
        rows.append(_row(f"plate map repaint, value ({child['map_wells']})", child["repaint_value"],
                         TARGETS["plate map repaint"], f"grid {size} px"))
        lazy = "lazy" if child["lazy"] else "NOT lazy"
        rows.append(_row("output layers built (no viewer)", child["build_output"], None))
        rows.append(_row(f"open output plate ({args.wells} wells)", child["open_output"],
                         TARGETS["open output"], f"{child['output_layers']} layers, {lazy}"))
        rows.append(_row("open output plate, CPU (all threads)", child["open_output_cpu"], None))
        extra = {"output_layers": child["output_layers"], "lazy": child["lazy"]}
    print_table(rows)
    if args.json:
        report = {"wells": args.wells, "files": n_files, "rows": rows, **extra}
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
