"""Cost per well from a few wells to a full 96-well plate: does each added well cost the same?

::

    python benchmarks/bench_wells.py [--wells 4,24,96] [--tile 512] [--workers 2] [--repeats 3]
                                     [--json out.json]

For each well count N it generates, once, a synthetic ImageXpress plate of the first
N wells of a 96-well plate (``make_synthetic_plate``: 3 × 3 sites, 2 channels, 3 z, the
reference workload's layout; ``--tile`` 512² by default so that 96 wells fit a small disk:
96 × 54 tiles of 512² uint16 are 2.6 GB), cached under ``benchmarks/results/wells``.
Each repeat then runs the engine on every plate (``engine.py``, the reference
stitching pipeline, ``--workers`` worker processes), each in a fresh process, in an order
rotated from repeat to repeat.

Per well, two ways:

- **marginal**: what each added well costs, ``(wall(N) − wall(M)) / (N − M)`` between
  consecutive well counts M < N (the start-up, imports and the uneven end of a run
  cancel out); flat when the last interval's cost is within 10 % of the first's.
  Measured on wall time and on CPU time (user + system of the process and its
  workers), which another job on the machine disturbs less;
- **execute / N**: the engine's execute phase (first well started to last well
  written) over the wells.

Memory: the peak RSS of the run's process tree, of its main process and of one worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DEFAULT_DATA_DIR,
    cached_plate,
    compile_bytecode,
    fresh_output_dir,
    mib,
    summarize,
    warm_page_cache,
)

BENCH_DIR = Path(__file__).resolve().parent
#: Largest allowed growth of the marginal cost per well from the first interval to the last.
FLAT_TOLERANCE = 0.10


def plate_wells(n: int) -> tuple[str, ...]:
    """The first ``n`` wells of a 96-well plate, row by row."""
    if not 1 <= n <= 96:
        raise ValueError(f"well counts must be 1..96, not {n}")
    return tuple(f"{r}{c:02d}" for r in "ABCDEFGH" for c in range(1, 13))[:n]


def ensure_plate(data_dir: Path, n: int, tile: int) -> tuple[Path, float]:
    """Generate (once) the plate of the first ``n`` wells with ``tile``² tiles; return it and the seconds."""
    from napari_openhcs.testing import make_synthetic_plate

    nuclei = max(20, round(500 * (tile / 1024) ** 2))  # the large plate's density
    return cached_plate(data_dir / "wells" / f"{n}w-{tile}px", lambda target: make_synthetic_plate(
        target, plate_name=f"wells{n}", plate_format=96, wells=plate_wells(n), grid=(3, 3),
        tile_shape=(tile, tile), z_planes=3, nuclei_per_site=nuclei))


def marginal_costs(walls: dict[int, float]) -> list[dict[str, float]]:
    """``(wall(N) − wall(M)) / (N − M)`` for consecutive well counts M < N."""
    counts = sorted(walls)
    return [{"from": m, "to": n, "s_per_well": (walls[n] - walls[m]) / (n - m)}
            for m, n in zip(counts, counts[1:])]


def paired_marginal(runs: list[list[dict[str, Any]]], key: str) -> list[dict[str, Any]]:
    """Marginal cost per well of ``key`` within each repeat (its runs follow each other), then the median."""
    per_repeat = [marginal_costs({r["n_wells"]: r[key] for r in rep}) for rep in runs]
    return [{"from": iv["from"], "to": iv["to"],
             "s_per_well": summarize([rep[k]["s_per_well"] for rep in per_repeat])}
            for k, iv in enumerate(per_repeat[0])]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Generate the plates, run the repeats, and return the report."""
    from run import run_child

    counts = sorted({int(w) for w in args.wells.split(",") if w.strip()})
    data_dir = args.data_dir.resolve()
    plates = {}
    for n in counts:
        plates[n], seconds = ensure_plate(data_dir, n, args.tile)
        if seconds:
            print(f"generated the {n}-well plate in {seconds:.1f} s: {plates[n]}", file=sys.stderr)
    compile_bytecode()
    runs: list[list[dict[str, Any]]] = []
    for i in range(args.repeats):
        order = counts[i % len(counts):] + counts[:i % len(counts)]
        rep = []
        for n in order:
            warm_page_cache(plates[n])
            out = fresh_output_dir(data_dir, f"wells{n}")
            try:
                result = run_child(f"{n}w", [[str(BENCH_DIR / "engine.py"), str(plates[n]), str(out),
                                              "--workers", str(args.workers)]])
            finally:
                shutil.rmtree(out, ignore_errors=True)
            result["n_wells"] = n
            result.pop("rss_samples", None)
            rep.append(result)
        runs.append(rep)
        walls = ", ".join(f"{r['label']} {r['wall_s']:.2f} s" for r in rep)
        print(f"repeat {i + 1}/{args.repeats}: {walls}", file=sys.stderr)
    rows = []
    for n in counts:
        mine = [r for rep in runs for r in rep if r["n_wells"] == n]
        rows.append({
            "wells": n,
            "wall_s": summarize([r["wall_s"] for r in mine]),
            "execute_per_well_s": summarize([r["phases"]["execute"] / n for r in mine]),
            "wall_per_well_s": summarize([r["wall_s"] / n for r in mine]),
            "initialize_s": summarize([r["phases"]["initialize"] for r in mine]),
            "compile_s": summarize([r["phases"]["compile"] for r in mine]),
            "peak_tree_mib": summarize([mib(r["peak_tree_bytes"]) for r in mine]),
            "peak_main_mib": summarize([mib(r["peak_main_bytes"]) for r in mine]),
            "peak_worker_mib": summarize([mib(r["peak_worker_bytes"]) for r in mine]),
            "failed": sorted({w for r in mine for w in r.get("failed", {})}),
        })
    return {"tile": args.tile, "workers": args.workers, "repeats": args.repeats, "cpus": os.cpu_count(),
            "rows": rows, "marginal": paired_marginal(runs, "wall_s"),
            "marginal_cpu": paired_marginal(runs, "cpu_s"), "runs": runs,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def format_table(report: dict[str, Any]) -> str:
    """The table: per well count, then the marginal costs and the flatness verdict."""
    def rng(st: dict[str, float], digits: int = 2) -> str:
        return f"{st['median']:.{digits}f} ({st['min']:.{digits}f}–{st['max']:.{digits}f})"

    lines = [f"engine, {report['workers']} workers, tiles {report['tile']}², 3 × 3 sites × 2 channels × 3 z "
             f"per well; {report['repeats']} repeats; {report['cpus']} CPUs; median (min–max)", "",
             f"{'wells':>5} {'wall s':>22} {'wall/well s':>18} {'execute/well s':>18} {'init s':>6} "
             f"{'comp s':>6} {'tree MiB':>9} {'main MiB':>9} {'worker MiB':>10}"]
    for row in report["rows"]:
        lines.append(f"{row['wells']:>5} {rng(row['wall_s']):>22} {rng(row['wall_per_well_s'], 3):>18} "
                     f"{rng(row['execute_per_well_s'], 3):>18} {row['initialize_s']['median']:>6.2f} "
                     f"{row['compile_s']['median']:>6.2f} {row['peak_tree_mib']['median']:>9.0f} "
                     f"{row['peak_main_mib']['median']:>9.0f} {row['peak_worker_mib']['median']:>10.0f}"
                     + (f"  FAILED: {', '.join(row['failed'])}" if row["failed"] else ""))
    lines.append("")
    for key, what in (("marginal", "wall"), ("marginal_cpu", "CPU")):
        for iv in report[key]:
            lines.append(f"marginal {what} seconds per well, {iv['from']} → {iv['to']} wells: "
                         f"{rng(iv['s_per_well'], 3)} (paired within each repeat)")
    load = [r["loadavg_1min"] for rep in report["runs"] for r in rep]
    lines.append(f"load average (1 min) at the start of the runs: {min(load):.1f}–{max(load):.1f}")
    for key, what in (("marginal", "wall"), ("marginal_cpu", "CPU")):
        if len(report[key]) >= 2:
            first = report[key][0]["s_per_well"]["median"]
            last = report[key][-1]["s_per_well"]["median"]
            ratio = last / first
            verdict = "met   " if ratio <= 1 + FLAT_TOLERANCE else "MISSED"
            lines.append(f"{verdict} flat {what} cost per well: last interval / first = {ratio:.3f} "
                         f"(limit {1 + FLAT_TOLERANCE:.2f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wells", default="4,24,96", help="comma-separated well counts (default 4,24,96)")
    parser.add_argument("--tile", type=int, default=512, help="tile side in pixels (default 512)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="cached plates and run outputs (default: benchmarks/results)")
    args = parser.parse_args(argv)
    report = run(args)
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float))
    return 1 if any(row["failed"] for row in report["rows"]) else 0


if __name__ == "__main__":
    sys.exit(main())
