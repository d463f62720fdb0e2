"""OpenHCS 0.8.6 and the engine side by side on the same plate: wall time, ratio, peak memory, tile accuracy.

::

    python benchmarks/run.py --against-openhcs [--plate openhcs-large|openhcs-small|PATH]
                             [--repeats 3] [--workers 1,2] [--json out.json]

(or ``python benchmarks/against_openhcs.py`` with the same options). The plate is made
once by OpenHCS's own generator (``make_openhcs_plate.py``; ``openhcs-large``: wells
A01, A02, B01, B02, 3 × 3 tiles of 1024², 2 channels, 3 z; ``openhcs-small`` the same
with 256² tiles, for a quick look) and cached under ``benchmarks/results/openhcs-plates``;
OpenHCS runs in its own virtual environment (``_openhcs_venv.py``, made on first use).

Each repeat runs, for every worker count, OpenHCS's orchestrator on the workload
(``openhcs_run.py``: its own functions, its demo pipeline's steps) and the engine
(``engine.py``, ``stitching_pipeline()``), each in a fresh process, in an order rotated
from repeat to repeat. OpenHCS gets a fresh copy of the plate each run (hard links: it
writes ``openhcs_metadata.json`` into the plate folder); the engine reads the plate
itself. Wall time is the whole process (interpreter start to exit), memory the peak RSS
of its process tree (the process and its workers); the ratio is OpenHCS's wall over the
engine's within each repeat, then the median over repeats. Tile origins of both are
checked against the generator's ground truth.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DEFAULT_DATA_DIR,
    fresh_output_dir,
    ground_truth_origins,
    image_files,
    mib,
    position_errors,
    read_positions,
    summarize,
    warm_page_cache,
)
from _openhcs_venv import ensure_venv  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
#: The plates ``--plate`` names, as ``make_openhcs_plate.py`` options.
OPENHCS_PLATES = {
    "openhcs-large": ["--wells", "A01,A02,B01,B02", "--grid", "3x3", "--tile", "1024", "--z", "3",
                      "--channels", "2", "--cells", "400"],
    "openhcs-small": ["--wells", "A01,A02,B01,B02", "--grid", "3x3", "--tile", "256", "--z", "3",
                      "--channels", "2", "--cells", "80"],
}


def ensure_openhcs_plate(data_dir: Path, spec: str) -> tuple[Path, float]:
    """Make the plate ``spec`` with OpenHCS's generator once; return its folder and the seconds it took."""
    target = data_dir / "openhcs-plates" / spec
    plate = target / "openhcs_synthetic"
    marker = target / ".complete"
    if marker.is_file():
        return plate, 0.0
    if target.exists():
        shutil.rmtree(target)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(BENCH_DIR / "make_openhcs_plate.py"), str(target),
                    *OPENHCS_PLATES[spec]], check=True, stdout=subprocess.DEVNULL)
    marker.write_text(" ".join(OPENHCS_PLATES[spec]) + "\n", encoding="utf-8")
    return plate, time.perf_counter() - t0


def _copy_plate(plate: Path, dest: Path) -> Path:
    """Hard-link copy of ``plate`` under ``dest`` (files OpenHCS added to a plate are left out)."""
    target = dest / plate.name

    def link(src: str, dst: str) -> None:
        os.link(src, dst)

    shutil.copytree(plate, target, copy_function=link,
                    ignore=shutil.ignore_patterns("openhcs_metadata.json*"))
    return target


def one_repeat(plate: Path, worker_counts: list[int], truth: dict[str, Any], data_dir: Path,
               python: Path, rotate: int, keep: bool = False) -> list[dict[str, Any]]:
    """Run OpenHCS and the engine once at each worker count, in an order rotated by ``rotate``."""
    from run import run_child

    configs = [(tool, n) for n in worker_counts for tool in ("openhcs", "engine")]
    shift = rotate % len(configs)
    configs = configs[shift:] + configs[:shift]
    results = []
    for tool, n in configs:
        label = f"{tool}_{n}w"
        out = fresh_output_dir(data_dir, label)
        try:
            if tool == "openhcs":
                out.mkdir(parents=True)
                copy = _copy_plate(plate, out)
                argv = [str(BENCH_DIR / "openhcs_run.py"), str(copy), "--workers", str(n)]
                result = run_child(label, [argv], python=str(python))
                found = result.pop("positions_yx")
                positions = {w: dict(enumerate(map(tuple, yx))) for w, yx in found.items()}
            else:
                result = run_child(label, [[str(BENCH_DIR / "engine.py"), str(plate), str(out),
                                            "--workers", str(n)]])
                positions = read_positions(out)
            result["accuracy"] = position_errors(positions, truth)
            result["tool"], result["workers"] = tool, n
        finally:
            if not keep:
                shutil.rmtree(out, ignore_errors=True)
        results.append(result)
    return results


def build_report(repeats: list[list[dict[str, Any]]], worker_counts: list[int]) -> dict[str, Any]:
    """Medians per tool and worker count, and the OpenHCS / engine wall ratios paired within each repeat."""
    rows = []
    for n in worker_counts:
        row: dict[str, Any] = {"workers": n}
        for tool in ("openhcs", "engine"):
            runs = [r for rep in repeats for r in rep if r["label"] == f"{tool}_{n}w"]
            row[tool] = {
                "wall_s": summarize([r["wall_s"] for r in runs]),
                "cpu_s": summarize([r["cpu_s"] for r in runs]),
                "peak_tree_mib": summarize([mib(r["peak_tree_bytes"]) for r in runs]),
                "pos_err_max_px": summarize([r["accuracy"]["max_px"] for r in runs]),
                "phases_s": {k: summarize([r["phases"].get(k, float("nan")) for r in runs])
                             for k in sorted({k for r in runs for k in r["phases"]})},
                "failed_wells": sorted({w for r in runs for w in r.get("failed", {})}),
            }
        ratios = []
        for rep in repeats:
            by = {r["label"]: r for r in rep}
            if f"openhcs_{n}w" in by and f"engine_{n}w" in by:
                ratios.append(by[f"openhcs_{n}w"]["wall_s"] / by[f"engine_{n}w"]["wall_s"])
        row["ratio"] = summarize(ratios)
        rows.append(row)
    return {"rows": rows}


def format_table(report: dict[str, Any]) -> str:
    """The side-by-side table."""
    p = report["plate"]

    def rng(st: dict[str, float], digits: int = 2) -> str:
        if not st.get("n"):
            return "-"
        return f"{st['median']:.{digits}f} ({st['min']:.{digits}f}–{st['max']:.{digits}f})"

    lines = [
        f"plate {p['spec']}: {p['wells']} wells, {p['images']} images, {mib(p['bytes']):.0f} MiB; "
        f"{report['repeats']} repeats; {report['machine']['cpus']} CPUs; OpenHCS {report['openhcs']}; "
        "median (min–max)",
        "",
        f"{'workers':>7} {'OpenHCS wall s':>22} {'engine wall s':>20} {'ratio':>20} "
        f"{'OpenHCS MiB':>12} {'engine MiB':>11} {'tile err max px OpenHCS / engine':>33}",
    ]
    for row in report["rows"]:
        o, e = row["openhcs"], row["engine"]
        lines.append(
            f"{row['workers']:>7} {rng(o['wall_s']):>22} {rng(e['wall_s']):>20} {rng(row['ratio']):>20} "
            f"{o['peak_tree_mib']['median']:>12.0f} {e['peak_tree_mib']['median']:>11.0f} "
            f"{o['pos_err_max_px']['median']:>16.2f} / {e['pos_err_max_px']['median']:<14.2f}"
        )
    lines.append("wall: whole process, interpreter start to exit; ratio: OpenHCS wall / engine wall paired "
                 "within each repeat; MiB: peak RSS of the process and its workers")
    load = [r["loadavg_1min"] for rep in report["runs"] for r in rep]
    lines.append(f"load average (1 min) at the start of the runs: {min(load):.1f}–{max(load):.1f}")
    for row in report["rows"]:
        for tool in ("openhcs", "engine"):
            ph = row[tool]["phases_s"]
            parts = ", ".join(f"{k} {v['median']:.2f}" for k, v in ph.items())
            lines.append(f"{tool} {row['workers']}w phases (s): {parts}")
            if row[tool]["failed_wells"]:
                lines.append(f"{tool} {row['workers']}w FAILED wells: {', '.join(row[tool]['failed_wells'])}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the side-by-side mode (shared with ``run.py --against-openhcs``)."""
    parser.add_argument("--plate", default="openhcs-large",
                        help="openhcs-large (default), openhcs-small or a plate folder "
                        "made by OpenHCS's generator")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--keep-outputs", action="store_true", help="keep each run's output folder")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="cached plates and run outputs (default: benchmarks/results)")


def run(args: argparse.Namespace) -> int:
    """Run the side-by-side benchmark; print the table; return 1 when a well failed."""
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    data_dir = args.data_dir.resolve()
    python = ensure_venv("pipeline")
    if args.plate in OPENHCS_PLATES:
        plate, gen_s = ensure_openhcs_plate(data_dir, args.plate)
        if gen_s:
            print(f"generated plate {args.plate} with OpenHCS's generator in {gen_s:.1f} s: {plate}",
                  file=sys.stderr)
    elif Path(args.plate).is_dir():
        plate = Path(args.plate).resolve()
    else:
        raise SystemExit(f"--plate: {args.plate!r} is neither {', '.join(OPENHCS_PLATES)} nor a plate folder")
    truth = ground_truth_origins(plate)
    files = image_files(plate)
    from napari_openhcs.microscopes.detect import open_plate

    warm_page_cache(plate)
    repeats = []
    for i in range(args.repeats):
        rep = one_repeat(plate, worker_counts, truth, data_dir, python, rotate=i, keep=args.keep_outputs)
        repeats.append(rep)
        walls = ", ".join(f"{r['label']} {r['wall_s']:.2f} s" for r in rep)
        print(f"repeat {i + 1}/{args.repeats}: {walls}", file=sys.stderr)
    code = "import importlib.metadata as m; print(m.version('openhcs'))"
    version = subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                             check=True).stdout.strip()
    report = {
        "plate": {"spec": args.plate, "path": str(plate), "wells": len(open_plate(plate).wells),
                  "images": len(files), "bytes": sum(f.stat().st_size for f in files)},
        "machine": {"cpus": os.cpu_count()},
        "openhcs": version,
        "repeats": args.repeats,
        **build_report(repeats, worker_counts),
        "runs": repeats,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float))
    failed = any(row[t]["failed_wells"] for row in report["rows"] for t in ("openhcs", "engine"))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
