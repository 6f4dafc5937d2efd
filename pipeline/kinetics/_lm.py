"""Batched, bounded Levenberg-Marquardt for many small least-squares problems (private).

Each column of the data is its own problem with the same few parameters (SRTM: 3), so
every iteration is a handful of array operations and one batched ``p x p`` solve for all
columns at once: a few regions and 200,000 voxels share one code path. Bounds are kept by
projecting each trial step onto the box; a step is accepted for a column only if its
weighted residual sum of squares decreases, otherwise that column's damping grows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__: list[str] = []

#: model(params (m, p)) -> (prediction (n, m), jacobian (n, m, p)) on the fitted frames
_Model = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class _LMResult:
    params: np.ndarray      # (m, p)
    rss: np.ndarray         # (m,) weighted residual sum of squares
    prediction: np.ndarray  # (n, m)
    jacobian: np.ndarray    # (n, m, p)
    converged: np.ndarray   # (m,) bool
    n_iter: int


def _levenberg_marquardt(model: _Model, data: np.ndarray, sqrt_w: np.ndarray,
                         start: np.ndarray, lower: np.ndarray, upper: np.ndarray, *,
                         max_iter: int = 100, ftol: float = 1e-10,
                         xtol: float = 1e-9) -> _LMResult:
    """Minimize ``sum_f w_f (data_f - model_f)^2`` per column within ``[lower, upper]``.

    Parameters
    ----------
    model : callable
        ``params (m, p) -> (prediction (n, m), jacobian (n, m, p))``, evaluated on the
        fitted frames only; it must accept any subset of columns.
    data : ndarray of shape (n, m)
    sqrt_w : ndarray of shape (n,)
        Square roots of the frame weights.
    start : ndarray of shape (m, p)
        Initial values (clipped into the bounds).
    lower, upper : ndarray of shape (p,)
    """
    params = np.clip(np.asarray(start, float), lower, upper)
    m, p = params.shape
    pred, jac = model(params)
    rss = _rss(data, pred, sqrt_w)
    lam = np.full(m, 1e-3)
    active = np.ones(m, dtype=bool)
    converged = np.zeros(m, dtype=bool)
    n_iter = 0
    eye = np.eye(p)
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        jw = jac[:, idx, :] * sqrt_w[:, None, None]
        resid = (data[:, idx] - pred[:, idx]) * sqrt_w[:, None]
        jtj = np.einsum("nmp,nmq->mpq", jw, jw)
        grad = np.einsum("nmp,nm->mp", jw, resid)
        diag = np.einsum("mpp->mp", jtj)
        diag = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
        system = jtj + lam[idx, None, None] * diag[:, :, None] * eye
        # active bounds: a parameter on its bound whose gradient points outwards is held
        # fixed, so the step of the others is not distorted by the projection
        p_now = params[idx]
        frozen = (((p_now <= lower) & (grad < 0)) | ((p_now >= upper) & (grad > 0)))
        if frozen.any():
            free = ~frozen
            system = system * (free[:, :, None] & free[:, None, :]) + \
                eye * frozen[:, :, None]
            grad = np.where(frozen, 0.0, grad)
        try:
            step = np.linalg.solve(system, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:  # a singular system in some column: pseudo-inverse
            step = np.einsum("mpq,mq->mp", np.linalg.pinv(system), grad)
        trial = np.clip(params[idx] + step, lower, upper)
        t_pred, t_jac = model(trial)
        t_rss = _rss(data[:, idx], t_pred, sqrt_w)
        better = np.isfinite(t_rss) & (t_rss <= rss[idx])
        moved = np.abs(trial - params[idx]) <= xtol * (np.abs(params[idx]) + xtol)
        gain = (rss[idx] - t_rss) <= ftol * np.maximum(rss[idx], 1e-300)
        ok = idx[better]
        params[ok] = trial[better]
        pred[:, ok] = t_pred[:, better]
        jac[:, ok, :] = t_jac[:, better, :]
        rss[ok] = t_rss[better]
        lam[ok] = np.maximum(lam[ok] / 10.0, 1e-12)
        lam[idx[~better]] *= 10.0
        done = (better & (gain | np.all(moved, axis=1))) | (lam[idx] > 1e12)
        converged[idx[done]] = True
        active[idx[done]] = False
    return _LMResult(params, rss, pred, jac, converged, n_iter)


@dataclass
class _LMSummary:
    params: np.ndarray      # (m, p)
    prediction: np.ndarray  # (n, m) on the fitted frames
    covariance: np.ndarray  # (m, p, p)
    converged: np.ndarray   # (m,) bool


def _fit_in_chunks(model: _Model, data: np.ndarray, sqrt_w: np.ndarray, start: np.ndarray,
                   lower: np.ndarray, upper: np.ndarray, *, max_iter: int = 100,
                   chunk: int = 8192) -> _LMSummary:
    """:func:`_levenberg_marquardt` over chunks of columns (bounded memory), with covariances."""
    n, m = data.shape
    p = start.shape[1]
    summary = _LMSummary(np.empty((m, p)), np.empty((n, m)), np.empty((m, p, p)),
                         np.empty(m, dtype=bool))
    for lo in range(0, m, chunk):
        sl = slice(lo, min(lo + chunk, m))
        result = _levenberg_marquardt(model, data[:, sl], sqrt_w, start[sl], lower, upper,
                                      max_iter=max_iter)
        summary.params[sl] = result.params
        summary.prediction[:, sl] = result.prediction
        summary.converged[sl] = result.converged
        summary.covariance[sl] = _covariance(
            [result.jacobian[..., i] for i in range(p)], sqrt_w, result.rss)
    return summary


def _rss(data: np.ndarray, pred: np.ndarray, sqrt_w: np.ndarray) -> np.ndarray:
    resid = (data - pred) * sqrt_w[:, None]
    return np.einsum("nm,nm->m", resid, resid)


def _covariance(columns: list[np.ndarray], sqrt_w: np.ndarray, rss: np.ndarray) -> np.ndarray:
    """``sigma^2 (J^T W J)^-1`` per column, ``sigma^2 = rss / (n - p)``; NaN if ill-conditioned.

    Parameters
    ----------
    columns : list of p ndarrays of shape (n, m)
        Jacobian columns (d prediction / d parameter) on the fitted frames.
    sqrt_w : ndarray of shape (n,)
    rss : ndarray of shape (m,)
        Weighted residual sums of squares.

    Returns
    -------
    ndarray of shape (m, p, p)
    """
    p = len(columns)
    n, m = columns[0].shape
    weighted = [c * sqrt_w[:, None] for c in columns]
    jtj = np.empty((m, p, p))
    for i in range(p):
        for k in range(i, p):
            jtj[:, i, k] = jtj[:, k, i] = np.einsum("nm,nm->m", weighted[i], weighted[k])
    scale = np.sqrt(np.einsum("mpp->mp", jtj))
    with np.errstate(invalid="ignore", divide="ignore"):
        normed = jtj / (scale[:, :, None] * scale[:, None, :])
        inv = _small_inverse(normed)
        cov = inv / (scale[:, :, None] * scale[:, None, :])
        cov *= (rss / (n - p) if n > p else np.full(m, np.nan))[:, None, None]
    return cov


def _small_inverse(a: np.ndarray) -> np.ndarray:
    """Inverse of a stack of 2x2 or 3x3 matrices with unit diagonal (closed form).

    Matrices whose determinant is below 1e-10 (nearly dependent parameters) give NaN.
    """
    p = a.shape[-1]
    if p == 2:
        det = 1.0 - a[:, 0, 1] * a[:, 1, 0]
        adj = np.stack([np.stack([a[:, 1, 1], -a[:, 0, 1]], -1),
                        np.stack([-a[:, 1, 0], a[:, 0, 0]], -1)], -2)
    elif p == 3:
        c = np.empty_like(a)
        for i in range(3):
            for k in range(3):
                i1, i2 = [x for x in range(3) if x != k]
                k1, k2 = [x for x in range(3) if x != i]
                c[:, i, k] = (-1) ** (i + k) * (a[:, i1, k1] * a[:, i2, k2]
                                                - a[:, i1, k2] * a[:, i2, k1])
        det = np.einsum("mk,mk->m", a[:, 0, :], c[:, :, 0])
        adj = c
    else:
        det = np.linalg.det(a)
        adj = np.linalg.inv(np.where(np.abs(det)[:, None, None] > 1e-10, a, np.eye(p))) * \
            det[:, None, None]
    good = np.isfinite(det) & (det > 1e-10)
    out = np.full(a.shape, np.nan)
    out[good] = adj[good] / det[good, None, None]
    return out
