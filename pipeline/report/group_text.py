"""Words of the patient-vs-control report: key findings on group differences and ratings,
and the methods paragraph of the group tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["GROUP_REFERENCES", "group_findings", "group_methods"]

#: References cited by the group methods (merged into the report's reference list).
GROUP_REFERENCES: dict[str, str] = {
    "Welch1947": "Welch BL. The generalization of 'Student's' problem when several different "
                 "population variances are involved. Biometrika 1947;34:28-35.",
    "Hedges1981": "Hedges LV. Distribution theory for Glass's estimator of effect size and "
                  "related estimators. J Educ Stat 1981;6:107-128.",
    "Janssen1997": "Janssen A. Studentized permutation tests for non-i.i.d. hypotheses and the "
                   "generalized Behrens-Fisher problem. Stat Probab Lett 1997;36:9-21.",
    "Hsu2015": "Hsu DT, Sanford BJ, Meyers KK, et al. It still hurts: altered endogenous opioid "
               "activity in the brain during social rejection and acceptance in major "
               "depressive disorder. Mol Psychiatry 2015;20:193-200.",
}


def _alpha(config: Mapping[str, Any]) -> float:
    stats = config.get("statistics")
    return float(stats.get("alpha", 0.05)) if isinstance(stats, Mapping) else 0.05


def group_findings(differences: pd.DataFrame | None, rating_tests: pd.DataFrame | None,
                   model: str | None, config: Mapping[str, Any]) -> list[str]:
    """One line per contrast and comparison naming the regions whose groups differ (FDR),
    and one per rating change that differs between groups or within a group (p < alpha).

    Parameters
    ----------
    differences : DataFrame or None
        ``group_differences.tsv``.
    rating_tests : DataFrame or None
        ``rating_tests.tsv``.
    model : str or None
        The model of the lines (the primary model); None uses every model.
    config : mapping
        The config that ran (alpha, groups).
    """
    alpha = _alpha(config)
    lines = []
    if differences is not None and len(differences):
        rows = differences if model is None else differences[differences["model"] == model]
        for (contrast, a, b), cell in rows.groupby(["contrast", "group_a", "group_b"],
                                                   sort=False):
            hits = cell[cell["p_fdr"] < alpha].sort_values("p_fdr")
            if hits.empty:
                lines.append(f"{a} vs {b}, {contrast}: no region differs between groups "
                             f"(FDR {alpha:g}).")
                continue
            parts = [f"{r['region']} {r['difference']:+.1f} points (95% CI "
                     f"{r['ci_low']:.1f} to {r['ci_high']:.1f}; {a} {r['activation_a']:.1f} "
                     f"%, {b} {r['activation_b']:.1f} %; p_FDR {r['p_fdr']:.2g}"
                     + ("; baseline BP_ND differs between groups, so drift may not cancel"
                        if str(r.get("binding_differs")) in ("True", "true", "1") else "")
                     + ")"
                     for _, r in hits.iterrows()]
            lines.append(f"{a} vs {b}, {contrast}: {len(hits)} of {len(cell)} regions differ "
                         f"(FDR {alpha:g}): " + ", ".join(parts) + ".")
    if rating_tests is not None and len(rating_tests):
        for _, r in rating_tests.iterrows():
            if not (np.isfinite(r["p"]) and r["p"] < alpha):
                continue
            if r["test"] == "between":
                lines.append(f"Rating {r['measure']} ({r['contrast']}): the change differs "
                             f"between {r['group_a']} and {r['group_b']} by "
                             f"{r['mean']:+.1f} (95% CI {r['ci_low']:.1f} to "
                             f"{r['ci_high']:.1f}, p {r['p']:.2g}).")
            elif r["group"] != "all":
                lines.append(f"Rating {r['measure']} ({r['contrast']}): changes by "
                             f"{r['mean']:+.1f} in {r['group']} (p {r['p']:.2g}, "
                             f"n {int(r['n'])}).")
    return lines


def _within_scan(design: Mapping[str, Any]) -> bool:
    """Whether a contrast of the config's design compares windows of the same scans."""
    conditions = design.get("conditions") if isinstance(design.get("conditions"), Mapping) \
        else {}
    contrasts = design.get("contrasts") if isinstance(design.get("contrasts"), Mapping) \
        else {}
    for spec in contrasts.values():
        if not isinstance(spec, Mapping):
            continue
        base, cond = conditions.get(spec.get("baseline")), conditions.get(spec.get("condition"))
        if isinstance(base, Mapping) and isinstance(cond, Mapping) \
                and base.get("task") == cond.get("task"):
            return True
    return False


def group_methods(differences: pd.DataFrame | None, rating_tests: pd.DataFrame | None,
                  sidecar: Mapping[str, Any] | None, config: Mapping[str, Any]) -> list[str]:
    """The methods paragraph of the group comparison and the ratings ([] without them).

    Parameters
    ----------
    differences : DataFrame or None
        ``group_differences.tsv``.
    rating_tests : DataFrame or None
        ``rating_tests.tsv``.
    sidecar : mapping or None
        ``group_differences.json`` (permutations, covariates, protocol check).
    config : mapping
        The config that ran.
    """
    out = []
    design = config.get("design") if isinstance(config.get("design"), Mapping) else {}
    groups = design.get("groups") if isinstance(design.get("groups"), Mapping) else None
    stats = config.get("statistics") if isinstance(config.get("statistics"), Mapping) else {}
    if differences is not None and len(differences) and groups:
        levels = [str(v) for v in groups.get("levels", [])]
        counts = (sidecar or {}).get("participants") or {}
        sizes = ", ".join(f"{lv} n = {len(counts[lv])}" for lv in levels if lv in counts)
        covs = [c for c in groups.get("covariates") or []]
        adjust = (f" Differences adjusted for {' and '.join(covs)} were estimated by ordinary "
                  "least squares (activation ~ 1 + group + covariates; categorical covariates "
                  "as indicators) and FDR-corrected in the same way.") if covs else ""
        protocol = (sidecar or {}).get("protocols") or {}
        drift = "" if not _within_scan(design) else (
                 "The groups were scanned with the same protocol (administration mode, "
                 "bolus-to-infusion ratio Kbol and frame schedule from the PET sidecars), so "
                 "the within-scan null drift, one value per region for a protocol, cancels "
                 "in the difference as long as the groups bind alike; activations are "
                 "therefore the raw % changes, without the null-drift correction of the "
                 "within-group tests. Because the drift depends on binding, rows where the "
                 "groups' baseline BP_ND differed (Welch p < alpha) were flagged."
                 if protocol.get("same_protocol", True) else
                 "The groups' scan protocols differ (" + "; ".join(protocol.get("warnings",
                                                                               []))
                 + "): the within-scan drift need not cancel in the difference, which then "
                 "mixes release with drift; interpret with caution.")
        out.append(
            f"Participants were grouped by the participants.tsv column "
            f"'{groups.get('column')}' ({sizes or ', '.join(levels)}; {levels[0]} is the "
            "reference of every comparison) [Hsu2015]. Every contrast was also summarized "
            "within each group as for the pooled sample. Between groups, activation (the "
            "fall of BP_ND in % of baseline, minus the control contrast's change for double "
            f"differences) was compared per contrast, region and model as {levels[0]} minus "
            "the other group, by Welch's unequal-variance t test with a 95% confidence "
            "interval of the difference [Welch1947], Benjamini-Hochberg FDR across regions "
            "per contrast and model [Benjamini1995], Hedges' g with a noncentral-t "
            "confidence interval [Hedges1981], and a permutation p-value of the studentized "
            f"difference ({stats.get('n_perm', 5000)} label permutations) [Janssen1997]."
            + adjust + (" " + drift if drift else ""))
        vox = config.get("voxelwise") if isinstance(config.get("voxelwise"), Mapping) else {}
        if vox.get("enabled", True):
            out[-1] += (" Voxelwise, each contrast's per-participant effect maps were compared "
                        "between groups (a two-sample model, the group x condition "
                        "interaction) and tested within each group with nilearn's "
                        "second-level model and permutation family-wise error control "
                        f"({vox.get('n_perm', 200)} permutations) [Abraham2014] "
                        "[Nichols2002].")
    if rating_tests is not None and len(rating_tests):
        measures = ", ".join(dict.fromkeys(rating_tests["measure"].astype(str)))
        text = (f"Condition-level ratings ({measures}; BIDS phenotype files) were turned into "
                "each participant's rating change per contrast (rating in the condition minus "
                "rating in its baseline) and tested against zero by one-sample t tests "
                "(Wilcoxon signed-rank tests also reported)")
        if (rating_tests["test"] == "between").any():
            text += (" within each group, and between groups by Welch's t test with Hedges' g "
                     "and a label-permutation p-value")
        out.append(text + "; correlations with a rating as score used the rating change of "
                   "the correlated contrast.")
    return out
