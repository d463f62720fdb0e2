"""Bad input files, continued: absurd declared sizes (memory and time bombs).

A TIFF header claiming 100000 x 100000 pixels (18.6 GiB to decode), a Harmony TIFF
or an OME-Zarr array declaring as much, and HTD files declaring 10^9 to 10^20 wells,
sites, waves, z-steps or timepoints. They must be refused, naming the file, or
ignored, without allocating or looping over what they declare. All cases run in one
child process limited to 6 GiB of address space and 90 s, so a regression fails the
test instead of the machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ._support import WELLS, copy_plate, huge_tiff, run, run_isolated, tiles

pytestmark = pytest.mark.category("bad input files")

BAD = "A02"
GOOD = tuple(w for w in WELLS if w != BAD)
HARMONY = "operetta_cls_harmonyv5_operetta_compose"

#: HTD key -> absurd declared value
HTD_COUNTS = {
    "NWavelengths": b"99999999999999999999",
    "ZSteps": b"1000000000000",
    "TimePoints": b"1000000000000",
    "XWells": b"1000000000",
    "XSites": b"1000000000",
}


def _tiff_bomb(plate: Path, position: str) -> Path:
    tile = (tiles(plate, BAD, site=2, wave=1)[0] if position == "header"  # read at open time
            else tiles(plate, BAD, site=2, wave=2)[1])  # only read when A02 runs
    return huge_tiff(tile, 100_000, 100_000)


def _htd_counts(plate: Path, key: str) -> Path:
    pattern = re.compile(rb'("' + key.encode() + rb'", )\d+')
    htds = list(plate.rglob("*.HTD"))
    for htd in htds:
        htd.write_bytes(pattern.sub(lambda m: m.group(1) + HTD_COUNTS[key], htd.read_bytes()))
    return htds[0]


def _zarr_bomb(zplate: Path) -> Path:
    for level in sorted(zplate.glob("*/*/*/*/zarr.json")):
        doc = json.loads(level.read_text())
        if doc.get("node_type") == "array":
            doc["shape"][-2:] = [100_000, 100_000]
            level.write_text(json.dumps(doc))
    return zplate


@pytest.fixture(scope="module")
def bombs(tiny_plate: Path, request: pytest.FixtureRequest,
          tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Build every bomb plate, run them all in one limited child; ``{case: (culprit, report, out)}``."""
    root = tmp_path_factory.mktemp("bombs")
    culprits: dict[str, Path] = {}
    plates: dict[str, Path] = {}
    for position in ("header", "pixels"):
        plate = plates[f"tiff {position}"] = copy_plate(tiny_plate, root / f"tiff-{position}")
        culprits[f"tiff {position}"] = _tiff_bomb(plate, position)
    for key in HTD_COUNTS:
        plate = plates[f"htd {key}"] = copy_plate(tiny_plate, root / f"htd-{key}")
        culprits[f"htd {key}"] = _htd_counts(plate, key)
    try:  # the real Harmony plate is only used when ../shared/data is present
        shared_data = request.getfixturevalue("shared_data")
    except pytest.skip.Exception:
        shared_data = None
    if shared_data is not None:
        harmony = plates["harmony tiff"] = copy_plate(shared_data / HARMONY, root / "harmony")
        first_tile = harmony / "Images" / "r03c03f01p01-ch1sk1fk1fl1.tiff"  # read at open time
        culprits["harmony tiff"] = huge_tiff(first_tile, 100_000, 100_000)
    assert all(r.status == "done" for r in run(tiny_plate, root / "zarr-source").values())
    zplate = copy_plate(next((root / "zarr-source").glob("*.ome.zarr")), root / "zarr" / "plate.ome.zarr")
    plates["zarr array"] = culprits["zarr array"] = _zarr_bomb(zplate)
    names = sorted(plates)
    outs = {n: root / "out" / n.replace(" ", "-") for n in names}
    reports = run_isolated([(plates[n], outs[n]) for n in names], memory_gib=6, timeout_s=90)
    return {n: (culprits[n], r, outs[n]) for n, r in zip(names, reports)}


@pytest.mark.parametrize("position", ["header", "pixels"])
def test_tiff_claiming_100000_squared_pixels_fails_only_its_well(
        bombs: dict[str, Any], position: str, nothing_lost: Callable[..., None]) -> None:
    tile, report, out = bombs[f"tiff {position}"]
    assert report["error"] is None, report["error"]
    bad = report["results"][BAD]
    assert bad["status"] == "failed" and str(tile) in bad["error"], bad
    assert re.search(r"100000 ?x ?100000 px", bad["error"]), bad["error"]
    if position == "header":  # refused at compile time
        assert str(tile) in "; ".join(report["incomplete"][BAD])
    assert all(report["results"][w]["status"] == "done" for w in GOOD), report["results"]
    nothing_lost(out, GOOD, absent=[BAD])


@pytest.mark.parametrize("key", list(HTD_COUNTS))
def test_absurd_htd_count_is_refused_or_ignored(bombs: dict[str, Any], key: str,
                                                nothing_lost: Callable[..., None]) -> None:
    htd, report, out = bombs[f"htd {key}"]
    if report["error"] is not None:  # refused: then it must name the HTD
        assert report["error_type"] == "PlateFormatError" and str(htd) in report["error"], report
        return
    assert all(report["results"][w]["status"] == "done" for w in WELLS), report["results"]
    nothing_lost(out, WELLS)  # ignored: the files are the truth


@pytest.mark.parametrize("case", ["harmony tiff", "zarr array"])
def test_plate_declaring_100000_squared_pixels_is_refused_at_initialize(bombs: dict[str, Any],
                                                                         case: str) -> None:
    if case not in bombs:
        pytest.skip("the real Harmony sample plate (../shared/data) is not available")
    culprit, report, out = bombs[case]
    assert report["error_type"] == "PlateFormatError", report
    assert str(culprit) in report["error"] and "100000 x 100000 px is not plausible" in report["error"]
    assert not out.exists(), "nothing may be written when the plate is refused"
