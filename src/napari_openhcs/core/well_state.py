"""A well's images in memory between steps, and how steps regroup them.

Images are keyed by ``(site, channel, z, t)``. A step stacks the images that
differ only in its ``variable_components`` into a ``(N, Y, X)`` array; a function
may return ``N`` slices (same keys) or one slice (the stacked components collapse,
e.g. a max projection over z or a channel composite).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .components import IMAGE_AXES, Component

ImageKey = tuple[int, int, int, int]
AXIS_POS: dict[Component, int] = {c: i for i, c in enumerate(IMAGE_AXES)}


@dataclass
class WellState:
    """The images of one well at one point of the pipeline."""

    images: dict[ImageKey, np.ndarray]
    collapsed: frozenset[Component] = frozenset()
    collapsed_channels: tuple[int, ...] = ()

    def nbytes(self) -> int:
        """Total bytes held."""
        return sum(int(a.nbytes) for a in self.images.values())


@dataclass
class SpecialStore:
    """Special outputs of a well, keyed by name and by the producing group."""

    values: dict[str, list[tuple[dict[Component, int], Any]]] = field(default_factory=dict)

    def put(self, name: str, key: dict[Component, int], value: Any) -> None:
        """Store ``value`` produced for group ``key``."""
        self.values.setdefault(name, []).append((dict(key), value))

    def get(self, name: str, group: Mapping[Component, int]) -> Any:
        """Return the value of ``name`` produced for the group matching ``group``.

        A producer's key only holds the components that were still distinct when it
        ran (e.g. positions computed on a channel composite are keyed by timepoint
        only), so one producer value serves every consumer group that agrees with it.
        """
        entries = self.values.get(name, [])
        matches = [v for k, v in entries if all(group.get(c, val) == val for c, val in k.items())]
        if not matches:
            raise LookupError(f"no {name!r} was produced for {_fmt(group)}")
        if len(matches) > 1:
            raise LookupError(
                f"{len(matches)} values of {name!r} match {_fmt(group)}; the producing step must "
                f"collapse or group the same components as the consuming step"
            )
        return matches[0]


def _fmt(group: Mapping[Component, int]) -> str:
    return ", ".join(f"{c.value}={v}" for c, v in group.items()) or "the well"


def group_images(
    state: WellState, variable: tuple[Component, ...]
) -> list[tuple[dict[Component, int], list[ImageKey]]]:
    """Split the state's keys into groups that differ only in ``variable``.

    Returns ``[(group_values, keys_sorted_by_variable_components), ...]`` in a stable order.
    """
    return group_keys(state.images, variable)


def group_keys(
    keys: Iterable[ImageKey], variable: tuple[Component, ...]
) -> list[tuple[dict[Component, int], list[ImageKey]]]:
    """:func:`group_images` of bare keys (e.g. a well's image records before they are read)."""
    vpos = [AXIS_POS[c] for c in variable]
    others = [i for i in range(len(IMAGE_AXES)) if i not in vpos]
    groups: dict[tuple[int, ...], list[ImageKey]] = {}
    for key in keys:
        groups.setdefault(tuple(key[i] for i in others), []).append(key)
    out = []
    for gk in sorted(groups):
        members = sorted(groups[gk], key=lambda k: tuple(k[i] for i in vpos))
        out.append(({IMAGE_AXES[i]: gk[j] for j, i in enumerate(others)}, members))
    return out


def stack_images(state: WellState, keys: list[ImageKey]) -> np.ndarray:
    """Stack the images of ``keys`` into a ``(N, Y, X)`` array.

    Raises
    ------
    ValueError
        If the images differ in shape (the message names them).
    """
    arrays = [state.images[k] for k in keys]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        detail = ", ".join(f"{_key_str(k)}: {state.images[k].shape}" for k in keys)
        raise ValueError(f"images to stack differ in shape ({detail})")
    if len(arrays) == 1:
        return arrays[0][np.newaxis]
    return np.stack(arrays)


def take_stack(state: WellState, keys: list[ImageKey]) -> np.ndarray:
    """Like :func:`stack_images`, but remove the images from ``state`` (which is being discarded).

    The memory of each image is released as soon as the stack no longer needs it,
    and when the images are exactly the slices, in order, of one block (a previous
    step's output for the same group) that block is returned without a copy.
    """
    arrays = [state.images.pop(k) for k in keys]
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        detail = ", ".join(f"{_key_str(k)}: {a.shape}" for k, a in zip(keys, arrays))
        raise ValueError(f"images to stack differ in shape ({detail})")
    block = _whole_block(arrays)
    if block is not None:
        return block
    if len(arrays) == 1:
        return arrays[0][np.newaxis]
    return np.stack(arrays)


def _whole_block(arrays: list[np.ndarray]) -> np.ndarray | None:
    """Return the C-contiguous ``(N, Y, X)`` array whose slices ``0..N-1`` are ``arrays``, if any."""
    block = arrays[0].base
    if (not isinstance(block, np.ndarray) or block.ndim != 3 or block.shape[0] != len(arrays)
            or not block.flags.c_contiguous or block.dtype != arrays[0].dtype):
        return None
    start = block.__array_interface__["data"][0]
    for i, a in enumerate(arrays):
        if (a.base is not block or a.shape != block.shape[1:] or a.strides != block.strides[1:]
                or a.__array_interface__["data"][0] != start + i * block.strides[0]):
            return None
    return block


def _key_str(key: ImageKey) -> str:
    return f"s{key[0]} c{key[1]} z{key[2]} t{key[3]}"


def collapse_keys(keys: list[ImageKey], variable: tuple[Component, ...]) -> ImageKey:
    """Return the key of the single slice a reduction over ``variable`` produces."""
    return keys[0]


def special_key(group: dict[Component, int], collapsed: frozenset[Component]) -> dict[Component, int]:
    """Key a special output by the group's components that are still distinct."""
    return {c: v for c, v in group.items() if c not in collapsed}
