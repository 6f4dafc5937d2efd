"""Pieces shared by SRTM, basis-function SRTM and SRTM2 (private).

Input checks, the SRTM Jacobian in (R1, k2, BP_ND), standard errors, and the last step of
every SRTM-family fit (:func:`finish_fit`, which hands the estimates to
:func:`~pipeline.kinetics.result.make_fit`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.frames import Frames
from pipeline.kinetics._basis import GridFit, blend_columns, blended_gram
from pipeline.kinetics._inputs import PreparedInputs, check_starts_at_injection, prepare_inputs
from pipeline.kinetics._lm import covariance_from_normal
from pipeline.kinetics.result import ModelFit, make_fit

__all__ = ["clean_data", "finish_fit", "full_frames", "on_bound", "prepare_srtm",
           "srtm_columns", "srtm_jacobian", "srtm_se_from_cov", "srtm_standard_errors",
           "weighted_rss", "window_text"]


def prepare_srtm(frames: Frames, ref_tac, tacs, window, weights, model: str,
                 min_frames: int = 4) -> PreparedInputs:
    """:func:`prepare_inputs` plus the SRTM-family check that the scan starts at injection."""
    check_starts_at_injection(frames, model)
    return prepare_inputs(frames, ref_tac, tacs, window=window, weights=weights,
                          min_frames=min_frames, model=model)


def clean_data(prep: PreparedInputs) -> np.ndarray:
    """Target TACs on the fitted frames with degenerate TACs zeroed (they are masked later)."""
    return prep.clean_tacs()[prep.used]


def srtm_columns(ref: np.ndarray, x: np.ndarray, dx: np.ndarray, r1: np.ndarray,
                 k2: np.ndarray, bp: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Prediction and Jacobian columns d/d(R1, k2, BP_ND), each (n, m).

    ``x`` is the frame-averaged convolution of the reference with exp(-k2a t) and ``dx``
    its derivative with respect to k2a = k2 / (1 + BP_ND).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        k2a = k2 / (1.0 + bp)
        amp = k2 - r1 * k2a
        pred = r1 * ref[:, None] + amp * x
        d_rate = amp * dx - r1 * x  # d pred / d k2a
        return pred, [ref[:, None] - k2a * x, x + d_rate / (1.0 + bp),
                      -d_rate * (k2a / (1.0 + bp))]


def srtm_jacobian(ref, x, dx, r1, k2, bp) -> tuple[np.ndarray, np.ndarray]:
    """Prediction (n, m) and Jacobian (3, n, m) in (R1, k2, BP_ND), for the optimizer.

    As :func:`srtm_columns`, written straight into the stacked Jacobian.
    """
    jac = np.empty((3, *x.shape))
    with np.errstate(invalid="ignore", divide="ignore"):
        per = 1.0 / (1.0 + bp)
        k2a = k2 * per
        amp = k2 - r1 * k2a
        pred = amp * x
        pred += r1 * ref[:, None]
        d_rate = np.multiply(amp, dx, out=jac[2])
        d_rate -= r1 * x  # d pred / d k2a
        np.multiply(k2a, x, out=jac[0])
        np.subtract(ref[:, None], jac[0], out=jac[0])
        np.multiply(d_rate, per, out=jac[1])
        jac[1] += x
        d_rate *= -(k2a * per)
    return pred, jac


def weighted_rss(data: np.ndarray, fitted: np.ndarray, sqrt_w: np.ndarray) -> np.ndarray:
    """Weighted residual sum of squares per TAC (fitted frames)."""
    resid = (data - fitted) * sqrt_w[:, None]
    return np.einsum("nm,nm->m", resid, resid)


def srtm_standard_errors(ref: np.ndarray, bases: np.ndarray, slopes: np.ndarray,
                         sqrt_w: np.ndarray, grid: GridFit, rss: np.ndarray,
                         r1: np.ndarray, k2: np.ndarray, bp: np.ndarray
                         ) -> dict[str, np.ndarray]:
    """SEs of R1, k2, BP_ND of a basis-function fit, k2' by the delta method.

    The Jacobian columns d/d(R1, k2, BP_ND) are combinations of three vectors: ``C_R``,
    the blended basis ``x`` and its rate derivative ``dx`` (see :func:`srtm_columns`).
    So ``J^T W J = M^T G M`` with ``M`` the 3 x 3 combination of each TAC and ``G`` the
    weighted inner products of those vectors, which are blends of the grid's inner
    products: no (frames x TACs) array is formed.

    Parameters
    ----------
    ref, bases, slopes : ndarray
        Reference (n,), basis functions and their rate derivatives (n, n_basis), on the
        fitted frames.
    sqrt_w : ndarray of shape (n,)
    grid : GridFit
        Each TAC's basis position.
    rss : ndarray of shape (m,)
        Weighted residual sums of squares.
    r1, k2, bp : ndarray of shape (m,)
    """
    r = ref * sqrt_w
    wb = bases * sqrt_w[:, None]
    ws = slopes * sqrt_w[:, None]
    best, offset = grid.best, grid.offset
    g = np.empty((best.size, 3, 3))
    g[:, 0, 0] = float(r @ r)
    g[:, 0, 1] = g[:, 1, 0] = blend_columns((r @ wb)[None, :], best, offset)[0]
    g[:, 0, 2] = g[:, 2, 0] = blend_columns((r @ ws)[None, :], best, offset)[0]
    g[:, 1, 1] = blended_gram(wb.T @ wb, best, offset)
    g[:, 1, 2] = g[:, 2, 1] = blended_gram(wb.T @ ws, best, offset)
    g[:, 2, 2] = blended_gram(ws.T @ ws, best, offset)
    with np.errstate(invalid="ignore", divide="ignore"):
        k2a = k2 / (1.0 + bp)
        amp = k2 - r1 * k2a
        per = 1.0 / (1.0 + bp)
        comb = np.zeros((best.size, 3, 3))  # rows: C_R, x, dx; columns: R1, k2, BP_ND
        comb[:, 0, 0] = 1.0
        comb[:, 1, 0] = -k2a
        comb[:, 1, 1] = 1.0 - r1 * per
        comb[:, 2, 1] = amp * per
        comb[:, 1, 2] = r1 * k2a * per
        comb[:, 2, 2] = -amp * k2a * per
        jtj = np.einsum("mip,mij,mjq->mpq", comb, g, comb, optimize=True)
    return srtm_se_from_cov(covariance_from_normal(jtj, rss, ref.size), r1, k2)


def srtm_se_from_cov(cov: np.ndarray, r1: np.ndarray, k2: np.ndarray) -> dict[str, np.ndarray]:
    """SEs from the (R1, k2, BP_ND) covariance; k2' = k2 / R1 by the delta method."""
    with np.errstate(invalid="ignore", divide="ignore"):
        se = {"r1": np.sqrt(cov[:, 0, 0]), "k2": np.sqrt(cov[:, 1, 1]),
              "bp_nd": np.sqrt(cov[:, 2, 2])}
        g_r1, g_k2 = -k2 / (r1 * r1), 1.0 / r1
        var = g_r1 ** 2 * cov[:, 0, 0] + 2 * g_r1 * g_k2 * cov[:, 0, 1] + g_k2 ** 2 * cov[:, 1, 1]
        se["k2prime"] = np.sqrt(np.maximum(var, 0.0))
    return se


def full_frames(prep: PreparedInputs, prediction_used: np.ndarray) -> np.ndarray:
    """A prediction on the fitted frames spread to all frames (NaN elsewhere)."""
    fitted = np.full((prep.used.size, prediction_used.shape[1]), np.nan)
    fitted[prep.used] = prediction_used
    return fitted


def on_bound(params: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """TACs with any parameter within 1e-6 (relative) of a bound."""
    tol_lo = 1e-6 * (1.0 + np.abs(lower))
    tol_hi = 1e-6 * (1.0 + np.abs(upper))
    return np.any((params - lower <= tol_lo) | (upper - params <= tol_hi), axis=1)


def window_text(window) -> str:
    """Methods-text phrase for a fit window (minutes)."""
    if not window or all(v is None for v in window):
        return " over the whole scan"
    start = "injection" if window[0] is None else f"{float(window[0]):g} min"
    end = "the end of the scan" if window[1] is None else f"{float(window[1]):g} min"
    return f" over frames with mid-times from {start} to {end}"


def finish_fit(model: str, prep: PreparedInputs, r1, k2, bp, fitted, se, flags,
               options: dict[str, Any], k2prime=None) -> ModelFit:
    """The :class:`ModelFit` of an SRTM-family fit, with the ``large_se`` flag.

    k2' is ``k2 / R1`` unless a fixed ``k2prime`` is given. A fit whose BP_ND standard
    error exceeds ``1 + |BP_ND|`` (or is undefined) is flagged ``large_se``: the data do
    not determine it.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        k2p = k2 / r1 if k2prime is None else k2prime
        if se and "bp_nd" in se:  # estimate not determined by the data (flat residual valley)
            spread = np.asarray(se["bp_nd"], float)
            flags = [*flags, ("large_se", ~(spread <= 1.0 + np.abs(np.asarray(bp, float))))]
    return make_fit(model, prep, bp_nd=bp, r1=r1, k2=k2, k2prime=k2p, se=se, fitted=fitted,
                    flags=flags, options=options)
