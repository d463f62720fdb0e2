"""Atomic writes and failure handling: a full disk never leaves a partial file or well."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from napari_openhcs.io import (
    HCSPlateWriter,
    OutputChannel,
    OutputNotWritableError,
    StorageFullError,
    atomic,
    atomic_write_bytes,
    atomic_write_json,
    inject_fault,
    open_output_plate,
)

CHANNELS = [OutputChannel("DAPI", "0000FF")]


def _field(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, (1, 1, 2, 300, 400), dtype=np.uint16)


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or "partial" in p.name)


def test_atomic_write_replaces_and_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "meta.json"
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with inject_fault(errno.ENOSPC, after_bytes=5):
        with pytest.raises(StorageFullError, match="No space left") as info:
            atomic_write_json(target, {"a": 2, "long": "x" * 100})
    assert info.value.errno == errno.ENOSPC
    assert str(target) in str(info.value)
    assert isinstance(info.value, OSError)
    assert json.loads(target.read_text()) == {"a": 1}
    assert _leftovers(tmp_path) == []
    atomic_write_bytes(target, b"ok")  # the fault is gone after the block
    assert target.read_bytes() == b"ok"


def test_fault_match_and_budget(tmp_path):
    with inject_fault(errno.ENOSPC, after_bytes=10, match="b.bin"):
        atomic_write_bytes(tmp_path / "a.bin", b"x" * 100)  # not matched
        atomic_write_bytes(tmp_path / "b.bin", b"x" * 10)  # within budget
        with pytest.raises(StorageFullError):
            atomic_write_bytes(tmp_path / "b.bin", b"y")
    assert (tmp_path / "b.bin").read_bytes() == b"x" * 10


def test_permission_errors_name_the_folder(tmp_path):
    with inject_fault(errno.EROFS):
        with pytest.raises(OutputNotWritableError, match=str(tmp_path)) as info:
            atomic_write_bytes(tmp_path / "x.bin", b"1")
    assert isinstance(info.value, PermissionError)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_read_only_output_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputNotWritableError, match="Cannot write to the output folder"):
            HCSPlateWriter(ro / "p.zarr", plate_name="P", rows=8, columns=12).create()
    finally:
        ro.chmod(0o755)


def test_unwritable_output_folder_is_reported_on_create(tmp_path, monkeypatch):
    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr("pathlib.Path.mkdir", denied)
    with pytest.raises(OutputNotWritableError, match=f"output folder {tmp_path}") as info:
        HCSPlateWriter(tmp_path / "p.zarr", plate_name="P", rows=8, columns=12).create()
    assert isinstance(info.value, PermissionError)


@pytest.mark.parametrize("after_bytes", [0, 5_000, 150_000])
def test_failed_well_write_leaves_nothing(tmp_path, after_bytes):
    path = tmp_path / "p.zarr"
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()
    writer.write_well("A01", [_field(1)], channels=CHANNELS, pixel_size_um=1.0)
    writer.register_completed_wells()
    plate_json = (path / "zarr.json").read_bytes()

    with inject_fault(errno.ENOSPC, after_bytes=after_bytes, match=".tmp-B-02"):
        with pytest.raises(StorageFullError) as info:
            writer.write_well("B02", [_field(2), _field(3)], channels=CHANNELS, pixel_size_um=1.0)
    assert str(path / "B" / "02") in str(info.value)
    assert not (path / "B" / "02").exists()
    assert _leftovers(path) == []
    assert list(writer.completed_wells()) == ["A01"]
    assert (path / "zarr.json").read_bytes() == plate_json
    json.loads(plate_json)
    assert open_output_plate(path).wells == ["A01"]

    # the same well can be written once space is back
    writer.write_well("B02", [_field(2)], channels=CHANNELS, pixel_size_um=1.0)
    assert sorted(writer.completed_wells()) == ["A01", "B02"]


def test_failed_plate_metadata_write_keeps_previous(tmp_path):
    path = tmp_path / "p.zarr"
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()
    writer.write_well("A01", [_field()], channels=CHANNELS, pixel_size_um=1.0)
    before = (path / "zarr.json").read_text()
    with inject_fault(errno.ENOSPC, after_bytes=100, match="zarr.json"):
        with pytest.raises(StorageFullError):
            writer.register_completed_wells()
    assert (path / "zarr.json").read_text() == before
    assert json.loads(before)["attributes"]["ome"]["plate"]["wells"] == []
    assert _leftovers(path) == []


def test_interrupted_write_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "p.zarr"
    writer = HCSPlateWriter(path, plate_name="P", rows=8, columns=12)
    writer.create()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("napari_openhcs.io.omezarr_writer.move_into_place", boom)
    with pytest.raises(KeyboardInterrupt):
        writer.write_well("A01", [_field()], channels=CHANNELS, pixel_size_um=1.0)
    assert writer.completed_wells() == {}
    assert not [p for p in path.iterdir() if p.name.startswith(".tmp-")]


def test_fault_from_environment_reaches_worker_processes(tmp_path):
    code = (
        "import sys; from napari_openhcs.io import atomic_write_bytes, StorageFullError\n"
        "try:\n    atomic_write_bytes(sys.argv[1], b'x' * 100)\n"
        "except StorageFullError as e:\n    print('FULL', e.filename)\n"
    )
    env = {**os.environ, atomic.FAULT_ENV_VAR: "ENOSPC,after_bytes=50,match=f.bin"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "f.bin")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("FULL")
    assert not (tmp_path / "f.bin").exists()
