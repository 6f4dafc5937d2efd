"""Key findings for the top of the report: what passed FDR, and the headline correlation.

Read straight from ``group/contrasts.tsv`` and ``group/correlations.tsv`` (primary model);
a sentence each, so that a reader sees the result before the evidence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from pipeline.report.collect import StudyResults
from pipeline.report.group_text import group_findings

__all__ = ["CONTRAST_NOTE", "FINDINGS_NOTE", "key_findings"]

#: What the % of the contrast lines is (shown under the key findings).
FINDINGS_NOTE = ("% = the tested (headline) change in BP_ND (100 x (condition - baseline) / "
                 "baseline): within one scan, minus each participant's null drift; for a "
                 "contrast with a control, minus the control's change; where the drift guard "
                 "tripped, the design-based control's result (effect_pct_mean, else "
                 "change_pct_mean); negative = BP_ND fell (release). Regions ordered by "
                 "p_FDR.")

#: Units and meaning of the contrast table's key columns (shown under it).
CONTRAST_NOTE = ("baseline_mean, condition_mean: mean BP_ND (unitless); *_pct*: % of the "
                 "baseline BP_ND; change_pct_mean: the raw change; drift_pct: the mean "
                 "change the model shows on the scans with the release taken out (null "
                 "drift, with its 95% interval drift_ci_low/high including the systematic SD "
                 "drift_sys_sd); effect_pct_mean: the tested headline change (headline says "
                 "which: drift_corrected, control_corrected, or the guard's fallback) with "
                 "its 95% CI (mean_ci_low, mean_ci_high); t, df, p: its test (see Methods); "
                 "p_fdr: Benjamini-Hochberg across regions per contrast and model; cohen_dz: "
                 "effect size; guard: why the drift correction was not used. n/a: not "
                 "applicable to that contrast.")


def _contrast_lines(con: pd.DataFrame, model: str | None, alpha: float) -> list[str]:
    rows = con if model is None or "model" not in con else con[con["model"] == model]
    value = "effect_pct_mean" if "effect_pct_mean" in rows else "change_pct_mean"
    lines = []
    for name, cell in rows.groupby("contrast", sort=False):
        hits = cell[cell["p_fdr"] < alpha].sort_values("p_fdr") if "p_fdr" in cell else cell[:0]
        if hits.empty:
            lines.append(f"{name}: no region passes FDR {alpha:g}.")
            continue
        parts = [f"{r['region']} {r[value]:+.1f} % (p_FDR {r['p_fdr']:.2g}"
                 + (f"; {r['headline']}" if str(r.get("headline", "")).startswith("control_")
                    and str(r.get("guard", "")) not in ("", "nan") else "") + ")"
                 for _, r in hits.iterrows()]
        lines.append(f"{name}: {len(hits)} of {len(cell)} regions pass FDR {alpha:g}: "
                     + ", ".join(parts) + ".")
    guarded = rows[rows["guard"].fillna("").astype(str).str.len() > 0] \
        if "guard" in rows else rows[:0]
    if len(guarded):
        names = ", ".join(f"{r['contrast']}/{r['region']}" for _, r in guarded.iterrows())
        lines.append(f"Drift guard: the within-scan drift correction was not used for {names} "
                     "(the data contradicted it; see the guard column): those rows show the "
                     "design-based control or no test.")
    return lines


def _correlation_line(cor: pd.DataFrame, first: Mapping[str, Any]) -> str | None:
    rows = cor
    for key in ("region", "score", "contrast"):
        if key in first and key in rows and (rows[key] == first[key]).any():
            rows = rows[rows[key] == first[key]]
    if "covariates" in rows:
        plain = rows[rows["covariates"].isna() | (rows["covariates"].astype(str) == "n/a")]
        rows = plain if len(plain) else rows
    if "measure" in rows and (rows["measure"] == "activation").any():
        rows = rows[rows["measure"] == "activation"]
    if "method" in rows and (rows["method"] == "pearson").any():
        rows = rows[rows["method"] == "pearson"]
    if rows.empty:
        return None
    r = rows.iloc[0]
    perm = f", permutation p {r['p_perm']:.2g}" if "p_perm" in r and np.isfinite(r["p_perm"]) \
        else ""
    ci = f", 95% CI {r['ci_low']:.2f} to {r['ci_high']:.2f}" \
        if {"ci_low", "ci_high"} <= set(r.index) and np.isfinite(r["ci_low"]) else ""
    group = f" in {r['group']}" if str(r.get("group", "all")) not in ("all", "nan") else ""
    return (f"{r['region']} activation ({r['contrast']}) vs {r['score']}{group}: "
            f"r = {r['r']:.2f}, p = {r['p']:.2g}{perm}{ci}, n = {int(r['n'])}.")


def key_findings(results: StudyResults, alpha: float | None = None,
                 first: Mapping[str, Any] | None = None) -> list[str]:
    """One line per contrast (regions passing FDR, primary model) and the headline correlation.

    Parameters
    ----------
    results : StudyResults
    alpha : float, default=None
        FDR level; None takes ``statistics.alpha`` from the config (else 0.05).
    first : mapping, default=None
        ``region`` and ``score`` of the headline correlation.

    Returns
    -------
    list of str
    """
    stats = results.config.get("statistics")
    if alpha is None:
        alpha = float(stats.get("alpha", 0.05)) if isinstance(stats, Mapping) else 0.05
    model = results.models[0] if results.models else None
    lines = []
    if results.contrasts is not None and len(results.contrasts):
        lines += _contrast_lines(results.contrasts, model, alpha)
    lines += group_findings(results.group_differences, results.rating_tests, model,
                            results.config)
    if results.correlations is not None and len(results.correlations):
        line = _correlation_line(results.correlations, first or {})
        if line:
            lines.append(line)
    return lines
