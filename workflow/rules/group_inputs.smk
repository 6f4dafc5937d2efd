# Group-level input functions and output lists: every scan's fits and TACs, the maps of a
# contrast, the config keys of the group steps, the voxelwise and group-comparison outputs,
# the report's inputs and `rule all`'s targets. Included after inputs.smk (its names are
# used here); steps only call these names.

from pipeline.groups import parse_groups
from pipeline.phenotype import phenotype_files
from pipeline.stats.voxelwise_groups import group_map_files

GROUPS = DESIGN.groups


def fit_path(key, model):
    return scan_template(paths.FIT, scan=key, model=label(model))


def all_fits(wildcards):
    """Region fits of every analysed scan (scans excluded for head motion left out)."""
    return [fit_path(k, m) for k in analysed_keys() for m in MODELS]


def participants_tsv(wildcards=None):
    if DEMO:
        checkpoints.simulate_demo.get()
    return str(BIDS_DIR / "participants.tsv")


def map_path(key, model, cond):
    return scan_template(paths.MAP, scan=key, model=label(model), cond=cond)


def contrast_maps(wildcards):
    """(participant_id, condition) -> BP_ND maps for the conditions of one contrast.

    Several runs/sessions of one condition are all listed; the voxelwise step averages them
    (logged, and listed in the sidecars' runs_averaged)."""
    needed = set(DESIGN.conditions_of(wildcards.contrast))
    table = scan_table()
    maps = {}
    for key in sorted(analysed_keys()):
        for cond in table.conditions[key]:
            if cond in needed:
                maps.setdefault((table.scan[key].participant_id, cond), []).append(
                    map_path(key, VOX_MODEL, cond))
    return maps


def contrast_map_files(wildcards):
    return sorted(f for files in contrast_maps(wildcards).values() for f in files)


def contrast_keys(contrast):
    """Config keys of one contrast, its control contrast and the conditions they use."""
    spec = DESIGN.contrasts[contrast]
    keys = [f"design.contrasts.{contrast}"]
    if spec.control:
        keys.append(f"design.contrasts.{spec.control}")
    keys += [f"design.conditions.{c}" for c in dict.fromkeys(DESIGN.conditions_of(contrast))]
    return keys


def design_section(values):
    """The design section rebuilt from used() values of design.* keys."""
    section = {"conditions": {}, "contrasts": {}}
    for key, value in values.items():
        parts = key.split(".")
        if parts[0] == "design" and len(parts) == 3:
            section[parts[1]][parts[2]] = value
        elif key == "design":
            section = value
    return section


def settings_of(values, prefix):
    """The used() values under one section, by their last key (e.g. voxelwise.n_perm ->
    n_perm)."""
    return {key[len(prefix) + 1:]: value for key, value in values.items()
            if key.startswith(f"{prefix}.")}


def voxelwise_outputs(contrast, model=VOX_MODEL):
    return {kind: out(template.format(contrast=contrast, model=label(model)))
            for kind, template in paths.VOXELWISE_MAPS.items()}


def voxelwise_report_outputs():
    """voxelwise_outputs (wildcards) with the cluster table filed in the Snakemake report."""
    files = {kind: out(template) for kind, template in paths.VOXELWISE_MAPS.items()}
    files["clusters"] = report(files["clusters"], caption="../report/voxelwise.rst",
                               category="Voxelwise", labels={"contrast": "{contrast}",
                                                             "model": "{model}"})
    return files


def correlation_outputs(contrast, score, model=VOX_MODEL):
    return {kind: out(template.format(contrast=contrast, score=score, model=label(model)))
            for kind, template in paths.CORRELATION_MAPS.items()}


def voxelwise_scores():
    """(contrast, score) pairs of the configured correlations (voxelwise maps)."""
    pairs = []
    for spec in config["statistics"]["correlations"]:
        pair = (spec["contrast"], spec["score"])
        if pair not in pairs and spec["contrast"] in DESIGN.contrasts:
            pairs.append(pair)
    return pairs


def group_outputs(wildcards=None):
    """Every group-level output except the report (also the report rule's input)."""
    files = [out(paths.group_table(name)) for name in paths.GROUP_TABLES
             if name != "group_differences"]  # made only with design.groups (groups.smk)
    if VOXELWISE["enabled"]:
        for contrast in DESIGN.contrasts:
            files += list(voxelwise_outputs(contrast).values())
        for contrast, score in voxelwise_scores():
            files += list(correlation_outputs(contrast, score).values())
    return files + group_comparison_outputs()  # workflow/rules/groups.smk


def final_outputs(wildcards=None):
    """Every output of the study: `rule all`'s input."""
    return [*group_outputs(), out(paths.REPORT), out(paths.DATASET_DESCRIPTION)]


def final_outputs_but_description(wildcards=None):
    return [f for f in final_outputs() if not f.endswith(paths.DATASET_DESCRIPTION)]


def source_datasets():
    """The input datasets, for dataset_description.json's SourceDatasets."""
    sources = [{"URL": BIDS_DIR.resolve().as_uri()}]
    if PREPROC_DIR is not None:
        sources.append({"URL": PREPROC_DIR.resolve().as_uri()})
    return sources


def first_pet(wildcards):
    """One scan's image: the grid for the partial-volume mixing of the drift simulation."""
    return str(scans()[sorted(scans())[0]].image_path)


def phenotype_inputs(wildcards=None):
    """The dataset's phenotype/<measure>.tsv files (and their JSON sidecars)."""
    if DEMO:
        checkpoints.simulate_demo.get()
    files = []
    for path in phenotype_files(BIDS_DIR).values():
        files.append(str(path))
        if path.with_suffix(".json").is_file():
            files.append(str(path.with_suffix(".json")))
    return files


def pet_sidecars(wildcards=None):
    """Every analysed scan's PET sidecar (the groups' protocols: Kbol, frames)."""
    return sorted({str(scans()[k].sidecar_path) for k in analysed_keys()})


def analysed_scans(wildcards=None):
    """The analysed scans (pipeline.bids.Scan), scans excluded for head motion left out."""
    return [scans()[k] for k in analysed_keys()]


def group_maps(contrast, model_label):
    """Output key -> file of the voxelwise group maps of one contrast (model: file label)."""
    return group_map_files(GROUPS, out(f"group/groups/{contrast}_model-{model_label}"))


def group_comparison_outputs():
    """Outputs of this file's rules that `rule all` and the report ask for."""
    files = []
    if GROUPS is not None:
        files.append(out(paths.group_table("group_differences")))
        if VOXELWISE["enabled"]:
            for contrast in DESIGN.contrasts:
                files += list(group_maps(contrast, label(VOX_MODEL)).values())
    return files


def region_qc_path(key):
    return scan_template(paths.REGION_QC, scan=key)


def region_qc_images(wildcards):
    """One region-overlay image per subject (its first scan): registration and field of view."""
    first = {}
    for key in sorted(analysed_keys()):
        first.setdefault(scans()[key].sub, key)
    return [region_qc_path(key) for key in first.values()]


def report_inputs(wildcards):
    """What the report waits for: group tables and maps, overlays and the motion confounds
    (the preprocessing QC figures are a separate input, report.smk).

    The report also reads every scan's TACs and region fits (tables and curves), found in
    output_dir, but does not name them: the group table of BP_ND (collect_bp_nd) names every
    fit table, and each fit job reads its scan's TACs and writes its tables and curves
    together, so a changed, missing or new TAC or fit file reruns the fit and the group table
    and, downstream of them, the report, as naming them would. Naming them here cost
    Snakemake about 3,000 file look-ups per 1,000 scans (benchmarks/README.md, session 6)."""
    return group_outputs() + region_qc_images(wildcards) + motion_confounds()
