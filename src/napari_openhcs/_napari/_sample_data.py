"""npe2 sample data: a small synthetic ImageXpress plate, generated once into a cache folder."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from ._layers import LayerData, load_plate, raw_well_layers

logger = logging.getLogger(__name__)

#: Bump when the generator's output changes, so stale caches are regenerated.
SAMPLE_VERSION = 1
#: Environment variable overriding the cache folder.
CACHE_ENV = "NAPARI_OPENHCS_CACHE"


def cache_dir() -> Path:
    """Return the folder that holds generated sample plates.

    ``$NAPARI_OPENHCS_CACHE`` if set, otherwise the user cache folder
    (``~/.cache/napari-openhcs`` on Linux).
    """
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    try:
        import platformdirs

        return Path(platformdirs.user_cache_dir("napari-openhcs"))
    except ImportError:  # pragma: no cover - platformdirs comes with napari
        return Path.home() / ".cache" / "napari-openhcs"


def sample_plate_path(spec: str = "sample", seed: int = 0) -> Path:
    """Return the synthetic plate folder, generating it on first use.

    Parameters
    ----------
    spec : str
        Generator preset (``"sample"``: 4 wells, 2 × 2 sites, 2 channels, 3 z-planes).
    seed : int
        Random seed of the generator.

    Returns
    -------
    Path
        The plate folder (read-only to the engine; outputs go beside it).
    """
    from ..testing import make_synthetic_plate

    root = cache_dir() / f"synthetic-{spec}-{seed}-v{SAMPLE_VERSION}"
    marker = root.parent / f"{root.name}.complete"
    if marker.is_file():
        return Path(marker.read_text().strip())
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".generating-", dir=root.parent))
    try:
        plate = make_synthetic_plate(tmp, spec=spec, seed=seed)
        rel = Path(plate).resolve().relative_to(tmp.resolve())
        if root.exists():  # an incomplete earlier attempt
            shutil.rmtree(root)
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    path = root / rel
    marker.write_text(str(path))
    logger.info("generated the sample plate in %s", path)
    return path


def sample_plate() -> list[LayerData]:
    """npe2 sample data: open the first well of the synthetic plate as layers."""
    plate = load_plate(sample_plate_path())
    return raw_well_layers(plate, plate.wells[0])
