"""Pieces shared by SRTM, basis-function SRTM and SRTM2 (private).

Input checks, the SRTM Jacobian in (R1, k2, BP_ND), standard errors, and building the
:class:`~pipeline.kinetics.base.ModelFit` with masks, flags and fit quality.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import InputError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics._lm import _covariance
from pipeline.kinetics.base import ModelFit, PreparedInputs, fit_quality, join_flags, prepare_inputs

__all__: list[str] = []

#: SRTM-family models need the reference from injection: latest first-frame start, minutes.
MAX_FIRST_FRAME_START = 2.0


def _prepare(frames: Frames, ref_tac, tacs, window, weights, model: str,
             min_frames: int = 4) -> PreparedInputs:
    """:func:`prepare_inputs` plus the SRTM-family check that the scan starts at injection."""
    if frames.start[0] > MAX_FIRST_FRAME_START:
        raise InputError(format_problem(
            frames.source or None,
            f"{model}: the first frame starts {frames.start[0]:g} min after injection; "
            "reference-tissue models integrate the reference TAC from injection",
            "Fit a scan that starts at injection (this looks like a late or second "
            "acquisition; combine it with the first part of the scan)."))
    return prepare_inputs(frames, ref_tac, tacs, window=window, weights=weights,
                          min_frames=min_frames, model=model)


def _clean_data(prep: PreparedInputs) -> np.ndarray:
    """Target TACs on the fitted frames with bad TACs zeroed (they are masked later)."""
    data = prep.tacs[prep.used]
    if prep.bad_tacs.any():
        data = np.where(prep.bad_tacs, 0.0, data)
    return data


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


def _window_option(window):
    return None if window is None else [None if v is None else float(v) for v in window]


def _finish(model: str, prep: PreparedInputs, r1, k2, bp, fitted, se, flags,
            options: dict[str, Any], k2prime=None, extra=None) -> ModelFit:
    """Mask bad TACs, add fit quality and flags, and build the :class:`ModelFit`.

    TACs with NaN in fitted frames (``nan_input``) or all zero (``zero_input``, e.g.
    voxels outside the head) get NaN estimates; ``fitted`` is NaN outside the fit. A fit
    whose BP_ND standard error exceeds ``1 + |BP_ND|`` (or is undefined) is flagged
    ``large_se``: the data do not determine it.
    """
    bad = prep.bad_tacs
    zero = ~bad & ~np.any(_clean_data(prep) != 0.0, axis=0)
    void = bad | zero
    n = bad.size

    def clean(v):
        v = np.asarray(v, float)
        return np.where(void, np.nan, v) if void.any() else v

    with np.errstate(invalid="ignore", divide="ignore"):
        k2p = clean(k2 / r1) if k2prime is None else clean(np.full(n, float(k2prime)))
        k2a = clean(k2 / (1.0 + bp))
    keep = prep.used[:, None] & ~void[None, :]
    quality = fit_quality(prep, np.where(keep, fitted, 0.0))
    fitted[~keep] = np.nan
    extra = {key: clean(value) for key, value in (extra or {}).items()}
    extra.update({"k2a": k2a, "rmse": clean(quality["rmse"]),
                  "nrmse": clean(quality["nrmse"])})
    if se and "bp_nd" in se:  # estimate not determined by the data (flat residual valley)
        with np.errstate(invalid="ignore"):
            spread = np.asarray(se["bp_nd"], float)
            flags = [*flags, ("large_se", ~(spread <= 1.0 + np.abs(np.asarray(bp, float))))]
    masked = [(name, np.asarray(mask, bool) & ~void) for name, mask in flags]
    all_flags = join_flags(("nan_input", bad), ("zero_input", zero), *masked, n=n)
    options = {"window": _window_option(options.pop("window", None)),
               "weights": "given" if np.ptp(prep.weights[prep.used]) > 0 else "uniform",
               "frame_weights": [float(v) for v in prep.weights], **options}
    return ModelFit(model=model, bp_nd=clean(bp), r1=clean(r1), k2=clean(k2), k2prime=k2p,
                    se={key: clean(value) for key, value in (se or {}).items()},
                    fitted=fitted, used=prep.used.copy(), flags=all_flags,
                    options=options, extra=extra)
