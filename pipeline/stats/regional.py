"""Region-wise paired contrasts: baseline vs condition BP_ND within each participant.

For every contrast, region and model, each participant contributes one paired value, the
% change ``100 (BP_condition - BP_baseline) / BP_baseline`` (negative = release). What is
tested (``effect_pct``) is that change

* minus the change of the ``control`` contrast at the same times, when the contrast has a
  control (design-based drift control, a double difference), or
* compared with the change that the study's own protocol produces with no release
  (``drift``, from :mod:`pipeline.stats.drift`), when a null-drift table is given: a
  one-sample t test of ``change - drift`` whose variance includes the drift's Monte Carlo
  error and its systematic (sensitivity-scenario) SD, or
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

__all__ = ["TESTS", "cohen_dz_ci", "contrast_values", "summarize_contrasts"]

log = logging.getLogger(__name__)

#: Tests whose p-value goes into the ``p`` column.
TESTS = ("ttest", "wilcoxon")

_KEYS = ["participant_id", "region", "model"]


def _condition_table(bp: pd.DataFrame, condition: str) -> pd.DataFrame:
    """Mean BP_ND per participant, region and model for one condition (runs averaged)."""
    rows = bp[bp["condition"] == condition]
    return rows.groupby(_KEYS, as_index=False)["bp_nd"].mean()


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
                                    "bp_nd_condition": "bp_condition"})
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
    return merged


def contrast_values(bp: pd.DataFrame, design: Design, *, drift: pd.DataFrame | None = None,
                    participants: list[str] | None = None,
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-participant paired values of every contrast.

    Parameters
    ----------
    bp : DataFrame
        ``group/bp_nd.tsv``: ``participant_id``, ``condition``, ``region``, ``model``,
        ``bp_nd`` (several runs of one condition are averaged).
    design : Design
        Conditions and contrasts (:func:`pipeline.design.load_design`).
    drift : DataFrame, default=None
        Null drift per ``contrast``, ``region``, ``model``: ``drift_pct`` (mean % change
        without release), ``drift_sd`` and ``n_sim``. Applied to plain within-scan
        contrasts; None = no empirical correction.
    participants : list of str, default=None
        Everyone expected (e.g. from ``participants.tsv``); default: all in ``bp``.

    Returns
    -------
    values : DataFrame
        One row per contrast, participant, region and model: ``bp_baseline``,
        ``bp_condition``, ``change_pct``, ``control_change_pct``, ``drift_pct``,
        ``effect_pct`` (the value tested, see the module text), ``activation``
        (BP_baseline - BP_condition, control subtracted for double differences) and
        ``activation_pct`` (= -``effect_pct``).
    exclusions : DataFrame
        ``contrast``, ``participant_id``, ``region``, ``model``, ``reason``.
    """
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
    tables = []
    for name, spec in design.contrasts.items():
        if spec.control is None:
            table = plain[name].copy()
            table["control_change_pct"] = np.nan
            table["drift_pct"] = 0.0
            if drift is not None and design.within_scan(name):
                d = drift[drift["contrast"] == name][["region", "model", "drift_pct"]]
                table = table.drop(columns="drift_pct").merge(d, on=["region", "model"],
                                                              how="left")
                lacking = table.loc[table["drift_pct"].isna(), ["region", "model"]]
                for region, model in lacking.drop_duplicates().itertuples(index=False):
                    log.warning("contrast %s: no null drift for %s/%s; tested uncorrected",
                                name, region, model)
                table["drift_pct"] = table["drift_pct"].fillna(0.0)
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


def cohen_dz_ci(dz: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Confidence interval of Cohen's dz from the noncentral t distribution.

    With ``t = dz sqrt(n)`` and ``df = n - 1``, the limits are the noncentrality values
    whose t distributions put ``t`` at the upper and lower ``(1 - level)/2`` quantiles,
    divided by ``sqrt(n)`` (Cumming & Finch 2001).

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


def _test_group(effect: np.ndarray, drift: pd.Series | None, test: str) -> dict[str, float]:
    """t (paired, or one-sample against the estimated null drift), Wilcoxon, dz per cell."""
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
        if drift is not None and np.isfinite(drift.get("drift_sd", np.nan)) \
                and drift.get("n_sim", 0) > 1:
            # effect = observed change - simulated mean drift. The drift is an estimated
            # offset, not a second sample: its variance is the Monte Carlo error of the
            # mean (drift_sd^2 / n_sim) plus the systematic spread over the sensitivity
            # scenarios (drift_sys_sd^2, model uncertainty). One-sample t of the observed
            # changes with that variance added; Welch-Satterthwaite df (the systematic
            # part counted with infinite df).
            n_sim = int(drift["n_sim"])
            a = sd**2 / n
            b = float(drift["drift_sd"]) ** 2 / n_sim
            c = float(drift.get("drift_sys_sd", 0.0))
            c = c**2 if np.isfinite(c) else 0.0
            se = np.sqrt(a + b + c)
            df = (a + b + c) ** 2 / (a**2 / (n - 1) + b**2 / (n_sim - 1))
            t = mean / se
            half = stats.t.ppf(0.975, df) * se
            out.update(t=float(t), df=float(df), p=float(2.0 * stats.t.sf(abs(t), df)),
                       mean_ci_low=mean - half, mean_ci_high=mean + half)
        else:
            res = stats.ttest_1samp(effect, 0.0)
            ci = res.confidence_interval(0.95)
            out.update(t=float(res.statistic), df=float(res.df), p=float(res.pvalue),
                       mean_ci_low=float(ci.low), mean_ci_high=float(ci.high))
        if sd > 0:
            out["cohen_dz"] = mean / sd
            out["ci_low"], out["ci_high"] = cohen_dz_ci(out["cohen_dz"], n)
        if np.any(effect != 0):
            w = stats.wilcoxon(effect)
            out.update(wilcoxon_w=float(w.statistic), wilcoxon_p=float(w.pvalue))
    if test == "wilcoxon":
        out["p"] = out["wilcoxon_p"]
    return out


def summarize_contrasts(values: pd.DataFrame, *, test: str = "ttest",
                        drift: pd.DataFrame | None = None, alpha: float = 0.05,
                        ) -> pd.DataFrame:
    """Group statistics per contrast, region and model (``group/contrasts.tsv``).

    Parameters
    ----------
    values : DataFrame
        From :func:`contrast_values`.
    test : {"ttest", "wilcoxon"}, default="ttest"
        Which test fills ``p`` (both are always reported: ``t``/``df`` and
        ``wilcoxon_w``/``wilcoxon_p``).
    drift : DataFrame, default=None
        The null-drift table used for ``values``: its Monte Carlo error
        (``drift_sd / sqrt(n_sim)``) and systematic SD (``drift_sys_sd``) are added to the
        variance of the one-sample t test of the drift-corrected changes.
    alpha : float, default=0.05
        FDR level for the ``significant`` column.

    Returns
    -------
    DataFrame
        ``contrast, region, model, n, baseline_mean, condition_mean, change_pct_mean,
        change_pct_sd, drift_pct, control_change_pct_mean, effect_pct_mean, effect_pct_sd,
        mean_ci_low, mean_ci_high, t, df, p, p_fdr, significant, cohen_dz, ci_low,
        ci_high, wilcoxon_w, wilcoxon_p, test``. ``cohen_dz`` is ``effect_pct`` mean / SD
        (negative = release) and ``ci_low``/``ci_high`` its 95 % CI.
    """
    if test not in TESTS:
        raise ConfigError(format_problem(
            "config/config.yaml", f"statistics.test is {test!r}", "Choose ttest or wilcoxon."))
    rows = []
    for (contrast, model, region), cell in values.groupby(["contrast", "model", "region"],
                                                          sort=False):
        cell = cell[np.isfinite(cell["effect_pct"])]
        d = None
        if drift is not None and (cell["drift_pct"] != 0).any():
            match = drift[(drift["contrast"] == contrast) & (drift["region"] == region)
                          & (drift["model"] == model)]
            d = match.iloc[0] if len(match) else None
        row = dict(contrast=contrast, region=region, model=model,
                   baseline_mean=cell["bp_baseline"].mean(),
                   condition_mean=cell["bp_condition"].mean(),
                   change_pct_mean=cell["change_pct"].mean(),
                   change_pct_sd=cell["change_pct"].std(ddof=1),
                   drift_pct=cell["drift_pct"].mean() if len(cell) else np.nan,
                   control_change_pct_mean=cell["control_change_pct"].mean())
        row.update(_test_group(cell["effect_pct"].to_numpy(float), d, test))
        row["test"] = ("t_vs_null_drift" if d is not None else "paired_t") \
            if test == "ttest" else "wilcoxon"
        rows.append(row)
    table = pd.DataFrame(rows)
    table["p_fdr"] = np.nan
    for _, idx in table.groupby(["contrast", "model"]).groups.items():
        p = table.loc[idx, "p"]
        ok = p.notna()
        if ok.any():
            table.loc[p[ok].index, "p_fdr"] = stats.false_discovery_control(p[ok].to_numpy())
    table["significant"] = table["p_fdr"] < alpha
    order = ["contrast", "region", "model", "n", "baseline_mean", "condition_mean",
             "change_pct_mean", "change_pct_sd", "drift_pct", "control_change_pct_mean",
             "effect_pct_mean", "effect_pct_sd", "mean_ci_low", "mean_ci_high", "t", "df", "p",
             "p_fdr", "significant", "cohen_dz", "ci_low", "ci_high", "wilcoxon_w",
             "wilcoxon_p", "test"]
    return table[order]
