# Region fits per scan, model and condition window, with a subject's shared k2'.

rule estimate_k2prime:
    input:
        tacs=subject_tacs,
    output:
        k2prime=out(paths.K2PRIME),
    params:
        used=used("k2prime"),
        reference=REFERENCE,
    log:
        log_path("sub-{sub}/estimate_k2prime.log"),
    threads: res("estimate_k2prime")["threads"]
    resources:
        mem_mb=res("estimate_k2prime")["mem_mb"],
        runtime=res("estimate_k2prime")["runtime"],
    run:
        from pipeline.design import k2prime_settings
        from pipeline.kinetics import write_subject_k2prime
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_subject_k2prime(input.tacs, output.k2prime,
                                  settings=k2prime_settings(params.used),
                                  reference=params.reference)
            record_config_used(output, params.used)


rule fit_regions:
    input:
        tacs=tacs_of,
        k2prime=k2prime_of_scan(fit_options),
    output:
        table=scan_template(paths.FIT, scan="{scan}", model="{model}"),
        curves=scan_template(paths.FIT_CURVES, scan="{scan}", model="{model}"),
    params:
        used=lambda w: used(f"models.{model_of(w)}", *condition_keys(w.scan),
                            *release_keys(w.scan)),
        model=model_of,
        conditions=lambda w: conditions_of_scan(w.scan),
        entities=entities_of,
        half_life=lambda w: scan_of(w).half_life,
        reference=REFERENCE,
    log:
        log_path("{scan}_model-{model}_fit_regions.log"),
    threads: res("fit_regions")["threads"]
    resources:
        mem_mb=res("fit_regions")["mem_mb"],
        runtime=res("fit_regions")["runtime"],
    run:
        from pipeline.kinetics import write_region_fits
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_region_fits(input.tacs, output.table, reference=params.reference,
                              model=params.model, conditions=params.conditions,
                              entities=params.entities,
                              options=params.used[f"models.{params.model}"] or {},
                              k2prime_path=input.k2prime[0] if input.k2prime else None,
                              half_life=params.half_life,
                              release_fit_start=release_fit_start(params.used))
            record_config_used(output, params.used)


rule collect_bp_nd:
    input:
        fits=all_fits,
    output:
        table=report(out(paths.group_table("bp_nd")), caption="../report/bp_nd.rst",
                     category="Group statistics"),
    log:
        log_path("group/collect_bp_nd.log"),
    threads: res("collect_bp_nd")["threads"]
    resources:
        mem_mb=res("collect_bp_nd")["mem_mb"],
        runtime=res("collect_bp_nd")["runtime"],
    run:
        from pipeline.kinetics import write_bp_nd
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_bp_nd(input.fits, output.table)
            record_config_used(output, {})
