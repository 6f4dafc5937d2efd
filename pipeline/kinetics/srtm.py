"""Simplified reference tissue model (SRTM): nonlinear fit and basis functions.

Nonlinear fit after Lammertsma & Hume (1996), basis functions after Gunn et al. (1997).

SRTM describes a target TAC as ``C_T = R1 C_R + (k2 - R1 k2a) C_R (*) exp(-k2a t)`` with
``k2a = k2 / (1 + BP_ND)``. Predictions are frame averages: the reference is made
continuous by a frame-consistent interpolant from time 0 and convolved exactly (see
:mod:`pipeline.kinetics._reference`), so uneven frames and gaps are handled, and a time
window restricts only the residuals, never the convolution. Times are minutes, rates 1/min.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import ConfigError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics._basis import blend_columns, grid_rate, grid_search
from pipeline.kinetics._inputs import MAX_FIRST_FRAME_START
from pipeline.kinetics._lm import SETTLE_STEP, fit_in_chunks, jacobian_covariance
from pipeline.kinetics._reference import RateTable, ReferenceConvolver
from pipeline.kinetics._srtm_family import (
    clean_data,
    finish_fit,
    full_frames,
    on_bound,
    prepare_srtm,
    srtm_jacobian,
    srtm_se_from_cov,
    srtm_standard_errors,
    weighted_rss,
    window_text,
)
from pipeline.kinetics.result import ModelFit

__all__ = ["DEFAULT_BOUNDS", "DEFAULT_THETA_RANGE", "MAX_FIRST_FRAME_START", "describe",
           "fit_srtm", "fit_srtm_bf", "predict_srtm", "theta_grid"]

#: Box bounds of the nonlinear fit: R1 (unitless), k2 (1/min), BP_ND (unitless).
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "r1": (0.0, 10.0), "k2": (1e-3, 2.0), "bp_nd": (-0.5, 15.0)}
#: Range of k2a = k2 / (1 + BP_ND) spanned by the basis functions, 1/min.
DEFAULT_THETA_RANGE: tuple[float, float] = (0.005, 1.0)


def predict_srtm(frames: Frames, ref_tac: np.ndarray, r1: np.ndarray | float,
                 k2: np.ndarray | float, bp_nd: np.ndarray | float) -> np.ndarray:
    """Frame-averaged SRTM prediction for each parameter set.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Decay-corrected reference frame averages, Bq/mL.
    r1, k2, bp_nd : float or ndarray of shape (m,)
        R1 (unitless), k2 (1/min) and BP_ND (unitless), broadcast together.

    Returns
    -------
    ndarray of shape (n_frames, m)
        Target frame averages, Bq/mL.
    """
    r1, k2, bp_nd = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float))
                                          for v in (r1, k2, bp_nd)))
    ref = np.asarray(ref_tac, float)
    k2a = k2 / (1.0 + bp_nd)
    x = ReferenceConvolver(frames, ref).frame_averages(k2a)
    return r1 * ref[:, None] + (k2 - r1 * k2a) * x


def theta_grid(theta_range: tuple[float, float] = DEFAULT_THETA_RANGE, n_basis: int = 100,
               spacing: str = "log") -> np.ndarray:
    """Basis-function rates k2a (1/min): ``n_basis`` values over ``theta_range``.

    Parameters
    ----------
    theta_range : (float, float), default=DEFAULT_THETA_RANGE
        Smallest and largest k2a, 1/min.
    n_basis : int, default=100
        Number of rates (at least 2).
    spacing : {"log", "linear"}, default="log"
        Spacing of the rates.
    """
    low, high = (float(v) for v in theta_range)
    if not (0.0 < low < high) or int(n_basis) < 2:
        raise ConfigError(format_problem(
            None, f"basis functions need 0 < theta_range[0] < theta_range[1] and n_basis >= 2; "
            f"got theta_range={theta_range}, n_basis={n_basis}",
            "Give a positive k2a range in 1/min, e.g. 0.005 1.0, and at least 2 bases."))
    if spacing == "log":
        return np.geomspace(low, high, int(n_basis))
    if spacing == "linear":
        return np.linspace(low, high, int(n_basis))
    raise ConfigError(format_problem(None, f"unknown basis spacing {spacing!r}",
                                     "Use 'log' or 'linear'."))


def fit_srtm_bf(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
                window: tuple[float | None, float | None] | None = None,
                weights: np.ndarray | None = None, n_basis: int = 100,
                theta_range: tuple[float, float] = DEFAULT_THETA_RANGE,
                spacing: str = "log", refine: bool = True,
                compute_se: bool = True) -> ModelFit:
    """Fit SRTM by basis functions (Gunn et al. 1997) to one or many target TACs.

    For each k2a on the grid the model is linear in ``R1`` and ``k2 - R1 k2a``; a weighted
    2-parameter least squares is solved for every TAC at once and each TAC keeps the basis
    with the smallest residual. TACs whose best basis is the first or last one are flagged
    ``grid_edge`` (BP_ND there is a bound, not an estimate).

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes; frames may be uneven and have gaps.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected.
    tacs : ndarray of shape (n_frames,) or (n_frames, n_tacs)
        Target TACs, Bq/mL; one column per region or voxel.
    window : (start, end), default=None
        Minutes; only frames whose mid-time lies inside are fitted.
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights; None means uniform.
    n_basis : int, default=100
        Number of basis functions.
    theta_range : (float, float), default=(0.005, 1.0)
        Smallest and largest k2a, 1/min.
    spacing : {"log", "linear"}, default="log"
    refine : bool, default=True
        Refine k2a between grid points by quadratic interpolation of the residual and of
        the basis functions (removes most of the grid's discretization error).
    compute_se : bool, default=True
        Standard errors from the 3-parameter Jacobian at the chosen basis.

    Returns
    -------
    ModelFit
        ``bp_nd``, ``r1``, ``k2``, ``k2prime`` (= k2 / R1) and ``extra['k2a']``.

    Raises
    ------
    InputError
        Fewer than 4 frames to fit, a non-finite or all-zero reference TAC, or a scan that
        does not start at injection.

    Examples
    --------
    >>> from pipeline.frames import Frames
    >>> from pipeline.simulate.compartments import srtm_consistent_tacs
    >>> frames = Frames.from_bids([0, 60, 120, 300, 600, 1200, 2400, 3600], [60, 60, 180,
    ...                           300, 600, 1200, 1200, 1800])
    >>> ref, tacs = srtm_consistent_tacs(frames, [0.5, 2.0], r1=1.1)
    >>> fit = fit_srtm_bf(frames, ref, tacs)
    >>> [round(float(v), 2) for v in fit.bp_nd]
    [0.5, 2.0]
    """
    thetas = theta_grid(theta_range, n_basis, spacing)
    prep = prepare_srtm(frames, ref_tac, tacs, window, weights, "srtm_bf")
    conv = ReferenceConvolver(prep.frames, prep.ref_tac)
    if compute_se:
        bases, slopes = conv.frame_averages_and_slope(thetas)
    else:
        bases, slopes = conv.frame_averages(thetas), None
    used = prep.used
    sqrt_w = np.sqrt(prep.weights[used])
    data = clean_data(prep)
    grid = grid_search(prep.ref_tac[used], bases[used], data, sqrt_w, refine=refine)
    r1, theta2 = grid.a, grid.b
    k2a = grid_rate(thetas, grid.best, grid.offset, spacing)
    k2 = theta2 + r1 * k2a
    with np.errstate(invalid="ignore", divide="ignore"):
        bp = k2 / k2a - 1.0
    fitted_used = r1 * prep.ref_tac[used][:, None] + \
        theta2 * blend_columns(bases[used], grid.best, grid.offset)
    se = None
    if compute_se:
        se = srtm_standard_errors(prep.ref_tac[used], bases[used], slopes[used], sqrt_w,
                                  grid, weighted_rss(data, fitted_used, sqrt_w), r1, k2, bp)
    fitted = full_frames(prep, fitted_used)
    edge = grid.edge
    options = {"window": window, "n_basis": int(n_basis),
               "theta_range": [float(v) for v in theta_range], "spacing": spacing,
               "refine": bool(refine), "compute_se": bool(compute_se)}
    return finish_fit("srtm_bf", prep, r1, k2, bp, fitted, se, [("grid_edge", edge)], options)


def fit_srtm(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
             window: tuple[float | None, float | None] | None = None,
             weights: np.ndarray | None = None,
             bounds: dict[str, tuple[float, float]] | None = None,
             n_basis: int = 100, max_iter: int = 100) -> ModelFit:
    """Fit SRTM (Lammertsma & Hume 1996) by weighted nonlinear least squares with bounds.

    Starts from the basis-function solution (k2a grid over :data:`DEFAULT_THETA_RANGE`
    within the bounds) and polishes R1, k2 and BP_ND for all TACs at once with a bounded
    Levenberg-Marquardt. Where LM ends on a bound or does not converge (low-binding noisy
    TACs: the residual is flat along k2a -> 0, BP_ND -> bound) and the start is inside the
    bounds, the basis-function estimate is kept instead (flag ``bf_fallback``). Standard
    errors are ``sigma^2 (J^T W J)^-1`` with ``sigma^2`` the weighted residual variance;
    k2' = k2 / R1 and its SE by the delta method.

    Parameters
    ----------
    frames, ref_tac, tacs
        Frame timing (minutes), reference and target TACs (Bq/mL): see :func:`fit_srtm_bf`.
    window : (start, end), default=None
        Minutes; only frames whose mid-time lies inside are fitted (the reference is still
        integrated from time 0).
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights; None means uniform.
    bounds : dict, default=None
        ``{"r1": (lo, hi), "k2": (lo, hi), "bp_nd": (lo, hi)}``; missing keys take
        :data:`DEFAULT_BOUNDS`.
    n_basis : int, default=100
        Basis functions of the starting grid search.
    max_iter : int, default=100
        Levenberg-Marquardt iterations.

    Returns
    -------
    ModelFit
        Flags: ``at_bound`` (an estimate on a bound), ``not_converged``, ``nan_input``,
        ``zero_input``; ``bf_fallback`` where LM ended on a bound or did not converge but
        the basis-function start lies inside the bounds: that start is returned (with
        ``grid_edge`` if its k2a is at the edge of the start grid); ``large_se`` where the
        data do not determine BP_ND.

    Raises
    ------
    InputError
        Fewer than 4 frames to fit, a non-finite or all-zero reference TAC, or a scan that
        does not start at injection.
    ConfigError
        Bounds that are not ``lo < hi`` or with BP_ND's lower bound <= -1.

    Examples
    --------
    >>> from pipeline.frames import Frames
    >>> from pipeline.simulate.compartments import srtm_consistent_tacs
    >>> frames = Frames(np.arange(0, 90, 5.0), np.arange(5, 95, 5.0))  # 18 x 5 min
    >>> ref, tacs = srtm_consistent_tacs(frames, [1.5], r1=0.9, k2prime=0.1)
    >>> fit = fit_srtm(frames, ref, tacs)
    >>> round(float(fit.bp_nd[0]), 2), round(float(fit.r1[0]), 2), fit.flags[0]
    (1.5, 0.9, '')
    """
    _, lower, upper = bounds_arrays(bounds)
    prep = prepare_srtm(frames, ref_tac, tacs, window, weights, "srtm")
    conv = ReferenceConvolver(prep.frames, prep.ref_tac)
    thetas = _start_grid(lower, upper, n_basis)
    bases = conv.frame_averages(thetas)
    used = prep.used
    sqrt_w = np.sqrt(prep.weights[used])
    data = clean_data(prep)
    grid = grid_search(prep.ref_tac[used], bases[used], data, sqrt_w, refine=True,
                       start_only=True)
    r1, theta2 = grid.a, grid.b
    k2a = grid_rate(thetas, grid.best, grid.offset, "log")
    with np.errstate(invalid="ignore", divide="ignore"):
        start = np.column_stack([r1, theta2 + r1 * k2a, (theta2 + r1 * k2a) / k2a - 1.0])
    # every rate the bounds allow, k2 / (1 + BP_ND), interpolated from a dense table; the
    # optimizer works on weighted quantities, so the weights are folded in once
    table = RateTable(conv, lower[1] / (1.0 + upper[2]), upper[1] / (1.0 + lower[2]),
                      rows=used, scale=sqrt_w)
    ref_w = prep.ref_tac[used] * sqrt_w

    def model(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, dx = table.values_and_slopes(params[:, 1] / (1.0 + params[:, 2]))
        return srtm_jacobian(ref_w, x, dx, params[:, 0], params[:, 1], params[:, 2])

    data_w = data * sqrt_w[:, None]
    result = fit_in_chunks(model, data_w, start, lower, upper, max_iter=max_iter,
                           settle=SETTLE_STEP)
    at_bound = on_bound(result.params, lower, upper)
    failed = at_bound | ~result.converged
    # LM that ends on a bound or does not converge has walked down a flat valley of the
    # residual (low BP_ND: k2a -> 0 and BP_ND -> its bound for a negligible gain); where the
    # basis-function start lies inside the bounds it is the better-conditioned estimate
    fallback = failed & np.all(np.isfinite(start), axis=1) & ~on_bound(start, lower, upper)
    if fallback.any():
        _use_start(result, model, data_w, start, fallback)
    r1, k2, bp = result.params.T
    fitted = full_frames(prep, unweighted(result.prediction, sqrt_w, lambda: predict_srtm(
        prep.frames, prep.ref_tac, r1, k2, bp)[used]))
    se = srtm_se_from_cov(result.covariance, r1, k2)
    edge = fallback & grid.edge
    options = {"window": window, "bounds": {"r1": list(map(float, (lower[0], upper[0]))),
                          "k2": list(map(float, (lower[1], upper[1]))),
                          "bp_nd": list(map(float, (lower[2], upper[2])))},
               "n_basis": int(n_basis), "max_iter": int(max_iter)}
    flags = [("at_bound", at_bound & ~fallback), ("not_converged", ~result.converged & ~fallback),
             ("bf_fallback", fallback), ("grid_edge", edge)]
    return finish_fit("srtm", prep, r1, k2, bp, fitted, se, flags, options)


def describe(options: dict[str, Any] | None = None) -> str:
    """One methods sentence for SRTM fits made with ``options`` (as in a ModelFit).

    Parameters
    ----------
    options : dict, default=None
        The fit's options (``model``, ``window``, ``weights``, basis settings, ``reference``).
    """
    o = dict(options or {})
    model = o.get("model", "srtm")
    window = o.get("window")
    span = window_text(window)
    weights = o.get("weights", "uniform")
    ref = f"region {o['reference']!r}" if o.get("reference") else "a reference region"
    if model == "srtm_bf":
        grid = o.get("theta_range", list(DEFAULT_THETA_RANGE))
        how = (f"the basis-function method (Gunn et al. 1997) with {o.get('n_basis', 100)} "
               f"{o.get('spacing', 'log')}-spaced basis functions for k2a between {grid[0]} "
               f"and {grid[1]} 1/min")
    else:
        b = o.get("bounds", {k: list(v) for k, v in DEFAULT_BOUNDS.items()})
        how = (f"weighted nonlinear least squares (Levenberg-Marquardt from a basis-function "
               f"start) with bounds R1 {b['r1']}, k2 {b['k2']} 1/min and BP_ND {b['bp_nd']}, "
               f"keeping the basis-function estimate where the iterations ended on a bound or "
               f"did not converge")
    return (f"BP_ND was estimated with the simplified reference tissue model (SRTM; "
            f"Lammertsma & Hume 1996) with {ref} as reference tissue, fitted by {how}, to "
            f"frame-averaged model predictions{span}, with {weights} frame weights.")


def _start_grid(lower: np.ndarray, upper: np.ndarray, n_basis: int) -> np.ndarray:
    """k2a grid (1/min) of the nonlinear fit's basis-function start.

    :data:`DEFAULT_THETA_RANGE` (the basis-function model's physically plausible k2a range)
    intersected with the range the bounds allow, ``k2 / (1 + BP_ND)``.
    """
    low = max(DEFAULT_THETA_RANGE[0], lower[1] / (1.0 + upper[2]))
    high = min(DEFAULT_THETA_RANGE[1], upper[1] / (1.0 + lower[2]))
    if not low < high:  # bounds outside the default range: span what they allow
        low, high = max(lower[1] / (1.0 + upper[2]), 1e-4), upper[1] / (1.0 + lower[2])
    return np.geomspace(low, high, max(int(n_basis), 2))


def _use_start(result, model, data_w: np.ndarray, start: np.ndarray, take: np.ndarray) -> None:
    """Replace the LM results of columns ``take`` by the start values (in place)."""
    idx = np.flatnonzero(take)
    pred, jac = model(start[idx])
    resid = data_w[:, idx] - pred
    rss = np.einsum("nm,nm->m", resid, resid)
    result.params[idx] = start[idx]
    result.prediction[:, idx] = pred
    result.covariance[idx] = jacobian_covariance(jac, rss)
    result.converged[idx] = True


def unweighted(prediction_w: np.ndarray, sqrt_w: np.ndarray, exact) -> np.ndarray:
    """A weighted prediction divided by the weights (``exact()`` where a weight is 0)."""
    if np.all(sqrt_w > 0):
        return prediction_w / sqrt_w[:, None]
    return exact()


def bounds_arrays(bounds: dict[str, tuple[float, float]] | None,
                  keys: tuple[str, ...] = ("r1", "k2", "bp_nd"), label: str = "SRTM"):
    """``bounds`` merged over :data:`DEFAULT_BOUNDS` for parameters ``keys``, checked.

    Returns the merged dict and the lower and upper bounds as arrays in ``keys`` order.
    """
    merged = {key: DEFAULT_BOUNDS[key] for key in keys}
    for key, value in (bounds or {}).items():
        if key not in merged:
            raise ConfigError(format_problem(
                None, f"unknown {label} bound {key!r}",
                f"Bound only {', '.join(keys[:-1])} and {keys[-1]}."))
        merged[key] = tuple(float(v) for v in value)
    lower = np.array([merged[k][0] for k in keys], dtype=float)
    upper = np.array([merged[k][1] for k in keys], dtype=float)
    if np.any(lower >= upper) or merged["bp_nd"][0] <= -1.0 or \
            ("k2" in merged and merged["k2"][0] <= 0.0):
        raise ConfigError(format_problem(
            None, f"invalid {label} bounds {merged}",
            "Each bound needs lower < upper, k2 > 0 and BP_ND's lower bound > -1."))
    return merged, lower, upper
