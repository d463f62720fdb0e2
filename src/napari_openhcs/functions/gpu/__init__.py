"""GPU twins of the function library (CuPy), registered under the CPU functions' names.

Each twin has the signature, defaults and special inputs/outputs of its CPU
function, so a pipeline names a function once and the engine picks the twin when
a step runs on a GPU. The twins are written once for NumPy and CuPy
(:func:`napari_openhcs.functions._xp.get_modules`): with NumPy arrays they run the
same code on the CPU, which is how they are tested without a GPU. Importing this
package imports neither CuPy nor any GPU library.
"""

# isort: off
from . import intensity  # noqa: F401
from . import filters  # noqa: F401
from . import background  # noqa: F401
from . import projection  # noqa: F401
from . import composite  # noqa: F401
from . import flatfield  # noqa: F401
from . import stitching  # noqa: F401
from . import segmentation  # noqa: F401
# isort: on
