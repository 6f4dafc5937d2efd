"""Multilinear reference tissue models MRTM and MRTM2 (Ichise et al. 2003).

Integrating the SRTM differential equation from injection gives, for frames after t*,

``C_T(t) = g1 int_0^t C_R + g2 int_0^t C_T + g3 C_R(t)``

with ``g1 = k2``, ``g2 = -k2a = -k2 / (1 + BP_ND)`` and ``g3 = R1`` (MRTM, three
parameters), so ``BP_ND = -g1 / g2 - 1`` and ``k2' = g1 / g3``. MRTM2 fixes k2' and
regresses on two terms, ``C_T = g1 (int C_R + C_R / k2') + g2 int C_T``, with
``R1 = g1 / k2'``. Integrals always start at injection and run over every frame (also
frames outside the fit window); only the regression rows are restricted to the window
and to frames whose mid-time is at or after t*. Terms are frame averages (see
:func:`pipeline.kinetics._linear.frame_integral_operator`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import ConfigError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics._linear import (
    frame_integral_operator,
    prepare_linear,
    row_selector,
    weighted_least_squares,
)
from pipeline.kinetics.result import ModelFit, join_flags, make_fit

__all__ = ["BP_PLAUSIBLE", "describe", "fit_mrtm", "fit_mrtm2"]

#: BP_ND range outside which an MRTM estimate is replaced by basis-function SRTM's.
BP_PLAUSIBLE: tuple[float, float] = (-0.5, 15.0)


def _regression(prep, data: np.ndarray, reference_terms):
    """Weighted regression of C_T on ``[first reference term, int C_T, other terms]``.

    ``reference_terms(op, rows)`` gives the reference regressors on the fitted rows from
    the frame-integral operator ``op`` (rows already selected). Returns ``rows`` and the
    outputs of :func:`weighted_least_squares`.
    """
    rows = row_selector(prep.used)
    op = frame_integral_operator(prep.frames)[rows]
    first, *others = reference_terms(op, rows)
    beta, cov, fitted_rows, singular = weighted_least_squares(
        [first, op @ data, *others], data[rows], prep.weights[rows])
    return rows, beta, cov, fitted_rows, singular


def _binding(g1, g2, cov, singular):
    """BP_ND = g1 / k2a - 1 with k2a = -g2 (NaN where k2a <= 0), and its delta-method
    variance from the covariance of (g1, g2) (its first two rows)."""
    k2a = -g2
    nonphysical = ~singular & ~(k2a > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(nonphysical, np.nan, g1 / k2a - 1.0)
        grad1, grad2 = -1.0 / g2, g1 / g2**2
        var_bp = grad1**2 * cov[0, 0] + 2 * grad1 * grad2 * cov[0, 1] + grad2**2 * cov[1, 1]
    return bp, k2a, nonphysical, var_bp


def _fitted_and_flags(n_frames: int, rows, values: np.ndarray, singular, nonphysical):
    """Fitted curve on all frames (NaN outside the fit and for singular TACs) and the
    model's flags ``singular``, ``nonphysical`` (degenerate TACs are flagged by make_fit)."""
    out = np.full((n_frames, values.shape[1]), np.nan)
    out[rows] = values
    out[:, singular] = np.nan
    flags = join_flags(singular.size, {"singular": singular, "nonphysical": nonphysical})
    return out, flags


def fit_mrtm(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
             window: tuple[float | None, float | None] | None = None, t_star: float = 0.0,
             weights: np.ndarray | None = None) -> ModelFit:
    """Fit MRTM (Ichise et al. 2003, three parameters) to one or many target TACs.

    Parameters
    ----------
    frames : Frames
        Frame start and end times, minutes. Data must be decay-corrected.
    ref_tac : ndarray of shape (n_frames,)
        Reference-region activity, Bq/mL.
    tacs : ndarray of shape (n_frames,) or (n_frames, n_tacs)
        Target activity, Bq/mL; one column per region or voxel.
    window : (start, end), default=None
        Minutes; only frames whose mid-time lies inside are fitted. Integrals still start
        at injection and use every frame.
    t_star : float, default=0.0
        Minutes; frames with an earlier mid-time are not fitted. 0 suits targets that
        follow one-tissue kinetics; use 10-30 min for slow two-tissue targets.
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights; None means equal weights.

    Returns
    -------
    ModelFit
        ``bp_nd``, ``r1`` (unitless), ``k2`` and ``k2prime`` (1/min) per TAC with
        standard errors (``se``; regression-based, they ignore noise in the integral
        regressor). Flags: degenerate input (``nan_input``, ``zero_input``,
        ``constant_input``), ``singular``, ``nonphysical`` (no net washout, k2a <= 0:
        MRTM's BP_ND is undefined).
        Where k2a <= 0 or BP_ND lies outside :data:`BP_PLAUSIBLE` (noisy low-binding
        TACs, whose regressors are nearly collinear), every estimate comes from
        basis-function SRTM on the same frames (flag ``bf_fallback``, plus its own flags).

    Raises
    ------
    InputError
        If shapes disagree, the reference holds NaN or is zero, t* lies past the last
        frame, or fewer than 4 frames are fitted.
    """
    prep, data, bad = prepare_linear(frames, ref_tac, tacs, window=window, t_star=t_star,
                                     weights=weights, min_frames=4, model="mrtm")
    rows, beta, cov, fitted_rows, singular = _regression(
        prep, data, lambda op, rows: [op @ prep.ref_tac, prep.ref_tac[rows]])
    g1, g2, g3 = beta
    bp, k2a, nonphysical, var_bp = _binding(g1, g2, cov, singular)
    with np.errstate(divide="ignore", invalid="ignore"):
        k2p = g1 / g3
        h1, h3 = 1.0 / g3, -g1 / g3**2
        var_k2p = h1**2 * cov[0, 0] + 2 * h1 * h3 * cov[0, 2] + h3**2 * cov[2, 2]
    invalid = bad | singular
    for arr in (bp, g1, g3, k2p, k2a, var_bp, var_k2p):
        arr[invalid] = np.nan
    se = {"bp_nd": np.sqrt(var_bp), "r1": np.sqrt(cov[2, 2]), "k2": np.sqrt(cov[0, 0]),
          "k2prime": np.sqrt(var_k2p)}
    for v in se.values():
        v[invalid | nonphysical] = np.nan
    fitted, flags = _fitted_and_flags(frames.n_frames, rows, fitted_rows, singular,
                                      nonphysical)
    with np.errstate(invalid="ignore"):
        redo = ~invalid & (nonphysical | ~((bp >= BP_PLAUSIBLE[0]) & (bp <= BP_PLAUSIBLE[1])))
    if redo.any():
        _basis_fallback(redo, prep, data, window, t_star, weights, (bp, g3, g1, k2p, k2a),
                        se, fitted, flags)
    return make_fit("mrtm", prep, bp_nd=bp, r1=g3, k2=g1, k2prime=k2p, se=se, fitted=fitted,
                    flags=flags, options={"window": window, "t_star": t_star},
                    extra={"k2a": k2a})


def _basis_fallback(redo, prep, data, window, t_star, weights, estimates, se, fitted,
                    flags) -> None:
    """Refit TACs ``redo`` by basis-function SRTM (the same model, bounded k2a), in place.

    MRTM's three regressors are nearly collinear for low-binding noisy TACs, so k2a can
    come out <= 0 or near 0 (BP_ND undefined or huge); the basis-function fit of the same
    model restricts k2a to a plausible grid and gives a finite estimate.
    """
    from pipeline.kinetics.srtm import fit_srtm_bf

    idx = np.flatnonzero(redo)
    start = t_star or None
    if window is not None and window[0] is not None:
        start = max(float(window[0]), start or 0.0)
    span = None if start is None and window is None else (
        start, None if window is None else window[1])
    alt = fit_srtm_bf(prep.frames, prep.ref_tac, data[:, idx], window=span, weights=weights)
    bp, r1, k2, k2p, k2a = estimates
    bp[idx], r1[idx], k2[idx] = alt.bp_nd, alt.r1, alt.k2
    k2p[idx], k2a[idx] = alt.k2prime, alt.extra["k2a"]
    for key in se:
        se[key][idx] = alt.se.get(key, np.nan)
    fitted[:, idx] = alt.fitted
    flags[idx] = [";".join(filter(None, (old, "bf_fallback", new)))
                  for old, new in zip(flags[idx], alt.flags, strict=True)]


def fit_mrtm2(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
              k2prime: float | None = None,
              window: tuple[float | None, float | None] | None = None, t_star: float = 0.0,
              weights: np.ndarray | None = None) -> ModelFit:
    """Fit MRTM2 (Ichise et al. 2003) with a fixed k2' to one or many target TACs.

    Parameters
    ----------
    frames, ref_tac, tacs
        Frame timing (minutes), reference and target TACs (Bq/mL): see :func:`fit_mrtm`.
    k2prime : float
        Reference efflux rate constant, 1/min, e.g. from
        :func:`pipeline.kinetics.k2prime.k2prime_from_mrtm`.
    window, t_star, weights
        As in :func:`fit_mrtm`.

    Returns
    -------
    ModelFit
        ``bp_nd``, ``r1`` (unitless) and ``k2`` (1/min) per TAC with standard errors;
        ``k2prime`` repeats the value used (its standard error is NaN).

    Raises
    ------
    ConfigError
        If ``k2prime`` is missing or not a positive number.
    InputError
        If shapes disagree, the reference holds NaN or is zero, t* lies past the last
        frame, or fewer than 3 frames are fitted.

    Examples
    --------
    >>> from pipeline.frames import Frames
    >>> from pipeline.simulate.compartments import srtm_consistent_tacs
    >>> frames = Frames(np.arange(0, 90, 5.0), np.arange(5, 95, 5.0))
    >>> ref, tacs = srtm_consistent_tacs(frames, [1.5], r1=1.1, k2prime=0.12)
    >>> fit = fit_mrtm2(frames, ref, tacs, k2prime=0.12)
    >>> print(f"{fit.bp_nd[0]:.2f} {fit.r1[0]:.2f}")
    1.50 1.10
    """
    if k2prime is None or not np.isfinite(k2prime) or k2prime <= 0:
        raise ConfigError(format_problem(
            None, f"mrtm2: k2prime must be a positive number (1/min); got {k2prime!r}",
            "Give --k2prime VALUE, or estimate it with MRTM over high-binding regions "
            "(k2prime_from_mrtm)."))
    k2prime = float(k2prime)
    prep, data, bad = prepare_linear(frames, ref_tac, tacs, window=window, t_star=t_star,
                                     weights=weights, min_frames=3, model="mrtm2")
    rows, beta, cov, fitted_rows, singular = _regression(
        prep, data, lambda op, rows: [op @ prep.ref_tac + prep.ref_tac[rows] / k2prime])
    g1, g2 = beta
    bp, k2a, nonphysical, var_bp = _binding(g1, g2, cov, singular)
    invalid = bad | singular
    for arr in (bp, g1, k2a, var_bp):
        arr[invalid] = np.nan
    se = {"bp_nd": np.sqrt(var_bp), "r1": np.sqrt(cov[0, 0]) / k2prime,
          "k2": np.sqrt(cov[0, 0])}
    for v in se.values():
        v[invalid | nonphysical] = np.nan
    fitted, flags = _fitted_and_flags(frames.n_frames, rows, fitted_rows, singular,
                                      nonphysical)
    return make_fit("mrtm2", prep, bp_nd=bp, r1=g1 / k2prime, k2=g1, k2prime=k2prime, se=se,
                    fitted=fitted, flags=flags, extra={"k2a": k2a},
                    options={"window": window, "t_star": t_star, "k2prime": k2prime})


def _window_text(options: dict[str, Any]) -> str:
    window = options.get("window")
    if not window:
        return "all frames"
    start, end = window
    return f"frames with mid-times from {start if start is not None else 0:g} to " + (
        f"{end:g} min" if end is not None else "the end of the scan")


def describe(options: dict[str, Any]) -> str:
    """Methods sentence for MRTM or MRTM2 (``options['model']``), with its citation.

    Parameters
    ----------
    options : dict
        The fit's options (``model``, ``t_star``, ``k2prime``, ``window``, ``weights``).
    """
    model = options.get("model", "mrtm")
    t_star = options.get("t_star") or 0.0
    common = (f"integrals from injection over all frames, regression on "
              f"{_window_text(options)} after t* = {float(t_star):g} min, "
              f"{options.get('weights', 'uniform')} frame weights")
    if model == "mrtm2":
        k2p = options.get("k2prime")
        k2p_text = f"k2' = {float(k2p):.4g} /min" if k2p is not None else "a fixed k2'"
        return ("BP_ND was estimated with the two-parameter multilinear reference tissue "
                f"model MRTM2 (Ichise et al., 2003, J Cereb Blood Flow Metab 23:1096) with "
                f"{k2p_text}, {common}.")
    return ("BP_ND, R1 and k2' were estimated with the multilinear reference tissue model "
            f"MRTM (Ichise et al., 2003, J Cereb Blood Flow Metab 23:1096), {common}; where "
            f"MRTM gave k2a <= 0 or BP_ND outside [{BP_PLAUSIBLE[0]:g}, {BP_PLAUSIBLE[1]:g}] "
            "(noisy low-binding TACs), the basis-function SRTM estimate was used instead.")
