"""Bad input files: corrupt, truncated, empty, wrong-size/-type or unreadable tiles,
missing images, damaged metadata (HTD, Harmony index, OME-Zarr), paths escaping the
plate folder and absurd declared sizes.

A damaged tile costs only its well: the well fails with a message naming the file
(at compile time when the file is one whose header the plate reader opens, else when
the well reads it) and the other wells equal an uninterrupted run. Damaged plate
metadata is either tolerated (the files are the truth) or refused by ``initialize()``
with a message naming the file. Nothing outside the plate folder is ever read.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from napari_openhcs.microscopes.detect import PlateFormatError

from ._support import (
    WELLS,
    copy_plate,
    orchestrator,
    pipeline,
    run,
    tiles,
)

pytestmark = pytest.mark.category("bad input files")

BAD = "A02"
GOOD = tuple(w for w in WELLS if w != BAD)
HARMONY = "operetta_cls_harmonyv5_operetta_compose"


def _tile(plate: Path, position: str) -> Path:
    """The damaged tile: one whose header the plate reader opens, or one only read with its well."""
    if position == "header":  # the first image of (A02, site 2): read for the stage position
        return tiles(plate, BAD, site=2, wave=1)[0]
    return tiles(plate, BAD, site=2, wave=2)[1]  # FITC, second plane: only read when A02 runs


def _damage(path: Path, kind: str) -> None:
    if kind == "corrupt":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, path.stat().st_size, np.uint8).tobytes())
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "wrong_shape":
        tifffile.imwrite(path, np.zeros((32, 48), np.uint16))
    elif kind == "wrong_dtype_uint8":
        tifffile.imwrite(path, np.zeros((64, 64), np.uint8))
    elif kind == "wrong_dtype_float32":
        tifffile.imwrite(path, np.zeros((64, 64), np.float32))
    else:
        raise ValueError(kind)


def _expect_only_bad_well_fails(plate: Path, out: Path, culprit: str, at_compile: bool,
                                nothing_lost: Callable[..., None], **config: Any) -> None:
    orch = orchestrator(plate, out, **config)
    steps = pipeline()
    compiled = orch.compile_pipelines(steps)
    incomplete = orch.last_compiled.incomplete_wells  # type: ignore[union-attr]
    if at_compile:
        assert list(incomplete) == [BAD] and culprit in "; ".join(incomplete[BAD]), incomplete
    else:
        assert incomplete == {}
    results = orch.execute_compiled_plate(steps, compiled)
    assert results[BAD].status == "failed" and culprit in (results[BAD].error or ""), results[BAD]
    assert all(results[w].status == "done" for w in GOOD), {w: results[w].error for w in GOOD}
    nothing_lost(out, GOOD, absent=[BAD])


# ------------------------------------------------------------------------- damaged tiles
@pytest.mark.parametrize("position", ["header", "pixels"])
@pytest.mark.parametrize("kind", ["corrupt", "truncated", "zero_bytes", "wrong_shape",
                                  "wrong_dtype_uint8", "wrong_dtype_float32"])
def test_damaged_tile_fails_only_its_well(tiny_plate: Path, tmp_path: Path, kind: str, position: str,
                                          nothing_lost: Callable[..., None]) -> None:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    tile = _tile(plate, position)
    _damage(tile, kind)
    _expect_only_bad_well_fails(plate, tmp_path / "out", str(tile), position == "header", nothing_lost)


@pytest.mark.parametrize("position", ["header", "pixels"])
def test_unreadable_tile_fails_only_its_well(tiny_plate: Path, tmp_path: Path, position: str,
                                             monkeypatch: pytest.MonkeyPatch,
                                             nothing_lost: Callable[..., None]) -> None:
    """Permission denied, simulated: ``open()`` refuses that one file (chmod does not bite root)."""
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    tile = _tile(plate, position)
    real_open = builtins.open

    def denying_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, str | os.PathLike) and os.fspath(file) == str(tile):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denying_open)
    _expect_only_bad_well_fails(plate, tmp_path / "out", str(tile), position == "header", nothing_lost)


# ------------------------------------------------------------------------- missing images
def _remove_images(plate: Path, what: str) -> None:
    if what == "site":
        doomed = [p for p in plate.rglob(f"*_{BAD}_s3_w*.TIF")]
    elif what == "channel":
        doomed = [p for p in plate.rglob(f"*_{BAD}_s*_w2.TIF")]
    else:  # one z-plane of one site and channel
        doomed = [tiles(plate, BAD, site=1, wave=1)[1]]
    assert doomed
    for p in doomed:
        p.unlink()


_MISSING_MESSAGE = {
    "site": r"site 3, channel 1 \(DAPI\): 2 images missing",
    "channel": r"site 1, channel 2 \(FITC\): 2 images missing",
    "plane": r"site 1, channel 1 \(DAPI\): 1 image missing \(z 2",
}


@pytest.mark.parametrize("what", ["site", "channel", "plane"])
def test_missing_images_are_reported_at_compile_time_and_fail_the_well(
        tiny_plate: Path, tmp_path: Path, what: str, nothing_lost: Callable[..., None]) -> None:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    _remove_images(plate, what)
    out = tmp_path / "out"
    orch = orchestrator(plate, out)
    steps = pipeline()
    compiled = orch.compile_pipelines(steps)
    incomplete = orch.last_compiled.incomplete_wells  # type: ignore[union-attr]
    assert list(incomplete) == [BAD] and re.search(_MISSING_MESSAGE[what], "; ".join(incomplete[BAD]))
    results = orch.execute_compiled_plate(steps, compiled)
    assert results[BAD].status == "failed"
    assert re.search("well A02 has missing images: .*" + _MISSING_MESSAGE[what], results[BAD].error or "")
    assert all(results[w].status == "done" for w in GOOD)
    nothing_lost(out, GOOD, absent=[BAD])


@pytest.mark.parametrize("what", ["site", "channel"])
def test_incomplete_well_is_skipped_with_its_reason_when_asked(
        tiny_plate: Path, tmp_path: Path, what: str, nothing_lost: Callable[..., None]) -> None:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    _remove_images(plate, what)
    out = tmp_path / "out"
    results = run(plate, out, skip_incomplete_wells=True)
    assert results[BAD].status == "skipped"
    assert re.search(_MISSING_MESSAGE[what], "; ".join(results[BAD].notes)), results[BAD]
    assert all(results[w].status == "done" for w in GOOD)
    nothing_lost(out, GOOD, absent=[BAD])


# ------------------------------------------------------------------------- plate metadata
def _edit_htds(plate: Path, edit: Callable[[bytes], bytes]) -> None:
    htds = list(plate.rglob("*.HTD"))
    assert htds
    for htd in htds:
        htd.write_bytes(edit(htd.read_bytes()))


@pytest.mark.parametrize("damage", ["invalid_bytes", "truncated", "garbage", "empty"])
def test_damaged_htd_still_reads_the_plate_from_its_files(
        tiny_plate: Path, tmp_path: Path, damage: str, nothing_lost: Callable[..., None]) -> None:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    edits: dict[str, Callable[[bytes], bytes]] = {
        # non-UTF-8 bytes (cp1252 µ, 0xFF 0xFE, an invalid UTF-8 sequence, NUL) in values
        "invalid_bytes": lambda raw: raw.replace(b'"FITC"', b'"FITC \xb5\xff\xfe\xc3\x28\x00"')
                                        .replace(b"\x82\x81", b"\x82\x81\xff\xc3\x28"),
        "truncated": lambda raw: raw[: len(raw) // 2],
        "garbage": lambda raw: np.random.default_rng(1).integers(0, 256, len(raw), np.uint8).tobytes(),
        "empty": lambda raw: b"",
    }
    _edit_htds(plate, edits[damage])
    out = tmp_path / "out"
    orch = orchestrator(plate, out)
    assert orch.plate is not None and orch.plate.wells == WELLS
    names = [c.name for c in orch.plate.channels]
    assert names[0] == "DAPI" and names[1].startswith("FITC")
    results = orch.execute_compiled_plate(pipeline(), orch.compile_pipelines(pipeline()))
    assert all(r.status == "done" for r in results.values())
    nothing_lost(out, WELLS)


@pytest.fixture
def harmony_plate(shared_data: Path, tmp_path: Path) -> Path:
    """A copy of the real Operetta CLS (Harmony V5) plate: one well, two fields."""
    return copy_plate(shared_data / HARMONY, tmp_path / "harmony")


def _harmony_index(plate: Path) -> Path:
    return plate / "Images" / "Index.idx.xml"


_URL = b"<URL>r03c03f01p01-ch1sk1fk1fl1.tiff</URL>"
_SIZE_X = b"<ImageSizeX>1080</ImageSizeX>"
_SIZE_Y = b"<ImageSizeY>1080</ImageSizeY>"

_HARMONY_DAMAGE: dict[str, tuple[Callable[[bytes], bytes], str]] = {
    "truncated": (lambda raw: raw[: len(raw) // 2], r"malformed or truncated XML"),
    "truncated_in_header": (lambda raw: raw[:300], r"malformed or truncated XML"),
    "not_xml": (lambda raw: b"\x00\xff garbage " * 50, r"is not a Harmony index"),
    "bad_number": (lambda raw: raw.replace(b"<Row>3</Row>", b"<Row>three</Row>"),
                   r"lacks Row/Col/FieldID/PlaneID/ChannelID"),
    "url_parent_escape": (lambda raw: raw.replace(_URL, b"<URL>../../etc/passwd</URL>"),
                          r"'\.\./\.\./etc/passwd' would escape the plate folder"),
    "url_absolute": (lambda raw: raw.replace(_URL, b"<URL>/etc/passwd</URL>"),
                     r"'/etc/passwd' would escape the plate folder"),
    "size_1e7": (lambda raw: raw.replace(_SIZE_X, b"<ImageSizeX>10000000</ImageSizeX>"),
                 r"declared image size 10000000 x 1080 px is not plausible"),
    "size_100000_squared": (lambda raw: raw.replace(_SIZE_X, b"<ImageSizeX>100000</ImageSizeX>")
                            .replace(_SIZE_Y, b"<ImageSizeY>100000</ImageSizeY>"),
                            r"declared image size 100000 x 100000 px is not plausible"),
    "entity_bomb": (lambda raw: raw.replace(
        b"<EvaluationInputData", b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>\n'
        b"<EvaluationInputData", 1).replace(b"<User>DRPscreening</User>", b"<User>&b;</User>"),
                    r"DOCTYPE or ENTITY"),
}


@pytest.mark.parametrize("damage", list(_HARMONY_DAMAGE))
def test_damaged_harmony_index_is_refused_at_initialize_naming_it(
        harmony_plate: Path, tmp_path: Path, damage: str) -> None:
    index = _harmony_index(harmony_plate)
    edit, message = _HARMONY_DAMAGE[damage]
    index.write_bytes(edit(index.read_bytes()))
    out = tmp_path / "out"
    with pytest.raises(PlateFormatError) as info:
        orchestrator(harmony_plate, out)
    assert str(index) in str(info.value), str(info.value)
    assert re.search(message, str(info.value)), str(info.value)
    assert not out.exists(), "nothing may be written when the plate is refused"


def test_tile_linking_outside_the_plate_is_refused(tiny_plate: Path, tmp_path: Path) -> None:
    plate = copy_plate(tiny_plate, tmp_path / "plate")
    tile = _tile(plate, "pixels")
    outside = tmp_path / "outside.TIF"
    shutil.copy(tile, outside)
    tile.unlink()
    tile.symlink_to(outside)
    with pytest.raises(PlateFormatError, match=re.escape(str(tile)) + ".*leads outside the plate folder"):
        orchestrator(plate, tmp_path / "out")


def _our_plate_as_input(tiny_plate: Path, tmp_path: Path) -> Path:
    out = tmp_path / "first"
    results = run(tiny_plate, out)
    assert all(r.status == "done" for r in results.values())
    return next(out.glob("*.ome.zarr"))


def test_ome_zarr_well_path_escaping_the_plate_is_refused(tiny_plate: Path, tmp_path: Path) -> None:
    import json

    zplate = _our_plate_as_input(tiny_plate, tmp_path)
    meta = zplate / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["ome"]["plate"]["wells"][0]["path"] = "../../A/01"
    meta.write_text(json.dumps(doc))
    with pytest.raises(PlateFormatError, match=re.escape(str(zplate)) + r".*\.\./\.\./A/01"):
        orchestrator(zplate, tmp_path / "out")
