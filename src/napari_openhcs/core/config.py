"""``GlobalPipelineConfig``: run-wide settings (workers, output location, executor)."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

ExecutorName = Literal["processes", "threads", "dask"]


def default_workers() -> int:
    """Return the default number of worker processes (CPU count, at least 1)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@dataclass(frozen=True)
class GlobalPipelineConfig:
    """Settings that apply to a whole plate run.

    Parameters
    ----------
    num_workers
        Wells processed in parallel (default: number of CPU cores).
    output_dir
        Where results go. Default: a folder ``<plate>_outputs`` beside the plate,
        never inside it.
    executor
        ``"processes"`` (default; a local pool of worker processes), ``"threads"`` (debugging)
        or ``"dask"`` (a Dask ``distributed`` cluster).
    overwrite
        Recompute wells already complete for the same pipeline.
    microscope
        Force the plate format instead of detecting it.
    source
        ``"planes"`` or ``"projections"`` (ImageXpress instrument projections).
    memory_limit_bytes
        Host memory the run may use (default: what the machine has available).
    well_timeout_s
        Stop a well that runs longer than this (``None``: no limit); with the
        ``processes`` executor it is tried once more, then fails.
    heartbeat_timeout_s
        Stop a worker process that reports no progress (a step or a group of planes
        begun) for this long, and retry its well once, then fail it (``None``: no
        check; ``processes`` executor only). The default, 600 s, is far longer than
        one group of planes takes.
    use_gpu
        ``"auto"`` (use GPUs when present), ``"never"`` or ``"always"``.
    skip_incomplete_wells
        Skip wells with missing images instead of failing them.
    compression_level
        Blosc compression level of the output plate's image chunks, 0-9 (zstd codec at
        level 2 x n - 1, 512 KiB Blosc blocks; 0: uncompressed). The default, 1, is zstd
        level 1.
    dask_scheduler
        Address of a Dask scheduler (``executor="dask"``); ``None`` starts a LocalCluster.
    """

    num_workers: int = 0
    output_dir: Path | str | None = None
    executor: ExecutorName = "processes"
    overwrite: bool = False
    microscope: str | None = None
    source: str = "planes"
    memory_limit_bytes: int | None = None
    well_timeout_s: float | None = None
    heartbeat_timeout_s: float | None = 600.0
    use_gpu: Literal["auto", "never", "always"] = "auto"
    skip_incomplete_wells: bool = False
    compression_level: int = 1
    dask_scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0 (0 = one per CPU core), not {self.num_workers}")
        if self.executor not in ("processes", "threads", "dask"):
            raise ValueError(f"executor must be 'processes', 'threads' or 'dask', not {self.executor!r}")
        if self.use_gpu not in ("auto", "never", "always"):
            raise ValueError(f"use_gpu must be 'auto', 'never' or 'always', not {self.use_gpu!r}")
        if not 0 <= self.compression_level <= 9:
            raise ValueError(f"compression_level must be 0 to 9, not {self.compression_level}")
        for name in ("well_timeout_s", "heartbeat_timeout_s"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds or None, not {value}")
        if self.output_dir is not None:
            object.__setattr__(self, "output_dir", Path(self.output_dir).expanduser())

    @property
    def workers(self) -> int:
        """Effective worker count."""
        return self.num_workers or default_workers()

    def replace(self, **changes: Any) -> GlobalPipelineConfig:
        """Return a copy with some settings changed."""
        return replace(self, **changes)
