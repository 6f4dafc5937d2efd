"""Two-tissue compartment curves with time-varying receptor availability (endogenous release).

Release lowers the free-receptor binding rate ``k3`` (and with it ``BP_ND = k3 / k4``) by a
fraction, from an onset time on, as a step or a linear ramp. The two-tissue ODE

    dC_F/dt = K1 Cp(t) - (k2 + k3(t)) C_F + k4 C_B
    dC_B/dt = k3(t) C_F - k4 C_B

is solved exactly for parameters that are constant on each interval of the fine grid and a
plasma input that is linear between grid points: inside every stretch of constant
parameters the 2x2 matrix exponential is written through its two eigen-modes, and each
mode's convolution with the input is the exact first-order recursion of a piecewise-linear
curve (evaluated with cumulative sums in blocks, so that every column can have its own rate
constants). All columns (regions, subjects, scans) are computed at once.

Times are minutes, rate constants 1/min, K1 mL/cm3/min. Curves are decay-corrected.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["release_profile", "solve_two_tissue"]

#: Largest exponent allowed inside one cumulative-sum block (exp(40) ~ 2e17; sums stay exact
#: to ~1e-16 relative because all increments have the same sign).
_MAX_BLOCK_EXPONENT = 40.0


def release_profile(t: np.ndarray, onset: float | None, *, kind: str = "step",
                    ramp: float = 10.0) -> np.ndarray:
    """Fraction of the full release in effect on each interval of the grid ``t``.

    Parameters
    ----------
    t : ndarray of shape (n,)
        Even fine grid, minutes.
    onset : float or None
        Minutes after injection at which release starts; None means no release, 0 means
        release during the whole scan.
    kind : {"step", "ramp"}, default="step"
        ``step``: full release from ``onset``; ``ramp``: rises linearly from 0 at ``onset``
        to 1 at ``onset + ramp``.
    ramp : float, default=10.0
        Ramp duration, minutes (``kind="ramp"`` only).

    Returns
    -------
    ndarray of shape (n - 1,)
        Values in [0, 1], evaluated at interval mid-points (parameters are constant on each
        grid interval).
    """
    t = np.asarray(t, float)
    mid = 0.5 * (t[:-1] + t[1:])
    if onset is None:
        return np.zeros(mid.shape)
    if kind == "step":
        return (mid >= onset).astype(float)
    if kind == "ramp":
        if ramp <= 0:
            raise ValueError(f"ramp must be positive minutes, got {ramp}")
        return np.clip((mid - onset) / ramp, 0.0, 1.0)
    raise ValueError(f"release kind must be 'step' or 'ramp', got {kind!r}")


def _mode_convolution(c: np.ndarray, rate: np.ndarray, dt: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``y' = -rate y + c``, ``y(0) = 0``, exactly for piecewise-linear ``c``.

    ``c`` is (n, m) on a grid with steps ``dt`` (n - 1,); ``rate`` is (m,), one per column.
    Returns ``y`` (n, m) and the homogeneous solution ``exp(-rate (t - t0))`` (n, m).
    """
    n, m = c.shape
    x = dt[:, None] * rate[None, :]                              # (n-1, m)
    small = x < 1e-8
    safe_rate = np.where(rate > 0, rate, 1.0)[None, :]
    safe_x = np.where(small, 1.0, x)
    a = np.where(small, dt[:, None], -np.expm1(-x) / safe_rate)
    b = np.where(small, 0.5 * dt[:, None], 1.0 / safe_rate - a / safe_x)
    increments = c[:-1] * (a - b) + c[1:] * b                   # (n-1, m), same sign as c
    out = np.empty((n, m))
    out[0] = 0.0
    homog = np.empty((n, m))
    homog[0] = 1.0
    state = np.zeros(m)
    lo = 0
    max_x = np.max(x, axis=1) if m else np.zeros(n - 1)
    while lo < n - 1:
        # Block so that the summed exponent stays below _MAX_BLOCK_EXPONENT.
        reach = np.searchsorted(np.cumsum(max_x[lo:]), _MAX_BLOCK_EXPONENT)
        hi = min(n - 1, lo + max(1, int(reach)))
        grow = np.exp(np.cumsum(x[lo:hi], axis=0))                # e^{sum of steps}
        # y_{lo+k} = e^{-X_k} [y_lo + sum_{j<k} e^{X_{j+1}} u_{lo+j}]
        grown = np.cumsum(increments[lo:hi] * grow, axis=0)
        shrink = 1.0 / grow
        out[lo + 1:hi + 1] = shrink * (state + grown)
        homog[lo + 1:hi + 1] = shrink * homog[lo]
        state = out[hi]
        lo = hi
    return out, homog


def _segment(cp: np.ndarray, dt: np.ndarray, k1: np.ndarray, k2: np.ndarray, k3: np.ndarray,
             k4: np.ndarray, free0: np.ndarray, bound0: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    """Free and bound curves over one stretch of constant parameters (all arrays per column)."""
    s = k2 + k3 + k4
    disc = np.sqrt(np.maximum(s * s - 4.0 * k2 * k4, 0.0))
    if np.any(disc < 1e-9):                      # repeated eigenvalue (k3 = 0 and k2 = k4):
        k4 = np.where(disc < 1e-9, k4 * (1.0 + 1e-6) + 1e-9, k4)   # split it negligibly
        s = k2 + k3 + k4
        disc = np.sqrt(np.maximum(s * s - 4.0 * k2 * k4, 0.0))
    alpha1 = 0.5 * (s - disc)
    alpha2 = 0.5 * (s + disc)
    gap = alpha2 - alpha1
    # e^{At} = sum_i e^{-alpha_i t} P_i,  P_1 = (A + alpha2 I)/gap, P_2 = -(A + alpha1 I)/gap,
    # A = [[-(k2+k3), k4], [k3, -k4]]; the input drives the free compartment, b = (K1, 0).
    free = np.zeros(cp.shape)
    bound = np.zeros(cp.shape)
    for alpha, other, sign in ((alpha1, alpha2, 1.0), (alpha2, alpha1, -1.0)):
        p_ff = sign * (other - k2 - k3) / gap
        p_fb = sign * k4 / gap
        p_bf = sign * k3 / gap
        p_bb = sign * (other - k4) / gap
        conv, homog = _mode_convolution(cp, alpha, dt)
        free += homog * (p_ff * free0 + p_fb * bound0) + (p_ff * k1) * conv
        bound += homog * (p_bf * free0 + p_bb * bound0) + (p_bf * k1) * conv
    return free, bound


def solve_two_tissue(t: np.ndarray, cp: np.ndarray, k1, k2, k3, k4, *,
                     availability: np.ndarray | None = None,
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Free (+ nonspecific) and specifically bound tissue curves, with time-varying ``k3``.

    Parameters
    ----------
    t : ndarray of shape (n,)
        Increasing grid from 0, minutes (even or not, e.g. :func:`simulation_grid`).
    cp : ndarray of shape (n,) or (n, m)
        Metabolite-corrected plasma input on the grid, Bq/mL; one column per tissue column
        or one curve shared by all.
    k1, k2, k3, k4 : float or ndarray of shape (m,)
        Rate constants (K1 mL/cm3/min, others 1/min); ``k3`` is the baseline value.
        ``k3 = 0`` gives a one-tissue curve.
    availability : ndarray of shape (n - 1,) or (n - 1, m), default=None
        Multiplies ``k3`` on each grid interval (1 = baseline, 0.93 = 7 % fewer free
        receptors); None means constant. Build it as ``1 - fraction * release_profile(...)``.

    Returns
    -------
    free, bound : ndarray of shape (n, m)
        Concentrations of the free + nonspecific and specifically bound compartments,
        Bq/mL (without vascular activity); their sum is the tissue curve.

    Notes
    -----
    Exact for the stated piecewise assumptions: each run of grid intervals with equal
    parameters is one matrix-exponential segment, so a step release costs two segments and a
    ramp one segment per interval of the ramp.
    """
    t = np.asarray(t, float)
    dt = np.diff(t)
    cp = np.asarray(cp, float)
    n = t.size
    params = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in (k1, k2, k3, k4)))
    m = max(params[0].size, cp.shape[1] if cp.ndim == 2 else 1)
    k1, k2, k3, k4 = (np.broadcast_to(p, (m,)).astype(float) for p in params)
    cp = np.broadcast_to(cp.reshape(n, -1), (n, m))
    if availability is None:
        scale = np.ones((n - 1, m))
    else:
        scale = np.broadcast_to(np.asarray(availability, float).reshape(n - 1, -1), (n - 1, m))
    # Interval indices where any column's parameters change start a new segment.
    change = np.flatnonzero(np.any(scale[1:] != scale[:-1], axis=1)) + 1
    edges = np.concatenate([[0], change, [n - 1]])
    free = np.empty((n, m))
    bound = np.empty((n, m))
    free[0] = 0.0
    bound[0] = 0.0
    for lo, hi in itertools.pairwise(edges):
        f, b = _segment(cp[lo:hi + 1], dt[lo:hi], k1, k2, k3 * scale[lo], k4, free[lo],
                        bound[lo])
        free[lo:hi + 1] = f
        bound[lo:hi + 1] = b
    return free, bound
