"""Batched, bounded Levenberg-Marquardt for many small least-squares problems (private).

Each column of the data is its own problem with the same few parameters (SRTM: 3), so
every iteration is a handful of array operations and one closed-form ``p x p`` solve for
all columns at once: a few regions and 200,000 voxels share one code path. Bounds are kept
by projecting each trial step onto the box; a step is accepted for a column only if its
weighted residual sum of squares decreases, otherwise that column's damping grows.
Columns that have converged are written back at once and dropped from the working
arrays in batches (until then they stay, their step held at zero).

The model works on *weighted* quantities: it returns ``sqrt(w) x prediction`` and
``sqrt(w) x Jacobian`` (the caller folds the frame weights into its basis functions once),
and the data are given weighted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["SETTLE_STEP", "covariance_from_normal", "fit_in_chunks", "jacobian_covariance"]

#: Relative step below which a column whose predicted gain is below ftol has converged
#: (see ``settle``): its parameters change by less than this if the step were taken.
SETTLE_STEP = 1e-6

#: model(params (m, p)) -> (weighted prediction (n, m), weighted Jacobian (p, n, m))
_Model = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class _LMResult:
    params: np.ndarray      # (m, p)
    rss: np.ndarray         # (m,) weighted residual sum of squares
    prediction: np.ndarray  # (n, m), weighted
    normal: np.ndarray      # (m, p, p) J^T W J at the solution
    converged: np.ndarray   # (m,) bool
    n_iter: int


def _normal_matrix(jac: np.ndarray) -> np.ndarray:
    """``J^T J`` (m, p, p) of weighted columns ``jac`` (p, n, m), by pairwise reductions
    (much faster than one four-index einsum)."""
    p, _, m = jac.shape
    jtj = np.empty((m, p, p))
    for i in range(p):
        for k in range(i, p):
            jtj[:, i, k] = jtj[:, k, i] = np.einsum("nm,nm->m", jac[i], jac[k])
    return jtj


def _normal_equations(jac: np.ndarray, resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``J^T J`` (m, p, p) and ``J^T r`` (m, p) of weighted columns ``jac`` (p, n, m)."""
    grad = np.stack([np.einsum("nm,nm->m", column, resid) for column in jac], axis=1)
    return _normal_matrix(jac), grad


def _positions(idx: np.ndarray) -> slice | np.ndarray:
    """``idx`` (sorted) as a slice when it is a contiguous run (writes without indexing)."""
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


def _solve(system: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve a stack of small systems ``system @ x = rhs`` (p <= 3 in closed form).

    The systems are scaled to unit diagonal first; nearly singular ones (determinant of
    the scaled matrix below 1e-14) are solved by the pseudo-inverse.
    """
    scale = np.sqrt(np.abs(np.einsum("mpp->mp", system)))
    scale = np.where(scale > 0, scale, 1.0)
    normed = system / (scale[:, :, None] * scale[:, None, :])
    adj, det = _adjugate(normed)
    good = np.isfinite(det) & (np.abs(det) > 1e-14)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.einsum("mpq,mq->mp", adj, rhs / scale) / det[:, None]
    if not good.all():
        bad = ~good
        out[bad] = np.einsum("mpq,mq->mp", np.linalg.pinv(normed[bad]), rhs[bad] / scale[bad])
    return out / scale


def _levenberg_marquardt(model: _Model, data: np.ndarray, start: np.ndarray,
                         lower: np.ndarray, upper: np.ndarray, *, max_iter: int = 100,
                         ftol: float = 1e-10, xtol: float = 1e-9,
                         settle: float | None = None) -> _LMResult:
    """Minimize ``|data - model|^2`` (weighted quantities) per column within the bounds.

    Parameters
    ----------
    model : callable
        ``params (m, p) -> (prediction (n, m), jacobian (p, n, m))``, weighted, on the
        fitted frames only; it must accept any subset of columns.
    data : ndarray of shape (n, m)
        Weighted data (``sqrt(w) x data``).
    start : ndarray of shape (m, p)
        Initial values (clipped into the bounds).
    lower, upper : ndarray of shape (p,)
    max_iter : int, default=100
    ftol : float, default=1e-10
        A column has converged when an accepted step gains less than ``ftol`` times its
        residual sum of squares (or moves every parameter by less than ``xtol``).
    xtol : float, default=1e-9
    settle : float, default=None
        Also stop a column, without evaluating its trial, when its next step moves every
        parameter by less than ``settle`` (relative) and the Gauss-Newton model predicts
        a gain below ``ftol``: one model call less per converged column. The step bound
        keeps columns in a flat valley of the residual (a long step for a tiny predicted
        gain) iterating as without it.
    """
    params = np.clip(np.asarray(start, float), lower, upper)
    m, p = params.shape
    pred, jac = model(params)
    rss = _rss(data, pred)
    normal = np.empty((m, p, p))
    converged = np.zeros(m, dtype=bool)
    eye = np.eye(p)
    # the columns still iterating: finished ones are written back and *parked* (kept in the
    # working arrays, their step held at zero) until enough have gathered to drop them in
    # one compaction; compacting for a few columns would copy every working array
    idx = np.arange(m)
    w_params, w_pred, w_jac, w_rss, w_data = params.copy(), pred, jac, rss.copy(), data
    w_lam = np.full(m, 1e-3)
    parked = np.zeros(m, dtype=bool)

    def finish(done: np.ndarray, jtj: np.ndarray | None = None) -> np.ndarray | None:
        """Write back the finished columns ``done`` with their J^T J (``jtj``: of every
        working column, when already computed at their current values) and park them;
        returns the kept positions when the working arrays were compacted, else None."""
        nonlocal idx, w_params, w_pred, w_jac, w_rss, w_data, w_lam, parked
        if 2 * np.count_nonzero(done) >= done.size:  # most finish: write every column
            at = _positions(idx)
            params[at], rss[at], pred[:, at] = w_params, w_rss, w_pred
            normal[at] = _normal_matrix(w_jac) if jtj is None else jtj
        else:
            cols = idx[done]
            params[cols], rss[cols], pred[:, cols] = w_params[done], w_rss[done], w_pred[:, done]
            normal[cols] = _normal_matrix(w_jac[:, :, done]) if jtj is None else jtj[done]
        converged[idx[done]] = True
        parked |= done
        n_parked = np.count_nonzero(parked)
        if 8 * n_parked < parked.size:
            return None
        keep = np.flatnonzero(~parked)
        idx = idx[keep]
        if idx.size:
            w_params, w_rss, w_lam = w_params[keep], w_rss[keep], w_lam[keep]
            w_pred, w_jac = np.take(w_pred, keep, axis=1), np.take(w_jac, keep, axis=2)
            w_data = np.take(w_data, keep, axis=1)
        parked = np.zeros(idx.size, dtype=bool)
        return keep

    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        if idx.size == 0:
            break
        jtj, grad = _normal_equations(w_jac, w_data - w_pred)
        diag = np.einsum("mpp->mp", jtj)
        diag = np.maximum(diag, 1e-12 * np.maximum(diag.max(axis=1, keepdims=True), 1e-300))
        system = jtj + w_lam[:, None, None] * diag[:, :, None] * eye
        # active bounds: a parameter on its bound whose gradient points outwards is held
        # fixed, so the step of the others is not distorted by the projection
        frozen = (((w_params <= lower) & (grad < 0)) | ((w_params >= upper) & (grad > 0)))
        if frozen.any():
            free = ~frozen
            system = system * (free[:, :, None] & free[:, None, :]) + \
                eye * frozen[:, :, None]
            grad = np.where(frozen, 0.0, grad)
        trial = np.clip(w_params + _solve(system, grad), lower, upper)
        if settle is not None:  # a short step with the model's predicted gain below ftol
            step = trial - w_params
            predicted = np.einsum("mp,mp->m", step,
                                  2.0 * grad - np.einsum("mpq,mq->mp", jtj, step))
            short = np.all(np.abs(step) <= settle * (np.abs(w_params) + settle), axis=1)
            settled = short & (predicted <= ftol * np.maximum(w_rss, 1e-300)) & ~parked
            if settled.any():
                keep = finish(settled, jtj)
                if idx.size == 0:
                    break
                if keep is not None:
                    trial = trial[keep]
        if parked.any():  # parked columns stay where they are
            trial[parked] = w_params[parked]
        t_pred, t_jac = model(trial)
        t_rss = _rss(w_data, t_pred)
        better = np.isfinite(t_rss) & (t_rss <= w_rss)
        moved = np.all(np.abs(trial - w_params) <= xtol * (np.abs(w_params) + xtol), axis=1)
        gain = (w_rss - t_rss) <= ftol * np.maximum(w_rss, 1e-300)
        if not better.all():  # rejected trials keep their current values (usually few)
            worse = ~better
            trial[worse] = w_params[worse]
            t_pred[:, worse] = w_pred[:, worse]
            t_jac[:, :, worse] = w_jac[:, :, worse]
            t_rss[worse] = w_rss[worse]
        w_params, w_pred, w_jac, w_rss = trial, t_pred, t_jac, t_rss
        w_lam = np.where(better, np.maximum(w_lam / 10.0, 1e-12), w_lam * 10.0)
        done = ((better & (gain | moved)) | (w_lam > 1e12)) & ~parked
        if done.any():
            finish(done)
    if idx.size:  # not converged within max_iter: the last accepted values
        live = ~parked
        cols = idx[live]
        params[cols], rss[cols], pred[:, cols] = w_params[live], w_rss[live], w_pred[:, live]
        normal[cols] = _normal_matrix(w_jac[:, :, live])
    return _LMResult(params, rss, pred, normal, converged, n_iter)


@dataclass
class _LMSummary:
    params: np.ndarray      # (m, p)
    prediction: np.ndarray  # (n, m) on the fitted frames, weighted
    covariance: np.ndarray  # (m, p, p)
    converged: np.ndarray   # (m,) bool


def fit_in_chunks(model: _Model, data: np.ndarray, start: np.ndarray, lower: np.ndarray,
                  upper: np.ndarray, *, max_iter: int = 100, chunk: int = 32768,
                  settle: float | None = None) -> _LMSummary:
    """:func:`_levenberg_marquardt` over chunks of columns (bounded memory), with covariances.

    ``data`` and the model are weighted (module docstring).
    """
    n, m = data.shape
    p = start.shape[1]
    summary = _LMSummary(np.empty((m, p)), np.empty((n, m)), np.empty((m, p, p)),
                         np.empty(m, dtype=bool))
    for lo in range(0, m, chunk):
        sl = slice(lo, min(lo + chunk, m))
        result = _levenberg_marquardt(model, data[:, sl], start[sl], lower, upper,
                                      max_iter=max_iter, settle=settle)
        summary.params[sl] = result.params
        summary.prediction[:, sl] = result.prediction
        summary.converged[sl] = result.converged
        summary.covariance[sl] = covariance_from_normal(result.normal, result.rss, n)
    return summary


def _rss(data: np.ndarray, pred: np.ndarray) -> np.ndarray:
    resid = data - pred
    return np.einsum("nm,nm->m", resid, resid)


def jacobian_covariance(jac: np.ndarray, rss: np.ndarray) -> np.ndarray:
    """``sigma^2 (J^T W J)^-1`` per column, ``sigma^2 = rss / (n - p)``; NaN if ill-conditioned.

    Parameters
    ----------
    jac : ndarray of shape (p, n, m)
        Weighted Jacobian columns (``sqrt(w) x d prediction / d parameter``) on the
        fitted frames.
    rss : ndarray of shape (m,)
        Weighted residual sums of squares.

    Returns
    -------
    ndarray of shape (m, p, p)
    """
    return covariance_from_normal(_normal_matrix(jac), rss, jac.shape[1])


def covariance_from_normal(jtj: np.ndarray, rss: np.ndarray, n: int) -> np.ndarray:
    """``sigma^2 (J^T W J)^-1`` from the normal matrices, ``sigma^2 = rss / (n - p)``.

    Parameters
    ----------
    jtj : ndarray of shape (m, p, p)
        ``J^T W J`` per TAC.
    rss : ndarray of shape (m,)
        Weighted residual sums of squares.
    n : int
        Number of fitted frames.

    Returns
    -------
    ndarray of shape (m, p, p)
        NaN where the normal matrix, scaled to unit diagonal, is nearly singular
        (determinant below 1e-10: nearly dependent parameters).
    """
    m, p, _ = jtj.shape
    scale = np.sqrt(np.einsum("mpp->mp", jtj))
    with np.errstate(invalid="ignore", divide="ignore"):
        normed = jtj / (scale[:, :, None] * scale[:, None, :])
        adj, det = _adjugate(normed)
        good = np.isfinite(det) & (det > 1e-10)
        inv = np.full(normed.shape, np.nan)
        inv[good] = adj[good] / det[good, None, None]
        cov = inv / (scale[:, :, None] * scale[:, None, :])
        cov *= (rss / (n - p) if n > p else np.full(m, np.nan))[:, None, None]
    return cov


def _adjugate(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjugates and determinants of a stack of small matrices (closed form for p <= 3)."""
    p = a.shape[-1]
    if p == 1:
        return np.ones_like(a), a[:, 0, 0].copy()
    if p == 2:
        adj = np.empty_like(a)
        adj[:, 0, 0], adj[:, 1, 1] = a[:, 1, 1], a[:, 0, 0]
        adj[:, 0, 1], adj[:, 1, 0] = -a[:, 0, 1], -a[:, 1, 0]
        return adj, a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    if p == 3:
        adj = np.empty_like(a)
        for i in range(3):
            for k in range(3):
                i1, i2 = [x for x in range(3) if x != k]
                k1, k2 = [x for x in range(3) if x != i]
                adj[:, i, k] = (-1) ** (i + k) * (a[:, i1, k1] * a[:, i2, k2]
                                                  - a[:, i1, k2] * a[:, i2, k1])
        return adj, np.einsum("mk,mk->m", a[:, 0, :], adj[:, :, 0])
    det = np.linalg.det(a)
    safe = np.where(np.abs(det)[:, None, None] > 0, a, np.eye(p))
    return np.linalg.inv(safe) * det[:, None, None], det
