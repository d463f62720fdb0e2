"""What a synthetic plate looks like: :class:`SyntheticPlateSpec` and the named presets."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..microscopes.plate import PLATE_FORMATS, canonical_well, parse_well

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class SyntheticPlateSpec:
    """Parameters of a synthetic plate.

    Attributes
    ----------
    plate_name : str
        Plate name, used in file names (``<plate_name>_<well>_s<site>_w<wave>.TIF``).
        Letters, digits, ``-`` and ``_`` only.
    wells : tuple of str
        Wells to image (``"A01"``, ``"B02"``, ...).
    grid : tuple of int
        ``(rows, columns)`` of sites per well. Sites are numbered row by row from 1.
    tile_shape : tuple of int
        ``(Y, X)`` size of one image in pixels.
    overlap : float
        Nominal overlap between neighbouring sites, as a fraction of the tile size.
    jitter_px : int
        Largest stage error in pixels: each site's true origin is its nominal origin
        plus a random integer offset in ``[-jitter_px, jitter_px]`` along each axis.
    channels : tuple of str
        Channel names. The first is a nuclear stain, the second a cytoplasm-like
        stain; further channels alternate between the two kinds.
    z_planes : int
        Number of focal planes (defocus grows with the distance from each well's
        focal plane).
    timepoints : int
        Number of timepoints (objects move a little between timepoints).
    pixel_size_um : float
        Pixel size in µm.
    nuclei_per_site : int
        Approximate number of nuclei in the area of one tile.
    dtype : str
        Pixel type of the images (``"uint16"``).
    plate_format : int
        Wells in the plate (96, 384, ...): sets the plate layout in the metadata.
    z_step_um : float
        Distance between focal planes in µm.
    projections : bool
        Also write maximum projections (``ZStep_0``) when there are several planes.
    time_drift_px : float
        Largest stage drift between timepoints in pixels: from the second timepoint on,
        each tile is cut at its origin plus a random subpixel-to-pixel offset in
        ``[-time_drift_px, time_drift_px]`` along each axis (0: tiles repeat exactly).
    """

    plate_name: str = "synthetic"
    wells: tuple[str, ...] = ("A01", "A02", "B01", "B02")
    grid: tuple[int, int] = (2, 2)
    tile_shape: tuple[int, int] = (256, 256)
    overlap: float = 0.1
    jitter_px: int = 2
    channels: tuple[str, ...] = ("DAPI", "FITC")
    z_planes: int = 3
    timepoints: int = 1
    pixel_size_um: float = 0.65
    nuclei_per_site: int = 40
    dtype: str = "uint16"
    plate_format: int = 96
    z_step_um: float = 2.0
    projections: bool = True
    time_drift_px: float = 0.0

    def __post_init__(self) -> None:
        # normalise sequences to tuples so the spec stays hashable and comparable
        object.__setattr__(self, "wells", tuple(canonical_well(w) for w in self.wells))
        object.__setattr__(self, "grid", tuple(int(v) for v in self.grid))
        object.__setattr__(self, "tile_shape", tuple(int(v) for v in self.tile_shape))
        object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
        self._validate()

    def _validate(self) -> None:
        problems: list[str] = []
        if not _SAFE_NAME.match(self.plate_name):
            problems.append(f"plate_name {self.plate_name!r} may only contain letters, digits, '-' and '_'")
        if self.plate_format not in PLATE_FORMATS:
            problems.append(f"plate_format {self.plate_format} is not one of {sorted(PLATE_FORMATS)}")
        else:
            rows, cols = PLATE_FORMATS[self.plate_format]
            for w in self.wells:
                r, c = parse_well(w)
                if r >= rows or not 1 <= c <= cols:
                    problems.append(f"well {w} is outside a {self.plate_format}-well plate")
        if not self.wells:
            problems.append("wells is empty")
        if len(set(self.wells)) != len(self.wells):
            problems.append("wells contains duplicates")
        if len(self.grid) != 2 or min(self.grid) < 1:
            problems.append(f"grid {self.grid} must be two positive integers (rows, columns)")
        if len(self.tile_shape) != 2 or min(self.tile_shape) < 16:
            problems.append(f"tile_shape {self.tile_shape} must be two integers >= 16")
        if not 0.0 <= self.overlap < 0.9:
            problems.append(f"overlap {self.overlap} must be in [0, 0.9)")
        if self.jitter_px < 0:
            problems.append(f"jitter_px {self.jitter_px} must be >= 0")
        if not 0.0 <= self.time_drift_px <= max(self.jitter_px, 1):
            problems.append(f"time_drift_px {self.time_drift_px} must be in [0, max(jitter_px, 1)]")
        if not 1 <= len(self.channels) <= 9:
            problems.append("channels must name 1 to 9 channels (one wave digit in the file name)")
        if len(set(self.channels)) != len(self.channels):
            problems.append("channel names must be unique")
        if self.z_planes < 1 or self.timepoints < 1:
            problems.append("z_planes and timepoints must be >= 1")
        if self.pixel_size_um <= 0 or self.z_step_um <= 0:
            problems.append("pixel_size_um and z_step_um must be > 0")
        if self.nuclei_per_site < 0:
            problems.append("nuclei_per_site must be >= 0")
        if np.dtype(self.dtype) != np.uint16:
            problems.append(f"dtype {self.dtype!r} is not supported (ImageXpress writes uint16)")
        if problems:
            raise ValueError("invalid synthetic plate spec: " + "; ".join(problems))

    @property
    def n_sites(self) -> int:
        """Number of sites per well."""
        return self.grid[0] * self.grid[1]

    def image_count(self) -> int:
        """Return the number of TIFF files the plate will hold (planes and projections)."""
        planes = self.z_planes + (1 if self.z_planes > 1 and self.projections else 0)
        return len(self.wells) * self.n_sites * len(self.channels) * planes * self.timepoints

    def nbytes(self) -> int:
        """Return the approximate size of the plate's pixel data in bytes."""
        return self.image_count() * self.tile_shape[0] * self.tile_shape[1] * np.dtype(self.dtype).itemsize


#: Named specs: ``tiny`` for unit tests, ``sample`` for the demo and napari sample,
#: ``small``/``large``/``xl`` for benchmarks.
PRESETS: dict[str, SyntheticPlateSpec] = {
    "tiny": SyntheticPlateSpec(wells=("A01", "A02"), grid=(2, 2), tile_shape=(64, 64), z_planes=2,
                               nuclei_per_site=5),
    "sample": SyntheticPlateSpec(wells=("A01", "A02", "B01", "B02"), grid=(2, 2), tile_shape=(256, 256),
                                 z_planes=3, nuclei_per_site=40),
    "small": SyntheticPlateSpec(wells=("A01", "A02", "B01", "B02"), grid=(3, 3), tile_shape=(256, 256),
                                z_planes=3, nuclei_per_site=40),
    "large": SyntheticPlateSpec(wells=("A01", "A02", "B01", "B02"), grid=(3, 3), tile_shape=(1024, 1024),
                                z_planes=3, nuclei_per_site=500),
    "xl": SyntheticPlateSpec(wells=tuple(f"{r}{c:02d}" for r in "ABCD" for c in range(1, 7)), grid=(3, 3),
                             tile_shape=(1024, 1024), z_planes=3, nuclei_per_site=500),
}


def resolve_spec(spec: SyntheticPlateSpec | str | None, overrides: dict[str, Any]) -> SyntheticPlateSpec:
    """Return the spec to generate from a spec, a preset name or ``None``, plus overrides.

    Parameters
    ----------
    spec : SyntheticPlateSpec, str or None
        A spec, the name of a preset in :data:`PRESETS`, or ``None`` for the defaults.
    overrides : dict
        Field values replacing those of ``spec``.

    Returns
    -------
    SyntheticPlateSpec
        The resolved, validated spec.

    Raises
    ------
    ValueError
        If the preset name or an override name is unknown, or a value is invalid.
    """
    if spec is None:
        base = SyntheticPlateSpec()
    elif isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"unknown synthetic plate preset {spec!r}; choose one of {sorted(PRESETS)}")
        base = PRESETS[spec]
    elif isinstance(spec, SyntheticPlateSpec):
        base = spec
    else:
        kind = type(spec).__name__
        raise TypeError(f"spec must be a SyntheticPlateSpec, a preset name or None, not {kind}")
    if not overrides:
        return base
    known = {f.name for f in fields(SyntheticPlateSpec)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown synthetic plate parameter(s) {unknown}; valid: {sorted(known)}")
    return replace(base, **overrides)
