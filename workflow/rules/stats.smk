# Group statistics: paired contrasts with the within-scan drift, correlations, voxelwise
# group maps.

rule contrasts:
    input:
        bp_nd=out(paths.group_table("bp_nd")),
        participants=participants_tsv,
        motion=motion_confounds,  # waits for the exclusion decisions (excluded_scans)
    output:
        contrasts=report(out(paths.group_table("contrasts")),
                         caption="../report/contrasts.rst", category="Group statistics"),
        values=out(paths.group_table("contrast_values")),
        exclusions=out(paths.group_table("exclusions")),
        drift=report(out(paths.group_table("null_drift")), caption="../report/null_drift.rst",
                     category="Group statistics"),
    params:
        used=used("design", "statistics.test", "statistics.alpha",
                  "statistics.null_drift.method", "statistics.null_drift.sys_sd",
                  "statistics.null_drift.pool"),
        excluded_scans=excluded_scans,
    log:
        log_path("group/contrasts.log"),
    threads: res("contrasts")["threads"]
    resources:
        mem_mb=res("contrasts")["mem_mb"],
        runtime=res("contrasts")["runtime"],
    run:
        from pipeline.bids import read_participants
        from pipeline.stats.tables import write_contrasts
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_contrasts(input.bp_nd, output.contrasts, output.values, output.exclusions,
                            output.drift, design=params.used["design"],
                            test=params.used["statistics.test"],
                            alpha=params.used["statistics.alpha"],
                            drift_method=params.used["statistics.null_drift.method"],
                            sys_sd=params.used["statistics.null_drift.sys_sd"],
                            drift_pool=params.used["statistics.null_drift.pool"],
                            participants=read_participants(input.participants),
                            excluded_scans=params.excluded_scans)
            record_config_used(output, params.used)


rule correlations:
    input:
        values=out(paths.group_table("contrast_values")),
        participants=participants_tsv,
        ratings=out(paths.group_table("rating_changes")),
    output:
        table=report(out(paths.group_table("correlations")),
                     caption="../report/correlations.rst", category="Group statistics"),
    params:
        used=used("primary_model", "statistics.correlations", "statistics.n_boot",
                  "statistics.n_perm"),
    log:
        log_path("group/correlations.log"),
    threads: res("correlations")["threads"]
    resources:
        mem_mb=res("correlations")["mem_mb"],
        runtime=res("correlations")["runtime"],
    run:
        from pipeline.bids import read_participants
        from pipeline.stats.tables import write_correlations
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_correlations(input.values, read_participants(input.participants),
                               output.table, specs=params.used["statistics.correlations"],
                               model=params.used["primary_model"],
                               n_boot=params.used["statistics.n_boot"],
                               n_perm=params.used["statistics.n_perm"],
                               ratings_path=input.ratings)
            record_config_used(output, params.used)


rule voxelwise_contrast:
    input:
        maps=contrast_map_files,
        drift=out(paths.group_table("null_drift")),
        values=out(paths.group_table("contrast_values")),
        regions=config["regions"],
    output:
        **voxelwise_report_outputs(),
    params:
        used=lambda w: used(*contrast_keys(w.contrast), "statistics.null_drift.method",
                            "voxelwise.mask", "voxelwise.n_perm", "voxelwise.smoothing_fwhm",
                            "voxelwise.height_threshold", "voxelwise.cluster_threshold"),
        maps=contrast_maps,
    log:
        log_path("group/{contrast}_model-{model}_voxelwise.log"),
    threads: res("voxelwise_contrast")["threads"]
    resources:
        mem_mb=res("voxelwise_contrast")["mem_mb"],
        runtime=res("voxelwise_contrast")["runtime"],
    run:
        from pipeline.design import load_design
        from pipeline.stats.voxelwise import write_voxelwise_contrast
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_voxelwise_contrast(
                params.maps, dict(output.items()),
                design=load_design({"design": design_section(params.used)}),
                contrast=wildcards.contrast, model=model_of(wildcards),
                settings=settings_of(params.used, "voxelwise"),
                drift_path=input.drift
                if params.used["statistics.null_drift.method"] == "release_model" else None,
                values_path=input.values, region_config=input.regions)
            record_config_used(output, params.used)


rule voxelwise_correlation:
    input:
        effects=out(paths.VOXELWISE_MAPS["effects"]),
        participants=participants_tsv,
        regions=config["regions"],
        ratings=out(paths.group_table("rating_changes")),
    output:
        **{kind: out(template) for kind, template in paths.CORRELATION_MAPS.items()},
    params:
        used=used("voxelwise.n_perm", "voxelwise.smoothing_fwhm",
                  "voxelwise.height_threshold", "voxelwise.cluster_threshold"),
    log:
        log_path("group/{contrast}_score-{score}_model-{model}_voxelwise.log"),
    threads: res("voxelwise_correlation")["threads"]
    resources:
        mem_mb=res("voxelwise_correlation")["mem_mb"],
        runtime=res("voxelwise_correlation")["runtime"],
    run:
        from pipeline.bids import read_participants
        from pipeline.stats.voxelwise import write_voxelwise_correlation
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_voxelwise_correlation(input.effects,
                                        read_participants(input.participants),
                                        dict(output.items()), score=wildcards.score,
                                        settings=settings_of(params.used, "voxelwise"),
                                        region_config=input.regions,
                                        ratings_path=input.ratings,
                                        contrast=wildcards.contrast)
            record_config_used(output, params.used)
