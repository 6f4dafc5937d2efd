"""Basis-function grid search for SRTM-type models, all TACs at once (private).

For each basis ``B_j`` (the reference convolved with ``exp(-theta_j t)``, frame-averaged)
the model ``C_T = a C_R + b B_j`` is linear. Its weighted fit explains ``|P_r y|^2`` (the
projection on ``C_R``, the same for every basis) plus ``(u_j . y)^2``, where ``u_j`` is
``B_j`` made orthogonal to ``C_R`` and scaled to unit length. So the best basis of every
TAC in a chunk comes from one matrix product ``Y^T U``, one square and one argmax; the
refinement between grid points (a parabola through the best value and its neighbours,
and the matching quadratic blend of the bases) needs only the three neighbouring values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GridFit", "blend_columns", "blended_gram", "grid_rate", "grid_search"]

_CHUNK = 4096


@dataclass
class GridFit:
    """Best (refined) basis per TAC and the coefficients of ``C_T = a C_R + b B``.

    Attributes
    ----------
    best : ndarray of int, shape (m,)
        Centre of the three-basis blend (the best basis, moved off the grid edge).
    offset : ndarray of shape (m,)
        Fractional grid offset in [-0.5, 0.5]; 0 without refinement or at the grid edge.
    edge : ndarray of bool, shape (m,)
        The best basis is the first or last of the grid.
    a, b : ndarray of shape (m,)
        Coefficients of ``C_R`` (R1) and of the (blended) basis.
    """

    best: np.ndarray
    offset: np.ndarray
    edge: np.ndarray
    a: np.ndarray
    b: np.ndarray


def _lagrange(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadratic Lagrange weights of the nodes -1, 0, 1 at offsets ``d``."""
    return 0.5 * d * (d - 1.0), 1.0 - d * d, 0.5 * d * (d + 1.0)


def _neighbours(best: np.ndarray, n_basis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grid indices of the blend's three nodes (clipped at the grid ends)."""
    return np.clip(best - 1, 0, n_basis - 1), best, np.clip(best + 1, 0, n_basis - 1)


def grid_search(ref: np.ndarray | None, bases: np.ndarray, data: np.ndarray,
                sqrt_w: np.ndarray, refine: bool = False, start_only: bool = False) -> GridFit:
    """Best basis per TAC for ``C_T = a C_R + b B_j`` by weighted least squares.

    Parameters
    ----------
    ref : ndarray of shape (n,) or None
        Reference TAC on the fitted frames; None fits ``C_T = b B_j`` (``a`` is 0).
    bases : ndarray of shape (n, n_basis)
        Basis functions on the fitted frames.
    data : ndarray of shape (n, m)
        Target TACs on the fitted frames (finite).
    sqrt_w : ndarray of shape (n,)
        Square roots of the frame weights.
    refine : bool
        Interpolate the residual by a parabola through the best basis and its neighbours,
        and the basis by the matching quadratic (Lagrange) blend.
    start_only : bool, default=False
        The result only starts an iterative fit: the projections ``u_j . y`` (the bulk of
        the work) are computed in float32, about twice as fast; the coefficients then
        carry relative errors of order 1e-6, which the iterations remove.

    Returns
    -------
    GridFit
    """
    basis = bases * sqrt_w[:, None]
    n_basis = basis.shape[1]
    if ref is None:  # C_T = b B_j: no shared regressor
        r, rr = np.zeros(basis.shape[0]), 1.0
    else:
        r = ref * sqrt_w
        rr = float(r @ r)
    rb = r @ basis
    gram = basis.T @ basis
    bb = np.diag(gram).copy()
    # B_j orthogonal to C_R, unit length; bases (nearly) parallel to C_R never win
    ortho = basis - np.outer(r, rb / rr)
    norm2 = bb - rb * rb / rr
    valid = norm2 > 1e-12 * bb
    norm = np.sqrt(np.where(valid, norm2, 1.0))
    unit = np.where(valid, ortho / norm, 0.0)
    if start_only:
        unit = unit.astype(np.float32)
    m = data.shape[1]
    best = np.zeros(m, dtype=np.intp)
    offset = np.zeros(m)
    a = np.zeros(m)
    b = np.zeros(m)
    edge = np.zeros(m, dtype=bool)
    do_refine = refine and n_basis >= 3
    for lo in range(0, m, _CHUNK):
        y = data[:, lo:lo + _CHUNK] * sqrt_w[:, None]
        cols = np.arange(y.shape[1])
        ry = r @ y
        # (chunk, n_basis): the argmax runs along contiguous rows
        uy = (y.T.astype(np.float32) if start_only else y.T) @ unit
        j = np.argmax(uy * uy, axis=1)
        sl = slice(lo, lo + y.shape[1])
        edge[sl] = (j == 0) | (j == n_basis - 1)
        jc = np.clip(j, 1, n_basis - 2) if do_refine else j
        d = np.zeros(y.shape[1])
        if do_refine:
            qm, q0, qp = (uy[cols, jc - 1] ** 2, uy[cols, jc] ** 2, uy[cols, jc + 1] ** 2)
            curv = qm - 2.0 * q0 + qp
            with np.errstate(invalid="ignore", divide="ignore"):
                d = np.where(curv < 0, 0.5 * (qm - qp) / curv, 0.0)
            d = np.where((j == jc) & np.isfinite(d), np.clip(d, -0.5, 0.5), 0.0)
            jc = np.where(j == jc, jc, j)
        lm, l0, lp = _lagrange(d)
        jm, _, jp = _neighbours(jc, n_basis)

        def basis_y(idx, cols=cols, uy=uy, ry=ry):  # B_j . y from u_j . y
            return norm[idx] * uy[cols, idx] + (rb[idx] / rr) * ry

        rbd = lm * rb[jm] + l0 * rb[jc] + lp * rb[jp]
        byd = lm * basis_y(jm) + l0 * basis_y(jc) + lp * basis_y(jp)
        bbd = (lm * lm * bb[jm] + l0 * l0 * bb[jc] + lp * lp * bb[jp]
               + 2.0 * (lm * l0 * gram[jm, jc] + lm * lp * gram[jm, jp]
                        + l0 * lp * gram[jc, jp]))
        detd = rr * bbd - rbd * rbd
        with np.errstate(invalid="ignore", divide="ignore"):
            a[sl] = (bbd * ry - rbd * byd) / detd
            b[sl] = (rr * byd - rbd * ry) / detd
        best[sl] = jc
        offset[sl] = d
    return GridFit(best, offset, edge, a, b)


def blend_columns(values: np.ndarray, best: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Columns ``values[:, best]`` moved by the fractional ``offset`` (quadratic blend)."""
    jm, jc, jp = _neighbours(best, values.shape[1])
    lm, l0, lp = _lagrange(offset)
    return values[:, jm] * lm + values[:, jc] * l0 + values[:, jp] * lp


def blended_gram(gram: np.ndarray, best: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """``sum_k sum_l w_k w_l gram[j_k, j_l]`` over the blend's nodes and weights, per TAC.

    With ``gram = P^T W Q`` of two sets of grid columns, this is the weighted inner product
    of their blends at each TAC's position, without forming the blends.
    """
    nodes = _neighbours(best, gram.shape[0])
    weights = _lagrange(offset)
    out = np.zeros(best.size)
    for wk, jk in zip(weights, nodes, strict=True):
        for wl, jl in zip(weights, nodes, strict=True):
            out += wk * wl * gram[jk, jl]
    return out


def grid_rate(thetas: np.ndarray, best: np.ndarray, offset: np.ndarray,
              spacing: str) -> np.ndarray:
    """Rates at fractional grid positions (log-linear for log spacing)."""
    pos = best + offset
    grid = np.arange(thetas.size)
    if spacing == "log":
        return np.exp(np.interp(pos, grid, np.log(thetas)))
    return np.interp(pos, grid, thetas)
