"""Synthetic HCS plates with known ground truth: :func:`make_synthetic_plate`.

Each well is one large canvas of cell-like objects per channel (nuclei, and
cytoplasm-like blobs around them), defocused per plane and cut into overlapping tiles
whose true origins differ from the nominal stage grid by a random jitter. The tiles are
written as an ImageXpress plate (MetaXpress export layout); the true geometry and object
counts go to a JSON file *beside* the plate folder, so the folder holds only what an
instrument would write.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import _scene
from ._imagexpress import Z_BASE_UM, ImageInfo, ImageXpressWriter, well_centre_um
from .spec import SyntheticPlateSpec, resolve_spec

logger = logging.getLogger(__name__)

GROUND_TRUTH_VERSION = 1


def plate_folder_name(spec: SyntheticPlateSpec) -> str:
    """Return the plate folder name for ``spec`` (``<plate_name>_plate``)."""
    return f"{spec.plate_name}_plate"


def ground_truth_path(plate_dir: str | Path) -> Path:
    """Return where the ground truth of the plate at ``plate_dir`` is stored.

    It sits next to the plate folder: ``<parent>/<plate folder name>_ground_truth.json``.
    """
    plate_dir = Path(plate_dir)
    return plate_dir.parent / f"{plate_dir.name}_ground_truth.json"


def load_ground_truth(plate_dir: str | Path) -> dict[str, Any]:
    """Load the ground truth written with a synthetic plate.

    Parameters
    ----------
    plate_dir : str or Path
        The plate folder returned by :func:`make_synthetic_plate`.

    Returns
    -------
    dict
        ``spec`` (the parameters), ``seed``, ``pixel_size_um``, ``step_px``,
        ``z_positions_um`` and ``wells``: per well the ``canvas_shape``, ``focal_plane``,
        ``defocus_sigma_px`` per plane, ``n_nuclei``, ``nuclei_yx`` (per timepoint, canvas
        pixels) and ``sites`` (per site: ``true_origin`` and ``nominal_origin`` ``[y, x]``
        in canvas pixels, ``stage_x_um``/``stage_y_um`` as written to the images,
        ``n_nuclei`` whose centre lies in the tile at the first timepoint).

    Raises
    ------
    FileNotFoundError
        If there is no ground-truth file beside ``plate_dir``.
    """
    path = ground_truth_path(plate_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no synthetic-plate ground truth at {path}: is {plate_dir} synthetic?")
    return json.loads(path.read_text(encoding="utf-8"))


def _rng(seed: int, *keys: int) -> np.random.Generator:
    """Return an independent generator for one purpose, so results never depend on order."""
    return np.random.default_rng([seed, *keys])


def _write_well(writer: ImageXpressWriter, spec: SyntheticPlateSpec, seed: int, w: int) -> dict[str, Any]:
    """Generate and write all images of well number ``w``; return its ground truth."""
    well = spec.wells[w]
    geo = _scene.site_geometry(spec, _rng(seed, 1, w))
    nuclei = _scene.place_nuclei(spec, geo.canvas_shape, _rng(seed, 2, w))
    focus = _scene.focal_plane(spec, _rng(seed, 3, w))
    sigmas = [_scene.defocus_sigma(z, focus) for z in range(1, spec.z_planes + 1)]
    cx_um, cy_um = well_centre_um(well, spec.plate_format)
    centre_px = geo.nominal.astype(float).mean(axis=0)
    offsets_um = (geo.nominal - centre_px) * spec.pixel_size_um  # (y, x), stage y grows with image y
    z_um = [Z_BASE_UM + (z - 1) * spec.z_step_um for z in range(1, spec.z_planes + 1)]
    zsteps = writer.zsteps()

    def info(site: int, c: int, t: int, zstep: int | None, z_value: float) -> ImageInfo:
        oy, ox = (float(v) for v in offsets_um[site])
        r, col = (int(v) for v in geo.grid_rc[site])
        return ImageInfo(well=well, site=site + 1, site_xy=(col + 1, r + 1), channel=c + 1, t=t + 1,
                         zstep=zstep, stage_xy_um=(round(cx_um + ox, 3), round(cy_um + oy, 3)),
                         offset_xy_um=(round(ox, 3), round(oy, 3)), z_um=z_value)

    # stage drift between timepoints (none at the first one): tiles move by a fraction of a pixel
    drift = _rng(seed, 6, w).uniform(-spec.time_drift_px, spec.time_drift_px,
                                     size=(spec.timepoints, spec.n_sites, 2))
    drift[0] = 0.0
    for t in range(spec.timepoints):
        canvases = _scene.render_channels(spec, geo.canvas_shape, nuclei, t, _rng(seed, 4, w))
        for c, canvas in enumerate(canvases):
            projection: list[np.ndarray | None] = [None] * spec.n_sites
            for zi, sigma in enumerate(sigmas):
                blurred = _scene.defocus(canvas, sigma)
                zstep = None if zsteps == [None] else zi + 1
                for s in range(spec.n_sites):
                    noise = _rng(seed, 5, w, t, c, zi, s)
                    tile = _scene.cut_tile(blurred, geo.true[s] + drift[t, s], spec.tile_shape, noise)
                    writer.write_image(tile, info(s, c, t, zstep, z_um[zi]))
                    if writer.with_projection:
                        prev = projection[s]
                        projection[s] = tile if prev is None else np.maximum(prev, tile)
            if writer.with_projection:
                z_focus = z_um[int(round(focus)) - 1]
                for s, proj in enumerate(projection):
                    if proj is not None:
                        writer.write_image(proj, info(s, c, t, 0, z_focus))

    h, w_ = spec.tile_shape
    yx0 = nuclei.yx[0]
    sites = []
    for s in range(spec.n_sites):
        oy, ox = geo.true[s]
        inside = ((yx0[:, 0] >= oy) & (yx0[:, 0] < oy + h) & (yx0[:, 1] >= ox) & (yx0[:, 1] < ox + w_))
        ixy = info(s, 0, 0, None, 0.0)
        sites.append({
            "site": s + 1,
            "site_xy": list(ixy.site_xy),
            "grid_rc": [int(v) for v in geo.grid_rc[s]],
            "true_origin": [int(v) for v in geo.true[s]],
            "nominal_origin": [int(v) for v in geo.nominal[s]],
            "stage_x_um": ixy.stage_xy_um[0],
            "stage_y_um": ixy.stage_xy_um[1],
            "n_nuclei": int(inside.sum()),
        })
    return {
        "canvas_shape": list(geo.canvas_shape),
        "focal_plane": round(focus, 4),
        "defocus_sigma_px": [round(v, 4) for v in sigmas],
        "n_nuclei": len(nuclei),
        "nuclei_yx": np.round(nuclei.yx, 2).tolist(),
        "sites": sites,
    }


def _check_target(out_dir: Path, folder_name: str) -> Path:
    """Return the plate folder path, refusing anything that would leave ``out_dir``."""
    target = (out_dir / folder_name).resolve()
    if target.parent != out_dir.resolve():
        raise ValueError(f"plate folder {folder_name!r} would not be inside {out_dir}")
    return target


def make_synthetic_plate(
    out_dir: str | Path,
    spec: SyntheticPlateSpec | str | None = None,
    seed: int = 0,
    *,
    overwrite: bool = False,
    **overrides: Any,
) -> Path:
    """Write a synthetic ImageXpress plate (MetaXpress export layout) and its ground truth.

    The plate goes to ``<out_dir>/<plate_name>_plate/`` and the ground truth to
    ``<out_dir>/<plate_name>_plate_ground_truth.json`` (see :func:`load_ground_truth`).
    Nothing is written outside ``out_dir``; the plate appears in one step (it is built in
    a temporary folder inside ``out_dir`` and renamed), so a failure leaves no partial
    plate behind.

    Parameters
    ----------
    out_dir : str or Path
        Folder to write into (created if missing).
    spec : SyntheticPlateSpec, str or None
        The plate's parameters, the name of a preset in :data:`PRESETS` (``"tiny"``,
        ``"sample"``, ``"small"``, ``"large"``, ``"xl"``), or ``None`` for the defaults.
    seed : int
        Seed of every random choice: the same spec and seed give byte-identical files.
    overwrite : bool
        Replace an existing, non-empty plate folder of the same name.
    **overrides
        Spec fields to change, e.g. ``wells=("B02",)``, ``z_planes=1``, ``projections=False``.

    Returns
    -------
    Path
        The plate folder.

    Raises
    ------
    FileExistsError
        If the plate folder exists and is not empty, and ``overwrite`` is false.
    ValueError
        If the spec, a preset name or an override is invalid.
    """
    spec = resolve_spec(spec, overrides)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = _check_target(out_dir, plate_folder_name(spec))
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise FileExistsError(f"{target} already exists and is not empty; pass overwrite=True to replace it")
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=out_dir.resolve()))
    try:
        writer = ImageXpressWriter(tmp, spec, seed)
        writer.write_htd_files()
        wells = {well: _write_well(writer, spec, seed, w) for w, well in enumerate(spec.wells)}
        truth = {
            "version": GROUND_TRUTH_VERSION,
            "generator": "napari_openhcs.testing.make_synthetic_plate",
            "layout": "imagexpress-export",
            "plate_folder": target.name,
            "seed": int(seed),
            "spec": asdict(spec),
            "pixel_size_um": spec.pixel_size_um,
            "step_px": list(_scene.site_geometry(spec, _rng(seed, 1, 0)).step),
            "z_positions_um": [Z_BASE_UM + z * spec.z_step_um for z in range(spec.z_planes)],
            "wells": wells,
        }
        gt_path = ground_truth_path(target)
        gt_tmp = tmp / "ground_truth.json"
        gt_tmp.write_text(json.dumps(truth, indent=1), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target) if target.is_dir() else target.unlink()
        os.replace(gt_tmp, gt_path)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("synthetic plate %s: %d images (%.1f MB) in %.1f s", target, spec.image_count(),
                spec.nbytes() / 1e6, time.perf_counter() - started)
    return target
