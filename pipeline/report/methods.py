"""A methods paragraph generated from what ran, with software versions and references.

The text joins, in data-flow order, the dataset, the regions, each model's own sentence
(``describe(options)`` of its :mod:`pipeline.kinetics` module), the design windows read
from ``bp_nd.tsv``, the statistics found in the group tables, and the versions of the
software that made the report. It is CC0: paste it unchanged, then check it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline.report.collect import StudyResults, software_versions, tracer_name
from pipeline.report.group_text import GROUP_REFERENCES, group_methods
from pipeline.report.preprocessing import preprocessing_methods

__all__ = ["REFERENCES", "describe_model", "methods_markdown", "methods_paragraphs"]

log = logging.getLogger(__name__)

#: Citation key -> reference, cited as [key] in the text.
REFERENCES: dict[str, str] = {
    "Lammertsma1996": "Lammertsma AA, Hume SP. Simplified reference tissue model for PET "
                      "receptor studies. NeuroImage 1996;4:153-158.",
    "Gunn1997": "Gunn RN, Lammertsma AA, Hume SP, Cunningham VJ. Parametric imaging of "
                "ligand-receptor binding in PET using a simplified reference region model. "
                "NeuroImage 1997;6:279-287.",
    "Wu2002": "Wu Y, Carson RE. Noise reduction in the simplified reference tissue model for "
              "neuroreceptor functional imaging. J Cereb Blood Flow Metab 2002;22:1440-1452.",
    "Ichise2003": "Ichise M, Liow JS, Lu JQ, et al. Linearized reference tissue parametric "
                  "imaging methods: application to [11C]DASB PET. J Cereb Blood Flow Metab "
                  "2003;23:1096-1112.",
    "Logan1996": "Logan J, Fowler JS, Volkow ND, et al. Distribution volume ratios without blood "
                 "sampling from graphical analysis of PET data. J Cereb Blood Flow Metab "
                 "1996;16:834-840.",
    "Carson1993": "Carson RE, Channing MA, Blasberg RG, et al. Comparison of bolus and infusion "
                  "methods for receptor quantitation. J Cereb Blood Flow Metab 1993;13:24-42.",
    "Benjamini1995": "Benjamini Y, Hochberg Y. Controlling the false discovery rate. J R Stat "
                     "Soc B 1995;57:289-300.",
    "Nichols2002": "Nichols TE, Holmes AP. Nonparametric permutation tests for functional "
                   "neuroimaging. Hum Brain Mapp 2002;15:1-25.",
    "Abraham2014": "Abraham A, Pedregosa F, Eickenberg M, et al. Machine learning for "
                   "neuroimaging with scikit-learn. Front Neuroinform 2014;8:14 (nilearn).",
    "Virtanen2020": "Virtanen P, Gommers R, Oliphant TE, et al. SciPy 1.0. Nat Methods "
                    "2020;17:261-272.",
    "Molder2021": "Mölder F, Jablonski KP, Letcher B, et al. Sustainable data analysis with "
                  "Snakemake. F1000Research 2021;10:33.",
    "Hsu2013": "Hsu DT, Sanford BJ, Meyers KK, et al. Response of the mu-opioid system to "
               "social rejection and acceptance. Mol Psychiatry 2013;18:1211-1217.",
    **GROUP_REFERENCES,
}

def _model_options(config: Mapping[str, Any], model: str) -> dict[str, Any]:
    models = config.get("models")
    if isinstance(models, Mapping) and isinstance(models.get(model), Mapping):
        return dict(models[model])
    if isinstance(models, list):
        for item in models:
            if isinstance(item, Mapping) and item.get("name", item.get("model")) == model:
                return dict(item)
    return {}


def describe_model(model: str, options: Mapping[str, Any]) -> str:
    """The methods sentence of ``model`` from its kinetics module, or a generic one.

    Parameters
    ----------
    model : str
        Model name (:data:`pipeline.kinetics.MODELS`).
    options : mapping
        The options it ran with.

    Returns
    -------
    str
    """
    from pipeline.kinetics import MODELS, describe_fit

    spec = MODELS.get(model)
    if spec is not None:
        try:
            text = describe_fit(model, options)
            if isinstance(text, str) and text.strip():
                return text.strip()
        except Exception as err:  # a model's describe() must not stop the report
            log.warning("describe() of %s failed: %s", model, err)
    title = f"the {spec.title} [{spec.citation_key}]" if spec is not None else model
    sentence = f"BP_ND was estimated with {title}"
    shown = {k: v for k, v in options.items() if k not in ("name", "model")}
    if shown:
        sentence += " (options: " + ", ".join(f"{k} = {v}" for k, v in shown.items()) + ")"
    return sentence + "."


def _fmt_min(value: float) -> str:
    return f"{value:g}"


def _design_sentence(results: StudyResults) -> str:
    bp = results.bp_nd
    if bp is None or not {"condition", "window_start", "window_end"} <= set(bp.columns):
        return ""
    windows = (bp[[c for c in ("task", "condition", "window_start", "window_end") if c in bp]]
               .drop_duplicates().sort_values([c for c in ("task", "window_start") if c in bp]))
    parts = []
    for _, row in windows.iterrows():
        where = f" of the {row['task']} scans" if "task" in row else ""
        parts.append(f"{row['condition']} {_fmt_min(row['window_start'])}-"
                     f"{_fmt_min(row['window_end'])} min{where}")
    return "Condition windows (minutes after injection): " + "; ".join(parts) + "."


def _model_sentences(results: StudyResults) -> list[str]:
    """One sentence per model that ran, with the options it ran with."""
    config = results.config
    models = results.models or list(config.get("models", {}) or [])
    windows = results.bp_nd is not None and "window_start" in results.bp_nd \
        and results.bp_nd["window_start"].notna().any()
    sentences = []
    shared = False
    reference = _recorded_reference(results)
    for i, model in enumerate(models):
        options = _model_options(config, model)
        if reference:
            options.setdefault("reference", reference)
        if options.get("k2prime") == "shared":
            shared = True
            bp = results.bp_nd
            k2p = bp.loc[bp["model"] == model, "k2prime"] if bp is not None and \
                "k2prime" in bp else None
            options["k2prime"] = float(k2p.median()) if k2p is not None and \
                k2p.notna().any() else None
        text = describe_model(model, options)
        if windows:  # fits ran per condition window (listed in the design sentence)
            text = text.replace("over the whole scan", "within each condition window")
            text = text.replace("over 0 min to the end of the scan",
                                "within each condition window")
        if shared and options.get("k2prime") is not None:
            text = text.replace(f"k2' = {options['k2prime']:.4g} /min",
                                f"the subject's shared k2' (median {options['k2prime']:.4g} /min)")
        if i == 1:
            text = "Secondary models. " + text
        sentences.append(text)
    k2 = config.get("k2prime")
    if shared and isinstance(k2, Mapping):
        window = k2.get("window")
        span = f" over {window[0]:g}-{window[1]:g} min" if window else ""
        regions = ", ".join(k2.get("regions") or []) or "the target regions"
        sentences.append(f"k2' was estimated once per subject as the median k2/R1 of a first "
                         f"{str(k2.get('model', 'srtm')).upper()} pass in {regions}{span}, "
                         "and shared by all of that subject's scans and windows.")
    return sentences


def _recorded_reference(results: StudyResults) -> str | None:
    """The reference region recorded in the first region-fit sidecar (what ran)."""
    from pipeline.tables import read_json, sidecar_path

    for scan in results.scans:
        for path in scan.bp.values():
            side = sidecar_path(path)
            if side.is_file():
                try:
                    value = read_json(side).get("reference_region")
                except Exception:  # an unreadable sidecar only costs this detail
                    continue
                if isinstance(value, str):
                    return value
    return None


def _has_within_scan_windows(bp: pd.DataFrame | None) -> bool:
    """Whether some scan (task) of the BP_ND table has more than one condition window."""
    if bp is None or not {"task", "condition"} <= set(bp.columns):
        return False
    return bool((bp.groupby("task")["condition"].nunique() > 1).any())


def _contrast_sentence(config: Mapping[str, Any]) -> str:
    design = config.get("design")
    contrasts = design.get("contrasts") if isinstance(design, Mapping) else None
    if not isinstance(contrasts, Mapping) or not contrasts:
        return ""
    parts = []
    for name, spec in contrasts.items():
        if not isinstance(spec, Mapping):
            continue
        text = f"{name} ({spec.get('condition')} vs {spec.get('baseline')}"
        if spec.get("control"):
            text += f", minus the change of the {spec['control']} contrast at the same times"
        parts.append(text + ")")
    return "Contrasts: " + "; ".join(parts) + "."


#: What each value of contrasts.tsv's ``test`` column did, for the methods text.
_TEST_TEXT = {
    "paired_t": "a paired t-test against zero of the % change (with a control contrast: "
                "of the % change minus the control's % change over the same minutes)",
    "t_vs_null_drift": "a one-sample t-test of each participant's % change minus that "
                       "participant's null drift, with the release model's systematic SD "
                       "added to the variance of the mean (Welch-Satterthwaite degrees of "
                       "freedom)",
    "wilcoxon": "the Wilcoxon signed-rank test",
}


def _contrasts_by_test(con: pd.DataFrame) -> dict[str, list[str]]:
    """Test name -> contrasts it was used for (``test`` column; paired_t without one)."""
    if "test" not in con or "contrast" not in con:
        return {"paired_t": []}
    pairs = con[["test", "contrast"]].dropna().astype(str).drop_duplicates()
    grouped: dict[str, list[str]] = {}
    for test, name in pairs.itertuples(index=False, name=None):
        grouped.setdefault(test, []).append(name)
    return grouped or {"paired_t": []}


def _stats_sentences(results: StudyResults) -> list[str]:
    config = results.config
    stats = config.get("statistics") if isinstance(config.get("statistics"), Mapping) else {}
    out = []
    con = results.contrasts
    if con is not None and len(con):
        how = []
        for test, names in _contrasts_by_test(con).items():
            which = f" for {' and '.join(names)}" if names else ""
            how.append(_TEST_TEXT.get(test, f"the {test} test") + which)
        out.append(
            "Per contrast, region and model, BP_ND of the condition window was compared with "
            f"its baseline by {'; by '.join(how)}; change is 100 x (BP_condition - "
            "BP_baseline) / BP_baseline (negative values mean endogenous opioid release), "
            "effect size is Cohen's dz with a 95% confidence interval, and p-values were "
            "corrected across regions with the Benjamini-Hochberg false discovery rate"
            f" (alpha {stats.get('alpha', 0.05)}) [Benjamini1995].")
    drift = stats.get("null_drift") if isinstance(stats.get("null_drift"), Mapping) else {}
    if results.null_drift is not None and len(results.null_drift):
        start = drift.get("fit_start", 10)
        sys_sd = drift.get("sys_sd", 1.0)
        out.append(
            "BP_ND of two windows of one bolus-plus-infusion scan differs even without "
            "release (null drift). For every scan, a release model - the simplified "
            "reference tissue model with R1 and k2 shared over the scan and BP_ND stepping "
            f"at the condition onset, fitted from {start:g} min after injection to leave out "
            "the bolus transient (after Alpert et al. 2003)"
            + (f", with a nuisance BP_ND of its own up to {drift.get('baseline_start', 20):g} "
               "min so that only later frames define the baseline binding"
               if str(drift.get("release_model", "srtm")).startswith("early_step") else "")
            + " - estimated the release, which "
            "was taken out of the regional curves; each model was fitted again to the "
            "release-free curves, and the change it showed there was subtracted from the "
            "participant's observed change"
            + (" (the participant's drift being the mean over its scans with the same "
               "windows, which share the protocol and so the null drift; this halves the "
               "variance of the release model's noise)" if drift.get("pool", "scans") == "scans"
               else "") +
            ". The residual drift the release model cannot "
            f"see was carried as a systematic SD of {sys_sd:g} percentage points in each test "
            "(Welch-Satterthwaite degrees of freedom). The drift estimate is assumed to hold "
            "where the release model describes each region after the bolus transient up to "
            "a step in BP_ND; where the data contradicted it (drift far outside the changes "
            "seen across regions, or the release model failing for over a quarter of the "
            "participants) the design-based control contrast, or no test, was reported "
            "instead.")
    elif drift.get("method") == "none" and _has_within_scan_windows(results.bp_nd):
        out.append(
            "Within-scan null drift was not corrected (statistics.null_drift.method: none): "
            "changes between windows of one scan were tested against zero, although early "
            "and late windows of a bolus-plus-infusion scan differ without release, so those "
            "p-values are not controlled; contrasts with a control contrast are unaffected.")
    cor = results.correlations
    if cor is not None and len(cor):
        found = set(cor["method"].astype(str)) if "method" in cor else {"pearson"}
        names = [n.capitalize() for n in ("pearson", "spearman")
                 if n in found or f"partial_{n}" in found]
        methods = " and ".join(names) or "Pearson"
        scores = ", ".join(dict.fromkeys(cor["score"].astype(str)))
        covs = [c for c in dict.fromkeys(cor.get("covariates", pd.Series(dtype=str)).dropna()
                                         .astype(str)) if c != "n/a"]
        covs = [c.replace("+", " and ") for c in covs]
        adjust = f" (also as partial correlations adjusting for {'; '.join(covs)})" \
            if covs else ""
        perm = f"permutation p-values ({stats['n_perm']} permutations)" if stats.get("n_perm") \
            else "permutation p-values"
        boot = f"percentile bootstrap 95% confidence intervals ({stats['n_boot']} resamples)" \
            if stats.get("n_boot") else "bootstrap 95% confidence intervals"
        out.append(f"Activation (BP_baseline - BP_condition, absolute and in %) was correlated "
                   f"with participant scores ({scores}) by {methods} correlation{adjust}, with "
                   f"{perm} and {boot} [Virtanen2020].")
    if results.voxel_maps:
        vox = config.get("voxelwise") if isinstance(config.get("voxelwise"), Mapping) else {}
        n_perm = vox.get("n_perm")
        model = f" ({vox['model']})" if vox.get("model") else ""
        out.append(f"Voxelwise, parametric BP_ND maps{model} of each condition window were "
                   "compared within subjects with nilearn's second-level model "
                   "[Abraham2014]; family-wise error was controlled by sign-flip permutation "
                   f"inference{f' ({n_perm} permutations)' if n_perm else ''} [Nichols2002].")
    return out


def methods_paragraphs(results: StudyResults) -> tuple[list[str], list[str]]:
    """Methods paragraphs and the references they cite, from what ran.

    Parameters
    ----------
    results : StudyResults

    Returns
    -------
    (list of str, list of str)
        Paragraphs (plain text with [Key] citations) and the cited references, in order.
    """
    config = results.config
    paragraphs = []
    data = []
    if results.bp_nd is not None and "participant_id" in results.bp_nd:
        bp = results.bp_nd
        n_sub = bp["participant_id"].nunique()
        scan_cols = [c for c in ("participant_id", "session", "task", "run") if c in bp]
        n_scan = len(bp[scan_cols].drop_duplicates())
        tracer = tracer_name(results)
        what = f"dynamic {tracer} PET scans" if tracer != "not recorded" else "dynamic PET scans"
        data.append(f"{n_sub} participants contributed {n_scan} {what} to the analysis.")
    ref = _recorded_reference(results) or config.get("reference_region")
    if results.bp_nd is not None and "region" in results.bp_nd:
        regions = list(dict.fromkeys(results.bp_nd["region"].astype(str)))
        tail = f" with {ref} as reference region." if ref else "."
        data.append(f"Regional time-activity curves were extracted for {len(regions)} regions "
                    f"({', '.join(regions)})" + tail)
    weights = config.get("weights")
    if isinstance(weights, str):
        data.append(f"Frames were weighted by the '{weights}' scheme.")
    if data:
        paragraphs.append(" ".join(data))
    preprocessing = preprocessing_methods(results)
    if preprocessing:
        paragraphs.append(preprocessing)
    model_text = _model_sentences(results)
    design = " ".join(t for t in (_design_sentence(results), _contrast_sentence(config)) if t)
    if model_text or design:
        paragraphs.append(" ".join([*model_text, design]).strip())
    stats_text = _stats_sentences(results)
    if stats_text:
        paragraphs.append(" ".join(stats_text))
    paragraphs += group_methods(results.group_differences, results.rating_tests,
                                results.sidecars.get("group_differences"), config)
    versions = software_versions()
    listed = ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed")
    paragraphs.append(f"The analysis ran in petbp {versions.get('petbp')}, a Snakemake workflow "
                      f"[Molder2021] (software: {listed}).")
    text = "\n".join(paragraphs)
    from pipeline.kinetics import MODELS

    ran = {MODELS[m].citation_key for m in results.models if m in MODELS}
    cited = [k for k in REFERENCES if f"[{k}]" in text or k in ran]
    return paragraphs, [f"[{k}] {REFERENCES[k]}" for k in cited]


def methods_markdown(results: StudyResults) -> str:
    """The methods text as Markdown (``methods.md``).

    Parameters
    ----------
    results : StudyResults
        What :func:`pipeline.report.collect_results` read.
    """
    paragraphs, refs = methods_paragraphs(results)
    lines = ["# Methods", "", "*Generated by petbp from the analysis that ran (CC0: copy freely; "
             "check every sentence against your study).*", ""]
    for p in paragraphs:
        lines += [p, ""]
    if refs:
        lines += ["## References", ""] + [f"- {r}" for r in refs] + [""]
    return "\n".join(lines)

