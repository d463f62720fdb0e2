"""``python -m reliability._cli ...`` is ``napari-openhcs ...`` with the suite's step
functions registered (so pipeline files can name them)."""

from __future__ import annotations

import sys

from napari_openhcs.cli import main

from ._support import register_functions

if __name__ == "__main__":
    register_functions()
    sys.exit(main())
