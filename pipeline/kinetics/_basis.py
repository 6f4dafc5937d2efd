"""Basis-function grid search for SRTM-type models, all TACs at once (private).

For each basis ``B_j`` (the reference convolved with ``exp(-theta_j t)``, frame-averaged)
the model ``C_T = a C_R + b B_j`` is linear; with weighted data ``y`` its best residual is
``|y|^2 - q_j`` where ``q_j`` is a quadratic form in ``(C_R . y, B_j . y)`` whose
coefficients depend on the basis only. So per chunk of TACs the work is one matrix product
``B^T y`` and a few elementwise operations on an ``(n_basis, chunk)`` array.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

__all__: list[str] = []

_CHUNK = 16384


def _grid_search(ref: np.ndarray, bases: np.ndarray, data: np.ndarray, sqrt_w: np.ndarray,
                 refine: bool = False):
    """Best basis per TAC for ``C_T = a C_R + b B_j`` by weighted least squares.

    Parameters
    ----------
    ref : ndarray of shape (n,)
        Reference TAC on the fitted frames.
    bases : ndarray of shape (n, n_basis)
        Basis functions on the fitted frames.
    data : ndarray of shape (n, m)
        Target TACs on the fitted frames (finite).
    sqrt_w : ndarray of shape (n,)
        Square roots of the frame weights.
    refine : bool
        Interpolate the residual by a parabola through the best basis and its neighbours,
        and the basis by the matching quadratic (Lagrange) blend.

    Returns
    -------
    best : ndarray of int, shape (m,)
        Index of the best basis (the centre of the blend when refined).
    offset : ndarray of shape (m,)
        Fractional grid offset in [-0.5, 0.5]; 0 without ``refine`` or at the grid edge.
    a, b : ndarray of shape (m,)
        Coefficients of ``C_R`` (R1) and of the (blended) basis.
    """
    r = ref * sqrt_w
    basis = bases * sqrt_w[:, None]
    n_basis = basis.shape[1]
    rr = float(r @ r)
    rb = r @ basis
    gram = basis.T @ basis
    bb = np.diag(gram).copy()
    det = rr * bb - rb * rb
    valid = det > 1e-12 * rr * bb
    safe_det = np.where(valid, det, 1.0)
    c1 = np.where(valid, bb / safe_det, 0.0)
    c2 = np.where(valid, -2.0 * rb / safe_det, 0.0)
    c3 = np.where(valid, rr / safe_det, 0.0)
    penalty = np.where(valid, 0.0, -np.inf)
    m = data.shape[1]
    best = np.zeros(m, dtype=int)
    offset = np.zeros(m)
    a = np.zeros(m)
    b = np.zeros(m)
    for lo in range(0, m, _CHUNK):
        y = data[:, lo:lo + _CHUNK] * sqrt_w[:, None]
        cols = np.arange(y.shape[1])
        ry = r @ y
        by = y.T @ basis  # (chunk, n_basis): the argmax runs along contiguous rows
        q = by * c3
        q += ry[:, None] * c2
        q *= by
        q += (ry * ry)[:, None] * c1
        q += penalty
        j = np.argmax(q, axis=1)
        sl = slice(lo, lo + y.shape[1])
        jc = np.clip(j, 1, n_basis - 2) if (refine and n_basis >= 3) else j
        d = np.zeros(y.shape[1])
        if refine and n_basis >= 3:
            qm, q0, qp = q[cols, jc - 1], q[cols, jc], q[cols, jc + 1]
            curv = qm - 2.0 * q0 + qp
            with np.errstate(invalid="ignore", divide="ignore"):
                d = np.where(curv < 0, 0.5 * (qm - qp) / curv, 0.0)
            d = np.where((j == jc) & np.isfinite(d), np.clip(d, -0.5, 0.5), 0.0)
            jc = np.where(j == jc, jc, j)
        lm, l0, lp = _lagrange(d)
        jm, jp = np.clip(jc - 1, 0, n_basis - 1), np.clip(jc + 1, 0, n_basis - 1)
        rbd = lm * rb[jm] + l0 * rb[jc] + lp * rb[jp]
        byd = lm * by[cols, jm] + l0 * by[cols, jc] + lp * by[cols, jp]
        bbd = (lm * lm * bb[jm] + l0 * l0 * bb[jc] + lp * lp * bb[jp]
               + 2.0 * (lm * l0 * gram[jm, jc] + lm * lp * gram[jm, jp]
                        + l0 * lp * gram[jc, jp]))
        detd = rr * bbd - rbd * rbd
        with np.errstate(invalid="ignore", divide="ignore"):
            a[sl] = (bbd * ry - rbd * byd) / detd
            b[sl] = (rr * byd - rbd * ry) / detd
        best[sl] = jc
        offset[sl] = d
    return best, offset, a, b


def _lagrange(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadratic Lagrange weights of the nodes -1, 0, 1 at offsets ``d``."""
    return 0.5 * d * (d - 1.0), 1.0 - d * d, 0.5 * d * (d + 1.0)


def _blend(values: np.ndarray, best: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Columns ``values[:, best]`` moved by the fractional ``offset`` (quadratic blend).

    Computed as one sparse product (three weights per output column).
    """
    n_basis = values.shape[1]
    m = best.size
    lm, l0, lp = _lagrange(offset)
    rows = np.concatenate([np.clip(best - 1, 0, n_basis - 1), best,
                           np.clip(best + 1, 0, n_basis - 1)])
    cols = np.tile(np.arange(m), 3)
    mix = sparse.csr_matrix((np.concatenate([lm, l0, lp]), (cols, rows)), shape=(m, n_basis))
    return (mix @ values.T).T


def _grid_rate(thetas: np.ndarray, best: np.ndarray, offset: np.ndarray,
               spacing: str) -> np.ndarray:
    """Rates at fractional grid positions (log-linear for log spacing)."""
    pos = best + offset
    grid = np.arange(thetas.size)
    if spacing == "log":
        return np.exp(np.interp(pos, grid, np.log(thetas)))
    return np.interp(pos, grid, thetas)
