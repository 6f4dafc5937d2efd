"""The report's patient-vs-control and ratings section (spec ``kind: groups``).

Shows, for the primary model: the groups and whether their scan protocols match, the
group-difference table and plot (difference with 95% CI per region and contrast), each
group's paired values per contrast, the per-group contrast table, the rating changes (table
and plot, within and between groups), scatters of activation against rating changes by
group, and the voxelwise group maps with their cluster tables. Other models' difference
tables are folded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.report import figures, group_figures
from pipeline.report.blocks import (
    BuildContext,
    details,
    error_block,
    kv_block,
    table_block,
    text_block,
)
from pipeline.report.collect import StudyResults
from pipeline.report.paired import (
    activation_scores,
    contrast_conditions,
    paired_from_values,
    paired_values,
)

__all__ = ["DIFFERENCE_NOTE", "build_groups", "correlation_points", "scatter_points"]

Blocks = list[dict[str, Any]]

#: Units and meaning of the difference table (shown under it).
DIFFERENCE_NOTE = ("activation_a, activation_b: mean release in % of baseline BP_ND (positive "
                   "= BP_ND fell; raw % change, without the null-drift correction, which "
                   "cancels between groups scanned with one protocol); difference = a - b "
                   "with Welch's 95% CI (ci_low, ci_high), t, df, p; p_fdr: Benjamini-"
                   "Hochberg across regions per contrast and model; hedges_g with its CI; "
                   "p_perm: label permutation; *_adj: adjusted for the covariates; "
                   "binding_differs: the groups' baseline BP_ND differs (Welch p < alpha), "
                   "so the drift need not cancel.")

_KEY_COLUMNS = ["contrast", "region", "group_a", "group_b", "n_a", "n_b", "activation_a",
                "activation_b", "difference", "ci_low", "ci_high", "t", "df", "p", "p_fdr",
                "hedges_g", "p_perm", "difference_adj", "p_adj", "p_fdr_adj",
                "binding_differs"]


def _levels(results: StudyResults) -> list[str]:
    design = results.config.get("design")
    groups = design.get("groups") if isinstance(design, Mapping) else None
    return [str(v) for v in groups.get("levels", [])] if isinstance(groups, Mapping) else []


def correlation_points(results: StudyResults, key: Mapping[str, Any], model: str | None,
                       measure: str) -> pd.DataFrame:
    """``x`` (activation measure), ``y`` (score or rating change) and ``group`` of one
    correlation row's participants (its ``group`` only, when not ``all``).

    Parameters
    ----------
    results : StudyResults
        What :func:`pipeline.report.collect_results` read.
    key : mapping
        A row of ``correlations.tsv`` (contrast, region, score, group).
    model : str or None
        The model of the activation values.
    measure : str
        Column of ``contrast_values.tsv`` used as x (e.g. ``activation``); absent: minus
        ``change_pct``.
    """
    values = paired_from_values(results.values, str(key["contrast"]), model) \
        if results.values is not None else pd.DataFrame()
    rows = values[values["region"] == key["region"]]
    x = rows[measure] if measure in rows else -rows["change_pct"]
    xy = pd.DataFrame({"participant_id": rows["participant_id"], "x": x.to_numpy(float)})
    xy["group"] = rows["group"].to_numpy() if "group" in rows else "all"
    score = str(key["score"])
    parts = results.participants
    if parts is not None and score in parts.columns:
        y = parts[["participant_id", score]].rename(columns={score: "y"})
    elif results.rating_changes is not None:
        rc = results.rating_changes
        rc = rc[(rc["measure"] == score) & (rc["contrast"] == key["contrast"])]
        y = rc[["participant_id", "rating_change"]].rename(columns={"rating_change": "y"})
    else:
        raise ValueError(f"score {score!r} is neither in participants.tsv nor a rating change")
    xy = xy.merge(y, on="participant_id")
    xy["y"] = pd.to_numeric(xy["y"], errors="coerce")
    group = key.get("group")
    if isinstance(group, str) and group != "all":
        xy = xy[xy["group"].astype(str) == group]
    return xy[xy["x"].notna() & xy["y"].notna()].reset_index(drop=True)


def scatter_points(results: StudyResults, key: Mapping[str, Any], model: str | None,
                   measure: str) -> pd.DataFrame:
    """``x``/``y`` of one correlation scatter: a participants.tsv score of everyone (from
    ``contrast_values.tsv``, else rebuilt from ``bp_nd.tsv``), or else
    :func:`correlation_points` (one group's participants, or a rating change).

    Parameters
    ----------
    results : StudyResults
        What :func:`pipeline.report.collect_results` read.
    key : mapping
        A row of ``correlations.tsv`` (contrast, region, score, group).
    model : str or None
        The model of the activation values.
    measure : str
        Column of ``contrast_values.tsv`` used as x.
    """
    pooled = str(key.get("group", "all")) in ("all", "nan")
    if pooled and results.participants is not None \
            and key["score"] in results.participants.columns:
        values = results.values
        contrast = str(key["contrast"])
        if values is not None and contrast in set(values["contrast"].astype(str)):
            paired = paired_from_values(values, contrast, model)
        else:
            paired = paired_values(results.bp_nd, contrast, results.config, model)
        return activation_scores(paired, results.participants, key["score"], key["region"],
                                 measure)
    return correlation_points(results, key, model, measure)


def _difference_blocks(results: StudyResults, ctx: BuildContext, model: str,
                       spec: Mapping) -> Blocks:
    diff = results.group_differences
    rows = diff[diff["model"].astype(str) == model]
    alpha = float((results.config.get("statistics") or {}).get("alpha", 0.05))
    blocks: Blocks = [table_block(rows, f"Group differences ({model})", DIFFERENCE_NOTE,
                                  table_id=f"group-differences-{model}",
                                  columns=spec.get("difference_columns", _KEY_COLUMNS))]
    order = None if results.bp_nd is None else list(dict.fromkeys(results.bp_nd["region"]))
    for (a, b), cell in rows.groupby(["group_a", "group_b"], sort=False):
        blocks.append(ctx.figure(
            f"group_differences_{a}vs{b}_model-{model}", group_figures.plot_group_differences,
            cell, alpha=alpha, regions=order, fmt=spec.get("figure", {}).get("format", "svg"),
            title=f"Release in {a} minus {b} with 95% CI ({model})",
            caption=f"Positive: more release (BP_ND fell more) in {a}. Filled: FDR-"
                    f"significant (p_fdr < {alpha:g}); open: not."))
    return blocks


def _paired_blocks(results: StudyResults, ctx: BuildContext, model: str,
                   levels: list[str], spec: Mapping) -> Blocks:
    values = results.values
    if values is None or "group" not in values:
        return []
    blocks: Blocks = []
    regions = None if results.bp_nd is None else list(dict.fromkeys(results.bp_nd["region"]))
    for name in dict.fromkeys(values["contrast"].astype(str)):
        paired = paired_from_values(values, name, model)
        labels = contrast_conditions(name, results.config)
        options: dict[str, Any] = dict(labels=labels)
        caption = "One line per participant of the group (red: BP_ND fell); black: the mean."
        if "control_change_pct" in paired and paired["control_change_pct"].notna().any():
            options = dict(labels=("control", labels[1]), ylabel="% change",
                           columns=("control_change_pct", "change_pct"))
            caption = ("One line per participant of the group: the control contrast's % "
                       "change (left) and this contrast's (right); black: the mean.")
        for level in levels:
            subset = paired[paired["group"].astype(str) == level]
            if subset.empty:
                continue
            blocks.append(ctx.figure(
                f"paired_contrast-{name}_group-{level}_model-{model}", figures.plot_paired,
                subset, regions=regions, ncols=spec.get("ncols", 5),
                fmt=spec.get("figure", {}).get("format", "svg"),
                title=f"{name}, group {level}: {options['labels'][0]} vs "
                      f"{options['labels'][1]} ({model})", caption=caption, **options))
    return blocks


def _rating_blocks(results: StudyResults, ctx: BuildContext, levels: list[str],
                   spec: Mapping) -> Blocks:
    blocks: Blocks = []
    if results.rating_tests is not None and len(results.rating_tests):
        blocks.append(table_block(
            results.rating_tests, "Rating changes: within and between groups",
            "mean: mean rating change (condition - baseline; for test 'between', group a "
            "minus b) with its 95% CI, t, df, p; effect_size: Cohen's dz (within) or "
            "Hedges' g (between).", table_id="rating-tests"))
    changes = results.rating_changes
    if changes is not None and len(changes):
        blocks.append(ctx.figure(
            "rating_changes", group_figures.plot_rating_changes, changes, levels,
            fmt=spec.get("figure", {}).get("format", "svg"),
            title="Rating change per participant and group",
            caption="Rating in the condition minus its baseline; black squares: group mean "
                    "with 95% CI."))
    cor = results.correlations
    if cor is not None and "score_kind" in cor and changes is not None:
        rated = cor[cor["score_kind"] == "rating_change"]
        model = results.models[0] if results.models else None
        for (contrast, region, score), _ in rated.groupby(["contrast", "region", "score"],
                                                          sort=False):
            key = {"contrast": contrast, "region": region, "score": score}
            try:
                xy = correlation_points(results, key, model, "activation_pct")
            except Exception as err:  # a missing column etc.: show, do not stop
                blocks.append(ctx.fail(f"rating scatter {contrast}/{region}/{score}", err))
                continue
            lines = rated[(rated["contrast"] == contrast) & (rated["region"] == region)
                          & (rated["score"] == score) & (rated["method"] == "pearson")
                          & (rated["measure"] == "activation_pct")]
            note = "; ".join(f"{r['group']}: r = {r['r']:.2f} (n {int(r['n'])})"
                             for _, r in lines.iterrows())
            blocks.append(ctx.figure(
                f"rating_scatter_contrast-{contrast}_region-{region}_score-{score}",
                group_figures.plot_group_scatter, xy,
                f"{region} activation, % of baseline ({contrast})",
                f"{score} rating change ({contrast})", annotation=note, levels=levels,
                fmt=spec.get("figure", {}).get("format", "svg"),
                title=f"{region} activation vs {score} rating change ({contrast})",
                caption="One point per participant, coloured by group, with each group's "
                        "least-squares line; r from group/correlations.tsv."))
    return blocks


def _map_blocks(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    blocks: Blocks = []
    threshold = float(spec.get("thresholds", {}).get("tmap", 2.0))
    shown = [p for p in results.group_maps if p.name.endswith("_tmap.nii.gz")]
    for path in shown[: spec.get("max_maps", 12)]:
        label = path.name.removesuffix(".nii.gz")
        sign = ("positive = more release in the first group" if "_desc-" in label else
                "negative = BP_ND fell (release)")
        blocks.append(ctx.figure(label, figures.plot_stat_map, path, title=label,
                                 threshold=threshold, fmt="png", dpi=72,
                                 caption=f"group/groups/{path.name}: t above |{threshold:g}|; "
                                         + sign + "."))
    from pipeline.tables import read_table

    tables = [table_block(read_table(p), f"Clusters: {p.name}", table_id=p.stem)
              for p in results.group_cluster_tables]
    if tables:
        blocks.append(details(f"Cluster tables of the group maps ({len(tables)})", tables))
    return blocks


def build_groups(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """Group differences, per-group values, ratings and group maps (primary model first);
    one sentence when the study has neither groups nor ratings.

    Parameters
    ----------
    results : StudyResults
        What :func:`pipeline.report.collect_results` read.
    ctx : BuildContext
        Figure folder and error list of the report being built.
    spec : mapping
        This section's entry of ``spec.yaml``.
    """
    levels = _levels(results)
    diff = results.group_differences
    has_ratings = results.rating_tests is not None and len(results.rating_tests) > 0
    if (diff is None or diff.empty) and not has_ratings:
        return [text_block("This study has no patient-vs-control design (design.groups) and "
                           "no condition-level ratings (phenotype/).")]
    blocks: Blocks = []
    models = results.models or ([str(diff["model"].iloc[0])] if diff is not None
                                and len(diff) else [])
    side = results.sidecars.get("group_differences", {})
    if levels:
        sizes = side.get("participants") or {}
        blocks.append(kv_block({f"Group {lv}": f"{len(sizes.get(lv, []))} participants"
                                for lv in levels} | {"Reference group": levels[0]},
                               "Groups"))
    if diff is not None and "binding_differs" in diff and models:
        flagged = diff[(diff["model"].astype(str) == models[0])
                       & diff["binding_differs"].astype(str).isin(["True", "true", "1"])]
        if len(flagged):
            where = "; ".join(f"{c}: {', '.join(rows['region'])}" for c, rows in
                              flagged.groupby("contrast", sort=False))
            blocks.append(error_block(
                "Baseline BP_ND differs between groups",
                f"{where} (bp_baseline_p < alpha). The within-scan drift depends on binding "
                "and need not cancel in these rows; prefer a contrast with a control "
                "contrast (double difference) there."))
    protocol = side.get("protocols") or {}
    if protocol.get("warnings"):
        blocks.append(error_block("Scan protocols differ between groups",
                                  "; ".join(protocol["warnings"]) + ". Within-scan drift "
                                  "need not cancel in the group differences."))
    if diff is not None and len(diff) and models:
        blocks += _difference_blocks(results, ctx, models[0], spec)
        blocks += _paired_blocks(results, ctx, models[0], levels, spec)
        if results.group_contrasts is not None and len(results.group_contrasts):
            con = results.group_contrasts
            blocks.append(details("Contrasts within each group", [table_block(
                con[con["model"].astype(str) == models[0]], table_id="group-contrasts")]))
        for model in models[1:]:
            rows = diff[diff["model"].astype(str) == model]
            blocks.append(details(f"Group differences, model {model}", [table_block(
                rows, table_id=f"group-differences-{model}")]))
    blocks += _rating_blocks(results, ctx, levels, spec)
    blocks += _map_blocks(results, ctx, spec)
    return blocks
