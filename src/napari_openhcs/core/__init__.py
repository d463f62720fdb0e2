"""The engine: steps, compiler, orchestrator and executors (no napari, no Qt)."""
