"""Child-process entry point of :func:`._support.run_isolated` (one JSON line per plate)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def main(plate: str, out: str) -> dict[str, Any]:
    from ._support import orchestrator, pipeline

    report: dict[str, Any] = {"error": None, "error_type": None, "incomplete": {}, "results": {}}
    try:
        orch = orchestrator(Path(plate), Path(out))
        steps = pipeline()
        compiled = orch.compile_pipelines(steps)
        report["incomplete"] = {w: list(m) for w, m in orch.last_compiled.incomplete_wells.items()}
        results = orch.execute_compiled_plate(steps, compiled)
    except Exception as exc:
        report.update(error=str(exc), error_type=type(exc).__name__)
        return report
    report["results"] = {w: {"status": r.status, "error": r.error} for w, r in results.items()}
    return report


if __name__ == "__main__":
    pairs = sys.argv[1:]
    for plate_arg, out_arg in zip(pairs[::2], pairs[1::2]):
        print(json.dumps(main(plate_arg, out_arg)), flush=True)
