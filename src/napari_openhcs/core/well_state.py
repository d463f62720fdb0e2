"""A well's images in memory between steps, and how steps regroup them.

Images are keyed by ``(site, channel, z, t)``. A step stacks the images that
differ only in its ``variable_components`` into a ``(N, Y, X)`` array; a function
may return ``N`` slices (same keys) or one slice (the stacked components collapse,
e.g. a max projection over z or a channel composite).
"""

from __future__ import annotations

from collections.abc import Mapping
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
    vpos = [AXIS_POS[c] for c in variable]
    others = [i for i in range(len(IMAGE_AXES)) if i not in vpos]
    groups: dict[tuple[int, ...], list[ImageKey]] = {}
    for key in state.images:
        groups.setdefault(tuple(key[i] for i in others), []).append(key)
    out = []
    for gk in sorted(groups):
        keys = sorted(groups[gk], key=lambda k: tuple(k[i] for i in vpos))
        out.append(({IMAGE_AXES[i]: gk[j] for j, i in enumerate(others)}, keys))
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


def _key_str(key: ImageKey) -> str:
    return f"s{key[0]} c{key[1]} z{key[2]} t{key[3]}"


def collapse_keys(keys: list[ImageKey], variable: tuple[Component, ...]) -> ImageKey:
    """Return the key of the single slice a reduction over ``variable`` produces."""
    return keys[0]


def special_key(group: dict[Component, int], collapsed: frozenset[Component]) -> dict[Component, int]:
    """Key a special output by the group's components that are still distinct."""
    return {c: v for c, v in group.items() if c not in collapsed}
