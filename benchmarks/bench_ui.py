"""UI responsiveness of the napari docks on the sample plate.

Runs under a display (on a headless Linux machine: ``xvfb-run -a python benchmarks/bench_ui.py``):

1. opens the synthetic sample plate with the plugin's reader;
2. opens the docks as the Plugins menu does and builds a pipeline in the editor
   (normalize → max projection → count nuclei), timed whole (napari builds a dock on
   the UI thread, like the reader's layers); then lets the docks' warm-up finish
   (imports in a thread, glyphs one per turn) with the UI idle, timed as its own phase;
3. previews one well through the Preview dock and times it;
4. changes a parameter of the last step and times the re-run (from that step only);
5. runs the whole plate through the Run dock (worker processes);
6. adds the result layers as the Run dock does (one per event-loop turn).

A ``QTimer`` ticks every 10 ms on the UI thread throughout; the longest gap
between two ticks is the longest time the UI was unresponsive ("stall").
Target: no stall over 100 ms after the plate and the docks are open (warm-up, preview,
re-run, plate run, adding the results). Two
baselines measure what the display costs with no work of ours: repainting one dock
label, and redrawing the canvas with nothing changed (software OpenGL under Xvfb).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TICK_MS = 10


class Heartbeat:
    """Records the gaps between ticks of a 10 ms ``QTimer`` on the UI thread."""

    def __init__(self) -> None:
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = time.perf_counter()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()
        self.timer.start()

    def stop(self) -> dict[str, float]:
        self.timer.stop()
        gaps = self.gaps or [0.0]
        p99 = sorted(gaps)[int(0.99 * (len(gaps) - 1))]
        return {"max_stall_ms": 1000 * max(gaps), "p99_gap_ms": 1000 * p99,
                "median_gap_ms": 1000 * statistics.median(gaps), "ticks": len(gaps)}


def wait_for(signal: Any, action: Callable[[], None], timeout_s: float = 600.0) -> tuple[Any, float]:
    """Run ``action`` and spin the event loop until ``signal`` fires; return (args, seconds)."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    got: list[Any] = []

    def done(*args: Any) -> None:
        got.append(args)
        loop.quit()

    signal.connect(done)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    t0 = time.perf_counter()
    action()
    if not got:
        loop.exec()
    elapsed = time.perf_counter() - t0
    signal.disconnect(done)
    if not got:
        raise TimeoutError(f"no {signal} within {timeout_s} s")
    return got[0], elapsed


def measure(heartbeat: Heartbeat, signal: Any, action: Callable[[], None]) -> dict[str, float]:
    heartbeat.start()
    _, elapsed = wait_for(signal, action)
    return {"seconds": elapsed, **heartbeat.stop()}


def settle(heartbeat: Heartbeat, run: Any, timeout_s: float = 60.0) -> dict[str, float]:
    """Spin the event loop until the docks' warm-up is done (thread and glyph turns)."""
    import threading

    from qtpy.QtCore import QEventLoop, QTimer

    from napari_openhcs._napari._warmup import THREAD_NAME

    def done() -> bool:
        warming = any(t.name == THREAD_NAME for t in threading.enumerate())
        return not warming and not run._warm.pending

    loop = QEventLoop()
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: done() and loop.quit())
    heartbeat.start()
    t0 = time.perf_counter()
    timer.start()
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    timer.stop()
    return {"seconds": time.perf_counter() - t0, **heartbeat.stop()}


def baseline(heartbeat: Heartbeat, label: Any, repaints: int = 20) -> dict[str, float]:
    """Stall caused by repainting one label of a dock (what the display itself costs)."""

    def step(i: int) -> None:
        label.setText(f"baseline repaint {i}")
        label.repaint()

    result = repeat(heartbeat, step, repaints)
    label.setText("")
    return result


def canvas_redraws(heartbeat: Heartbeat, viewer: Any, redraws: int = 20) -> dict[str, float]:
    """Stall caused by redrawing the canvas with nothing changed (the OpenGL driver's cost)."""
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    return repeat(heartbeat, lambda i: canvas.native.repaint(), redraws)


def repeat(heartbeat: Heartbeat, step: Callable[[int], None], times: int) -> dict[str, float]:
    """Call ``step(i)`` every 100 ms, ``times`` times, with the heartbeat ticking."""
    from qtpy.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    count = [0]

    def tick() -> None:
        count[0] += 1
        step(count[0])
        if count[0] >= times:
            loop.quit()

    timer = QTimer()
    timer.setInterval(100)
    timer.timeout.connect(tick)
    heartbeat.start()
    t0 = time.perf_counter()
    timer.start()
    loop.exec()
    timer.stop()
    return {"seconds": time.perf_counter() - t0, **heartbeat.stop()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="wells in parallel (default 2)")
    parser.add_argument("--executor", default="processes", choices=["processes", "threads"])
    parser.add_argument("--spec", default="sample", help="synthetic plate preset (default: sample)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import napari
    from napari_openhcs._napari._session import session_for
    from napari_openhcs.testing import make_synthetic_plate

    tmp = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    plate_dir = make_synthetic_plate(tmp / "plate", spec=args.spec, seed=0)
    viewer = napari.Viewer(show=True)
    rows: list[tuple[str, dict[str, float]]] = []
    heartbeat = Heartbeat()

    t0 = time.perf_counter()
    viewer.open(str(plate_dir), plugin="napari-openhcs")  # napari calls readers on the UI thread
    blocked = time.perf_counter() - t0
    rows.append(("open plate (reader, blocks the UI)", {"seconds": blocked, "max_stall_ms": 1000 * blocked,
                                                         "p99_gap_ms": 1000 * blocked, "ticks": 0}))

    session = session_for(viewer)
    # the docks as the Plugins menu builds them (napari builds a dock on the UI thread)
    from qtpy.QtWidgets import QApplication

    t0 = time.perf_counter()
    _, plate_map = viewer.window.add_plugin_dock_widget("napari-openhcs", "Plate map")
    _, editor = viewer.window.add_plugin_dock_widget("napari-openhcs", "Pipeline editor")
    _, preview = viewer.window.add_plugin_dock_widget("napari-openhcs", "Preview")
    _, run = viewer.window.add_plugin_dock_widget("napari-openhcs", "Run plate")
    for name in ("percentile_normalize", "max_projection", "count_nuclei"):
        editor.add_function(name)
    session.select(session.plate.wells[0])
    QApplication.processEvents()  # their first paint
    blocked = time.perf_counter() - t0
    rows.append(("open 4 docks (napari, blocks the UI)", {"seconds": blocked, "max_stall_ms": 1000 * blocked,
                                                          "p99_gap_ms": 1000 * blocked, "ticks": 0}))
    # what the docks start when they open (imports in a thread, glyphs one per turn),
    # with the UI idle meanwhile, as it is while a user looks at the new docks
    rows.append(("docks open: warm-up, UI idle", settle(heartbeat, run)))

    rows.append(("preview one well", measure(heartbeat, preview.preview_finished, preview.run_button.click)))
    rows.append(("re-run from last step", measure(
        heartbeat, preview.preview_finished, lambda: editor.form.param_widget("sigma").setValue(2.0)
        if hasattr(editor.form.param_widget("sigma"), "setValue") else
        setattr(editor.form.param_widget("sigma"), "value", 2.0))))

    rows.append(("baseline: 20 dock repaints, no work", baseline(heartbeat, run.status)))

    run.output_edit.setText(str(tmp / "out"))
    run.workers.setValue(args.workers)
    run.executor.setCurrentText(args.executor)
    run.open_output.setChecked(False)
    result = measure(heartbeat, run.run_finished, run.run_button.click)
    wells = len(session.plate.wells)
    rows.append((f"run plate ({wells} wells, {args.workers} {args.executor})", result))

    # the output layers are prepared in the worker; adding them to napari blocks the UI thread
    from napari_openhcs._napari._run_model import prepare_outputs

    orch = run.orchestrator
    outputs = prepare_outputs(Path(orch.output_path), Path(orch.output_dir) / "tables")
    done: list[Any] = []

    def add_results() -> None:
        run._add_one_by_one(outputs, lambda: done.append(1) or run.run_finished.emit({}))

    label = f"add {len(outputs.layers)} result layers"
    rows.append((label, measure(heartbeat, run.run_finished, add_results)))
    redraws = canvas_redraws(heartbeat, viewer)
    rows.append((f"baseline: 20 canvas redraws, {len(viewer.layers)} layers", redraws))

    statuses = sorted(set(session.status.values()))
    print(f"\nplate: {plate_dir} ({args.spec}); well statuses after the run: {statuses}")
    print(f"{'phase':38s} {'seconds':>8s} {'max stall ms':>13s} {'p99 gap ms':>11s} {'ticks':>6s}")
    for name, r in rows:
        print(f"{name:38s} {r['seconds']:8.2f} {r['max_stall_ms']:13.1f} {r['p99_gap_ms']:11.1f} "
              f"{r['ticks']:6d}")
    print()
    for name, r in rows:
        if not name.startswith(("baseline", "open")):
            verdict = "OK" if r["max_stall_ms"] < 100 else "ABOVE TARGET"
            print(f"UI stall, {name}: {r['max_stall_ms']:.1f} ms (target < 100 ms): {verdict}")
    base = dict(rows)["baseline: 20 dock repaints, no work"]["max_stall_ms"]
    print(f"one repaint of a dock label alone stalls up to {base:.1f} ms on this display "
          f"(software OpenGL under Xvfb composites the whole window on every repaint)")
    viewer.close()


if __name__ == "__main__":
    main()
