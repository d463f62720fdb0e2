"""Plate components: the axes along which a plate's images vary.

``VariableComponents`` and ``GroupBy`` keep OpenHCS's names; both are views of
the same five axes (:class:`Component`).  ``GroupBy.NONE`` means "no grouping".
"""

from __future__ import annotations

from enum import Enum


class Component(str, Enum):
    """The five axes of a plate's image records."""

    WELL = "well"
    SITE = "site"
    CHANNEL = "channel"
    Z_INDEX = "z_index"
    TIMEPOINT = "timepoint"


class VariableComponents(str, Enum):
    """Axes stacked into the 3-D array handed to a step's function."""

    SITE = "site"
    CHANNEL = "channel"
    Z_INDEX = "z_index"
    WELL = "well"
    TIMEPOINT = "timepoint"


class GroupBy(str, Enum):
    """Axis whose values key dict patterns (and split groups); ``NONE`` for no grouping."""

    NONE = "none"
    SITE = "site"
    CHANNEL = "channel"
    Z_INDEX = "z_index"
    WELL = "well"
    TIMEPOINT = "timepoint"


#: Per-image axes (everything but the well), in the order image keys are written.
IMAGE_AXES: tuple[Component, ...] = (
    Component.SITE,
    Component.CHANNEL,
    Component.Z_INDEX,
    Component.TIMEPOINT,
)


def as_component(value: Component | VariableComponents | GroupBy | str) -> Component | None:
    """Return the :class:`Component` named by ``value`` (``None`` for ``GroupBy.NONE``).

    Parameters
    ----------
    value : Component, VariableComponents, GroupBy or str
        An enum member or its string value (``"site"``, ``"channel"``, ...).

    Returns
    -------
    Component or None
        The matching component; ``None`` when ``value`` means "no grouping".

    Raises
    ------
    ValueError
        If ``value`` names no component.
    """
    raw = value.value if isinstance(value, Enum) else str(value).lower()
    if raw in ("none", ""):
        return None
    try:
        return Component(raw)
    except ValueError:
        valid = ", ".join(c.value for c in Component)
        raise ValueError(f"unknown component {value!r}; expected one of: {valid}") from None
