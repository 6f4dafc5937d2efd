# Region fits per scan, model and condition window, with a subject's shared k2'.

rule estimate_k2prime:
    input:
        tacs=subject_tacs,
    output:
        k2prime=out("sub-{sub}/sub-{sub}_k2prime.json"),
    params:
        settings=k2prime_settings(config),
    log:
        out("logs/sub-{sub}/estimate_k2prime.log"),
    threads: res("estimate_k2prime")["threads"]
    resources:
        mem_mb=res("estimate_k2prime")["mem_mb"],
        runtime=res("estimate_k2prime")["runtime"],
    run:
        from pipeline.kinetics import write_subject_k2prime

        with log_to(log[0]):
            write_subject_k2prime(input.tacs, output.k2prime, settings=params.settings,
                                  reference=REFERENCE)


rule fit_regions:
    input:
        tacs=tacs_of,
        k2prime=k2prime_of_scan(None),
    output:
        table=out("{scan}_model-{model}_bp.tsv"),
        curves=out("{scan}_model-{model}_fits.tsv"),
    params:
        options=lambda w: model_options(config, w.model),
        conditions=lambda w: conditions_of_scan(w.scan),
        entities=entities_of,
        half_life=lambda w: scan_of(w).half_life,
    log:
        out("logs/{scan}_model-{model}_fit_regions.log"),
    threads: res("fit_regions")["threads"]
    resources:
        mem_mb=res("fit_regions")["mem_mb"],
        runtime=res("fit_regions")["runtime"],
    run:
        from pipeline.kinetics import write_region_fits

        with log_to(log[0]):
            write_region_fits(input.tacs, output.table, reference=REFERENCE,
                              model=wildcards.model, conditions=params.conditions,
                              entities=params.entities, options=params.options,
                              k2prime_path=input.k2prime[0] if input.k2prime else None,
                              half_life=params.half_life)


rule collect_bp_nd:
    input:
        fits=all_fits,
    output:
        table=report(out("group/bp_nd.tsv"), caption="../report/bp_nd.rst",
                     category="Group statistics"),
    log:
        out("logs/group/collect_bp_nd.log"),
    threads: res("collect_bp_nd")["threads"]
    resources:
        mem_mb=res("collect_bp_nd")["mem_mb"],
        runtime=res("collect_bp_nd")["runtime"],
    run:
        from pipeline.kinetics import write_bp_nd

        with log_to(log[0]):
            write_bp_nd(input.fits, output.table)
