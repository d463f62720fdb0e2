"""The direct Zarr v3 array writer writes what zarr-python writes, byte for byte."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec

from napari_openhcs.io import inject_fault
from napari_openhcs.io._zarr_v3 import BLOCKSIZE, write_array

DIMS = ("t", "c", "z", "y", "x")


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("dtype", ["uint8", "bool", "uint16", ">u2", "int32", "float32", ">f8"])
@pytest.mark.parametrize(("clevel", "blocksize"), [(1, BLOCKSIZE), (2, BLOCKSIZE), (1, 0), (3, 4096)])
def test_chunks_and_metadata_match_zarr_python(
    tmp_path: Path, dtype: str, clevel: int, blocksize: int
) -> None:
    rng = np.random.default_rng(3)
    shape, chunks = (1, 2, 1, 70, 45), (1, 1, 1, 32, 16)  # edge chunks on both image axes
    data = (rng.random(shape) * 1000).astype(dtype)
    if data.dtype.kind == "f":
        data[0, 1, 0, :5, :5] = 0.0  # an all-0 corner is written too
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    if blocksize == BLOCKSIZE:
        write_array(ours, data, chunks, clevel=clevel, dimension_names=DIMS)  # the default
    else:
        write_array(ours, data, chunks, clevel=clevel, dimension_names=DIMS, blocksize=blocksize)
    ref = zarr.create_array(
        str(theirs), shape=shape, dtype=data.dtype, chunks=chunks, fill_value=0, zarr_format=3,
        compressors=BloscCodec(cname="zstd", clevel=clevel, shuffle="shuffle", blocksize=blocksize),
        dimension_names=list(DIMS), config={"write_empty_chunks": True},
    )
    ref[...] = data

    mine, reference = _files(ours), _files(theirs)
    assert json.loads(mine.pop("zarr.json")) == json.loads(reference.pop("zarr.json"))
    assert mine.keys() == reference.keys() and len(mine) == 2 * 3 * 3
    assert mine == reference
    back = zarr.open_array(str(ours), mode="r")
    np.testing.assert_array_equal(back[...], data)
    assert back.dtype == data.dtype.newbyteorder("=")


def test_a_failed_chunk_write_raises_after_every_other_write_ended(tmp_path: Path) -> None:
    data = np.ones((1, 1, 1, 64, 64 * 40), dtype=np.float32)
    target = tmp_path / "arr"
    with inject_fault(errno.ENOSPC, match="/c/0/0/0/0/7"), pytest.raises(OSError) as info:
        write_array(target, data, (1, 1, 1, 64, 64), clevel=2)
    assert info.value.errno == errno.ENOSPC
    written = sorted(target.rglob("*"))
    time.sleep(0.2)
    assert sorted(target.rglob("*")) == written  # nothing goes on writing after the error


def test_unsupported_dtypes_and_chunks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="complex"):
        write_array(tmp_path / "a", np.zeros((2, 2), np.complex64), (2, 2), clevel=2)
    with pytest.raises(ValueError, match="chunks"):
        write_array(tmp_path / "b", np.zeros((2, 2), np.float32), (2,), clevel=2)


def test_writing_a_well_does_not_import_zarr(tmp_path: Path) -> None:
    """A worker process writes its wells without importing zarr-python (0.12-0.19 s, ~17 MiB)."""
    code = f"""
import sys
import numpy as np
from napari_openhcs.io import HCSPlateWriter, OutputChannel
w = HCSPlateWriter({str(tmp_path / "p.ome.zarr")!r}, plate_name="p", rows=1, columns=1)
w.create()
w.write_well("A01", [np.ones((1, 1, 1, 300, 200), np.float32)], channels=[OutputChannel("a", "FFFFFF")],
             pixel_size_um=None)
print("zarr" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
    well = zarr.open_group(str(tmp_path / "p.ome.zarr" / "A" / "01"), mode="r")
    np.testing.assert_array_equal(well["0"]["0"][...], np.ones((1, 1, 1, 300, 200), np.float32))
