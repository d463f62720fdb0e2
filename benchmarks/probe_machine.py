"""What this machine gives a second process, and what fresh memory costs (plain NumPy, no engine).

::

    python benchmarks/probe_machine.py [--processes 2]

Prints one table: memory bandwidth (copy and sum of 256 MiB) and a compute-bound FFT,
each in one process alone and in ``--processes`` processes at once (the combined
speed-up is what a second worker can get from the machine for such work), and the
time to allocate and fill 144 MiB of new memory right after freeing it, after three
seconds idle, and with transparent huge pages off. ``docs/performance.md`` quotes it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

MIB = 1024 * 1024


def _median_seconds(fn: Callable[[], object], repeats: int, pause_s: float = 0.0) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if pause_s:
            time.sleep(pause_s)
    return statistics.median(times)


def streaming_probe(start_at: float = 0.0) -> dict[str, float]:
    """GB/s of a 256 MiB copy and sum, and seconds of a 2048² float32 FFT.

    Each probe starts at the wall-clock time ``start_at`` (so that processes started
    one after another measure at the same time).
    """
    a = np.ones(256 * MIB // 8, dtype=np.float64)
    b = np.empty_like(a)
    np.copyto(b, a)
    x = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    results = {}
    for i, (name, fn) in enumerate((("copy", lambda: np.copyto(b, a)), ("sum", a.sum),
                                    ("fft", lambda: np.fft.rfft2(x)))):
        while time.time() < start_at + 2.0 * i:
            time.sleep(0.005)
        results[name] = _median_seconds(fn, 15)
    copy_s, sum_s, fft_s = results["copy"], results["sum"], results["fft"]
    return {"copy GB/s": 2 * a.nbytes / copy_s / 1e9, "sum GB/s": a.nbytes / sum_s / 1e9, "fft s": fft_s}


def fresh_memory_probe(pause_s: float, huge_pages: bool) -> float:
    """Median seconds to allocate and fill 144 MiB (float32 from uint16), pausing between."""
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    multiarray._set_madvise_hugepage(huge_pages)
    src = np.ones(72 * MIB // 2, dtype=np.uint16)
    src.astype(np.float32)  # the first allocation of the process is not counted
    return _median_seconds(lambda: src.astype(np.float32), 5, pause_s)


def _fresh_in_child(args: tuple[float, bool]) -> float:
    return fresh_memory_probe(*args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        alone = pool.map(streaming_probe, [time.time() + 1.0])[0]
    with ctx.Pool(args.processes) as pool:
        together = pool.map(streaming_probe, [time.time() + 2.0] * args.processes, chunksize=1)
    fresh = {}
    for label, pause, huge in (("just freed", 0.05, True), ("idle 3 s", 3.0, True),
                               ("idle 3 s, no huge pages", 3.0, False)):
        with ctx.Pool(1) as pool:  # a fresh process each: nothing inherited from the probes above
            fresh[label] = pool.map(_fresh_in_child, [(pause, huge)])[0]
    report = {"alone": alone, "together": together, "fresh_144MiB_s": fresh}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    n = args.processes
    print(f"{'probe':<12} {'alone':>9} {f'each of {n}':>11} {'combined speed-up':>18}")
    for key in alone:
        each = statistics.median(t[key] for t in together)
        speedup = n * (each / alone[key] if key.endswith("GB/s") else alone[key] / each)
        print(f"{key:<12} {alone[key]:>9.3g} {each:>11.3g} {speedup:>17.2f}×")
    print()
    for label, seconds in fresh.items():
        print(f"allocate and fill 144 MiB, {label:<24} {1e3 * seconds:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
