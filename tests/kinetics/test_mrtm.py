"""MRTM and MRTM2 (Ichise 2003) against noiseless SRTM-consistent ground truth and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.frames import Frames
from pipeline.kinetics.k2prime import k2prime_from_mrtm
from pipeline.kinetics.mrtm import describe, fit_mrtm, fit_mrtm2
from pipeline.simulate.compartments import srtm_consistent_tacs

BP = np.array([0.5, 1.0, 2.0, 3.0, 4.0])
R1 = np.array([0.7, 0.9, 1.0, 1.2, 1.5])
K2PRIME = 0.12


@pytest.fixture
def uneven_frames() -> Frames:
    """12 uneven frames, first starting at 0.5 min, with a 1-min gap at 44-45 min."""
    start = np.array([0.5, 1, 2, 3, 5, 8, 12, 20, 30, 45, 60, 75], float)
    end = np.array([1, 2, 3, 5, 8, 12, 20, 30, 44, 60, 75, 90], float)
    return Frames(start, end)


@pytest.mark.parametrize("frames_name", ["frames_90min", "uneven_frames"])
def test_fit_mrtm_recovers_truth_without_noise(request, frames_name):
    """Noiseless SRTM-consistent TACs give back BP_ND (0.5 %), R1 (1 %) and k2' (1 %)."""
    frames = request.getfixturevalue(frames_name)
    ref, tacs = srtm_consistent_tacs(frames, BP, r1=R1, k2prime=K2PRIME)
    fit = fit_mrtm(frames, ref, tacs)
    # only the within-frame representation of the running integral is approximate
    assert fit.bp_nd == pytest.approx(BP, rel=0.005)
    assert fit.r1 == pytest.approx(R1, rel=0.01)
    assert fit.k2prime == pytest.approx(np.full(5, K2PRIME), rel=0.01)
    assert fit.k2 == pytest.approx(R1 * K2PRIME, rel=0.01)
    assert list(fit.flags) == [""] * 5
    assert fit.model == "mrtm" and fit.fitted.shape == (frames.n_frames, 5)
    assert np.all(fit.se["bp_nd"] < 0.01 * BP)  # near-perfect fit -> tiny standard errors


@pytest.mark.parametrize("frames_name", ["frames_90min", "uneven_frames"])
def test_fit_mrtm2_recovers_truth_with_true_k2prime(request, frames_name):
    """MRTM2 with the true k2' recovers BP_ND within 0.5 % and R1 within 1 %."""
    frames = request.getfixturevalue(frames_name)
    ref, tacs = srtm_consistent_tacs(frames, BP, r1=R1, k2prime=K2PRIME)
    fit = fit_mrtm2(frames, ref, tacs, k2prime=K2PRIME)
    assert fit.bp_nd == pytest.approx(BP, rel=0.005)
    assert fit.r1 == pytest.approx(R1, rel=0.01)
    assert np.all(fit.k2prime == K2PRIME)
    # fitted curves reproduce the data on fitted frames (frame-integration error only)
    assert np.nanmax(np.abs(fit.fitted - tacs) / tacs.max(axis=0)) < 0.005


def test_fit_mrtm_window_restricts_rows_not_integrals(frames_90min):
    """A late window (45-90 min) still gives the truth: integrals start at injection."""
    ref, tacs = srtm_consistent_tacs(frames_90min, BP, r1=R1, k2prime=K2PRIME)
    fit = fit_mrtm2(frames_90min, ref, tacs, k2prime=K2PRIME, window=(45, 90))
    assert fit.used.sum() == np.count_nonzero(frames_90min.mid >= 45)
    assert np.all(np.isnan(fit.fitted[~fit.used]))
    assert fit.bp_nd == pytest.approx(BP, rel=0.005)


def test_fit_mrtm_single_tac_and_nan_voxel(frames_90min):
    """A 1-D TAC works; a column with NaN is flagged nan_input and NaN, others unaffected."""
    ref, tacs = srtm_consistent_tacs(frames_90min, BP, r1=R1, k2prime=K2PRIME)
    one = fit_mrtm(frames_90min, ref, tacs[:, 2])
    assert one.bp_nd.shape == (1,) and one.bp_nd[0] == pytest.approx(2.0, rel=0.005)
    data = tacs.copy()
    data[3, 1] = np.nan  # an early frame: it enters every later integral
    fit = fit_mrtm(frames_90min, ref, data, t_star=20)
    assert fit.flags[1] == "nan_input" and np.isnan(fit.bp_nd[1]) and np.isnan(fit.r1[1])
    assert np.delete(fit.bp_nd, 1) == pytest.approx(np.delete(BP, 1), rel=0.005)


def test_fit_mrtm_flags_nonphysical_instead_of_a_number(frames_90min):
    """A target that keeps rising like its own integral (k2a <= 0) is NaN + nonphysical."""
    ref, _ = srtm_consistent_tacs(frames_90min, [1.0], k2prime=K2PRIME)
    rising = np.exp(0.05 * frames_90min.mid)[:, None] * np.array([1.0, 2.0])
    fit = fit_mrtm2(frames_90min, ref, rising, k2prime=K2PRIME)
    assert np.all(np.isnan(fit.bp_nd))
    assert all("nonphysical" in f for f in fit.flags)


def test_k2prime_from_mrtm_median_of_regions(frames_90min):
    """k2' from MRTM over high-binding TACs equals the simulated one within 1 %."""
    ref, tacs = srtm_consistent_tacs(frames_90min, BP, r1=R1, k2prime=K2PRIME)
    value = k2prime_from_mrtm(frames_90min, ref, tacs[:, 2:], t_star=0.0)
    assert value == pytest.approx(K2PRIME, rel=0.01)


def test_fit_mrtm_too_few_frames(frames_90min):
    """A window with fewer frames than parameters + 1 is refused with the count."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0], k2prime=K2PRIME)
    with pytest.raises(InputError, match=r"mrtm: only 2 frame\(s\) to fit"):
        fit_mrtm(frames_90min, ref, tacs, window=(65, 80))


def test_fit_mrtm2_tstar_past_last_frame(frames_90min):
    """t* after the last frame's mid-time is refused, naming t*."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0], k2prime=K2PRIME)
    with pytest.raises(InputError, match=r"t\* = 100 min is at or past the last frame"):
        fit_mrtm2(frames_90min, ref, tacs, k2prime=K2PRIME, t_star=100)


@pytest.mark.parametrize("bad, message", [
    ("zero", "reference TAC is zero in every fitted frame"),
    ("nan", "reference TAC contains NaN"),
])
def test_fit_mrtm_bad_reference(frames_90min, bad, message):
    """A zero or NaN reference TAC gives a clear InputError."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0], k2prime=K2PRIME)
    ref = np.zeros_like(ref) if bad == "zero" else np.where(np.arange(ref.size) == 4, np.nan,
                                                            ref)
    with pytest.raises(InputError, match=message):
        fit_mrtm(frames_90min, ref, tacs)


@pytest.mark.parametrize("value", [None, 0.0, -0.1, float("nan")])
def test_fit_mrtm2_needs_positive_k2prime(frames_90min, value):
    """MRTM2 without a usable k2' says how to get one."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0], k2prime=K2PRIME)
    with pytest.raises(ConfigError, match="k2prime must be a positive number"):
        fit_mrtm2(frames_90min, ref, tacs, k2prime=value)


def test_describe_mentions_model_citation_and_options():
    """The methods sentence names the model, the citation, k2' and t*."""
    text = describe({"model": "mrtm2", "k2prime": 0.1, "t_star": 10, "window": [45, 90]})
    assert "MRTM2" in text and "Ichise et al., 2003" in text
    assert "k2' = 0.1 /min" in text and "t* = 10 min" in text and "45 to 90 min" in text
    assert "MRTM (" in describe({"model": "mrtm"})


def test_fit_mrtm_refuses_late_acquisition(frames_90min):
    """A scan starting long after injection cannot be integrated from injection: refused."""
    from pipeline.frames import Frames

    late = Frames(frames_90min.start + 140, frames_90min.end + 140)
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0], k2prime=K2PRIME)
    with pytest.raises(InputError, match="mrtm: the first frame starts 140 min after injection"):
        fit_mrtm(late, ref, tacs)
    with pytest.raises(InputError, match="mrtm2: the first frame starts 140 min"):
        fit_mrtm2(late, ref, tacs, k2prime=K2PRIME)
