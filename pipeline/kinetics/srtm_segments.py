"""Segmented SRTM: one BP_ND per time segment of a scan, R1 and k2 shared.

For within-scan designs (a baseline window then a condition window of one bolus-plus-
infusion scan) the release of an endogenous ligand lowers the receptors available from the
onset of the condition on. Fitting each window on its own (windowed Logan, MRTM2, ...) mixes
the change with the slow approach to equilibrium that every region shows after a bolus; the
segmented SRTM instead describes the whole scan with one delivery (R1) and efflux (k2) and
lets BP_ND step at the segment boundaries, as in SRTM with a time-varying binding term
(Alpert et al. 2003, LSSRM; Zhou et al. 2006). The apparent efflux rate
``k2a = k2 / (1 + BP_ND)`` is constant within a segment; the model

    C_T(t) = R1 (C_R(t) - V(t)) + k2 U(t)

(:mod:`pipeline.kinetics._segments`) is solved exactly for the frame-consistent reference.

Three ways to handle R1 and k2 (``shared``):

* ``fit`` - estimated with the segment BP_ND from the fitted frames (SRTM with steps);
* ``k2prime`` - ``k2 = R1 k2'`` with the subject's k2' given (SRTM2 with steps);
* ``r1`` - R1 given per TAC (delivery, which the early frames determine), k2 fitted;
* ``given`` - R1 and k2 given per TAC (e.g. from SRTM over the baseline segment).

With the rates ``k2a_s`` as the only nonlinear parameters (variable projection), R1 and k2
follow by weighted least squares, so the fit is a small batched Levenberg-Marquardt over
``n_segments`` parameters per TAC, started from the best single-rate (no-change) solution.
Minutes, 1/min, Bq/mL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics._lm import fit_in_chunks
from pipeline.kinetics._segments import SegmentedConvolver

__all__ = ["MAX_CHANGE", "SHARED", "SegmentFit", "fit_srtm_segments", "predict_srtm_segments",
           "remove_release"]

#: How R1 and k2 are obtained (see the module text).
SHARED = ("fit", "k2prime", "r1", "given")

#: k2a grid of the single-rate start, 1/min.
_START_RATES = np.geomspace(0.005, 1.0, 60)
#: Largest relative change of BP_ND between segments taken as a fit of the scan rather than
#: of its noise (receptor occupancy changes of endogenous release are a few per cent to
#: ~20 %; a fitted change of half the binding is a failed fit).
MAX_CHANGE = 0.5
#: Relative step of the finite-difference Jacobian in log-rate.
_STEP = 1e-4


@dataclass(frozen=True)
class SegmentFit:
    """Segmented SRTM fit of many TACs.

    Attributes
    ----------
    bp_nd : ndarray of shape (n_segments, n_tacs)
        BP_ND of each segment, unitless.
    r1 : ndarray of shape (n_tacs,)
        K1/K1', unitless.
    k2 : ndarray of shape (n_tacs,)
        1/min.
    rates : ndarray of shape (n_segments, n_tacs)
        Apparent efflux ``k2a`` per segment, 1/min.
    fitted : ndarray of shape (n_frames, n_tacs)
        Frame-averaged prediction, Bq/mL (NaN outside the fitted frames).
    used : ndarray of shape (n_frames,)
        Fitted frames.
    rss : ndarray of shape (n_tacs,)
        Weighted residual sum of squares.
    flags : ndarray of shape (n_tacs,)
        ``""``, ``at_bound``, ``not_converged``, ``nonpositive_fit`` joined by ``;``.
    boundaries : tuple of float
        Segment boundaries, minutes.
    options : dict
    """

    bp_nd: np.ndarray
    r1: np.ndarray
    k2: np.ndarray
    rates: np.ndarray
    fitted: np.ndarray
    used: np.ndarray
    rss: np.ndarray
    flags: np.ndarray
    boundaries: tuple[float, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def change_pct(self, segment: int = 1, baseline: int = 0) -> np.ndarray:
        """``100 (BP_segment - BP_baseline) / BP_baseline`` per TAC (negative = fall)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            base = self.bp_nd[baseline]
            return np.where(base > 0, 100.0 * (self.bp_nd[segment] - base) / base, np.nan)


def predict_srtm_segments(frames: Frames, ref_tac: np.ndarray, *, r1, k2, bp_nd,
                          boundaries: Sequence[float]) -> np.ndarray:
    """Frame-averaged TACs of the segmented SRTM.

    Parameters
    ----------
    frames : Frames
        Minutes.
    ref_tac : ndarray of shape (n_frames,)
        Bq/mL.
    r1, k2 : float or ndarray of shape (m,)
        Unitless and 1/min.
    bp_nd : array-like of shape (n_segments,) or (n_segments, m)
        BP_ND per segment.
    boundaries : sequence of float
        Minutes.

    Returns
    -------
    ndarray of shape (n_frames, m)

    Examples
    --------
    With one BP_ND in both segments it is plain SRTM:

    >>> from pipeline.kinetics.srtm import predict_srtm
    >>> from pipeline.simulate.compartments import srtm_consistent_tacs
    >>> frames = Frames(np.arange(0, 90, 5.0), np.arange(5, 95, 5.0))
    >>> ref, _ = srtm_consistent_tacs(frames, [1.5], r1=0.9, k2prime=0.1)
    >>> same = predict_srtm_segments(frames, ref, r1=0.9, k2=0.09, bp_nd=[1.5, 1.5],
    ...                              boundaries=[45.0])
    >>> bool(np.allclose(same[:, 0], predict_srtm(frames, ref, 0.9, 0.09, 1.5).ravel()))
    True
    """
    bp = np.asarray(bp_nd, float)
    bp = bp[:, None] if bp.ndim == 1 else bp
    r1 = np.broadcast_to(np.asarray(r1, float), bp.shape[1:])
    k2 = np.broadcast_to(np.asarray(k2, float), bp.shape[1:])
    conv = SegmentedConvolver(frames, ref_tac, boundaries)
    if bp.shape[0] != conv.n_segments:
        raise ConfigError(format_problem(
            None, f"{bp.shape[0]} BP_ND values for {conv.n_segments} segments",
            "Give one BP_ND per segment (boundaries + 1)."))
    u, v = conv.frame_averages((k2[None, :] / (1.0 + bp)).T)
    return r1 * (np.asarray(ref_tac, float)[:, None] - v) + k2 * u


def _linear_part(shared: str, ref: np.ndarray, u: np.ndarray, v: np.ndarray, data: np.ndarray,
                 w: np.ndarray, k2prime: float | None, given: tuple | None):
    """R1 and k2 given the rates (weighted least squares), and the prediction."""
    a = ref[:, None] - v
    if shared == "given":
        r1, k2 = given
        return r1, k2, r1 * a + k2 * u
    if shared == "r1":
        r1 = given[0]
        rest = data - r1 * a
        k2 = np.einsum("n,nm,nm->m", w, u, rest) / np.maximum(
            np.einsum("n,nm,nm->m", w, u, u), 1e-300)
        return r1, k2, r1 * a + k2 * u
    if shared == "k2prime":
        basis = a + k2prime * u
        r1 = np.einsum("n,nm,nm->m", w, basis, data) / np.maximum(
            np.einsum("n,nm,nm->m", w, basis, basis), 1e-300)
        return r1, r1 * k2prime, r1 * basis
    saa = np.einsum("n,nm,nm->m", w, a, a)
    sau = np.einsum("n,nm,nm->m", w, a, u)
    suu = np.einsum("n,nm,nm->m", w, u, u)
    say = np.einsum("n,nm,nm->m", w, a, data)
    suy = np.einsum("n,nm,nm->m", w, u, data)
    det = saa * suu - sau**2
    with np.errstate(divide="ignore", invalid="ignore"):
        r1 = np.where(det > 0, (suu * say - sau * suy) / det, np.nan)
        k2 = np.where(det > 0, (saa * suy - sau * say) / det, np.nan)
    return r1, k2, r1 * a + k2 * u


def fit_srtm_segments(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
                      boundaries: Sequence[float], window: tuple[float, float] | None = None,
                      shared: str = "fit", k2prime: float | None = None,
                      r1: np.ndarray | None = None, k2: np.ndarray | None = None,
                      weights: np.ndarray | None = None, nuisance: np.ndarray | None = None,
                      max_iter: int = 50) -> SegmentFit:
    """Fit the segmented SRTM to one or many target TACs.

    Parameters
    ----------
    frames : Frames
        Frame timing, minutes; the scan must start at injection.
    ref_tac : ndarray of shape (n_frames,)
        Reference TAC, Bq/mL, decay-corrected.
    tacs : ndarray of shape (n_frames,) or (n_frames, n_tacs)
        Target TACs, Bq/mL.
    boundaries : sequence of float
        Minutes at which BP_ND may change (e.g. the feedback onset).
    window : (start, end), default=None
        Minutes; frames whose mid-time lies inside are fitted (the reference is integrated
        from injection regardless). None = every frame.
    shared : {"fit", "k2prime", "r1", "given"}, default="fit"
        How R1 and k2 are obtained (module text).
    k2prime : float, default=None
        Reference efflux, 1/min (``shared="k2prime"``).
    r1, k2 : ndarray of shape (n_tacs,), default=None
        Given delivery (``shared="r1"`` or ``"given"``) and efflux (``"given"``).
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights; None = uniform.
    nuisance : ndarray of shape (n_frames, k), default=None
        TACs added with non-negative coefficients, one per column and target TAC (e.g.
        spill-in of a neighbouring tissue class), Bq/mL.
    max_iter : int, default=50

    Returns
    -------
    SegmentFit

    Raises
    ------
    InputError
        Non-finite data, a scan that does not start at injection, fewer fitted frames than
        parameters plus two, or a segment with no fitted frame.
    ConfigError
        Unknown ``shared``, or its inputs missing.
    """
    if shared not in SHARED:
        raise ConfigError(format_problem(None, f"shared must be one of {', '.join(SHARED)}; "
                                         f"got {shared!r}"))
    tacs = np.asarray(tacs, float)
    tacs = tacs[:, None] if tacs.ndim == 1 else tacs
    ref = np.asarray(ref_tac, float)
    if frames.start[0] > 2.0:
        raise InputError(format_problem(
            frames.source or None, f"the first frame starts {frames.start[0]:g} min after "
            "injection; the segmented SRTM integrates the reference from injection",
            "Fit a scan that starts at injection."))
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(tacs))):
        raise InputError(format_problem(frames.source or None, "TACs hold NaN or inf",
                                        "Fix or drop the region."))
    if shared == "k2prime" and not (k2prime is not None and np.isfinite(k2prime) and k2prime > 0):
        raise ConfigError(format_problem(None, "shared='k2prime' needs a positive k2prime"))
    if shared == "given" and (r1 is None or k2 is None):
        raise ConfigError(format_problem(None, "shared='given' needs r1 and k2"))
    if shared == "r1" and r1 is None:
        raise ConfigError(format_problem(None, "shared='r1' needs r1"))
    start, end = (window if window is not None else (None, None))
    used = frames.in_window(start, end)
    bounds = np.asarray(sorted(float(b) for b in boundaries), float)
    n_seg = bounds.size + 1
    seg_of_frame = np.searchsorted(bounds, frames.mid, side="right")
    n_params = n_seg + {"fit": 2, "k2prime": 1, "r1": 1, "given": 0}[shared]
    if used.sum() < n_params + 2 or any(not np.any(used & (seg_of_frame == s))
                                        for s in range(n_seg)):
        raise InputError(format_problem(
            frames.source or None, f"segmented SRTM: {int(used.sum())} frames in the window "
            f"for {n_params} parameters, or a segment without a frame",
            "Widen the window or move the boundaries inside it."))
    conv = SegmentedConvolver(frames, ref, bounds)
    w = np.ones(frames.n_frames) if weights is None else np.asarray(weights, float)
    wu = w[used]
    data = tacs[used]
    ref_u = ref[used]
    m = tacs.shape[1]
    given_r1 = given_k2 = None
    if shared in ("given", "r1"):
        given_r1 = np.broadcast_to(np.asarray(r1, float), (m,)).copy()
    if shared == "given":
        given_k2 = np.broadcast_to(np.asarray(k2, float), (m,)).copy()
    # parameters per TAC: (R1, k2, BP_1..n) for "fit" and "given" (R1, k2 held fixed through
    # zero Jacobian columns), (R1, BP_1..n) for "k2prime"
    n_lin = 1 if shared == "k2prime" else 2

    # start: the best common rate (no change) with R1 and k2 by least squares
    u0, v0 = conv.frame_averages(np.repeat(_START_RATES[:, None], n_seg, axis=1))
    best_rss = np.full(m, np.inf)
    start_r1 = np.ones(m)
    start_k2 = np.full(m, 0.1)
    start_rate = np.full(m, _START_RATES[0])
    for i, rate in enumerate(_START_RATES):
        uu = np.repeat(u0[used][:, [i]], m, 1)
        vv = np.repeat(v0[used][:, [i]], m, 1)
        g = None if given_r1 is None else (given_r1, given_k2)
        a_r1, a_k2, pred = _linear_part(shared, ref_u, uu, vv, data, wu, k2prime, g)
        rss = np.einsum("n,nm->m", wu, (data - pred) ** 2)
        better = np.isfinite(rss) & (rss < best_rss)
        best_rss[better] = rss[better]
        start_r1[better], start_k2[better], start_rate[better] = a_r1[better], a_k2[better], rate
    start_bp = np.clip(start_k2 / start_rate - 1.0, -0.5, 20.0)
    if shared == "given":
        start_r1, start_k2 = given_r1, given_k2
    elif shared == "r1":
        start_r1 = given_r1
    linear = [start_r1] if shared == "k2prime" else [start_r1, start_k2]
    extra = np.zeros((frames.n_frames, 0)) if nuisance is None else \
        np.asarray(nuisance, float).reshape(frames.n_frames, -1)
    n_extra = extra.shape[1]
    extra_u = extra[used]
    start_params = np.column_stack(linear + [start_bp] * n_seg + [np.zeros(m)] * n_extra)
    lower = np.array([1e-3, 1e-4][:n_lin] + [-0.9] * n_seg + [0.0] * n_extra)
    upper = np.array([10.0, 5.0][:n_lin] + [50.0] * n_seg + [1.0] * n_extra)
    if shared == "given":
        lower[:2], upper[:2] = -np.inf, np.inf
    elif shared == "r1":
        lower[0], upper[0] = -np.inf, np.inf
        start_params[:, 1:] = np.clip(start_params[:, 1:], lower[1:] + 1e-9, upper[1:] - 1e-9)
    else:
        start_params = np.clip(start_params, lower + 1e-9, upper - 1e-9)

    def unpack(params: np.ndarray):
        r1_ = params[:, 0]
        k2_ = r1_ * k2prime if shared == "k2prime" else params[:, 1]
        return r1_, k2_, params[:, n_lin:n_lin + n_seg]

    def model(params: np.ndarray):
        r1_, k2_, bp = unpack(params)
        rates = k2_[:, None] / (1.0 + bp)
        u, v = conv.frame_averages(rates)
        u, v = u[used], v[used]
        pred = r1_ * (ref_u[:, None] - v) + k2_ * u + extra_u @ params[:, n_lin + n_seg:].T
        jac = np.empty((*pred.shape, params.shape[1]))
        d_rate = []
        for s in range(n_seg):  # d(k2 U - R1 V)/d rate_s by a forward difference
            bumped = rates.copy()
            bumped[:, s] *= 1.0 + _STEP
            ub, vb = conv.frame_averages(bumped)
            d_rate.append((k2_ * (ub[used] - u) - r1_ * (vb[used] - v))
                          / (rates[:, s] * _STEP))
        if shared in ("fit", "r1"):
            jac[..., 0] = ref_u[:, None] - v if shared == "fit" else 0.0
            jac[..., 1] = u + sum(d_rate[s] / (1.0 + bp[:, s]) for s in range(n_seg))
        elif shared == "given":
            jac[..., :2] = 0.0
        else:
            jac[..., 0] = ref_u[:, None] - v + k2prime * u + sum(
                d_rate[s] * k2prime / (1.0 + bp[:, s]) for s in range(n_seg))
        for s in range(n_seg):
            jac[..., n_lin + s] = -d_rate[s] * k2_ / (1.0 + bp[:, s]) ** 2
        for e in range(n_extra):
            jac[..., n_lin + n_seg + e] = extra_u[:, [e]]
        # the batched LM works on weighted quantities, Jacobian as (parameter, frame, TAC)
        return pred * sqrt_w[:, None], np.moveaxis(jac, -1, 0) * sqrt_w[None, :, None]

    sqrt_w = np.sqrt(wu)
    summary = fit_in_chunks(model, data * sqrt_w[:, None], start_params, lower, upper,
                             max_iter=max_iter, chunk=4096)
    r1_hat, k2_hat, bp = unpack(summary.params)
    pred = summary.prediction / sqrt_w[:, None]
    fitted = np.full(tacs.shape, np.nan)
    fitted[used] = pred
    rss = np.einsum("n,nm->m", wu, (data - pred) ** 2)
    on_bound = np.any(np.isclose(summary.params, lower[None, :], rtol=0, atol=1e-6)
                      | np.isclose(summary.params, upper[None, :], rtol=0, atol=1e-6), axis=1)
    flag_sets = [("not_converged", ~summary.converged), ("at_bound", on_bound),
                 ("nonpositive_fit", ~(np.isfinite(r1_hat) & (r1_hat > 0) & (k2_hat > 0)))]
    flags = np.array([";".join(n for n, f in flag_sets if f[i]) for i in range(m)],
                     dtype=object)
    options = {"boundaries": [float(b) for b in bounds], "window": None if window is None
               else [float(x) for x in window], "shared": shared,
               "k2prime": None if k2prime is None else float(k2prime), "max_iter": int(max_iter)}
    return SegmentFit(bp_nd=bp.T.copy(), r1=np.asarray(r1_hat, float),
                      k2=np.asarray(k2_hat, float), rates=(k2_hat[:, None] / (1.0 + bp)).T,
                      fitted=fitted, used=used, rss=rss, flags=flags,
                      boundaries=tuple(float(b) for b in bounds), options=options)


def remove_release(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
                   boundaries: Sequence[float], fit_start: float,
                   weights: np.ndarray | None = None) -> tuple[np.ndarray, SegmentFit]:
    """Target TACs with the segmented SRTM's estimate of the release taken out.

    The segmented SRTM is fitted from ``fit_start`` to the end of the scan; the release
    component is its prediction minus the same prediction with every segment's BP_ND held at
    the first segment's value, for frames after the first boundary. Subtracting it gives the
    TACs the scan would have shown without a change of binding, as far as the model can
    tell: any model run on them shows the drift it has without release.

    Parameters
    ----------
    frames, ref_tac, tacs
        Minutes and Bq/mL, as for :func:`fit_srtm_segments`.
    boundaries : sequence of float
        Minutes at which binding may change (the condition onsets).
    fit_start : float
        Minutes; the first fitted frame's mid-time is at or after it (past the bolus
        transient, where reference-tissue models describe the data least well).
    weights : ndarray of shape (n_frames,), default=None
        Relative frame weights (None = frame durations).

    Returns
    -------
    release_free : ndarray of shape (n_frames, n_tacs)
        Bq/mL; equal to ``tacs`` before the first boundary; NaN where the fit failed
        (a flag, a non-positive first-segment BP_ND, or a change of BP_ND beyond
        :data:`MAX_CHANGE`), so that no drift is claimed there.
    fit : SegmentFit
    """
    tacs = np.asarray(tacs, float)
    tacs2 = tacs[:, None] if tacs.ndim == 1 else tacs
    weights = frames.duration if weights is None else weights
    fit = fit_srtm_segments(frames, ref_tac, tacs2, boundaries=boundaries,
                            window=(float(fit_start), float(frames.end[-1]) + 1e-9),
                            weights=weights)
    constant = np.repeat(fit.bp_nd[:1], fit.bp_nd.shape[0], axis=0)
    null = predict_srtm_segments(frames, ref_tac, r1=fit.r1, k2=fit.k2, bp_nd=constant,
                                 boundaries=boundaries)
    full = predict_srtm_segments(frames, ref_tac, r1=fit.r1, k2=fit.k2, bp_nd=fit.bp_nd,
                                 boundaries=boundaries)
    after = frames.mid > min(float(b) for b in boundaries)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(fit.bp_nd / fit.bp_nd[:1] - 1.0)
    ok = (fit.flags == "") & np.all(np.isfinite(full - null), axis=0) \
        & (fit.bp_nd[0] > 0) & np.all(change <= MAX_CHANGE, axis=0)
    release = np.where(after[:, None], full - null, 0.0)
    out = np.where(ok[None, :], tacs2 - release, np.nan)
    return (out[:, 0] if tacs.ndim == 1 else out), fit
