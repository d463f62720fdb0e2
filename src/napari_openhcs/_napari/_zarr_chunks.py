"""Read the metadata and the chunks of many small Zarr arrays quickly (local folders).

Opening a plate's every field through Zarr costs about a millisecond per group or
array (metadata parsing, the async machinery) and as much again per chunk read; a
384-well plate has thousands of fields. Here a group's attributes and an array's
metadata are read as the JSON files they are (``zarr.json`` for Zarr v3,
``.zattrs``/``.zarray`` for v2), and a region of an array is read chunk file by chunk
file, decoded with numcodecs. Arrays this cannot decode (sharding, transposes,
filters, unknown codecs) are read through Zarr itself (:func:`read_region` falls back).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..io.atomic import read_json

logger = logging.getLogger(__name__)

#: v3 bytes-to-bytes codecs decoded here (their numcodecs names).
_V3_CODECS = {"blosc": "blosc", "zstd": "zstd", "gzip": "gzip"}


def read_attrs(folder: str) -> dict[str, Any] | None:
    """Return the attributes of the Zarr group or array in ``folder`` (``None``: no node there).

    Zarr v3 (``zarr.json``) first, then v2 (``.zattrs``, ``{}`` when only ``.zgroup``/``.zarray``).
    """
    doc = read_json(f"{folder}/zarr.json")
    if doc is not None:
        attrs = doc.get("attributes", {})
        return attrs if isinstance(attrs, dict) else {}
    attrs = read_json(f"{folder}/.zattrs")
    if attrs is not None:
        return attrs
    if any(os.path.isfile(f"{folder}/{n}") for n in (".zgroup", ".zarray")):
        return {}
    return None


@dataclass(frozen=True)
class ArrayMeta:
    """What reading an array's chunks needs: shape, chunk grid, dtype, fill value, key and codecs.

    ``decode`` is ``None`` when the chunks cannot be decoded here (read through Zarr).
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any
    prefix: str
    separator: str
    decode: Callable[[bytes], np.ndarray] | None
    order: str = "C"

    def key(self, index: Sequence[int]) -> str:
        """Return the chunk file of chunk ``index``, relative to the array folder."""
        body = self.separator.join(str(i) for i in index)
        if self.prefix:  # v3 default encoding: c/0/0/... ("c" alone for a 0-d array)
            return self.prefix + self.separator + body if body else self.prefix
        return body or "0"


def _fill(value: Any, dtype: np.dtype) -> Any:
    """Return the fill value as a scalar of ``dtype`` (``ValueError`` if it is spelled otherwise)."""
    if value is None:  # v2: no fill value
        return np.zeros((), dtype).item()
    if isinstance(value, str):  # v3 spells non-finite floats as strings
        if value not in ("NaN", "Infinity", "-Infinity"):
            raise ValueError(f"fill value {value!r}")
        value = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}[value]
    return np.asarray(value).astype(dtype).item()


def from_zarr(array: Any) -> ArrayMeta:
    """Return the layout of an open ``zarr.Array`` whose chunks are read through Zarr."""
    return ArrayMeta(tuple(array.shape), tuple(array.chunks), np.dtype(array.dtype), array.fill_value,
                     "", "/", None)


def _decoder(codecs: list[Any], dtype: np.dtype, chunks: tuple[int, ...],
             order: str) -> Callable[[bytes], np.ndarray]:
    n = int(np.prod(chunks))

    def decode(raw: bytes) -> np.ndarray:
        buf: Any = raw
        for codec in reversed(codecs):
            buf = codec.decode(buf)
        flat = np.frombuffer(buf, dtype=dtype)
        if flat.size != n:
            raise ValueError(f"chunk of {flat.size} values where {n} were expected")
        return flat.reshape(chunks, order=order)

    return decode


def _v3_meta(doc: dict[str, Any]) -> ArrayMeta:
    import numcodecs

    dtype = np.dtype(doc["data_type"])  # a dict (an extension type) raises TypeError: read by Zarr
    grid = doc.get("chunk_grid", {})
    chunks = tuple(int(c) for c in grid.get("configuration", {}).get("chunk_shape", doc["shape"]))
    enc = doc.get("chunk_key_encoding", {"name": "default"})
    sep = enc.get("configuration", {}).get("separator", "/" if enc.get("name") == "default" else ".")
    prefix = "c" if enc.get("name", "default") == "default" else ""
    decode = None
    codecs = doc.get("codecs", [])
    supported = (grid.get("name") == "regular" and enc.get("name", "default") in ("default", "v2")
                 and not doc.get("storage_transformers")
                 and codecs and codecs[0].get("name") == "bytes"
                 and all(c.get("name") in _V3_CODECS for c in codecs[1:]))
    if supported:
        endian = codecs[0].get("configuration", {}).get("endian", "little")
        dtype_bytes = dtype.newbyteorder("<" if endian == "little" else ">") if dtype.itemsize > 1 else dtype
        compressors = [numcodecs.get_codec({"id": _V3_CODECS[c["name"]]}) for c in codecs[1:]]
        decode = _decoder(compressors, dtype_bytes, chunks, "C")
    return ArrayMeta(tuple(int(s) for s in doc["shape"]), chunks, dtype.newbyteorder("="),
                     _fill(doc.get("fill_value"), dtype), prefix, sep, decode)


def _v2_meta(doc: dict[str, Any]) -> ArrayMeta:
    import numcodecs

    dtype = np.dtype(doc["dtype"])  # a list (a structured type) is read by Zarr
    chunks = tuple(int(c) for c in doc["chunks"])
    order = doc.get("order", "C")
    decode = None
    if isinstance(doc.get("dtype"), str) and not doc.get("filters") and order in ("C", "F"):
        comp = doc.get("compressor")
        try:
            codecs = [numcodecs.get_codec(dict(comp))] if comp else []
        except (ValueError, TypeError, KeyError):
            codecs = None
        if codecs is not None:
            decode = _decoder(codecs, dtype, chunks, order)
    return ArrayMeta(tuple(int(s) for s in doc["shape"]), chunks, dtype.newbyteorder("="),
                     _fill(doc.get("fill_value"), dtype), "", doc.get("dimension_separator", "."), decode,
                     order)


def read_array_meta(folder: str) -> ArrayMeta | None:
    """Return the chunk layout of the Zarr array in ``folder`` (``None``: no readable array there)."""
    doc = read_json(os.path.join(folder, "zarr.json"))
    try:
        if doc is not None:
            return _v3_meta(doc) if doc.get("node_type") == "array" else None
        doc = read_json(os.path.join(folder, ".zarray"))
        return _v2_meta(doc) if doc is not None else None
    except (KeyError, TypeError, ValueError) as exc:
        logger.debug("cannot read the metadata of %s: %s", folder, exc)
        return None


def _zarr_region(folder: str, sel: tuple[int | slice, ...], fill: Any = 0) -> np.ndarray:
    """``array[sel]`` read by Zarr; what lies outside the array (another shape than expected) is ``fill``."""
    import zarr

    array = zarr.open_array(folder, mode="r")
    shape = [s.stop - s.start for s in sel if s.__class__ is not int]
    if len(sel) != array.ndim or any(s.__class__ is int and not 0 <= s < n for s, n in zip(sel, array.shape)):
        return np.full(shape, fill, dtype=array.dtype)
    clipped = tuple(s if s.__class__ is int else slice(min(s.start, n), min(s.stop, n))
                    for s, n in zip(sel, array.shape))
    out = np.full(shape, fill, dtype=array.dtype)
    part = np.asarray(array[clipped])
    out[tuple(slice(0, n) for n in part.shape)] = part
    return out


def read_region(folder: str, meta: ArrayMeta | None, sel: tuple[int | slice, ...]) -> np.ndarray:
    """Return ``array[sel]`` of the array in ``folder``; ``sel`` holds integers and ``start:stop`` slices.

    Chunk files are read and decoded directly; a missing chunk reads as the fill value.
    Without ``meta``, or when the chunks cannot be decoded here (or do not match
    ``meta``: another shape than the plate's other fields), the region is read through Zarr,
    and what lies outside the array reads as the fill value.
    """
    try:
        return _read_region(folder, meta, sel)
    except _Undecodable as exc:
        logger.debug("%s; reading it through Zarr", exc)
        return _zarr_region(folder, sel, meta.fill_value if meta is not None else 0)


def _read_region(folder: str, meta: ArrayMeta | None, sel: tuple[int | slice, ...]) -> np.ndarray:
    if meta is None or meta.decode is None or len(sel) != len(meta.shape):
        return _zarr_region(folder, sel)
    bounds, index, local = [], [], []
    single = True
    for s, c, n in zip(sel, meta.chunks, meta.shape):
        lo, hi = (s, s + 1) if s.__class__ is int else (s.start, s.stop)
        if not 0 <= lo < hi <= n:
            return _zarr_region(folder, sel, meta.fill_value)  # not this array's shape: Zarr reads it
        i = lo // c
        single = single and (hi - 1) // c == i
        bounds.append((lo, hi))
        index.append(i)
        local.append(lo - i * c if s.__class__ is int else slice(lo - i * c, hi - i * c))
    if single:  # within one chunk: a small field's plane
        chunk = _read_chunk(folder, meta, index)
        if chunk is None:
            shape = [hi - lo for (lo, hi), s in zip(bounds, sel) if s.__class__ is not int]
            return np.full(shape, meta.fill_value, dtype=meta.dtype)
        return chunk[tuple(local)]
    ranges = [range(lo // c, (hi - 1) // c + 1) for (lo, hi), c in zip(bounds, meta.chunks)]
    out = np.full([hi - lo for (lo, hi), s in zip(bounds, sel) if s.__class__ is not int],
                  meta.fill_value, dtype=meta.dtype)
    for index in itertools.product(*ranges):
        chunk = _read_chunk(folder, meta, index)
        if chunk is None:
            continue
        src: list[Any] = []
        dst: list[slice] = []
        for i, c, s, (lo, hi) in zip(index, meta.chunks, sel, bounds):
            first = i * c
            a, b = max(lo, first), min(hi, first + c)
            if s.__class__ is int:
                src.append(s - first)
            else:
                src.append(slice(a - first, b - first))
                dst.append(slice(a - lo, b - lo))
        out[tuple(dst)] = chunk[tuple(src)]
    return out


class _Undecodable(Exception):
    """A chunk that does not decode as its array's metadata says."""


def _read_chunk(folder: str, meta: ArrayMeta, index: Sequence[int]) -> np.ndarray | None:
    """Return chunk ``index`` decoded (``None``: no such chunk file, the fill value)."""
    try:
        with open(f"{folder}/{meta.key(index)}", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    try:
        return meta.decode(raw)  # type: ignore[misc]
    except (ValueError, RuntimeError, TypeError) as exc:
        raise _Undecodable(f"{folder}: {exc}") from exc
