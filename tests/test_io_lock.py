"""The output-folder lock: one run per output, stale locks taken over."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import pytest

from napari_openhcs.io import OutputLock, OutputLockedError
from napari_openhcs.io.lock import LOCK_FILE_NAME


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_second_lock_is_refused_until_released(tmp_path):
    out = tmp_path / "out"
    with OutputLock(out) as lock:
        assert lock.held
        info = json.loads((out / LOCK_FILE_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        with pytest.raises(OutputLockedError, match=f"pid {os.getpid()}") as err:
            OutputLock(out).acquire()
        assert err.value.pid == os.getpid()
    assert not (out / LOCK_FILE_NAME).exists()
    with OutputLock(out):
        pass


def test_stale_lock_is_taken_over_with_a_warning(tmp_path, caplog):
    lock_file = tmp_path / LOCK_FILE_NAME
    dead = _dead_pid()
    lock_file.write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    with caplog.at_level(logging.WARNING, logger="napari_openhcs.io.lock"):
        with OutputLock(tmp_path):
            assert json.loads(lock_file.read_text())["pid"] == os.getpid()
    assert "stale" in caplog.text and str(dead) in caplog.text


def test_lock_of_a_live_process_or_other_host_is_respected(tmp_path):
    lock_file = tmp_path / LOCK_FILE_NAME
    lock_file.write_text(json.dumps({"pid": 1, "host": socket.gethostname()}))
    with pytest.raises(OutputLockedError) as err:
        OutputLock(tmp_path).acquire()
    assert err.value.pid == 1
    lock_file.write_text(json.dumps({"pid": _dead_pid(), "host": "another-machine"}))
    with pytest.raises(OutputLockedError, match="another-machine"):
        OutputLock(tmp_path).acquire()


def test_release_does_not_remove_a_lock_taken_over_by_another_run(tmp_path):
    lock = OutputLock(tmp_path).acquire()
    (tmp_path / LOCK_FILE_NAME).write_text(json.dumps({"pid": 1, "token": "other"}))
    lock.release()
    assert (tmp_path / LOCK_FILE_NAME).exists()
