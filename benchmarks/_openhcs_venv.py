"""OpenHCS 0.8.6 in its own virtual environment (``benchmarks/.openhcs-venv``), for the benchmarks only.

OpenHCS is never a dependency of this project. ``openhcs==0.8.6`` is installed
without its dependencies (they include its Qt desktop GUI, numba and OpenCV's whole
stack), then only what the benchmark runs imports, held to the version bounds
OpenHCS itself declares (its ``Requires-Dist``, used as pip constraints):

- for its synthetic plate generator (``make_openhcs_plate.py``): NumPy,
  scikit-image, tifffile and OpenHCS's small packages (arraybridge,
  python-introspect, polystore, objectstate);
- for running its own pipeline headless on the CPU (``openhcs_run.py``), in
  addition: pandas, scikit-learn (ASHLAR's position search), threadpoolctl,
  OpenCV (headless; its assembler) and ``pyqt-reactive`` without its dependencies
  (OpenHCS's pipeline compiler imports one Qt-free module of it,
  ``pyqt_reactive.pattern_metadata``; its Qt dependencies are not installed).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENV = BENCH_DIR / ".openhcs-venv"
OPENHCS = "openhcs==0.8.6"
#: What the generator module needs (openhcs itself is installed without dependencies).
GENERATOR_REQUIREMENTS = (
    "numpy",
    "scikit-image",
    "tifffile",
    "arraybridge>=0.3.4,<0.4",
    "python-introspect>=0.1.14,<0.2",
    "polystore>=0.2.17,<0.3",
    "objectstate>=1.1.7,<2",
)
#: What running OpenHCS's pipeline headless on the CPU adds.
PIPELINE_REQUIREMENTS = ("pandas", "scikit-learn", "threadpoolctl", "opencv-python-headless")
#: Installed without dependencies (its own are Qt's).
PIPELINE_NO_DEPS = ("pyqt-reactive>=0.3.24,<0.4",)
_CHECKS = {
    "generator": "from openhcs.demo.synthetic_data import SyntheticMicroscopyGenerator",
    "pipeline": ("import sys; sys.path.insert(0, sys.argv[1]); import openhcs_run; "
                 "openhcs_run.build_pipeline(); "
                 "from openhcs.core.orchestrator.orchestrator import PipelineOrchestrator"),
}
_CONSTRAINTS_CODE = (
    "import importlib.metadata as m, sys\n"
    "from packaging.requirements import Requirement\n"
    "for r in map(Requirement, m.requires('openhcs') or ()):\n"
    "    if r.marker is None or r.marker.evaluate({'extra': ''}):\n"
    "        r.marker = None; r.extras = set(); print(r)\n"
)


def venv_python() -> Path:
    """The virtual environment's Python (it may not exist yet)."""
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_venv(purpose: str = "generator") -> Path:
    """Create or complete the virtual environment for ``purpose``; return its Python.

    ``purpose`` is ``generator`` (OpenHCS's synthetic plate generator) or ``pipeline``
    (OpenHCS's orchestrator and the workload's functions too).

    Each purpose is installed once (a marker file records it); the pipeline's
    packages include the generator's.
    """
    if purpose not in _CHECKS:
        raise ValueError(f"purpose must be one of {sorted(_CHECKS)}, not {purpose!r}")
    python = venv_python()
    marker = VENV / (".ready" if purpose == "generator" else f".ready-{purpose}")
    if marker.is_file():
        return python
    if not python.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--no-deps", OPENHCS, "packaging"], check=True)
    res = subprocess.run([str(python), "-c", _CONSTRAINTS_CODE], check=True, capture_output=True, text=True)
    constraints = VENV / "openhcs-constraints.txt"
    constraints.write_text(res.stdout, encoding="utf-8")
    wanted = [*GENERATOR_REQUIREMENTS, *(PIPELINE_REQUIREMENTS if purpose == "pipeline" else ())]
    subprocess.run([*pip, "-c", str(constraints), *wanted], check=True)
    if purpose == "pipeline":
        subprocess.run([*pip, "--no-deps", "-c", str(constraints), *PIPELINE_NO_DEPS], check=True)
    subprocess.run([str(python), "-c", _CHECKS[purpose], str(BENCH_DIR)], check=True)
    marker.write_text(f"{OPENHCS}\n")
    (VENV / ".ready").write_text(f"{OPENHCS}\n")  # the pipeline's packages include the generator's
    return python
