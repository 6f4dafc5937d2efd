# Group statistics: null drift, paired contrasts, correlations, voxelwise group maps.

rule null_drift:
    input:
        bp_nd=out("group/bp_nd.tsv"),
        tacs=all_tacs,
        pet=first_pet,
        regions=config["regions"],
    output:
        table=report(out("group/null_drift.tsv"), caption="../report/null_drift.rst",
                     category="Group statistics"),
    log:
        out("logs/group/null_drift.log"),
    threads: res("null_drift")["threads"]
    resources:
        mem_mb=res("null_drift")["mem_mb"],
        runtime=res("null_drift")["runtime"],
    run:
        from pipeline.stats.drift import write_null_drift

        with log_to(log[0]):
            write_null_drift(input.bp_nd, input.tacs, output.table, config=config,
                             reference=REFERENCE, pet_path=input.pet,
                             region_config=input.regions)


rule contrasts:
    input:
        bp_nd=out("group/bp_nd.tsv"),
        drift=out("group/null_drift.tsv"),
        participants=participants_tsv,
    output:
        contrasts=report(out("group/contrasts.tsv"), caption="../report/contrasts.rst",
                         category="Group statistics"),
        values=out("group/contrast_values.tsv"),
        exclusions=out("group/exclusions.tsv"),
    log:
        out("logs/group/contrasts.log"),
    threads: res("contrasts")["threads"]
    resources:
        mem_mb=res("contrasts")["mem_mb"],
        runtime=res("contrasts")["runtime"],
    run:
        from pipeline.stats.tables import write_contrasts

        with log_to(log[0]):
            write_contrasts(input.bp_nd, output.contrasts, output.values, output.exclusions,
                            config=config, drift_path=input.drift,
                            participants=read_participants_table())


rule correlations:
    input:
        values=out("group/contrast_values.tsv"),
        participants=participants_tsv,
        ratings=out("group/rating_changes.tsv"),
    output:
        table=report(out("group/correlations.tsv"), caption="../report/correlations.rst",
                     category="Group statistics"),
    params:
        stats=config["statistics"],
    log:
        out("logs/group/correlations.log"),
    threads: res("correlations")["threads"]
    resources:
        mem_mb=res("correlations")["mem_mb"],
        runtime=res("correlations")["runtime"],
    run:
        from pipeline.stats.tables import write_correlations

        with log_to(log[0]):
            write_correlations(input.values, read_participants_table(), output.table,
                               specs=params.stats["correlations"], model=PRIMARY,
                               n_boot=params.stats["n_boot"], n_perm=params.stats["n_perm"],
                               ratings_path=input.ratings)


rule voxelwise_contrast:
    input:
        maps=contrast_map_files,
        drift=out("group/null_drift.tsv"),
        values=out("group/contrast_values.tsv"),
        regions=config["regions"],
    output:
        **voxelwise_report_outputs("{contrast}", "{model}"),
    params:
        maps=contrast_maps,
        settings=VOXELWISE,
    log:
        out("logs/group/{contrast}_model-{model}_voxelwise.log"),
    threads: res("voxelwise_contrast")["threads"]
    resources:
        mem_mb=res("voxelwise_contrast")["mem_mb"],
        runtime=res("voxelwise_contrast")["runtime"],
    run:
        from pipeline.stats.voxelwise import write_voxelwise_contrast

        with log_to(log[0]):
            write_voxelwise_contrast(
                params.maps, dict(output.items()), design=DESIGN,
                contrast=wildcards.contrast, model=wildcards.model, settings=params.settings,
                drift_path=input.drift if config["statistics"]["null_drift"]["correct"] else None,
                values_path=input.values, region_config=input.regions)


rule voxelwise_correlation:
    input:
        effects=out("group/{contrast}_model-{model}_effects.nii.gz"),
        participants=participants_tsv,
        regions=config["regions"],
        ratings=out("group/rating_changes.tsv"),
    output:
        **correlation_outputs("{contrast}", "{score}", "{model}"),
    params:
        settings=VOXELWISE,
    log:
        out("logs/group/{contrast}_score-{score}_model-{model}_voxelwise.log"),
    threads: res("voxelwise_correlation")["threads"]
    resources:
        mem_mb=res("voxelwise_correlation")["mem_mb"],
        runtime=res("voxelwise_correlation")["runtime"],
    run:
        from pipeline.stats.voxelwise import write_voxelwise_correlation

        with log_to(log[0]):
            write_voxelwise_correlation(input.effects, read_participants_table(),
                                        dict(output.items()), score=wildcards.score,
                                        settings=params.settings, region_config=input.regions,
                                        ratings_path=input.ratings,
                                        contrast=wildcards.contrast)
