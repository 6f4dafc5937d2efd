"""A methods paragraph generated from what ran, with software versions and references.

The text joins, in data-flow order, the dataset, the regions, each model's own sentence
(``describe(options)`` of its :mod:`pipeline.kinetics` module), the design windows read
from ``bp_nd.tsv``, the statistics found in the group tables, and the versions of the
software that made the report. It is CC0: paste it unchanged, then check it.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Mapping
from typing import Any

from pipeline.report.collect import StudyResults, software_versions

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
}

_MODEL_FALLBACK = {
    "srtm": ("the simplified reference tissue model (SRTM), fitted by weighted nonlinear least "
             "squares to frame-averaged predictions [Lammertsma1996]"),
    "srtm_bf": "the basis-function implementation of SRTM [Gunn1997]",
    "srtm2": "SRTM2, SRTM with the reference efflux rate k2' fixed [Wu2002]",
    "mrtm": "the multilinear reference tissue model MRTM [Ichise2003]",
    "mrtm2": "MRTM2, the multilinear reference tissue model with k2' fixed [Ichise2003]",
    "logan_ref": "the Logan reference-region graphical analysis (BP_ND = DVR - 1) [Logan1996]",
    "ratio": ("the equilibrium ratio of target to reference activity minus one "
              "[Carson1993]"),
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
    from pipeline.kinetics import MODELS

    target = MODELS.get(model)
    if target:
        try:
            module = importlib.import_module(target.split(":")[0])
            describe = getattr(module, "describe", None)
            if describe is not None:
                params = inspect.signature(describe).parameters
                if "model" in params:
                    text = describe(dict(options), model=model) if len(params) > 1 \
                        else describe(model=model)
                else:
                    text = describe({"model": model, **options})
                if isinstance(text, str) and text.strip():
                    return text.strip()
        except Exception as err:  # a model's describe() must not stop the report
            log.warning("describe() of %s failed: %s", model, err)
    sentence = f"BP_ND was estimated with {_MODEL_FALLBACK.get(model, model)}"
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


def _stats_sentences(results: StudyResults) -> list[str]:
    out = []
    con = results.contrasts
    if con is not None and len(con):
        names = ", ".join(dict.fromkeys(con["contrast"].astype(str)))
        out.append(
            f"For each contrast ({names}), region and model, BP_ND of the condition window was "
            "compared with its baseline by a paired t-test; change is reported as "
            "100 x (BP_condition - BP_baseline) / BP_baseline (negative values mean endogenous "
            "opioid release, 'activation'), effect size as Cohen's dz with a 95% confidence "
            "interval, and p-values were corrected across regions with the Benjamini-Hochberg "
            "false discovery rate [Benjamini1995].")
    if results.null_drift is not None and len(results.null_drift):
        out.append("Within-scan windows drift even without release; the drift expected under "
                   "the null hypothesis was estimated per region and reported with the contrasts.")
    cor = results.correlations
    if cor is not None and len(cor):
        methods = ", ".join(dict.fromkeys(cor["method"].astype(str))) if "method" in cor \
            else "Pearson"
        scores = ", ".join(dict.fromkeys(cor["score"].astype(str)))
        extra = " with permutation p-values" if "p_perm" in cor else ""
        out.append(f"Activation (BP_baseline - BP_condition) was correlated with participant "
                   f"scores ({scores}) using {methods} correlation{extra} and bootstrap 95% "
                   "confidence intervals [Virtanen2020].")
    if results.voxel_maps:
        opts = results.config.get("voxelwise", {})
        n_perm = opts.get("n_perm") if isinstance(opts, Mapping) else None
        perm = f" ({n_perm} permutations)" if n_perm else ""
        out.append("Voxelwise, parametric BP_ND maps were compared with a second-level paired "
                   "model in nilearn [Abraham2014]; family-wise error was controlled by "
                   f"permutation inference{perm} [Nichols2002].")
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
        data.append(f"{n_sub} participants contributed {n_scan} dynamic PET scans to the analysis.")
    ref = config.get("reference_region")
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
    models = results.models or list(config.get("models", {}) or [])
    model_text = [describe_model(m, _model_options(config, m)) for m in models]
    design = _design_sentence(results)
    if model_text or design:
        paragraphs.append(" ".join([*model_text, design]).strip())
    stats_text = _stats_sentences(results)
    if stats_text:
        paragraphs.append(" ".join(stats_text))
    versions = software_versions()
    listed = ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed")
    paragraphs.append(f"The analysis ran in petbp {versions.get('petbp')}, a Snakemake workflow "
                      f"[Molder2021] (software: {listed}).")
    text = "\n".join(paragraphs)
    cited = [k for k in REFERENCES if f"[{k}]" in text]
    return paragraphs, [f"[{k}] {REFERENCES[k]}" for k in cited]


def methods_markdown(results: StudyResults) -> str:
    """The methods text as Markdown (``methods.md``)."""
    paragraphs, refs = methods_paragraphs(results)
    lines = ["# Methods", "", "*Generated by petbp from the analysis that ran (CC0: copy freely; "
             "check every sentence against your study).*", ""]
    for p in paragraphs:
        lines += [p, ""]
    if refs:
        lines += ["## References", ""] + [f"- {r}" for r in refs] + [""]
    return "\n".join(lines)

