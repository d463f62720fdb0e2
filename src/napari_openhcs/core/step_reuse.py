"""Steps that repeat an earlier step on the same input: computed once, output reused.

A pipeline often normalizes the raw images twice: once to find the tile positions
on, and once more (a step reading from the pipeline start) for the images that are
assembled. When two steps read the raw images and apply the same registered
functions with the same parameters and grouping on the CPU, their outputs are equal,
so the well runner keeps the first one's output and hands it to the second instead
of reading the raw images again and recomputing them.
"""

from __future__ import annotations

from collections.abc import Sequence

from .context import StepPlan


def _reads_raw(plan: StepPlan) -> bool:
    """True when ``plan`` runs on the raw images (the first step, or one from the pipeline start)."""
    return plan.index == 0 or plan.from_pipeline_start


def _reusable(plan: StepPlan) -> bool:
    """True when ``plan``'s output depends only on the raw images and its parameters."""
    chains = [plan.calls, *(plan.by_group.values() if plan.by_group is not None else ())]
    return (_reads_raw(plan) and plan.device == "cpu" and not plan.special_inputs and not plan.special_outputs
            and all(c.registered_name is not None and not c.special_inputs and not c.special_outputs
                    for chain in chains for c in chain))


def _equal(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # parameters that do not compare (arrays): not the same step
        return False


def _signature(plan: StepPlan) -> tuple[object, ...]:
    return (plan.calls, plan.by_group, plan.variable_components, plan.group_by, plan.device)


def repeated_steps(steps: Sequence[StepPlan]) -> dict[int, int]:
    """Map each step that repeats an earlier one on the raw images to that earlier step.

    Parameters
    ----------
    steps : sequence of StepPlan
        A well's compiled steps, in order (``index`` from 0).

    Returns
    -------
    dict
        ``{later index: earlier index}``; the later step's output equals the earlier
        step's. Only registered library functions (deterministic) without special
        inputs or outputs qualify.
    """
    first: list[tuple[tuple[object, ...], int]] = []  # compared by equality: parameters need not hash
    repeats: dict[int, int] = {}
    for plan in steps:
        if not _reusable(plan):
            continue
        sig = _signature(plan)
        earlier = next((index for other, index in first if _equal(other, sig)), None)
        if earlier is None:
            first.append((sig, plan.index))
        else:
            repeats[plan.index] = earlier
    return repeats
