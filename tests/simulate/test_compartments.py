"""Compartment curves against closed forms, frame averaging, and the time-varying 2T solver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from pipeline.frames import Frames
from pipeline.simulate.compartments import (
    feng_input,
    fine_grid,
    frame_average,
    one_tissue,
    simulation_grid,
    two_tissue,
)
from pipeline.simulate.release import release_profile, solve_two_tissue

# A smooth bolus-like input that is a sum of exponentials: cp = A (e^{-a t} - e^{-b t}).
A, RATE_A, RATE_B = 1000.0, 0.08, 1.5


def _input(t):
    return A * (np.exp(-RATE_A * t) - np.exp(-RATE_B * t))


def _exp_conv(t, rate):
    """Closed form of integral_0^t cp(s) exp(-rate (t - s)) ds for the input above."""
    out = 0.0
    for sign, r in ((1.0, RATE_A), (-1.0, RATE_B)):
        out = out + sign * A * (np.exp(-r * t) - np.exp(-rate * t)) / (rate - r)
    return out


def _two_tissue_closed(t, k1, k2, k3, k4):
    s = k2 + k3 + k4
    disc = np.sqrt(s * s - 4 * k2 * k4)
    a1, a2 = (s - disc) / 2, (s + disc) / 2
    return k1 / (a2 - a1) * ((k3 + k4 - a1) * _exp_conv(t, a1) + (a2 - k3 - k4) * _exp_conv(t, a2))


def test_one_tissue_matches_closed_form():
    """K1 e^{-k2 t} * cp equals the analytic convolution of a bi-exponential input."""
    t = fine_grid(90.0, 0.01)
    got = one_tissue(t, _input(t), 0.3, 0.12)
    expected = 0.3 * _exp_conv(t, 0.12)
    # Piecewise-linear input on a 0.01-min grid: error ~ dt^2/8 * |cp''| / |cp|, < 1e-4.
    assert np.max(np.abs(got - expected)) < 1e-4 * np.max(expected)


@pytest.mark.parametrize(("k3", "k4"), [(0.5, 0.25), (0.05, 0.25), (0.3, 0.1)])
def test_two_tissue_and_solver_match_closed_form(k3, k4):
    """Both the convolution form and the ODE solver reproduce the 2T closed form."""
    t = fine_grid(90.0, 0.01)
    expected = _two_tissue_closed(t, 0.3, 0.12, k3, k4)
    conv = two_tissue(t, _input(t), 0.3, 0.12, k3, k4)
    free, bound = solve_two_tissue(t, _input(t), 0.3, 0.12, k3, k4)
    tol = 1e-4 * np.max(expected)  # same linear-interpolation error bound as above
    assert np.max(np.abs(conv - expected)) < tol
    assert np.max(np.abs(free[:, 0] + bound[:, 0] - expected)) < tol


def test_solver_on_uneven_grid_matches_fine_grid(frames_90min):
    """The uneven simulation grid gives frame averages within 1e-5 of a 0.01-min grid."""
    fine = fine_grid(90.0, 0.01)
    grid = simulation_grid(90.0, breaks=np.r_[frames_90min.start, frames_90min.end])
    results = []
    for t in (fine, grid):
        cp = feng_input(t, scale=100.0)
        free, bound = solve_two_tissue(t, cp, [0.3, 0.3], [0.12, 0.12], [0.0, 0.6], 0.25)
        results.append(frame_average(t, free + bound, frames_90min))
    # Late steps of 0.1 min on curves with rates < 0.5/min: interpolation error ~1e-6.
    np.testing.assert_allclose(results[1], results[0], rtol=1e-5)


def test_frame_average_exact_for_constant_and_linear(frames_90min):
    """Constant and linear curves average exactly (trapezoid integration is exact)."""
    t = fine_grid(90.0, 0.01)
    curves = np.column_stack([np.full(t.size, 7.5), 2.0 * t + 1.0])
    got = frame_average(t, curves, frames_90min)
    np.testing.assert_allclose(got[:, 0], 7.5, rtol=1e-12)
    np.testing.assert_allclose(got[:, 1], 2.0 * frames_90min.mid + 1.0, rtol=1e-12)


def test_frame_average_off_grid_bounds():
    """Frame bounds between grid points: the integral is interpolated linearly."""
    t = fine_grid(10.0, 0.1)
    frames = Frames(np.array([0.05, 3.333]), np.array([1.234, 9.87]))
    got = frame_average(t, 3.0 * t, frames)
    # Interpolating the (quadratic) integral of a line with slope 3 between grid points
    # errs by at most 3 * dt^2 / 8 at each bound.
    bound = 2 * 3.0 * 0.1 ** 2 / 8 / frames.duration
    assert np.all(np.abs(got - 3.0 * frames.mid) <= bound)


def test_no_release_equals_time_invariant_solution():
    """Availability 1 everywhere, or a zero release fraction, changes nothing."""
    t = fine_grid(90.0, 0.01)
    cp = _input(t)
    plain = solve_two_tissue(t, cp, 0.3, 0.12, 0.5, 0.25)
    zero = 1.0 - 0.0 * release_profile(t, 45.0)
    ones = solve_two_tissue(t, cp, 0.3, 0.12, 0.5, 0.25, availability=zero)
    for a, b in zip(plain, ones, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["step", "ramp"])
def test_release_matches_numerical_ode(kind):
    """The exact piecewise solution agrees with a tight Runge-Kutta solution."""
    t = fine_grid(90.0, 0.01)
    cp = _input(t)
    k1, k2, k3, k4, drop = 0.3, 0.12, 0.5, 0.25, 0.2
    profile = release_profile(t, 45.0, kind=kind, ramp=10.0)
    free, bound = solve_two_tissue(t, cp, k1, k2, k3, k4, availability=1 - drop * profile)

    def rhs(time, y):
        g = 0.0 if time < 45.0 else (1.0 if kind == "step" else min((time - 45.0) / 10.0, 1.0))
        k3t = k3 * (1 - drop * g)
        c = np.interp(time, t, cp)
        return [k1 * c - (k2 + k3t) * y[0] + k4 * y[1], k3t * y[0] - k4 * y[1]]

    ref = solve_ivp(rhs, (0, 90), [0.0, 0.0], t_eval=t[::500], rtol=1e-10, atol=1e-8,
                    max_step=0.05)
    # The solver uses k3 at interval mid-points (piecewise constant) while RK uses the exact
    # ramp: the difference is O(dt^2) per interval, far below 1e-5 relative.
    np.testing.assert_allclose(free[::500, 0], ref.y[0], rtol=1e-5, atol=1e-6 * free.max())
    np.testing.assert_allclose(bound[::500, 0], ref.y[1], rtol=1e-5, atol=1e-6 * bound.max())


def test_release_lowers_bound_towards_new_equilibrium():
    """With a constant input, a step drop of k3 moves C_B/C_F to the new k3/k4."""
    t = fine_grid(700.0, 0.05)
    cp = np.full(t.size, 100.0)
    free, bound = solve_two_tissue(t, cp, 0.3, 0.12, 0.5, 0.25,
                                   availability=1 - 0.3 * release_profile(t, 300.0))
    before = bound[int(299 / 0.05), 0] / free[int(299 / 0.05), 0]
    after = bound[-1, 0] / free[-1, 0]
    assert before == pytest.approx(2.0, rel=1e-3)  # k3/k4: slowest rate ~0.037/min, e^-11 left
    assert after == pytest.approx(0.7 * 2.0, rel=1e-3)
    # and the free concentration returns to K1/k2 * cp
    assert free[-1, 0] == pytest.approx(0.3 / 0.12 * 100.0, rel=1e-3)


def test_release_profile_shapes():
    """Step is 0 then 1; ramp rises linearly over its duration; None is no release."""
    t = np.arange(0.0, 61.0, 1.0)
    step = release_profile(t, 45.0)
    ramp = release_profile(t, 45.0, kind="ramp", ramp=10.0)
    assert step[44] == 0.0 and step[45] == 1.0
    assert ramp[45] == pytest.approx(0.05) and ramp[59] == 1.0
    assert not release_profile(t, None).any()
    with pytest.raises(ValueError, match="step' or 'ramp"):
        release_profile(t, 45.0, kind="sigmoid")
