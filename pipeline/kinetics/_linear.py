"""Shared numerics of the linearized reference-tissue models (MRTM, MRTM2, Logan).

Two pieces, both vectorized over target TACs (a voxel is a column):

* :func:`frame_integral_operator` turns frame-averaged activity into the frame average of
  its running integral from injection (time 0), as one matrix product.
* :func:`weighted_least_squares` solves one small weighted linear regression per column,
  with regressors that are either shared by all columns (reference-derived) or per column.
"""

from __future__ import annotations

import numpy as np

from pipeline.frames import Frames
from pipeline.kinetics._inputs import check_starts_at_injection, prepare_inputs, row_selector

__all__ = ["frame_integral_operator", "prepare_linear", "row_selector",
           "weighted_least_squares"]


def prepare_linear(frames: Frames, ref_tac, tacs, *, window, t_star, weights,
                   min_frames: int, model: str):
    """Input checks of the linearized models, which integrate every TAC from injection.

    :func:`~pipeline.kinetics._inputs.prepare_inputs` with ``all_frames=True`` (a TAC
    with NaN in *any* frame is unusable: the integrals use all frames) after
    :func:`~pipeline.kinetics._inputs.check_starts_at_injection`.

    Returns
    -------
    prep : PreparedInputs
    data : ndarray of shape (n_frames, n_tacs)
        Target TACs with degenerate ones zeroed, Bq/mL (so the batched algebra stays
        finite; they are masked by :func:`~pipeline.kinetics.result.make_fit`).
    bad : ndarray of shape (n_tacs,) bool
        The degenerate TACs.
    """
    check_starts_at_injection(frames, model)
    prep = prepare_inputs(frames, ref_tac, tacs, window=window, t_star=t_star,
                          weights=weights, min_frames=min_frames, model=model,
                          all_frames=True)
    return prep, prep.clean_tacs(), prep.degenerate


def frame_integral_operator(frames: Frames) -> np.ndarray:
    """Matrix ``A`` with ``(A @ c)[i]`` = mean over frame ``i`` of ``integral_0^t c(s) ds``.

    ``c`` holds frame-averaged activity (Bq/mL). The curve is represented consistently with
    the frame averages: inside each frame it is linear with the frame's mean and a slope
    taken from the neighbouring frames (so each frame's integral is exactly mean x
    duration); before the first frame it rises linearly from 0 at injection; across a gap
    between frames it is linear between the two frame means. The average of the running
    integral over a frame ``[a, b]`` of duration ``d`` is then
    ``I(a) + c_i d / 2 - m_i d**2 / 12`` with ``m_i`` the slope, which is linear in ``c``.

    Linear model equations (MRTM, Logan) hold at every time, so they also hold between
    frame averages of their terms; using frame-averaged integrals instead of integrals at
    mid-frame removes the frame-length error of the usual trapezoid-at-mid-time scheme.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.

    Returns
    -------
    ndarray of shape (n_frames, n_frames)
        Units of minutes (maps Bq/mL to Bq/mL x min).
    """
    n = frames.n_frames
    start, end, dur, mid = frames.start, frames.end, frames.duration, frames.mid
    eye = np.eye(n)
    # running integral at frame starts: I_start = S @ c
    s_mat = np.zeros((n, n))
    s_mat[0, 0] = 0.5 * start[0]
    for i in range(1, n):
        gap = start[i] - end[i - 1]
        s_mat[i] = s_mat[i - 1] + dur[i - 1] * eye[i - 1] + 0.5 * gap * (eye[i - 1] + eye[i])
    # within-frame slope m = D @ c from neighbouring frame means (0 for a single frame)
    d_mat = np.zeros((n, n))
    if n > 1:
        lo = np.maximum(np.arange(n) - 1, 0)
        hi = np.minimum(np.arange(n) + 1, n - 1)
        span = mid[hi] - mid[lo]
        d_mat[np.arange(n), hi] += 1.0 / span
        d_mat[np.arange(n), lo] -= 1.0 / span
    return s_mat + np.diag(0.5 * dur) - (dur**2 / 12.0)[:, None] * d_mat


def _gram(a: np.ndarray, b: np.ndarray, w: np.ndarray, n: int) -> np.ndarray:
    """Weighted inner products ``sum_f w_f a_f b_f`` per column (shape (n,)).

    Per-column products use a three-operand einsum (no weighted temporary array).
    """
    if a.ndim == 1 and b.ndim == 1:
        return np.full(n, float(np.dot(w * a, b)))
    if a.ndim == 1:
        return (w * a) @ b
    if b.ndim == 1:
        return (w * b) @ a
    return np.einsum("fn,fn,f->n", a, b, w)


def _symmetric_inverse(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse and determinant of symmetric matrices stacked as (p, p, n), p <= 3, in
    closed form (batched ``np.linalg.inv`` costs ~1 us per matrix: too slow for voxels)."""
    p = m.shape[0]
    if p == 1:
        det = m[0, 0].copy()
        return (1.0 / det)[None, None], det
    if p == 2:
        a, b, d = m[0, 0], m[0, 1], m[1, 1]
        det = a * d - b * b
        return np.array([[d, -b], [-b, a]]) / det, det
    if p == 3:
        a, b, c, e, f, i = m[0, 0], m[0, 1], m[0, 2], m[1, 1], m[1, 2], m[2, 2]
        c00, c01, c02 = e * i - f * f, c * f - b * i, b * f - c * e
        c11, c12, c22 = a * i - c * c, b * c - a * f, a * e - b * b
        det = a * c00 + b * c01 + c * c02
        return np.array([[c00, c01, c02], [c01, c11, c12], [c02, c12, c22]]) / det, det
    stacked = np.moveaxis(m, -1, 0)
    return np.moveaxis(np.linalg.inv(stacked), 0, -1), np.linalg.det(stacked)


def weighted_least_squares(columns: list[np.ndarray], y: np.ndarray, w: np.ndarray,
                           *, rcond: float = 1e-10):
    """Solve ``y ~ sum_j beta_j X_j`` by weighted least squares for every column of ``y``.

    Parameters
    ----------
    columns : list of ndarray, each of shape (n_rows,) or (n_rows, n)
        Regressors: 1-D ones are shared by every column of ``y``, 2-D ones are per column.
    y : ndarray of shape (n_rows, n)
        Dependent variable, one column per target TAC.
    w : ndarray of shape (n_rows,)
        Row weights (> 0 for rows in the fit).
    rcond : float, default=1e-10
        Columns whose normal matrix, scaled to unit diagonal, has a determinant below this
        are ``singular``.

    Returns
    -------
    beta : ndarray of shape (p, n)
    cov : ndarray of shape (p, p, n)
        Covariance ``sigma^2 (X'WX)^-1`` with ``sigma^2 = sum w r^2 / (n_rows - p)``
        (the weighted residual sum of squares from ``y'Wy - beta' X'Wy``).
    fitted : ndarray of shape (n_rows, n)
        ``sum_j beta_j X_j`` (NaN for singular columns).
    singular : ndarray of shape (n,) bool
        Columns with (near-)collinear regressors; their results are NaN.
    """
    n = y.shape[1]
    p = len(columns)
    gram = np.empty((p, p, n))
    rhs = np.empty((p, n))
    for j in range(p):
        rhs[j] = _gram(columns[j], y, w, n)
        for k in range(j, p):
            gram[j, k] = gram[k, j] = _gram(columns[j], columns[k], w, n)
    diag = np.sqrt(np.maximum(np.einsum("jjn->jn", gram), 0.0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = np.where(diag > 0, 1.0 / diag, 0.0)
        outer = scale[:, None, :] * scale[None, :, :]
        inv, det = _symmetric_inverse(gram * outer)
    singular = ~np.isfinite(det) | (np.abs(det) < rcond) | np.any(diag == 0, axis=0)
    inv[:, :, singular] = 0.0
    outer[:, :, singular] = 0.0
    inv *= outer
    beta = np.einsum("jkn,kn->jn", inv, rhs)
    order = sorted(range(p), key=lambda j: columns[j].ndim, reverse=True)
    fitted = None
    for j in order:  # start from a per-column regressor: no zero-filled array needed
        col = columns[j]
        term = (col[:, None] if col.ndim == 1 else col) * beta[j]
        if fitted is None:
            fitted = np.broadcast_to(term, y.shape).copy() if col.ndim == 1 else term
        else:
            fitted += term
    rss = np.maximum(np.einsum("fn,fn,f->n", y, y, w) - np.einsum("jn,jn->n", beta, rhs), 0.0)
    cov = inv * (rss / max(y.shape[0] - p, 1))
    beta[:, singular] = np.nan
    cov[:, :, singular] = np.nan
    fitted[:, singular] = np.nan
    return beta, cov, fitted, singular
