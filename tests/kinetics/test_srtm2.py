"""SRTM2 (fixed k2') against noiseless ground truth, k2' estimation and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.kinetics.k2prime import k2prime_from_srtm
from pipeline.kinetics.srtm2 import describe, fit_srtm2, predict_srtm2
from pipeline.simulate.compartments import srtm_consistent_tacs


def test_fit_srtm2_recovers_truth_without_noise(srtm_data, truth):
    """With the true k2', BP_ND within 0.5 % and R1 within 1 % (with and without gaps)."""
    frames, ref, tacs = srtm_data
    result = fit_srtm2(frames, ref, tacs, k2prime=truth.k2prime)
    # reference interpolation across gaps is the only approximation (measured < 0.05 %)
    assert result.bp_nd == pytest.approx(truth.bp, rel=0.005)
    assert result.r1 == pytest.approx(truth.r1, rel=0.01)
    assert result.k2 == pytest.approx(truth.r1 * truth.k2prime, rel=0.01)
    assert np.all(result.k2prime == truth.k2prime)
    assert list(result.flags) == [""] * 5


def test_k2prime_from_srtm_recovers_k2prime(frames_90min, truth):
    """The median SRTM k2' of noiseless targets is the simulated k2'."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1,
                                     k2prime=truth.k2prime)
    assert k2prime_from_srtm(frames_90min, ref, tacs) == pytest.approx(truth.k2prime, rel=1e-3)


def test_fit_srtm2_wrong_k2prime_biases_bp(frames_90min, truth):
    """A k2' off by +-20 % biases BP_ND by > 1.5 %, in opposite directions (k2' matters)."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1)
    high = fit_srtm2(frames_90min, ref, tacs, k2prime=1.2 * truth.k2prime)
    low = fit_srtm2(frames_90min, ref, tacs, k2prime=0.8 * truth.k2prime)
    # measured: +20 % k2' gives -1.9 to -5.0 % BP_ND, -20 % gives +2.6 to +8.1 %
    assert np.all(high.bp_nd < 0.985 * truth.bp)
    assert np.all(low.bp_nd > 1.015 * truth.bp)


def test_predict_srtm2_round_trip(frames_90min, truth):
    """Fitting SRTM2 to its own prediction returns the parameters."""
    ref, _ = srtm_consistent_tacs(frames_90min, [1.0])
    tacs = predict_srtm2(frames_90min, ref, truth.r1, truth.bp, 0.1)
    result = fit_srtm2(frames_90min, ref, tacs, k2prime=0.1)
    assert result.bp_nd == pytest.approx(truth.bp, rel=1e-6)  # self-consistent: exact


@pytest.mark.parametrize("k2prime", [None, 0.0, -0.1, "fast"])
def test_fit_srtm2_requires_positive_k2prime(frames_90min, k2prime):
    """A missing or invalid k2' is a configuration error that says how to give it."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0])
    with pytest.raises(ConfigError, match="srtm2 needs k2prime"):
        fit_srtm2(frames_90min, ref, tacs, k2prime=k2prime)


def test_describe_srtm2_names_k2prime():
    """The methods sentence gives the k2' value and its source."""
    text = describe({"k2prime": 0.1234, "k2prime_source": "median SRTM over thalamus"})
    assert "0.1234 1/min" in text and "thalamus" in text and "Wu & Carson" in text


def test_k2prime_from_srtm_refuses_when_no_fit_is_clean(frames_90min):
    """Only bound-hitting fits: k2' cannot be estimated, and the message says what to do."""
    ref, _ = srtm_consistent_tacs(frames_90min, [1.0])
    with pytest.raises(InputError, match=r"SRTM fits is clean[^\n]*\n  Give k2' as a value"):
        k2prime_from_srtm(frames_90min, ref, np.column_stack([ref * 0.0 + 1e-9, -ref]))
