"""Write tiles as an ImageXpress plate in the MetaXpress *export* layout.

::

    <root>/<PlateName>.HTD
    <root>/TimePoint_<t>/<PlateName>.HTD
    <root>/TimePoint_<t>/[ZStep_<z>/<PlateName>.HTD]
    <root>/TimePoint_<t>/[ZStep_<z>/]<PlateName>_<Well>[_s<site>][_w<wave>].TIF

``ZStep_0`` holds maximum projections, ``ZStep_1..N`` the planes; with one plane there
are no ZStep folders. ``_s`` is left out with a single site and ``_w`` with a single
channel, as MetaXpress does. TIFFs are single-page, uncompressed uint16 with MetaSeries
XML in the ImageDescription.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import quoteattr

import numpy as np

from ..microscopes.plate import PLATE_FORMATS, parse_well
from .spec import SyntheticPlateSpec

#: HTD ``PlateType`` codes known from MetaXpress (384 -> 1, 96 -> 2); 0 for others.
PLATE_TYPE_CODES: dict[int, int] = {384: 1, 96: 2}
#: Centre-to-centre well distance in µm per plate format (SBS footprint 127.76 x 85.48 mm).
WELL_PITCH_UM: dict[int, float] = {6: 39120.0, 12: 26010.0, 24: 19300.0, 48: 13080.0, 96: 9000.0,
                                   384: 4500.0, 1536: 2250.0}
#: Emission wavelengths (nm) written for well-known channel names.
WAVELENGTHS_NM: dict[str, float] = {"DAPI": 452.0, "HOECHST": 452.0, "FITC": 520.0, "GFP": 520.0,
                                    "TRITC": 572.0, "CY3": 570.0, "TEXAS RED": 624.0, "CY5": 692.0}
#: Focus height of plane 1 in µm (stage z).
Z_BASE_UM = 9000.0
_START = datetime(2024, 1, 1, 9, 0, 0)
_CRLF = b"\r\n"
_HTD_SEPARATOR = b"\x82\x81"  # MetaXpress separates description lines with these non-UTF-8 bytes


@dataclass(frozen=True)
class ImageInfo:
    """What one TIFF records about itself.

    ``zstep`` is ``None`` for a plate with a single plane (no ZStep folder), ``0`` for a
    projection and ``1..N`` for planes. Positions are in µm.
    """

    well: str
    site: int
    site_xy: tuple[int, int]
    channel: int
    t: int
    zstep: int | None
    stage_xy_um: tuple[float, float]
    offset_xy_um: tuple[float, float]
    z_um: float


def wavelength_nm(name: str, index: int) -> float:
    """Return the emission wavelength written for channel ``name`` (1-based ``index``)."""
    return WAVELENGTHS_NM.get(name.upper(), 452.0 + 70.0 * (index - 1))


def well_centre_um(well: str, plate_format: int) -> tuple[float, float]:
    """Return the stage position ``(x, y)`` in µm of a well's centre on an SBS plate."""
    rows, cols = PLATE_FORMATS[plate_format]
    pitch = WELL_PITCH_UM.get(plate_format, 9000.0 * (96 / plate_format) ** 0.5)
    x0 = (127760.0 - (cols - 1) * pitch) / 2.0
    y0 = (85480.0 - (rows - 1) * pitch) / 2.0
    r, c = parse_well(well)
    return x0 + (c - 1) * pitch, y0 + r * pitch


def _num(v: float) -> str:
    """Format a number as MetaSeries does (no trailing zeros)."""
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _guid(*parts: object) -> uuid.UUID:
    return uuid.UUID(bytes=hashlib.md5("/".join(map(str, parts)).encode()).digest(), version=4)


class ImageXpressWriter:
    """Write the files of one plate in the MetaXpress export layout.

    Parameters
    ----------
    root : Path
        The plate folder (created by the caller).
    spec : SyntheticPlateSpec
        The plate parameters.
    seed : int
        Seed of the plate, used for its identifiers.
    """

    def __init__(self, root: Path, spec: SyntheticPlateSpec, seed: int) -> None:
        self.root = Path(root)
        self.spec = spec
        self.seed = seed
        self.z_folders = spec.z_planes > 1
        self.with_projection = self.z_folders and spec.projections

    # ------------------------------------------------------------------ layout
    def zsteps(self) -> list[int | None]:
        """Return the ZStep folders written (``[None]`` when there is a single plane)."""
        if not self.z_folders:
            return [None]
        steps: list[int | None] = [0] if self.with_projection else []
        return steps + list(range(1, self.spec.z_planes + 1))

    def folder(self, t: int, zstep: int | None) -> Path:
        """Return the folder of timepoint ``t`` (1-based) and ``zstep``."""
        base = self.root / f"TimePoint_{t}"
        return base if zstep is None else base / f"ZStep_{zstep}"

    def file_name(self, well: str, site: int, channel: int) -> str:
        """Return ``<PlateName>_<Well>[_s<site>][_w<wave>].TIF``."""
        name = f"{self.spec.plate_name}_{well}"
        if self.spec.n_sites > 1:
            name += f"_s{site}"
        if len(self.spec.channels) > 1:
            name += f"_w{channel}"
        return name + ".TIF"

    def image_path(self, info: ImageInfo) -> Path:
        """Return where the image described by ``info`` is written."""
        return self.folder(info.t, info.zstep) / self.file_name(info.well, info.site, info.channel)

    # ------------------------------------------------------------------ HTD
    def htd_bytes(self) -> bytes:
        """Return the HTD file's content (CRLF lines, latin-1 bytes)."""
        s = self.spec
        rows, cols = PLATE_FORMATS[s.plate_format]
        used = {parse_well(w) for w in s.wells}
        desc = [f"{s.timepoints}t-{len(s.channels)}w-{s.n_sites}s-{s.z_planes}z synthetic".encode()]
        mip = " + MIP" if self.with_projection else ""
        desc += [f"{ch}: {s.z_planes}z{mip}".encode() for ch in s.channels]

        def tf(flag: bool) -> str:
            return "TRUE" if flag else "FALSE"

        lines = [b'"HTSInfoFile", Version 1.0', b'"Description", "' + _HTD_SEPARATOR.join(desc) + b'"']
        text = [
            f'"PlateType", {PLATE_TYPE_CODES.get(s.plate_format, 0)}',
            f'"TimePoints", {s.timepoints}',
            f'"ZSeries", {tf(self.z_folders)}',
            f'"ZSteps", {s.z_planes if self.z_folders else 0}',
            f'"ZProjection", {tf(self.with_projection)}',
            f'"XWells", {cols}',
            f'"YWells", {rows}',
        ]
        for r in range(rows):
            flags = ", ".join(tf((r, c) in used) for c in range(1, cols + 1))
            text.append(f'"WellsSelection{r + 1}", {flags}')
        sites = s.n_sites > 1
        text += [f'"Sites", {tf(sites)}', f'"XSites", {s.grid[1]}', f'"YSites", {s.grid[0]}']
        if sites:
            text += [f'"SiteSelection{r + 1}", ' + ", ".join(["TRUE"] * s.grid[1]) for r in range(s.grid[0])]
        text += [f'"Waves", {tf(len(s.channels) > 1)}', f'"NWavelengths", {len(s.channels)}']
        text += [f'"WaveName{i}", "{ch}"' for i, ch in enumerate(s.channels, 1)]
        text += [f'"WaveCollect{i}", 1' for i in range(1, len(s.channels) + 1)]
        text += [f'"UniquePlateIdentifier", "{_guid(self.seed, s.plate_name, "plate")}"', '"EndFile"']
        lines += [line.encode("latin-1") for line in text]
        return _CRLF.join(lines) + _CRLF

    def write_htd_files(self) -> list[Path]:
        """Write the identical HTD into the plate root and every TimePoint/ZStep folder."""
        data = self.htd_bytes()
        folders = [self.root] + [self.folder(t, None) for t in range(1, self.spec.timepoints + 1)]
        if self.z_folders:
            folders += [self.folder(t, z) for t in range(1, self.spec.timepoints + 1) for z in self.zsteps()]
        written = []
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{self.spec.plate_name}.HTD"
            path.write_bytes(data)
            written.append(path)
        return written

    # ------------------------------------------------------------------ TIFF
    def acquisition_time(self, info: ImageInfo) -> str:
        """Return a deterministic ``acquisition-time-local`` (``YYYYMMDD HH:MM:SS.mmm``)."""
        s = self.spec
        w = s.wells.index(info.well)
        seconds = (info.t - 1) * 3600.0 + (w * s.n_sites + info.site - 1) * 4.0 + (info.channel - 1) * 0.9
        if info.zstep:
            seconds += 0.25 * (info.zstep - 1)
        stamp = _START + timedelta(seconds=seconds)
        return stamp.strftime("%Y%m%d %H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"

    def description(self, info: ImageInfo, tile: np.ndarray) -> str:
        """Return the MetaSeries ``<MetaData>`` XML of one image."""
        s = self.spec
        name = s.channels[info.channel - 1]
        h, w = tile.shape
        when = self.acquisition_time(info)
        free_text = "&#13;&#10;".join([
            f"Plate Name: {s.plate_name}", "Folder Name: synthetic", f"Timepoint: {info.t}",
            "Exposure: 100 ms", "Binning: 1 x 1", f"Region: {w} x {h}, offset at (0, 0)",
            "Software Version: napari-openhcs synthetic plate generator",
        ])

        def prop(key: str, typ: str, value: str, tag: str = "prop") -> str:
            return f"<{tag} id={quoteattr(key)} type=\"{typ}\" value={quoteattr(value)}/>"

        def custom(key: str, typ: str, value: str) -> str:
            return prop(key, typ, value, "custom-prop")

        plane = [
            prop("plane-type", "string", "plane"),
            prop("pixel-size-x", "int", str(w)),
            prop("pixel-size-y", "int", str(h)),
            prop("bits-per-pixel", "int", "16"),
            prop("autoscale-state", "bool", "off"),
            prop("scale-min", "int", str(int(tile.min()))),
            prop("scale-max", "int", str(int(tile.max()))),
            prop("spatial-calibration-state", "bool", "on"),
            prop("spatial-calibration-x", "float", _num(s.pixel_size_um)),
            prop("spatial-calibration-y", "float", _num(s.pixel_size_um)),
            prop("spatial-calibration-units", "string", "um"),
            prop("image-name", "string", name),
            prop("plane-guid", "guid", "{" + str(_guid(self.seed, s.plate_name, info)).upper() + "}"),
            prop("acquisition-time-local", "time", when),
            prop("modification-time-local", "time", when),
            prop("stage-position-x", "float", _num(info.stage_xy_um[0])),
            prop("stage-position-y", "float", _num(info.stage_xy_um[1])),
            prop("stage-label", "string", f"{info.well} : Site {info.site}"),
            prop("z-position", "float", _num(info.z_um)),
            prop("wavelength", "float", _num(wavelength_nm(name, info.channel))),
            prop("camera-binning-x", "int", "1"),
            prop("camera-binning-y", "int", "1"),
            prop("_IllumSetting_", "string", name),
            prop("_MagNA_", "float", "0.75"),
            prop("_MagSetting_", "string", "20X Plan Apo Lambda"),
            custom("Exposure Time", "string", "100 ms"),
            custom("ImageXpress Micro X", "float", _num(info.stage_xy_um[0])),
            custom("ImageXpress Micro Y", "float", _num(info.stage_xy_um[1])),
            custom("ImageXpress Micro Z", "float", _num(info.z_um)),
            custom("Instrument Serial Number", "string", "SYNTHETIC"),
            custom("OffsetFromWellCenterUmX", "float", _num(info.offset_xy_um[0])),
            custom("OffsetFromWellCenterUmY", "float", _num(info.offset_xy_um[1])),
            custom("SiteX", "float", str(info.site_xy[0])),
            custom("SiteY", "float", str(info.site_xy[1])),
        ]
        if info.zstep == 0:
            plane += [custom("Z Projection Method", "string", "Maximum"),
                      custom("Z Projection Step Size", "float", _num(s.z_step_um))]
        else:
            plane.append(custom("Z Step", "float", str(info.zstep or 1)))
        parts = [
            "<MetaData>",
            f"<prop id=\"Description\" type=\"string\" value=\"{free_text}\"/>",
            prop("MetaDataVersion", "float", "1"),
            prop("ApplicationName", "string", "MetaMorph"),
            prop("ApplicationVersion", "string", "6.7.0.211"),
            "<PlaneInfo>", *plane, "</PlaneInfo>",
            "<SetInfo>", prop("number-of-planes", "int", "1"), "</SetInfo>",
            "</MetaData>",
        ]
        return "\n".join(parts)

    def write_image(self, tile: np.ndarray, info: ImageInfo) -> Path:
        """Write one tile as a single-page, uncompressed MetaSeries TIFF; return its path."""
        import tifffile

        path = self.image_path(info)
        path.parent.mkdir(parents=True, exist_ok=True)
        when = self.acquisition_time(info)
        tifffile.imwrite(
            path, np.ascontiguousarray(tile, dtype=np.uint16), description=self.description(info, tile),
            software="MetaSeries", metadata=None, photometric="minisblack", compression=None,
            rowsperstrip=16, subfiletype=2, extratags=[(306, "s", 0, when, True)],
        )
        return path
