"""SRTM (nonlinear and basis functions) against noiseless ground truth and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import expm

from pipeline.errors import ConfigError, InputError
from pipeline.frames import Frames
from pipeline.kinetics.srtm import describe, fit_srtm, fit_srtm_bf, predict_srtm
from pipeline.simulate.compartments import (
    bolus_infusion_input,
    feng_input,
    fine_grid,
    frame_average,
    one_tissue,
    srtm_consistent_tacs,
)


@pytest.mark.parametrize("fitter", [fit_srtm, fit_srtm_bf])
def test_srtm_recovers_truth_without_noise(srtm_data, fitter, truth):
    """BP_ND within 0.5 % and R1 within 1 % on uneven frames with and without gaps."""
    frames, ref, tacs = srtm_data
    result = fitter(frames, ref, tacs)
    # only the reference interpolation between frame averages (measured <= 0.05 % with
    # gaps) and the basis grid (<= 0.04 %) are approximate; the brief's tolerances
    assert result.bp_nd == pytest.approx(truth.bp, rel=0.005)
    assert result.r1 == pytest.approx(truth.r1, rel=0.01)
    assert result.k2prime == pytest.approx(truth.k2prime, rel=0.01)
    assert list(result.flags) == [""] * 5


def test_fit_srtm_contiguous_frames_nearly_exact(frames_90min, truth):
    """Without gaps the frame-consistent reference makes SRTM exact to ~1e-5."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1)
    result = fit_srtm(frames_90min, ref, tacs)
    assert result.bp_nd == pytest.approx(truth.bp, rel=1e-4)  # measured 8e-6
    assert result.se["bp_nd"].max() < 1e-3  # near-perfect fit: tiny SEs


def test_fit_srtm_bf_fine_grid_matches_nonlinear(frames_90min, truth):
    """A 2000-basis grid without refinement agrees with the refined 100-basis grid."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1)
    fine = fit_srtm_bf(frames_90min, ref, tacs, n_basis=2000, theta_range=(0.01, 0.2),
                       refine=False)
    coarse = fit_srtm_bf(frames_90min, ref, tacs)
    # fine grid spacing 0.15 % in k2a -> BP_ND error <= ~0.1 %
    assert fine.bp_nd == pytest.approx(truth.bp, rel=0.002)
    assert coarse.bp_nd == pytest.approx(truth.bp, rel=0.002)


def test_fit_srtm_bf_flags_grid_edge(frames_90min):
    """A k2a beyond the grid ends at the edge and is flagged."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [4.0])
    result = fit_srtm_bf(frames_90min, ref, tacs, theta_range=(0.05, 1.0))  # k2a = 0.024
    assert result.flags[0] == "grid_edge"


def test_predict_srtm_matches_simulation(frames_90min, truth):
    """The forward model reproduces the fine-grid simulation (frame-consistent reference)."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1)
    pred = predict_srtm(frames_90min, ref, truth.r1, truth.r1 * truth.k2prime, truth.bp)
    late = frames_90min.mid > 2  # the first 4 frames hold < 5 % of the peak
    assert pred[late] == pytest.approx(tacs[late], rel=1e-3)


def test_fit_srtm_window_uses_reference_from_zero(frames_90min, truth):
    """A late window fits only its frames but still recovers BP_ND (convolution from 0)."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1)
    result = fit_srtm(frames_90min, ref, tacs, window=(20, 90))
    assert result.used.sum() == np.count_nonzero(frames_90min.mid >= 20)
    assert np.all(np.isnan(result.fitted[~result.used]))
    assert result.bp_nd == pytest.approx(truth.bp, rel=0.005)


def test_fit_srtm_nan_voxel_is_flagged_not_raised(frames_90min, truth):
    """One TAC with NaN gets NaN and a flag; the others are fitted."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1)
    tacs[5, 1] = np.nan
    tacs = np.column_stack([tacs, np.zeros(frames_90min.n_frames)])
    for fitter in (fit_srtm, fit_srtm_bf):
        result = fitter(frames_90min, ref, tacs)
        assert np.isnan(result.bp_nd[1]) and result.flags[1] == "nan_input"
        assert np.isnan(result.bp_nd[5]) and result.flags[5] == "zero_input"
        assert result.bp_nd[[0, 2, 3, 4]] == pytest.approx(truth.bp[[0, 2, 3, 4]], rel=0.005)


def test_fit_srtm_flags_bound(frames_90min):
    """BP_ND above the upper bound ends on it and is flagged at_bound."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [4.0])
    result = fit_srtm(frames_90min, ref, tacs, bounds={"bp_nd": (0.0, 2.0)})
    assert result.bp_nd[0] == pytest.approx(2.0)
    assert "at_bound" in result.flags[0]


@pytest.mark.parametrize("fitter", [fit_srtm, fit_srtm_bf])
def test_fit_srtm_rejects_short_window(frames_90min, fitter):
    """A window holding fewer frames than parameters + 1 is refused."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0])
    with pytest.raises(InputError, match=r"only 3 frame\(s\) to fit"):
        fitter(frames_90min, ref, tacs, window=(65, 90))


@pytest.mark.parametrize("bad", [np.nan, 0.0])
def test_fit_srtm_rejects_bad_reference(frames_90min, bad):
    """A reference with NaN, or all zero, is refused with a message naming it."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0])
    ref = np.full_like(ref, bad) if bad == 0.0 else np.where(np.arange(ref.size) == 3, bad, ref)
    with pytest.raises(InputError, match="reference TAC"):
        fit_srtm(frames_90min, ref, tacs)


def test_fit_srtm_rejects_late_acquisition():
    """A scan starting long after injection (a second acquisition) is refused."""
    frames = Frames(np.arange(142.0, 242.0, 10.0), np.arange(152.0, 252.0, 10.0))
    ref = np.linspace(100, 50, 10)
    with pytest.raises(InputError, match="first frame starts 142 min after injection"):
        fit_srtm(frames, ref, ref * 1.5)


def test_fit_srtm_rejects_bad_bounds(frames_90min):
    """Bounds with lower >= upper or BP_ND <= -1 are a configuration error."""
    ref, tacs = srtm_consistent_tacs(frames_90min, [1.0])
    with pytest.raises(ConfigError, match="invalid SRTM bounds"):
        fit_srtm(frames_90min, ref, tacs, bounds={"bp_nd": (-1.0, 5.0)})


def test_describe_names_model_and_window():
    """The methods sentence names the model, the window and the weights."""
    text = describe({"model": "srtm_bf", "window": [45, 90], "weights": "duration",
                     "n_basis": 100, "theta_range": [0.005, 1.0]})
    assert "Gunn" in text and "from 45 min to 90 min" in text and "duration" in text


# --- bolus + infusion windows -----------------------------------------------------------

#: 10 x 1 min then 16 x 5 min: no frame straddles the 45-min change (mid-times 42.5, 47.5).
_BI_DURATIONS_S = [60] * 10 + [300] * 16
_EARLY, _LATE = (5.0, 45.0), (45.0, 90.0)


def _bi_frames() -> Frames:
    starts = np.concatenate([[0.0], np.cumsum(_BI_DURATIONS_S)[:-1]])
    return Frames.from_bids(starts, _BI_DURATIONS_S)


def _two_tissue_with_step(t, cp, k1, k2, k3_before, k3_after, k4, t_change):
    """Two-tissue tissue curve whose k3 (free receptors) steps at ``t_change`` (minutes).

    Exact matrix-exponential steps with the input held at its interval mean (dt 0.01 min).
    """
    dt = t[1] - t[0]
    steps = []
    for k3 in (k3_before, k3_after):
        rates = np.array([[-(k2 + k3), k4], [k3, -k4]])
        propagate = expm(rates * dt)
        load = np.linalg.solve(rates, (propagate - np.eye(2)) @ np.array([k1, 0.0]))
        steps.append((propagate, load))
    state = np.zeros(2)
    out = np.zeros(t.size)
    for j in range(t.size - 1):
        propagate, load = steps[0] if t[j] < t_change else steps[1]
        state = propagate @ state + load * 0.5 * (cp[j] + cp[j + 1])
        out[j + 1] = state.sum()
    return out


def _window_change(bp_nd: float, k4: float, release: float) -> float:
    """Relative change late/early of windowed SRTM BP_ND, bolus + infusion (Kbol 60 min)."""
    frames = _bi_frames()
    t = fine_grid(frames.end[-1], 0.01)
    cp = bolus_infusion_input(t, feng_input(t), 60.0)
    k1p, k2p = 0.3, 0.12
    ref = frame_average(t, one_tissue(t, cp, k1p, k2p), frames)
    k3 = bp_nd * k4
    tissue = _two_tissue_with_step(t, cp, k1p, k2p, k3, k3 * (1 - release), k4, 45.0)
    tac = frame_average(t, tissue, frames)[:, None]
    early = fit_srtm(frames, ref, tac, window=_EARLY).bp_nd[0]
    late = fit_srtm(frames, ref, tac, window=_LATE).bp_nd[0]
    return late / early - 1.0


def test_windows_srtm_consistent_null_has_no_drift(truth):
    """One-tissue (SRTM-exact) bolus + infusion data: both windows give the true BP_ND."""
    frames = _bi_frames()
    ref, tacs = srtm_consistent_tacs(frames, truth.bp, r1=truth.r1, kbol=60.0)
    early = fit_srtm(frames, ref, tacs, window=_EARLY)
    late = fit_srtm(frames, ref, tacs, window=_LATE)
    assert early.bp_nd == pytest.approx(truth.bp, rel=0.001)  # measured <= 0.03 %
    assert late.bp_nd == pytest.approx(truth.bp, rel=0.001)


@pytest.mark.parametrize(("bp_nd", "k4", "measured"), [
    (1.5, 0.1, -0.0817), (3.0, 0.1, -0.0539), (1.5, 0.2, -0.0202), (3.0, 0.2, -0.0122)])
def test_windows_two_tissue_null_drift_is_measured(bp_nd, k4, measured):
    """Two-tissue targets, no release: the late window reads lower than the early one.

    This within-scan null drift is real (SRTM is misspecified for slow binding, k4 ~0.1/min,
    in the early window): -8.2 % and -5.4 % at k4 = 0.1, -2.0 % and -1.2 % at k4 = 0.2
    (BP_ND 1.5 and 3). Pinned so a change in the model shows; the design-based and simulated
    controls of the workflow (config/README.md) exist for this drift.
    """
    assert _window_change(bp_nd, k4, 0.0) == pytest.approx(measured, abs=0.002)


@pytest.mark.parametrize(("bp_nd", "k4"), [(1.5, 0.1), (3.0, 0.2)])
def test_windows_step_release_has_right_sign_and_size(bp_nd, k4):
    """A 10 % drop of free receptors at 45 min lowers late/early BP_ND by 9-13 % beyond the null.

    Measured: -11.2 % (BP 1.5, k4 0.1) and -11.0 % (BP 3, k4 0.2): the late window still
    holds the tissue's transient towards the new equilibrium, so SRTM overshoots a little.
    """
    extra = _window_change(bp_nd, k4, 0.10) - _window_change(bp_nd, k4, 0.0)
    assert -0.13 < extra < -0.09


@pytest.mark.parametrize("fitter", [fit_srtm, fit_srtm_bf])
def test_fit_srtm_invariant_to_units_and_weight_scale(frames_90min, truth, fitter, rng):
    """kBq/mL vs Bq/mL and weights x 10 change nothing but the activity scale."""
    ref, tacs = srtm_consistent_tacs(frames_90min, truth.bp, r1=truth.r1)
    tacs = tacs * (1 + 0.03 * rng.standard_normal(tacs.shape))
    weights = frames_90min.duration
    base = fitter(frames_90min, ref, tacs, weights=weights)
    scaled = fitter(frames_90min, 1e3 * ref, 1e3 * tacs, weights=10 * weights)
    assert scaled.bp_nd == pytest.approx(base.bp_nd, rel=1e-6)
    assert scaled.se["bp_nd"] == pytest.approx(base.se["bp_nd"], rel=1e-5)
    assert scaled.extra["nrmse"] == pytest.approx(base.extra["nrmse"], rel=1e-6)


def test_rate_table_matches_the_exact_convolution(frames_gappy):
    """Interpolated frame averages and slopes equal the exact recursion over the range
    fits use (k2a 1e-3 to 4/min): values to 1e-8, slopes to 1e-5 of their largest value."""
    from pipeline.kinetics._reference import RateTable, ReferenceConvolver

    ref, _ = srtm_consistent_tacs(frames_gappy, [1.0])
    conv = ReferenceConvolver(frames_gappy, ref)
    table = RateTable(conv, 6.25e-5, 4.0)
    rates = np.geomspace(1e-3, 4.0, 997)
    values, slopes = table.values_and_slopes(rates)
    exact_values, exact_slopes = conv.frame_averages_and_slope(rates)
    assert np.abs(values - exact_values).max() <= 1e-8 * np.abs(exact_values).max()
    assert np.all(np.abs(slopes - exact_slopes) <= 1e-5 * np.abs(exact_slopes).max(axis=0))


def test_akima_slopes_match_scipy():
    """petbp's Akima interpolant (no scipy.interpolate import) equals scipy's."""
    from scipy.interpolate import Akima1DInterpolator

    from pipeline.kinetics._reference import _akima_slopes, _hermite

    rng = np.random.default_rng(3)
    x = np.sort(rng.uniform(0, 90, 25))
    y = rng.normal(size=25)
    y[6:10] = 1.0  # a flat stretch: both secant weights vanish
    query = rng.uniform(x[0], x[-1], 500)
    scipy_akima = Akima1DInterpolator(x, y)
    assert _hermite(x, y, _akima_slopes(x, y), query) == pytest.approx(scipy_akima(query),
                                                                       abs=1e-12)
    assert _akima_slopes(x, y)[-1] == pytest.approx(scipy_akima.derivative()(x[-1]), abs=1e-12)
