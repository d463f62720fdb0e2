"""Compile phase 3: decide which step outputs are written and which stay in memory.

The last step is always written to the main output plate; a step marked
``materialize`` is written to its own plate under ``steps/``. Everything else
stays in memory and is dropped as soon as no later step needs it.
"""

from __future__ import annotations

from dataclasses import replace

from ..context import OutputPlan, StepPlan


def plan_materialization(plans: tuple[StepPlan, ...], output: OutputPlan) -> tuple[StepPlan, ...]:
    """Return the plans with their ``output`` set to ``"memory"`` or a plate path."""
    out = []
    last = len(plans) - 1
    for p in plans:
        if p.index == last:
            target = str(output.plate_path)
        elif p.index in output.step_plates:
            target = str(output.step_plates[p.index])
        else:
            target = "memory"
        out.append(replace(p, output=target))
    return tuple(out)
