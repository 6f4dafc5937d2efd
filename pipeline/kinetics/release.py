"""Within-scan release: where a scan's condition windows meet, and its TACs without release.

In a within-scan design (a baseline window then a condition window of one bolus-plus-
infusion scan) every windowed estimate drifts between the windows even without release.
The segmented SRTM (:mod:`pipeline.kinetics.srtm_segments`), fitted after the bolus
transient, estimates the release at each condition onset; taking that release out of the
TACs gives what the scan would have shown without it. A model fitted to those release-free
TACs shows its own drift, which the contrasts subtract participant by participant
(:mod:`pipeline.stats.regional`). Minutes and Bq/mL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.frames import Frames
from pipeline.kinetics.srtm_segments import (
    MAX_CHANGE,
    SegmentFit,
    fit_srtm_segments,
    predict_srtm_segments,
)
from pipeline.tables import TacTable

__all__ = ["RELEASE_MODELS", "release_columns", "release_free_tacs", "release_record",
           "remove_release", "scan_release_free", "segment_boundaries"]


def segment_boundaries(conditions: Sequence[tuple[str, Sequence[float | None] | None]]
                       ) -> list[float]:
    """Times (minutes) at which a scan's condition windows follow one another.

    Windows of one scan that start after the earliest one mark the onsets of new
    conditions (``[5, 45]`` then ``[45, 90]``: onset 45). A scan with one window, or with
    whole-scan conditions, has none.

    Parameters
    ----------
    conditions : sequence of (str, window)
        The scan's condition names and windows (``[start, end]`` in minutes, or None for
        the whole scan).

    Returns
    -------
    list of float
        Onsets in minutes, ascending.

    Examples
    --------
    >>> segment_boundaries([("base", (5, 45)), ("task", (45, 90))])
    [45.0]
    >>> segment_boundaries([("baseline", None)])
    []
    """
    windows = [w for _, w in conditions if w is not None and None not in tuple(w)]
    starts = sorted({float(w[0]) for w in windows})
    if len(starts) < 2:
        return []
    last_end = max(float(w[1]) for w in windows)
    return [t for t in starts[1:] if t < last_end]


#: How the release model obtains R1 and k2 (``statistics.null_drift.release_model``):
#:
#: * ``srtm`` - R1 and k2 fitted with the BP_ND steps from ``fit_start`` on;
#: * ``early_step`` - the same fit from ``fit_start``, with one more BP_ND step at
#:   ``baseline_start``: the frames before it inform R1 and k2 but have a BP_ND of their own
#:   (a nuisance for the bolus transient, which a blurred mixture of kinetics describes
#:   least well), and the release is measured against the BP_ND from ``baseline_start`` to
#:   the onset; a TAC whose stepped fit fails (a flag, a non-positive baseline BP_ND or a
#:   change beyond :data:`MAX_CHANGE`) keeps the ``srtm`` fit;
#: * ``early_step_aic`` - ``early_step`` only where the nuisance step earns its parameter
#:   (lower small-sample Akaike criterion, AICc, than the ``srtm`` fit), else ``srtm``;
#: * ``early_step_r1`` - ``early_step`` with R1 held at the ``srtm`` fit's value (k2 and the
#:   steps free): as many free parameters as ``srtm``, so less noise than ``early_step``,
#:   at the price of the bias a transient puts into that R1;
#: * ``srtm2`` - k2 tied to R1 through the subject's shared k2' (k2 = R1 k2'), R1 and the
#:   steps free;
#: * ``two_stage`` - R1 and k2 from a plain SRTM over the whole first segment (injection to
#:   the first onset), only the BP_ND steps fitted from ``fit_start`` on.
RELEASE_MODELS = ("srtm", "early_step", "early_step_aic", "early_step_r1", "srtm2",
                  "two_stage")


def _aicc(fit: SegmentFit) -> np.ndarray:
    """Small-sample Akaike criterion of each TAC's fit (weighted RSS, 2 + n_segments
    parameters)."""
    n = int(fit.used.sum())
    k = 2 + fit.bp_nd.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return n * np.log(fit.rss / n) + 2 * k + 2 * k * (k + 1) / max(n - k - 1, 1)


def _segment_fit(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
                 boundaries: Sequence[float], fit_start: float, weights: np.ndarray,
                 release_model: str, k2prime: float | None, baseline_start: float | None
                 ) -> tuple[SegmentFit, np.ndarray]:
    """The release model's segmented SRTM fit and which TACs every stage of it fitted.

    With ``early_step`` the fit has one leading nuisance segment (``fit_start`` to
    ``baseline_start``) before the design's segments.
    """
    if release_model not in RELEASE_MODELS:
        raise ConfigError(format_problem(
            None, f"release_model must be one of {', '.join(RELEASE_MODELS)}; "
            f"got {release_model!r}", "Set statistics.null_drift.release_model."))
    window = (fit_start, float(frames.end[-1]) + 1e-9)
    ok = np.ones(tacs.shape[1], bool)
    if release_model == "srtm2":
        if k2prime is None or not np.isfinite(k2prime) or k2prime <= 0:
            raise InputError(format_problem(
                None, f"the srtm2 release model needs the subject's k2' (got {k2prime})",
                "Give a positive k2' (1/min) or use release_model: srtm."))
        return fit_srtm_segments(frames, ref_tac, tacs, boundaries=boundaries, window=window,
                                 shared="k2prime", k2prime=float(k2prime),
                                 weights=weights), ok
    if release_model.startswith("early_step"):
        first = min(float(b) for b in boundaries)
        if baseline_start is None or not fit_start < baseline_start < first:
            raise ConfigError(format_problem(
                None, f"the early_step release model needs fit_start < baseline_start < "
                f"the first onset ({fit_start:g}, {baseline_start}, {first:g} min)",
                "Set statistics.null_drift.baseline_start between fit_start and the onset."))
        plain = fit_srtm_segments(frames, ref_tac, tacs, boundaries=boundaries,
                                  window=window, weights=weights)
        given = dict(shared="r1", r1=np.where(plain.r1 > 0, plain.r1, 1.0)) \
            if release_model == "early_step_r1" else {}
        stepped = fit_srtm_segments(frames, ref_tac, tacs,
                                    boundaries=[float(baseline_start), *boundaries],
                                    window=window, weights=weights, **given)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.abs(stepped.bp_nd[2:] / stepped.bp_nd[1] - 1.0)
        good = (stepped.flags == "") & (stepped.bp_nd[1] > 0) \
            & np.all(change <= MAX_CHANGE, axis=0)
        if release_model == "early_step_aic":
            good &= _aicc(stepped) < _aicc(plain)
        # a TAC the stepped fit cannot describe keeps the plain fit (its nuisance BP_ND set
        # to the baseline's, i.e. no nuisance step)
        bp = np.where(good[None, :], stepped.bp_nd, np.vstack([plain.bp_nd[:1], plain.bp_nd]))
        return replace(stepped, bp_nd=bp, r1=np.where(good, stepped.r1, plain.r1),
                       k2=np.where(good, stepped.k2, plain.k2),
                       rates=np.where(good[None, :], stepped.rates,
                                      np.vstack([plain.rates[:1], plain.rates])),
                       flags=np.where(good, stepped.flags, plain.flags)), ok
    if release_model == "two_stage":
        first = min(float(b) for b in boundaries)
        rates = fit_srtm_segments(frames, ref_tac, tacs, boundaries=[],
                                  window=(float(frames.start[0]), first), weights=weights)
        ok = (rates.flags == "") & np.isfinite(rates.r1) & np.isfinite(rates.k2)
        r1 = np.where(ok, rates.r1, 1.0)
        k2 = np.where(ok, rates.k2, 0.1)
        return fit_srtm_segments(frames, ref_tac, tacs, boundaries=boundaries, window=window,
                                 shared="given", r1=r1, k2=k2, weights=weights), ok
    return fit_srtm_segments(frames, ref_tac, tacs, boundaries=boundaries, window=window,
                             weights=weights), ok


def remove_release(frames: Frames, ref_tac: np.ndarray, tacs: np.ndarray, *,
                   boundaries: Sequence[float], fit_start: float,
                   weights: np.ndarray | None = None, release_model: str = "srtm",
                   k2prime: float | None = None, baseline_start: float | None = None
                   ) -> tuple[np.ndarray, SegmentFit]:
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
    release_model : str, default="srtm"
        How the segmented SRTM's R1 and k2 are obtained (:data:`RELEASE_MODELS`).
    k2prime : float, default=None
        The subject's reference efflux k2', 1/min (``release_model="srtm2"``).
    baseline_start : float, default=None
        Minutes, between ``fit_start`` and the first boundary: where the baseline BP_ND of
        ``release_model="early_step"`` begins.

    Returns
    -------
    release_free : ndarray of shape (n_frames, n_tacs)
        Bq/mL; equal to ``tacs`` before the first boundary; NaN where the fit failed
        (a flag, a non-positive first-segment BP_ND, or a change of BP_ND beyond
        :data:`pipeline.kinetics.srtm_segments.MAX_CHANGE`), so that no drift is claimed there.
    fit : SegmentFit
        The segmented SRTM's fit (its segments those of ``boundaries``; an ``early_step``
        nuisance segment dropped).
    """
    tacs = np.asarray(tacs, float)
    tacs2 = tacs[:, None] if tacs.ndim == 1 else tacs
    weights = frames.duration if weights is None else weights
    fit, stage_ok = _segment_fit(frames, ref_tac, tacs2, boundaries=boundaries,
                                 fit_start=float(fit_start), weights=weights,
                                 release_model=release_model, k2prime=k2prime,
                                 baseline_start=baseline_start)
    lead = fit.bp_nd.shape[0] - len(boundaries) - 1  # nuisance segments before fit_start
    constant = fit.bp_nd.copy()
    constant[lead:] = fit.bp_nd[lead]
    null = predict_srtm_segments(frames, ref_tac, r1=fit.r1, k2=fit.k2, bp_nd=constant,
                                 boundaries=fit.boundaries)
    full = predict_srtm_segments(frames, ref_tac, r1=fit.r1, k2=fit.k2, bp_nd=fit.bp_nd,
                                 boundaries=fit.boundaries)
    fit = replace(fit, bp_nd=fit.bp_nd[lead:], rates=fit.rates[lead:],
                  boundaries=fit.boundaries[lead:])
    after = frames.mid > min(float(b) for b in boundaries)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.abs(fit.bp_nd / fit.bp_nd[:1] - 1.0)
    ok = stage_ok & (fit.flags == "") & np.all(np.isfinite(full - null), axis=0) \
        & (fit.bp_nd[0] > 0) & np.all(change <= MAX_CHANGE, axis=0)
    release = np.where(after[:, None], full - null, 0.0)
    out = np.where(ok[None, :], tacs2 - release, np.nan)
    return (out[:, 0] if tacs.ndim == 1 else out), fit


def release_free_tacs(tacs: TacTable, *, reference: str, boundaries: Sequence[float],
                      fit_start: float, release_model: str = "srtm",
                      k2prime: float | None = None, baseline_start: float | None = None
                      ) -> tuple[TacTable, pd.DataFrame]:
    """The scan's TACs with the segmented SRTM's release estimate removed after each onset.

    Parameters
    ----------
    tacs : TacTable
        Minutes, Bq/mL, the reference among the regions.
    reference : str
        The reference region's column.
    boundaries : sequence of float
        Condition onsets, minutes (:func:`segment_boundaries`).
    fit_start : float
        Minutes; the release model's first fitted frame (after the bolus transient).
    release_model : str, default="srtm"
        How R1 and k2 are obtained (:data:`RELEASE_MODELS`).
    k2prime : float, default=None
        The subject's shared k2', 1/min (``release_model="srtm2"``).
    baseline_start : float, default=None
        Minutes; start of the baseline BP_ND of ``release_model="early_step"``.

    Returns
    -------
    release_free : TacTable
        The reference unchanged; targets NaN where the release model failed.
    summary : DataFrame
        Per target region: ``release_flags`` and ``release_pct_<k>``, the model's % fall of
        BP_ND from the first segment to segment ``k`` (positive = BP_ND fell); its
        ``attrs["record"]`` is :func:`release_record` of the settings.
    """
    ref = tacs.column(reference)
    targets = [r for r in tacs.regions if r != reference]
    free, fit = remove_release(tacs.frames, ref, tacs.tacs[targets].to_numpy(float),
                               boundaries=boundaries, fit_start=fit_start,
                               release_model=release_model, k2prime=k2prime,
                               baseline_start=baseline_start)
    table = tacs.tacs.copy()
    table[targets] = free
    summary = pd.DataFrame({"region": targets, "release_flags": fit.flags})
    summary.attrs["record"] = release_record(boundaries, fit_start, release_model,
                                             baseline_start)
    for k in range(1, fit.bp_nd.shape[0]):
        with np.errstate(divide="ignore", invalid="ignore"):
            summary[f"release_pct_{k}"] = 100.0 * (1.0 - fit.bp_nd[k] / fit.bp_nd[0])
    return TacTable(tacs.frames, table), summary


def scan_release_free(tacs: TacTable, *, reference: str, boundaries: Sequence[float],
                      fit_start: float | None, release_model: str = "srtm",
                      k2prime: float | None = None, baseline_start: float | None = None
                      ) -> tuple[TacTable | None, pd.DataFrame | None]:
    """:func:`release_free_tacs` of a scan when it has a release model, else (None, None).

    Parameters
    ----------
    tacs : TacTable
        Minutes, Bq/mL, the reference among the regions.
    reference : str
        The reference region's column.
    boundaries : sequence of float
        Condition onsets, minutes (:func:`segment_boundaries`); empty: no release model.
    fit_start : float or None
        Minutes; the release model's first fitted frame. None: no release model.
    release_model, k2prime, baseline_start
        As :func:`release_free_tacs`.

    Returns
    -------
    (TacTable or None, DataFrame or None)
        As :func:`release_free_tacs`, or (None, None) without a release model.
    """
    if fit_start is None or not boundaries:
        return None, None
    return release_free_tacs(tacs, reference=reference, boundaries=boundaries,
                             fit_start=float(fit_start), release_model=release_model,
                             k2prime=k2prime, baseline_start=baseline_start)


def release_columns(table: pd.DataFrame, windows: Sequence[tuple[str, Any]],
                    boundaries: Sequence[float], release: pd.DataFrame | None
                    ) -> pd.DataFrame:
    """A fit table with the release model's ``release_pct`` and ``release_flags`` per row.

    Parameters
    ----------
    table : DataFrame
        A scan's fit table (``condition`` and ``region`` columns).
    windows : sequence of (str, window)
        Condition name and window (minutes, or None for the whole scan).
    boundaries : sequence of float
        Condition onsets, minutes (:func:`segment_boundaries`).
    release : DataFrame or None
        The summary of :func:`release_free_tacs`; None without a release model.

    Returns
    -------
    DataFrame
        A copy with ``release_pct`` (the release model's % fall of BP_ND at the row's
        window; 0 in the first segment, NaN without a release model) and
        ``release_flags``.
    """
    table = table.copy()
    table["release_pct"] = np.nan
    table["release_flags"] = ""
    if release is None:
        return table
    per_region = release.set_index("region")
    starts = {name: (np.nan if w is None else w[0]) for name, w in windows}
    for name in table["condition"].unique():
        k = int(np.searchsorted(boundaries, starts.get(name, np.nan), side="right"))
        rows = table["condition"] == name
        table.loc[rows, "release_pct"] = 0.0 if k == 0 else \
            table.loc[rows, "region"].map(per_region[f"release_pct_{k}"]).to_numpy(float)
        table.loc[rows, "release_flags"] = table.loc[rows, "region"].map(
            per_region["release_flags"]).fillna("").to_numpy(object)
    return table


def release_record(boundaries: Sequence[float], fit_start: float, release_model: str = "srtm",
                   baseline_start: float | None = None) -> dict[str, Any]:
    """The release model's settings as recorded in a fit table's sidecar.

    Parameters
    ----------
    boundaries : sequence of float
        Condition onsets, minutes.
    fit_start : float
        Minutes; the release model's first fitted frame.
    release_model : str, default="srtm"
        One of :data:`RELEASE_MODELS`.
    baseline_start : float, default=None
        Minutes; where ``early_step``'s baseline BP_ND begins.

    Returns
    -------
    dict
        ``model`` (words), ``release_model``, ``boundaries_min``, ``fit_start_min`` and,
        for ``early_step``, ``baseline_start_min``.

    Examples
    --------
    >>> release_record([45.0], 10, "early_step", 20)["baseline_start_min"]
    20.0
    """
    record: dict[str, Any] = {
        "model": "segmented SRTM (R1 and k2 shared, BP_ND stepping at the onsets"
        + (f"; a nuisance BP_ND from {fit_start:g} to {baseline_start:g} min)"
           if release_model.startswith("early_step") else ")"),
        "release_model": release_model, "boundaries_min": [float(b) for b in boundaries],
        "fit_start_min": float(fit_start)}
    if release_model.startswith("early_step"):
        record["baseline_start_min"] = float(baseline_start)
    return record
