"""Several worker processes write wells of one plate at the same time."""

from __future__ import annotations

import multiprocessing
import warnings

import numpy as np
import zarr

from napari_openhcs.io import HCSPlateWriter, OutputChannel, open_output_plate

WELLS = ["A01", "A02", "B01", "H12"]
CHANNELS = [OutputChannel("DAPI", "0000FF"), OutputChannel("GFP", "00FF00")]


def _data(well: str) -> list[np.ndarray]:
    rng = np.random.default_rng(sum(map(ord, well)))
    return [rng.integers(0, 4000, (1, 2, 2, 260, 300), dtype=np.uint16) for _ in range(2)]


def _write(writer: HCSPlateWriter, well: str) -> str:
    writer.write_well(
        well,
        _data(well),
        channels=CHANNELS,
        pixel_size_um=0.5,
        well_attributes={"pipeline_hash": "p"},
    )
    return well


def test_spawned_workers_write_wells_of_one_plate(tmp_path):
    from ome_zarr_models.exceptions import ValidationWarning
    from ome_zarr_models.v05.hcs import HCS

    path = tmp_path / "plate.zarr"
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()
    plate_json = (path / "zarr.json").read_bytes()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        done = pool.starmap(_write, [(writer, w) for w in WELLS])
    assert sorted(done) == sorted(WELLS)
    assert (path / "zarr.json").read_bytes() == plate_json  # workers never touch it
    assert sorted(writer.completed_wells()) == sorted(WELLS)
    assert not [p for p in path.iterdir() if p.name.startswith(".")]

    writer.register_completed_wells(done)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ValidationWarning)
        hcs = HCS.from_zarr(zarr.open_group(path, mode="r"))
    assert len(list(hcs.well_groups)) == 4
    out = open_output_plate(path)
    assert out.wells == WELLS
    for well in WELLS:
        for got, expected in zip(out.fields(well), _data(well)):
            np.testing.assert_array_equal(got[...], expected)
