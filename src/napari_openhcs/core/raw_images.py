"""Reading a well's raw images: all at once, or group by group as a step consumes them.

The images a step stacks together (one group of its ``variable_components``) are
read into one ``(N, Y, X)`` block, each image a slice of it, so the step gets the
block as its stack without a copy. A plate run reads them lazily
(:func:`lazy_raw_state`): a group is read when the step first asks for one of its
images, and its memory is released when the step has consumed it, so a well's raw
images are never all in memory at once.

A group's files are read :data:`READ_THREADS` at a time; ``NAPARI_OPENHCS_READ_THREADS``
sets another number for storage where a read mostly waits (a network share).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from ..microscopes.io_readers import read_record
from .errors import StepExecutionError
from .well_state import ImageKey, WellState, group_keys

if TYPE_CHECKING:
    from .context import StepPlan, WellInput

#: Threads reading one group's images at once. File reads and decompression release the
#: GIL, parsing a TIFF's tags does not: on two cores, nine 1024² TIFFs read in 33 ms with
#: two threads, 39 ms with one and 56 ms with eight (which only contend for the GIL).
READ_THREADS = 2
#: Environment variable with the number of files to read at once (1-64), e.g. 8-16 for
#: plates on a network share, where a read mostly waits and more reads in flight pay off.
READ_THREADS_ENV = "NAPARI_OPENHCS_READ_THREADS"

logger = logging.getLogger(__name__)


def read_threads() -> int:
    """Files of a group read at once: ``$NAPARI_OPENHCS_READ_THREADS``, else :data:`READ_THREADS`."""
    return _threads_from(os.environ.get(READ_THREADS_ENV, "").strip(), READ_THREADS)


@cache
def _threads_from(value: str, default: int) -> int:
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        number = 0
    if 1 <= number <= 64:
        return number
    logger.warning("%s=%r is not a number of threads from 1 to 64; reading %d files at a time",
                   READ_THREADS_ENV, value, default)
    return default


class RawReadError(StepExecutionError):
    """A lazily read raw image could not be read (the message names the file).

    Raised from inside the step that asked for the image; the well runner reports it
    as the read failure it is, not as a failure of that step.
    """


def read_well(inputs: WellInput, groups: list[list[ImageKey]] | None = None) -> WellState:
    """Read every raw image of a well into memory, several files at a time.

    ``groups`` (e.g. the groups the first step will stack) are read into one
    ``(N, Y, X)`` block each, the images being its slices in group order, so a step
    consuming a group gets the block as its stack without copying it; images in no
    group are read one by one.

    Raises
    ------
    StepExecutionError
        If the well has missing images (listed) or a file cannot be read (named).
    """
    _check_complete(inputs)
    return WellState(_read(inputs, _keys(inputs), groups or []))


def lazy_raw_state(inputs: WellInput, groups: list[list[ImageKey]]) -> WellState:
    """The well's raw images as a state whose groups are read when first used (see module doc).

    Missing images are reported at once; an unreadable file when its group is read
    (:class:`RawReadError`). The state's ``images`` counts the seconds spent reading.
    """
    _check_complete(inputs)
    return WellState(LazyRawImages(inputs, groups))  # type: ignore[arg-type]


def read_groups(inputs: WellInput, plan: StepPlan | None) -> list[list[ImageKey]]:
    """The groups of the well's raw images that ``plan`` stacks (none without a plan)."""
    if plan is None:
        return []
    return [members for _, members in group_keys(_keys(inputs), plan.variable_components)]


def read_seconds(state: WellState | None) -> float:
    """Seconds a lazy raw state has spent reading so far (0 for any other state)."""
    images = state.images if state is not None else None
    return images.seconds if isinstance(images, LazyRawImages) else 0.0


class LazyRawImages(MutableMapping[ImageKey, np.ndarray]):
    """A well's raw images by key; a group is read (into one block) when one of its images is asked for."""

    def __init__(self, inputs: WellInput, groups: list[list[ImageKey]]) -> None:
        self._inputs = inputs
        self._keys = dict.fromkeys(_keys(inputs))  # ordered set: the records' order
        self._group_of = {k: tuple(g) for g in groups for k in g}
        self._loaded: dict[ImageKey, np.ndarray] = {}
        self.seconds = 0.0

    def __getitem__(self, key: ImageKey) -> np.ndarray:
        if key not in self._keys:
            raise KeyError(key)
        if key not in self._loaded:
            group = [k for k in self._group_of.get(key, (key,)) if k in self._keys and k not in self._loaded]
            t0 = time.perf_counter()
            try:
                self._loaded.update(_read(self._inputs, group, [group]))
            except Exception as exc:
                detail = str(exc) if isinstance(exc, StepExecutionError) else f"{type(exc).__name__}: {exc}"
                raise RawReadError(detail) from exc
            finally:
                self.seconds += time.perf_counter() - t0
        return self._loaded[key]

    def __setitem__(self, key: ImageKey, value: np.ndarray) -> None:
        self._keys[key] = None
        self._loaded[key] = value

    def __delitem__(self, key: ImageKey) -> None:
        del self._keys[key]
        self._loaded.pop(key, None)

    def __iter__(self) -> Iterator[ImageKey]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


def _keys(inputs: WellInput) -> list[ImageKey]:
    return [(rec.site, rec.channel, rec.z, rec.t) for rec in inputs.records]


def _check_complete(inputs: WellInput) -> None:
    if inputs.missing:
        raise StepExecutionError(f"well {inputs.well} has missing images: " + "; ".join(inputs.missing))
    if not inputs.records:
        raise StepExecutionError(f"well {inputs.well} has no images")


def _read(
    inputs: WellInput, keys: list[ImageKey], groups: list[list[ImageKey]]
) -> dict[ImageKey, np.ndarray]:
    """Read the images of ``keys``, several files at a time, each group into one block."""
    records = {(r.site, r.channel, r.z, r.t): r for r in inputs.records}
    wanted = set(keys)
    slots = _block_slots(inputs, [g for g in groups if wanted.issuperset(g)])

    def read(key: ImageKey) -> np.ndarray:
        return read_record(inputs, records[key], slots.get(key))  # type: ignore[arg-type]

    threads = max(1, min(read_threads(), len(keys)))
    if threads == 1:
        arrays = [read(k) for k in keys]
    else:
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="read-well") as pool:
            futures = [pool.submit(read, k) for k in keys]
            arrays = [f.result() for f in futures]  # the first failure in record order is raised
    images: dict[ImageKey, np.ndarray] = {}
    for key, data in zip(keys, arrays):
        if data.shape != tuple(inputs.image_shape):
            raise StepExecutionError(
                f"{records[key].path}: image is {data.shape[1]}x{data.shape[0]} px but the plate's "
                f"images are {inputs.image_shape[1]}x{inputs.image_shape[0]} px"
            )
        images[key] = data
    return images


def _block_slots(inputs: WellInput, groups: list[list[ImageKey]]) -> dict[ImageKey, np.ndarray]:
    """One empty ``(N, Y, X)`` block per group of two or more images: its slices by key."""
    try:
        dtype = np.dtype(inputs.dtype)
    except TypeError:
        return {}
    if dtype.kind not in "biuf" or len(inputs.image_shape) != 2:
        return {}
    slots: dict[ImageKey, np.ndarray] = {}
    for group in groups:
        if len(group) < 2 or any(k in slots for k in group):
            continue
        block = np.empty((len(group), *inputs.image_shape), dtype=dtype)
        slots.update(zip(group, block))
    return slots
