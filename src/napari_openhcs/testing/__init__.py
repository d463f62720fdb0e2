"""Synthetic HCS plates with known ground truth, for tests, benchmarks and the napari sample.

>>> from napari_openhcs.testing import make_synthetic_plate, load_ground_truth
>>> plate_dir = make_synthetic_plate(tmp_path, spec="tiny", seed=0)  # doctest: +SKIP
>>> truth = load_ground_truth(plate_dir)  # doctest: +SKIP
"""

from .spec import PRESETS, SyntheticPlateSpec
from .synthetic import ground_truth_path, load_ground_truth, make_synthetic_plate

__all__ = ["PRESETS", "SyntheticPlateSpec", "ground_truth_path", "load_ground_truth", "make_synthetic_plate"]
