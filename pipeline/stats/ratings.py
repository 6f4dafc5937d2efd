"""Condition-level ratings: the rating change of each contrast, tested within and between
groups.

For a contrast C with conditions ``baseline`` and ``condition``, a participant's rating
change on measure M is ``rating_M(C.condition) - rating_M(C.baseline)`` (with a control
contrast, minus the control's rating change, as for BP_ND). It is computed for every
phenotype measure whose file has the contrast's condition columns, and is what a
correlation of C with ``score: M`` uses (:mod:`pipeline.stats.correlations`).

Within each group (and pooled) the mean rating change is tested against zero (one-sample
t, Wilcoxon signed-rank as well); between groups, as for activation
(:mod:`pipeline.stats.two_sample`): Welch's t with a 95 % CI of the difference (reference
group minus the other), Hedges' g and a label-permutation p.

Participants of a rating file who have no scans are left out (a log line and the
``excluded`` list of the sidecar); so are missing ratings (``n/a``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.design import Design
from pipeline.errors import InputError, format_problem
from pipeline.groups import POOLED, Groups
from pipeline.phenotype import Ratings
from pipeline.stats.contrast_tests import cohen_dz_ci
from pipeline.stats.two_sample import two_sample_row

__all__ = ["CHANGE_COLUMNS", "TEST_COLUMNS", "rating_changes", "rating_tests"]

log = logging.getLogger(__name__)

CHANGE_COLUMNS = ["measure", "contrast", "participant_id", "group", "rating_baseline",
                  "rating_condition", "rating_change"]
TEST_COLUMNS = ["measure", "contrast", "test", "group", "group_a", "group_b", "n", "n_b",
                "mean", "sd", "ci_low", "ci_high", "t", "df", "p", "wilcoxon_p",
                "effect_size", "effect_size_kind", "es_ci_low", "es_ci_high", "p_perm"]


def _contrast_change(table: pd.DataFrame, design: Design, contrast: str) -> pd.DataFrame:
    spec = design.contrasts[contrast]
    out = pd.DataFrame({"participant_id": table["participant_id"],
                        "rating_baseline": table[spec.baseline],
                        "rating_condition": table[spec.condition]})
    out["rating_change"] = out["rating_condition"] - out["rating_baseline"]
    if spec.control:
        ctl = design.contrasts[spec.control]
        out["rating_change"] -= table[ctl.condition] - table[ctl.baseline]
    return out


def rating_changes(ratings: Sequence[Ratings], design: Design, *,
                   scanned: Iterable[str], labels: pd.Series | None = None,
                   required: Mapping[str, Iterable[str]] | None = None,
                   excluded: list[dict[str, str]] | None = None) -> pd.DataFrame:
    """Rating change of every (measure, contrast) the files allow, per participant.

    Parameters
    ----------
    ratings : sequence of Ratings
        From :func:`pipeline.phenotype.read_ratings` (condition columns read).
    design : Design
    scanned : iterable of str
        Participants with scans (e.g. those of ``group/contrast_values.tsv``); others in a
        rating file are left out and logged.
    labels : Series, default=None
        Group level per participant; the ``group`` column is n/a without it.
    required : mapping of str to iterable of str, default=None
        Measure -> contrasts that must be computable (named by correlations).
    excluded : list, default=None
        Filled with ``{"measure", "participant_id", "reason"}`` of every exclusion.

    Returns
    -------
    DataFrame
        :data:`CHANGE_COLUMNS`; only participants with scans and both ratings.

    Raises
    ------
    InputError
        If a required measure's file lacks a column the contrast needs.
    """
    scanned = set(scanned)
    required = {k: set(v) for k, v in (required or {}).items()}
    excluded = excluded if excluded is not None else []
    tables = []
    for rating in ratings:
        for pid in sorted(set(rating.table["participant_id"]) - scanned):
            excluded.append({"measure": rating.measure, "participant_id": pid,
                             "reason": "no scans (not in the analysed participants)"})
            log.warning("ratings %s: %s (%s) has no scans; left out of the rating analyses",
                        rating.measure, pid, rating.path)
        table = rating.table[rating.table["participant_id"].isin(scanned)]
        for contrast in design.contrasts:
            needed = design.conditions_of(contrast)
            lacking = [c for c in needed if c not in table.columns]
            if lacking:
                if contrast in required.get(rating.measure, ()):
                    raise InputError(format_problem(
                        rating.path, f"no column for condition(s) {', '.join(lacking)}, "
                        f"needed for the rating change of contrast {contrast!r}",
                        "Add one column per condition, named as in design.conditions, or "
                        "correlate this contrast with another score."))
                log.info("ratings %s: no rating change for contrast %s (columns %s absent)",
                         rating.measure, contrast, ", ".join(lacking))
                continue
            change = _contrast_change(table, design, contrast)
            for pid in change.loc[change["rating_change"].isna(), "participant_id"]:
                excluded.append({"measure": rating.measure, "participant_id": pid,
                                 "reason": f"{contrast}: rating missing (n/a)"})
                log.warning("ratings %s/%s: %s left out (a rating is n/a)", rating.measure,
                            contrast, pid)
            change = change[change["rating_change"].notna()]
            change.insert(0, "contrast", contrast)
            change.insert(0, "measure", rating.measure)
            tables.append(change)
    if not tables:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    out = pd.concat(tables, ignore_index=True)
    out["group"] = out["participant_id"].map(labels) if labels is not None else np.nan
    return out[CHANGE_COLUMNS]


def _within(values: np.ndarray) -> dict[str, Any]:
    """One-sample t (and Wilcoxon) of rating changes against zero, with Cohen's dz."""
    out: dict[str, Any] = dict(n=values.size, mean=np.nan, sd=np.nan, ci_low=np.nan,
                               ci_high=np.nan, t=np.nan, df=np.nan, p=np.nan,
                               wilcoxon_p=np.nan, effect_size=np.nan,
                               effect_size_kind="cohen_dz", es_ci_low=np.nan,
                               es_ci_high=np.nan)
    if values.size:
        out["mean"] = float(values.mean())
    if values.size < 2:
        return out
    sd = float(values.std(ddof=1))
    out["sd"] = sd
    if sd > 0:
        res = stats.ttest_1samp(values, 0.0)
        ci = res.confidence_interval(0.95)
        dz = out["mean"] / sd
        out.update(t=float(res.statistic), df=float(res.df), p=float(res.pvalue),
                   ci_low=float(ci.low), ci_high=float(ci.high), effect_size=dz)
        out["es_ci_low"], out["es_ci_high"] = cohen_dz_ci(dz, values.size)
    if np.any(values != 0):
        out["wilcoxon_p"] = float(stats.wilcoxon(values).pvalue)
    return out


def rating_tests(changes: pd.DataFrame, groups: Groups | None = None, *,
                 n_perm: int = 5000, seed: int = 0) -> pd.DataFrame:
    """Rating changes tested within each group (and pooled) and between groups.

    Parameters
    ----------
    changes : DataFrame
        From :func:`rating_changes`.
    groups : Groups, default=None
        None: pooled tests only.
    n_perm : int, default=5000
        Label permutations of the between-group test.
    seed : int, default=0

    Returns
    -------
    DataFrame
        :data:`TEST_COLUMNS`. ``test`` is ``within`` (``group`` = level or ``all``;
        ``mean`` = mean rating change, CI, one-sample t, Wilcoxon p, Cohen's dz) or
        ``between`` (``group`` = ``<a>-<b>``; ``mean`` = mean change of a minus b with the
        Welch CI, t, df, p, Hedges' g with CI, ``p_perm``; ``n``/``n_b`` per group).
    """
    rows = []
    for (measure, contrast), cell in changes.groupby(["measure", "contrast"], sort=False):
        base = dict(measure=measure, contrast=contrast)
        rows.append(dict(base, test="within", group=POOLED, group_a=POOLED,
                         **_within(cell["rating_change"].to_numpy(float))))
        if groups is None:
            continue
        for level in groups.levels:
            values = cell.loc[cell["group"] == level, "rating_change"].to_numpy(float)
            rows.append(dict(base, test="within", group=level, group_a=level,
                             **_within(values)))
        for level_a, level_b in groups.comparisons:
            a = cell.loc[cell["group"] == level_a, "rating_change"].to_numpy(float)
            b = cell.loc[cell["group"] == level_b, "rating_change"].to_numpy(float)
            res = two_sample_row(a, b, n_perm=n_perm, seed=seed)
            rows.append(dict(base, test="between", group=f"{level_a}-{level_b}",
                             group_a=level_a, group_b=level_b, n=res["n_a"], n_b=res["n_b"],
                             mean=res["difference"], sd=np.nan, ci_low=res["ci_low"],
                             ci_high=res["ci_high"], t=res["t"], df=res["df"], p=res["p"],
                             effect_size=res["hedges_g"], effect_size_kind="hedges_g",
                             es_ci_low=res["g_ci_low"], es_ci_high=res["g_ci_high"],
                             p_perm=res["p_perm"]))
    return pd.DataFrame(rows, columns=TEST_COLUMNS)
