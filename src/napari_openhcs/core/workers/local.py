"""Executors: run compiled wells in parallel and report progress.

``processes`` (default) is a small supervisor over worker processes (forked by a
server that has the engine imported, or started with ``spawn``; see :mod:`.start`).
Each worker gets its wells one at a time on its own queue, so the supervisor always
knows which well a worker is running and how far it got: a worker beats as it begins
each step and each group of planes (:mod:`..heartbeat`). A worker that dies (killed by
the OOM killer, a crash in native code), that sends no beat for the heartbeat timeout
(frozen, deadlocked) or whose well runs past the per-well timeout costs only its own
well: the worker is killed, the pool refilled, and the well tried once more, then
failed with the reason and the step it was in; the other wells go on. ``threads``
runs wells in a thread pool (debugging; a hung thread cannot be stopped).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from ..context import ProcessingContext
from ..events import StepFinished, WellFailed, WellFinished, WellStarted
from ..heartbeat import set_heartbeat
from ..results import WellResult
from ..well_runner import execute_well
from .start import exit_without_teardown, worker_context

logger = logging.getLogger(__name__)

Emit = Callable[[Any], None]
POLL_S = 0.05
#: A worker sends a beat at most this often (and whenever it enters another step).
_BEAT_EVERY_S = 0.5
_MAIN_GUARD_HINT = ("If the run is started from a script, keep it under `if __name__ == \"__main__\":` "
                    "(a worker imports the script first).")


def _finish_event(result: WellResult) -> Any:
    return WellFinished(result.well, result) if result.status != "failed" else WellFailed(
        result.well, result.error or "failed")


def _worker_main(tasks: Any, results: Any, cancel: Any, environ: dict[str, str]) -> None:  # pragma: no cover
    """Worker process loop: run wells received on ``tasks`` until ``None`` arrives.

    ``tasks`` and ``results`` are this worker's own pipe ends: a worker that is
    killed mid-write can only break its own channel, never another worker's.
    ``environ`` is the supervisor's environment when it started the worker (a
    fork-server child would otherwise see the server's, from when it started).
    """
    from .process import keep_arrays_on_the_heap, release_free_memory, use_one_malloc_arena
    from .start import import_in_background

    # Ctrl-C reaches the whole process group: the supervisor decides, and stops this worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)
    use_one_malloc_arena()
    keep_arrays_on_the_heap()
    import_in_background()
    while True:
        try:
            context = tasks.recv()
        except (EOFError, OSError):
            return
        if context is None:
            _exit_now(results)
            return
        results.send(("start", context.well, os.getpid()))
        set_heartbeat(_beat_sender(results))
        # the supervisor enforces the well's timeout (it kills and retries), not the worker
        result = execute_well(dataclasses.replace(context, timeout_s=None),
                              emit=lambda ev: results.send(("event", ev)), is_cancelled=cancel.is_set)
        set_heartbeat(None)
        results.send(("result", context.well, result))
        del context, result
        release_free_memory()


def _beat_sender(results: Any) -> Callable[[int], None]:  # pragma: no cover - in child
    """A heartbeat sender: ``("beat", step)`` on ``results``, throttled to one per ``_BEAT_EVERY_S``."""
    last = [0.0, -1]

    def send(step: int) -> None:
        now = time.monotonic()
        if step != last[1] or now - last[0] >= _BEAT_EVERY_S:
            last[0], last[1] = now, step
            results.send(("beat", step))

    return send


def _exit_now(results: Any) -> None:  # pragma: no cover - in child
    """Close the result pipe and end the worker with :func:`exit_without_teardown`.

    The supervisor would otherwise wait 0.1-0.2 s for a full interpreter shutdown at
    the end of every run. Every result has been sent by then (pipe writes are synchronous).
    """
    results.close()
    exit_without_teardown()


@dataclass
class _Slot:
    process: Any
    tasks: Any  # the supervisor's sending end of the worker's task pipe
    results: Any  # the supervisor's receiving end of the worker's result pipe
    well: str | None = None
    started: float = 0.0
    closed: bool = False  # the result pipe reached EOF (the worker exited or died)
    spoke: bool = False  # the worker sent a message (it got past its start-up)
    progress: float = 0.0  # when the worker last reported progress on its well
    step: int = 0  # the index of the step its well is in


class ProcessExecutor:
    """Run wells in worker processes under a supervisor.

    Parameters
    ----------
    retries
        How many times a well whose worker process died is tried again.
    """

    name = "processes"

    def __init__(self, retries: int = 1) -> None:
        self.retries = retries

    def run(
        self,
        contexts: list[ProcessingContext],
        *,
        max_workers: int,
        emit: Emit,
        cancel_event: threading.Event,
    ) -> dict[str, WellResult]:
        """Run every context; return ``{well: WellResult}``."""
        ctx = worker_context()
        cancel = ctx.Event()
        pending = list(contexts)
        by_well = {c.well: c for c in contexts}
        attempts = {c.well: 0 for c in contexts}
        results: dict[str, WellResult] = {}
        slots: list[_Slot] = []

        def start_slot() -> _Slot:
            task_recv, task_send = ctx.Pipe(duplex=False)
            result_recv, result_send = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=_worker_main, args=(task_recv, result_send, cancel, dict(os.environ)),
                               daemon=True)
            proc.start()
            task_recv.close()  # the child's ends: closing ours lets EOF show when it dies
            result_send.close()
            return _Slot(proc, task_send, result_recv)

        def finish(result: WellResult) -> None:
            results[result.well] = result
            emit(_finish_event(result))

        def retry(well: str, why: str) -> None:
            """Try ``well`` again (its worker was lost: ``why``) or fail it once out of retries."""
            if attempts[well] <= self.retries and not cancel.is_set():
                logger.warning("%s; retrying it", why)
                pending.insert(0, by_well[well])
            else:
                tried = f" (tried {attempts[well]} times)" if attempts[well] > 1 else ""
                finish(WellResult(well, "failed", why + tried))

        def dispatch() -> None:
            """Send the next pending well to every idle worker."""
            for slot in slots:
                if slot.well is None and pending:
                    c = pending.pop(0)
                    slot.well, slot.step = c.well, 0
                    slot.started = slot.progress = time.monotonic()
                    attempts[c.well] += 1
                    try:
                        slot.tasks.send(c)
                    except OSError:  # the worker died; handled as a death below
                        pass

        n = max(1, min(max_workers, len(contexts)))
        interrupted = False
        slots = []
        try:
            slots.extend(start_slot() for _ in range(n))
            while len(results) < len(contexts):
                if cancel_event.is_set() and not cancel.is_set():
                    cancel.set()
                    for c in pending:
                        finish(WellResult(c.well, "cancelled", "cancelled before it started"))
                    pending.clear()
                dispatch()
                finished: list[WellResult] = []
                self._drain(slots, emit, finished.append)
                if finished:
                    # a freed worker gets its next well before the results are handled (listing a
                    # finished well in the plate metadata takes longer the larger the plate)
                    dispatch()
                    for result in finished:
                        finish(result)
                for i, slot in enumerate(slots):
                    if slot.well is None:
                        continue
                    ctx_w = by_well[slot.well]
                    hung = _hung(ctx_w, slot, time.monotonic())
                    if hung:
                        slot.process.kill()
                        slot.process.join()
                        retry(slot.well, hung)
                        slots[i] = start_slot()
                    elif not slot.process.is_alive():
                        self._drain(slots, emit, finish)
                        if slot.well is None:  # its result arrived after all
                            slots[i] = start_slot()
                            continue
                        code = slot.process.exitcode
                        signalled = code is not None and code < 0
                        why = f"its worker process died (exit code {code}" + (
                            ", killed by a signal, e.g. the out-of-memory killer)" if signalled else ")")
                        if code == 1 and not slot.spoke:
                            why = (f"its worker process could not start (exit code 1; its error is "
                                   f"printed above). {_MAIN_GUARD_HINT}")
                        retry(slot.well, f"well {slot.well}: {why}")
                        slots[i] = start_slot()
        except BaseException:
            # interrupted (Ctrl-C, SIGTERM): stop every worker now; a well being written
            # is in a temporary folder that the next run removes, so nothing half-done shows
            interrupted = True
            cancel.set()
            raise
        finally:
            for slot in slots:
                if slot.process.is_alive() and not interrupted:
                    try:
                        slot.tasks.send(None)
                    except OSError:
                        pass
            for slot in slots:
                if interrupted and slot.process.is_alive():
                    slot.process.kill()
                slot.process.join(timeout=5)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join(timeout=5)
                slot.tasks.close()
                slot.results.close()
        return results

    @staticmethod
    def _drain(slots: list[_Slot], emit: Emit, finish: Callable[[WellResult], None]) -> None:
        """Handle the messages that arrive within one poll interval."""
        open_slots = {slot.results: slot for slot in slots if not slot.closed}
        if not open_slots:
            time.sleep(POLL_S)
            return
        for conn in wait(list(open_slots), timeout=POLL_S):
            slot = open_slots[conn]
            while not slot.closed and conn.poll():
                try:
                    msg = conn.recv()
                except (EOFError, OSError, pickle.UnpicklingError):
                    slot.closed = True  # the worker exited or died mid-message
                    break
                kind = msg[0]
                slot.spoke = True
                slot.progress = time.monotonic()
                if kind == "start":
                    emit(WellStarted(msg[1]))
                elif kind == "beat":
                    slot.step = msg[1]
                elif kind == "event":
                    if isinstance(msg[1], StepFinished):
                        slot.step = msg[1].step_index + 1
                    emit(msg[1])
                elif kind == "result":
                    if slot.well == msg[1]:
                        slot.well = None
                    finish(msg[2])


def _hung(context: ProcessingContext, slot: _Slot, now: float) -> str | None:
    """Why the well of ``slot`` must be stopped (past its timeout, no beat for too long), else ``None``."""
    plan = next((p for p in context.steps if p.index == slot.step), None)
    where = plan.label if plan is not None else "writing its outputs"
    if context.timeout_s and now - slot.started > context.timeout_s:
        return (f"well {context.well} exceeded the per-well timeout of {context.timeout_s:g} s "
                f"in {where}; its worker was stopped")
    hb = context.heartbeat_timeout_s
    if hb and now - slot.progress > hb:
        return f"well {context.well}: no progress for {hb:g} s in {where}; its worker was stopped"
    return None


class ThreadExecutor:
    """Run wells in a thread pool (one process; handy for debugging)."""

    name = "threads"

    def run(
        self,
        contexts: list[ProcessingContext],
        *,
        max_workers: int,
        emit: Emit,
        cancel_event: threading.Event,
    ) -> dict[str, WellResult]:
        """Run every context; return ``{well: WellResult}``."""
        events: queue.Queue[Any] = queue.Queue()
        results: dict[str, WellResult] = {}
        stop = threading.Event()  # set when the run is interrupted (Ctrl-C, a crash)

        def cancelled() -> bool:
            return cancel_event.is_set() or stop.is_set()

        def task(c: ProcessingContext) -> WellResult:
            if cancelled():
                return WellResult(c.well, "cancelled", "cancelled before it started")
            events.put(WellStarted(c.well))
            return execute_well(c, emit=events.put, is_cancelled=cancelled)

        pool = ThreadPoolExecutor(max_workers=max(1, max_workers))
        try:
            futures = {pool.submit(task, c) for c in contexts}
            while futures:
                done, futures = wait_futures(futures, timeout=POLL_S, return_when=FIRST_COMPLETED)
                while not events.empty():
                    emit(events.get_nowait())
                for f in done:
                    r = f.result()
                    results[r.well] = r
                    emit(_finish_event(r))
        except BaseException:
            # interrupted: queued wells must not start, running ones stop between steps
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
        while not events.empty():
            emit(events.get_nowait())
        return results


def get_executor(name: str, **options: Any) -> Any:
    """Return the executor called ``name`` (``processes``, ``threads`` or ``dask``)."""
    if name == "processes":
        return ProcessExecutor(**options)
    if name == "threads":
        return ThreadExecutor()
    if name == "dask":
        from .dask_cluster import DaskExecutor  # optional dependency

        return DaskExecutor(**options)
    raise ValueError(f"unknown executor {name!r}; use 'processes', 'threads' or 'dask'")
