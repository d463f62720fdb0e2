"""The hand-written limit: the reference workload as one plain loop, no orchestrator.

Same reads (``tifffile``), the same NumPy/SciPy math (the library functions the
pipeline names, called directly) and the same writes (``HCSPlateWriter`` and the
per-well CSV tables), well after well in one process::

    python benchmarks/baseline.py PLATE OUTPUT_DIR

Prints one JSON line with the phase times (``import``, ``initialize``, ``read``,
``compute``, ``write``).
"""

from __future__ import annotations

import time

_T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

LOW, HIGH = 0.5, 99.5


def run_baseline(plate_dir: Path, output_dir: Path, shard: tuple[int, int] = (0, 1)) -> dict[str, Any]:
    """Process the wells of ``plate_dir`` into ``output_dir``; return timings.

    ``shard=(i, n)`` processes every ``n``-th well starting at the ``i``-th (for
    running ``n`` copies side by side: the loop's own parallel scaling).
    """
    phases = {"import": 0.0, "initialize": 0.0, "read": 0.0, "compute": 0.0, "write": 0.0}
    t = time.perf_counter()
    import numpy as np
    import tifffile

    from napari_openhcs.core.config import GlobalPipelineConfig
    from napari_openhcs.functions.registry import get_function
    from napari_openhcs.io import HCSPlateWriter, OutputChannel, combine_well_tables, write_table_csv
    from napari_openhcs.microscopes.detect import open_plate

    normalize = get_function("percentile_normalize").func
    composite = get_function("composite").func
    max_projection = get_function("max_projection").func
    tile_positions = get_function("compute_tile_positions").func
    assemble_tiles = get_function("assemble_tiles").func
    phases["import"] = time.perf_counter() - t

    t = time.perf_counter()
    plate = open_plate(plate_dir)
    writer = HCSPlateWriter(output_dir / f"{plate.name}.ome.zarr", plate_name=plate.name,
                            rows=plate.rows, columns=plate.columns,
                            compression_level=GlobalPipelineConfig().compression_level)
    writer.create()
    names = {c.index: c.name for c in plate.channels}
    tables = output_dir / "tables"
    phases["initialize"] = time.perf_counter() - t

    wells = list(plate.wells)[shard[0]::shard[1]]
    for well in wells:
        # ---- read: every raw plane of the well into one (S, C, Z, Y, X) array
        t = time.perf_counter()
        records = plate.records_for(well)
        sites = sorted({r.site for r in records})
        chans = sorted({r.channel for r in records})
        zs = sorted({r.z for r in records})
        raw = np.empty((len(sites), len(chans), len(zs), *plate.image_shape), dtype=plate.dtype)
        for r in records:
            raw[sites.index(r.site), chans.index(r.channel), zs.index(r.z)] = tifffile.imread(
                Path(plate.root) / r.path, key=r.index[0] if r.index else 0)
        phases["read"] += time.perf_counter() - t

        # ---- compute: the pipeline's math, in the pipeline's order
        t = time.perf_counter()
        norm = [[normalize(raw[:, c, z], low=LOW, high=HIGH) for z in range(len(zs))]
                for c in range(len(chans))]  # [c][z] -> (S, Y, X)
        mip = []
        for s in range(len(sites)):
            comp = [composite(np.stack([norm[c][z][s] for c in range(len(chans))]))
                    for z in range(len(zs))]  # [z] -> (1, Y, X)
            mip.append(max_projection(np.concatenate(comp))[0])
        del norm, comp
        site_px = None
        if plate.pixel_size_um:
            pos = {s: (y, x) for w, s, y, x in plate.site_positions if w == well}
            if all(s in pos for s in sites):
                site_px = np.asarray([pos[s] for s in sites], dtype=np.float64) / float(plate.pixel_size_um)
        _, positions, pairs = tile_positions(np.stack(mip), site_positions=site_px,
                                             grid_dimensions=plate.site_grid)
        del mip
        stitched = []
        for c in range(len(chans)):
            planes = [assemble_tiles(normalize(raw[:, c, z], low=LOW, high=HIGH), positions=positions)
                      for z in range(len(zs))]  # [z] -> (1, H, W)
            stitched.append(max_projection(np.concatenate(planes))[0])
        del raw, planes
        field = np.stack(stitched)[None, :, None]  # (T, C, Z, Y, X)
        phases["compute"] += time.perf_counter() - t

        # ---- write: tables, then the well (same writer and layout as the engine)
        t = time.perf_counter()
        for name, table in (("positions", positions), ("stitch_pairs", pairs)):
            cols = {k: np.asarray(v) for k, v in table.items()}
            n = len(next(iter(cols.values())))
            rows = [{"well": well, "timepoint": 1, **{k: v[i] for k, v in cols.items()}} for i in range(n)]
            write_table_csv(tables / name / f"{well}.csv", rows)
        channels = [OutputChannel(names.get(c, f"w{c}"), color)
                    for c, color in zip(chans, ("0000FF", "00FF00", "FF0000", "FF00FF"))]
        writer.write_well(well, [field], channels=channels, pixel_size_um=plate.pixel_size_um)
        phases["write"] += time.perf_counter() - t

    t = time.perf_counter()
    writer.register_completed_wells(wells)
    for name in ("positions", "stitch_pairs"):
        combine_well_tables(tables, name)
    phases["write"] += time.perf_counter() - t
    return {"phases": phases, "wells": len(wells), "failed": {}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("plate", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--shard", default="0/1", help="I/N: process every N-th well from the I-th")
    args = parser.parse_args(argv)
    i, n = (int(v) for v in args.shard.split("/"))
    result = run_baseline(args.plate, args.output, (i, n))
    result["process_s"] = time.perf_counter() - _T0
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
