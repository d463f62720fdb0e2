"""An exclusive lock on an output folder, so two runs never write the same output."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from .atomic import storage_errors

logger = logging.getLogger(__name__)

LOCK_FILE_NAME = ".napari-openhcs.lock"
#: A lock file that cannot be parsed is considered abandoned after this many seconds.
UNREADABLE_LOCK_GRACE_S = 30.0


class OutputLockedError(RuntimeError):
    """Another run holds the lock on the output folder.

    Attributes
    ----------
    path
        The lock file.
    pid, host, started
        Who holds it and since when (``None`` if unknown).
    """

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        self.path = path
        self.pid: int | None = holder.get("pid")
        self.host: str | None = holder.get("host")
        self.started: str | None = holder.get("started")
        super().__init__(
            f"The output folder {path.parent} is in use by another run (pid {self.pid} on "
            f"{self.host}, started {self.started}). Wait for it to finish, or delete "
            f"{path} if that run is gone."
        )


def _process_start_time(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:  # psutil missing, or no such process
        return None


def _pid_alive(pid: int, started_at: float | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    if started_at is not None:
        now_start = _process_start_time(pid)
        if now_start is not None and abs(now_start - started_at) > 1.0:
            return False  # the pid was reused by another process
    return True


class OutputLock:
    """Exclusive lock file ``<folder>/.napari-openhcs.lock`` (a context manager).

    The file is created with ``O_CREAT | O_EXCL`` and holds the pid, host and start
    time of the holder. A lock whose process is gone (same host) is taken over with
    a warning. The folder is created if missing.

    Parameters
    ----------
    folder
        The output folder to lock.

    Raises
    ------
    OutputLockedError
        On :meth:`acquire`, if another live run holds the lock.

    Examples
    --------
    >>> with OutputLock(out_dir):  # doctest: +SKIP
    ...     run_the_plate()
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE_NAME
        self._token: str | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._token is not None

    def _holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None

    def _is_stale(self, holder: dict[str, Any] | None) -> bool:
        if holder is None:  # unreadable: maybe being written right now
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return True
            return age > UNREADABLE_LOCK_GRACE_S
        if holder.get("host") != socket.gethostname():
            return False  # cannot tell whether a process on another machine is alive
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return True
        return not _pid_alive(pid, holder.get("process_start"))

    def acquire(self) -> OutputLock:
        """Take the lock (see the class docstring). Returns ``self``."""
        if self.held:
            return self
        with storage_errors(self.folder):
            self.folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        token = f"{pid}-{time.time_ns()}"
        info = {
            "pid": pid,
            "host": socket.gethostname(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "process_start": _process_start_time(pid),
            "token": token,
        }
        for _ in range(3):
            try:
                with storage_errors(self.path):
                    fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder == {}:
                    continue  # removed in the meantime: try again
                if not self._is_stale(holder):
                    raise OutputLockedError(self.path, holder or {}) from None
                logger.warning(
                    "taking over the stale lock %s (held by pid %s on %s, which is gone)",
                    self.path,
                    (holder or {}).get("pid"),
                    (holder or {}).get("host"),
                )
                self._remove_stale(holder)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(info, fh)
            self._token = token
            return self
        raise OutputLockedError(self.path, self._holder() or {})

    def _remove_stale(self, holder: dict[str, Any] | None) -> None:
        """Remove the stale lock ``holder``, unless another run replaced it meanwhile."""
        aside = self.path.with_name(f"{LOCK_FILE_NAME}.stale-{uuid.uuid4().hex}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved: dict[str, Any] | None = json.loads(aside.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = None
        if moved != holder:  # a live run took the lock in between: give it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                pass
            aside.unlink(missing_ok=True)
            raise OutputLockedError(self.path, moved or {})
        aside.unlink(missing_ok=True)

    def release(self) -> None:
        """Release the lock (only removes the file if it is still ours)."""
        if self._token is None:
            return
        holder = self._holder()
        if holder and holder.get("token") == self._token:
            self.path.unlink(missing_ok=True)
        self._token = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
