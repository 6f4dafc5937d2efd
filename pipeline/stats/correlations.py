"""Activation against participant scores: Pearson and Spearman, bootstrap CI, permutation p.

Activation is ``BP_baseline - BP_condition`` (``activation``, absolute) and its % of
baseline (``activation_pct``, after the contrast's drift control), from
:func:`pipeline.stats.regional.contrast_values`. Scores come from ``participants.tsv``.
With covariates (e.g. age, sex) both variables are residualized on them (with an
intercept; text columns become indicator columns) and the partial correlation is reported,
with ``df = n - 2 - k`` for its parametric p; Spearman's version ranks first.

A score that is not a ``participants.tsv`` column names a condition-level rating
(``phenotype/<score>.tsv``): the participant's rating change of the contrast,
rating(condition) - rating(baseline), from :mod:`pipeline.stats.ratings`. With ``group:``
a correlation uses the participants of that group only (``design.groups``); its rows say
so in the ``group`` column (``all`` when pooled).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.groups import POOLED

__all__ = ["correlate", "correlate_scores"]

log = logging.getLogger(__name__)

MEASURES = ("activation", "activation_pct")


def _residualize(y: np.ndarray, design: np.ndarray | None) -> np.ndarray:
    """Residuals of ``y`` (last axis = participants) after least squares on ``design``."""
    if design is None:
        return y - y.mean(axis=-1, keepdims=True)
    beta, *_ = np.linalg.lstsq(design, np.moveaxis(y, -1, 0).reshape(design.shape[0], -1),
                               rcond=None)
    fitted = (design @ beta).reshape(np.moveaxis(y, -1, 0).shape)
    return y - np.moveaxis(fitted, 0, -1)


def _pearson(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorized Pearson r of already-centred or raw data along ``axis``."""
    x = x - x.mean(axis=axis, keepdims=True)
    y = y - y.mean(axis=axis, keepdims=True)
    return (x * y).sum(axis=axis) / np.sqrt((x * x).sum(axis=axis) * (y * y).sum(axis=axis))


def correlate(x: np.ndarray, y: np.ndarray, *, covariates: np.ndarray | None = None,
              method: str = "pearson", n_boot: int = 2000, n_perm: int = 5000,
              seed: int = 0) -> dict[str, float]:
    """Correlation of ``x`` and ``y`` with parametric p, bootstrap 95 % CI and permutation p.

    Parameters
    ----------
    x, y : ndarray of shape (n,)
        Paired observations (e.g. activation and a score), all finite.
    covariates : ndarray of shape (n, k), default=None
        Covariates to partial out (numeric; indicator-code categories first).
    method : {"pearson", "spearman"}, default="pearson"
        Spearman ranks ``x``, ``y`` before residualizing.
    n_boot : int, default=2000
        Bootstrap resamples of participants (percentile CI of r).
    n_perm : int, default=5000
        Permutations of the pairing of the (residualized) variables.
    seed : int, default=0
        Seed of both resampling procedures.

    Returns
    -------
    dict
        ``n``, ``r``, ``p`` (t test with n - 2 - k df), ``p_perm``, ``ci_low``, ``ci_high``.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    k = 0 if covariates is None else covariates.shape[1]
    out = dict(n=n, r=np.nan, p=np.nan, p_perm=np.nan, ci_low=np.nan, ci_high=np.nan)
    if n < k + 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    if method == "spearman":
        x, y = stats.rankdata(x), stats.rankdata(y)
    design = None if covariates is None else np.column_stack([np.ones(n), covariates])
    rx, ry = _residualize(x, design), _residualize(y, design)
    r = float(_pearson(rx, ry))
    df = n - 2 - k
    t = r * np.sqrt(df / max(1.0 - r * r, 1e-300))
    out.update(r=r, p=float(2 * stats.t.sf(abs(t), df)))
    rng = np.random.default_rng(seed)

    def boot_stat(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        idx = np.asarray(idx, int)
        bx, by = x[idx], y[idx]
        if design is not None:
            # Refit the covariates inside each resample (a design row moves with its subject).
            return np.array([_pearson(_residualize(bx[i], design[idx[i]]),
                                      _residualize(by[i], design[idx[i]]))
                             for i in np.ndindex(idx.shape[:-1])]).reshape(idx.shape[:-1])
        return _pearson(bx, by, axis=-1)

    with np.errstate(all="ignore"):
        boot = stats.bootstrap((np.arange(n),), boot_stat, n_resamples=n_boot,
                               vectorized=True, method="percentile", random_state=rng)
        perm = stats.permutation_test((rx, ry), _pearson, permutation_type="pairings",
                                      n_resamples=n_perm, vectorized=True, random_state=rng)
    out.update(ci_low=float(boot.confidence_interval.low),
               ci_high=float(boot.confidence_interval.high), p_perm=float(perm.pvalue))
    return out


def _covariate_matrix(scores: pd.DataFrame, names: Sequence[str]) -> np.ndarray | None:
    if not names:
        return None
    table = scores[list(names)]
    coded = pd.get_dummies(table, drop_first=True, dtype=float)
    return coded.to_numpy(float)


def _scores(participants: pd.DataFrame, ratings: pd.DataFrame | None, contrast: str,
            score: str, covariates: list[str]) -> tuple[pd.DataFrame, str]:
    """``participant_id``, the score (column ``score``) and covariates; and the score's kind
    (``participants`` or ``rating_change``)."""
    for column in covariates:
        if column not in participants.columns:
            raise InputError(format_problem(
                "participants.tsv", f"no covariate column {column!r} (asked for by "
                "statistics.correlations)", f"Columns found: {', '.join(participants.columns)}."
                " Fix the config or the table."))
    if score in participants.columns:
        if not pd.api.types.is_numeric_dtype(participants[score]):
            raise InputError(format_problem(
                "participants.tsv", f"score {score!r} is not numeric",
                "Give numbers (n/a for missing) in that column."))
        return participants[["participant_id", score, *covariates]], "participants"
    rated = None if ratings is None else ratings[(ratings["measure"] == score)
                                                 & (ratings["contrast"] == contrast)]
    if rated is None or rated.empty:
        raise InputError(format_problem(
            "participants.tsv", f"no column {score!r} (asked for by statistics.correlations), "
            f"and no rating change of contrast {contrast!r} on a phenotype/{score}.tsv",
            f"Columns found: {', '.join(participants.columns)}. Fix the config, the table, "
            f"or add phenotype/{score}.tsv with one column per condition."))
    table = rated[["participant_id", "rating_change"]].rename(columns={"rating_change": score})
    return table.merge(participants[["participant_id", *covariates]], on="participant_id",
                       how="left"), "rating_change"


def correlate_scores(values: pd.DataFrame, participants: pd.DataFrame,
                     specs: Sequence[Mapping[str, Any]], *, model: str,
                     n_boot: int = 2000, n_perm: int = 5000, seed: int = 0,
                     measures: Sequence[str] = MEASURES,
                     ratings: pd.DataFrame | None = None) -> pd.DataFrame:
    """Correlate each configured activation with a score (``group/correlations.tsv``).

    Parameters
    ----------
    values : DataFrame
        Per-participant contrast values (:func:`~pipeline.stats.regional.contrast_values`).
    participants : DataFrame
        ``participants.tsv``: ``participant_id`` plus score columns.
    specs : sequence of mapping
        Each with ``contrast``, ``region``, ``score`` (a participants.tsv column, else a
        phenotype measure) and optional ``covariates`` (list of column names), ``model``
        (default: ``model``) and ``group`` (a level of ``design.groups``).
    model : str
        Default model (the primary one).
    n_boot, n_perm, seed : int
        See :func:`correlate`.
    measures : sequence of str, default=("activation", "activation_pct")
    ratings : DataFrame, default=None
        Rating changes (``measure``, ``contrast``, ``participant_id``, ``rating_change``;
        :func:`pipeline.stats.ratings.rating_changes`) for scores that are phenotype
        measures.

    Returns
    -------
    DataFrame
        ``contrast, region, model, score, score_kind, group, measure, covariates, method,
        n, r, p, p_perm, ci_low, ci_high``; ``score_kind`` is ``participants`` or
        ``rating_change``; ``group`` is the spec's group or ``all``; ``method`` is
        ``pearson``/``spearman``, prefixed ``partial_`` with covariates.

    Raises
    ------
    InputError
        If a score is neither a ``participants.tsv`` column nor a rating change, a
        covariate column is missing, or a score is not numeric.
    ConfigError
        If a spec names a group but the values have no groups, or an unknown level.
    """
    rows = []
    for spec in specs:
        contrast, region, score = spec["contrast"], spec["region"], spec["score"]
        covariates = list(spec.get("covariates") or [])
        use_model = spec.get("model", model)
        group = spec.get("group") or POOLED
        scores, kind = _scores(participants, ratings, contrast, score, covariates)
        cell = values[(values["contrast"] == contrast) & (values["region"] == region)
                      & (values["model"] == use_model)]
        if group != POOLED:
            if "group" not in cell.columns:
                raise ConfigError(format_problem(
                    "config/config.yaml", f"statistics.correlations: group {group!r} but "
                    "design.groups is not set", "Set design.groups or drop the group key."))
            if not (cell["group"].astype(str) == str(group)).any():
                raise ConfigError(format_problem(
                    "config/config.yaml", f"statistics.correlations: group {group!r} has no "
                    f"values (groups: {sorted(cell['group'].dropna().astype(str).unique())})",
                    "Use a level of design.groups."))
            cell = cell[cell["group"].astype(str) == str(group)]
        if cell.empty:
            raise ConfigError(format_problem(
                "config/config.yaml", f"statistics.correlations: no values for contrast "
                f"{contrast!r}, region {region!r}, model {use_model!r}",
                "Use a contrast, region and model that the analysis produces."))
        table = cell.merge(scores, on="participant_id", how="left")
        keep = table[[score, *covariates]].notna().all(axis=1)
        for pid in table.loc[~keep, "participant_id"]:
            log.warning("correlation %s/%s/%s: %s left out (missing %s or covariate)",
                        contrast, region, score, pid, score)
        table = table[keep]
        cov = _covariate_matrix(table, covariates)
        for measure in measures:
            ok = np.isfinite(table[measure].to_numpy(float))
            for method in ("pearson", "spearman"):
                result = correlate(table[measure].to_numpy(float)[ok],
                                   table[score].to_numpy(float)[ok],
                                   covariates=None if cov is None else cov[ok],
                                   method=method, n_boot=n_boot, n_perm=n_perm, seed=seed)
                rows.append(dict(contrast=contrast, region=region, model=use_model,
                                 score=score, score_kind=kind, group=group, measure=measure,
                                 covariates="+".join(covariates) or "n/a",
                                 method=("partial_" if covariates else "") + method,
                                 **result))
    return pd.DataFrame(rows, columns=["contrast", "region", "model", "score", "score_kind",
                                       "group", "measure", "covariates", "method", "n", "r",
                                       "p", "p_perm", "ci_low", "ci_high"])
