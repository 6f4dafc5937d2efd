"""Region-wise paired contrasts: baseline vs condition BP_ND within each participant.

For every contrast, region and model, each participant contributes one paired value, the
% change ``100 (BP_condition - BP_baseline) / BP_baseline`` (negative = release). What is
tested (``effect_pct``) is that change

* minus the change of the ``control`` contrast at the same times, when the contrast has a
  control (design-based drift control, a double difference), or
* minus the participant's own null drift, for plain contrasts within one scan when the
  condition fits carry ``bp_nd_null`` (the model's BP_ND on the scan's TACs with the
  release model's estimate of the release removed, :mod:`pipeline.kinetics.release`):
  ``drift = 100 (null_condition - null_baseline) / null_baseline``, by default averaged over
  the participant's scans with the same windows (:mod:`pipeline.stats.drift_pool`); the
  one-sample t test of ``change - drift`` adds a systematic variance ``sys_sd^2`` (the
  residual drift of the release model that the data cannot show), or
* against zero (a paired t test on the % change) otherwise.

Participants without a scan, or with a non-finite or non-positive baseline BP_ND, are left
out of that contrast and listed, with the reason, in the exclusions table; nothing is
dropped silently. FDR (Benjamini-Hochberg) runs across regions within each contrast and
model.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import optimize, stats

from pipeline.design import Design
from pipeline.errors import ConfigError, InputError, format_problem
from pipeline.stats.drift_pool import DRIFT_POOLS, pool_drift_over_scans

__all__ = ["TESTS", "cohen_dz_ci", "contrast_values", "summarize_contrasts"]

log = logging.getLogger(__name__)

#: Tests whose p-value goes into the ``p`` column.
TESTS = ("ttest", "wilcoxon")

_KEYS = ["participant_id", "region", "model"]


def _condition_table(bp: pd.DataFrame, condition: str) -> pd.DataFrame:
    """Mean BP_ND (and BP_ND without release) per participant, region and model for one
    condition (runs averaged)."""
    rows = bp[bp["condition"] == condition]
    columns = [c for c in ("bp_nd", "bp_nd_null") if c in rows.columns]
    return rows.groupby(_KEYS, as_index=False)[columns].mean()


def _exclusion(contrast: str, pid: str, reason: str, region: str = "all",
               model: str = "all") -> dict[str, str]:
    return {"contrast": contrast, "participant_id": pid, "region": region, "model": model,
            "reason": reason}


def _paired(bp: pd.DataFrame, design: Design, name: str, participants: list[str],
            exclusions: list[dict]) -> pd.DataFrame:
    """Per-participant baseline, condition and % change for a plain contrast."""
    spec = design.contrasts[name]
    base = _condition_table(bp, spec.baseline)
    cond = _condition_table(bp, spec.condition)
    for label, table in ((spec.baseline, base), (spec.condition, cond)):
        task = design.conditions[label].task
        for pid in sorted(set(participants) - set(table["participant_id"])):
            exclusions.append(_exclusion(
                name, pid, f"no BP_ND for condition '{label}' (no task-{task} scan)"))
    merged = base.merge(cond, on=_KEYS, suffixes=("_baseline", "_condition"))
    merged = merged.rename(columns={"bp_nd_baseline": "bp_baseline",
                                    "bp_nd_condition": "bp_condition",
                                    "bp_nd_null_baseline": "null_baseline",
                                    "bp_nd_null_condition": "null_condition"})
    finite = np.isfinite(merged["bp_baseline"]) & np.isfinite(merged["bp_condition"])
    positive = merged["bp_baseline"] > 0
    for _, row in merged[~finite].iterrows():
        exclusions.append(_exclusion(name, row.participant_id,
                                     "BP_ND not finite (failed fit)", row.region, row.model))
    for _, row in merged[finite & ~positive].iterrows():
        exclusions.append(_exclusion(
            name, row.participant_id,
            f"baseline BP_ND {row.bp_baseline:.3g} <= 0: % change undefined",
            row.region, row.model))
    merged = merged[finite & positive].copy()
    merged["change_pct"] = 100.0 * (merged["bp_condition"] - merged["bp_baseline"]) \
        / merged["bp_baseline"]
    merged["activation"] = merged["bp_baseline"] - merged["bp_condition"]
    if "null_baseline" in merged.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            merged["null_change_pct"] = np.where(
                merged["null_baseline"] > 0, 100.0 * (merged["null_condition"]
                                                      - merged["null_baseline"])
                / merged["null_baseline"], np.nan)
        merged = merged.drop(columns=["null_baseline", "null_condition"])
    else:
        merged["null_change_pct"] = np.nan
    return merged


def contrast_values(bp: pd.DataFrame, design: Design, *, drift_correct: bool = True,
                    participants: list[str] | None = None, drift_pool: str = "scans",
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-participant paired values of every contrast.

    Parameters
    ----------
    bp : DataFrame
        ``group/bp_nd.tsv``: ``participant_id``, ``condition``, ``region``, ``model``,
        ``bp_nd`` (several runs of one condition are averaged).
    design : Design
        Conditions and contrasts (:func:`pipeline.design.load_design`).
    drift_correct : bool, default=True
        Subtract each participant's null drift (from ``bp_nd_null``) in plain within-scan
        contrasts; False tests the raw change.
    participants : list of str, default=None
        Everyone expected (e.g. from ``participants.tsv``); default: all in ``bp``.
    drift_pool : {"scans", "none"}, default="scans"
        ``scans``: a participant's drift is the mean over its within-scan contrasts with
        the same windows (:mod:`pipeline.stats.drift_pool`); ``none``: its own scan's.

    Returns
    -------
    values : DataFrame
        One row per contrast, participant, region and model: ``bp_baseline``,
        ``bp_condition``, ``change_pct``, ``control_change_pct``, ``drift_pct`` (the
        participant's null drift, 0 where none applies), ``drift_scans`` (how many scans'
        drifts it averages), ``drift_method``
        (``release_model``, ``control`` or ``none``), ``effect_pct`` (the value tested, see
        the module text), ``activation``
        (BP_baseline - BP_condition, control subtracted for double differences) and
        ``activation_pct`` (= -``effect_pct``).
    exclusions : DataFrame
        ``contrast``, ``participant_id``, ``region``, ``model``, ``reason``.
    """
    if drift_pool not in DRIFT_POOLS:
        raise ConfigError(format_problem(
            "config/config.yaml", f"statistics.null_drift.pool is {drift_pool!r}",
            f"Choose one of {', '.join(DRIFT_POOLS)}."))
    missing = {"participant_id", "condition", "region", "model", "bp_nd"} - set(bp.columns)
    if missing:
        raise InputError(format_problem(
            "group/bp_nd.tsv", f"missing column(s) {', '.join(sorted(missing))}",
            "Rebuild it with the workflow's collect_bp_nd rule."))
    participants = sorted(set(participants or []) | set(bp["participant_id"]))
    exclusions: list[dict] = []
    plain: dict[str, pd.DataFrame] = {}
    for name, spec in design.contrasts.items():
        if spec.control is None:
            plain[name] = _paired(bp, design, name, participants, exclusions)
    drifted: dict[str, pd.DataFrame] = {}
    for name, spec in design.contrasts.items():
        if spec.control is None:
            table = plain[name].copy()
            table["control_change_pct"] = np.nan
            table["drift_pct"] = 0.0
            table["drift_method"] = "none"
            table["drift_scans"] = 0
            if drift_correct and design.within_scan(name):
                table = _subtract_null_drift(table, name, exclusions)
            drifted[name] = table
    if drift_pool == "scans":
        drifted = pool_drift_over_scans(drifted, design)
    tables = []
    for name, spec in design.contrasts.items():
        if spec.control is None:
            table = drifted[name]
            table["effect_pct"] = table["change_pct"] - table["drift_pct"]
        else:
            ctl = plain.get(spec.control)
            if ctl is None:
                ctl = _paired(bp, design, spec.control, participants, [])
            own = plain.get(name) if name in plain else \
                _paired(bp, design, name, participants, exclusions)
            for pid in sorted(set(own["participant_id"]) - set(ctl["participant_id"])):
                exclusions.append(_exclusion(
                    name, pid, f"no paired values for control contrast '{spec.control}'"))
            table = own.merge(ctl[[*_KEYS, "change_pct", "activation"]], on=_KEYS,
                              suffixes=("", "_control"))
            table = table.rename(columns={"change_pct_control": "control_change_pct"})
            table["activation"] = table["activation"] - table.pop("activation_control")
            table["drift_pct"] = 0.0
            table["drift_method"] = "control"
            table["drift_scans"] = 0
            table["effect_pct"] = table["change_pct"] - table["control_change_pct"]
        table["activation_pct"] = -table["effect_pct"]
        table.insert(0, "contrast", name)
        tables.append(table)
    values = pd.concat(tables, ignore_index=True)
    excl = pd.DataFrame(exclusions, columns=["contrast", "participant_id", "region", "model",
                                             "reason"]).drop_duplicates()
    for row in excl.itertuples():
        log.warning("contrast %s: %s left out (%s, %s): %s", row.contrast, row.participant_id,
                    row.region, row.model, row.reason)
    return values, excl


def _subtract_null_drift(table: pd.DataFrame, name: str, exclusions: list[dict]
                         ) -> pd.DataFrame:
    """Each participant's null drift from ``null_change_pct``; rows without one leave."""
    if table["null_change_pct"].isna().all():
        log.warning("contrast %s: the condition fits carry no BP_ND without release "
                    "(bp_nd_null); tested without drift correction", name)
        return table
    lacking = table["null_change_pct"].isna()
    for _, row in table[lacking].iterrows():
        exclusions.append(_exclusion(
            name, row.participant_id, "no null drift: the release model did not fit",
            row.region, row.model))
    table = table[~lacking].copy()
    table["drift_pct"] = table["null_change_pct"]
    table["drift_method"] = "release_model"
    table["drift_scans"] = 1
    return table


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


def summarize_contrasts(values: pd.DataFrame, *, test: str = "ttest", sys_sd: float = 1.0,
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
    sys_sd : float, default=1.0
        % points: systematic SD of the release model's null drift, added to the variance of
        the test of drift-corrected effects (rows with ``drift_method`` ``release_model``).
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
        row.update(_drift_summary(cell, sys_sd))
        row.update(_test_group(cell["effect_pct"].to_numpy(float),
                               sys_sd if corrected else 0.0, test))
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
