"""Section builders: each turns the study's results into a list of report blocks.

Every builder has the signature ``build(results, ctx, spec) -> list[dict]``, where
``spec`` is the section's entry of ``spec.yaml``. :data:`BUILDERS` maps a spec ``kind``
to its builder.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline import paths
from pipeline.report import figures
from pipeline.report.blocks import (
    BuildContext,
    details,
    error_block,
    kv_block,
    table_block,
    text_block,
)
from pipeline.report.collect import StudyResults, software_versions, tracer_name
from pipeline.report.findings import CONTRAST_NOTE, FINDINGS_NOTE, key_findings
from pipeline.report.groups import scatter_points
from pipeline.report.methods import methods_paragraphs
from pipeline.report.paired import contrast_conditions, paired_from_values, paired_values
from pipeline.report.preprocessing import motion_exclusion_block
from pipeline.report.scans import build_scans
from pipeline.report.staleness import configuration_blocks

__all__ = ["BUILDERS"]

Blocks = list[dict[str, Any]]


def _dataset(results: StudyResults) -> str:
    bids_dir = results.config.get("bids_dir", "not recorded")
    if bids_dir == "demo":
        return f"demo: the built-in simulated study ({results.output_dir / paths.DEMO_BIDS})"
    return str(bids_dir)


def _design_kind(config: Mapping) -> str:
    design = config.get("design")
    conditions = design.get("conditions") if isinstance(design, Mapping) else None
    if not isinstance(conditions, Mapping) or not conditions:
        return "not recorded"
    tasks = [c.get("task") for c in conditions.values() if isinstance(c, Mapping)]
    if len(set(tasks)) < len(tasks):
        return "condition windows within scans (e.g. baseline then task in one scan)"
    return "separate scans per condition"


def _subjects_table(results: StudyResults) -> pd.DataFrame:
    found = pd.DataFrame({"participant_id": [s.participant_id for s in results.scans],
                          "scan": [s.stem for s in results.scans]})
    ids = list(dict.fromkeys(
        ([] if results.participants is None else list(results.participants["participant_id"]))
        + list(found["participant_id"])))
    analysed = set() if results.bp_nd is None else set(results.bp_nd["participant_id"])
    reasons: dict[str, list[str]] = {}
    ex = results.exclusions
    if ex is not None and "participant_id" in ex:
        reason_col = next((c for c in ("reason", "why", "message") if c in ex), None)
        for _, row in ex.iterrows():
            text = str(row[reason_col]) if reason_col else "excluded"
            if "contrast" in ex and isinstance(row["contrast"], str):
                text = f"{row['contrast']}: {text}"
            reasons.setdefault(str(row["participant_id"]), []).append(text)
    rows = []
    for pid in ids:
        scans = found[found["participant_id"] == pid]["scan"].tolist()
        status = "included" if pid in analysed else "excluded"
        why = "; ".join(reasons.get(pid, []))
        if status == "excluded" and not why:
            why = "no scan found" if not scans else "not in group/bp_nd.tsv"
        rows.append({"participant_id": pid, "scans": len(scans), "status": status,
                     "notes": why or ""})
    return pd.DataFrame(rows, columns=["participant_id", "scans", "status", "notes"])


def build_summary(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """Dataset, subjects (included/excluded with reasons), design, models, versions, config."""
    cfg = results.config
    bp = results.bp_nd
    subjects = _subjects_table(results)
    facts: dict[str, Any] = {
        "Dataset": _dataset(results),
        "Design": _design_kind(cfg),
        "Output directory": str(results.output_dir),
        "Tracer": tracer_name(results),
        "Subjects included": f"{(subjects['status'] == 'included').sum()} of {len(subjects)}",
        "Scans found": len(results.scans),
    }
    if bp is not None:
        scan_cols = [c for c in ("participant_id", "session", "task", "run") if c in bp]
        facts["Scans analysed"] = len(bp[scan_cols].drop_duplicates())
        if "task" in bp:
            facts["Tasks"] = ", ".join(map(str, dict.fromkeys(bp["task"])))
        facts["Conditions"] = ", ".join(map(str, dict.fromkeys(bp["condition"])))
        facts["Regions"] = bp["region"].nunique()
    if results.contrasts is not None:
        names = list(dict.fromkeys(results.contrasts["contrast"].astype(str)))
        facts["Contrasts"] = "; ".join(
            f"{n} ({' vs '.join(contrast_conditions(n, cfg)[::-1])}"
            + (f", minus the {_control_of(cfg, n)} change" if _control_of(cfg, n) else "")
            + ")" for n in names)
    facts["Models"] = ", ".join(results.models) + (" (first is primary)"
                                                    if len(results.models) > 1 else "")
    if cfg.get("reference_region"):
        facts["Reference region"] = cfg["reference_region"]
    blocks: Blocks = []
    warning, configuration = configuration_blocks(results.output_dir, cfg)
    blocks += warning
    findings = key_findings(results, first=spec.get("headline"))
    if findings:
        model = results.models[0] if results.models else ""
        blocks.append({"kind": "list", "title": f"Key findings (primary model {model})",
                       "items": findings, "caption": FINDINGS_NOTE})
    blocks.append(kv_block(facts, "Study"))
    n_ex = int((subjects["status"] != "included").sum())
    blocks.append(details(f"Subjects ({len(subjects)})",
                          [table_block(subjects, table_id="subjects")],
                          badges=[f"{n_ex} excluded"] if n_ex else [], open_=bool(n_ex)))
    if results.exclusions is not None and len(results.exclusions):
        blocks.append(table_block(results.exclusions, "Exclusions logged by the workflow",
                                  table_id="exclusions"))
    motion_block = motion_exclusion_block(results)
    blocks += [motion_block] if motion_block else []
    models = cfg.get("models")
    if isinstance(models, Mapping) and models:
        rows = [{"model": m, "options": ", ".join(f"{k}={v}" for k, v in (o or {}).items())
                 if isinstance(o, Mapping) else str(o)} for m, o in models.items()]
        blocks.append(table_block(pd.DataFrame(rows), "Models and options", table_id="models"))
    blocks.append(kv_block(software_versions(), "Software versions"))
    blocks.append(configuration)
    return blocks


def _paired(results: StudyResults, contrast: str, model: str | None):
    """Per-subject values of a contrast: contrast_values.tsv, else rebuilt from bp_nd.tsv."""
    values = results.values
    if values is not None and contrast in set(values["contrast"].astype(str)):
        return paired_from_values(values, contrast, model)
    return paired_values(results.bp_nd, contrast, results.config, model)


def _control_of(config: Mapping, contrast: str) -> str | None:
    """The control contrast of ``contrast`` in the config's design, if any."""
    design = config.get("design")
    spec = design.get("contrasts", {}).get(contrast) if isinstance(design, Mapping) else None
    return spec.get("control") if isinstance(spec, Mapping) else None


def _model_blocks(results: StudyResults, ctx: BuildContext, spec: Mapping, model: str,
                  paired_plots: bool = True) -> Blocks:
    blocks: Blocks = []
    fig_spec = spec.get("figures", {})
    con = results.contrasts
    if con is not None:
        rows = con[con["model"].astype(str) == model] if "model" in con else con
        key = spec.get("contrast_columns")
        blocks.append(table_block(rows, f"Contrasts ({model})", CONTRAST_NOTE,
                                  table_id=f"contrasts-{model}", columns=key))
        if key and set(rows.columns) - set(key):
            blocks.append(details(f"All columns of contrasts.tsv ({model})", [table_block(
                rows, table_id=f"contrasts-{model}-all")]))
        if len(rows):
            fmt = fig_spec.get("change", {}).get("format", "svg")
            order = None if results.bp_nd is None else list(dict.fromkeys(results.bp_nd["region"]))
            alpha = float((results.config.get("statistics") or {}).get("alpha", 0.05))
            blocks.append(ctx.figure(
                f"change_model-{model}", figures.plot_change, rows, fmt=fmt, regions=order,
                alpha=alpha, title=f"% change in BP_ND with 95% CI ({model})",
                caption=f"Filled: FDR-significant (p_fdr < {alpha:g}); grey crosses: raw change "
                        "before removing the null drift or the control's change."))
    if results.null_drift is not None:
        drift = results.null_drift
        if "model" in drift:
            drift = drift[drift["model"].astype(str) == model]
        blocks.append(table_block(drift, "Null drift (change expected without release)",
                                  table_id=f"null-drift-{model}"))
    bp = results.bp_nd
    if bp is not None and con is not None and paired_plots:
        paired_spec = fig_spec.get("paired", {})
        for name in dict.fromkeys(con["contrast"].astype(str)):
            labels = contrast_conditions(name, results.config)
            try:
                paired = _paired(results, name, model)
            except Exception as err:  # missing columns etc.: show, do not stop
                blocks.append(ctx.fail(f"paired values of {name}", err))
                continue
            if paired.empty:
                blocks.append(error_block(f"Paired plot of {name}",
                                          f"no subject has both {labels[0]!r} and {labels[1]!r} "
                                          f"rows in group/bp_nd.tsv for model {model}"))
                continue
            control = _control_of(results.config, name)
            if control and "control_change_pct" in paired \
                    and paired["control_change_pct"].notna().any():
                options = dict(
                    columns=("control_change_pct", "change_pct"), ylabel="% change",
                    labels=(control, labels[1]),
                    title=f"{name}: change against the {control} contrast's change ({model})",
                    caption=f"One line per subject: the % change of the {control} contrast "
                            "(left) and of this contrast's own windows (right) over the same "
                            "minutes; red: the change was more negative (more release) than "
                            "the control's; black: mean. The tested effect is the difference.")
            else:
                options = dict(
                    labels=labels, title=f"{name}: {labels[0]} vs {labels[1]} ({model})",
                    caption="One line per subject (red: BP_ND fell); black: mean.")
            blocks.append(ctx.figure(
                f"paired_contrast-{name}_model-{model}", figures.plot_paired, paired,
                ncols=paired_spec.get("ncols", 5),
                regions=list(dict.fromkeys(bp["region"].astype(str))),
                fmt=paired_spec.get("format", "svg"), **options))
    if bp is not None:
        rows = bp[bp["model"].astype(str) == model] if "model" in bp else bp
        keys = [c for c in ("task", "condition", "region") if c in rows]
        summary = rows.groupby(keys, sort=False)["bp_nd"].agg(["count", "mean", "std"]) \
            .reset_index().rename(columns={"count": "n", "mean": "bp_nd_mean", "std": "bp_nd_sd"})
        blocks.append(table_block(summary, f"BP_ND by condition and region ({model})",
                                  table_id=f"bp-summary-{model}"))
        blocks.append(details(f"All BP_ND values ({model}, {len(rows)} rows)",
                              [table_block(rows, table_id=f"bp-nd-{model}")]))
    return blocks


def build_regions(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """Contrast tables, % change and paired plots, BP_ND tables; primary model first."""
    if results.bp_nd is None and results.contrasts is None:
        return [error_block("No region results", "group/bp_nd.tsv and group/contrasts.tsv "
                            "are missing; run the statistics step of the workflow.")]
    models = results.models or [None]
    blocks = _model_blocks(results, ctx, spec, models[0]) if models[0] else []
    paired_plots = spec.get("other_models", "folded") == "folded_with_plots"
    for model in models[1:]:
        blocks.append(details(f"Model {model}",
                              _model_blocks(results, ctx, spec, model, paired_plots),
                              anchor=f"regions-{model}"))
    return blocks


def _annotation(rows: pd.DataFrame) -> str:
    lines = []
    for _, row in rows.iterrows():
        method = row.get("method", "r")
        text = f"{method}: r = {row['r']:.2f}, p = {row['p']:.3g}"
        if "p_perm" in row and pd.notna(row["p_perm"]):
            text += f", p_perm = {row['p_perm']:.3g}"
        lines.append(text + f", n = {int(row['n'])}")
    return "\n".join(lines)


def build_correlations(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """The correlation table and one scatter per (contrast, region, score)."""
    cor = results.correlations
    if cor is None:
        return [error_block("No correlations", "group/correlations.tsv is missing.")]
    blocks: Blocks = [table_block(cor, "Correlations", table_id="correlations")]
    if results.bp_nd is None or results.participants is None:
        blocks.append(error_block("Scatter plots", "need group/bp_nd.tsv and participants.tsv"))
        return blocks
    keys = [c for c in ("contrast", "region", "score", "group", "model", "measure",
                        "covariates") if c in cor]
    groups = list(cor.groupby(keys, sort=False, dropna=False))
    first = spec.get("first", {})
    groups.sort(key=lambda g: not (dict(zip(keys, g[0], strict=True)).get("region")
                                   == first.get("region")
                                   and dict(zip(keys, g[0], strict=True)).get("score")
                                   == first.get("score")))
    model_default = results.models[0] if results.models else None
    for key, rows in groups[: spec.get("max_figures", 12)]:
        k = dict(zip(keys, key, strict=True))
        model = k.get("model", model_default)
        measure = str(k.get("measure", "activation"))
        covariates = k.get("covariates")
        covariates = covariates if isinstance(covariates, str) and covariates != "n/a" else ""
        try:
            xy = scatter_points(results, k, model, measure)
        except Exception as err:
            blocks.append(ctx.fail(f"scatter {k}", err))
            continue
        unit = "% of baseline" if "pct" in measure else "BP_ND"
        name = "_".join(f"{a}-{b}" for a, b in k.items() if isinstance(b, str) and b != "n/a")
        name = re.sub(r"[^A-Za-z0-9_.+-]", "", name)
        partial = f" Partial correlation adjusting for {covariates.replace('+', ', ')}; the " \
            "points are the unadjusted values." if covariates else ""
        blocks.append(ctx.figure(
            f"correlation_{name}", figures.plot_correlation, xy,
            xlabel=f"{k['region']} activation, {k['contrast']} ({unit})", ylabel=k["score"],
            annotation=_annotation(rows), fmt=spec.get("figure", {}).get("format", "svg"),
            title=f"{k['region']} {k['contrast']} activation ({measure}) vs {k['score']}"
            + (f" | {covariates}" if covariates else ""),
            caption=f"{len(xy)} subjects with both values; model {model}.{partial}"))
    return blocks


def _threshold(path: Path, thresholds: Mapping[str, float]) -> float | None:
    name = path.name.lower()
    if "rmap" in name:
        return float(thresholds.get("rmap", 0.5))
    if "logp" in name or "fwe" in name:
        return float(thresholds.get("logp", 1.3))
    if "tmap" in name or "_t." in name or "stat-t" in name:
        return float(thresholds.get("tmap", 2.0))
    return 1e-6  # anything else: every non-zero voxel (zeros would hide the template)


def _count_above(path: Path, threshold: float | None) -> int | None:
    """Voxels whose magnitude exceeds ``threshold`` (None if the map cannot be read)."""
    import nibabel as nib
    import numpy as np

    try:
        data = np.asarray(nib.load(path).dataobj, dtype=float)
    except Exception:  # the figure will show the error
        return None
    with np.errstate(invalid="ignore"):
        return int(np.count_nonzero(np.abs(data) > (threshold or 0.0)))


_MAP_ORDER = ("tmap", "fwep", "logp", "rmap")


def _map_key(path: Path) -> tuple[str, int]:
    stem = path.name.removesuffix(".nii.gz")
    base, _, kind = stem.rpartition("_")
    return base, _MAP_ORDER.index(kind) if kind in _MAP_ORDER else len(_MAP_ORDER)


def build_voxelwise(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """Group maps over the MNI template and the cluster tables."""
    if not results.voxel_maps and not results.cluster_tables:
        return [text_block("No voxelwise group maps were found under group/ "
                           "(voxelwise analysis not run or not configured).")]
    blocks: Blocks = []
    fig_spec = spec.get("figure", {})
    skip = tuple(spec.get("skip", ("_effects",)))
    shown = sorted((p for p in results.voxel_maps
                    if not p.name.removesuffix(".nii.gz").endswith(skip)), key=_map_key)
    for path in shown[: spec.get("max_maps", 12)]:
        threshold = _threshold(path, spec.get("thresholds", {}))
        label = path.name.removesuffix(".nii.gz")
        caption = f"group/{path.name}" + (f", shown above {threshold:g}" if threshold else "")
        n_above = _count_above(path, threshold)
        if n_above == 0:
            caption += ". No voxel passes this threshold."
        elif n_above is not None:
            caption += f" ({n_above} voxels)."
        blocks.append(ctx.figure(label, figures.plot_stat_map, path, title=label,
                                 threshold=threshold, fmt=fig_spec.get("format", "png"),
                                 dpi=fig_spec.get("dpi", 72), caption=caption))
    from pipeline.tables import read_table

    for path in results.cluster_tables:
        try:
            blocks.append(table_block(read_table(path), f"Clusters: {path.name}",
                                      table_id=path.name.removesuffix(".tsv")))
        except Exception as err:
            blocks.append(ctx.fail(path.name, err))
    return blocks


def build_methods(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """The generated methods paragraphs and references."""
    paragraphs, refs = methods_paragraphs(results)
    blocks = [text_block(p, "methods") for p in paragraphs]
    if refs:
        blocks.append({"kind": "list", "title": "References", "items": refs})
    return blocks


def build_errors(results: StudyResults, ctx: BuildContext, spec: Mapping) -> Blocks:
    """Everything that failed while building, and inputs that were missing."""
    rows = [{"what": w, "message": m} for w, m in ctx.errors]
    rows += [{"what": "input", "message": p} for p in results.problems]
    if not rows:
        return [text_block("No errors: every figure and table was built.")]
    return [table_block(pd.DataFrame(rows), table_id="errors-table")]


BUILDERS: dict[str, Callable[[StudyResults, BuildContext, Mapping], Blocks]] = {
    "summary": build_summary,
    "regions": build_regions,
    "correlations": build_correlations,
    "voxelwise": build_voxelwise,
    "scan_qc": build_scans,
    "methods": build_methods,
    "errors": build_errors,
}
