"""The ``write_*`` steps of the group statistics: read tables, call the statistics, write.

``write_contrasts`` makes ``group/contrasts.tsv``, ``group/contrast_values.tsv`` (one row
per participant), ``group/exclusions.tsv`` and ``group/null_drift.tsv``;
``write_correlations`` makes ``group/correlations.tsv``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.design import load_design
from pipeline.errors import InputError, format_problem
from pipeline.stats.contrast_tests import SYSTEMATIC_SD, summarize_contrasts
from pipeline.stats.correlations import correlate_scores
from pipeline.stats.groups import with_groups
from pipeline.stats.regional import contrast_values
from pipeline.tables import provenance, write_table

__all__ = ["read_group_table", "write_contrasts", "write_correlations"]

_LABELS = {"participant_id": str, "session": str, "task": str, "run": str,
           "condition": str, "region": str, "model": str, "contrast": str}


def read_group_table(path: str | PathLike) -> pd.DataFrame:
    """Read a group TSV keeping labels as text (``run`` ``01`` stays ``01``).

    Parameters
    ----------
    path : str or path-like
        A ``group/*.tsv`` table (``n/a`` for missing values).

    Returns
    -------
    DataFrame
        The table; participant, session, task and run labels as strings.

    Raises
    ------
    InputError
        If the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(format_problem(path, "file not found", "Run the step that makes it."))
    header = pd.read_csv(path, sep="\t", nrows=0).columns
    dtypes = {k: v for k, v in _LABELS.items() if k in header}
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                       dtype=dtypes)


def write_contrasts(bp_path: str | PathLike, out_contrasts: str | PathLike,
                    out_values: str | PathLike, out_exclusions: str | PathLike,
                    out_drift: str | PathLike | None = None, *, design: Mapping[str, Any],
                    test: str = "ttest", alpha: float = 0.05,
                    drift_method: str = "release_model", sys_sd: float = SYSTEMATIC_SD,
                    drift_pool: str = "scans",
                    participants: pd.DataFrame | None = None,
                    excluded_scans: list[dict] | None = None) -> Path:
    """Paired contrasts of ``group/bp_nd.tsv`` per the config's design and statistics.

    Parameters
    ----------
    bp_path : path-like
        ``group/bp_nd.tsv`` (with ``bp_nd_null`` for the within-scan drift).
    out_contrasts, out_values, out_exclusions : path-like
        ``group/contrasts.tsv``, ``group/contrast_values.tsv``, ``group/exclusions.tsv``.
    out_drift : path-like, default=None
        ``group/null_drift.tsv``: the drift of each within-scan contrast, region and model
        (:mod:`pipeline.stats.drift`).
    design : mapping
        The config's ``design`` section (conditions, contrasts, groups).
    test : {"ttest", "wilcoxon"}, default="ttest"
        ``statistics.test``: which test fills the p column.
    alpha : float, default=0.05
        ``statistics.alpha``: FDR level.
    drift_method : {"release_model", "none"}, default="release_model"
        ``statistics.null_drift.method``: subtract each participant's null drift in
        within-scan contrasts, or test the raw change.
    sys_sd : float, default=SYSTEMATIC_SD
        ``statistics.null_drift.sys_sd``: % points of systematic drift uncertainty.
    drift_pool : {"scans", "none"}, default="scans"
        ``statistics.null_drift.pool``: average each participant's drift over its scans
        with the same windows, or use each scan's own
        (:func:`pipeline.stats.regional.contrast_values`).
    participants : DataFrame, default=None
        ``participants.tsv``, so that participants with no scan at all are listed too.
    excluded_scans : list of dict, default=None
        Scans the workflow left out before the fits (``participant_id``, ``session``,
        ``task``, ``run``, ``reason``; e.g. for head motion): the exclusions table gives
        their reason for the conditions they miss.
    """
    from pipeline.stats.drift import drift_table, write_drift_table

    parsed = load_design({"design": design})
    correct = drift_method == "release_model"
    bp = read_group_table(bp_path)
    expected = None if participants is None else list(participants["participant_id"])
    values, exclusions = contrast_values(bp, parsed, drift_correct=correct,
                                         participants=expected, drift_pool=drift_pool,
                                         excluded_scans=excluded_scans)
    table = summarize_contrasts(values, test=test, sys_sd=sys_sd, alpha=alpha, design=parsed)
    values, table = with_groups(values, table, parsed.groups, participants, test=test,
                                sys_sd=sys_sd, alpha=alpha, design=parsed)
    common = dict(design={k: vars(v) for k, v in parsed.contrasts.items()},
                  drift_method=drift_method, drift_sys_sd=sys_sd, drift_pool=drift_pool,
                  inputs=[str(bp_path)])
    write_table(out_values, values, provenance(
        Description="Per-participant paired values of each contrast, region and model; "
        "change_pct = 100 (BP_condition - BP_baseline) / BP_baseline; drift_pct = the same "
        "change of the model on the TACs without release (within-scan contrasts), averaged "
        "over the participant's drift_scans scans with the same windows (drift_pool scans); "
        "effect_pct = the value tested (drift or control contrast removed)", **common))
    write_table(out_exclusions, exclusions, provenance(
        Description="Participants left out of a contrast, with the reason",
        ScansExcluded=list(excluded_scans or []), **common))
    write_table(out_contrasts, table, provenance(
        Description="Group contrasts per region and model: raw change (change_pct_mean), "
        "null drift (drift_pct, its 95 % interval with the systematic SD), the tested "
        "headline effect (effect_pct_mean; headline says which: drift_corrected, "
        "control_corrected or the guard's fallback) and its test; FDR (Benjamini-Hochberg) "
        "across regions within contrast and model", test=test, alpha=alpha, **common))
    if out_drift is not None:
        write_drift_table(out_drift, drift_table(table), **common)
    return Path(out_contrasts)


def write_correlations(values_path: str | PathLike, participants: pd.DataFrame,
                       out_path: str | PathLike, *, specs: Sequence[Mapping[str, Any]],
                       model: str, n_boot: int = 2000, n_perm: int = 5000,
                       seed: int = 0, ratings_path: str | PathLike | None = None) -> Path:
    """Correlate activation with scores and write ``group/correlations.tsv``.

    Parameters
    ----------
    values_path : str or path-like
        ``group/contrast_values.tsv`` (per-participant activation, % after drift control).
    participants : DataFrame
        ``participants.tsv`` with the score columns.
    out_path : str or path-like
        The table to write (sidecar beside it).
    specs : sequence of mapping
        ``statistics.correlations`` entries (contrast, region, score, optional covariates
        and group); see :func:`pipeline.stats.correlations.correlate_scores`.
    model : str
        The model whose activation is correlated.
    n_boot : int, default=2000
        Bootstrap resamples for the 95 % CI.
    n_perm : int, default=5000
        Permutations for the permutation p.
    seed : int, default=0
        Random seed.
    ratings_path : str or path-like, default=None
        ``group/rating_changes.tsv``, for scores that are phenotype measures.

    Returns
    -------
    Path
        The table written.
    """
    values = read_group_table(values_path)
    ratings = read_group_table(ratings_path) if ratings_path else None
    table = correlate_scores(values, participants, specs, model=model, n_boot=n_boot,
                             n_perm=n_perm, seed=seed, ratings=ratings)
    write_table(out_path, table, provenance(
        Description="Activation (BP_baseline - BP_condition, absolute and % after drift "
        "control) against participant scores: r, parametric p, permutation p "
        f"({n_perm} pairings), percentile bootstrap 95% CI ({n_boot} resamples)",
        specs=[dict(s) for s in specs], seed=seed, inputs=[str(values_path)]))
    return Path(out_path)
