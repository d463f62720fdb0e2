"""Import every module of the function library so that its ``@register`` decorators run.

The registry imports this module lazily, on the first lookup, so that
``import napari_openhcs.functions`` stays cheap.
"""

# isort: off
# --- image processing, segmentation and measurement -------------------------
from . import intensity  # noqa: F401
from . import background  # noqa: F401
from . import filters  # noqa: F401
from . import projection  # noqa: F401
from . import composite  # noqa: F401
from . import segmentation  # noqa: F401
from . import measurement  # noqa: F401
from . import _skimage_wrappers  # noqa: F401  (curated scikit-image / scipy.ndimage operations)

# --- stitching and illumination (one import line per module) -----------------
from . import flatfield  # noqa: F401
from . import stitching  # noqa: F401

# --- GPU twins (CuPy; imported lazily inside the functions) ------------------
from . import gpu  # noqa: F401
# isort: on
