"""Import every module of the function library so that its ``@register`` decorators run.

The registry imports this module lazily, on the first lookup, so that
``import napari_openhcs.functions`` stays cheap.
"""

# isort: off
# --- image processing, segmentation and measurement -------------------------

# --- stitching and illumination (one import line per module) -----------------
from . import flatfield  # noqa: F401
from . import stitching  # noqa: F401
# isort: on
