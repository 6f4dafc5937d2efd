# Patient-vs-control designs (design.groups) and condition-level ratings (phenotype/):
# group differences per contrast, region and model, voxelwise two-sample and per-group maps,
# and rating changes tested within and between groups. Every config value a rule uses is a
# param; the work is in pipeline.stats.group_tables / pipeline.stats.voxelwise_groups.

from pipeline.groups import parse_groups
from pipeline.phenotype import phenotype_files
from pipeline.stats.voxelwise_groups import group_map_files

GROUPS = DESIGN.groups


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
    return sorted({str(s.sidecar_path) for s in scans().values()})


def group_maps(contrast, model=VOX_MODEL):
    """Output key -> file of the voxelwise group maps of one contrast."""
    return group_map_files(GROUPS, out(f"group/groups/{contrast}_model-{model}"))


def group_comparison_outputs():
    """Outputs of this file's rules that `rule all` and the report ask for."""
    files = [out("group/rating_changes.tsv"), out("group/rating_tests.tsv")]
    if GROUPS is not None:
        files.append(out("group/group_differences.tsv"))
        if VOXELWISE["enabled"]:
            for contrast in DESIGN.contrasts:
                files += list(group_maps(contrast).values())
    return files


rule rating_changes:
    input:
        values=out("group/contrast_values.tsv"),
        participants=participants_tsv,
        phenotype=phenotype_inputs,
    output:
        changes=out("group/rating_changes.tsv"),
        tests=report(out("group/rating_tests.tsv"), caption="../report/rating_tests.rst",
                     category="Group comparison"),
    params:
        design=config["design"],
        correlations=config["statistics"]["correlations"],
        n_perm=config["statistics"]["n_perm"],
    log:
        out("logs/group/rating_changes.log"),
    threads: res("rating_changes")["threads"]
    resources:
        mem_mb=res("rating_changes")["mem_mb"],
        runtime=res("rating_changes")["runtime"],
    run:
        from pipeline.stats.group_tables import write_ratings

        with log_to(log[0]):
            measures = {Path(p).name[:-4]: p for p in input.phenotype if p.endswith(".tsv")}
            write_ratings(measures, input.values, bids.read_participants(input.participants),
                          output.changes, output.tests,
                          design=load_design({"design": params.design}),
                          correlations=params.correlations, n_perm=params.n_perm,
                          source=input.participants)


rule group_differences:
    input:
        values=out("group/contrast_values.tsv"),
        participants=participants_tsv,
        sidecars=pet_sidecars,
    output:
        table=report(out("group/group_differences.tsv"),
                     caption="../report/group_differences.rst", category="Group comparison"),
    params:
        groups=config["design"].get("groups"),
        n_perm=config["statistics"]["n_perm"],
        alpha=config["statistics"]["alpha"],
    log:
        out("logs/group/group_differences.log"),
    threads: res("group_differences")["threads"]
    resources:
        mem_mb=res("group_differences")["mem_mb"],
        runtime=res("group_differences")["runtime"],
    run:
        from pipeline.stats.group_tables import write_group_differences

        with log_to(log[0]):
            write_group_differences(input.values, bids.read_participants(input.participants),
                                    output.table, groups=parse_groups(params.groups),
                                    scans=list(scans().values()), n_perm=params.n_perm,
                                    alpha=params.alpha, source=input.participants)


if GROUPS is not None:

    rule voxelwise_groups:
        input:
            effects=out("group/{contrast}_model-{model}_effects.nii.gz"),
            participants=participants_tsv,
            regions=config["regions"],
        output:
            **group_maps("{contrast}", "{model}"),
        params:
            groups=config["design"]["groups"],
            settings=VOXELWISE,
        log:
            out("logs/group/{contrast}_model-{model}_voxelwise_groups.log"),
        threads: res("voxelwise_groups")["threads"]
        resources:
            mem_mb=res("voxelwise_groups")["mem_mb"],
            runtime=res("voxelwise_groups")["runtime"],
        run:
            from pipeline.stats.voxelwise_groups import write_voxelwise_groups

            with log_to(log[0]):
                write_voxelwise_groups(input.effects,
                                       bids.read_participants(input.participants),
                                       dict(output.items()),
                                       groups=parse_groups(params.groups),
                                       settings=params.settings, region_config=input.regions,
                                       source=input.participants)
