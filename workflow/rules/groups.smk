# Patient-vs-control designs (design.groups) and condition-level ratings (phenotype/):
# group differences per contrast, region and model, voxelwise two-sample and per-group maps,
# and rating changes tested within and between groups. Every config value a rule uses is a
# param; the work is in pipeline.stats.group_tables / pipeline.stats.voxelwise_groups. Input
# functions and GROUPS: group_inputs.smk.

rule rating_changes:
    input:
        values=out(paths.group_table("contrast_values")),
        participants=participants_tsv,
        phenotype=phenotype_inputs,
    output:
        changes=out(paths.group_table("rating_changes")),
        tests=report(out(paths.group_table("rating_tests")),
                     caption="../report/rating_tests.rst", category="Group comparison"),
    params:
        used=used("design", "statistics.correlations", "statistics.n_perm"),
    log:
        log_path("group/rating_changes.log"),
    threads: res("rating_changes")["threads"]
    resources:
        mem_mb=res("rating_changes")["mem_mb"],
        runtime=res("rating_changes")["runtime"],
    run:
        from pipeline.bids import read_participants
        from pipeline.stats.group_tables import write_ratings
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            measures = {Path(p).name[:-4]: p for p in input.phenotype if p.endswith(".tsv")}
            write_ratings(measures, input.values, read_participants(input.participants),
                          output.changes, output.tests,
                          design=load_design({"design": params.used["design"]}),
                          correlations=params.used["statistics.correlations"],
                          n_perm=params.used["statistics.n_perm"], source=input.participants)
            record_config_used(output, params.used)


rule group_differences:
    input:
        values=out(paths.group_table("contrast_values")),
        participants=participants_tsv,
        sidecars=pet_sidecars,
    output:
        table=report(out(paths.group_table("group_differences")),
                     caption="../report/group_differences.rst", category="Group comparison"),
    params:
        used=used("design.groups", "statistics.n_perm", "statistics.alpha"),
    log:
        log_path("group/group_differences.log"),
    threads: res("group_differences")["threads"]
    resources:
        mem_mb=res("group_differences")["mem_mb"],
        runtime=res("group_differences")["runtime"],
    run:
        from pipeline.bids import read_participants
        from pipeline.stats.group_tables import write_group_differences
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_group_differences(input.values, read_participants(input.participants),
                                    output.table,
                                    groups=parse_groups(params.used["design.groups"]),
                                    scans=analysed_scans(),
                                    n_perm=params.used["statistics.n_perm"],
                                    alpha=params.used["statistics.alpha"],
                                    source=input.participants)
            record_config_used(output, params.used)


if GROUPS is not None:

    rule voxelwise_groups:
        input:
            effects=out(paths.VOXELWISE_MAPS["effects"]),
            participants=participants_tsv,
            regions=config["regions"],
        output:
            **group_maps("{contrast}", "{model}"),
        params:
            used=used("design.groups", "voxelwise.n_perm", "voxelwise.smoothing_fwhm",
                      "voxelwise.height_threshold", "voxelwise.cluster_threshold"),
        log:
            log_path("group/{contrast}_model-{model}_voxelwise_groups.log"),
        threads: res("voxelwise_groups")["threads"]
        resources:
            mem_mb=res("voxelwise_groups")["mem_mb"],
            runtime=res("voxelwise_groups")["runtime"],
        run:
            from pipeline.bids import read_participants
            from pipeline.stats.voxelwise_groups import write_voxelwise_groups
            from pipeline.tables import record_config_used

            with log_to(log[0]):
                write_voxelwise_groups(input.effects, read_participants(input.participants),
                                       dict(output.items()),
                                       groups=parse_groups(params.used["design.groups"]),
                                       settings=settings_of(params.used, "voxelwise"),
                                       region_config=input.regions,
                                       source=input.participants)
                record_config_used(output, params.used)
