"""Running ``napari-openhcs`` as a subprocess the way a user does, and checksumming plates."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._support import TESTS_DIR


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI child: the suite's step functions importable."""
    path = os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def cli(*args: Any, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``napari-openhcs <args>`` to the end; return the completed process (text output)."""
    return subprocess.run([sys.executable, "-m", "reliability._cli", *map(os.fspath, args)],
                          env=cli_env(), capture_output=True, text=True, timeout=timeout,
                          errors="replace", **kwargs)


def start_cli(*args: Any, log: Path, **extra_env: str) -> subprocess.Popen[bytes]:
    """Start ``napari-openhcs <args>`` in its own session, output to ``log``."""
    return subprocess.Popen([sys.executable, "-m", "reliability._cli", *map(os.fspath, args)],
                            env=cli_env(**extra_env), start_new_session=True,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def checksum_tree(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file below ``root`` (symlinks by target name)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = Path(dirpath) / name
            rel = os.fsdecode(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert ``proc`` failed with one ``error:`` line (no traceback) holding ``needles``."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]
