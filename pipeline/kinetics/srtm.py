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

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics._lm import _covariance, _levenberg_marquardt
from pipeline.kinetics._reference import _ReferenceConvolver
from pipeline.kinetics.base import ModelFit, PreparedInputs, fit_quality, join_flags, prepare_inputs

__all__ = ["DEFAULT_BOUNDS", "DEFAULT_THETA_RANGE", "describe", "fit_srtm", "fit_srtm_bf",
           "predict_srtm"]

#: Box bounds of the nonlinear fit: R1 (unitless), k2 (1/min), BP_ND (unitless).
DEFAULT_BOUNDS: dict[str, tuple[float, float]] = {
    "r1": (0.0, 10.0), "k2": (1e-3, 2.0), "bp_nd": (-0.5, 15.0)}
#: Range of k2a = k2 / (1 + BP_ND) spanned by the basis functions, 1/min.
DEFAULT_THETA_RANGE: tuple[float, float] = (0.005, 1.0)
#: SRTM-family models need the reference from injection: latest first-frame start, minutes.
MAX_FIRST_FRAME_START = 2.0
_CHUNK = 20000


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
    x = _ReferenceConvolver(frames, ref).frame_averages(k2a)
    return r1 * ref[:, None] + (k2 - r1 * k2a) * x


def theta_grid(theta_range: tuple[float, float] = DEFAULT_THETA_RANGE, n_basis: int = 100,
               spacing: str = "log") -> np.ndarray:
    """Basis-function rates k2a (1/min): ``n_basis`` values over ``theta_range``."""
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
    """
    thetas = theta_grid(theta_range, n_basis, spacing)
    prep = _prepare(frames, ref_tac, tacs, window, weights, "srtm_bf")
    conv = _ReferenceConvolver(prep.frames, prep.ref_tac)
    if compute_se:
        bases, slopes = conv.frame_averages_and_slope(thetas)
    else:
        bases, slopes = conv.frame_averages(thetas), None
    best, offset, r1, theta2 = _grid_search(prep, bases, refine=refine)
    k2a = _grid_rate(thetas, best, offset, spacing)
    k2 = theta2 + r1 * k2a
    with np.errstate(invalid="ignore", divide="ignore"):
        bp = k2 / k2a - 1.0
    x = _blend(bases, best, offset)
    fitted = r1 * prep.ref_tac[:, None] + theta2 * x
    se = None
    if compute_se:
        _, jac = _srtm_jacobian(prep.ref_tac, x, _blend(slopes, best, offset), r1, k2, bp)
        se = _standard_errors(prep, fitted, jac, r1, k2, bp)
    edge = (best == 0) | (best == thetas.size - 1)
    options = {"window": window, "n_basis": int(n_basis),
               "theta_range": [float(v) for v in theta_range], "spacing": spacing,
               "refine": bool(refine), "compute_se": bool(compute_se)}
    return _finish("srtm_bf", prep, r1, k2, bp, fitted, se, [("grid_edge", edge)], options)


def fit_srtm(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
             window: tuple[float | None, float | None] | None = None,
             weights: np.ndarray | None = None,
             bounds: dict[str, tuple[float, float]] | None = None,
             n_basis: int = 100, max_iter: int = 100) -> ModelFit:
    """Fit SRTM (Lammertsma & Hume 1996) by weighted nonlinear least squares with bounds.

    Starts from the basis-function solution and polishes R1, k2 and BP_ND for all TACs at
    once with a bounded Levenberg-Marquardt. Standard errors are ``sigma^2 (J^T W J)^-1``
    with ``sigma^2`` the weighted residual variance; k2' = k2 / R1 and its SE by the delta
    method.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes; frames may be uneven and have gaps.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected.
    tacs : ndarray of shape (n_frames,) or (n_frames, n_tacs)
        Target TACs, Bq/mL; one column per region or voxel.
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
        ``zero_input``.

    Raises
    ------
    InputError
        Fewer than 4 frames to fit, a non-finite or all-zero reference TAC, or a scan that
        does not start at injection.
    ConfigError
        Bounds that are not ``lo < hi`` or with BP_ND's lower bound <= -1.
    """
    lower, upper = _bounds_arrays(bounds)
    prep = _prepare(frames, ref_tac, tacs, window, weights, "srtm")
    conv = _ReferenceConvolver(prep.frames, prep.ref_tac)
    theta_low = max(lower[1] / (1.0 + upper[2]), 1e-4)
    theta_high = upper[1] / (1.0 + lower[2])
    thetas = np.geomspace(theta_low, theta_high, max(int(n_basis), 2))
    bases = conv.frame_averages(thetas)
    best, offset, r1, theta2 = _grid_search(prep, bases, refine=True)
    k2a = _grid_rate(thetas, best, offset, "log")
    start = np.column_stack([r1, theta2 + r1 * k2a, (theta2 + r1 * k2a) / k2a - 1.0])
    used = prep.used
    sqrt_w = np.sqrt(prep.weights[used])
    data = np.where(prep.bad_tacs, 0.0, prep.tacs)

    def model(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rate = params[:, 1] / (1.0 + params[:, 2])
        x, dx = conv.frame_averages_and_slope(rate)
        return _srtm_jacobian(prep.ref_tac[used], x[used], dx[used],
                              params[:, 0], params[:, 1], params[:, 2])

    result = _levenberg_marquardt(model, data[used], sqrt_w, start, lower, upper,
                                  max_iter=max_iter)
    r1, k2, bp = result.params.T
    fitted = predict_srtm(prep.frames, prep.ref_tac, r1, k2, bp)
    se = _standard_errors(prep, fitted, result.jacobian, r1, k2, bp)
    tol = 1e-6 * (1.0 + np.abs(np.concatenate([lower, upper])))
    at_bound = np.any((result.params - lower <= tol[:3]) | (upper - result.params <= tol[3:]),
                      axis=1)
    options = {"window": window, "bounds": {"r1": list(map(float, (lower[0], upper[0]))),
                          "k2": list(map(float, (lower[1], upper[1]))),
                          "bp_nd": list(map(float, (lower[2], upper[2])))},
               "n_basis": int(n_basis), "max_iter": int(max_iter)}
    flags = [("at_bound", at_bound), ("not_converged", ~result.converged)]
    return _finish("srtm", prep, r1, k2, bp, fitted, se, flags, options)


def describe(options: dict[str, Any] | None = None) -> str:
    """One methods sentence for SRTM fits made with ``options`` (as in a ModelFit)."""
    o = dict(options or {})
    model = o.get("model", "srtm")
    window = o.get("window")
    span = (f" over frames with mid-times from {window[0]} to {window[1]} min"
            if window else " over the whole scan")
    weights = o.get("weights", "uniform")
    ref = o.get("reference", "the reference region")
    if model == "srtm_bf":
        grid = o.get("theta_range", list(DEFAULT_THETA_RANGE))
        how = (f"the basis-function method (Gunn et al. 1997) with {o.get('n_basis', 100)} "
               f"{o.get('spacing', 'log')}-spaced basis functions for k2a between {grid[0]} "
               f"and {grid[1]} 1/min")
    else:
        b = o.get("bounds", {k: list(v) for k, v in DEFAULT_BOUNDS.items()})
        how = (f"weighted nonlinear least squares (Levenberg-Marquardt from a basis-function "
               f"start) with bounds R1 {b['r1']}, k2 {b['k2']} 1/min and BP_ND {b['bp_nd']}")
    return (f"BP_ND was estimated with the simplified reference tissue model (SRTM; "
            f"Lammertsma & Hume 1996) with {ref} as reference, fitted by {how}, to "
            f"frame-averaged model predictions{span}, with {weights} frame weights.")


# ---------------------------------------------------------------------------------------
# helpers shared with srtm2


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


def _grid_search(prep: PreparedInputs, bases: np.ndarray, refine: bool = False):
    """Best basis per TAC for ``C_T = a C_R + b B_j`` (weighted), all TACs at once.

    With ``refine``, the residual is interpolated by a parabola through the best basis and
    its two neighbours, and the basis itself by the matching quadratic (Lagrange) blend,
    which removes most of the grid's discretization error at the cost of a few vector
    operations per TAC.

    Returns
    -------
    best : ndarray of int, shape (n_tacs,)
        Index of the best basis.
    offset : ndarray of shape (n_tacs,)
        Fractional grid offset in [-0.5, 0.5] (0 without ``refine`` or at the grid edge).
    a, b : ndarray of shape (n_tacs,)
        ``R1`` and ``k2 - R1 k2a``.
    """
    used = prep.used
    sw = np.sqrt(prep.weights[used])
    r = prep.ref_tac[used] * sw
    basis = bases[used] * sw[:, None]
    n_basis = basis.shape[1]
    rr = r @ r
    rb = r @ basis
    gram = basis.T @ basis
    bb = np.diag(gram).copy()
    det = rr * bb - rb * rb
    det = np.where(np.abs(det) > 1e-12 * rr * bb, det, np.nan)
    c1, c2, c3 = (bb / det)[:, None], (-2.0 * rb / det)[:, None], (rr / det)[:, None]
    data = np.where(prep.bad_tacs, 0.0, prep.tacs)[used] * sw[:, None]
    n = data.shape[1]
    best = np.zeros(n, dtype=int)
    offset = np.zeros(n)
    a = np.zeros(n)
    b = np.zeros(n)
    for lo in range(0, n, _CHUNK):
        y = data[:, lo:lo + _CHUNK]
        cols = np.arange(y.shape[1])
        ry = r @ y
        by = basis.T @ y
        q = c1 * (ry * ry) + by * (c2 * ry + c3 * by)
        q = np.where(np.isfinite(q), q, -np.inf)
        j = np.argmax(q, axis=0)
        sl = slice(lo, lo + y.shape[1])
        best[sl] = j
        if refine and n_basis >= 3:
            jc = np.clip(j, 1, n_basis - 2)
            qm, q0, qp = q[jc - 1, cols], q[jc, cols], q[jc + 1, cols]
            curv = qm - 2.0 * q0 + qp
            with np.errstate(invalid="ignore", divide="ignore"):
                d = np.where(curv < 0, 0.5 * (qm - qp) / curv, 0.0)
            d = np.where((j == jc) & np.isfinite(d), np.clip(d, -0.5, 0.5), 0.0)
            lm, l0, lp = _lagrange(d)
            rbd = lm * rb[jc - 1] + l0 * rb[jc] + lp * rb[jc + 1]
            byd = lm * by[jc - 1, cols] + l0 * by[jc, cols] + lp * by[jc + 1, cols]
            weights3 = np.stack([lm, l0, lp])
            idx = jc[None, :] + np.arange(-1, 2)[:, None]
            g3 = gram[idx[:, None, :], idx[None, :, :]]
            bbd = np.einsum("im,ijm,jm->m", weights3, g3, weights3)
            detd = rr * bbd - rbd * rbd
            with np.errstate(invalid="ignore", divide="ignore"):
                a[sl] = (bbd * ry - rbd * byd) / detd
                b[sl] = (rr * byd - rbd * ry) / detd
            best[sl] = jc
            offset[sl] = np.where(j == jc, d, 0.0)
            edge = j != jc
            if edge.any():
                je = j[edge]
                a[sl][edge] = (bb[je] * ry[edge] - rb[je] * by[je, cols[edge]]) / det[je]
                b[sl][edge] = (rr * by[je, cols[edge]] - rb[je] * ry[edge]) / det[je]
                best[sl][edge] = je
        else:
            byj = by[j, cols]
            a[sl] = (bb[j] * ry - rb[j] * byj) / det[j]
            b[sl] = (rr * byj - rb[j] * ry) / det[j]
    return best, offset, a, b


def _lagrange(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quadratic Lagrange weights of the nodes -1, 0, 1 at offsets ``d``."""
    return 0.5 * d * (d - 1.0), 1.0 - d * d, 0.5 * d * (d + 1.0)


def _blend(values: np.ndarray, best: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Columns ``values[:, best]`` moved by the fractional ``offset`` (quadratic blend)."""
    out = values[:, best].copy()
    move = offset != 0.0
    if move.any():
        j = best[move]
        lm, l0, lp = _lagrange(offset[move])
        out[:, move] = lm * values[:, j - 1] + l0 * values[:, j] + lp * values[:, j + 1]
    return out


def _grid_rate(thetas: np.ndarray, best: np.ndarray, offset: np.ndarray,
               spacing: str) -> np.ndarray:
    """k2a at fractional grid positions."""
    pos = best + offset
    grid = np.arange(thetas.size)
    if spacing == "log":
        return np.exp(np.interp(pos, grid, np.log(thetas)))
    return np.interp(pos, grid, thetas)


def _srtm_jacobian(ref: np.ndarray, x: np.ndarray, dx: np.ndarray, r1: np.ndarray,
                   k2: np.ndarray, bp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Prediction and Jacobian in (R1, k2, BP_ND) from the convolution and its rate slope."""
    with np.errstate(invalid="ignore", divide="ignore"):
        k2a = k2 / (1.0 + bp)
    amp = k2 - r1 * k2a
    pred = r1 * ref[:, None] + amp * x
    d_rate = -r1 * x + amp * dx  # d pred / d k2a
    jac = np.empty((*x.shape, 3))
    jac[..., 0] = ref[:, None] - k2a * x
    jac[..., 1] = x + d_rate / (1.0 + bp)
    jac[..., 2] = -d_rate * k2a / (1.0 + bp)
    return pred, jac


def _standard_errors(prep: PreparedInputs, fitted: np.ndarray, jac: np.ndarray,
                     r1: np.ndarray, k2: np.ndarray, bp: np.ndarray) -> dict[str, np.ndarray]:
    """SEs of R1, k2, BP_ND (Jacobian in those) and of k2' = k2/R1 by the delta method."""
    used = prep.used
    sw = np.sqrt(prep.weights[used])
    resid = (np.where(prep.bad_tacs, 0.0, prep.tacs)[used] - fitted[used]) * sw[:, None]
    rss = np.einsum("nm,nm->m", resid, resid)
    cov = _covariance(jac if jac.shape[0] == used.sum() else jac[used], sw, rss)
    with np.errstate(invalid="ignore", divide="ignore"):
        se = {"r1": np.sqrt(cov[:, 0, 0]), "k2": np.sqrt(cov[:, 1, 1]),
              "bp_nd": np.sqrt(cov[:, 2, 2])}
        g_r1, g_k2 = -k2 / (r1 * r1), 1.0 / r1
        var = g_r1 ** 2 * cov[:, 0, 0] + 2 * g_r1 * g_k2 * cov[:, 0, 1] + g_k2 ** 2 * cov[:, 1, 1]
        se["k2prime"] = np.sqrt(np.maximum(var, 0.0))
    return se


def _window_option(window):
    return None if window is None else [None if v is None else float(v) for v in window]


def _bounds_arrays(bounds: dict[str, tuple[float, float]] | None):
    merged = dict(DEFAULT_BOUNDS)
    for key, value in (bounds or {}).items():
        if key not in merged:
            raise ConfigError(format_problem(
                None, f"unknown SRTM bound {key!r}", "Bound only r1, k2 and bp_nd."))
        merged[key] = tuple(float(v) for v in value)
    lower = np.array([merged[k][0] for k in ("r1", "k2", "bp_nd")])
    upper = np.array([merged[k][1] for k in ("r1", "k2", "bp_nd")])
    if np.any(lower >= upper) or lower[2] <= -1.0 or lower[1] <= 0.0:
        raise ConfigError(format_problem(
            None, f"invalid SRTM bounds {merged}",
            "Each bound needs lower < upper, k2 > 0 and BP_ND's lower bound > -1."))
    return lower, upper


def _finish(model: str, prep: PreparedInputs, r1, k2, bp, fitted, se, flags,
            options: dict[str, Any], k2prime=None, extra=None) -> ModelFit:
    """Mask bad TACs, add fit quality, and build the :class:`ModelFit`."""
    bad = prep.bad_tacs
    zero = ~bad & np.all(np.where(bad, 0.0, prep.tacs)[prep.used] == 0.0, axis=0)
    void = bad | zero
    n = bad.size

    def clean(v):
        return np.where(void, np.nan, np.asarray(v, float))

    with np.errstate(invalid="ignore", divide="ignore"):
        k2p = clean(k2 / r1) if k2prime is None else clean(np.broadcast_to(k2prime, (n,)))
    fitted = np.where(prep.used[:, None] & ~void[None, :], fitted, np.nan)
    se = {key: clean(value) for key, value in (se or {}).items()}
    extra = {key: clean(value) for key, value in (extra or {}).items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        extra["k2a"] = clean(k2 / (1.0 + bp))
    extra.update(fit_quality(prep, np.where(np.isnan(fitted), 0.0, fitted)))
    extra["rmse"] = clean(extra["rmse"])
    extra["nrmse"] = clean(extra["nrmse"])
    masked = [(name, np.asarray(mask, bool) & ~void) for name, mask in flags]
    all_flags = join_flags(("nan_input", bad), ("zero_input", zero), *masked, n=n)
    options = {"window": _window_option(options.pop("window", None)),
               "weights": "given" if np.ptp(prep.weights[prep.used]) > 0 else "uniform",
               "frame_weights": [float(v) for v in prep.weights], **options}
    return ModelFit(model=model, bp_nd=clean(bp), r1=clean(r1), k2=clean(k2), k2prime=k2p,
                    se=se, fitted=fitted, used=prep.used.copy(), flags=all_flags,
                    options=options, extra=extra)
