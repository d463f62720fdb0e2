"""Parsing PerkinElmer/Revvity Harmony ``Index.idx.xml`` (V5) and ``Index.xml`` (V7).

The parser streams the file (a large screen's index can be hundreds of MB) and never
depends on the namespace URI: V5 uses ``http://www.perkinelmer.com/PEHH/HarmonyV5``, V7 a
non-URL ``43B2A954-.../HarmonyV7``. Lengths are converted to µm, and ``TimepointID`` is
normalised to 1-based (it is 0-based in V5 and 1-based in V7).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ._handler_utils import unit_factor_um
from ._safe_xml import child_texts, iter_elements, local_attrib, local_name, namespace
from .detect import PlateFormatError

logger = logging.getLogger(__name__)

_IMAGE_ID_RE = re.compile(r"^\d{4}K(\d+)F(\d+)P(\d+)R(\d+)$")


@dataclass(frozen=True, slots=True)
class HarmonyChannel:
    """Per-channel description (from the images in V5, from the third ``Map`` in V7)."""

    channel_id: int
    name: str | None = None
    pixel_size_um: float | None = None
    size_x: int | None = None
    size_y: int | None = None
    excitation_nm: float | None = None
    emission_nm: float | None = None
    objective_magnification: float | None = None
    objective_na: float | None = None


@dataclass(frozen=True, slots=True)
class HarmonyImage:
    """One ``<Image>`` of the index; positions in µm (stage axes), timepoint 1-based."""

    url: str
    row: int
    col: int
    field: int
    plane: int
    timepoint: int
    channel: int
    flim: int = 1
    x_um: float | None = None
    y_um: float | None = None
    z_um: float | None = None
    state: str = "Ok"


@dataclass
class HarmonyIndex:
    """The parsed index: plate description, channels and image entries."""

    path: Path
    version: str  # "V5", "V7" or "unknown"
    instrument: str = ""
    user: str = ""
    plate: dict[str, str] = field(default_factory=dict)
    channels: dict[int, HarmonyChannel] = field(default_factory=dict)
    images: list[HarmonyImage] = field(default_factory=list)


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _int(text: str | None) -> int | None:
    value = _num(text)
    return int(value) if value is not None and value == int(value) else None


def _length_um(entry: tuple[str, dict[str, str]] | None, default_unit: str = "m") -> float | None:
    if entry is None:
        return None
    value = _num(entry[0])
    factor = unit_factor_um(entry[1].get("Unit"), default=unit_factor_um(default_unit) or 1.0)
    if value is None or factor is None:
        return None
    return value * factor


def _channel_from(cid: int, kids: dict[str, tuple[str, dict[str, str]]]) -> HarmonyChannel:
    def text(key: str) -> str | None:
        return kids[key][0] if key in kids else None

    return HarmonyChannel(
        channel_id=cid,
        name=text("ChannelName") or None,
        pixel_size_um=_length_um(kids.get("ImageResolutionX")),
        size_x=_int(text("ImageSizeX")),
        size_y=_int(text("ImageSizeY")),
        excitation_nm=_num(text("MainExcitationWavelength")),
        emission_nm=_num(text("MainEmissionWavelength")),
        objective_magnification=_num(text("ObjectiveMagnification")),
        objective_na=_num(text("ObjectiveNA")),
    )


def _merge(old: HarmonyChannel | None, new: HarmonyChannel) -> HarmonyChannel:
    """Fill the gaps of ``old`` with ``new`` (first value seen wins)."""
    if old is None:
        return new
    values = {
        name: getattr(old, name) if getattr(old, name) is not None else getattr(new, name)
        for name in HarmonyChannel.__slots__
    }
    return HarmonyChannel(**values)


def _version(ns: str, attr_version: str | None) -> str:
    if "HarmonyV7" in ns or (not ns and attr_version == "2"):
        return "V7"
    if "HarmonyV5" in ns or (not ns and attr_version == "1"):
        return "V5"
    if attr_version == "2":
        return "V7"
    if attr_version == "1":
        return "V5"
    return "unknown"


def _image_from(
    kids: dict[str, tuple[str, dict[str, str]]], base: int | None, path: Path
) -> HarmonyImage:
    def text(key: str) -> str | None:
        return kids[key][0] if key in kids else None

    row, col = _int(text("Row")), _int(text("Col"))
    fld, plane, ch = _int(text("FieldID")), _int(text("PlaneID")), _int(text("ChannelID"))
    tp = _int(text("TimepointID"))
    image_id = text("id") or ""
    m = _IMAGE_ID_RE.match(image_id)
    if tp is not None and base is None:
        # Unknown version: the image id's K is 1-based, so it tells the base.
        base = 0 if (m and int(m.group(1)) == tp + 1) else 1
    if None in (row, col, fld, plane, ch):
        raise PlateFormatError(
            f"{path}: image {image_id or '?'} lacks Row/Col/FieldID/PlaneID/ChannelID"
        )
    timepoint = (tp + (1 if base == 0 else 0)) if tp is not None else 1
    flim = _int(text("FlimID")) or 1
    url = text("URL") or (
        f"r{row:02d}c{col:02d}f{fld:02d}p{plane:02d}-ch{ch}sk{timepoint}fk1fl{flim}.tiff"
    )
    return HarmonyImage(
        url=url,
        row=row,  # type: ignore[arg-type]
        col=col,  # type: ignore[arg-type]
        field=fld,  # type: ignore[arg-type]
        plane=plane,  # type: ignore[arg-type]
        timepoint=timepoint,
        channel=ch,  # type: ignore[arg-type]
        flim=flim,
        x_um=_length_um(kids.get("PositionX")),
        y_um=_length_um(kids.get("PositionY")),
        z_um=_length_um(kids.get("PositionZ")),
        state=text("State") or "Ok",
    )


def parse_harmony_index(path: Path) -> HarmonyIndex:
    """Parse a Harmony index file.

    Parameters
    ----------
    path : Path
        ``Index.idx.xml`` (Harmony V5) or ``Index.xml`` (Harmony V7).

    Returns
    -------
    HarmonyIndex

    Raises
    ------
    PlateFormatError
        If the file is unreadable, malformed or truncated, declares a DTD, or is not a
        Harmony index (root element other than ``EvaluationInputData``).
    """
    path = Path(path)
    index: HarmonyIndex | None = None
    base: int | None = None
    images_parent = None
    for event, elem in iter_elements(path):
        name = local_name(elem.tag)
        if event == "start":
            if index is None:
                if name != "EvaluationInputData":
                    raise PlateFormatError(
                        f"{path}: not a Harmony index (root element <{name}>, "
                        "expected <EvaluationInputData>)"
                    )
                version = _version(namespace(elem.tag), local_attrib(elem).get("Version"))
                index = HarmonyIndex(path=path, version=version)
                base = {"V5": 0, "V7": 1}.get(version)
            elif name == "Images" and images_parent is None:
                images_parent = elem
            continue
        assert index is not None
        if name == "Image" and len(elem):  # an image record (Wells/Well/Image is empty)
            kids = child_texts(elem)
            image = _image_from(kids, base, path)
            index.images.append(image)
            if image.channel not in index.channels and (
                "ChannelName" in kids or "ImageResolutionX" in kids
            ):
                index.channels[image.channel] = _channel_from(image.channel, kids)
            elem.clear()
            if images_parent is not None and len(images_parent) and images_parent[-1] is elem:
                images_parent.remove(elem)
        elif name == "Entry":  # Maps/Map/Entry
            cid = _int(local_attrib(elem).get("ChannelID"))
            kids = child_texts(elem)
            if cid is not None and ("ChannelName" in kids or "ImageResolutionX" in kids):
                index.channels[cid] = _merge(index.channels.get(cid), _channel_from(cid, kids))
            elem.clear()
        elif name == "Plate" and len(elem) and not index.plate:
            index.plate = {k: v[0] for k, v in child_texts(elem).items() if k != "Well"}
        elif name == "InstrumentType" and not index.instrument:
            index.instrument = (elem.text or "").strip()
        elif name == "User" and not index.user:
            index.user = (elem.text or "").strip()
    if index is None:
        raise PlateFormatError(f"{path}: empty XML document")
    logger.debug("%s: Harmony %s index, %d images", path, index.version, len(index.images))
    return index
