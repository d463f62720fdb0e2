"""Small helpers that put layer data tuples into a viewer and find our layers again."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from ._layers import META_KEY, LayerData


def layer_info(layer: Any) -> dict[str, Any]:
    """Return our metadata entry of a layer (``{}`` for other layers)."""
    info = getattr(layer, "metadata", {}).get(META_KEY)
    return dict(info) if isinstance(info, dict) else {}


def layers_of_kind(viewer: Any, kind: str) -> list[Any]:
    """Return the viewer's layers we added with ``kind`` (``"raw"``, ``"preview"``, ``"output"``...)."""
    return [layer for layer in viewer.layers if layer_info(layer).get("kind") == kind]


def add_layer_data(viewer: Any, layer_data: LayerData, *, select: bool = True) -> Any:
    """Add one ``(data, kwargs, layer_type)`` tuple to ``viewer`` and return the layer.

    With ``select=False`` the new layer is not made the selected one (napari selects
    every layer it inserts, which rebuilds the layer controls and restyles the viewer
    buttons each time); a caller adding several layers selects the last one once with
    :func:`select_layer`, which leaves the viewer as adding them one by one would.
    """
    data, kwargs, layer_type = layer_data
    with _inserting(viewer.layers, select):
        return getattr(viewer, f"add_{layer_type}")(data, **kwargs)


def insert_layer(viewer: Any, layer: Any, *, select: bool = True) -> Any:
    """Add a layer object made beforehand to ``viewer`` (``select`` as in :func:`add_layer_data`)."""
    with _inserting(viewer.layers, select):
        return viewer.add_layer(layer)


@contextmanager
def _inserting(layers: Any, select: bool) -> Iterator[None]:
    activate = getattr(layers, "_activate_on_insert", None)
    if select or not isinstance(activate, bool):
        yield
        return
    layers._activate_on_insert = False
    try:
        yield
    finally:
        layers._activate_on_insert = activate


def select_layer(viewer: Any, layer: Any) -> None:
    """Make ``layer`` the only selected (active) layer, as napari does for a new layer."""
    if layer is not None and layer in viewer.layers:
        viewer.layers.selection.active = layer


def add_layers(viewer: Any, layers: Iterable[LayerData]) -> list[Any]:
    """Add several layer data tuples; return the layers."""
    return [add_layer_data(viewer, ld) for ld in layers]


def remove_layers(viewer: Any, layers: Iterable[Any]) -> None:
    """Remove ``layers`` from ``viewer`` (ignoring ones already gone)."""
    for layer in list(layers):
        if layer in viewer.layers:
            viewer.layers.remove(layer)


def update_layer(layer: Any, layer_data: LayerData, *, reset_contrast: bool = False) -> None:
    """Show ``layer_data`` in an existing layer of the same type and dimensionality.

    Updating in place keeps the user's display settings and avoids the cost of
    removing and re-creating layers.
    """
    data, kwargs, _ = layer_data
    old_dtype = getattr(layer.data, "dtype", None)
    layer.data = data
    for key in ("name", "scale", "translate", "metadata", "colormap"):
        if key in kwargs:
            setattr(layer, key, kwargs[key])
    if reset_contrast or old_dtype != getattr(data, "dtype", None):
        layer.reset_contrast_limits()


def sync_layers(viewer: Any, current: list[Any], layers: list[LayerData]) -> list[Any]:
    """Make ``current`` layers show ``layers``: update in place by position, add or remove the rest.

    Returns
    -------
    list
        The layers now showing ``layers``, in order.
    """
    out = []
    for i, ld in enumerate(layers):
        if i < len(current) and ld[2] == current[i]._type_string and current[i].ndim == ld[0].ndim:
            update_layer(current[i], ld, reset_contrast=True)
            out.append(current[i])
        else:
            if i < len(current):
                remove_layers(viewer, [current[i]])
            out.append(add_layer_data(viewer, ld))
    remove_layers(viewer, current[len(layers):])
    return out
