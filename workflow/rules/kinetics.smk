# Region fits per scan (every model and condition window), with a subject's shared k2'.

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


#: fit_regions' outputs: each region model's table and curves (one job per scan, every
#: model: the release model is fitted once per scan and shared; an edit of one model's
#: options refits the scan's other models too, config/README.md "What an edit reruns").
#: The region models in name order: which one is primary (MODELS lists it first) is no
#: business of the fits, so choosing another reruns none.
FIT_MODELS = sorted(MODELS)
FIT_OUTPUTS = {f"{kind}_{label(m)}": scan_template(template, scan="{scan}", model=label(m))
               for m in FIT_MODELS for kind, template in (("table", paths.FIT),
                                                          ("curves", paths.FIT_CURVES))}
#: The config keys of the region models (every job reads all of them).
MODEL_KEYS = tuple(f"models.{m}" for m in FIT_MODELS)
_FIT_USED = {}  # a scan's conditions -> its fit job's used() values (read-only, shared)


def fit_used(wildcards):
    """params.used of a scan's fit job: every model's options, the scan's conditions and,
    for a within-scan design, the release model's keys; made once per set of conditions."""
    conditions = tuple(scan_table().conditions[wildcards.scan])
    if conditions not in _FIT_USED:
        key = wildcards.scan
        _FIT_USED[conditions] = used(*MODEL_KEYS, *condition_keys(key), *release_keys(key))
    return _FIT_USED[conditions]


rule fit_regions:
    input:
        tacs=tacs_of,
        k2prime=fit_k2prime,
    output:
        **FIT_OUTPUTS,
    params:
        used=fit_used,
        conditions=lambda w: conditions_of_scan(w.scan),
        entities=entities_of,
        half_life=lambda w: scan_of(w).half_life,
        reference=REFERENCE,
        models=FIT_MODELS,
    log:
        log_path("{scan}_fit_regions.log"),
    threads: res("fit_regions")["threads"]
    resources:
        mem_mb=res("fit_regions")["mem_mb"],
        runtime=res("fit_regions")["runtime"],
    run:
        from pipeline.kinetics import write_scan_fits
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_scan_fits(input.tacs, {m: output[f"table_{label(m)}"] for m in params.models},
                            reference=params.reference, conditions=params.conditions,
                            options={m: params.used[f"models.{m}"] for m in params.models},
                            entities=params.entities,
                            k2prime_path=input.k2prime[0] if input.k2prime else None,
                            half_life=params.half_life,
                            **release_settings(params.used))
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
