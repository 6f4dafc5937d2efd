"""Ground truth for the release-model tests, integrated independently of petbp's models.

Plasma -> reference and target one-tissue equations solved with scipy's ODE solver on a fine
grid (the target's BP_ND a step function of time, so its efflux k2 / (1 + BP_ND) steps),
then averaged over each frame. Minutes, Bq/mL, 1/min.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.integrate import solve_ivp

from pipeline.frames import Frames

K1_REF, K2_REF = 0.3, 0.12  # reference K1' (mL/cm3/min) and k2' (1/min)


def plasma(t: float) -> float:
    """A bolus (gamma-variate) plus a constant infusion from 0 to 90 min, Bq/mL."""
    return 5e4 * (t / 0.5) ** 2 * np.exp(-t / 0.5) * np.exp(2) / 4 + 300.0 * (t < 90.0)


def ode_tacs(frames: Frames, r1, steps: Sequence[tuple[float, object]]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Frame-averaged reference and target TACs (Bq/mL).

    Parameters
    ----------
    frames : Frames
        Minutes.
    r1 : array-like of shape (n_targets,)
        K1/K1' of each target; its k2 is ``r1 * K2_REF`` (1/min).
    steps : sequence of (float, array-like)
        ``[(from minute, BP_ND), ...]`` in ascending order, the first from 0; each BP_ND a
        scalar or one value per target.

    Returns
    -------
    reference : ndarray of shape (n_frames,)
    targets : ndarray of shape (n_frames, n_targets)
    """
    r1 = np.atleast_1d(np.asarray(r1, float))
    k2 = r1 * K2_REF
    starts = np.array([s for s, _ in steps], float)
    values = np.array([np.broadcast_to(np.asarray(b, float), r1.shape) for _, b in steps])

    def rhs(t, y):
        bp = values[np.searchsorted(starts, t, side="right") - 1]
        cp = plasma(t)
        return np.concatenate([[K1_REF * cp - K2_REF * y[0]],
                               r1 * K1_REF * cp - k2 / (1.0 + bp) * y[1:]])

    grid = np.linspace(0.0, frames.end[-1], 18001)
    sol = solve_ivp(rhs, (0.0, frames.end[-1]), np.zeros(1 + r1.size), t_eval=grid,
                    rtol=1e-10, atol=1e-8, max_step=0.02)
    cum = np.concatenate([np.zeros((sol.y.shape[0], 1)),
                          np.cumsum(0.5 * np.diff(grid) * (sol.y[:, 1:] + sol.y[:, :-1]),
                                    axis=1)], axis=1)
    avg = (np.array([np.interp(frames.end, grid, c) for c in cum])
           - np.array([np.interp(frames.start, grid, c) for c in cum])) / frames.duration
    return avg[0], avg[1:].T


def independent_schedule(name: str) -> Frames:
    """30 frames, 15 s to 5 min over 0-90 min (the independent simulator's schedule)."""
    durations = np.array([15] * 4 + [30] * 4 + [60] * 3 + [120] * 2 + [240] * 5 + [300] * 12,
                         float) / 60.0
    ends = np.cumsum(durations)
    return Frames(ends - durations, ends, name)
