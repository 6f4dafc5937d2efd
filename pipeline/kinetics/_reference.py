"""Exact frame-averaged convolution of a reference TAC with exponentials (private).

SRTM-type models need ``X(t) = integral_0^t C_R(s) exp(-k (t - s)) ds`` averaged over
each frame, for many rates ``k`` at once. Only frame averages of ``C_R`` are measured,
so the reference is first made continuous by a *frame-consistent* piecewise-linear
interpolant: knots at 0 (value 0), at every frame start, mid-time and end; the value at
a frame boundary comes from an Akima spline through the frame averages placed at
mid-times (linear extrapolation after the last one), and the mid-time value is set so that
the interpolant's mean over the frame equals the measured frame average exactly. Gaps
between frames are bridged linearly. On a 90-min schedule this reproduces SRTM to
~1e-5 in BP_ND; with 20-30 min frames or 10-min gaps to < 0.1 %.

The convolution of a piecewise-linear curve with an exponential is then exact, interval
by interval (a recursion over the knots), and so is its integral over each frame
(``dX/dt = C_R - k X`` gives ``integral X = (integral C_R - delta X) / k``). The cost is
one pass over ~3 knots per frame, vectorized over all rates, with no fine time grid.

Fits that need the convolution at a different rate for every TAC (nonlinear SRTM and
SRTM2 on 200,000 voxels) use a :class:`RateTable`: the exact frame averages and their
rate derivatives on a dense log-spaced grid of rates, interpolated by cubic Hermite
polynomials in log-rate (relative error ~1e-9 at the default spacing of 1 %), which costs
a few operations per frame and TAC instead of a pass over every knot.
"""

from __future__ import annotations

import numpy as np

from pipeline.frames import Frames

__all__ = ["RateTable", "ReferenceConvolver"]

#: Smallest rate handled, 1/min (the recursion divides by k).
_MIN_RATE = 1e-6


class ReferenceConvolver:
    """Frame-averaged convolutions of one reference TAC with ``exp(-k t)``.

    Parameters
    ----------
    frames : Frames
        Frame start and end times in minutes (uneven frames and gaps allowed).
    ref_tac : ndarray of shape (n_frames,)
        Measured frame means of the reference region, Bq/mL, decay-corrected.
    """

    def __init__(self, frames: Frames, ref_tac: np.ndarray):
        self.frames = frames
        self.ref_tac = np.asarray(ref_tac, float)
        self.knot_t, self.knot_c, self.start_idx, self.end_idx = knots(frames, self.ref_tac)
        h = np.diff(self.knot_t)
        self._h = h
        self._c0 = self.knot_c[:-1]
        self._c1 = self.knot_c[1:]
        self._area = 0.5 * h * (self._c0 + self._c1)

    def frame_averages(self, rates: np.ndarray) -> np.ndarray:
        """Frame means of ``C_R * exp(-k t)`` for each rate.

        Parameters
        ----------
        rates : ndarray of shape (m,)
            Rates k, 1/min (values below 1e-6 are raised to 1e-6).

        Returns
        -------
        ndarray of shape (n_frames, m)
            Bq/mL x min.
        """
        k = np.maximum(np.asarray(rates, float).reshape(-1), _MIN_RATE)
        n_knots = self.knot_t.size
        cumulative = np.empty((n_knots, k.size))
        cumulative[0] = 0.0
        x = np.zeros(k.size)
        inv_k = 1.0 / k
        for j in range(n_knots - 1):
            h = self._h[j]
            if h <= 0.0:
                cumulative[j + 1] = cumulative[j]
                continue
            kh = k * h
            one_minus_e = -np.expm1(-kh)
            a = one_minus_e * inv_k
            b = inv_k - one_minus_e * inv_k * inv_k / h
            x_new = (1.0 - one_minus_e) * x + self._c0[j] * a + (self._c1[j] - self._c0[j]) * b
            cumulative[j + 1] = cumulative[j] + (self._area[j] - (x_new - x)) * inv_k
            x = x_new
        duration = self.frames.duration[:, None]
        return (cumulative[self.end_idx] - cumulative[self.start_idx]) / duration

    def frame_averages_and_slope(self, rates: np.ndarray,
                                 rel_step: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
        """Frame averages and their derivative with respect to the rate (central difference).

        Returns
        -------
        values, slope : ndarray of shape (n_frames, m)
        """
        k = np.maximum(np.asarray(rates, float).reshape(-1), _MIN_RATE)
        step = rel_step * k
        both = self.frame_averages(np.concatenate([k, k + step, k - step]))
        m = k.size
        values = both[:, :m]
        slope = (both[:, m:2 * m] - both[:, 2 * m:]) / (2.0 * step)
        return values, slope


class RateTable:
    """Frame averages of ``C_R (*) exp(-k t)`` at any rates, interpolated from a dense grid.

    Parameters
    ----------
    convolver : ReferenceConvolver
        The exact convolution of the reference.
    low, high : float
        Range of rates covered, 1/min (rates outside are clipped to it).
    rows : ndarray of bool or int, default=None
        Frames kept (e.g. the fitted ones); None keeps all.
    scale : ndarray of shape (n_rows,), default=None
        Factor per kept frame (e.g. the square roots of the frame weights), applied to
        the values and slopes.
    step : float, default=0.01
        Grid spacing in log-rate (1 %): cubic Hermite interpolation from values and exact
        slopes leaves a relative error of order ``step**4``.
    """

    def __init__(self, convolver: ReferenceConvolver, low: float, high: float,
                 rows=None, scale: np.ndarray | None = None, step: float = 0.01):
        low = max(float(low), _MIN_RATE)
        high = max(float(high), low * (1.0 + 2.0 * step))
        n = int(np.ceil(np.log(high / low) / step)) + 1
        self.log_low = np.log(low)
        self.step = np.log(high / low) / (n - 1)
        self.low, self.high = low, high
        rates = np.exp(self.log_low + self.step * np.arange(n))
        values, slopes = convolver.frame_averages_and_slope(rates)
        if rows is not None:
            values, slopes = values[rows], slopes[rows]
        if scale is not None:
            values = values * np.asarray(scale, float)[:, None]
            slopes = slopes * np.asarray(scale, float)[:, None]
        self.values = np.ascontiguousarray(values)
        #: d value / d (grid index) = d value / d rate x rate x step
        self.per_index = np.ascontiguousarray(slopes * (rates * self.step))
        self.size = n

    def values_and_slopes(self, rates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Frame averages and their derivatives with respect to the rate.

        Parameters
        ----------
        rates : ndarray of shape (m,)
            Rates, 1/min.

        Returns
        -------
        values, slopes : ndarray of shape (n_rows, m)
            Bq/mL x min and its derivative per 1/min.
        """
        k = np.clip(np.asarray(rates, float).reshape(-1), self.low, self.high)
        pos = (np.log(k) - self.log_low) / self.step
        j = np.minimum(pos.astype(np.intp), self.size - 2)
        t = pos - j
        t2 = t * t
        # cubic Hermite on [j, j + 1] written around v0 (h00 + h01 = 1), into the gathered
        # copies: values = v0 + h01 (v1 - v0) + h10 d0 + h11 d1, and its derivative
        values = self.values[:, j]
        diff = self.values[:, j + 1]
        diff -= values
        d0, d1 = self.per_index[:, j], self.per_index[:, j + 1]
        tmp = np.multiply(diff, t2 * (3.0 - 2.0 * t))
        values += tmp
        values += np.multiply(d0, t * (t - 1.0) ** 2, out=tmp)
        values += np.multiply(d1, t2 * (t - 1.0), out=tmp)
        per_rate = 1.0 / (k * self.step)  # d index / d rate
        slopes = np.multiply(diff, 6.0 * t * (1.0 - t) * per_rate, out=diff)
        slopes += np.multiply(d0, (3.0 * t2 - 4.0 * t + 1.0) * per_rate, out=d0)
        slopes += np.multiply(d1, (3.0 * t2 - 2.0 * t) * per_rate, out=d1)
        return values, slopes


def _akima_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Slopes at the points of Akima's (1970) interpolant through ``(x, y)`` (n >= 3).

    Each slope weights the two neighbouring secants by the change of the secants on the
    far side, so an outlier bends the curve only locally; two secants are extrapolated
    linearly beyond each end. Where both weights vanish the mean of the two secants is
    used. Same definition as ``scipy.interpolate.Akima1DInterpolator`` (``akima``).
    """
    secant = np.diff(y) / np.diff(x)
    ext = np.empty(secant.size + 4)
    ext[2:-2] = secant
    ext[1] = 2.0 * ext[2] - ext[3]
    ext[0] = 2.0 * ext[1] - ext[2]
    ext[-2] = 2.0 * ext[-3] - ext[-4]
    ext[-1] = 2.0 * ext[-2] - ext[-3]
    right = np.abs(ext[3:] - ext[2:-1])  # |e_{i+1} - e_i| for point i
    left = np.abs(ext[1:-2] - ext[:-3])  # |e_{i-1} - e_{i-2}|
    total = right + left
    defined = total > 1e-9 * total.max(initial=0.0)
    safe = np.where(defined, total, 1.0)
    weighted = (right * ext[1:-2] + left * ext[2:-1]) / safe
    return np.where(defined, weighted, 0.5 * (ext[1:-2] + ext[2:-1]))


def _hermite(x: np.ndarray, y: np.ndarray, slopes: np.ndarray,
             query: np.ndarray) -> np.ndarray:
    """Piecewise cubic Hermite interpolant through ``(x, y)`` with ``slopes``, at ``query``
    (inside ``[x[0], x[-1]]``)."""
    k = np.clip(np.searchsorted(x, query, side="right") - 1, 0, x.size - 2)
    h = x[k + 1] - x[k]
    t = (query - x[k]) / h
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y[k] + (t3 - 2 * t2 + t) * h * slopes[k]
            + (3 * t2 - 2 * t3) * y[k + 1] + (t3 - t2) * h * slopes[k + 1])


def knots(frames: Frames, ref: np.ndarray):
    """Knot times and values of the frame-consistent interpolant, and frame knot indices."""
    start, end, mid = frames.start, frames.end, frames.mid
    n = frames.n_frames
    anchor_t = np.concatenate([[0.0], mid])
    anchor_c = np.concatenate([[0.0], ref])
    if mid[0] <= 0.0:  # degenerate: first frame centred at 0
        anchor_t, anchor_c = mid, ref

    if anchor_t.size >= 3:
        slopes = _akima_slopes(anchor_t, anchor_c)

        def smooth(t):
            return _hermite(anchor_t, anchor_c, slopes, t)
        end_slope = float(slopes[-1])
    else:
        def smooth(t):
            return np.interp(t, anchor_t, anchor_c)
        end_slope = float((anchor_c[-1] - anchor_c[-2]) / (anchor_t[-1] - anchor_t[-2])) \
            if anchor_t.size == 2 else 0.0

    def boundary_value(t: np.ndarray) -> np.ndarray:
        inside = smooth(np.clip(t, anchor_t[0], anchor_t[-1]))
        if n >= 2:  # linear extrapolation after the last mid-time, with the spline's slope
            late = t > mid[-1]
            inside = np.where(late, ref[-1] + end_slope * (t - mid[-1]), inside)
        return inside

    v_start = boundary_value(start)
    v_end = boundary_value(end)
    if start[0] <= 0.0:
        v_start[0] = 0.0
    v_mid = 2.0 * ref - 0.5 * (v_start + v_end)
    times = [0.0] if start[0] > 0.0 else []
    values = [0.0] if start[0] > 0.0 else []
    start_idx = np.empty(n, dtype=int)
    end_idx = np.empty(n, dtype=int)
    for i in range(n):
        if times and abs(times[-1] - start[i]) < 1e-9:
            start_idx[i] = len(times) - 1
            values[-1] = v_start[i]  # shared boundary: same interpolated value
        else:
            start_idx[i] = len(times)
            times.append(start[i])
            values.append(v_start[i])
        times.extend([mid[i], end[i]])
        values.extend([v_mid[i], v_end[i]])
        end_idx[i] = len(times) - 1
    return np.asarray(times), np.asarray(values), start_idx, end_idx
