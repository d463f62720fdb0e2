"""The synthetic plate generator: ImageXpress export layout, metadata, and a ground truth that holds."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_openhcs.testing import PRESETS, SyntheticPlateSpec, load_ground_truth, make_synthetic_plate
from napari_openhcs.testing.synthetic import ground_truth_path

EXPORT_NAME = re.compile(r"^(?P<plate>.+)_(?P<well>[A-Z]{1,2}\d{2})(?:_s(?P<site>\d+))?(?:_w(?P<wave>\d))?"
                         r"\.TIF$")
GT_AND_PLATE = ["synthetic_plate", "synthetic_plate_ground_truth.json"]


def props(path: Path) -> dict[str, str]:
    """Parse a TIFF's MetaSeries XML into ``{id: value}`` (prop and custom-prop alike)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert tif.is_metaseries and page.software == "MetaSeries"
        root = ET.fromstring(page.description)
    assert root.tag == "MetaData"
    return {el.get("id"): el.get("value") for el in root.iter() if el.tag in ("prop", "custom-prop")}


def htd_entries(data: bytes) -> list[tuple[str, list[str]]]:
    """Split HTD bytes into ``(key, values)`` per line (keys as written, values unquoted)."""
    out = []
    for line in data.decode("latin-1").split("\r\n")[:-1]:
        key, _, rest = line.partition(",")
        out.append((key.strip('"'), [v.strip().strip('"') for v in rest.split(",")] if rest else []))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_synthetic_plate(tmp_path_factory.mktemp("tiny"), spec="tiny", seed=0)


# ------------------------------------------------------------------ layout
def test_tiny_plate_has_the_metaxpress_export_layout(tiny: Path) -> None:
    spec = PRESETS["tiny"]
    files = {p.relative_to(tiny).as_posix() for p in tiny.rglob("*") if p.is_file()}
    expected = {"synthetic.HTD", "TimePoint_1/synthetic.HTD"}
    for z in range(spec.z_planes + 1):  # ZStep_0 holds the projections
        expected.add(f"TimePoint_1/ZStep_{z}/synthetic.HTD")
        for well in spec.wells:
            for site in range(1, spec.n_sites + 1):
                for wave in range(1, len(spec.channels) + 1):
                    expected.add(f"TimePoint_1/ZStep_{z}/synthetic_{well}_s{site}_w{wave}.TIF")
    assert files == expected
    for rel in files - {f for f in files if f.endswith(".HTD")}:
        assert EXPORT_NAME.match(rel.rsplit("/", 1)[1]), rel
    htds = {(tiny / f).read_bytes() for f in files if f.endswith(".HTD")}
    assert len(htds) == 1, "every HTD copy must be identical"
    # the ground truth lives beside the plate folder, never inside it
    assert ground_truth_path(tiny) == tiny.parent / "synthetic_plate_ground_truth.json"
    assert sorted(p.name for p in tiny.parent.iterdir()) == GT_AND_PLATE


def test_tiffs_are_single_page_uncompressed_uint16(tiny: Path) -> None:
    path = tiny / "TimePoint_1/ZStep_1/synthetic_A01_s1_w1.TIF"
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages) == 1
        page = tif.pages[0]
        assert page.dtype == np.uint16 and page.shape == PRESETS["tiny"].tile_shape
        assert page.compression == tifffile.COMPRESSION.NONE


def test_htd_is_crlf_with_the_instrument_keys(tiny: Path) -> None:
    data = (tiny / "synthetic.HTD").read_bytes()
    assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r\n")
    with pytest.raises(UnicodeDecodeError):  # the Description has MetaXpress's non-UTF-8 separators
        data.decode("utf-8")
    entries = htd_entries(data)
    keys = [k for k, _ in entries]
    assert entries[0] == ("HTSInfoFile", ["Version 1.0"])
    assert keys[-1] == "EndFile"
    d = dict(entries)
    assert d["PlateType"] == ["2"] and d["XWells"] == ["12"] and d["YWells"] == ["8"]
    assert d["ZSeries"] == ["TRUE"] and d["ZSteps"] == ["2"] and d["ZProjection"] == ["TRUE"]
    assert d["WellsSelection1"][:3] == ["TRUE", "TRUE", "FALSE"] and set(d["WellsSelection2"]) == {"FALSE"}
    assert d["Sites"] == ["TRUE"] and d["XSites"] == ["2"] and d["YSites"] == ["2"]
    assert d["SiteSelection1"] == ["TRUE", "TRUE"] and d["SiteSelection2"] == ["TRUE", "TRUE"]
    assert d["Waves"] == ["TRUE"] and d["NWavelengths"] == ["2"]
    assert d["WaveName1"] == ["DAPI"] and d["WaveName2"] == ["FITC"]
    guid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(guid, d["UniquePlateIdentifier"][0])


def test_htd_keys_follow_the_real_export(shared_data: Path, tmp_path: Path) -> None:
    real = shared_data / "imagexpress_mxp_export_zstack_9987_3434" / "9987_Plate_3434"
    plate = make_synthetic_plate(tmp_path, spec="tiny", plate_name="9987", wells=("B02", "B03"), grid=(1, 2),
                                 channels=("DAPI", "FITC", "Texas Red", "Cy5"), z_planes=3)
    real_entries = htd_entries((real / "9987.HTD").read_bytes())
    ours = htd_entries((plate / "9987.HTD").read_bytes())
    assert [k for k, _ in ours] == [k for k, _ in real_entries]
    skip = {"Description", "UniquePlateIdentifier"}
    assert [e for e in ours if e[0] not in skip] == [e for e in real_entries if e[0] not in skip]
    # the TIFFs carry every MetaSeries key a reader uses, with the same types
    real_props = props(real / "TimePoint_1/ZStep_1/9987_B02_s1_w1.TIF")
    our_props = props(plate / "TimePoint_1/ZStep_1/9987_B02_s1_w1.TIF")
    used = ["spatial-calibration-x", "spatial-calibration-y", "pixel-size-x", "pixel-size-y",
            "stage-position-x", "stage-position-y", "z-position", "stage-label", "wavelength", "image-name",
            "acquisition-time-local", "SiteX", "SiteY", "OffsetFromWellCenterUmX", "OffsetFromWellCenterUmY",
            "Z Step", "_MagSetting_"]
    assert set(used) <= set(real_props) and set(used) <= set(our_props)
    real_proj = props(real / "TimePoint_1/ZStep_0/9987_B02_s1_w1.TIF")
    our_proj = props(plate / "TimePoint_1/ZStep_0/9987_B02_s1_w1.TIF")
    assert real_proj["Z Projection Method"] == our_proj["Z Projection Method"] == "Maximum"


def test_single_plane_site_and_channel_drop_folders_and_name_parts(tmp_path: Path) -> None:
    plate = make_synthetic_plate(tmp_path, spec="tiny", wells=("C07",), grid=(1, 1), channels=("DAPI",),
                                 z_planes=1)
    files = sorted(p.relative_to(plate).as_posix() for p in plate.rglob("*") if p.is_file())
    assert files == ["TimePoint_1/synthetic.HTD", "TimePoint_1/synthetic_C07.TIF", "synthetic.HTD"]
    d = dict(htd_entries((plate / "synthetic.HTD").read_bytes()))
    assert d["Sites"] == ["FALSE"] and d["Waves"] == ["FALSE"] and d["ZSeries"] == ["FALSE"]
    assert d["ZSteps"] == ["0"] and "SiteSelection1" not in d


def test_projection_flag_and_timepoints(tmp_path: Path) -> None:
    plate = make_synthetic_plate(tmp_path, spec="tiny", wells=("A01",), timepoints=2, projections=False)
    assert sorted(p.name for p in plate.iterdir()) == ["TimePoint_1", "TimePoint_2", "synthetic.HTD"]
    for t in (1, 2):
        names = sorted(p.name for p in (plate / f"TimePoint_{t}").iterdir())
        assert names == ["ZStep_1", "ZStep_2", "synthetic.HTD"]
    truth = load_ground_truth(plate)["wells"]["A01"]
    yx = np.asarray(truth["nuclei_yx"])
    assert yx.shape == (2, truth["n_nuclei"], 2)
    moved = np.linalg.norm(yx[1] - yx[0], axis=1)
    assert 0 < moved.mean() < 3, "objects move a little between timepoints"
    a, b = (tifffile.imread(plate / f"TimePoint_{t}/ZStep_1/synthetic_A01_s1_w1.TIF") for t in (1, 2))
    assert not np.array_equal(a, b)


def test_projection_is_the_maximum_of_the_planes(tiny: Path) -> None:
    name = "synthetic_A02_s3_w2.TIF"
    planes = [tifffile.imread(tiny / f"TimePoint_1/ZStep_{z}/{name}") for z in (1, 2)]
    np.testing.assert_array_equal(tifffile.imread(tiny / f"TimePoint_1/ZStep_0/{name}"), np.maximum(*planes))


# ------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    rel = "TimePoint_1/ZStep_1/synthetic_A02_s2_w1.TIF"
    a = make_synthetic_plate(tmp_path / "a", spec="tiny", seed=5)
    b = make_synthetic_plate(tmp_path / "b", spec="tiny", seed=5)
    c = make_synthetic_plate(tmp_path / "c", spec="tiny", seed=6)
    assert (a / rel).read_bytes() == (b / rel).read_bytes()
    assert (a / "synthetic.HTD").read_bytes() == (b / "synthetic.HTD").read_bytes()
    assert load_ground_truth(a) == load_ground_truth(b)
    assert not np.array_equal(tifffile.imread(a / rel), tifffile.imread(c / rel))
    assert load_ground_truth(a)["wells"] != load_ground_truth(c)["wells"]


# ------------------------------------------------------------------ metadata
def test_metadata_carries_pixel_size_and_nominal_stage_positions(tiny: Path) -> None:
    truth = load_ground_truth(tiny)
    spec = PRESETS["tiny"]
    for well, wt in truth["wells"].items():
        for site in wt["sites"]:
            p = props(tiny / f"TimePoint_1/ZStep_1/synthetic_{well}_s{site['site']}_w2.TIF")
            assert float(p["spatial-calibration-x"]) == spec.pixel_size_um
            assert float(p["spatial-calibration-y"]) == spec.pixel_size_um
            assert float(p["stage-position-x"]) == pytest.approx(site["stage_x_um"])
            assert float(p["stage-position-y"]) == pytest.approx(site["stage_y_um"])
            assert p["stage-label"] == f"{well} : Site {site['site']}"
            assert [int(float(p["SiteX"])), int(float(p["SiteY"]))] == site["site_xy"]
            assert p["image-name"] == "FITC" and float(p["wavelength"]) == 520.0
            assert int(p["pixel-size-x"]) == spec.tile_shape[1]
        # stage positions are the nominal grid, in µm; stage y grows with image y
        s1 = wt["sites"][0]
        for site in wt["sites"][1:]:
            dy = (site["stage_y_um"] - s1["stage_y_um"]) / spec.pixel_size_um
            dx = (site["stage_x_um"] - s1["stage_x_um"]) / spec.pixel_size_um
            ny, nx = np.subtract(site["nominal_origin"], s1["nominal_origin"])
            assert (dy, dx) == (pytest.approx(ny, abs=0.01), pytest.approx(nx, abs=0.01))
    z = [float(props(tiny / f"TimePoint_1/ZStep_{i}/synthetic_A01_s1_w1.TIF")["z-position"]) for i in (1, 2)]
    assert z[1] - z[0] == pytest.approx(spec.z_step_um)


def test_true_origins_differ_from_nominal_by_the_jitter(tiny: Path) -> None:
    spec = PRESETS["tiny"]
    diffs = np.array([np.subtract(s["true_origin"], s["nominal_origin"])
                      for w in load_ground_truth(tiny)["wells"].values() for s in w["sites"]])
    assert np.abs(diffs).max() <= spec.jitter_px and np.any(diffs != 0)


# ------------------------------------------------------------------ ground truth holds
def overlap_strips(a: np.ndarray, b: np.ndarray, oa, ob) -> tuple[np.ndarray, np.ndarray]:
    """Return the parts of tiles ``a`` and ``b`` (origins ``oa``, ``ob``) covering the same canvas pixels."""
    h, w = a.shape
    y0, y1 = max(oa[0], ob[0]), min(oa[0], ob[0]) + h
    x0, x1 = max(oa[1], ob[1]), min(oa[1], ob[1]) + w
    return (a[y0 - oa[0]:y1 - oa[0], x0 - oa[1]:x1 - oa[1]], b[y0 - ob[0]:y1 - ob[0], x0 - ob[1]:x1 - ob[1]])


def correlation(a: np.ndarray, b: np.ndarray, oa, ob) -> float:
    sa, sb = overlap_strips(a, b, oa, ob)
    return float(np.corrcoef(sa.ravel(), sb.ravel())[0, 1])


@pytest.mark.parametrize("seed", [0, 3])
def test_neighbouring_tiles_match_at_the_true_offsets(tmp_path: Path, seed: int) -> None:
    plate = make_synthetic_plate(tmp_path, spec="tiny", seed=seed, wells=("B02",), tile_shape=(192, 192),
                                 overlap=0.15, z_planes=1, jitter_px=3, nuclei_per_site=25)
    sites = {s["site"]: s for s in load_ground_truth(plate)["wells"]["B02"]["sites"]}
    tiles = {n: tifffile.imread(plate / f"TimePoint_1/synthetic_B02_s{n}_w1.TIF").astype(float)
             for n in sites}
    for a, b in [(1, 2), (3, 4), (1, 3), (2, 4)]:  # horizontal and vertical neighbours
        oa, ob = np.array(sites[a]["true_origin"]), np.array(sites[b]["true_origin"])
        best = correlation(tiles[a], tiles[b], oa, ob)
        assert best > 0.95, (a, b, best)
        shifted = [correlation(tiles[a], tiles[b], oa, ob + (dy, dx))
                   for dy in range(-3, 4) for dx in range(-3, 4) if (dy, dx) != (0, 0)]
        assert best > max(shifted), "the true offset must be the best match nearby"
        for shift in ((0, 5), (5, 0)):
            assert correlation(tiles[a], tiles[b], oa, ob + shift) < 0.85


def test_ground_truth_nuclei_are_the_objects_in_the_image(tmp_path: Path) -> None:
    from scipy import ndimage

    plate = make_synthetic_plate(tmp_path, spec="tiny", wells=("A01",), tile_shape=(128, 128), z_planes=1,
                                 nuclei_per_site=15, seed=4)
    wt = load_ground_truth(plate)["wells"]["A01"]
    centres = np.asarray(wt["nuclei_yx"][0])
    assert wt["n_nuclei"] == len(centres) > 20
    # paste the tiles on the canvas at their true origins and find the nuclei
    canvas = np.zeros(wt["canvas_shape"])
    seen = np.zeros(wt["canvas_shape"], dtype=bool)
    for s in wt["sites"]:
        y, x = s["true_origin"]
        tile = tifffile.imread(plate / f"TimePoint_1/synthetic_A01_s{s['site']}_w1.TIF")
        canvas[y:y + 128, x:x + 128] = tile
        seen[y:y + 128, x:x + 128] = True
        ty, tx = centres[:, 0] - y, centres[:, 1] - x
        assert s["n_nuclei"] == int(np.sum((ty >= 0) & (ty < 128) & (tx >= 0) & (tx < 128)))
    labels, n_found = ndimage.label(canvas > 400)
    inner = ndimage.binary_erosion(seen, iterations=12)
    iy, ix = np.round(centres).astype(int).T
    ok = (iy >= 0) & (iy < inner.shape[0]) & (ix >= 0) & (ix < inner.shape[1])
    visible = ok.copy()
    visible[ok] = inner[iy[ok], ix[ok]]
    hit = labels[iy[visible], ix[visible]]
    assert visible.sum() > 20 and np.all(hit > 0), "every true nucleus is a bright object"
    assert len(set(hit.tolist())) == len(hit), "no two true nuclei merge into one object"
    assert n_found <= wt["n_nuclei"], "no object that is not a true nucleus"


# ------------------------------------------------------------------ safety and spec
def test_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    plate = make_synthetic_plate(tmp_path, spec="tiny", wells=("A01",), seed=1)
    before = (plate / "synthetic.HTD").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_synthetic_plate(tmp_path, spec="tiny", wells=("A01",), seed=2)
    again = make_synthetic_plate(tmp_path, spec="tiny", wells=("A01",), seed=2, overwrite=True)
    assert again == plate and (plate / "synthetic.HTD").read_bytes() != before
    assert load_ground_truth(plate)["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == GT_AND_PLATE


@pytest.mark.parametrize("bad", [
    {"plate_name": "../escape"}, {"plate_name": "a/b"}, {"wells": ("Z99",)}, {"channels": ()},
    {"overlap": 1.0}, {"tile_shape": (8, 8)}, {"no_such_field": 1},
])
def test_invalid_parameters_are_refused_before_writing(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(ValueError):
        make_synthetic_plate(tmp_path / "out", spec="tiny", **bad)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["out"])


def test_unknown_preset_names_the_presets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tiny"):
        make_synthetic_plate(tmp_path, spec="huge")


def test_presets_have_the_documented_sizes() -> None:
    assert set(PRESETS) >= {"tiny", "sample", "small", "large", "xl"}
    assert all(isinstance(s, SyntheticPlateSpec) for s in PRESETS.values())
    small, large = PRESETS["small"], PRESETS["large"]
    assert (len(small.wells), small.grid, small.tile_shape, small.z_planes) == (4, (3, 3), (256, 256), 3)
    assert (small.overlap, small.jitter_px, len(small.channels)) == (0.1, 2, 2)
    assert large.tile_shape == (1024, 1024) and large.grid == (3, 3)
    planes_only = large.nbytes() * large.z_planes // (large.z_planes + 1)
    assert planes_only == pytest.approx(453e6, rel=0.01)
    assert len(PRESETS["xl"].wells) == 24


def test_a_plate_without_nuclei_is_background_only(tmp_path: Path) -> None:
    """An empty-well control plate (``nuclei_per_site=0``) is written, with nothing but background."""
    plate = make_synthetic_plate(tmp_path, spec="tiny", wells=("A01",), tile_shape=(64, 64), z_planes=1,
                                 nuclei_per_site=0)
    wt = load_ground_truth(plate)["wells"]["A01"]
    assert wt["n_nuclei"] == 0
    tiles = sorted((plate / "TimePoint_1").glob("synthetic_A01_s*_w*.TIF"))
    assert tiles
    for path in tiles:
        tile = tifffile.imread(path).astype(float)
        # camera offset plus background noise only: no bright object anywhere
        assert tile.max() - np.median(tile) < 100, path.name
