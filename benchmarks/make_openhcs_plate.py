"""Make an ImageXpress plate with OpenHCS's own synthetic generator, for timing the engine on it.

::

    python benchmarks/make_openhcs_plate.py OUT [--wells A01,B02,D04] [--grid 2x2] [--tile 128]
        [--channels 2] [--z 3] [--cells 30] [--overlap 10] [--stage-error 2] [--seed 7]
        [--format ImageXpress|OperaPhenix]
    python benchmarks/run.py --plate OUT

The generator (``openhcs.demo.synthetic_data.SyntheticMicroscopyGenerator``, openhcs 0.8.6)
runs in its own virtual environment, ``benchmarks/.openhcs-venv`` (made on first use; not a
dependency of this project; see ``_openhcs_venv.py``): ``openhcs==0.8.6`` without its
dependencies, plus only what the generator module imports. The plate lands in ``OUT/<name>/``
(HTD, ``TimePoint_1/ZStep_z/`` ``A01_s001_w1.tif``; with ``--format OperaPhenix``: ``Images/Index.xml`` and
``r01c01f1p01-ch1sk1fk1fl1.tiff``); ``OUT/ground_truth_params.json`` records the parameters and the true
tile origins ``(x, y)`` per well and site, which the generator draws but does not save: they
are replayed from its seeded random state (the same draws, in the same order).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _openhcs_venv import ensure_venv  # noqa: E402


def _origins(gen: object, wells: list[str], seed: int, fmt: str) -> dict[str, list[list[int]]]:
    """Replay the generator's site positions: ``{well: [[x, y] per site in raster order]}``.

    ImageXpress sites are drawn in raster order; Opera Phenix fields in the generator's
    centre-first snake (``generate_opera_phenix_field_pattern``), listed here in raster order
    of their grid cells, which is the order the engine numbers the sites in.
    """
    import numpy as np

    rows, cols = gen.grid_size  # type: ignore[attr-defined]
    err = gen.stage_error_px  # type: ignore[attr-defined]
    width, height = gen.image_size  # type: ignore[attr-defined]
    tile_w, tile_h = gen.tile_size  # type: ignore[attr-defined]
    if fmt == "OperaPhenix":
        pattern = gen.generate_opera_phenix_field_pattern(rows, cols)  # type: ignore[attr-defined]
        cells = [tuple(pattern[i]) for i in range(1, rows * cols + 1)]
    else:
        cells = [(r, c) for r in range(rows) for c in range(cols)]
    out = {}
    for i, well in enumerate(wells):
        rs = np.random.RandomState(seed + i)  # the generator reseeds per well, then draws these first
        drawn = {}
        for r, c in cells:
            x = c * gen.step_x + rs.randint(-err, err)  # type: ignore[attr-defined]
            y = r * gen.step_y + rs.randint(-err, err)  # type: ignore[attr-defined]
            drawn[(r, c)] = [int(max(0, min(x, width - tile_w))), int(max(0, min(y, height - tile_h)))]
        out[well] = [drawn[cell] for cell in sorted(drawn)]
    return out


def generate(args: argparse.Namespace) -> Path:
    """Run the generator (inside its virtual environment) and write the ground truth."""
    from openhcs.demo.synthetic_data import SyntheticMicroscopyGenerator

    out = Path(args.out)
    plate = out / args.name
    wells = [w.strip() for w in args.wells.split(",") if w.strip()]
    rows, cols = (int(v) for v in args.grid.lower().split("x"))
    t0 = time.perf_counter()
    gen = SyntheticMicroscopyGenerator(
        output_dir=str(plate), grid_size=(rows, cols), tile_size=(args.tile, args.tile),
        overlap_percent=args.overlap, stage_error_px=args.stage_error, wavelengths=args.channels,
        z_stack_levels=args.z, num_cells=args.cells, cell_size_range=(3, 6), wells=wells,
        random_seed=args.seed, format=args.format,
    )
    gen.generate_dataset()
    seconds = time.perf_counter() - t0
    tifs = sorted(p for p in plate.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))
    params = {
        "generator": "openhcs.demo.synthetic_data.SyntheticMicroscopyGenerator (openhcs 0.8.6)",
        **({"format": args.format} if args.format != "ImageXpress" else {}),
        "tile": args.tile, "grid_rows_cols": [rows, cols], "overlap_percent": args.overlap,
        "stage_error_px": args.stage_error, "wells": wells, "channels": args.channels,
        "z_planes": args.z, "num_cells_per_well_channel": args.cells, "cell_size_range_px": [3.0, 6.0],
        "seed": args.seed, "full_well_canvas_wh": list(gen.image_size),
        "n_tif_files": len(tifs), "total_tif_bytes": sum(p.stat().st_size for p in tifs),
        "generation_seconds": round(seconds, 2), "nominal_step_px": [gen.step_x, gen.step_y],
        "true_tile_origins_xy": _origins(gen, wells, args.seed, args.format),
    }
    (out / "ground_truth_params.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
    return plate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder for the plate and its ground truth")
    parser.add_argument("--name", default="openhcs_synthetic", help="plate folder name")
    parser.add_argument("--wells", default="A01,B02,D04")
    parser.add_argument("--grid", default="2x2", help="sites per well, rows x columns")
    parser.add_argument("--tile", type=int, default=128, help="tile side in pixels")
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--z", type=int, default=3)
    parser.add_argument("--cells", type=int, default=30)
    parser.add_argument("--overlap", type=int, default=10, help="tile overlap in percent")
    parser.add_argument("--stage-error", type=int, default=2, help="largest stage error in pixels")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", default="ImageXpress", choices=("ImageXpress", "OperaPhenix"),
                        help="the generator's file layout (default ImageXpress)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.inside:
        python = ensure_venv()
        cmd = [str(python), str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:]),
               "--inside"]
        return subprocess.run(cmd).returncode
    plate = generate(args)
    print(f"plate: {plate}\nground truth: {Path(args.out) / 'ground_truth_params.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
