"""Noise model, participants and planted effects, and the region-level study simulator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.frames import Frames, decay_correction_factors
from pipeline.simulate import NoiseModel, StudySettings, simulate_region_tacs
from pipeline.simulate.noise import frame_sd
from pipeline.simulate.population import draw_population, study_streams
from pipeline.simulate.roi import mixing_matrix


def test_frame_sd_calibration_point():
    """A voxel of the reference activity in the 80-90 min frame has the reference CV."""
    frames = Frames(np.array([80.0]), np.array([90.0]))
    model = NoiseModel(level=1.0, reference_cv=0.1, reference_activity=10000.0)
    sd = frame_sd(np.array([10000.0]), frames, model)
    assert sd[0] == pytest.approx(1000.0, rel=1e-12)


def test_frame_sd_follows_counts(frames_90min):
    """Variance is proportional to activity x decay factor / duration, and to level^2."""
    model = NoiseModel(level=1.0)
    activity = np.linspace(1000.0, 20000.0, frames_90min.n_frames)
    var = frame_sd(activity, frames_90min, model) ** 2
    dcf = decay_correction_factors(frames_90min, model.half_life)
    expected = activity * dcf / frames_90min.duration
    ratio = var / expected
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)
    double = frame_sd(activity, frames_90min, NoiseModel(level=2.0))
    np.testing.assert_allclose(double ** 2, 4 * var, rtol=1e-12)


def test_region_noise_empirical_variance_follows_model():
    """Residuals of simulated region TACs have the stated variance in every frame.

    Predicted variances differ ~13-fold between frames. 100 subjects x 2 scans x 14
    regions = 2800 standardized residuals per frame: the mean square has an SE of
    sqrt(2/2800) = 2.7 %. Tolerance 11 % (4 SE).
    """
    study = simulate_region_tacs(subjects=100, seed=3, noise=1.0)
    model = NoiseModel(level=1.0)
    volumes = np.array([StudySettings().regions[r].volume for r in study.regions])
    sd = frame_sd(study.noiseless.transpose(1, 0, 2), study.frames, model,
                  volume_ml=volumes).transpose(1, 0, 2)
    z = (study.tacs - study.noiseless) / sd
    per_frame = (z ** 2).mean(axis=(0, 2))
    np.testing.assert_allclose(per_frame, 1.0, atol=0.11)
    assert np.ptp(np.log((sd ** 2).mean(axis=(0, 2)))) > np.log(10)  # the test has teeth


def test_noise_zero_is_noiseless():
    """noise=0 gives exactly the noiseless curves."""
    study = simulate_region_tacs(subjects=2, seed=1, noise=0.0)
    np.testing.assert_array_equal(study.tacs, study.noiseless)


def test_planted_correlation_recovered_in_large_population():
    """Left-amygdala rejection release correlates with resilience at the chosen rho.

    n = 2000: SE of r is (1 - rho^2)/sqrt(n) = 0.014 at rho = 0.6; rounding resilience to
    integers attenuates r by < 0.2 %. Tolerance 0.05 (3.5 SE).
    """
    settings = StudySettings(correlation=0.6)
    pop = draw_population(2000, "windows", study_streams(11), settings)
    effect = pop.effects.query("condition == 'rejection' and region == 'amygdala_l'")
    merged = effect.merge(pop.participants, on="participant_id")
    r = np.corrcoef(merged["release_fraction"], merged["resilience"])[0, 1]
    assert r == pytest.approx(0.6, abs=0.05)
    # other regions are not tied to resilience (|r| < 4 SE = 0.09)
    other = pop.effects.query("condition == 'rejection' and region == 'pag'").merge(
        pop.participants, on="participant_id")
    assert abs(np.corrcoef(other["release_fraction"], other["resilience"])[0, 1]) < 0.09
    assert pop.participants["resilience"].between(14, 56).all()
    assert pd.api.types.is_integer_dtype(pop.participants["resilience"])


def test_null_plants_no_release():
    """null=True: every release fraction is 0, in effects and in the truth."""
    study = simulate_region_tacs(subjects=3, seed=2, null=True, noise=0.0)
    assert (study.effects["release_fraction"] == 0).all()
    assert (study.truth["release_fraction"] == 0).all()
    assert np.allclose(study.truth["bp_nd"], study.truth["bp_nd_scan"])


def test_truth_windows_carry_planted_release():
    """Windows design: the baseline window has no release, the task window the planted drop."""
    study = simulate_region_tacs(subjects=3, seed=5, noise=0.0)
    truth = study.truth
    base = truth[truth["condition"] == "baseline"]
    assert (base["release_fraction"] == 0).all()
    assert set(base["window_end"]) == {45.0}
    rej = truth[(truth["condition"] == "rejection")].merge(
        study.effects, on=["participant_id", "condition", "region"], how="left")
    planted = rej["release_fraction_y"].fillna(0.0)
    np.testing.assert_allclose(rej["release_fraction_x"], planted, rtol=1e-12)
    np.testing.assert_allclose(rej["bp_nd"], rej["bp_nd_scan"] * (1 - planted), rtol=1e-12)


def test_separate_design_scans_and_windows():
    """Separate design: baseline, rejection, acceptance bolus scans, each one window."""
    study = simulate_region_tacs(subjects=2, seed=5, design="separate", noise=0.0)
    assert list(study.scans["task"][:3]) == ["baseline", "rejection", "acceptance"]
    assert set(study.scans["protocol"]) == {"bolus"}
    assert set(zip(study.truth["window_start"], study.truth["window_end"],
                   strict=True)) == {(0.0, 90.0)}
    assert (study.truth.query("task == 'baseline'")["release_fraction"] == 0).all()


def test_same_seed_same_study_and_streams_independent():
    """Same seed gives identical TACs; the noise level does not change the subjects."""
    a = simulate_region_tacs(subjects=3, seed=9)
    b = simulate_region_tacs(subjects=3, seed=9)
    c = simulate_region_tacs(subjects=3, seed=9, noise=0.5)
    np.testing.assert_array_equal(a.tacs, b.tacs)
    pd.testing.assert_frame_equal(a.truth, c.truth)
    assert not np.array_equal(a.tacs, simulate_region_tacs(subjects=3, seed=10).tacs)


def test_pv_mixing_rows_and_effect():
    """A mixing share s keeps 1 - s of each region and adds s of the background."""
    classes = ["a", "b", "cortex", "white_matter"]
    m = mixing_matrix(["a", "b"], classes, 0.2)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m[0], [0.8, 0.0, 0.12, 0.08])
    mixed = simulate_region_tacs(subjects=1, seed=1, noise=0.0, pv_mixing=0.2)
    pure = simulate_region_tacs(subjects=1, seed=1, noise=0.0)
    assert not np.allclose(mixed.noiseless, pure.noiseless)
    with pytest.raises(ConfigError, match=r"pv_mixing: 1\.5 is not a fraction"):
        mixing_matrix(["a"], classes, 1.5)


def test_bad_design_and_regions_are_refused():
    """Unknown designs and release regions raise ConfigError naming them."""
    with pytest.raises(ConfigError, match=r"unknown design 'crossover'"):
        simulate_region_tacs(subjects=2, design="crossover")
    with pytest.raises(ConfigError, match=r"unknown region.*hippocampus"):
        simulate_region_tacs(subjects=2, settings=StudySettings(rejection={"hippocampus": 0.1}))


def test_ramp_release_truth_is_window_mean():
    """A 10-min ramp from 45 min removes 40/45 of the full drop on average over 45-90 min."""
    settings = StudySettings(release_kind="ramp", ramp=10.0)
    study = simulate_region_tacs(subjects=2, seed=5, noise=0.0, settings=settings)
    rows = study.truth.query("condition == 'rejection' and region == 'pag'").merge(
        study.effects.query("condition == 'rejection'"), on=["participant_id", "region"])
    # parameters are piecewise constant on grid intervals: exact to the 0.1-min grid
    np.testing.assert_allclose(rows["release_fraction_x"],
                               rows["release_fraction_y"] * 40.0 / 45.0, rtol=1e-3)


def test_pv_mixing_names_are_checked():
    """Only 'phantom' is accepted as a named mixing."""
    with pytest.raises(ConfigError, match=r"pv_mixing: unknown value 'atlas'"):
        simulate_region_tacs(subjects=1, pv_mixing="atlas")
