"""Fixtures for preprocessing tests: a smooth brain-like volume on a coarse grid, moved by
known rigid transforms, and a small simulated scanner-space study.

The brain-like volume is nilearn's MNI152 grey-matter map (shipped with nilearn) smoothed
and sampled on a 4 mm grid: it has the shape and contrast registration needs, and every
transform applied to it is known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from preprocess_helpers import affine4, brain_volume


@pytest.fixture(scope="session")
def brain4() -> tuple[np.ndarray, np.ndarray]:
    """The brain-like volume and its 4 mm affine."""
    return brain_volume(), affine4()


@pytest.fixture(scope="session")
def scanner_study(tmp_path_factory) -> Path:
    """A 1-subject scanner-space windows study on coarse grids (4 mm PET, 2 mm T1w, 3 mm
    phantom), noiseless."""
    from pipeline.simulate.anatomy import T1Settings
    from pipeline.simulate.scanner_study import ScannerSettings, simulate_scanner_study

    out = tmp_path_factory.mktemp("scanner_study")
    settings = ScannerSettings(pet_voxel_mm=4.0, pet_shape=(64, 64, 48),
                               t1=T1Settings(voxel_mm=2.0, shape=(88, 104, 88)))
    simulate_scanner_study(out, subjects=1, seed=3, mni_voxel_size=3.0, scanner=settings,
                           noise=0.0)
    return out
