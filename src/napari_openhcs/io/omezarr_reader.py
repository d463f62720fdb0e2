"""Read an OME-Zarr HCS plate written by :class:`HCSPlateWriter` (or any 0.4/0.5 plate)."""

from __future__ import annotations

import logging
import os
from functools import cached_property
from pathlib import Path
from typing import Any

from ..microscopes.plate import canonical_well, parse_well, row_index, well_name
from ._ngff import ATTRS_KEY, OutputChannel

logger = logging.getLogger(__name__)

__all__ = ["OutputPlate", "open_output_plate"]


def _ome(attrs: dict[str, Any]) -> dict[str, Any]:
    """Return the OME metadata of a group: ``attrs["ome"]`` (0.5) or ``attrs`` (0.4)."""
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, dict) else dict(attrs)


def _well_from_path(path: str) -> str:
    row, col = path.split("/")
    return well_name(row_index(row), int(col))


class OutputPlate:
    """A read-only view of an OME-Zarr HCS plate; arrays are lazy ``zarr.Array``s.

    Use :func:`open_output_plate` to create one.

    Attributes
    ----------
    path
        Plate folder.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import zarr

        self.path = Path(path)
        try:
            self._group = zarr.open_group(str(self.path), mode="r")
        except FileNotFoundError:
            raise FileNotFoundError(f"no Zarr plate found at {self.path}") from None
        attrs: dict[str, Any] = dict(self._group.attrs)
        self._ome = _ome(attrs)
        plate = self._ome.get("plate")
        if not isinstance(plate, dict):
            raise ValueError(f"{self.path} is a Zarr group but not an OME-Zarr HCS plate")
        self._plate = plate
        custom = attrs.get(ATTRS_KEY)
        self._custom: dict[str, Any] = dict(custom) if isinstance(custom, dict) else {}
        self._well_paths = {_well_from_path(w["path"]): w["path"] for w in plate.get("wells", [])}

    def __repr__(self) -> str:
        return f"OutputPlate({str(self.path)!r}, wells={len(self.wells)})"

    # ------------------------------------------------------------------ plate
    @property
    def name(self) -> str:
        """Plate name (the folder name if the metadata has none)."""
        return str(self._plate.get("name") or self.path.stem)

    @property
    def version(self) -> str | None:
        """OME-NGFF version (``"0.5"`` for our plates)."""
        return self._ome.get("version") or self._plate.get("version")

    @property
    def rows(self) -> list[str]:
        """Row names of the layout."""
        return [r["name"] for r in self._plate.get("rows", [])]

    @property
    def columns(self) -> list[str]:
        """Column names of the layout."""
        return [c["name"] for c in self._plate.get("columns", [])]

    @property
    def wells(self) -> list[str]:
        """Wells listed in the plate metadata, as canonical names (``B03``), sorted."""
        return sorted(self._well_paths, key=parse_well)

    @property
    def well_paths(self) -> dict[str, str]:
        """``{well: its path in the plate ("B/03")}`` for every listed well, in :attr:`wells` order."""
        return {w: self._well_paths[w] for w in self.wells}

    @property
    def attributes(self) -> dict[str, Any]:
        """Our custom plate attributes (provenance, run info); ``{}`` for other plates."""
        return dict(self._custom)

    @property
    def field_count(self) -> int | None:
        """``field_count`` from the plate metadata, if given."""
        return self._plate.get("field_count")

    # ------------------------------------------------------------------ wells
    def _well_group(self, well: str) -> Any:
        key = canonical_well(well)
        if key not in self._well_paths:
            raise KeyError(f"well {well} is not listed in plate {self.path}")
        return self._group[self._well_paths[key]]

    def field_paths(self, well: str) -> list[str]:
        """Return the paths (``"0"``, ``"1"``…) of the fields of ``well``."""
        return self._field_paths(self._well_group(well))

    @staticmethod
    def _field_paths(group: Any) -> list[str]:
        meta = _ome(dict(group.attrs)).get("well", {})
        return [im["path"] for im in meta.get("images", [])]

    def well_attributes(self, well: str) -> dict[str, Any]:
        """Return the completion record stored with ``well`` (``{}`` if none)."""
        return dict(dict(self._well_group(well).attrs).get(ATTRS_KEY, {}))

    def _multiscale(self, well: str, field: int) -> tuple[Any, dict[str, Any]]:
        group = self._well_group(well)  # opened once: each open reads the well's metadata
        image = group[self._field_paths(group)[field]]
        return image, _ome(dict(image.attrs))

    def levels(self, well: str, field: int = 0) -> list[Any]:
        """Return the pyramid of one field, full resolution first (lazy arrays)."""
        image, ome = self._multiscale(well, field)
        datasets = ome["multiscales"][0]["datasets"]
        return [image[d["path"]] for d in datasets]

    def fields(self, well: str) -> list[Any]:
        """Return the full-resolution array of every field of ``well`` (lazy)."""
        return [self.levels(well, i)[0] for i in range(len(self.field_paths(well)))]

    def field_attributes(self, well: str, field: int = 0) -> dict[str, Any]:
        """Return our record of one field: ``extent`` (``{"y", "x"}``: the real image
        inside the plate's canvas, when padded), ``missing_planes`` (``[t, c, z]`` slots
        with no image, left at ``fill_value``) and ``fill_value`` (``{}`` if none)."""
        image, _ = self._multiscale(well, field)
        return dict(dict(image.attrs).get(ATTRS_KEY, {}))

    def label_names(self, well: str, field: int = 0) -> list[str]:
        """Return the names of the NGFF label images of one field (``ome.labels``)."""
        image, _ = self._multiscale(well, field)
        try:
            group = image["labels"]
        except KeyError:
            return []
        return [str(n) for n in _ome(dict(group.attrs)).get("labels", [])]

    def label_levels(self, well: str, name: str, field: int = 0) -> list[Any]:
        """Return the pyramid of the label image ``name`` of one field (lazy arrays)."""
        image, _ = self._multiscale(well, field)
        if name not in self.label_names(well, field):
            raise KeyError(f"well {well}, field {field} has no label image {name!r}")
        group = image["labels"][name]
        return [group[d["path"]] for d in _ome(dict(group.attrs))["multiscales"][0]["datasets"]]

    def label_metadata(self, well: str, name: str, field: int = 0) -> dict[str, Any]:
        """Return the ``image-label`` block (``colors``, ``source``) of a label image."""
        image, _ = self._multiscale(well, field)
        if name not in self.label_names(well, field):
            raise KeyError(f"well {well}, field {field} has no label image {name!r}")
        return dict(_ome(dict(image["labels"][name].attrs)).get("image-label", {}))

    # ------------------------------------------------------------------ image metadata
    @cached_property
    def _first_image(self) -> dict[str, Any]:
        if not self.wells:
            return {}
        return self._multiscale(self.wells[0], 0)[1]

    @property
    def axes(self) -> list[str]:
        """Axis names of the images (``["t", "c", "z", "y", "x"]`` for our plates)."""
        ms = self._first_image.get("multiscales", [{}])[0]
        return [a["name"] if isinstance(a, dict) else str(a) for a in ms.get("axes", [])]

    @property
    def scale(self) -> list[float]:
        """Scale of level 0 per axis (µm for space axes when units are given)."""
        ms = self._first_image.get("multiscales", [{}])[0]
        if not ms:
            return []
        scale = [1.0] * len(ms.get("axes", []))
        for tf in ms["datasets"][0].get("coordinateTransformations", []):
            if tf.get("type") == "scale":
                scale = [float(v) for v in tf["scale"]]
        for tf in ms.get("coordinateTransformations", []) or []:
            if tf.get("type") == "scale":
                scale = [a * float(b) for a, b in zip(scale, tf["scale"])]
        return scale

    @property
    def pixel_size_um(self) -> float | None:
        """µm per pixel on x, or ``None`` when the metadata gives no spatial unit."""
        ms = self._first_image.get("multiscales", [{}])[0]
        axes = ms.get("axes", []) if ms else []
        if not axes or not isinstance(axes[-1], dict) or axes[-1].get("unit") != "micrometer":
            return None
        return self.scale[-1]

    @property
    def channels(self) -> list[OutputChannel]:
        """Channel names and colours from the ``omero`` block (``c<i>``/white if absent)."""
        omero = self._first_image.get("omero", {})
        out = []
        for i, ch in enumerate(omero.get("channels", [])):
            try:
                out.append(OutputChannel(str(ch.get("label") or f"c{i}"), ch.get("color", "FFFFFF")))
            except ValueError:
                out.append(OutputChannel(str(ch.get("label") or f"c{i}")))
        if not out and self.wells:
            axes = self.axes
            if "c" in axes:
                n = self.fields(self.wells[0])[0].shape[axes.index("c")]
                out = [OutputChannel(f"c{i}") for i in range(n)]
        return out


def open_output_plate(path: str | os.PathLike[str]) -> OutputPlate:
    """Open an OME-Zarr HCS plate for reading.

    Parameters
    ----------
    path
        Plate folder (``zarr.json`` for 0.5, ``.zattrs``/``.zgroup`` for 0.4).

    Returns
    -------
    OutputPlate
        Lazy view: ``name``, ``wells``, ``fields(well)``, ``levels(well, field)``,
        ``label_names(well, field)``, ``label_levels(well, name, field)``,
        ``field_attributes(well, field)``, ``channels``, ``pixel_size_um``, ``attributes``.

    Raises
    ------
    FileNotFoundError
        No Zarr group at ``path``.
    ValueError
        The group is not an HCS plate.
    """
    return OutputPlate(path)
