"""The napari front end: reader, sample data, settings and dock widgets.

Nothing here is imported by the engine; napari loads the modules named in
``napari.yaml`` on demand. Pure models (no Qt) live in the ``_*_model`` modules
and can be scripted without a display; Qt widgets live in :mod:`._qt`.
"""
