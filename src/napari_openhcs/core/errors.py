"""Engine exceptions. Every message names what to fix: the step, the argument, the file."""

from __future__ import annotations


class OpenHCSError(Exception):
    """Base class of napari-openhcs errors."""


class PipelineCompileError(OpenHCSError, ValueError):
    """The pipeline cannot run on this plate; raised before any pixel is read.

    ``problems`` holds one message per problem found (all of them, not just the first).
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            msg = self.problems[0]
        else:
            msg = f"{len(self.problems)} problems:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)


class InsufficientMemoryError(PipelineCompileError):
    """The plan needs more memory than the machine has."""


class OutputLocationError(PipelineCompileError):
    """The output folder is not usable (inside the input plate, not writable, ...)."""


class StepExecutionError(OpenHCSError, RuntimeError):
    """A step failed on a well; the message names the step and what went wrong."""


class WellCancelledError(OpenHCSError):
    """The run was cancelled before this well finished."""


class NotInitializedError(OpenHCSError, RuntimeError):
    """``initialize()`` must be called before compiling or executing."""
