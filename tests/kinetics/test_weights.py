"""Frame weighting schemes: uniform, duration, counts."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.frames import HALF_LIFE_MIN, decay_correction_factors
from pipeline.kinetics.weights import WEIGHT_SCHEMES, frame_weights


def test_frame_weights_uniform_are_ones(frames_90min):
    """Uniform weights are all 1."""
    assert np.all(frame_weights("uniform", frames_90min) == 1.0)


def test_frame_weights_duration_proportional_mean_one(frames_90min):
    """Duration weights are proportional to frame length and average 1."""
    w = frame_weights("duration", frames_90min)
    assert w.mean() == pytest.approx(1.0)
    assert w / frames_90min.duration == pytest.approx(np.full(28, w[0] / 0.5))


def test_frame_weights_counts_inverse_variance(frames_90min):
    """Counts weights are duration / (activity x decay factor), up to a constant."""
    half_life = HALF_LIFE_MIN["C11"]
    activity = np.linspace(100.0, 50.0, 28)
    w = frame_weights("counts", frames_90min, activity, half_life=half_life)
    expected = frames_90min.duration / (activity * decay_correction_factors(frames_90min,
                                                                            half_life))
    assert w == pytest.approx(expected / expected.mean(), rel=1e-12)


def test_frame_weights_counts_floor_keeps_empty_frames_finite(frames_90min):
    """Zero activity before tracer arrival gives finite, positive weights."""
    activity = np.r_[0.0, 0.0, np.full(26, 100.0)]
    w = frame_weights("counts", frames_90min, activity, half_life=20.364)
    assert np.all(np.isfinite(w)) and np.all(w > 0)


def test_frame_weights_counts_need_curve_and_half_life(frames_90min):
    """Counts weights without the half-life are refused with the fix."""
    with pytest.raises(InputError, match="half-life"):
        frame_weights("counts", frames_90min, np.ones(28))


def test_frame_weights_unknown_scheme(frames_90min):
    """An unknown scheme lists the valid ones."""
    with pytest.raises(ConfigError, match="uniform, duration, counts"):
        frame_weights("poisson", frames_90min)
    assert WEIGHT_SCHEMES == ("uniform", "duration", "counts")
