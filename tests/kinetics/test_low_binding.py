"""Noisy low-binding TACs (the parametric-map failure cases): no estimate diverges.

At BP_ND 0.2-0.3 with voxel-level noise the SRTM residual is nearly flat along k2a: the
nonlinear fit used to walk to k2a -> 0 and BP_ND = 15 (its bound), and MRTM's regressors
became collinear (k2a <= 0, BP_ND undefined). These tests pin the fixes: nonlinear SRTM
falls back to its basis-function start, MRTM to basis-function SRTM, and every estimate is
finite and inside [-1, 20] (the benchmark's definition of a diverged voxel).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_logan import noisy_tacs  # tests/kinetics is on sys.path (rootdir imports)

from pipeline.kinetics.mrtm import fit_mrtm
from pipeline.kinetics.srtm import fit_srtm, fit_srtm_bf
from pipeline.simulate.compartments import srtm_consistent_tacs

#: Flags that mean "no estimate" (a bound, a failed fit); informative ones are allowed.
FAILURE = ("at_bound", "not_converged", "singular", "nan_input", "zero_input")


@pytest.fixture
def low_binding(frames_90min):
    """400 noisy copies each of BP_ND 0.2 (R1 1.3) and 0.3 (R1 0.8), 10 % noise (cv of the
    last frame, as in the benchmark phantom), 28-frame 90-min schedule."""
    frames = frames_90min
    ref, tacs = srtm_consistent_tacs(frames, [0.2, 0.3], r1=[1.3, 0.8], k2prime=0.12)
    rng = np.random.default_rng(11)
    data = np.hstack([noisy_tacs(frames, tacs[:, i], 0.10, 400, rng) for i in range(2)])
    truth = np.repeat([0.2, 0.3], 400)
    return frames, ref, data, truth


def _check_sane(fit, truth):
    assert np.all(np.isfinite(fit.bp_nd)) and np.all(np.isfinite(fit.r1))
    assert np.all((fit.bp_nd >= -1) & (fit.bp_nd <= 20))
    assert not any(name in str(f).split(";") for f in fit.flags for name in FAILURE)
    return float(np.sqrt(np.mean((fit.bp_nd - truth) ** 2)))


def test_low_binding_basis_srtm_is_sane(low_binding):
    """Basis-function SRTM: finite, bounded; RMSE measured 0.047 (bound 0.08: the noise
    alone gives an SD of BP_ND of ~0.05 here; a grid-edge failure would add ~0.1-1)."""
    frames, ref, data, truth = low_binding
    rmse = _check_sane(fit_srtm_bf(frames, ref, data), truth)
    assert rmse < 0.08


def test_low_binding_nonlinear_srtm_no_bound_hits(low_binding):
    """Nonlinear SRTM no longer ends on BP_ND = 15: where LM hit a bound the basis start is
    returned (``bf_fallback``), so its RMSE stays within 10 % of the basis fit's (measured
    0.0497 vs 0.0466; before the fix 35 of these TACs ended on a bound, RMSE 0.101)."""
    frames, ref, data, truth = low_binding
    fit = fit_srtm(frames, ref, data)
    rmse = _check_sane(fit, truth)
    assert any("bf_fallback" in f for f in fit.flags)  # the case is exercised
    assert rmse <= 1.1 * _check_sane(fit_srtm_bf(frames, ref, data), truth)


def test_low_binding_mrtm_falls_back_to_basis_srtm(low_binding):
    """MRTM's nonphysical TACs (k2a <= 0) get basis-function SRTM's estimate, flagged
    ``nonphysical;bf_fallback``; every estimate is finite and bounded."""
    frames, ref, data, truth = low_binding
    fit = fit_mrtm(frames, ref, data)
    rmse = _check_sane(fit, truth)
    redone = np.array(["bf_fallback" in f for f in fit.flags])
    nonphysical = np.array(["nonphysical" in f for f in fit.flags])
    assert nonphysical.any() and np.all(redone[nonphysical])
    bf = fit_srtm_bf(frames, ref, data[:, redone])
    assert np.array_equal(fit.bp_nd[redone], bf.bp_nd)
    assert np.array_equal(fit.r1[redone], bf.r1)
    # measured RMSE 0.058 (before the fix 84 TACs were NaN); MRTM's three-parameter
    # regression is noisier than SRTM's fit, so the bound is looser than the basis fit's
    assert rmse < 0.1
