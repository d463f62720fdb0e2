"""Opera Phenix / Operetta CLS (Harmony V5 ``Index.idx.xml`` and V7 ``Index.xml``) plates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_openhcs.microscopes import opera_phenix
from napari_openhcs.microscopes._harmony_xml import parse_harmony_index
from napari_openhcs.microscopes.detect import PlateFormatError, detect_microscope, open_plate

PHENIX = "phenix_harmonyv5_jump_BR00121482"
OPERETTA = "operetta_cls_harmonyv5_operetta_compose"


# ----------------------------------------------------------------------------- real data
def test_phenix_jump_plate_matches_provenance(shared_data: Path) -> None:
    plate = open_plate(shared_data / PHENIX)
    assert plate.microscope == "opera_phenix"
    assert plate.root == shared_data / PHENIX / "Images"
    assert plate.name == "BR00121482"
    assert (plate.rows, plate.columns) == (16, 24)
    assert plate.wells == ("A01",)
    assert plate.sites == (1,) and plate.z_indices == (1,) and plate.timepoints == (1,)
    assert [(c.index, c.name) for c in plate.channels] == [
        (1, "Alexa 647"),
        (2, "Alexa 568"),
        (3, "488 long"),
        (4, "Alexa 488"),
        (5, "HOECHST 33342"),
        (6, "Brightfield"),
    ]
    assert plate.channels[0].wavelength_nm == 706  # emission
    assert plate.channels[5].wavelength_nm is None  # brightfield: emission 0
    assert plate.pixel_size_um == pytest.approx(0.5979760809567617)
    assert plate.image_shape == (1080, 1080) and plate.dtype == "uint16"
    assert plate.site_positions == (("A01", 1, 0.0, 0.0),)
    assert plate.site_grid == (1, 1)
    assert plate.z_spacing_um is None
    assert plate.missing == ()
    assert len(plate.records) == 6
    meta = dict(plate.metadata)
    assert meta["instrument"] == "Phenix"
    assert meta["plate_type"] == "384 PerkinElmer CellCarrier Ultra"
    assert meta["format"].startswith("Harmony V5")


def test_phenix_reads_real_hoechst_pixels(shared_data: Path) -> None:
    plate = open_plate(shared_data / PHENIX)
    (rec,) = [r for r in plate.records if r.channel == 5]
    assert rec.path == "r01c01f01p01-ch5sk1fk1fl1.tiff"
    img = plate.read(rec)
    assert img.shape == (1080, 1080) and img.dtype == np.uint16
    assert (int(img.min()), int(img.max())) == (170, 65535)
    assert len(np.unique(img)) == 5799


def test_phenix_v5_timepoint_is_zero_based_in_xml(shared_data: Path) -> None:
    index = parse_harmony_index(shared_data / PHENIX / "Images" / "Index.idx.xml")
    assert index.version == "V5"
    assert {im.timepoint for im in index.images} == {1}  # TimepointID 0 -> sk1


def test_phenix_opens_from_images_folder_too(shared_data: Path) -> None:
    assert opera_phenix.detect(shared_data / PHENIX / "Images")
    plate = opera_phenix.open_plate(shared_data / PHENIX / "Images")
    assert plate.root == shared_data / PHENIX / "Images" and len(plate.records) == 6


def test_operetta_plate_matches_provenance(shared_data: Path) -> None:
    assert detect_microscope(shared_data / OPERETTA) == "opera_phenix"
    plate = open_plate(shared_data / OPERETTA)
    assert plate.name == "Test_Sample_BALL"
    assert (plate.rows, plate.columns) == (16, 24)
    assert plate.wells == ("C03",)
    assert plate.sites == (1, 2)
    assert [(c.index, c.name, c.wavelength_nm) for c in plate.channels] == [
        (1, "Fluorescein (FITC)", 525.0)
    ]
    assert plate.pixel_size_um == pytest.approx(1.1959521619135234)
    assert plate.image_shape == (1080, 1080) and plate.dtype == "uint16"
    # f1 at X = -645.814 µm, f2 at +645.814 µm, both at stage Y = +645.814 µm (image y down).
    assert plate.site_positions == (
        ("C03", 1, pytest.approx(-645.814), pytest.approx(-645.814)),
        ("C03", 2, pytest.approx(-645.814), pytest.approx(645.814)),
    )
    assert plate.site_grid == (1, 2)
    (y1, x1), (y2, x2) = plate.site_position_um("C03", 1), plate.site_position_um("C03", 2)
    assert y1 == y2
    assert x2 - x1 == pytest.approx(1080 * plate.pixel_size_um, abs=0.01)  # fields abut
    meta = dict(plate.metadata)
    assert meta["instrument"] == "Sonata" and meta["plate_type"] == "384 Greiner µClear"


def test_operetta_reads_both_fields(shared_data: Path) -> None:
    plate = open_plate(shared_data / OPERETTA)
    stats = []
    for rec in plate.records:
        img = plate.read(rec)
        assert img.shape == (1080, 1080) and img.dtype == np.uint16
        stats.append((rec.site, int(img.min()), int(img.max())))
    assert stats == [(1, 120, 47088), (2, 159, 52368)]


# ----------------------------------------------------------------------- V7 fixture
V7_NS = "43B2A954-E3C3-47E1-B392-6635266B0DD3/HarmonyV7"
# Acquisition order is a snake: f1 top-left, f2 top-right, f3 bottom-right, f4 bottom-left.
V7_FIELDS = {1: (-4e-6, 3e-6), 2: (4e-6, 3e-6), 3: (4e-6, -3e-6), 4: (-4e-6, -3e-6)}


def _pixel_value(field: int, ch: int, plane: int, t: int) -> int:
    return 1000 * field + 100 * ch + 10 * plane + t


def _v7_image(field: int, ch: int, plane: int, t: int) -> str:
    x, y = V7_FIELDS[field]
    return f"""
    <Image Version="1">
      <id>0203K{t}F{field}P{plane}R{ch}</id><State>Ok</State>
      <URL>r02c03f{field:02d}p{plane:02d}-ch{ch}sk{t}fk1fl1.tiff</URL>
      <Row>2</Row><Col>3</Col><FieldID>{field}</FieldID><PlaneID>{plane}</PlaneID>
      <TimepointID>{t}</TimepointID><FlimID>1</FlimID><ChannelID>{ch}</ChannelID>
      <PositionX Unit="m">{x}</PositionX><PositionY Unit="m">{y}</PositionY>
      <PositionZ Unit="m">{plane * 2.5e-6}</PositionZ>
      <MeasurementTimeOffset Unit="s">{t * 60}</MeasurementTimeOffset>
      <SequenceID>1</SequenceID><GroupID>1</GroupID>
    </Image>"""


def _v7_entry(ch: int, name: str, size_x: int = 8, size_y: int = 6) -> str:
    return f"""
      <Entry ChannelID="{ch}">
        <ChannelName>{name}</ChannelName>
        <ImageResolutionX Unit="m">2.96688132474701E-07</ImageResolutionX>
        <ImageResolutionY Unit="m">2.96688132474701E-07</ImageResolutionY>
        <ImageSizeX>{size_x}</ImageSizeX><ImageSizeY>{size_y}</ImageSizeY>
        <BinningX>1</BinningX><BinningY>1</BinningY><MaxIntensity>65536</MaxIntensity>
        <MainExcitationWavelength Unit="nm">405</MainExcitationWavelength>
        <MainEmissionWavelength Unit="nm">456</MainEmissionWavelength>
        <ObjectiveMagnification Unit="">20</ObjectiveMagnification>
        <ObjectiveNA Unit="">1</ObjectiveNA>
        <ExcitationPower Unit="Percent">50</ExcitationPower>
      </Entry>"""


def _write_v7(
    measurement: Path, images: list[tuple[int, int, int, int]], *, size_x: int = 8,
    extra_files: tuple[tuple[int, int, int, int], ...] = (),
    skip_files: tuple[tuple[int, int, int, int], ...] = (),
) -> Path:
    folder = measurement / "Images"
    folder.mkdir(parents=True)
    body = "".join(_v7_image(*im) for im in images)
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<EvaluationInputData xmlns:xsd="http://www.w3.org/2001/XMLSchema" Version="2" xmlns="{V7_NS}">
  <User>tester</User>
  <InstrumentType>Phenix</InstrumentType>
  <Plates><Plate>
    <PlateID>V7PLATE</PlateID><MeasurementID>m-1</MeasurementID><Name>V7 plate</Name>
    <PlateTypeName>96 PhenoPlate</PlateTypeName><PlateRows>8</PlateRows>
    <PlateColumns>12</PlateColumns><Well id="0203" />
  </Plate></Plates>
  <Wells><Well><id>0203</id><Row>2</Row><Col>3</Col></Well></Wells>
  <Maps>
    <Map><Entry ChannelID="1"><FlatfieldProfile>{{a: 1}}</FlatfieldProfile></Entry></Map>
    <Map><Entry ChannelID="1"><SkewcropParameters>AAAA</SkewcropParameters></Entry></Map>
    <Map>{_v7_entry(1, "HOECHST 33342", size_x)}{_v7_entry(2, "Alexa 488", size_x)}
    </Map>
  </Maps>
  <Images>{body}
  </Images>
</EvaluationInputData>
"""
    (folder / "Index.xml").write_text(xml, encoding="utf-8")
    for im in [*images, *extra_files]:
        if im in skip_files:
            continue
        f, c, p, t = im
        data = np.full((6, 8), _pixel_value(f, c, p, t), dtype=np.uint16)
        tifffile.imwrite(folder / f"r02c03f{f:02d}p{p:02d}-ch{c}sk{t}fk1fl1.tiff", data)
    return folder


ALL_V7 = [(f, c, p, t) for f in (1, 2, 3, 4) for c in (1, 2) for p in (1, 2) for t in (1, 2)]


def test_v7_index_parser_normalises_timepoints(tmp_path: Path) -> None:
    folder = _write_v7(tmp_path / "meas", ALL_V7)
    index = parse_harmony_index(folder / "Index.xml")
    assert index.version == "V7" and index.instrument == "Phenix"
    assert {im.timepoint for im in index.images} == {1, 2}  # already 1-based in V7
    assert index.channels[2].name == "Alexa 488" and index.channels[2].size_x == 8
    assert index.plate["PlateID"] == "V7PLATE"


def test_v7_index_xml_is_read(tmp_path: Path) -> None:
    _write_v7(tmp_path / "meas", ALL_V7)
    assert detect_microscope(tmp_path / "meas") == "opera_phenix"
    plate = open_plate(tmp_path / "meas")
    assert plate.name == "V7 plate" and (plate.rows, plate.columns) == (8, 12)
    assert plate.wells == ("B03",)
    assert [(c.index, c.name) for c in plate.channels] == [(1, "HOECHST 33342"), (2, "Alexa 488")]
    assert plate.pixel_size_um == pytest.approx(0.296688132474701)
    assert plate.timepoints == (1, 2)  # TimepointID is 1-based in V7
    assert plate.z_indices == (1, 2) and plate.z_spacing_um == pytest.approx(2.5)
    assert plate.image_shape == (6, 8) and plate.dtype == "uint16"
    assert plate.site_grid == (2, 2)
    assert dict(plate.metadata)["format"] == "Harmony V7 (Index.xml)"
    # Raster order: f1 (top-left) s1, f2 (top-right) s2, f4 (bottom-left) s3, f3 s4.
    assert plate.site_positions == (
        ("B03", 1, pytest.approx(-3.0), pytest.approx(-4.0)),
        ("B03", 2, pytest.approx(-3.0), pytest.approx(4.0)),
        ("B03", 3, pytest.approx(3.0), pytest.approx(-4.0)),
        ("B03", 4, pytest.approx(3.0), pytest.approx(4.0)),
    )
    assert len(plate.records) == len(ALL_V7)
    assert list(plate.records) == sorted(plate.records)
    by_key = {(r.site, r.channel, r.z, r.t): r for r in plate.records}
    for (site, ch, z, t), field in [((1, 1, 1, 1), 1), ((2, 2, 2, 2), 2), ((3, 1, 2, 1), 4),
                                    ((4, 2, 1, 2), 3)]:
        img = plate.read(by_key[(site, ch, z, t)])
        assert img.shape == (6, 8) and img.dtype == np.uint16
        assert int(img[0, 0]) == _pixel_value(field, ch, z, t)


def test_files_on_disk_are_the_truth(tmp_path: Path) -> None:
    listed = [(f, 1, 1, 1) for f in (1, 2, 3, 4)]
    _write_v7(tmp_path / "meas", listed, skip_files=((3, 1, 1, 1),), extra_files=((1, 2, 1, 1),))
    plate = open_plate(tmp_path / "meas", microscope="phenix")
    assert [m for _, m in plate.missing] == [
        "r02c03f03p01-ch1sk1fk1fl1.tiff is listed in Index.xml but not on disk"
    ]
    assert plate.missing_for("B03")
    assert {r.path for r in plate.records} >= {"r02c03f01p01-ch2sk1fk1fl1.tiff"}
    assert len(plate.records) == 4  # 3 listed and present + 1 unlisted
    assert plate.channels[1].name == "Alexa 488"


def test_truncated_index_names_the_file(tmp_path: Path) -> None:
    folder = _write_v7(tmp_path / "meas", ALL_V7[:2])
    index = folder / "Index.xml"
    index.write_bytes(index.read_bytes()[:900])
    with pytest.raises(PlateFormatError, match=r"Index\.xml.*(malformed|truncated)"):
        opera_phenix.open_plate(tmp_path / "meas")


def test_doctype_and_entities_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "Images"
    folder.mkdir()
    (folder / "Index.idx.xml").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE EvaluationInputData [<!ENTITY a "aaaa">]>\n'
        "<EvaluationInputData><User>&a;</User></EvaluationInputData>\n"
    )
    with pytest.raises(PlateFormatError, match="DOCTYPE or ENTITY"):
        opera_phenix.open_plate(tmp_path)


def test_absurd_image_size_is_refused(tmp_path: Path) -> None:
    _write_v7(tmp_path / "meas", ALL_V7[:2], size_x=10**9)
    with pytest.raises(PlateFormatError, match=r"Index\.xml.*not plausible"):
        opera_phenix.open_plate(tmp_path / "meas")


def test_url_escaping_the_plate_is_refused(tmp_path: Path) -> None:
    folder = _write_v7(tmp_path / "meas", ALL_V7[:1])
    index = folder / "Index.xml"
    index.write_text(index.read_text().replace(
        "<URL>r02c03f01", "<URL>../../r02c03f01"))
    with pytest.raises(PlateFormatError, match="escape"):
        opera_phenix.open_plate(tmp_path / "meas")


def test_non_harmony_index_is_not_detected(tmp_path: Path) -> None:
    (tmp_path / "Images").mkdir()
    (tmp_path / "Images" / "Index.xml").write_text("<html><body>index</body></html>")
    assert not opera_phenix.detect(tmp_path)
    assert opera_phenix.parse_file_name("r03c03f02p01-ch1sk1fk1fl1.tiff") == (
        "C03", 2, 1, 1, 1, 1, 1)
    assert opera_phenix.parse_file_name("r03c03f02p01-ch1sk1fk1fl1.png") is None


def test_projections_are_refused(shared_data: Path) -> None:
    with pytest.raises(PlateFormatError, match="planes"):
        opera_phenix.open_plate(shared_data / OPERETTA, source="projections")


@pytest.mark.parametrize("folder", [
    "omezarr_hcs_bf2raw_plate_rows2", "yokogawa_cv8000_minimal_zero_pixels",
    "imagexpress_mxp_export_zstack_9987_3434", "stitching_starrynight_graphpaper_tiles",
])
def test_other_formats_are_not_claimed(shared_data: Path, folder: str) -> None:
    assert not opera_phenix.detect(shared_data / folder)


def test_z_spacing_is_the_plates_not_the_first_stacks(tmp_path: Path) -> None:
    folder = _write_v7(tmp_path / "meas", ALL_V7)
    index = folder / "Index.xml"
    text = index.read_text(encoding="utf-8")
    first = '<PositionZ Unit="m">5e-06</PositionZ>'  # plane 2 of the first stack (f1, ch1, t1)
    assert first in text
    index.write_text(text.replace(first, '<PositionZ Unit="m">4.98e-06</PositionZ>', 1), encoding="utf-8")
    # the first stack says 2.48 µm, the other 15 say 2.5 µm
    assert open_plate(tmp_path / "meas").z_spacing_um == pytest.approx(2.5)


def test_wells_outside_the_declared_layout_widen_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = _write_v7(tmp_path / "meas", ALL_V7)
    index = folder / "Index.xml"
    text = index.read_text(encoding="utf-8")
    text = text.replace("<PlateRows>8</PlateRows>", "<PlateRows>1</PlateRows>")
    index.write_text(text.replace("<PlateColumns>12</PlateColumns>", "<PlateColumns>2</PlateColumns>"),
                     encoding="utf-8")
    plate = open_plate(tmp_path / "meas")
    assert plate.wells == ("B03",) and (plate.rows, plate.columns) == (2, 3)
    assert "1 x 2" in caplog.text and "B03" in caplog.text


def test_single_digit_field_numbers_as_openhcs_writes_them(tmp_path: Path) -> None:
    # OpenHCS's synthetic generator names Harmony images r01c01f1p01-ch1sk1fk1fl1.tiff
    assert opera_phenix.parse_file_name("r01c01f1p01-ch2sk1fk1fl1.tiff")[:5] == ("A01", 1, 1, 2, 1)
    folder = _write_v7(tmp_path / "meas", ALL_V7)
    index = folder / "Index.xml"
    text = index.read_text(encoding="utf-8")
    for path in sorted(folder.glob("*.tiff")):
        short = path.name.replace("f0", "f", 1)
        path.rename(folder / short)
        text = text.replace(f"<URL>{path.name}</URL>", f"<URL>{short}</URL>")
    index.write_text(text, encoding="utf-8")
    plate = open_plate(tmp_path / "meas")
    assert len(plate.records) == len(ALL_V7) and plate.missing == () and plate.sites == (1, 2, 3, 4)
