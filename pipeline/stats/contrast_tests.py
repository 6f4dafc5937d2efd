"""Group tests of per-participant contrast values, one row per contrast, region and model.

Takes the paired values of :func:`pipeline.stats.regional.contrast_values` and tests the
``effect_pct`` of each (contrast, region, model) cell: a one-sample t test (with a
systematic SD added to the variance of the mean where a null drift was subtracted, Welch
degrees of freedom) or a Wilcoxon signed-rank test; Cohen's dz with its noncentral-t
interval; the drift's mean and 95 % interval; Benjamini-Hochberg FDR across regions within
each contrast and model; and the drift guard (:mod:`pipeline.stats.drift_guard`).
Units: % of baseline BP_ND ("points").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from pipeline.design import Design
from pipeline.errors import ConfigError, format_problem

__all__ = ["SYSTEMATIC_SD", "TESTS", "cohen_dz_ci", "summarize_contrasts"]

#: Tests whose p-value goes into the ``p`` column.
TESTS = ("ttest", "wilcoxon")

#: % points: default systematic SD of the release model's residual drift
#: (``statistics.null_drift.sys_sd``). Derived, not fitted to error rates: the RMS over the
#: twelve physics variations of petbp's simulator (those that change more than the noise) of
#: the group-mean effect's error where nothing was released, on noiseless curves with the
#: release model fitted from 10 min: 1.118 (``benchmarks/bench_drift_bias.py``), rounded up.
SYSTEMATIC_SD = 1.12


def cohen_dz_ci(dz: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of Cohen's dz from the noncentral t distribution.

    With ``t = dz sqrt(n)`` and ``df = n - 1``, the limits are the noncentrality values
    whose t distributions put ``t`` at the upper and lower ``(1 - level)/2`` quantiles,
    divided by ``sqrt(n)`` (Cumming & Finch 2001).

    Parameters
    ----------
    dz : float
        Cohen's dz (mean / SD of the paired differences).
    n : int
        Number of pairs.
    level : float, default=0.95
        Confidence level.

    Returns
    -------
    tuple of float
        Lower and upper limits (NaN for n < 3 or a non-finite dz).

    Examples
    --------
    >>> lo, hi = cohen_dz_ci(0.0, 20)
    >>> bool(round(lo, 3) == -round(hi, 3))
    True
    """
    if n < 3 or not np.isfinite(dz):
        return (np.nan, np.nan)
    df, t_obs, tail = n - 1, dz * np.sqrt(n), (1.0 - level) / 2.0
    # The noncentrality's sampling SD is about sqrt(1 + t^2 / (2 df)); 8 SDs bracket both limits.
    span = 8.0 * np.sqrt(1.0 + t_obs**2 / (2.0 * df))

    def limit(q: float) -> float:
        return optimize.brentq(lambda nc: stats.nct.cdf(t_obs, df, nc) - q,
                               t_obs - span, t_obs + span)

    try:
        return (limit(1.0 - tail) / np.sqrt(n), limit(tail) / np.sqrt(n))
    except ValueError:  # nct.cdf under/overflows for extreme t: normal approximation
        se = np.sqrt(1.0 / n + dz**2 / (2.0 * n))
        z = stats.norm.ppf(1.0 - tail)
        return (dz - z * se, dz + z * se)


def _test_group(effect: np.ndarray, sys_sd: float, test: str) -> dict[str, float]:
    """One-sample t of the effects (with a systematic variance), Wilcoxon and dz per cell.

    With ``sys_sd > 0`` the mean effect carries, besides its sampling error ``sd^2 / n``,
    a systematic error ``sys_sd^2`` shared by all participants (the residual drift of the
    release model): ``t = mean / sqrt(sd^2/n + sys_sd^2)`` with Welch-Satterthwaite
    degrees of freedom (the systematic part counted with infinite df). ``sys_sd = 0`` is
    the ordinary one-sample (paired) t test.
    """
    n = effect.size
    out = dict(n=n, t=np.nan, df=np.nan, p=np.nan, effect_pct_mean=np.nan,
               effect_pct_sd=np.nan, mean_ci_low=np.nan, mean_ci_high=np.nan,
               wilcoxon_w=np.nan, wilcoxon_p=np.nan, cohen_dz=np.nan,
               ci_low=np.nan, ci_high=np.nan)
    if n < 2:
        return out
    mean, sd = float(effect.mean()), float(effect.std(ddof=1))
    out.update(effect_pct_mean=mean, effect_pct_sd=sd)
    with np.errstate(all="ignore"):
        sampling = sd**2 / n
        systematic = float(sys_sd) ** 2 if np.isfinite(sys_sd) else 0.0
        se = np.sqrt(sampling + systematic)
        df = (n - 1) * ((sampling + systematic) / sampling) ** 2 if sampling > 0 else np.inf
        t = mean / se
        half = stats.t.ppf(0.975, df) * se
        out.update(t=float(t), df=float(df), p=float(2.0 * stats.t.sf(abs(t), df)),
                   mean_ci_low=mean - half, mean_ci_high=mean + half)
        if sd > 0:
            out["cohen_dz"] = mean / sd
            out["ci_low"], out["ci_high"] = cohen_dz_ci(out["cohen_dz"], n)
        if np.any(effect != 0):
            w = stats.wilcoxon(effect)
            out.update(wilcoxon_w=float(w.statistic), wilcoxon_p=float(w.pvalue))
    if test == "wilcoxon":
        out["p"] = out["wilcoxon_p"]
    return out


def _drift_summary(cell: pd.DataFrame, sys_sd: float) -> dict[str, float | str]:
    """Mean null drift of a cell, its spread over participants and its 95 % interval."""
    method = str(cell["drift_method"].iloc[0]) if len(cell) else "none"
    out: dict[str, float | str] = dict(drift_method=method, drift_pct=np.nan, drift_sd=np.nan,
                                       drift_sys_sd=np.nan, drift_ci_low=np.nan,
                                       drift_ci_high=np.nan)
    if method != "release_model" or len(cell) < 2:
        out["drift_pct"] = 0.0 if method == "none" else np.nan
        return out
    drift = cell["drift_pct"].to_numpy(float)
    mean, sd, n = float(drift.mean()), float(drift.std(ddof=1)), drift.size
    half = 1.96 * np.sqrt(sd**2 / n + sys_sd**2)
    out.update(drift_pct=mean, drift_sd=sd, drift_sys_sd=float(sys_sd),
               drift_ci_low=mean - half, drift_ci_high=mean + half)
    return out


def _cell_sys_sd(cell: pd.DataFrame, sys_sd: float) -> float:
    """% points: the systematic SD of a cell's mean drift, ``sys_sd`` combined with the bias
    SD of a drift blended across regions (``drift_lack_sd``,
    :mod:`pipeline.stats.drift_regions`; absent or 0 otherwise)."""
    lack = cell["drift_lack_sd"].dropna() if "drift_lack_sd" in cell else cell.iloc[0:0]
    return float(np.hypot(sys_sd, lack.mean())) if len(lack) else float(sys_sd)


def summarize_contrasts(values: pd.DataFrame, *, test: str = "ttest",
                        sys_sd: float = SYSTEMATIC_SD,
                        alpha: float = 0.05, design: Design | None = None,
                        guard: bool = True) -> pd.DataFrame:
    """Group statistics per contrast, region and model (``group/contrasts.tsv``).

    Parameters
    ----------
    values : DataFrame
        From :func:`contrast_values`.
    test : {"ttest", "wilcoxon"}, default="ttest"
        Which test fills ``p`` (both are always reported: ``t``/``df`` and
        ``wilcoxon_w``/``wilcoxon_p``).
    sys_sd : float, default=SYSTEMATIC_SD
        % points: systematic SD of the release model's null drift, added to the variance of
        the test of drift-corrected effects (rows with ``drift_method`` ``release_model``);
        where ``values`` carry ``drift_lack_sd`` (a drift blended across regions), a cell's
        systematic SD is ``sqrt(sys_sd^2 + drift_lack_sd^2)`` (reported as ``drift_sys_sd``).
    alpha : float, default=0.05
        FDR level for the ``significant`` column.
    design : Design, default=None
        Needed by the guard to find each contrast's design-based fallback.
    guard : bool, default=True
        Check the drift estimate against the data (:mod:`pipeline.stats.drift_guard`) and
        fall back where it fails.

    Returns
    -------
    DataFrame
        ``contrast, region, model, n, baseline_mean, condition_mean, change_pct_mean,
        change_pct_sd, drift_method, drift_pct, drift_sd, drift_sys_sd, drift_ci_low,
        drift_ci_high, control_change_pct_mean, effect_pct_mean, effect_pct_sd,
        mean_ci_low, mean_ci_high, t, df, p, p_fdr, significant, cohen_dz, ci_low,
        ci_high, wilcoxon_w, wilcoxon_p, test, headline, guard``. ``change_pct_mean`` is
        the raw change, ``effect_pct_mean`` the tested headline effect (negative = BP_ND
        fell) and ``p``/``p_fdr`` its test; ``cohen_dz`` is its mean / SD and
        ``ci_low``/``ci_high`` the 95 % CI of dz.
    """
    from pipeline.stats.drift_guard import apply_guard

    if test not in TESTS:
        raise ConfigError(format_problem(
            "config/config.yaml", f"statistics.test is {test!r}", "Choose ttest or wilcoxon."))
    if not (np.isfinite(sys_sd) and sys_sd >= 0):
        raise ConfigError(format_problem(
            "config/config.yaml", f"statistics.null_drift.sys_sd is {sys_sd!r}",
            "Give a number of % points >= 0."))
    if "drift_method" not in values.columns:
        values = values.assign(drift_method="none")
    rows = []
    for (contrast, model, region), cell in values.groupby(["contrast", "model", "region"],
                                                          sort=False):
        cell = cell[np.isfinite(cell["effect_pct"])]
        corrected = len(cell) and cell["drift_method"].iloc[0] == "release_model"
        row = dict(contrast=contrast, region=region, model=model,
                   baseline_mean=cell["bp_baseline"].mean(),
                   condition_mean=cell["bp_condition"].mean(),
                   change_pct_mean=cell["change_pct"].mean(),
                   change_pct_sd=cell["change_pct"].std(ddof=1),
                   control_change_pct_mean=cell["control_change_pct"].mean())
        cell_sys_sd = _cell_sys_sd(cell, sys_sd)
        row.update(_drift_summary(cell, cell_sys_sd))
        row.update(_test_group(cell["effect_pct"].to_numpy(float),
                               cell_sys_sd if corrected else 0.0, test))
        row["test"] = ("t_vs_null_drift" if corrected else "paired_t") \
            if test == "ttest" else "wilcoxon"
        row["headline"] = {"release_model": "drift_corrected", "control": "control_corrected"
                           }.get(str(row["drift_method"]), "raw")
        row["guard"] = ""
        rows.append(row)
    table = pd.DataFrame(rows)
    if guard and len(table):
        table = apply_guard(table, values, design)
    table["p_fdr"] = np.nan
    for _, idx in table.groupby(["contrast", "model"]).groups.items():
        p = table.loc[idx, "p"]
        ok = p.notna()
        if ok.any():
            table.loc[p[ok].index, "p_fdr"] = stats.false_discovery_control(p[ok].to_numpy())
    table["significant"] = table["p_fdr"] < alpha
    order = ["contrast", "region", "model", "n", "baseline_mean", "condition_mean",
             "change_pct_mean", "change_pct_sd", "drift_method", "drift_pct", "drift_sd",
             "drift_sys_sd", "drift_ci_low", "drift_ci_high", "control_change_pct_mean",
             "effect_pct_mean", "effect_pct_sd", "mean_ci_low", "mean_ci_high", "t", "df", "p",
             "p_fdr", "significant", "cohen_dz", "ci_low", "ci_high", "wilcoxon_w",
             "wilcoxon_p", "test", "headline", "guard"]
    return table[order]
