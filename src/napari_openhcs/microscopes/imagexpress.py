"""Molecular Devices ImageXpress / MetaXpress plates, both on-disk layouts.

- **Export**: ``<Plate>_Plate_<id>/<Plate>.HTD`` and
  ``TimePoint_<t>/[ZStep_<z>/]<Plate>_<Well>[_s<site>][_w<wave>].TIF``.
- **Native storage**: ``<Plate>/<date>/<acq>/[TimePoint_<t>/][ZStep_<z>/]<Plate>_<Well>_s1_w1<GUID>.tif``,
  no HTD, ``_thumb`` thumbnails beside the images (skipped). ``root`` may be the plate, the
  date or the acquisition folder (or a folder holding one of these); ``Plate.root`` is the
  acquisition folder and record paths are relative to it.

The files are the truth: an HTD may declare more waves, z-steps or wells than are on disk;
what it declares and the disk lacks is noted in ``metadata["declared_not_found"]`` (not in
:attr:`Plate.missing`, which would fail every well). :attr:`Plate.missing` lists, per well,
the images other wells have and this one lacks, and files whose header cannot be read.

**Z-planes and projections.** Planes are ``ZStep_1..N``; the instrument's projections
(``ZStep_0`` in exports, the file one level above the ZStep folders in native storage) are
never mixed into z. Channels differ (see :mod:`._ixm_channels`): a z-stack (with or without
projection), a single plane, or a projection only.

- ``source="planes"`` (default): a stacked channel gives its planes at ``z`` = ZStep number;
  a channel without a stack gives its one image (single plane, or projection when that is
  all there is) at ``z=1`` only. No plane is invented: the ``(channel, z)`` pairs a z-less
  channel lacks are simply absent from the records (the engine leaves them empty when it
  stacks), and ``metadata`` says per channel what it holds (``channel_z``,
  ``z_planes_per_channel``).
- ``source="projections"``: one image per channel at ``z=1``: the projection, else the
  single plane. A stacked channel without projection is left out (noted in ``metadata``).

**Copies.** Exports copy z-less channels into every ZStep folder, and channels acquired at
fewer timepoints into later TimePoint folders; copies are recognised from the MetaSeries
metadata (``Z Step``, projection tags, acquisition time; pixels only when a file has no
metadata) and not counted. A channel may therefore exist at fewer timepoints than the plate.

Metadata is read from TIFF headers only, for few files: one sample per channel and
timepoint (names, calibration, z, copies) and one file per ``(well, site)`` (stage
positions: ``Plate.site_positions`` holds ``(well, site, stage y, stage x)`` in µm; stage y
grows with ``SiteY``, i.e. downwards in the image). Everything else comes from file names.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from ._handler_utils import find_below, plate_z_spacing, unit_factor_um
from ._htd import HTD, read_htd
from ._ixm_channels import ChannelLayout, ChannelPlan, plan_channels
from ._ixm_files import FileIndex, find_htd, is_acquisition_dir, parse_image_name, scan_acquisition
from ._ixm_plate import (
    HeaderCache,
    check_image_sizes,
    missing_images,
    odd_sized_images,
    site_grid,
    stage_position,
)
from ._metaseries import ImageHeader
from .describe import compact_numbers
from .detect import PlateFormatError
from .plate import ChannelInfo, ImageRecord, Plate, fit_layout, well_name

logger = logging.getLogger(__name__)

NAME = "imagexpress"
LOOKS_FOR = (
    "MetaXpress export (<plate>.HTD + TimePoint_1/[ZStep_z/]<plate>_B02_s1_w1.TIF) or native "
    "storage (<plate>/<date>/<acq>/[TimePoint_t/]<plate>_B02_s1_w1<GUID>.tif)"
)


def _acquisitions(root: Path) -> list[Path]:
    return find_below(Path(root), is_acquisition_dir, max_depth=3)


def detect(root: Path) -> bool:
    """Return True if ``root`` is, or holds within three levels, one ImageXpress acquisition."""
    try:
        return bool(_acquisitions(root))
    except OSError:
        return False


def _files_below(root: Path, max_depth: int = 4, budget: int = 2000) -> list[str]:
    """Up to ``budget`` file names at or below ``root`` (bounded walk, hidden folders skipped)."""
    names: list[str] = []
    level = [root]
    for _ in range(max_depth + 1):
        nxt = []
        for d in level:
            try:
                with os.scandir(d) as it:
                    for e in it:
                        if e.name.startswith("."):
                            continue
                        if e.is_dir(follow_symlinks=False):
                            nxt.append(Path(e.path))
                        else:
                            names.append(e.name)
                        if len(names) >= budget:
                            return names
            except OSError:
                continue
        level = nxt
    return names


def explain(root: Path) -> str | None:
    """Return a hint when ``root`` looks like ImageXpress output that cannot be read."""
    names = _files_below(Path(root))
    parsed = [p for n in names if (p := parse_image_name(n)) is not None]
    if parsed and all(p.thumbnail for p in parsed):
        return ("imagexpress: only thumbnails (_thumb) found; the full-size images are missing "
                f"(e.g. {next(n for n in names if '_thumb' in n)})")
    htd = next((n for n in names if n.lower().endswith(".htd")), None)
    if htd and not parsed:
        return (f"imagexpress: found {htd} but no image named "
                "<plate>_<well>[_s<n>][_w<n>].TIF beside it or in TimePoint_<t> folders")
    return None


def _find_acquisition(root: Path) -> Path:
    if not root.is_dir():
        raise PlateFormatError(f"plate path is not a folder: {root}")
    if not any(root.iterdir()):
        raise PlateFormatError(f"plate folder is empty: {root}")
    found = _acquisitions(root)
    if not found:
        hint = explain(root)
        raise PlateFormatError(f"no ImageXpress images found in {root} or its sub-folders; "
                               f"looked for {LOOKS_FOR}" + (f"\n{hint}" if hint else ""))
    if len(found) > 1:
        listing = "\n".join(f"  - {p}" for p in found[:20])
        raise PlateFormatError(f"{root} holds {len(found)} ImageXpress acquisitions; open one:\n{listing}")
    return found[0]


def _plate_name(index: FileIndex) -> str:
    if not index.plates:
        detail = f" ({index.thumbnails} thumbnails only)" if index.thumbnails else ""
        raise PlateFormatError(
            f"no ImageXpress image files in {index.root}{detail}; expected names such as "
            "<plate>_B02_s1_w1.TIF or <plate>_B02_s1_w1<GUID>.tif"
        )
    if len(index.plates) > 1:
        names = ", ".join(f"{n!r} ({c} images)" for n, c in index.plates.most_common())
        raise PlateFormatError(f"{index.root} mixes images of several plates: {names}; "
                               "keep one plate per folder")
    return next(iter(index.plates))


def _htd_or_none(path: Path | None) -> HTD | None:
    """Read the HTD; an unreadable one is skipped (the image files are the truth)."""
    if path is None:
        return None
    try:
        return read_htd(path)
    except PlateFormatError as exc:
        logger.warning("%s; reading the plate from its image files only", exc)
        return None


def _records(
    index: FileIndex, plans: dict[int, ChannelPlan], source: str
) -> tuple[list[ImageRecord], set[int]]:
    """Return the chosen records and the channels that contribute nothing to ``source``."""
    records = []
    for (well, site, wave, t), slots in index.groups.items():
        layout = plans[wave].layouts.get(t)
        if layout is None:  # a timepoint that only holds copies
            continue
        for z, slot in layout.chosen(source).items():
            if slot in slots:
                records.append(ImageRecord(well, site, wave, z, t, slots[slot]))
    records.sort()
    present = {r.channel for r in records}
    return records, set(plans) - present


def _channels(plans: dict[int, ChannelPlan], samples: dict[int, ImageHeader],
              htd: HTD | None, present: set[int]) -> tuple[ChannelInfo, ...]:
    names = htd.wave_names() if htd else {}
    out = []
    for wave in sorted(present):
        h = samples[wave]
        name = names.get(wave) or h.text("image-name") or f"w{wave}"
        out.append(ChannelInfo(index=wave, name=name, wavelength_nm=h.number("wavelength")))
    return tuple(out)


def _pixel_size(h: ImageHeader) -> float | None:
    if (h.text("spatial-calibration-state") or "on").lower() == "off":
        return None
    value = h.number("spatial-calibration-x")
    factor = unit_factor_um(h.text("spatial-calibration-units"))
    if value is None or factor is None or not 0 < value * factor < 1e4:
        return None
    return float(round(value * factor, 9))


#: Stacks whose plane headers are read for the z spacing (spread over the plate's sites).
Z_SAMPLE_STACKS = 16


def _z_spacing(plans: dict[int, ChannelPlan], index: FileIndex, read: HeaderCache) -> float | None:
    """The median spacing of up to :data:`Z_SAMPLE_STACKS` stacks spread over the plate."""
    stacks: list[tuple[dict[int, str], list[int]]] = []
    for wave in sorted(plans):
        for t, layout in sorted(plans[wave].layouts.items()):
            if len(layout.planes) < 2:
                continue
            keys = sorted(k for k in index.groups if k[2] == wave and k[3] == t)
            step = max(1, len(keys) // Z_SAMPLE_STACKS)
            stacks += [(index.groups[k], sorted(layout.planes)) for k in keys[::step]]
    stacks = stacks[:: max(1, len(stacks) // Z_SAMPLE_STACKS)][:Z_SAMPLE_STACKS]
    headers = read.read_many([slots[z] for slots, planes in stacks for z in planes if z in slots])
    by_stack = []
    for slots, planes in stacks:
        zs = {}
        for z in planes:
            h = headers.get(slots.get(z, ""))
            if isinstance(h, ImageHeader) and (v := h.number("z-position")) is not None:
                zs[z] = v
        by_stack.append(zs)
    return plate_z_spacing(by_stack)


#: Largest count an HTD may declare; a larger one is corrupt metadata and is ignored
#: (it would otherwise size loops over the declared waves, z-steps or timepoints).
MAX_DECLARED = {"NWavelengths": 9, "ZSteps": 100_000, "TimePoints": 1_000_000}


def _declared_count(htd: HTD, key: str) -> int:
    """Return the HTD's ``key`` count, or 0 (with a warning) if it is negative or implausible."""
    n = htd.integer(key) or 0
    if not 0 <= n <= MAX_DECLARED[key]:
        logger.warning("%s declares %s = %d (more than %d); ignoring it as corrupt",
                       htd.path, key, n, MAX_DECLARED[key])
        return 0
    return n


def _declared_not_found(htd: HTD | None, index: FileIndex, plans: dict[int, ChannelPlan],
                        wells: set[str]) -> tuple[str, list[tuple[str, str]]]:
    """HTD declarations the disk lacks: a note, and ``(well, message)`` for selected wells."""
    if htd is None:
        return "", []
    notes = []
    names = htd.wave_names()
    n_waves = _declared_count(htd, "NWavelengths")
    absent = [w for w in range(1, n_waves + 1) if w not in plans]
    if absent:
        notes.append("waves " + ", ".join(f"w{w}" + (f" ({names[w]})" if w in names else "")
                                          for w in absent))
    zsteps = _declared_count(htd, "ZSteps")
    planes = {z for p in plans.values() for lay in p.layouts.values() for z in lay.planes}
    if htd.flag("ZSeries") and zsteps > max(planes, default=1):
        notes.append(f"ZStep {compact_numbers(z for z in range(1, zsteps + 1) if z not in planes)}")
    n_t = _declared_count(htd, "TimePoints")
    times = {t for (_, _, _, t) in index.groups}
    if n_t > len(times):
        notes.append(f"timepoints {compact_numbers(t for t in range(1, n_t + 1) if t not in times)}")
    selected = {well_name(r, c) for r, c in htd.selected_wells}
    lost = sorted(selected - wells)
    if lost:
        notes.append(f"{len(lost)} selected well(s)")
    note = f"{htd.path.name} declares, not on disk: " + "; ".join(notes) if notes else ""
    return note, [(w, f"selected in {htd.path.name} but no image is on disk") for w in lost]


def _channel_notes(
    plans: dict[int, ChannelPlan], present: set[int], all_t: set[int]
) -> list[tuple[str, str]]:
    kinds, counts, times = [], [], []
    for wave in sorted(plans):
        layouts = list(plans[wave].layouts.values())
        kinds.append(f"w{wave}: {_describe(layouts)}")
        counts.append(f"w{wave}={max((len(lay.planes) for lay in layouts), default=0) or 1}")
        acquired = set(plans[wave].layouts)
        if acquired != all_t:
            times.append(f"w{wave}: {compact_numbers(acquired)}")
    meta = [("channel_z", "; ".join(kinds)), ("z_planes_per_channel", ", ".join(counts))]
    if times:
        meta.append(("timepoints_per_channel", "; ".join(times)))
    left_out = sorted(set(plans) - present)
    if left_out:
        meta.append(("channels_without_image_set", ", ".join(f"w{w}" for w in left_out)))
    return meta


def _describe(layouts: list[ChannelLayout]) -> str:
    return " / ".join(dict.fromkeys(lay.describe() for lay in layouts))


def _instrument_meta(h: ImageHeader) -> list[tuple[str, str]]:
    desc = h.text("Description") or ""
    software = re.search(r"Software Version:\s*([^\r\n]+)", desc)
    na = h.text("_MagNA_")
    return [
        ("objective", (h.text("_MagSetting_") or "") + (f", NA {na}" if na else "")),
        ("binning", " x ".join(b for k in ("x", "y") if (b := h.text(f"camera-binning-{k}")))),
        ("instrument_serial", h.text("Instrument Serial Number") or ""),
        ("software", software.group(1).strip() if software else ""),
        ("acquired", h.text("acquisition-time-local") or ""),
    ]


def open_plate(root: Path, source: str = "planes") -> Plate:
    """Read an ImageXpress / MetaXpress plate (export or native storage).

    Parameters
    ----------
    root : Path
        The export folder (with the HTD), or the native plate, date or acquisition folder,
        or a folder holding one of these.
    source : {"planes", "projections"}
        ``"planes"``: the z-planes (z-less channels give their one image at z=1);
        ``"projections"``: the instrument's projections (or the single plane) at z=1.

    Returns
    -------
    Plate

    Raises
    ------
    PlateFormatError
        If the folder is empty or holds no (or several) acquisitions, a sampled TIFF header
        is corrupt, image sizes differ, files mix plates, or a link leads outside the folder.
    """
    if source not in ("planes", "projections"):
        raise ValueError(f"source must be 'planes' or 'projections', not {source!r}")
    acq = _find_acquisition(Path(root))
    index = scan_acquisition(acq)
    name = _plate_name(index)
    htd = _htd_or_none(find_htd(acq, name or None))
    name = name or (htd.path.stem if htd else acq.name)  # names without plate prefix
    read = HeaderCache(acq)
    plans = plan_channels(index, read)
    records, left_out = _records(index, plans, source)
    if not records:
        raise PlateFormatError(f"{acq}: no channel has a {source[:-1]} image; try the other source")
    present = {r.channel for r in records}
    samples = {w: read(index.groups[p.sample][p.layouts[min(p.layouts)].representative])
               for w, p in plans.items()}

    # one header per (well, site): stage position, site grid, size check
    first: dict[tuple[str, int], ImageRecord] = {}
    for r in records:
        first.setdefault((r.well, r.site), r)
    results = read.read_many([r.path for r in first.values()])
    missing: list[tuple[str, str]] = []
    site_headers: dict[tuple[str, int], ImageHeader] = {}
    for key, r in first.items():
        res = results[r.path]
        if isinstance(res, PlateFormatError):
            missing.append((r.well, str(res)))
        else:
            site_headers[key] = res
    headers = read.cached()
    channel_of = {rel: parsed.wave for rel in headers
                  if (parsed := parse_image_name(rel.rsplit("/", 1)[-1])) is not None}
    headers, odd = odd_sized_images(headers, channel_of, {r.path: r.well for r in records})
    missing += odd
    shape, dtype = check_image_sizes(headers, channel_of)

    channels = _channels(plans, samples, htd, present)
    wells = tuple(sorted({r.well for r in records}))
    missing += missing_images(records, {c.index: c.name for c in channels})
    note, lost = _declared_not_found(htd, index, plans, set(wells))
    missing += lost
    positions = {k: p for k, h in site_headers.items() if (p := stage_position(h)) is not None}
    ref = samples[min(present)]
    pixel_size = _pixel_size(ref) or (htd.pixel_size_um if htd else None)
    sites = tuple(sorted({r.site for r in records}))
    grid = site_grid(site_headers, positions, len(sites), htd.site_grid if htd else None,
                     tol_um=0.1 * shape[1] * (pixel_size or 1.0))
    declared = htd.layout if htd else None
    rows, columns = fit_layout(declared, wells, f"{acq}: {htd.path.name}" if htd else "")
    widened = (f"{htd.path.name} declares {declared[0]} x {declared[1]} wells; widened to hold the "
               "wells on disk") if htd and declared and declared != (rows, columns) else ""

    meta: list[tuple[str, str]] = [
        ("layout", "MetaXpress export" if htd else "MetaXpress native storage"),
        ("acquisition", acq.name),
        ("htd", htd.path.name if htd else ""),
        ("htd_description", htd.description if htd else ""),
        ("plate_id", (htd.get("UniquePlateIdentifier") or "") if htd else ""),
        *_instrument_meta(ref),
        *_channel_notes(plans, present, {r.t for r in records}),
        ("declared_not_found", note),
        ("layout_widened", widened),
        ("thumbnails_skipped", str(index.thumbnails) if index.thumbnails else ""),
        ("files_ignored", str(len(index.ignored)) if index.ignored else ""),
    ]
    copies = {w: p.copied_timepoints for w, p in plans.items() if p.copied_timepoints}
    if copies:
        meta.append(("copied_timepoints_ignored",
                     "; ".join(f"w{w}: {compact_numbers(ts)}" for w, ts in sorted(copies.items()))))
    if left_out:
        logger.info("%s: channels %s have no %s image", acq, sorted(left_out), source[:-1])
    if missing:
        logger.warning("%s: %d problem(s) with images in %d well(s), e.g. %s: %s", acq, len(missing),
                       len({w for w, _ in missing}), *min(missing))
    return Plate(
        root=acq,
        microscope=NAME,
        name=name,
        rows=int(rows),
        columns=int(columns),
        wells=wells,
        sites=sites,
        channels=channels,
        z_indices=tuple(sorted({r.z for r in records})),
        timepoints=tuple(sorted({r.t for r in records})),
        image_shape=shape,
        dtype=dtype,
        records=tuple(records),
        pixel_size_um=pixel_size,
        z_spacing_um=_z_spacing(plans, index, read) if source == "planes" else None,
        site_grid=grid,
        site_positions=tuple(sorted((w, s, y, x) for (w, s), (y, x) in positions.items())),
        missing=tuple(sorted(missing)),
        source=source,
        reader="tiff",
        metadata=tuple((k, v) for k, v in meta if v),
    )
