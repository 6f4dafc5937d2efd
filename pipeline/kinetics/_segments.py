"""Frame-averaged responses of a reference TAC through a rate that changes at set times.

The segmented SRTM (:mod:`pipeline.kinetics.srtm_segments`) lets the apparent efflux rate
``k2a = k2 / (1 + BP_ND)`` take one value per time segment while R1 and k2 stay fixed. Its
target TAC is ``C_T = R1 (C_R - V) + k2 U`` with

    U' = C_R - k2a(t) U,      V' = k2a(t) (C_R - V),      U(0) = V(0) = 0,

so for fixed segment rates the model is linear in R1 and k2. This module computes the frame
averages of U and V exactly for the frame-consistent piecewise-linear reference of
:mod:`pipeline.kinetics._reference` (knots at every frame start, mid-time and end, plus the
segment boundaries), vectorized over many rate combinations: one pass over the knots.
Minutes and 1/min throughout.
"""

from __future__ import annotations

import numpy as np

from pipeline.frames import Frames
from pipeline.kinetics._reference import knots

__all__: list[str] = []

_MIN_RATE = 1e-6


def _insert_knots(times: np.ndarray, values: np.ndarray, extra: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Add knots at ``extra`` times (linear interpolation of the interpolant: exact)."""
    new = [t for t in np.asarray(extra, float) if not np.any(np.isclose(times, t, atol=1e-9))]
    if not new:
        return times, values
    all_t = np.concatenate([times, new])
    order = np.argsort(all_t, kind="stable")
    all_v = np.concatenate([values, np.interp(new, times, values)])
    return all_t[order], all_v[order]


class SegmentedConvolver:
    """Frame averages of U and V (see the module text) for rates per segment.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected.
    boundaries : sequence of float
        Minutes at which the rate changes (sorted); ``len(boundaries) + 1`` segments.
    """

    def __init__(self, frames: Frames, ref_tac: np.ndarray, boundaries) -> None:
        self.frames = frames
        self.boundaries = np.asarray(sorted(float(b) for b in boundaries), float)
        times, values, _, _ = knots(frames, np.asarray(ref_tac, float))
        times, values = _insert_knots(times, values, self.boundaries)
        self.t, self.c = times, values
        self.h = np.diff(times)
        # segment of each knot interval (an interval starting at a boundary is in the next)
        self.segment = np.searchsorted(self.boundaries, times[:-1], side="right")
        self.n_segments = self.boundaries.size + 1
        self.start_idx = np.searchsorted(times, frames.start - 1e-9)
        self.end_idx = np.searchsorted(times, frames.end - 1e-9)
        area = 0.5 * self.h * (values[:-1] + values[1:])
        self.cum_c = np.concatenate([[0.0], np.cumsum(area)])

    def frame_averages(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame means of U and V.

        Parameters
        ----------
        rates : ndarray of shape (m, n_segments)
            k2a of each segment, 1/min, for m rate combinations (TACs or grid points).

        Returns
        -------
        u, v : ndarray of shape (n_frames, m)
            Frame averages; U in Bq/mL x min, V in Bq/mL.
        """
        rates = np.maximum(np.atleast_2d(np.asarray(rates, float)), _MIN_RATE)
        m = rates.shape[0]
        n_knots = self.t.size
        cum_u = np.zeros((n_knots, m))
        cum_v = np.zeros((n_knots, m))
        u = np.zeros(m)
        v = np.zeros(m)
        for j, h in enumerate(self.h):
            if h <= 0.0:
                cum_u[j + 1], cum_v[j + 1] = cum_u[j], cum_v[j]
                continue
            k = rates[:, self.segment[j]]
            c0, c1 = self.c[j], self.c[j + 1]
            decay = np.exp(-k * h)
            one_minus = -np.expm1(-k * h)
            inv_k = 1.0 / k
            # exact response of x' = c(t) - k x to a linear c over the interval
            a = one_minus * inv_k
            b = inv_k - one_minus * inv_k * inv_k / h
            gain = c0 * a + (c1 - c0) * b
            u_new = decay * u + gain
            v_new = decay * v + k * gain
            area = 0.5 * h * (c0 + c1)
            cum_u[j + 1] = cum_u[j] + (area - (u_new - u)) * inv_k
            cum_v[j + 1] = cum_v[j] + area - (v_new - v) * inv_k
            u, v = u_new, v_new
        duration = self.frames.duration[:, None]
        u_avg = (cum_u[self.end_idx] - cum_u[self.start_idx]) / duration
        v_avg = (cum_v[self.end_idx] - cum_v[self.start_idx]) / duration
        return u_avg, v_avg

    def reference_averages(self) -> np.ndarray:
        """Frame means of the reference interpolant (equal to the measured ones)."""
        return (self.cum_c[self.end_idx] - self.cum_c[self.start_idx]) / self.frames.duration
