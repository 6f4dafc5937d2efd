"""SRTM2 (Wu & Carson 2002): SRTM with the reference efflux k2' fixed for every target.

With k2' known, each target has two free parameters, R1 and BP_ND:
``C_T = R1 C_R + R1 (k2' - k2a) C_R (*) exp(-k2a t)`` with ``k2a = R1 k2' / (1 + BP_ND)``.
Fixing k2' (from high-binding regions, where it is best determined) lowers the variance of
BP_ND in noisy regions and voxels. Predictions are frame averages, as in
:mod:`pipeline.kinetics.srtm`. Times are minutes, rates 1/min.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.errors import ConfigError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics._basis import grid_rate, grid_search
from pipeline.kinetics._lm import SETTLE_STEP, fit_in_chunks
from pipeline.kinetics._reference import RateTable, ReferenceConvolver
from pipeline.kinetics._srtm_family import (
    clean_data,
    finish_fit,
    full_frames,
    on_bound,
    prepare_srtm,
    window_text,
)
from pipeline.kinetics.result import ModelFit
from pipeline.kinetics.srtm import bounds_arrays, unweighted

__all__ = ["describe", "fit_srtm2", "predict_srtm2"]


def predict_srtm2(frames: Frames, ref_tac: np.ndarray, r1: np.ndarray | float,
                  bp_nd: np.ndarray | float, k2prime: float) -> np.ndarray:
    """Frame-averaged SRTM2 prediction (Bq/mL), shape (n_frames, m), for R1 and BP_ND arrays.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL.
    r1 : float or ndarray of shape (m,)
        Relative delivery R1.
    bp_nd : float or ndarray of shape (m,)
        Binding potential.
    k2prime : float
        Reference efflux rate, 1/min.
    """
    from pipeline.kinetics.srtm import predict_srtm

    r1, bp_nd = np.broadcast_arrays(np.atleast_1d(np.asarray(r1, float)),
                                    np.atleast_1d(np.asarray(bp_nd, float)))
    return predict_srtm(frames, ref_tac, r1, r1 * float(k2prime), bp_nd)


def fit_srtm2(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
              k2prime: float | None = None,
              window: tuple[float | None, float | None] | None = None,
              weights: np.ndarray | None = None,
              bounds: dict[str, tuple[float, float]] | None = None,
              n_basis: int = 200, max_iter: int = 100) -> ModelFit:
    """Fit SRTM2 with a fixed k2' to one or many target TACs.

    For each k2a on a grid the model is linear in R1 (one parameter per basis): the best
    basis, refined between grid points, gives each TAC its start, and a bounded
    Levenberg-Marquardt (model from an interpolated table of the reference convolution)
    polishes R1 and BP_ND for all TACs at once.

    Parameters
    ----------
    frames, ref_tac, tacs
        Frame timing (minutes), reference and target TACs (Bq/mL): see
        :func:`pipeline.kinetics.srtm.fit_srtm_bf`.
    k2prime : float
        Reference efflux rate constant, 1/min (e.g. from
        :func:`pipeline.kinetics.k2prime.k2prime_from_srtm`).
    window : (start, end), default=None
        Minutes; only frames whose mid-time lies inside are fitted.
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights; None means uniform.
    bounds : dict, default=None
        ``{"r1": (lo, hi), "bp_nd": (lo, hi)}``; defaults as for SRTM.
    n_basis : int, default=200
        Grid size of the starting search.
    max_iter : int, default=100

    Returns
    -------
    ModelFit
        ``k2 = R1 k2'``; ``k2prime`` is the given value; ``se`` has r1, k2, bp_nd.

    Raises
    ------
    ConfigError
        If k2' is missing or not a positive number, or bounds are invalid.
    InputError
        As for :func:`pipeline.kinetics.srtm.fit_srtm`.

    Examples
    --------
    >>> from pipeline.frames import Frames
    >>> from pipeline.simulate.compartments import srtm_consistent_tacs
    >>> frames = Frames(np.arange(0, 60, 4.0), np.arange(4, 64, 4.0))  # 15 x 4 min
    >>> ref, tac = srtm_consistent_tacs(frames, [1.5], r1=0.9, k2prime=0.1)
    >>> round(float(fit_srtm2(frames, ref, tac, k2prime=0.1).bp_nd[0]), 2)
    1.5
    """
    k2p = _check_k2prime(k2prime)
    merged, lower, upper = bounds_arrays(bounds, ("r1", "bp_nd"), "SRTM2")
    prep = prepare_srtm(frames, ref_tac, tacs, window, weights, "srtm2", min_frames=3)
    conv = ReferenceConvolver(prep.frames, prep.ref_tac)
    used = prep.used
    sw = np.sqrt(prep.weights[used])
    data = clean_data(prep)

    # basis solution: for each k2a on the grid the model is linear, C_T = R1 z_j with
    # z_j = C_R + (k2' - k2a_j) B_j; refined between grid points, it starts the polish
    thetas = np.geomspace(k2p * 0.1 / (1.0 + upper[1]), k2p * 5.0 / (1.0 + lower[1]),
                          max(int(n_basis), 3))
    z = prep.ref_tac[used][:, None] + (k2p - thetas) * conv.frame_averages(thetas)[used]
    grid = grid_search(None, z, data, sw, refine=True, start_only=True)
    k2a = grid_rate(thetas, grid.best, grid.offset, "log")
    with np.errstate(invalid="ignore", divide="ignore"):
        bp_0 = grid.b * k2p / k2a - 1.0
    start = np.column_stack([grid.b, np.where(np.isfinite(bp_0), bp_0, 0.0)])
    table = RateTable(conv, lower[0] * k2p / (1.0 + upper[1]),
                      upper[0] * k2p / (1.0 + lower[1]), rows=used, scale=sw)
    ref = (prep.ref_tac[used] * sw)[:, None]  # weighted, as the optimizer works

    def model(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r1, bp = params[:, 0], params[:, 1]
        per_r1 = k2p / (1.0 + bp)          # k2a / R1
        rate = r1 * per_r1
        x, dx = table.values_and_slopes(rate)
        jac = np.empty((2, *x.shape))
        shape = np.multiply(k2p - rate, x, out=jac[0])
        shape += ref                        # C_R + (k2' - k2a) X = prediction / R1
        d_rate = np.multiply(k2p - rate, dx, out=jac[1])
        d_rate -= x
        d_rate *= r1                        # d prediction / d k2a
        pred = r1 * shape
        jac[0] += d_rate * per_r1
        d_rate *= -rate / (1.0 + bp)
        return pred, jac

    # small chunks keep the working arrays in cache; SRTM2 converges in 2-3 iterations,
    # so the per-iteration overhead of many chunks stays small
    result = fit_in_chunks(model, data * sw[:, None], start, lower, upper,
                           max_iter=max_iter, settle=SETTLE_STEP, chunk=4096)
    r1, bp = result.params.T
    fitted = full_frames(prep, unweighted(result.prediction, sw, lambda: predict_srtm2(
        prep.frames, prep.ref_tac, r1, bp, k2p)[used]))
    cov = result.covariance
    with np.errstate(invalid="ignore"):
        se = {"r1": np.sqrt(cov[:, 0, 0]), "bp_nd": np.sqrt(cov[:, 1, 1])}
    se["k2"] = k2p * se["r1"]
    at_bound = on_bound(result.params, lower, upper)
    options = {"window": window, "k2prime": k2p,
               "bounds": {"r1": list(merged["r1"]), "bp_nd": list(merged["bp_nd"])},
               "n_basis": int(n_basis), "max_iter": int(max_iter)}
    flags = [("at_bound", at_bound), ("not_converged", ~result.converged)]
    return finish_fit("srtm2", prep, r1, r1 * k2p, bp, fitted, se, flags, options, k2prime=k2p)


def describe(options: dict[str, Any] | None = None) -> str:
    """One methods sentence for SRTM2 fits made with ``options``.

    Parameters
    ----------
    options : dict, default=None
        The fit's options (``k2prime``, ``k2prime_source``, ``window``, ``weights``,
        ``reference``).
    """
    o = dict(options or {})
    window = o.get("window")
    span = window_text(window)
    source = o.get("k2prime_source", "given")
    ref = f"region {o['reference']!r}" if o.get("reference") else "a reference region"
    k2p = o.get("k2prime")
    k2p_text = f"{k2p:.4g} 1/min" if isinstance(k2p, int | float) else "a fixed value"
    return (f"BP_ND was estimated with SRTM2 (Wu & Carson 2002), SRTM with the reference "
            f"efflux rate k2' fixed at {k2p_text} ({source}), with "
            f"{ref} as reference tissue, by weighted "
            f"nonlinear least squares on frame-averaged predictions{span}, with "
            f"{o.get('weights', 'uniform')} frame weights.")


def _check_k2prime(k2prime: Any) -> float:
    try:
        value = float(k2prime)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ConfigError(format_problem(
            None, f"srtm2 needs k2prime, a positive rate in 1/min; got {k2prime!r}",
            "Give --k2prime VALUE (e.g. the median k2/R1 of SRTM in high-binding regions)."))
    return value
