"""Global tile placement from pairwise displacements.

Each pair ``(a, b)`` gives a measured displacement ``d_ab ≈ p_b - p_a`` with a
weight.  :func:`solve_least_squares` finds the positions ``p`` minimising the
weighted squared residuals (tile ``anchor`` fixed), dropping pairs that
disagree with the rest; :func:`solve_spanning_tree` chains the displacements
along a maximum spanning tree of the weights.  Both fall back on the nominal
positions for tiles that no pair connects.
"""

from __future__ import annotations

import numpy as np

from ._lazy import LazyModule

sparse = LazyModule("scipy.sparse")
csgraph = LazyModule("scipy.sparse.csgraph")

__all__ = ["residuals", "solve_least_squares", "solve_spanning_tree"]

#: Weight of the prior that pins otherwise unconnected tiles to their nominal positions.
_PRIOR_WEIGHT = 1e-6


def _check(n: int, a: np.ndarray, b: np.ndarray, d: np.ndarray, w: np.ndarray) -> None:
    if not (len(a) == len(b) == len(d) == len(w)):
        raise ValueError("pair arrays a, b, displacements and weights must have one length")
    if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n):
        raise ValueError(f"pair tile indices must lie in [0, {n})")


def solve_least_squares(
    nominal: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    displacement: np.ndarray,
    weight: np.ndarray,
    *,
    anchor: int = 0,
) -> np.ndarray:
    """Return tile positions that best fit the pair displacements.

    Parameters
    ----------
    nominal : ndarray, shape (N, 2)
        Nominal (stage) positions; used as a very weak prior only, so that
        tiles no pair connects keep their nominal place.
    a, b : ndarray of int, shape (E,)
        Tile indices of each pair.
    displacement : ndarray, shape (E, 2)
        Displacement ``p_b - p_a`` of each pair (y, x).
    weight : ndarray, shape (E,)
        Positive weight of each pair.
    anchor : int
        Tile kept at its nominal position.

    Returns
    -------
    ndarray, shape (N, 2)
        Positions (y, x); the anchor tile sits at its nominal position.

    Examples
    --------
    >>> import numpy as np
    >>> nominal = np.array([[0.0, 0.0], [0.0, 90.0], [0.0, 180.0]])
    >>> p = solve_least_squares(nominal, np.array([0, 1, 0]), np.array([1, 2, 2]),
    ...                         np.array([[1.0, 92.0], [0.0, 91.0], [1.0, 183.0]]), np.ones(3))
    >>> np.round(p, 2).tolist()
    [[0.0, 0.0], [1.0, 92.0], [1.0, 183.0]]
    """
    nominal = np.asarray(nominal, dtype=np.float64)
    n = len(nominal)
    a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
    d = np.asarray(displacement, dtype=np.float64).reshape(-1, 2)
    w = np.asarray(weight, dtype=np.float64)
    _check(n, a, b, d, w)
    e = len(a)
    rows = np.arange(e)
    design = np.zeros((e + n, n))
    design[rows, b] = 1.0
    design[rows, a] -= 1.0
    design[e + np.arange(n), np.arange(n)] = 1.0
    target = np.vstack([d, nominal - nominal[anchor]])
    sqrt_w = np.sqrt(np.concatenate([np.maximum(w, 0.0), np.full(n, _PRIOR_WEIGHT)]))
    sqrt_w[e + anchor] = 1e3  # pin the anchor
    solution, *_ = np.linalg.lstsq(design * sqrt_w[:, None], target * sqrt_w[:, None], rcond=None)
    return solution - solution[anchor] + nominal[anchor]


def solve_spanning_tree(
    nominal: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    displacement: np.ndarray,
    weight: np.ndarray,
    *,
    anchor: int = 0,
) -> np.ndarray:
    """Return tile positions chained along a maximum spanning tree of the weights.

    Parameters are those of :func:`solve_least_squares`.  Each connected group
    of tiles is placed by walking its tree from its root (the anchor, or the
    group's lowest index, kept at its nominal position).

    Returns
    -------
    ndarray, shape (N, 2)
        Positions (y, x).

    Examples
    --------
    >>> import numpy as np
    >>> nominal = np.array([[0.0, 0.0], [0.0, 90.0], [0.0, 180.0]])
    >>> p = solve_spanning_tree(nominal, np.array([0, 1, 0]), np.array([1, 2, 2]),
    ...                         np.array([[1.0, 92.0], [0.0, 91.0], [9.0, 150.0]]),
    ...                         np.array([0.9, 0.8, 0.1]))
    >>> p.tolist()
    [[0.0, 0.0], [1.0, 92.0], [1.0, 183.0]]
    """
    nominal = np.asarray(nominal, dtype=np.float64)
    n = len(nominal)
    a, b = np.asarray(a, dtype=np.intp), np.asarray(b, dtype=np.intp)
    d = np.asarray(displacement, dtype=np.float64).reshape(-1, 2)
    w = np.asarray(weight, dtype=np.float64)
    _check(n, a, b, d, w)
    positions = nominal.copy()
    if not len(a):
        return positions
    # maximum spanning tree = minimum spanning tree of (max + 1 - weight) > 0
    cost = (w.max() + 1.0) - w
    graph = sparse.coo_matrix((cost, (a, b)), shape=(n, n)).tocsr()
    tree = csgraph.minimum_spanning_tree(graph)
    tree = tree + tree.T
    lookup = {(int(i), int(j)): d[k] for k, (i, j) in enumerate(zip(a, b))}
    _, labels = csgraph.connected_components(tree, directed=False)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        root = anchor if anchor in members else int(members[0])
        order, parent = csgraph.breadth_first_order(tree, root, directed=False)
        for node in order[1:]:
            prev = int(parent[node])
            if (prev, int(node)) in lookup:
                step = lookup[(prev, int(node))]
            else:
                step = -lookup[(int(node), prev)]
            positions[node] = positions[prev] + step
    return positions


def residuals(positions: np.ndarray, a: np.ndarray, b: np.ndarray, displacement: np.ndarray) -> np.ndarray:
    """Return each pair's largest per-axis disagreement with the positions (px)."""
    fitted = positions[np.asarray(b, dtype=np.intp)] - positions[np.asarray(a, dtype=np.intp)]
    return np.abs(fitted - np.asarray(displacement, dtype=np.float64).reshape(-1, 2)).max(axis=1)
