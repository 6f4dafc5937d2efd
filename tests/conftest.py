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


@pytest.fixture
def toy_images_in_mni():
    """Take the toy images of ``factories.make_bids`` (6x6x6 voxels of 36 mm: no anatomy for
    space detection to match) as MNI-space, for tests of other checks. Space detection and
    its refusals are tested on brain-like images (tests/preprocess/test_space_detect.py,
    tests/workflow/test_preprocess_workflow.py)."""
    from pipeline.preprocess import plan
    from pipeline.space_detection import SpaceEvidence

    def in_mni(mean, affine, *, shape, sform_code=0, qform_code=0, bids_space=None):
        return SpaceEvidence(space="mni", bids_space=bids_space, sform_code=sform_code,
                             qform_code=qform_code, fov_overlap=1.0, correlation=1.0,
                             best_shift_mm=0.0, best_rotation_deg=0.0, confident=True,
                             reasons=["toy test image taken as MNI"])

    with pytest.MonkeyPatch.context() as patch:  # its own: a test's monkeypatch.undo() keeps it
        patch.setattr(plan, "detect_space", in_mni)
        yield
