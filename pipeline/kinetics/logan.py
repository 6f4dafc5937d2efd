"""Logan reference-tissue graphical analysis (Logan et al. 1996).

For frames after t*, the plot of ``y = int_0^t C_T / C_T(t)`` against
``x = (int_0^t C_R + C_R(t) / k2') / C_T(t)`` is a straight line whose slope is the
distribution volume ratio DVR, and ``BP_ND = DVR - 1``. Without k2' the ``C_R / k2'``
term is dropped; the slope still tends to DVR once ``C_R / C_T`` is constant
(bolus+infusion equilibrium, or late transient equilibrium), which is the usual use.

Integrals start at injection over all frames; the plot's terms are frame averages
(:func:`pipeline.kinetics._linear.frame_integral_operator`), which keeps the relation
exact for one-tissue (SRTM-consistent) targets with the true k2'. With noisy data the
regressor ``x`` carries noise, so DVR is biased low, more so with more noise (Slifstein &
Laruelle 2000); MRTM/MRTM2 reduce this bias.
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
from pipeline.kinetics.result import ModelFit, make_fit

__all__ = ["describe", "fit_logan_ref"]


def fit_logan_ref(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
                  t_star: float = 20.0, k2prime: float | None = None,
                  window: tuple[float | None, float | None] | None = None,
                  weights: np.ndarray | None = None) -> ModelFit:
    """Fit the Logan reference-tissue plot to one or many target TACs.

    Parameters
    ----------
    frames, ref_tac, tacs
        Frame timing (minutes), reference and target TACs (Bq/mL): see
        :func:`pipeline.kinetics.mrtm.fit_mrtm`.
    t_star : float, default=20.0
        Minutes; frames with an earlier mid-time are not fitted (the plot must be linear
        from t* on; check it in the report's Logan plot).
    k2prime : float, default=None
        Reference efflux rate, 1/min; None drops the ``C_R / k2'`` term (bolus+infusion
        data at equilibrium).
    window : (start, end), default=None
        Minutes; only frames whose mid-time lies inside are fitted.
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights for the plot's rows; None means equal weights.

    Returns
    -------
    ModelFit
        ``bp_nd`` = DVR - 1 with its standard error; ``r1`` and ``k2`` are NaN;
        ``k2prime`` repeats the value used (NaN without one); ``extra`` holds ``dvr`` and
        ``intercept`` (minutes). ``fitted`` is the target activity implied by the fitted
        line at the observed integrals. Flags: degenerate input (``nan_input``,
        ``zero_input``, ``constant_input``), ``nonpositive_tac`` (a fitted frame has
        C_T <= 0, so the plot is undefined), ``singular``.

    Raises
    ------
    ConfigError
        If ``k2prime`` is given but not a positive number.
    InputError
        If shapes disagree, the reference holds NaN or is zero, t* lies past the last
        frame, or fewer than 3 frames are fitted.
    """
    if k2prime is not None and (not np.isfinite(k2prime) or k2prime <= 0):
        raise ConfigError(format_problem(
            None, f"logan_ref: k2prime must be a positive number (1/min) or omitted; "
            f"got {k2prime!r}", "Give k2' from MRTM, or leave it out for equilibrium data."))
    prep, data, bad = prepare_linear(frames, ref_tac, tacs, window=window, t_star=t_star,
                                     weights=weights, min_frames=3, model="logan_ref")
    used = prep.used
    rows = row_selector(used)
    op = frame_integral_operator(prep.frames)[rows]
    num_ref = op @ prep.ref_tac
    if k2prime is not None:
        num_ref = num_ref + prep.ref_tac[rows] / float(k2prime)
    int_tac = op @ data
    c_t = data[rows]
    nonpositive = ~bad & np.any(c_t <= 0, axis=0)
    c_safe = np.where(c_t > 0, c_t, 1.0)
    x = num_ref[:, None] / c_safe
    y = int_tac / c_safe
    beta, cov, y_hat, singular = weighted_least_squares(
        [x, np.ones(int(used.sum()))], y, prep.weights[rows])
    dvr, intercept = beta
    invalid = bad | nonpositive | singular
    dvr[invalid] = np.nan
    intercept[invalid] = np.nan
    se_bp = np.sqrt(cov[0, 0])
    se_bp[invalid] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted_rows = int_tac / y_hat
    fitted = np.full((frames.n_frames, dvr.size), np.nan)
    fitted[rows] = fitted_rows
    fitted[:, invalid] = np.nan
    flags = {"nonpositive_tac": nonpositive, "singular": singular & ~nonpositive}
    return make_fit("logan_ref", prep, bp_nd=dvr - 1.0, k2prime=k2prime, se={"bp_nd": se_bp},
                    fitted=fitted, flags=flags, extra={"intercept": intercept},
                    options={"window": window, "t_star": t_star, "k2prime": k2prime})


def describe(options: dict[str, Any]) -> str:
    """Methods sentence for the reference Logan plot, with its citation.

    Parameters
    ----------
    options : dict
        The fit's options (``t_star``, ``k2prime``, ``window``, ``weights``).
    """
    k2p = options.get("k2prime")
    term = (f"with k2' = {float(k2p):.4g} /min" if k2p is not None
            else "without the k2' term (equilibrium data)")
    window = options.get("window")
    span = "" if not window else (
        f", frames with mid-times from {window[0] if window[0] is not None else 0:g} to "
        + (f"{window[1]:g} min" if window[1] is not None else "the end of the scan"))
    return ("BP_ND was estimated as DVR - 1 from the reference-tissue Logan plot (Logan et "
            f"al., 1996, J Cereb Blood Flow Metab 16:834) {term}, linear fit after t* = "
            f"{float(options.get('t_star') or 0):g} min{span}, integrals from injection, "
            f"{options.get('weights', 'uniform')} frame weights.")
