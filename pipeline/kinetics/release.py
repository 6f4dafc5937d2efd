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
from typing import Any

import numpy as np
import pandas as pd

from pipeline.frames import Frames
from pipeline.kinetics.srtm_segments import (
    MAX_CHANGE,
    SegmentFit,
    fit_srtm_segments,
    predict_srtm_segments,
)
from pipeline.tables import TacTable

__all__ = ["release_columns", "release_free_tacs", "remove_release", "scan_release_free",
           "segment_boundaries"]


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
        :data:`pipeline.kinetics.srtm_segments.MAX_CHANGE`), so that no drift is claimed there.
    fit : SegmentFit
        The segmented SRTM's fit.
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


def release_free_tacs(tacs: TacTable, *, reference: str, boundaries: Sequence[float],
                      fit_start: float) -> tuple[TacTable, pd.DataFrame]:
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

    Returns
    -------
    release_free : TacTable
        The reference unchanged; targets NaN where the release model failed.
    summary : DataFrame
        Per target region: ``release_flags`` and ``release_pct_<k>``, the model's % fall of
        BP_ND from the first segment to segment ``k`` (positive = BP_ND fell).
    """
    ref = tacs.column(reference)
    targets = [r for r in tacs.regions if r != reference]
    free, fit = remove_release(tacs.frames, ref, tacs.tacs[targets].to_numpy(float),
                               boundaries=boundaries, fit_start=fit_start)
    table = tacs.tacs.copy()
    table[targets] = free
    summary = pd.DataFrame({"region": targets, "release_flags": fit.flags})
    for k in range(1, fit.bp_nd.shape[0]):
        with np.errstate(divide="ignore", invalid="ignore"):
            summary[f"release_pct_{k}"] = 100.0 * (1.0 - fit.bp_nd[k] / fit.bp_nd[0])
    return TacTable(tacs.frames, table), summary


def scan_release_free(tacs: TacTable, *, reference: str, boundaries: Sequence[float],
                      fit_start: float | None) -> tuple[TacTable | None, pd.DataFrame | None]:
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

    Returns
    -------
    (TacTable or None, DataFrame or None)
        As :func:`release_free_tacs`, or (None, None) without a release model.
    """
    if fit_start is None or not boundaries:
        return None, None
    return release_free_tacs(tacs, reference=reference, boundaries=boundaries,
                             fit_start=float(fit_start))


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
