"""Fixtures for the kinetic-model tests: frame schedules with gaps and SRTM-consistent TACs."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.frames import Frames
from pipeline.simulate.compartments import srtm_consistent_tacs

#: Uneven frames with three gaps (a short pause at 3 min, a 2-min and a 5-min break), minutes.
GAPPY_STARTS = [0, 0.5, 1, 1.5, 2, 3.5, 4.5, 5.5, 7.5, 9.5, 12, 15, 20, 25, 35, 45, 55, 70, 80]
GAPPY_ENDS = [0.5, 1, 1.5, 2, 3, 4.5, 5.5, 7.5, 9.5, 11.5, 15, 20, 25, 30, 45, 55, 65, 80, 90]

#: True parameters of the noiseless tests: BP_ND 0.5-4 and R1 0.7-1.3, as in the brief.
TRUE_BP = np.array([0.5, 1.0, 2.0, 3.0, 4.0])
TRUE_R1 = np.array([0.7, 1.3, 1.0, 0.9, 1.1])
TRUE_K2PRIME = 0.12


@pytest.fixture
def truth() -> SimpleNamespace:
    """True BP_ND, R1 (5 targets) and k2' of the noiseless SRTM-consistent fixtures."""
    return SimpleNamespace(bp=TRUE_BP.copy(), r1=TRUE_R1.copy(), k2prime=TRUE_K2PRIME)


@pytest.fixture
def frames_gappy() -> Frames:
    """19 uneven frames over 0-90 min with gaps at 3.0, 11.5 and 30 min."""
    return Frames(np.asarray(GAPPY_STARTS, float), np.asarray(GAPPY_ENDS, float), "gappy")


@pytest.fixture(params=["frames_90min", "frames_gappy"])
def srtm_data(request):
    """(frames, ref_tac, tacs) of noiseless SRTM-consistent TACs on both schedules."""
    frames = request.getfixturevalue(request.param)
    ref, tacs = srtm_consistent_tacs(frames, TRUE_BP, r1=TRUE_R1, k2prime=TRUE_K2PRIME)
    return frames, ref, tacs
