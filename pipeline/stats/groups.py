"""Patient-vs-control statistics: every contrast per group, and the groups compared.

With ``design.groups`` (:mod:`pipeline.groups`):

* :func:`group_contrasts` summarizes every contrast within each group exactly as the
  pooled rows (:func:`pipeline.stats.contrast_tests.summarize_contrasts` on each group's
  participants), so ``group/contrasts.tsv`` gains a ``group`` column (``all`` = pooled);
* :func:`group_differences` compares each level with the reference level per contrast,
  region and model (``group/group_differences.tsv``): mean activation of each group
  (``-`` the % change of BP_ND, positive = BP_ND fell), their difference (a - b) with a
  95 % CI, Welch's t test, Benjamini-Hochberg FDR across regions per contrast, model and
  comparison, Hedges' g with its CI, a label-permutation p and, with covariates, the
  difference adjusted by a linear model.

Within-scan drift: the groups' activations are the raw % changes (for a contrast with a
control, minus the control's change), without the simulated null drift. The drift is one
value per contrast, region and model for a protocol and a level of binding, so it cancels in
the difference of two groups scanned with the same protocol (Kbol, frames;
:mod:`pipeline.stats.protocols` checks that) that bind alike. It does not cancel when the
groups' baseline BP_ND differs: on simulated null studies with patients' binding 10 % lower,
1 in 6 (contrast, model) families of plain within-scan contrasts had an FDR finding
(benchmarks/README.md), while the double-difference contrast (``control:``) kept its rate.
So each row tests the groups' baseline BP_ND (Welch): ``binding_differs`` flags rows whose
plain difference may hold drift, with a log warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, format_problem
from pipeline.groups import POOLED, Groups, group_labels
from pipeline.stats.contrast_tests import SYSTEMATIC_SD, summarize_contrasts
from pipeline.stats.two_sample import bh_within, two_sample_row, welch

__all__ = ["DIFFERENCE_COLUMNS", "add_group_column", "group_contrasts", "group_differences",
           "raw_activation", "with_groups"]

log = logging.getLogger(__name__)

DIFFERENCE_COLUMNS = [
    "contrast", "region", "model", "group_a", "group_b", "n_a", "n_b", "activation_a",
    "activation_b", "sd_a", "sd_b", "difference", "ci_low", "ci_high", "t", "df", "p",
    "p_fdr", "significant", "hedges_g", "g_ci_low", "g_ci_high", "p_perm", "covariates",
    "n_adj", "difference_adj", "ci_low_adj", "ci_high_adj", "t_adj", "df_adj", "p_adj",
    "p_fdr_adj", "bp_baseline_a", "bp_baseline_b", "bp_baseline_p", "binding_differs"]


def add_group_column(values: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    """``values`` with a ``group`` column after ``participant_id`` (n/a when not in a level).

    Parameters
    ----------
    values : DataFrame
        Per-participant values with a ``participant_id`` column.
    labels : Series
        ``participant_id`` -> group level (:func:`pipeline.groups.group_labels`).
    """
    out = values.copy()
    column = out["participant_id"].map(labels)
    out.insert(int(out.columns.get_loc("participant_id")) + 1, "group", column)
    return out


def group_contrasts(values: pd.DataFrame, labels: pd.Series, groups: Groups, *,
                    pooled: pd.DataFrame, test: str = "ttest", sys_sd: float = SYSTEMATIC_SD,
                    alpha: float = 0.05, design: Any = None) -> pd.DataFrame:
    """The pooled contrast table with the same summary per group appended.

    Parameters
    ----------
    values : DataFrame
        Per-participant values (:func:`pipeline.stats.regional.contrast_values`).
    labels : Series
        Level per ``participant_id`` (:func:`pipeline.groups.group_labels`).
    groups : Groups
    pooled : DataFrame
        :func:`~pipeline.stats.contrast_tests.summarize_contrasts` of all ``values``.
    test, sys_sd, alpha, design
        As for :func:`~pipeline.stats.contrast_tests.summarize_contrasts`.

    Returns
    -------
    DataFrame
        ``group`` (``all``, then each level in ``groups.levels`` order) followed by the
        columns of ``pooled``; FDR runs across regions within contrast, model and group.
    """
    tables = [pooled.assign(group=POOLED)]
    for level in groups.levels:
        members = set(labels.index[labels == level])
        subset = values[values["participant_id"].isin(members)]
        if subset.empty:
            continue
        tables.append(summarize_contrasts(subset, test=test, sys_sd=sys_sd, alpha=alpha,
                                          design=design).assign(group=level))
    table = pd.concat(tables, ignore_index=True)
    return table[["group", *pooled.columns]]


def with_groups(values: pd.DataFrame, pooled: pd.DataFrame, groups: Groups | None,
                participants: pd.DataFrame | None, *, test: str = "ttest",
                sys_sd: float = SYSTEMATIC_SD, alpha: float = 0.05, design: Any = None,
                source: str | PathLike = "participants.tsv",
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(values, contrasts)`` with the group column and per-group rows when ``groups`` is
    set (:func:`add_group_column`, :func:`group_contrasts`); unchanged otherwise.

    Parameters
    ----------
    values : DataFrame
        ``contrast_values.tsv`` rows (:func:`pipeline.stats.regional.contrast_values`).
    pooled : DataFrame
        The pooled contrast table (:func:`pipeline.stats.contrast_tests.summarize_contrasts`).
    groups : Groups or None
        ``design.groups``; None returns the tables unchanged.
    participants : DataFrame or None
        ``participants.tsv`` with the group column.
    test : {"ttest", "wilcoxon"}, default="ttest"
        The test in ``p`` (``statistics.test``).
    sys_sd : float, default=SYSTEMATIC_SD
        Systematic SD of the within-scan drift estimate, % points (per-group tests).
    alpha : float, default=0.05
        FDR level of the ``significant`` column.
    design : Design, default=None
        The study design (drift guard fallbacks).
    source : str or path-like, default="participants.tsv"
        Named in errors.

    Raises
    ------
    InputError
        If ``participants`` is None or its group column or levels do not fit the design
        (:func:`pipeline.groups.group_labels`).
    """
    if groups is None:
        return values, pooled
    if participants is None:
        raise InputError(format_problem(source, "design.groups needs participants.tsv",
                                        "Add participants.tsv with the group column."))
    labels = group_labels(participants, groups, source=source,
                          analysed=values["participant_id"].unique())
    table = group_contrasts(values, labels, groups, pooled=pooled, test=test, sys_sd=sys_sd,
                            alpha=alpha, design=design)
    return add_group_column(values, labels), table


def raw_activation(values: pd.DataFrame) -> pd.Series:
    """Activation in % of baseline BP_ND before any null-drift correction: ``-change_pct``,
    plus the control contrast's change for double differences (positive = BP_ND fell).

    Parameters
    ----------
    values : DataFrame
        ``contrast_values.tsv`` rows (``change_pct``, optionally ``control_change_pct``).
    """
    control = values["control_change_pct"].fillna(0.0) if "control_change_pct" in values \
        else 0.0
    return -(values["change_pct"] - control)


def _covariate_table(participants: pd.DataFrame, covariates: Sequence[str],
                     source: str | PathLike) -> pd.DataFrame:
    """Covariate columns indexed by participant (numbers stay numbers, text stays text)."""
    missing = [c for c in covariates if c not in participants.columns]
    if missing:
        raise InputError(format_problem(
            source, f"no column(s) {missing} for design.groups.covariates",
            "Add the columns or remove them from design.groups.covariates."))
    return participants.set_index("participant_id")[list(covariates)]


def group_differences(values: pd.DataFrame, labels: pd.Series, groups: Groups, *,
                      participants: pd.DataFrame | None = None, n_perm: int = 5000,
                      alpha: float = 0.05, seed: int = 0,
                      source: str | PathLike = "participants.tsv") -> pd.DataFrame:
    """Between-group differences of activation per contrast, region, model and comparison.

    Parameters
    ----------
    values : DataFrame
        Per-participant values (``contrast``, ``participant_id``, ``region``, ``model``,
        ``change_pct``, ``control_change_pct``, ``bp_baseline``).
    labels : Series
        Level per ``participant_id``.
    groups : Groups
        Levels (the first is ``group_a`` of every comparison) and covariates.
    participants : DataFrame, default=None
        ``participants.tsv``; needed when ``groups.covariates`` is set.
    n_perm : int, default=5000
        Label permutations per cell (0 = no permutation p).
    alpha : float, default=0.05
        FDR level of the ``significant`` column.
    seed : int, default=0
    source : str or path-like
        Named in error messages about ``participants``.

    Returns
    -------
    DataFrame
        :data:`DIFFERENCE_COLUMNS`; activations and differences in % of baseline BP_ND.
    """
    covariates = list(groups.covariates)
    cov_table = None
    if covariates:
        if participants is None:
            raise InputError(format_problem(source, "covariates need participants.tsv",
                                            "Pass the participants table."))
        cov_table = _covariate_table(participants, covariates, source)
    data = values.assign(_activation=raw_activation(values),
                         _group=values["participant_id"].map(labels))
    data = data[np.isfinite(data["_activation"]) & data["_group"].notna()]
    rows = []
    for (contrast, model, region), cell in data.groupby(["contrast", "model", "region"],
                                                        sort=False):
        for level_a, level_b in groups.comparisons:
            a, b = cell[cell["_group"] == level_a], cell[cell["_group"] == level_b]
            if min(len(a), len(b)) < 2:
                log.warning("group differences %s/%s/%s: %s has %d and %s %d participant(s) "
                            "with values; not tested", contrast, region, model, level_a,
                            len(a), level_b, len(b))
            row: dict[str, Any] = dict(contrast=contrast, region=region, model=model,
                                       group_a=level_a, group_b=level_b,
                                       covariates="+".join(covariates) or "n/a",
                                       bp_baseline_a=a["bp_baseline"].mean(),
                                       bp_baseline_b=b["bp_baseline"].mean())
            stats_cov = None
            if cov_table is not None:
                both = pd.concat([a, b])
                cov = cov_table.reindex(both["participant_id"])
                keep = cov.notna().all(axis=1).to_numpy()
                for pid in both["participant_id"][~keep]:
                    log.warning("group differences %s/%s/%s: %s left out of the adjusted "
                                "model (missing %s)", contrast, region, model, pid,
                                "/".join(covariates))
                a_keep, b_keep = keep[:len(a)], keep[len(a):]
                stats_cov = (a["_activation"].to_numpy(float)[a_keep],
                             b["_activation"].to_numpy(float)[b_keep],
                             cov[keep].reset_index(drop=True))
            result = two_sample_row(a["_activation"].to_numpy(float),
                                    b["_activation"].to_numpy(float), n_perm=n_perm,
                                    seed=seed)
            row.update(result)
            binding = welch(a["bp_baseline"].to_numpy(float), b["bp_baseline"].to_numpy(float))
            row["bp_baseline_p"] = binding["p"]
            if stats_cov is not None:
                adjusted = two_sample_row(stats_cov[0], stats_cov[1], covariates=stats_cov[2])
                row.update({k: adjusted[k] for k in adjusted if k.endswith("_adj")})
                row["n_adj"] = len(stats_cov[2])
            rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=DIFFERENCE_COLUMNS)
    table = table.rename(columns={"mean_a": "activation_a", "mean_b": "activation_b"})
    keys = ["contrast", "model", "group_a", "group_b"]
    table["p_fdr"] = bh_within(table, "p", keys)
    table["significant"] = table["p_fdr"] < alpha
    for column in ("n_adj", "difference_adj", "ci_low_adj", "ci_high_adj", "t_adj", "df_adj",
                   "p_adj"):
        if column not in table:
            table[column] = np.nan
    table["p_fdr_adj"] = bh_within(table, "p_adj", keys)
    controlled = values.groupby("contrast")["control_change_pct"].apply(
        lambda c: bool(c.notna().any())) if "control_change_pct" in values else {}
    table["binding_differs"] = (table["bp_baseline_p"] < alpha) & ~table["contrast"].map(
        controlled).fillna(False).astype(bool)
    flagged = table[table["binding_differs"]]
    for (contrast, model), cell in flagged.groupby(["contrast", "model"], sort=False):
        log.warning("group differences %s/%s: baseline BP_ND differs between groups (p < %g) "
                    "in %s; the within-scan drift need not cancel there (a contrast with a "
                    "control contrast removes it by design)", contrast, model, alpha,
                    ", ".join(cell["region"]))
    return table[DIFFERENCE_COLUMNS]
