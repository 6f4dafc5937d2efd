"""Two independent samples: Welch's t, Hedges' g with its CI, a label-permutation p, and a
covariate-adjusted group difference from an ordinary least-squares linear model.

Pure functions on arrays; :mod:`pipeline.stats.groups` applies them per contrast, region
and model. The difference is always ``mean(a) - mean(b)``: ``a`` is the reference group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats

__all__ = ["adjusted_difference", "bh_within", "hedges_g", "hedges_g_ci", "permutation_p",
           "two_sample_row", "welch"]

_NAN_WELCH = dict(n_a=0, n_b=0, mean_a=np.nan, mean_b=np.nan, sd_a=np.nan, sd_b=np.nan,
                  difference=np.nan, ci_low=np.nan, ci_high=np.nan, t=np.nan, df=np.nan,
                  p=np.nan)


def welch(a: np.ndarray, b: np.ndarray, level: float = 0.95) -> dict[str, float]:
    """Welch's unequal-variance t test of ``mean(a) - mean(b)``.

    Parameters
    ----------
    a, b : ndarray of shape (n_a,), (n_b,)
        Finite observations of each group (e.g. activation, % of baseline BP_ND).
    level : float, default=0.95
        Confidence level of the difference's interval.

    Returns
    -------
    dict
        ``n_a, n_b, mean_a, mean_b, sd_a, sd_b, difference, ci_low, ci_high, t, df``
        (Welch-Satterthwaite) and two-sided ``p``; NaN statistics when a group has fewer
        than 2 values or both have zero variance.

    Examples
    --------
    >>> r = welch(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    >>> round(r["difference"], 3), round(r["df"], 2)
    (0.5, 4.96)
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = dict(_NAN_WELCH, n_a=a.size, n_b=b.size)
    if a.size:
        out["mean_a"] = float(a.mean())
    if b.size:
        out["mean_b"] = float(b.mean())
    if a.size < 2 or b.size < 2:
        return out
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    out.update(sd_a=float(a.std(ddof=1)), sd_b=float(b.std(ddof=1)),
               difference=out["mean_a"] - out["mean_b"])
    if va + vb <= 0:
        return out
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    t = out["difference"] / se
    half = stats.t.ppf(0.5 + level / 2.0, df) * se
    out.update(t=float(t), df=float(df), p=float(2.0 * stats.t.sf(abs(t), df)),
               ci_low=out["difference"] - half, ci_high=out["difference"] + half)
    return out


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Hedges' g: ``(mean(a) - mean(b)) / pooled SD`` times the small-sample correction
    ``J = 1 - 3 / (4 (n_a + n_b) - 9)`` (Hedges 1981). NaN when undefined.

    Parameters
    ----------
    a, b : ndarray
        The two samples (e.g. activation, % of baseline).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    df = a.size + b.size - 2
    if a.size < 2 or b.size < 2:
        return np.nan
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / df)
    if pooled <= 0:
        return np.nan
    return float((1.0 - 3.0 / (4.0 * (a.size + b.size) - 9.0))
                 * (a.mean() - b.mean()) / pooled)


def hedges_g_ci(g: float, n_a: int, n_b: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of Hedges' g from the noncentral t distribution.

    Cohen's d = g / J has ``d sqrt(n_a n_b / (n_a + n_b)) ~ t(df, nc)`` with
    ``df = n_a + n_b - 2``; the limits are the noncentralities putting the observed t at
    the upper and lower ``(1 - level) / 2`` quantiles (Cumming & Finch 2001), rescaled to
    d and multiplied by J.

    Parameters
    ----------
    g : float
        Hedges' g.
    n_a, n_b : int
        Sample sizes.
    level : float, default=0.95
        Confidence level.
    """
    if n_a < 2 or n_b < 2 or not np.isfinite(g):
        return (np.nan, np.nan)
    j = 1.0 - 3.0 / (4.0 * (n_a + n_b) - 9.0)
    scale = np.sqrt(n_a * n_b / (n_a + n_b))
    df, t_obs, tail = n_a + n_b - 2, g / j * scale, (1.0 - level) / 2.0
    span = 8.0 * np.sqrt(1.0 + t_obs**2 / (2.0 * df))

    def limit(q: float) -> float:
        return optimize.brentq(lambda nc: stats.nct.cdf(t_obs, df, nc) - q,
                               t_obs - span, t_obs + span)

    try:
        return (j * limit(1.0 - tail) / scale, j * limit(tail) / scale)
    except ValueError:  # nct.cdf under/overflows for extreme t: normal approximation
        n = n_a + n_b
        se = np.sqrt(n / (n_a * n_b) + g**2 / (2.0 * n))
        z = stats.norm.ppf(1.0 - tail)
        return (g - z * se, g + z * se)


def _welch_t(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """Vectorized Welch t along ``axis`` (the permutation test's statistic)."""
    va = x.var(axis=axis, ddof=1) / x.shape[axis]
    vb = y.var(axis=axis, ddof=1) / y.shape[axis]
    with np.errstate(all="ignore"):
        return (x.mean(axis=axis) - y.mean(axis=axis)) / np.sqrt(va + vb)


def permutation_p(a: np.ndarray, b: np.ndarray, *, n_perm: int = 5000,
                  seed: int = 0) -> float:
    """Two-sided label-permutation p of Welch's t (exact when few relabellings exist).

    The group labels are reshuffled among all ``n_a + n_b`` participants; the p-value is
    ``(1 + #{|t*| >= |t|}) / (1 + n_perm)`` (scipy's ``permutation_test``). Studentizing
    keeps the test valid when the groups' variances differ (Janssen 1997).

    Parameters
    ----------
    a, b : ndarray
        The two samples.
    n_perm : int, default=5000
        Relabellings drawn (fewer when every relabelling can be enumerated).
    seed : int, default=0
        Seed of the relabellings.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or b.size < 2 or n_perm < 1 or np.ptp(np.r_[a, b]) == 0:
        return np.nan
    with np.errstate(all="ignore"):
        res = stats.permutation_test((a, b), _welch_t, permutation_type="independent",
                                     n_resamples=int(n_perm), vectorized=True,
                                     alternative="two-sided",
                                     random_state=np.random.default_rng(seed))
    return float(res.pvalue)


def adjusted_difference(y: np.ndarray, in_a: np.ndarray, covariates: pd.DataFrame,
                        level: float = 0.95) -> dict[str, float]:
    """Group difference adjusted for covariates: OLS ``y ~ 1 + group + covariates``.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Outcome of every participant of both groups.
    in_a : ndarray of bool, shape (n,)
        True for the reference group ``a``.
    covariates : DataFrame with n rows
        Numeric columns enter as they are; text columns (e.g. sex) as indicator columns
        (first category dropped). No missing values.
    level : float, default=0.95

    Returns
    -------
    dict
        ``difference_adj`` (coefficient of the group-a indicator: the difference a - b at
        equal covariates), ``ci_low_adj``, ``ci_high_adj``, ``t_adj``, ``df_adj`` (n minus
        the number of columns) and two-sided ``p_adj``; NaN when the design is rank
        deficient or has no residual degrees of freedom.
    """
    y = np.asarray(y, float)
    out = dict(difference_adj=np.nan, ci_low_adj=np.nan, ci_high_adj=np.nan, t_adj=np.nan,
               df_adj=np.nan, p_adj=np.nan)
    coded = np.empty((y.size, 0)) if covariates.shape[1] == 0 else \
        pd.get_dummies(covariates, drop_first=True, dtype=float).to_numpy(float)
    design = np.column_stack([np.ones(y.size), np.asarray(in_a, float), coded])
    df = y.size - design.shape[1]
    if df < 1 or np.linalg.matrix_rank(design) < design.shape[1]:
        return out
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    sigma2 = float(resid @ resid) / df
    cov = sigma2 * np.linalg.inv(design.T @ design)
    se = float(np.sqrt(cov[1, 1]))
    if not se > 0:
        return out
    t = float(beta[1]) / se
    half = stats.t.ppf(0.5 + level / 2.0, df) * se
    out.update(difference_adj=float(beta[1]), ci_low_adj=float(beta[1]) - half,
               ci_high_adj=float(beta[1]) + half, t_adj=t, df_adj=float(df),
               p_adj=float(2.0 * stats.t.sf(abs(t), df)))
    return out


def two_sample_row(a: np.ndarray, b: np.ndarray, *, n_perm: int = 0, seed: int = 0,
                   covariates: pd.DataFrame | None = None,
                   ) -> Mapping[str, float]:
    """Every between-group statistic of one cell: :func:`welch`, Hedges' g with CI, the
    permutation p (``n_perm`` > 0) and, with ``covariates`` (rows: ``a`` then ``b``), the
    adjusted difference.

    Parameters
    ----------
    a, b : ndarray
        The two samples.
    n_perm : int, default=0
        Relabellings of the permutation p; 0 leaves ``p_perm`` NaN.
    seed : int, default=0
        Seed of the relabellings.
    covariates : DataFrame, default=None
        Covariates of the participants of ``a`` then ``b`` (rows in that order).
    """
    row: dict[str, float] = dict(welch(a, b))
    g = hedges_g(a, b)
    row["hedges_g"] = g
    row["g_ci_low"], row["g_ci_high"] = hedges_g_ci(g, len(a), len(b))
    row["p_perm"] = permutation_p(a, b, n_perm=n_perm, seed=seed) if n_perm else np.nan
    if covariates is not None:
        in_a = np.r_[np.ones(len(a), bool), np.zeros(len(b), bool)]
        row.update(adjusted_difference(np.r_[a, b], in_a, covariates))
    return row


def bh_within(table: pd.DataFrame, p_column: str, keys: Sequence[str]) -> pd.Series:
    """Benjamini-Hochberg adjusted p of ``p_column`` within each ``keys`` group (NaN kept).

    Parameters
    ----------
    table : DataFrame
        A statistics table.
    p_column : str
        Column of p-values.
    keys : sequence of str
        Columns whose combinations each form one family (e.g. contrast, model).
    """
    out = pd.Series(np.nan, index=table.index)
    for _, idx in table.groupby(list(keys), sort=False).groups.items():
        p = table.loc[idx, p_column]
        ok = p.notna()
        if ok.any():
            out[p[ok].index] = stats.false_discovery_control(p[ok].to_numpy(float))
    return out
