"""Pieces shared by SRTM, basis-function SRTM and SRTM2 (private).

Input checks, the SRTM Jacobian in (R1, k2, BP_ND), standard errors, and the last step of
every SRTM-family fit (:func:`_finish`, which hands the estimates to
:func:`~pipeline.kinetics.result.make_fit`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.frames import Frames
from pipeline.kinetics._inputs import PreparedInputs, check_starts_at_injection, prepare_inputs
from pipeline.kinetics._lm import _covariance
from pipeline.kinetics.result import ModelFit, make_fit

__all__: list[str] = []


def _prepare(frames: Frames, ref_tac, tacs, window, weights, model: str,
             min_frames: int = 4) -> PreparedInputs:
    """:func:`prepare_inputs` plus the SRTM-family check that the scan starts at injection."""
    check_starts_at_injection(frames, model)
    return prepare_inputs(frames, ref_tac, tacs, window=window, weights=weights,
                          min_frames=min_frames, model=model)


def _clean_data(prep: PreparedInputs) -> np.ndarray:
    """Target TACs on the fitted frames with degenerate TACs zeroed (they are masked later)."""
    return prep.clean_tacs()[prep.used]


def _srtm_columns(ref: np.ndarray, x: np.ndarray, dx: np.ndarray, r1: np.ndarray,
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


def _srtm_jacobian(ref, x, dx, r1, k2, bp) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`_srtm_columns`, with the Jacobian stacked to (n, m, 3) for the optimizer."""
    pred, cols = _srtm_columns(ref, x, dx, r1, k2, bp)
    return pred, np.stack(cols, axis=-1)


def _rss(prep: PreparedInputs, fitted_used: np.ndarray) -> np.ndarray:
    sw = np.sqrt(prep.weights[prep.used])
    resid = (_clean_data(prep) - fitted_used) * sw[:, None]
    return np.einsum("nm,nm->m", resid, resid)


def _srtm_standard_errors(prep: PreparedInputs, fitted: np.ndarray,
                          columns: list[np.ndarray], r1: np.ndarray,
                          k2: np.ndarray) -> dict[str, np.ndarray]:
    """SEs of R1, k2, BP_ND from the Jacobian columns (fitted frames), k2' by the delta method."""
    used = prep.used
    cov = _covariance(columns, np.sqrt(prep.weights[used]), _rss(prep, fitted[used]))
    return _srtm_se_from_cov(cov, r1, k2)


def _srtm_se_from_cov(cov: np.ndarray, r1: np.ndarray, k2: np.ndarray) -> dict[str, np.ndarray]:
    """SEs from the (R1, k2, BP_ND) covariance; k2' = k2 / R1 by the delta method."""
    with np.errstate(invalid="ignore", divide="ignore"):
        se = {"r1": np.sqrt(cov[:, 0, 0]), "k2": np.sqrt(cov[:, 1, 1]),
              "bp_nd": np.sqrt(cov[:, 2, 2])}
        g_r1, g_k2 = -k2 / (r1 * r1), 1.0 / r1
        var = g_r1 ** 2 * cov[:, 0, 0] + 2 * g_r1 * g_k2 * cov[:, 0, 1] + g_k2 ** 2 * cov[:, 1, 1]
        se["k2prime"] = np.sqrt(np.maximum(var, 0.0))
    return se


def _full_frames(prep: PreparedInputs, prediction_used: np.ndarray) -> np.ndarray:
    """A prediction on the fitted frames spread to all frames (NaN elsewhere)."""
    fitted = np.full((prep.used.size, prediction_used.shape[1]), np.nan)
    fitted[prep.used] = prediction_used
    return fitted


def _at_bound(params: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """TACs with any parameter within 1e-6 (relative) of a bound."""
    tol_lo = 1e-6 * (1.0 + np.abs(lower))
    tol_hi = 1e-6 * (1.0 + np.abs(upper))
    return np.any((params - lower <= tol_lo) | (upper - params <= tol_hi), axis=1)


def _window_text(window) -> str:
    """Methods-text phrase for a fit window (minutes)."""
    if not window or all(v is None for v in window):
        return " over the whole scan"
    start = "injection" if window[0] is None else f"{float(window[0]):g} min"
    end = "the end of the scan" if window[1] is None else f"{float(window[1]):g} min"
    return f" over frames with mid-times from {start} to {end}"


def _finish(model: str, prep: PreparedInputs, r1, k2, bp, fitted, se, flags,
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
