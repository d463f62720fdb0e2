"""Telling acquired ImageXpress images from copies, per channel.

For every channel (wave) the handler decides, from the MetaSeries metadata of one sample
``(well, site)``, which slots (see :mod:`._ixm_files`) hold what:

- **real planes**: ``ZStep_z`` files whose ``Z Step`` is ``z`` and that are no projection;
- **the projection**: slot 0 (``ZStep_0`` in exports, the file one level above the ZStep
  folders in native storage) when it carries a ``Z Projection Method``, or when it is not
  a copy of a plane;
- **copies**: MetaXpress exports copy z-less channels into every ZStep folder (a copied
  projection keeps its projection tag, a copied single plane keeps ``Z Step`` 1) and
  channels acquired at fewer timepoints into later TimePoint folders (the copy keeps the
  acquisition time). Copies are dropped.

When the metadata cannot tell (files without MetaSeries properties), copies are recognised
by identical pixels. The instrument acquires every well the same way, so one sample per
channel and timepoint is enough.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ._ixm_files import FileIndex, GroupKey, group_by_channel_time
from ._metaseries import ImageHeader, pixel_digest

logger = logging.getLogger(__name__)

HeaderReader = Callable[[str], ImageHeader]


@dataclass(frozen=True)
class ChannelLayout:
    """Where one channel's images are, at one timepoint.

    Attributes
    ----------
    planes
        Slots holding real z-planes (``z`` = slot); empty for a channel without a z-stack.
    projection_slot
        Slot of the instrument's projection, if any.
    single_slot
        Slot of the only image of a channel acquired as one plane.
    projection_method
        ``"Maximum"``, ``"Best Focus"``, ... (``None`` without projection).
    """

    planes: tuple[int, ...] = ()
    projection_slot: int | None = None
    single_slot: int | None = None
    projection_method: str | None = None

    @property
    def kind(self) -> str:
        """``"stack"``, ``"single plane"`` or ``"projection"`` (projection only)."""
        if self.planes:
            return "stack"
        return "single plane" if self.single_slot is not None else "projection"

    @property
    def representative(self) -> int:
        """The slot whose file stands for this channel (first plane, single image or projection)."""
        if self.planes:
            return self.planes[0]
        if self.single_slot is not None:
            return self.single_slot
        assert self.projection_slot is not None
        return self.projection_slot

    def chosen(self, source: str) -> dict[int, int]:
        """Return ``{z: slot}`` of the images this channel contributes to ``source``.

        ``planes``: the real planes (z = ZStep number), else the channel's one image at z=1.
        ``projections``: the projection, else the single plane, at z=1; nothing for a stack
        without projection.
        """
        if source == "planes":
            if self.planes:
                return {z: z for z in self.planes}
            return {1: self.representative}
        if self.projection_slot is not None:
            return {1: self.projection_slot}
        if self.single_slot is not None:
            return {1: self.single_slot}
        return {}

    def describe(self) -> str:
        """One phrase for display (``"2 planes + Maximum projection"``)."""
        proj = f"{self.projection_method or 'instrument'} projection"
        if self.planes:
            n = len(self.planes)
            planes = f"{n} plane{'s' if n > 1 else ''}"
            return f"{planes} + {proj}" if self.projection_slot is not None else planes
        if self.single_slot is not None:
            return "single plane"
        return f"{proj} only"


def _same(a: ImageHeader, b: ImageHeader) -> bool:
    """Whether two files are the same acquired image (metadata first, pixels when it has none)."""
    ida, idb = a.identity, b.identity
    if any(ida) or any(idb):
        return ida == idb
    return pixel_digest(a.path) == pixel_digest(b.path)


def classify(slots: dict[int, str], read: HeaderReader) -> ChannelLayout:
    """Classify the files of one ``(well, site, wave, t)`` group.

    Parameters
    ----------
    slots : dict
        ``{slot: relative path}`` of the group.
    read : callable
        Returns the :class:`ImageHeader` of a relative path (cached by the caller).

    Returns
    -------
    ChannelLayout
    """
    headers = {s: read(p) for s, p in sorted(slots.items())}
    if len(headers) == 1:
        (slot, h), = headers.items()
        if h.projection_method:
            return ChannelLayout(projection_slot=slot, projection_method=h.projection_method)
        return ChannelLayout(single_slot=slot)
    real: list[int] = []
    for s, h in headers.items():
        if s == 0 or h.projection_method:
            continue  # slot 0 is judged below; a projection in a ZStep folder is a copy
        if h.z_step is not None:
            if h.z_step == s:
                real.append(s)
        elif not any(_same(h, headers[r]) for r in real):
            real.append(s)
    h0 = headers.get(0)
    projection: int | None = None
    method: str | None = None
    if h0 is not None:
        copy_of_plane = not h0.projection_method and (
            h0.z_step is not None or any(_same(h0, headers[r]) for r in real)
        )
        if not copy_of_plane or not real:
            projection, method = 0, h0.projection_method
            if not real and not h0.projection_method:
                return ChannelLayout(single_slot=0)
    if not real and projection is None:
        # every ZStep file is a copy of a projection that has no ZStep_0 original
        first = min(s for s in headers if s > 0)
        h = headers[first]
        if h.projection_method:
            return ChannelLayout(projection_slot=first, projection_method=h.projection_method)
        return ChannelLayout(single_slot=first)
    if len(real) == 1 and projection is None:
        return ChannelLayout(single_slot=real[0])
    return ChannelLayout(planes=tuple(real), projection_slot=projection, projection_method=method)


def _sample(keys: list[GroupKey], groups: dict[GroupKey, dict[int, str]]) -> GroupKey:
    """The group with the most slots (the first of ``keys``, which are sorted, on ties)."""
    most = max(len(groups[k]) for k in keys)
    return next(k for k in keys if len(groups[k]) == most)


@dataclass(frozen=True)
class ChannelPlan:
    """One channel's layout per acquired timepoint, and the timepoints that hold copies."""

    wave: int
    layouts: dict[int, ChannelLayout]
    copied_timepoints: tuple[int, ...]
    sample: GroupKey


def plan_channels(index: FileIndex, read: HeaderReader) -> dict[int, ChannelPlan]:
    """Classify every channel of ``index`` and find timepoints that only hold copies.

    Returns
    -------
    dict
        ``{wave: ChannelPlan}``.
    """
    by_ct = group_by_channel_time(index.groups)
    waves = sorted({w for w, _ in by_ct})
    plans: dict[int, ChannelPlan] = {}
    for wave in waves:
        times = sorted(t for w, t in by_ct if w == wave)
        layouts: dict[int, ChannelLayout] = {}
        cache: dict[frozenset[int], ChannelLayout] = {}
        copies: list[int] = []
        last: tuple[int, ChannelLayout] | None = None
        first_sample: GroupKey | None = None
        for t in times:
            keys = by_ct[(wave, t)]
            sample = _sample(keys, index.groups)
            first_sample = first_sample or sample
            structure = frozenset(index.groups[sample])
            if structure not in cache:
                cache[structure] = classify(index.groups[sample], read)
            layout = cache[structure]
            if last is not None and _is_copy(index, wave, t, last, layout, keys, read):
                copies.append(t)
                continue
            layouts[t] = layout
            last = (t, layout)
        assert first_sample is not None
        plans[wave] = ChannelPlan(wave, layouts, tuple(copies), first_sample)
        if copies:
            logger.info("w%d: timepoints %s hold copies of earlier images; ignored", wave, copies)
    return plans


def _is_copy(
    index: FileIndex,
    wave: int,
    t: int,
    last: tuple[int, ChannelLayout],
    layout: ChannelLayout,
    keys: list[GroupKey],
    read: HeaderReader,
) -> bool:
    """Whether timepoint ``t`` of ``wave`` repeats the last acquired timepoint's image."""
    t0, layout0 = last
    slot, slot0 = layout.representative, layout0.representative
    for well, site, _, _ in keys:
        before = index.groups.get((well, site, wave, t0), {})
        now = index.groups[(well, site, wave, t)]
        if slot in now and slot0 in before:
            return _same(read(now[slot]), read(before[slot0]))
    return False
