"""The content of a synthetic well: a large canvas of cell-like objects, cut into tiles.

Nothing here knows about file layouts: a layout writer (ImageXpress today) receives the
tiles and the site geometry and decides how to store them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .spec import SyntheticPlateSpec

#: Camera offset added to every pixel (counts).
CAMERA_OFFSET = 100.0
#: Read noise standard deviation (counts).
READ_NOISE = 4.0
#: Mean nucleus radius in µm.
NUCLEUS_RADIUS_UM = 5.0


@dataclass(frozen=True)
class SiteGeometry:
    """Where each site of a well lies on the well's canvas.

    Attributes
    ----------
    canvas_shape : tuple of int
        ``(Y, X)`` of the canvas the tiles are cut from.
    step : tuple of int
        Nominal distance in pixels between neighbouring sites ``(dy, dx)``.
    grid_rc : ndarray
        ``(n_sites, 2)`` grid ``(row, column)`` of each site, 0-based, row-major order.
    nominal : ndarray
        ``(n_sites, 2)`` nominal tile origins ``(y, x)`` in canvas pixels (the grid the
        stage was told to visit).
    true : ndarray
        ``(n_sites, 2)`` true tile origins ``(y, x)``: nominal plus stage jitter.
    """

    canvas_shape: tuple[int, int]
    step: tuple[int, int]
    grid_rc: np.ndarray
    nominal: np.ndarray
    true: np.ndarray


@dataclass(frozen=True)
class Nuclei:
    """Cell-like objects of one well (all lengths in canvas pixels).

    ``yx`` has shape ``(timepoints, n, 2)``; the other arrays have one row per object.
    """

    yx: np.ndarray
    semi_axes: np.ndarray
    angle: np.ndarray
    brightness: np.ndarray
    cyto_offset: np.ndarray
    cyto_scale: np.ndarray
    cyto_brightness: np.ndarray

    def __len__(self) -> int:
        return int(self.yx.shape[1])


def site_geometry(spec: SyntheticPlateSpec, rng: np.random.Generator) -> SiteGeometry:
    """Return the nominal and true tile origins of one well.

    Parameters
    ----------
    spec : SyntheticPlateSpec
        The plate parameters (grid, tile shape, overlap, jitter).
    rng : numpy.random.Generator
        Source of the stage jitter.

    Returns
    -------
    SiteGeometry
        The canvas shape and the origins of every site.
    """
    rows, cols = spec.grid
    h, w = spec.tile_shape
    step = (max(1, round(h * (1.0 - spec.overlap))), max(1, round(w * (1.0 - spec.overlap))))
    margin = spec.jitter_px + 8
    canvas = (2 * margin + (rows - 1) * step[0] + h, 2 * margin + (cols - 1) * step[1] + w)
    grid_rc = np.array([(r, c) for r in range(rows) for c in range(cols)], dtype=np.int64)
    nominal = margin + grid_rc * np.array(step, dtype=np.int64)
    jitter = rng.integers(-spec.jitter_px, spec.jitter_px + 1, size=nominal.shape)
    return SiteGeometry(canvas, step, grid_rc, nominal, nominal + jitter)


def place_nuclei(spec: SyntheticPlateSpec, canvas_shape: tuple[int, int], rng: np.random.Generator) -> Nuclei:
    """Scatter non-touching nuclei over a canvas at about ``spec.nuclei_per_site`` per tile area.

    Candidates are thrown uniformly; a candidate closer than one nucleus diameter (plus
    a gap) to an earlier candidate is dropped (Matérn type II thinning); the survivors
    are thinned at random down to the wanted number. Very high densities saturate
    below the wanted number.

    Parameters
    ----------
    spec : SyntheticPlateSpec
        The plate parameters (density, pixel size, timepoints).
    canvas_shape : tuple of int
        ``(Y, X)`` of the canvas.
    rng : numpy.random.Generator
        Source of positions, shapes and motion.

    Returns
    -------
    Nuclei
        The objects, with their positions at every timepoint.
    """
    from scipy.spatial import cKDTree

    radius = NUCLEUS_RADIUS_UM / spec.pixel_size_um
    min_dist = 2.0 * 1.25 * radius + 2.0
    disc = np.pi * min_dist**2
    area = float(canvas_shape[0] * canvas_shape[1])
    wanted = int(round(spec.nuclei_per_site * area / float(spec.tile_shape[0] * spec.tile_shape[1])))
    # candidate density whose Matérn II survivors exceed the wanted density (capped near saturation)
    cover = min(0.9, 1.15 * wanted * disc / area)
    n_cand = int(np.ceil(-np.log1p(-cover) / disc * area)) if wanted else 0
    cand = rng.uniform(0.0, 1.0, size=(n_cand, 2)) * np.array(canvas_shape, dtype=float)
    if n_cand > 1:
        pairs = cKDTree(cand).query_pairs(min_dist, output_type="ndarray")
        drop = np.zeros(n_cand, dtype=bool)
        drop[pairs.max(axis=1)] = True
        cand = cand[~drop]
    if len(cand) > wanted:
        cand = cand[np.sort(rng.choice(len(cand), size=wanted, replace=False))]
    n = len(cand)
    yx0 = cand
    # slow random walk over time (cumulative), kept on the canvas
    steps = rng.normal(0.0, 0.6, size=(spec.timepoints, n, 2))
    steps[0] = 0.0
    yx = yx0[None] + np.cumsum(steps, axis=0)
    yx = np.clip(yx, 0.0, np.array(canvas_shape, dtype=float) - 1.0)
    semi = radius * rng.uniform(0.8, 1.2, size=(n, 1)) * np.column_stack(
        [np.ones(n), rng.uniform(0.75, 1.0, size=n)])
    return Nuclei(
        yx=yx,
        semi_axes=semi,
        angle=rng.uniform(0.0, np.pi, size=n),
        brightness=1800.0 * rng.lognormal(0.0, 0.25, size=n),
        cyto_offset=rng.normal(0.0, 0.25 * radius, size=(n, 2)),
        cyto_scale=rng.uniform(1.9, 2.6, size=(n, 2)),
        cyto_brightness=700.0 * rng.lognormal(0.0, 0.3, size=n),
    )


def _footprints(shape: tuple[int, int], yx: np.ndarray, semi: np.ndarray, angle: np.ndarray, *,
                soft: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the pixels covered by filled ellipses, vectorised over all objects.

    Returns ``(object, y, x, profile)``: one entry per covered canvas pixel, with the
    object's intensity profile (0-1) there.
    """
    if len(yx) == 0:  # an empty well: nothing covered
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0, dtype=np.float32)
    half = int(np.ceil(semi.max())) + 2
    off = np.arange(-half, half + 1, dtype=np.int64)
    base = np.floor(yx).astype(np.int64)
    iy = base[:, 0, None, None] + off[None, :, None]
    ix = base[:, 1, None, None] + off[None, None, :]
    frac = (yx - base).astype(np.float32)
    offf = off.astype(np.float32)
    dy = offf[None, :, None] - frac[:, 0, None, None]
    dx = offf[None, None, :] - frac[:, 1, None, None]
    cos = np.cos(angle).astype(np.float32)[:, None, None]
    sin = np.sin(angle).astype(np.float32)[:, None, None]
    inv = (1.0 / semi).astype(np.float32)
    u = (dy * cos + dx * sin) * inv[:, 0, None, None]
    v = (dx * cos - dy * sin) * inv[:, 1, None, None]
    q = u * u + v * v
    if soft:  # smooth dome: cytoplasm-like
        prof = np.sqrt(np.maximum(1.0 - q, 0.0))
    else:  # flat body with a ~1.5 px soft edge and a slight dome: nucleus-like
        edge = (semi.min(axis=1) / 1.5).astype(np.float32)[:, None, None]
        prof = np.clip((1.0 - np.sqrt(q)) * edge, 0.0, 1.0)
        prof *= 0.85 + 0.15 * np.maximum(1.0 - q, 0.0)
    sel = (prof > 0) & (iy >= 0) & (iy < shape[0]) & (ix >= 0) & (ix < shape[1])
    obj = np.broadcast_to(np.arange(len(yx))[:, None, None], sel.shape)[sel]
    return obj, np.broadcast_to(iy, sel.shape)[sel], np.broadcast_to(ix, sel.shape)[sel], prof[sel]


def _paint(shape: tuple[int, int], fp: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
           value: np.ndarray) -> np.ndarray:
    """Paint footprints scaled by each object's ``value``; the brighter wins where they meet."""
    obj, iy, ix, prof = fp
    canvas = np.zeros(shape, dtype=np.float32)
    np.maximum.at(canvas, (iy, ix), prof * value.astype(np.float32)[obj])
    return canvas


def _texture(shape: tuple[int, int], rng: np.random.Generator, sigma: float, amount: float) -> np.ndarray:
    """Return a multiplicative texture field ``1 + amount * smooth noise`` (float32)."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, truncate=3.0)
    field *= amount / max(float(field.std()), 1e-6)
    field += 1.0
    return np.maximum(field, 0.2, out=field)


def _background(shape: tuple[int, int], rng: np.random.Generator, level: float) -> np.ndarray:
    """Return a faint, slowly varying background (float32): a product of two smooth profiles."""
    from scipy import ndimage

    profiles = []
    for n in shape:
        p = ndimage.gaussian_filter1d(rng.standard_normal(n), max(8.0, n / 8.0), mode="wrap")
        profiles.append((1.0 + 0.15 * p / max(float(p.std()), 1e-9)).astype(np.float32))
    return np.float32(level) * profiles[0][:, None] * profiles[1][None, :]


def render_channels(spec: SyntheticPlateSpec, shape: tuple[int, int], nuclei: Nuclei, t: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
    """Return the in-focus, noise-free canvas of every channel at timepoint ``t`` (0-based).

    Even channels (0, 2, ...) show nuclei, odd channels cytoplasm-like blobs around
    them with the nucleus dimmed.

    Parameters
    ----------
    spec : SyntheticPlateSpec
        The plate parameters.
    shape : tuple of int
        Canvas shape ``(Y, X)``.
    nuclei : Nuclei
        The well's objects.
    t : int
        0-based timepoint.
    rng : numpy.random.Generator
        Source of the textures and background (pass the same seed at every timepoint).

    Returns
    -------
    list of ndarray
        One float32 canvas per channel (photon counts above the camera offset).
    """
    yx = nuclei.yx[t]
    nuc_fp = _footprints(shape, yx, nuclei.semi_axes, nuclei.angle, soft=False)
    nuc = _paint(shape, nuc_fp, nuclei.brightness)
    cyto: np.ndarray | None = None
    out = []
    for c in range(len(spec.channels)):
        gain = 1.0 / (1.0 + 0.5 * (c // 2))
        if c % 2 == 0:
            img = nuc * _texture(shape, rng, 1.0, 0.25)
        else:
            if cyto is None:
                cyto_fp = _footprints(shape, yx + nuclei.cyto_offset, nuclei.semi_axes * nuclei.cyto_scale,
                                      nuclei.angle, soft=True)
                cyto = _paint(shape, cyto_fp, nuclei.cyto_brightness)
                cyto *= 1.0 - 0.6 * _paint(shape, nuc_fp, np.ones(len(nuclei)))
            img = cyto * _texture(shape, rng, 2.0, 0.35)
        img *= np.float32(gain)
        img += _background(shape, rng, 40.0 * gain)
        out.append(img)
    return out


def focal_plane(spec: SyntheticPlateSpec, rng: np.random.Generator) -> float:
    """Return a well's focal plane as a 1-based, fractional z index."""
    if spec.z_planes == 1:
        return 1.0
    return float(rng.uniform(1.0, float(spec.z_planes)))


def defocus_sigma(z: int, focus: float) -> float:
    """Return the blur (pixels) of 1-based plane ``z`` for a focal plane at ``focus``."""
    return 0.7 + 1.4 * abs(z - focus)


def defocus(canvas: np.ndarray, sigma: float) -> np.ndarray:
    """Return ``canvas`` blurred by a Gaussian of ``sigma`` pixels (the optics)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(canvas, sigma, mode="nearest", truncate=3.0)


def cut_tile(canvas: np.ndarray, origin: np.ndarray, tile_shape: tuple[int, int],
             rng: np.random.Generator) -> np.ndarray:
    """Cut one tile at ``origin`` and add camera noise; return it as uint16.

    A fractional ``origin`` (stage drift between timepoints) is cut by linear
    interpolation of the canvas. Shot noise uses the Gaussian approximation of Poisson
    noise (variance = signal), plus Gaussian read noise and the camera offset.
    """
    oy, ox = float(origin[0]), float(origin[1])
    y, x = int(np.floor(oy)), int(np.floor(ox))
    fy, fx = oy - y, ox - x
    signal = canvas[y:y + tile_shape[0], x:x + tile_shape[1]]
    if fy or fx:
        from scipy import ndimage

        region = canvas[y:y + tile_shape[0] + 1, x:x + tile_shape[1] + 1]
        signal = ndimage.shift(region, (-fy, -fx), order=1, mode="nearest")[:tile_shape[0], :tile_shape[1]]
        signal = np.ascontiguousarray(signal, dtype=np.float32)
    noise = rng.standard_normal(signal.shape, dtype=np.float32)
    noise *= np.sqrt(np.maximum(signal, 0.0) + np.float32(READ_NOISE**2))
    noise += signal
    noise += np.float32(CAMERA_OFFSET)
    np.rint(noise, out=noise)
    np.clip(noise, 0, 65535, out=noise)
    return noise.astype(np.uint16)
