"""``DaskExecutor``: run a plate's wells on a Dask ``distributed`` cluster.

Each well is one Dask task (:func:`.dask_task.run_well_task`). The frozen
:class:`~napari_openhcs.core.context.ProcessingContext` is shipped to a worker,
which reads the well's raw images and writes the well straight into the shared
output plate; only the small :class:`~napari_openhcs.core.results.WellResult`
comes back. Plate-level metadata and tables are written once, by the main process.

- **Cluster**: a given ``Client``; else a scheduler address; else a
  ``LocalCluster`` (one single-threaded worker process per well slot) started for
  the run and closed after it.
- **Progress**: workers send ``WellStarted``/``StepFinished`` as structured events
  on a per-run topic; the client turns finished tasks into ``WellFinished``/``WellFailed``.
- **Cancel**: a ``distributed.Event`` checked between steps, and the futures of
  wells not yet started are cancelled.
- **Worker loss**: the scheduler reschedules a task whose worker died (up to its
  ``allowed-failures``); a retried well found complete on disk is not written
  again; a well that kills its workers every time fails with ``KilledWorker``.
- **GPU wells** (``context.device`` ``cuda:*``) ask for ``resources={"GPU": 1}``.

Dask is imported only when this executor runs, so ``import napari_openhcs`` never imports it.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ..context import ProcessingContext
from ..errors import OpenHCSError
from ..events import WellFailed, WellFinished, WellStarted
from ..results import WellResult
from .dask_task import ALREADY_WRITTEN_NOTE, check_paths, completed_result, decode_event, run_well_task

logger = logging.getLogger(__name__)

Emit = Callable[[Any], None]
POLL_S = 0.05
#: Seconds past a well's timeout before a task that does not return is abandoned.
HANG_GRACE_S = 10.0
_INSTALL_HINT = "the Dask executor needs dask.distributed: pip install 'napari-openhcs[dask]'"


class DaskClusterError(OpenHCSError, RuntimeError):
    """The Dask cluster cannot be reached or cannot run this plate (the message says why)."""


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise DaskClusterError(_INSTALL_HINT) from exc
    return distributed


def _finish_event(result: WellResult) -> Any:
    if result.status == "failed":
        return WellFailed(result.well, result.error or "failed")
    return WellFinished(result.well, result)


def _worker_info(client: Any) -> dict[str, Any]:
    """The scheduler's record of every connected worker (address -> info)."""
    try:
        # releases from mid-2025 to mid-2026 list only five workers unless asked for all
        info = client.scheduler_info(n_workers=-1)
    except TypeError:
        info = client.scheduler_info()
    return dict(info.get("workers", {}))


class DaskExecutor:
    """Run wells as Dask tasks, one task per well.

    Parameters
    ----------
    client : distributed.Client, optional
        Use this client's cluster (it is left open after the run).
    scheduler_address : str, optional
        Connect to this scheduler (e.g. ``"tcp://10.0.0.5:8786"``) when no client
        is given. The connection is closed after the run.
    retries : int
        How many more times a well is tried after a failure of the task itself
        (``Client.submit(retries=...)``), and, for the ``LocalCluster`` started
        here, after its worker died (the scheduler's ``allowed-failures``). A
        remote scheduler applies its own ``distributed.scheduler.allowed-failures``.
    cluster_options : mapping, optional
        Extra ``LocalCluster`` arguments (e.g. ``{"memory_limit": "8GiB",
        "dashboard_address": ":8787"}``) when a cluster is started here.
    connect_timeout : float
        Seconds to wait for the scheduler at ``scheduler_address``.
    check_workers : bool
        Before submitting to a remote cluster, check that every connected worker
        can read the input plate and write the output folder (a shared file system).

    Notes
    -----
    ``max_workers`` (from ``run``) sizes a ``LocalCluster`` started here; a
    given client or scheduler runs as many wells at once as it has worker threads.
    """

    name = "dask"

    def __init__(
        self,
        client: Any | None = None,
        scheduler_address: str | None = None,
        retries: int = 2,
        *,
        cluster_options: Mapping[str, Any] | None = None,
        connect_timeout: float = 30.0,
        check_workers: bool = True,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        self.client = client
        self.scheduler_address = scheduler_address
        self.retries = int(retries)
        self.cluster_options = dict(cluster_options or {})
        self.connect_timeout = connect_timeout
        self.check_workers = check_workers

    def __repr__(self) -> str:
        where = ("client" if self.client is not None else self.scheduler_address) or "LocalCluster"
        return f"DaskExecutor({where}, retries={self.retries})"

    # ---------------------------------------------------------------- cluster
    @contextmanager
    def _connect(self, n_workers: int, gpu: bool) -> Iterator[tuple[Any, bool]]:
        """Yield ``(client, remote)``; close what was opened here."""
        distributed = _distributed()
        if self.client is not None:
            yield self.client, True
            return
        if self.scheduler_address:
            try:
                client = distributed.Client(self.scheduler_address, timeout=self.connect_timeout,
                                            set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise DaskClusterError(
                    f"cannot reach the Dask scheduler at {self.scheduler_address}: {exc}. Start one "
                    f"with `dask scheduler` (and workers with `dask worker ADDRESS`), or leave the "
                    f"address out to run on a LocalCluster"
                ) from None
            try:
                yield client, True
            finally:
                client.close()
            return
        import dask

        options: dict[str, Any] = {"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
                                   "dashboard_address": ":0"}
        if gpu:
            options["resources"] = {"GPU": 1}
        options.update(self.cluster_options)
        # a worker holds one well at a time: an innocent well is never lost with a worker
        # that another well killed, and long wells balance over the workers; worker
        # processes start like the local pool's (forked by the server that has the engine
        # imported, where there is one), so they do not import the engine each
        from .start import DASK_PRELOAD, start_method, start_worker_server

        start_worker_server(DASK_PRELOAD)
        with dask.config.set({"distributed.scheduler.allowed-failures": self.retries,
                              "distributed.scheduler.worker-saturation": 1.0,
                              "distributed.worker.multiprocessing-method": start_method()}):
            cluster = distributed.LocalCluster(**options)
        try:
            client = distributed.Client(cluster, set_as_default=False)
            try:
                logger.info("Dask LocalCluster with %d workers; dashboard %s", n_workers,
                            client.dashboard_link)
                yield client, False
            finally:
                client.close()
        finally:
            cluster.close()

    def _check_remote(self, client: Any, contexts: list[ProcessingContext], gpu: bool) -> None:
        first = contexts[0]
        try:
            problems = client.run(check_paths, str(first.inputs.root), str(first.output.output_dir))
        except Exception as exc:  # a broken check must not hide the run's own errors
            logger.warning("could not check the Dask workers' access to the plate: %s", exc)
            return
        bad = {w: p for w, p in problems.items() if p}
        if bad:
            lines = "\n".join(f"  {w}: {p}" for w, p in sorted(bad.items()))
            raise DaskClusterError(
                f"{len(bad)} of {len(problems)} Dask workers cannot use this plate's folders; the input "
                f"plate and the output folder must be on a file system every worker mounts at the same "
                f"path:\n{lines}"
            )
        if not problems:
            logger.info("no Dask worker connected yet; wells wait for workers to join")
        if gpu:
            workers = _worker_info(client)
            if workers and not any(w.get("resources", {}).get("GPU") for w in workers.values()):
                logger.warning("GPU wells need workers started with `--resources GPU=1`; none is "
                               "connected, so these wells wait until one joins")

    def _check_memory(self, client: Any, contexts: list[ProcessingContext]) -> None:
        """Warn when connected workers have a memory limit below a well's estimated peak."""
        peak = max(c.estimated_peak_bytes for c in contexts)
        try:
            workers = _worker_info(client)
        except Exception as exc:  # a broken check must not hide the run's own errors
            logger.warning("could not read the Dask workers' memory limits: %s", exc)
            return
        limits = {addr: int(w.get("memory_limit") or 0) for addr, w in workers.items()}
        small = {addr: limit for addr, limit in limits.items() if 0 < limit < peak}
        if small:
            logger.warning(
                "%d of %d Dask workers have a memory limit below a well's estimated peak of %.0f MiB "
                "(smallest: %.0f MiB, %s). The nanny restarts a worker that reaches 95 %% of its "
                "limit, and a well lost that way more than %d time(s) is reported as failed; start "
                "the workers with a larger `--memory-limit` if wells fail that way",
                len(small), len(limits), peak / 2**20, min(small.values()) / 2**20,
                min(small, key=small.__getitem__), self.retries,
            )

    # ---------------------------------------------------------------- run
    def run(
        self,
        contexts: list[ProcessingContext],
        *,
        max_workers: int,
        emit: Emit,
        cancel_event: Any,
    ) -> dict[str, WellResult]:
        """Run every context as a Dask task; return ``{well: WellResult}``.

        Parameters
        ----------
        contexts
            The wells' compiled plans.
        max_workers
            Worker processes of a ``LocalCluster`` started here.
        emit
            Receives progress events, in the calling thread.
        cancel_event
            Anything with ``is_set()``; when set, running wells stop between steps
            and queued wells are not started.
        """
        if not contexts:
            return {}
        gpu = any(c.device.startswith("cuda") for c in contexts)
        n = max(1, min(max_workers, len(contexts)))
        with self._connect(n, gpu) as (client, remote):
            if remote and self.check_workers:
                self._check_remote(client, contexts, gpu)
            if self.check_workers:
                self._check_memory(client, contexts)
            return _DaskRun(client, contexts, self.retries, use_worker_gpu=remote).run(emit, cancel_event)


class _DaskRun:
    """One plate run on a connected client: submit, relay events, collect results."""

    def __init__(self, client: Any, contexts: list[ProcessingContext], retries: int,
                 *, use_worker_gpu: bool) -> None:
        self.client = client
        self.contexts = {c.well: c for c in contexts}
        self.retries = retries
        self.use_worker_gpu = use_worker_gpu
        self.run_id = uuid.uuid4().hex[:12]
        self.topic = f"napari-openhcs-{self.run_id}"
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.results: dict[str, WellResult] = {}
        self.starts: dict[str, int] = {}
        self.started_at: dict[str, float] = {}
        self.futures: dict[str, Any] = {}
        self.well_of_key: dict[Any, str] = {}
        self.dropped = False  # futures were cancelled (cancel, or a hung well abandoned)

    def _submit(self, cancel_name: str) -> None:
        for well, ctx in self.contexts.items():
            self.futures[well] = self.client.submit(
                run_well_task, ctx, self.topic, cancel_name, self.use_worker_gpu,
                key=f"well-{well}-{self.run_id}", pure=False, retries=self.retries,
                resources={"GPU": 1} if ctx.device.startswith("cuda") else None,
            )
            self.well_of_key[self.futures[well].key] = well

    def run(self, emit: Emit, cancel_event: Any) -> dict[str, WellResult]:
        distributed = _distributed()
        self.client.subscribe_topic(self.topic, self.inbox.put)
        cancel = distributed.Event(f"napari-openhcs-cancel-{self.run_id}", client=self.client)
        cancelling = False
        try:
            self._submit(cancel.name)
            done_q = distributed.as_completed(list(self.futures.values()), loop=self.client.loop)
            while len(self.results) < len(self.contexts):
                try:
                    self._relay(self.inbox.get(timeout=POLL_S), emit)
                except queue.Empty:
                    pass
                finished = done_q.next_batch(block=False) if done_q.has_ready() else []
                self._drain(emit)  # a well's events arrive before its task completes
                for future in finished:
                    self._finish(future, emit)
                if not cancelling and cancel_event.is_set():
                    cancelling = True
                    self._cancel(cancel, emit)
                self._abandon_hung(emit)
            self._drain(emit)
        finally:
            self._clean_up(cancel)
        return self.results

    def _clean_up(self, cancel: Any) -> None:
        try:
            unfinished = [f for f in self.futures.values() if not f.done()]
            if unfinished:  # interrupted: stop what still runs
                cancel.set()
                self.client.cancel(unfinished)
            elif not self.dropped:
                cancel.clear()
            # else the event stays set: a dropped task may still be starting, and must
            # see it and stop without writing its well
            self.client.unsubscribe_topic(self.topic)
            for f in self.futures.values():
                f.release()
        except Exception:  # e.g. the scheduler is gone: never hide the run's outcome
            logger.warning("could not clean up the Dask run %s", self.run_id, exc_info=True)

    # ------------------------------------------------------------ events
    def _relay(self, message: Any, emit: Emit) -> None:
        event = decode_event(message[1] if isinstance(message, tuple | list) and len(message) == 2
                             else message)
        if event is None or event.well in self.results:
            return
        if isinstance(event, WellStarted):
            self.starts[event.well] = self.starts.get(event.well, 0) + 1
            self.started_at[event.well] = time.monotonic()
        emit(event)

    def _drain(self, emit: Emit) -> None:
        while True:
            try:
                self._relay(self.inbox.get_nowait(), emit)
            except queue.Empty:
                return

    def _record(self, result: WellResult, emit: Emit) -> None:
        if result.well in self.results:
            return
        self.results[result.well] = result
        emit(_finish_event(result))

    # ------------------------------------------------------------ outcomes
    def _finish(self, future: Any, emit: Emit) -> None:
        well = self.well_of_key.get(future.key)
        if well is None or well in self.results:
            return
        if future.status == "finished":
            result = future.result()
            runs = self.starts.get(well, 0)
            if runs > 1 and ALREADY_WRITTEN_NOTE not in result.notes:
                result = dataclasses.replace(result, notes=(
                    *result.notes, f"ran {runs} times: a Dask worker was lost while running it"))
            self._record(result, emit)
        elif future.status == "cancelled":
            self._record(WellResult(well, "failed", f"well {well}: its Dask task was cancelled outside "
                                    f"this run (e.g. the cluster was restarted or shut down)"), emit)
        else:
            self._record(self._error_result(well, future.exception()), emit)

    def _error_result(self, well: str, exc: BaseException | None) -> WellResult:
        from distributed.scheduler import KilledWorker

        on_disk = completed_result(self.contexts[well])
        if on_disk is not None:  # its last worker died after the well was written
            return on_disk
        if isinstance(exc, KilledWorker):
            return WellResult(well, "failed", (
                f"well {well}: its Dask worker died every time it ran it ({self.starts.get(well, 0)} "
                f"attempts; e.g. killed for memory or a crash in native code): {exc}"))
        return WellResult(well, "failed", f"well {well}: {type(exc).__name__}: {exc}")

    def _cancel(self, cancel: Any, emit: Emit) -> None:
        cancel.set()  # first, so a well that starts from now on stops before its first step
        self._drain(emit)  # every well whose start happened before the set is now known
        queued = [w for w in self.futures if w not in self.results and w not in self.starts]
        if queued:
            self.dropped = True
            self.client.cancel([self.futures[w] for w in queued])
        for well in queued:
            self._record(WellResult(well, "cancelled", "cancelled before it started"), emit)
        logger.info("cancel: %d queued wells dropped; running wells stop between steps", len(queued))

    def _abandon_hung(self, emit: Emit) -> None:
        now = time.monotonic()
        for well, t0 in list(self.started_at.items()):
            timeout = self.contexts[well].timeout_s
            if not timeout or well in self.results or now - t0 <= timeout + HANG_GRACE_S:
                continue
            self.dropped = True
            self.client.cancel([self.futures[well]])
            self._record(WellResult(well, "failed", (
                f"well {well} exceeded the per-well timeout of {timeout:g} s; its Dask task was "
                f"abandoned (the worker stays busy until the step returns, but the well is not written)")),
                emit)


__all__ = ["DaskClusterError", "DaskExecutor"]
