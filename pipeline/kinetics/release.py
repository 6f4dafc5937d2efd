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

import numpy as np
import pandas as pd

from pipeline.kinetics.srtm_segments import remove_release
from pipeline.tables import TacTable

__all__ = ["release_free_tacs", "segment_boundaries"]


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
