"""Imported only by the worker fork server (the first module it preloads): a quick exit.

The server ends when the process that started it ends. A normal interpreter
shutdown there tears down every module it preloaded (NumPy, the function library, ~0.1 s),
and a caller that reads the output of the whole process group (a shell pipe, a
``subprocess`` with ``stdout=PIPE``) waits for it. The server holds no data of
its own, so it runs multiprocessing's exit hooks and its streams' flush, then ends
at once. Forked workers never run this: they end through ``os._exit``.
"""

from __future__ import annotations

import atexit

from .start import exit_without_teardown

atexit.register(exit_without_teardown)
