"""Segmented SRTM: exact forward model, recovery of a BP_ND step, release removal, errors.

The truth comes from an independent path: the one-tissue reference and target equations
integrated from a plasma input with scipy's ODE solver on a fine grid, the target's
efflux stepping at the onset, then averaged over each frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.frames import Frames
from pipeline.kinetics.release import remove_release
from pipeline.kinetics.srtm import predict_srtm
from pipeline.kinetics.srtm_segments import fit_srtm_segments, predict_srtm_segments
from tests.kinetics.ode_truth import K2_REF, independent_schedule, ode_tacs

ONSET = 45.0


def _ode_tacs(frames: Frames, r1, bp_before, bp_after):
    """Frame-averaged reference and targets, BP_ND stepping from ``bp_before`` to
    ``bp_after`` at ONSET (:func:`tests.kinetics.ode_truth.ode_tacs`)."""
    return ode_tacs(frames, r1, [(0.0, bp_before), (ONSET, bp_after)])


@pytest.fixture(scope="module")
def frames_bi() -> Frames:
    """30 frames, 0-90 min, a boundary at 45 min (the independent simulator's schedule)."""
    return independent_schedule("bi-windows")


@pytest.fixture(scope="module")
def step_data(frames_bi):
    r1 = np.array([0.8, 1.0, 1.2, 1.1])
    before = np.array([0.8, 1.5, 2.5, 3.5])
    after = before * np.array([1.0, 0.93, 0.9, 0.95])  # 0, 7, 10, 5 % fall
    ref, tacs = _ode_tacs(frames_bi, r1, before, after)
    _, null = _ode_tacs(frames_bi, r1, before, before)
    return dict(r1=r1, before=before, after=after, ref=ref, tacs=tacs, null=null)


def test_predict_srtm_segments_matches_ode_integration(frames_bi, step_data):
    """The exact frame-averaged model equals a fine-grid ODE solution of the same physics."""
    pred = predict_srtm_segments(frames_bi, step_data["ref"], r1=step_data["r1"],
                                 k2=step_data["r1"] * K2_REF,
                                 bp_nd=np.vstack([step_data["before"], step_data["after"]]),
                                 boundaries=[ONSET])
    late = frames_bi.mid > 2.0  # the first frames carry the interpolation error of the bolus
    # 2e-3: the reference is known only as frame means (frame-consistent interpolation)
    np.testing.assert_allclose(pred[late], step_data["tacs"][late], rtol=2e-3)


def test_predict_srtm_segments_without_step_is_srtm(frames_bi, step_data):
    """Equal BP_ND in both segments gives plain SRTM (same reference interpolation)."""
    bp = step_data["before"]
    pred = predict_srtm_segments(frames_bi, step_data["ref"], r1=step_data["r1"],
                                 k2=step_data["r1"] * K2_REF, bp_nd=np.vstack([bp, bp]),
                                 boundaries=[ONSET])
    srtm = predict_srtm(frames_bi, step_data["ref"], step_data["r1"],
                        step_data["r1"] * K2_REF, bp)
    np.testing.assert_allclose(pred, srtm, rtol=1e-9)


@pytest.mark.parametrize("window", [None, (10.0, 90.0)])
def test_fit_srtm_segments_recovers_bp_step(frames_bi, step_data, window):
    """Noiseless step data: both BP_ND within 0.5 %, the % change within 0.2 points."""
    fit = fit_srtm_segments(frames_bi, step_data["ref"], step_data["tacs"],
                            boundaries=[ONSET], window=window, weights=frames_bi.duration)
    assert list(fit.flags) == [""] * 4
    np.testing.assert_allclose(fit.bp_nd[0], step_data["before"], rtol=5e-3)
    np.testing.assert_allclose(fit.bp_nd[1], step_data["after"], rtol=5e-3)
    true_change = 100 * (step_data["after"] / step_data["before"] - 1)
    np.testing.assert_allclose(fit.change_pct(), true_change, atol=0.2)


@pytest.mark.parametrize("shared", ["k2prime", "given"])
def test_fit_srtm_segments_with_shared_kinetics(frames_bi, step_data, shared):
    """k2' or R1 and k2 given: the same step recovered (fewer parameters)."""
    extra = dict(k2prime=K2_REF) if shared == "k2prime" else \
        dict(r1=step_data["r1"], k2=step_data["r1"] * K2_REF)
    fit = fit_srtm_segments(frames_bi, step_data["ref"], step_data["tacs"], boundaries=[ONSET],
                            window=(10.0, 90.0), weights=frames_bi.duration, shared=shared,
                            **extra)
    np.testing.assert_allclose(fit.bp_nd[1], step_data["after"], rtol=5e-3)


def test_remove_release_gives_the_release_free_curve(frames_bi, step_data):
    """Removing the fitted release leaves the no-release curve (within 0.2 % of activity)."""
    free, _ = remove_release(frames_bi, step_data["ref"], step_data["tacs"],
                               boundaries=[ONSET], fit_start=10.0)
    np.testing.assert_allclose(free, step_data["null"], rtol=2e-3)
    before = frames_bi.mid < ONSET
    np.testing.assert_array_equal(free[before], step_data["tacs"][before])


def test_remove_release_marks_failed_fits_nan(frames_bi, step_data):
    """A TAC the model cannot describe (zero activity) gets NaN, not a made-up release."""
    tacs = np.column_stack([step_data["tacs"][:, 1], np.zeros(frames_bi.n_frames)])
    free, _ = remove_release(frames_bi, step_data["ref"], tacs, boundaries=[ONSET],
                             fit_start=10.0)
    assert np.all(np.isfinite(free[:, 0]))
    assert np.all(np.isnan(free[:, 1]))


def test_fit_srtm_segments_many_noisy_tacs(frames_bi, step_data):
    """2,000 noisy copies (2 % noise) fit in one call; the mean change is unbiased to 1 point."""
    rng = np.random.default_rng(3)
    clean = np.repeat(step_data["tacs"][:, [2]], 2000, axis=1)
    noisy = clean * (1 + 0.02 * rng.standard_normal(clean.shape))
    fit = fit_srtm_segments(frames_bi, step_data["ref"], noisy, boundaries=[ONSET],
                            window=(10.0, 90.0), weights=frames_bi.duration)
    ok = fit.flags == ""
    assert ok.mean() > 0.95
    assert np.mean(fit.change_pct()[ok]) == pytest.approx(-10.0, abs=1.0)


def test_fit_srtm_segments_refuses_bad_input(frames_bi, step_data):
    """NaN data, a late first frame, too few frames and an unknown option: clear errors."""
    bad = step_data["tacs"].copy()
    bad[5, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_srtm_segments(frames_bi, step_data["ref"], bad, boundaries=[ONSET])
    late = Frames(frames_bi.start + 5.0, frames_bi.end + 5.0)
    with pytest.raises(InputError, match="after injection"):
        fit_srtm_segments(late, step_data["ref"], step_data["tacs"], boundaries=[ONSET])
    with pytest.raises(InputError, match="frames in the window"):
        fit_srtm_segments(frames_bi, step_data["ref"], step_data["tacs"], boundaries=[ONSET],
                          window=(40.0, 60.0))
    with pytest.raises(ConfigError, match="shared must be one of"):
        fit_srtm_segments(frames_bi, step_data["ref"], step_data["tacs"], boundaries=[ONSET],
                          shared="maybe")
