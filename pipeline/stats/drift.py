"""The null drift of within-scan contrasts: what each analysis shows without release.

In a bolus-plus-infusion scan the BP_ND of an early and a late window differ even when
nothing is released: tissue approaches equilibrium slowly, blood and labelled metabolites
keep changing, and partial-volume mixing blends regions with different kinetics. petbp
estimates that drift from each scan itself. The release model, a segmented SRTM fitted
after the bolus transient (:mod:`pipeline.kinetics.release`), takes its estimate of the
release out of the TACs; every configured model is fitted again on what is left
(``bp_nd_null`` in the fit tables), and the change it shows there is that scan's drift;
a participant's drift is its mean over the participant's scans with the same windows
(:mod:`pipeline.stats.drift_pool`), and :mod:`pipeline.stats.regional` subtracts it. What
the data cannot show, the release model's own residual drift, enters each test as a
systematic SD (``sys_sd``).

This module summarizes the drift per within-scan contrast, region and model
(``group/null_drift.tsv``) from the contrast table.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.tables import provenance, write_table

__all__ = ["DRIFT_COLUMNS", "drift_table", "write_drift_table"]

#: Columns of ``group/null_drift.tsv``.
DRIFT_COLUMNS = ["contrast", "region", "model", "drift_method", "n", "change_pct_mean",
                 "drift_pct", "drift_sd", "drift_sys_sd", "drift_ci_low", "drift_ci_high",
                 "effect_pct_mean", "headline", "guard"]


def drift_table(contrasts: pd.DataFrame) -> pd.DataFrame:
    """The drift rows of a contrast table (within-scan contrasts with a drift estimate).

    Parameters
    ----------
    contrasts : DataFrame
        ``group/contrasts.tsv`` (:func:`pipeline.stats.contrast_tests.summarize_contrasts`); with
        design groups, the pooled rows (``group`` = ``all``) are kept.

    Returns
    -------
    DataFrame
        :data:`DRIFT_COLUMNS`: per contrast, region and model the participants' mean raw
        change, mean drift with its SD over participants, the systematic SD, the drift's
        95 % interval (both parts), the tested effect and the guard's verdict. Empty when
        no contrast has a within-scan drift estimate.
    """
    rows = contrasts
    if "group" in rows:
        rows = rows[rows["group"].astype(str) == "all"]
    rows = rows[rows["drift_method"] == "release_model"] if "drift_method" in rows \
        else rows.iloc[0:0]
    return rows.reindex(columns=DRIFT_COLUMNS).reset_index(drop=True)


def write_drift_table(path: str | PathLike, table: pd.DataFrame, **record: Any) -> Path:
    """Write ``group/null_drift.tsv`` with a sidecar that says how it was estimated.

    Parameters
    ----------
    path : str or path-like
        The TSV to write; the sidecar goes beside it.
    table : DataFrame
        :func:`drift_table` rows.
    **record
        Sidecar fields (method, release-model settings, systematic SD).

    Returns
    -------
    Path
        The TSV written.
    """
    write_table(path, table, provenance(
        Description="Null drift of within-scan contrasts: per participant, the change of "
        "BP_ND between the windows that the model shows on the scan's TACs with the release "
        "model's release taken out (segmented SRTM from fit_start: R1 and k2 shared, BP_ND "
        "stepping at the condition onset), averaged over the participant's scans with the "
        "same windows when drift_pool is scans; drift_pct = mean over participants, drift_sd = "
        "their SD, drift_sys_sd = the systematic SD of the release model's residual drift, "
        "drift_ci_low/high = 95 % interval of the mean drift with both parts; % of baseline "
        "BP_ND, negative = BP_ND lower in the condition window",
        assumptions=["the segmented SRTM describes each region's TAC after fit_start up to "
                     "a change of BP_ND at the condition onset (one-tissue-like exchange, "
                     "R1 and k2 constant over the scan)",
                     "the reference region holds no specific binding and no release",
                     "with drift_pool scans: a participant's scans with the same windows "
                     "share the null drift (same protocol), differing only in release",
                     "what the release model cannot see (its residual drift) is of the size "
                     "of the systematic SD"],
        **record))
    return Path(path)
