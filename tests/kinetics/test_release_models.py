"""The release model's ways of obtaining R1 and k2 (``release_model``), against ODE truth.

The truth is integrated independently of the segmented SRTM's exact solution: plasma ->
reference and target one-tissue equations solved with scipy on a fine grid (the target's
BP_ND a step function of time), averaged over the frames of the independent simulator's
30-frame schedule.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.frames import Frames
from pipeline.kinetics.release import RELEASE_MODELS, remove_release
from tests.kinetics.ode_truth import K2_REF, independent_schedule, ode_tacs

ONSET = 45.0


@pytest.fixture(scope="module")
def frames() -> Frames:
    """30 frames, 0-90 min (the independent simulator's schedule)."""
    return independent_schedule("release-models")


R1 = np.array([0.8, 1.0, 1.2, 1.1])
BEFORE = np.array([0.8, 1.5, 2.5, 3.5])
AFTER = BEFORE * np.array([1.0, 0.93, 0.9, 0.95])  # 0, 7, 10, 5 % fall


@pytest.fixture(scope="module")
def one_tissue(frames):
    """Exact SRTM physics: BP_ND steps at the onset only; and the no-release twin."""
    ref, tacs = ode_tacs(frames, R1, [(0.0, BEFORE), (ONSET, AFTER)])
    _, null = ode_tacs(frames, R1, [(0.0, BEFORE)])
    return ref, tacs, null


@pytest.fixture(scope="module")
def transient(frames):
    """BP_ND 30 % higher up to 20 min (an early transient no single SRTM describes), then
    the onset step; and the no-release twin."""
    early = (0.0, BEFORE * 1.3)
    ref, tacs = ode_tacs(frames, R1, [early, (20.0, BEFORE), (ONSET, AFTER)])
    _, null = ode_tacs(frames, R1, [early, (20.0, BEFORE)])
    return ref, tacs, null


@pytest.mark.parametrize("release_model", RELEASE_MODELS)
def test_release_models_remove_the_release_of_srtm_data(frames, one_tissue, release_model):
    """Every release model, on exact SRTM data: the release-free curve within 0.3 % of the
    no-release truth (the frame-consistent reference interpolation costs ~0.2 %) and the
    BP_ND change within 0.3 points of the planted one."""
    ref, tacs, null = one_tissue
    free, fit = remove_release(frames, ref, tacs, boundaries=[ONSET], fit_start=10.0,
                               release_model=release_model, k2prime=K2_REF,
                               baseline_start=20.0)
    np.testing.assert_allclose(free, null, rtol=3e-3)
    assert fit.bp_nd.shape == (2, R1.size)
    np.testing.assert_allclose(fit.change_pct(), 100 * (AFTER / BEFORE - 1), atol=0.3)


@pytest.mark.parametrize("release_model", ["early_step", "early_step_aic"])
def test_early_step_leaves_out_an_early_transient(frames, transient, release_model):
    """With a BP_ND transient before 20 min, early_step (nuisance step at 20 min; with AICc
    the step is chosen, the data calling for it) recovers the onset step within 0.3 points
    and the release-free curve within 0.3 %; the plain fit from 10 min reads the transient
    into the step (error above 1 point in some region), which is what the nuisance is for."""
    ref, tacs, null = transient
    truth = 100 * (AFTER / BEFORE - 1)
    free, fit = remove_release(frames, ref, tacs, boundaries=[ONSET], fit_start=10.0,
                               release_model=release_model, baseline_start=20.0)
    np.testing.assert_allclose(fit.change_pct(), truth, atol=0.3)
    np.testing.assert_allclose(free, null, rtol=3e-3)
    _, plain = remove_release(frames, ref, tacs, boundaries=[ONSET], fit_start=10.0)
    assert np.max(np.abs(plain.change_pct() - truth)) > 1.0


def test_early_step_r1_inherits_the_plain_fits_r1(frames, transient):
    """early_step_r1 holds R1 at the plain fit's value, which a BP_ND transient biases: on
    these curves it misses the step by 0.5-3.5 points (measured 0.9-2.9), more than
    early_step (< 0.3). Its use is the noise it saves, not this case (benchmarks run 9)."""
    ref, tacs, _ = transient
    truth = 100 * (AFTER / BEFORE - 1)
    _, fit = remove_release(frames, ref, tacs, boundaries=[ONSET], fit_start=10.0,
                            release_model="early_step_r1", baseline_start=20.0)
    error = np.abs(fit.change_pct() - truth)
    assert np.all((error > 0.5) & (error < 3.5)), error


def test_release_models_mark_failed_fits_nan(frames, one_tissue):
    """A TAC no model describes (zero activity) gets NaN under every release model."""
    ref, tacs, _ = one_tissue
    data = np.column_stack([tacs[:, 1], np.zeros(frames.n_frames)])
    for release_model in RELEASE_MODELS:
        free, _ = remove_release(frames, ref, data, boundaries=[ONSET], fit_start=10.0,
                                 release_model=release_model, k2prime=K2_REF,
                                 baseline_start=20.0)
        assert np.all(np.isfinite(free[:, 0])), release_model
        assert np.all(np.isnan(free[:, 1])), release_model


def test_release_models_refuse_bad_settings(frames, one_tissue):
    """Unknown model, early_step without a baseline start between fit_start and the onset,
    srtm2 without a positive k2': one clear error each."""
    ref, tacs, _ = one_tissue
    common = dict(boundaries=[ONSET], fit_start=10.0)
    with pytest.raises(ConfigError, match="release_model must be one of"):
        remove_release(frames, ref, tacs, release_model="lssrm", **common)
    for bad in (None, 5.0, 50.0):
        with pytest.raises(ConfigError, match="baseline_start"):
            remove_release(frames, ref, tacs, release_model="early_step",
                           baseline_start=bad, **common)
    for bad in (None, 0.0, float("nan")):
        with pytest.raises(InputError, match="k2'"):
            remove_release(frames, ref, tacs, release_model="srtm2", k2prime=bad, **common)


def test_early_step_keeps_the_plain_fit_where_the_stepped_one_fails(frames, one_tissue):
    """Noisy TACs (5 % of the mean, seeded): where the stepped fit is flagged, early_step's
    release-free curve is exactly the srtm model's; elsewhere it is the stepped fit's."""
    from pipeline.kinetics.srtm_segments import fit_srtm_segments

    ref, tacs, _ = one_tissue
    rng = np.random.default_rng(7)
    clean = np.repeat(tacs, 50, axis=1)
    noisy = clean + rng.normal(0.0, 0.05 * clean.mean(), clean.shape)
    common = dict(boundaries=[ONSET], fit_start=10.0)
    stepped = fit_srtm_segments(frames, ref, noisy, boundaries=[20.0, ONSET],
                                window=(10.0, frames.end[-1] + 1e-9), weights=frames.duration)
    failed = stepped.flags != ""
    assert 0 < failed.sum() < failed.size  # both kinds present, so the check can fail
    free, _ = remove_release(frames, ref, noisy, release_model="early_step",
                             baseline_start=20.0, **common)
    plain, _ = remove_release(frames, ref, noisy, **common)
    np.testing.assert_array_equal(free[:, failed], plain[:, failed])
    both = ~failed & np.all(np.isfinite(free), axis=0)
    assert not np.allclose(free[:, both], plain[:, both])
