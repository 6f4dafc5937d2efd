"""Fixtures shared by all tests: a seeded generator and a 90-min carfentanil frame schedule."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.frames import Frames

#: 6x0.5, 5x1, 5x2, 4x3, 4x5, 4x10 min = 28 frames over 90 min (seconds, as in a sidecar).
FRAME_DURATIONS_90MIN_S = [30] * 6 + [60] * 5 + [120] * 5 + [180] * 4 + [300] * 4 + [600] * 4


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator, new for each test."""
    return np.random.default_rng(20131211)


@pytest.fixture
def frames_90min() -> Frames:
    """28 contiguous frames over 0-90 min."""
    durations = np.asarray(FRAME_DURATIONS_90MIN_S, float)
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return Frames.from_bids(starts, durations, source="frames_90min")
