"""Synthetic fluorescence images of nuclei (some in touching pairs) with a known truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass
class NucleiScene:
    """A nuclear stain, a cytoplasm stain and the true nucleus labels."""

    nuclei: np.ndarray  # (Y, X) uint16
    cytoplasm: np.ndarray  # (Y, X) uint16
    labels: np.ndarray  # (Y, X) int32, one id per nucleus
    n_touching_pairs: int

    @property
    def count(self) -> int:
        return int(self.labels.max())


def nuclei_scene(
    shape: tuple[int, int] = (256, 256),
    *,
    n_single: int = 20,
    n_pairs: int = 6,
    radius: tuple[float, float] = (7.0, 10.0),
    seed: int = 0,
) -> NucleiScene:
    """Place isolated nuclei and touching pairs (overlapping by ~15 %) without other contact."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    centres: list[tuple[float, float, float]] = []
    margin = radius[1] + 4

    def free(y: float, x: float, r: float) -> bool:
        return all(np.hypot(y - cy, x - cx) > r + cr + 6 for cy, cx, cr in centres)

    def paint(y: float, x: float, r: float, ident: int) -> None:
        # an ellipse with a wavy outline (3rd and 5th harmonics, a few % of the radius)
        ry, rx = r * rng.uniform(0.85, 1.0), r * rng.uniform(0.85, 1.0)
        theta = np.arctan2(yy - y, xx - x)
        phase = rng.uniform(0, 2 * np.pi, 2)
        wobble = 1 + 0.05 * np.sin(3 * theta + phase[0]) + 0.03 * np.sin(5 * theta + phase[1])
        inside = ((yy - y) / ry) ** 2 + ((xx - x) / rx) ** 2 <= wobble**2
        labels[inside & (labels == 0)] = ident

    ident = 0
    tries = 0
    placed_pairs = 0
    while placed_pairs < n_pairs and tries < 10000:
        tries += 1
        r1, r2 = rng.uniform(*radius, size=2)
        y, x = rng.uniform(margin, shape[0] - margin), rng.uniform(margin, shape[1] - 2 * margin - r2)
        angle = rng.uniform(0, 2 * np.pi)
        d = 0.85 * (r1 + r2)
        y2, x2 = y + d * np.sin(angle), x + d * np.cos(angle)
        if not (margin < y2 < shape[0] - margin and margin < x2 < shape[1] - margin):
            continue
        span = (r1 + r2 + d) / 2
        my, mx = (y + y2) / 2, (x + x2) / 2
        if not free(my, mx, span):
            continue
        centres.append((my, mx, span))
        paint(y, x, r1, ident + 1)
        paint(y2, x2, r2, ident + 2)
        ident += 2
        placed_pairs += 1
    placed = 0
    while placed < n_single and tries < 20000:
        tries += 1
        r = rng.uniform(*radius)
        y, x = rng.uniform(margin, shape[0] - margin), rng.uniform(margin, shape[1] - margin)
        if not free(y, x, r):
            continue
        centres.append((y, x, r))
        ident += 1
        paint(y, x, r, ident)
        placed += 1
    brightness = np.concatenate([[0.0], rng.uniform(800, 1600, ident)])
    texture = 1 + 0.25 * ndi.gaussian_filter(rng.normal(0, 1, shape), 1.5) / 0.19
    nuc = brightness[labels] * np.clip(texture, 0.3, 2.0)
    nuc = ndi.gaussian_filter(nuc, 1.0)
    ramp = 150 + 60 * xx / shape[1]
    nuclei = rng.poisson(nuc + ramp).astype(np.uint16)
    cells = ndi.grey_dilation(labels, size=9)
    cyto = np.where(cells > 0, 500.0, 0.0) * np.where(labels > 0, 0.6, 1.0)
    cyto = ndi.gaussian_filter(cyto, 1.5)
    cytoplasm = rng.poisson(cyto + 100).astype(np.uint16)
    return NucleiScene(nuclei, cytoplasm, labels, placed_pairs)
