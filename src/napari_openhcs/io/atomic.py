"""Atomic file writes, storage error translation and fault injection for tests.

Every file the output layer writes outside a well's temporary folder goes through
:func:`atomic_write_bytes` (or :func:`atomic_write_json`): the bytes go to a
uniquely named temporary file next to the target, which then replaces the target
with :func:`os.replace`. A reader therefore sees either the old file or the new
one, never a half-written one, even if the disk fills up or the process is killed.

File contents are not ``fsync``-ed by default: that protects against a power cut
or kernel crash, not against a crashed process, and costs a lot on network file
systems. Pass ``fsync=True`` where durability across a power cut matters.

Fault injection
---------------
:func:`inject_fault` makes writes fail with a chosen ``errno`` (``ENOSPC`` by
default) once a number of bytes has been written, so tests can exercise the
"disk full" path::

    with atomic.inject_fault(errno.ENOSPC, after_bytes=10_000, match="B03"):
        writer.write_well("B03", ...)  # raises StorageFullError

Worker processes do not share the parent's module state; for them, set the
environment variable ``NAPARI_OPENHCS_INJECT_FAULT`` before they start, e.g.
``"ENOSPC,after_bytes=10000,match=.tmp-B-03"`` (each process counts its own bytes).
"""

from __future__ import annotations

import errno as _errno
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

#: Environment variable that injects a fault in every process that sees it.
FAULT_ENV_VAR = "NAPARI_OPENHCS_INJECT_FAULT"

_FULL_ERRNOS = {_errno.ENOSPC, getattr(_errno, "EDQUOT", _errno.ENOSPC)}
_DENIED_ERRNOS = {_errno.EACCES, _errno.EPERM, _errno.EROFS}


class StorageFullError(OSError):
    """The disk (or quota) holding an output file is full.

    ``errno`` is ``ENOSPC`` (or ``EDQUOT``), ``filename`` the file being written.
    """

    def __init__(self, path: str | os.PathLike[str], err: int = _errno.ENOSPC) -> None:
        msg = (
            f"No space left on the device while writing {os.fspath(path)}: free some space "
            "or choose an output folder on another disk, then run again"
        )
        super().__init__(err, msg, os.fspath(path))

    def __str__(self) -> str:
        return str(self.strerror)


class OutputNotWritableError(PermissionError):
    """An output folder cannot be written (permissions, or a read-only file system)."""

    def __init__(self, path: str | os.PathLike[str], err: int = _errno.EACCES) -> None:
        folder = Path(path)
        if not folder.is_dir():
            folder = folder.parent
        msg = (
            f"Cannot write to the output folder {folder}: "
            f"{os.strerror(err).lower()}. Choose a folder you can write to "
            "(the raw plate folder is read-only by design)"
        )
        super().__init__(err, msg, os.fspath(path))

    def __str__(self) -> str:
        return str(self.strerror)


def translate_os_error(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """Return the error to raise for ``exc`` hit while writing ``path``.

    ``ENOSPC``/``EDQUOT`` become :class:`StorageFullError`, ``EACCES``/``EPERM``/
    ``EROFS`` become :class:`OutputNotWritableError`; anything else is returned as is.
    """
    if isinstance(exc, StorageFullError | OutputNotWritableError):
        return exc
    where = exc.filename if exc.filename else path
    if exc.errno is not None and exc.errno in _FULL_ERRNOS:
        return StorageFullError(where, exc.errno)
    if exc.errno is not None and exc.errno in _DENIED_ERRNOS:
        return OutputNotWritableError(where, exc.errno)
    return exc


@contextmanager
def storage_errors(path: str | os.PathLike[str]) -> Iterator[None]:
    """Context manager that re-raises OS errors through :func:`translate_os_error`."""
    try:
        yield
    except OSError as exc:
        new = translate_os_error(exc, path)
        if new is exc:
            raise
        raise new from exc


# ---------------------------------------------------------------- fault injection
@dataclass
class _Fault:
    err: int
    after_bytes: int
    match: str | None
    written: int = 0

    def allowance(self, path: str, nbytes: int) -> int | None:
        """Bytes of ``nbytes`` that may still be written to ``path``; None: no limit."""
        if self.match is not None and self.match not in path:
            return None
        left = self.after_bytes - self.written
        allowed = max(0, min(left, nbytes))
        self.written += allowed
        return allowed


_faults: list[_Fault] = []
_faults_lock = threading.Lock()
_env_fault: tuple[str, _Fault] | None = None


def _parse_fault_spec(spec: str) -> _Fault:
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    name = parts[0] if parts else "ENOSPC"
    err = int(name) if name.isdigit() else int(getattr(_errno, name.upper()))
    opts = dict(p.split("=", 1) for p in parts[1:])
    return _Fault(err, int(opts.get("after_bytes", 0)), opts.get("match"))


def _active_faults() -> list[_Fault]:
    global _env_fault
    spec = os.environ.get(FAULT_ENV_VAR)
    faults = list(_faults)
    if spec:
        if _env_fault is None or _env_fault[0] != spec:
            _env_fault = (spec, _parse_fault_spec(spec))
        faults.append(_env_fault[1])
    return faults


def fault_allowance(path: str | os.PathLike[str], nbytes: int) -> tuple[int, int | None]:
    """Return ``(bytes allowed, errno)`` for writing ``nbytes`` to ``path``.

    ``errno`` is None when the whole write may proceed. Used by every writer in
    this package; outside tests no fault is active and this returns ``(nbytes, None)``.
    """
    if not _faults and FAULT_ENV_VAR not in os.environ:
        return nbytes, None
    spath = os.fspath(path)
    with _faults_lock:
        allowed, err = nbytes, None
        for fault in _active_faults():
            a = fault.allowance(spath, nbytes)
            if a is not None and a < nbytes:
                allowed, err = min(allowed, a), fault.err
    return allowed, err


def check_fault(path: str | os.PathLike[str], nbytes: int) -> None:
    """Raise the injected ``OSError`` if writing ``nbytes`` to ``path`` should fail."""
    allowed, err = fault_allowance(path, nbytes)
    if err is not None:
        raise OSError(err, os.strerror(err), os.fspath(path))


@contextmanager
def inject_fault(
    err: int = _errno.ENOSPC, *, after_bytes: int = 0, match: str | None = None
) -> Iterator[None]:
    """Make writes fail with ``OSError(err)`` once ``after_bytes`` bytes were written.

    Parameters
    ----------
    err
        The errno to raise (``errno.ENOSPC`` simulates a full disk).
    after_bytes
        Bytes that may be written (in total, by all matching writes) before the
        fault fires; ``0`` fails the first write.
    match
        Only writes whose path contains this substring count and fail.
    """
    fault = _Fault(err, after_bytes, match)
    with _faults_lock:
        _faults.append(fault)
    try:
        yield
    finally:
        with _faults_lock:
            _faults.remove(fault)


# ---------------------------------------------------------------- atomic writes
def _temp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:12]}.partial")


def write_guarded(fh: IO[bytes], data: bytes | memoryview, path: str | os.PathLike[str]) -> None:
    """Write ``data`` to the open file ``fh``, honouring injected faults for ``path``."""
    view = memoryview(data).cast("B")
    allowed, err = fault_allowance(path, view.nbytes)
    fh.write(view[:allowed])
    if err is not None:
        raise OSError(err, os.strerror(err), os.fspath(path))


def atomic_write_with(
    path: str | os.PathLike[str], write: Callable[[IO[bytes]], None], *, fsync: bool = False
) -> Path:
    """Write a file atomically by calling ``write(fh)`` on a temporary sibling.

    The temporary file replaces ``path`` (:func:`os.replace`) only after ``write``
    returned; on any error it is removed and ``path`` is left untouched. Missing
    parent folders are created.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    StorageFullError
        The disk is full.
    OutputNotWritableError
        The folder cannot be written.
    """
    target = Path(path)
    with storage_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_sibling(target)
        try:
            with open(tmp, "xb") as fh:
                write(fh)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return target


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + :func:`os.replace`).

    See :func:`atomic_write_with` for the guarantees and the errors raised.
    """
    return atomic_write_with(path, lambda fh: write_guarded(fh, data, path), fsync=fsync)


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object at ``path``; ``None`` when it is missing, unreadable or not an object."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def atomic_write_json(path: str | os.PathLike[str], obj: Any, *, fsync: bool = False,
                      compact: bool = False) -> Path:
    """Serialise ``obj`` as JSON (indented, or ``compact``) and write it to ``path`` atomically.

    ``compact`` leaves out the indentation and spaces: for documents rewritten often
    (a plate's well list), which Python then encodes with its C encoder, several times faster.
    """
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False) if compact else json.dumps(
        obj, indent=2, allow_nan=False)
    data = (text + "\n").encode("utf-8")
    return atomic_write_bytes(path, data, fsync=fsync)
