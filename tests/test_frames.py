"""Frame timing, decay and unit conversion, checked against exact numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.frames import (
    HALF_LIFE_MIN,
    Frames,
    activity_scale,
    decay_correct,
    decay_correction_factors,
    decay_factor,
    decay_uncorrect,
    half_life_minutes,
    normalize_radionuclide,
)


def test_frames_from_bids_converts_seconds_to_minutes():
    """FrameTimesStart/FrameDuration in seconds give start, end, mid, duration in minutes."""
    frames = Frames.from_bids([0, 30, 90], [30, 60, 120])
    np.testing.assert_allclose(frames.start, [0.0, 0.5, 1.5])
    np.testing.assert_allclose(frames.end, [0.5, 1.5, 3.5])
    np.testing.assert_allclose(frames.mid, [0.25, 1.0, 2.5])
    np.testing.assert_allclose(frames.duration, [0.5, 1.0, 2.0])
    np.testing.assert_allclose(frames.start_seconds, [0, 30, 90])


def test_frames_90min_schedule(frames_90min):
    """The 28-frame carfentanil schedule ends at exactly 90 minutes."""
    assert frames_90min.n_frames == 28
    assert frames_90min.end[-1] == pytest.approx(90.0)


def test_frames_allow_gaps():
    """A gap between frames is legal (e.g. a break in acquisition)."""
    frames = Frames.from_bids([0, 600, 3000], [600, 600, 600])
    assert frames.n_frames == 3


@pytest.mark.parametrize(
    ("starts", "durations", "message"),
    [
        ([0, 60], [60, 0], r"frame 2 has a duration of 0 s"),
        ([0, 60], [60, -5], r"frame 2 has a duration of -5 s"),
        ([0, 30], [60, 60], r"frame 2 starts before the previous frame ends"),
        ([60, 0], [60, 60], r"frame 2 starts before the previous frame"),
        ([0, 60, 120], [60, 60], r"FrameTimesStart has 3 values but FrameDuration has 2"),
        ([0, float("nan")], [60, 60], r"NaN or infinite"),
        ([-10, 60], [60, 60], r"before injection"),
    ],
)
def test_frames_reject_bad_timing(starts, durations, message):
    """Non-positive, overlapping, unsorted, mismatched or non-finite frames are refused."""
    with pytest.raises(InputError, match=message):
        Frames.from_bids(starts, durations, source="x_pet.json")


def test_frames_error_names_the_source():
    """The sidecar path leads the message."""
    with pytest.raises(InputError, match=r"^sub-01_pet\.json: frame 1"):
        Frames.from_bids([0], [0], source="sub-01_pet.json")


def test_frames_in_window_uses_mid_times(frames_90min):
    """A window selects frames by mid-time, inclusive."""
    mask = frames_90min.in_window(45, 90)
    assert np.all(frames_90min.mid[mask] >= 45)
    assert np.all(frames_90min.mid[~mask] < 45)


def test_decay_factor_of_c11_over_one_half_life_is_half():
    """exp(-ln2 * 20.364 / 20.364) = 0.5 exactly."""
    assert decay_factor(20.364, HALF_LIFE_MIN["C11"]) == pytest.approx(0.5, abs=1e-15)
    assert decay_factor(2 * 20.364, HALF_LIFE_MIN["C11"]) == pytest.approx(0.25, abs=1e-15)


def test_decay_correction_factor_matches_integral():
    """The frame factor equals duration / integral of exp(-lambda t) over the frame."""
    frames = Frames.from_bids([600], [1200])
    lam = math.log(2) / 20.364
    integral = (math.exp(-lam * 10) - math.exp(-lam * 30)) / lam
    assert decay_correction_factors(frames, 20.364)[0] == pytest.approx(20 / integral, rel=1e-12)


def test_decay_correction_of_short_frame_tends_to_point_factor():
    """For a very short frame the factor tends to exp(+lambda t)."""
    frames = Frames.from_bids([20.364 * 60], [1e-3])
    assert decay_correction_factors(frames, 20.364)[0] == pytest.approx(2.0, rel=1e-6)


def test_decay_correct_then_uncorrect_round_trips(frames_90min, rng):
    """Uncorrecting corrected data gives the input back, without modifying it."""
    data = rng.uniform(1, 10, size=(5, frames_90min.n_frames))
    copy = data.copy()
    back = decay_uncorrect(decay_correct(data, frames_90min, 20.364), frames_90min, 20.364)
    np.testing.assert_allclose(back, data, rtol=1e-12)
    np.testing.assert_array_equal(data, copy)


def test_decay_correct_constant_true_activity(frames_90min):
    """Uncorrected frame means of a decaying constant source correct back to the constant."""
    lam = math.log(2) / 20.364
    t0, t1 = frames_90min.start, frames_90min.end
    measured = 100.0 * (np.exp(-lam * t0) - np.exp(-lam * t1)) / (lam * (t1 - t0))
    np.testing.assert_allclose(decay_correct(measured, frames_90min, 20.364), 100.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("name", "key"),
    [("C11", "C11"), ("11C", "C11"), ("[11C]", "C11"), ("C-11", "C11"), ("c11", "C11"),
     ("18F", "F18"), ("F-18", "F18"), ("68Ga", "Ga68")],
)
def test_normalize_radionuclide_spellings(name, key):
    """Common spellings of a radionuclide map to one key."""
    assert normalize_radionuclide(name) == key


def test_unknown_radionuclide_is_refused():
    """An unknown radionuclide names the known ones."""
    with pytest.raises(InputError, match=r"(?s)unknown radionuclide 'Xx99'.*C11"):
        half_life_minutes("Xx99")


@pytest.mark.parametrize(
    ("units", "factor"),
    [("Bq/mL", 1.0), ("kBq/mL", 1e3), ("kBq/cc", 1e3), ("MBq/mL", 1e6), ("nCi/mL", 37.0),
     ("uCi/mL", 37e3), ("µCi/mL", 37e3), ("mCi/mL", 37e6), ("Bq/ml", 1.0)],
)
def test_activity_scale_to_bq_per_ml(units, factor):
    """Each supported unit converts with its exact factor (1 nCi = 37 Bq)."""
    assert activity_scale(units) == factor


def test_activity_scale_rejects_unknown_units():
    """Unknown units name the file and the accepted units."""
    with pytest.raises(InputError, match=r"(?s)^a_pet\.json: Units is 'SUV'.*Bq/mL"):
        activity_scale("SUV", source="a_pet.json")
