# Region fits per scan (every model and condition window), with the subject's shared k2'.
#
# The shared k2' (when a region model uses it) is estimated by each of the subject's fit jobs
# from all the subject's TACs and written beside the scan's fits (paths.K2PRIME): the same
# value for every scan of the subject, at the cost of a few first-pass fits per scan,
# instead of one more job per subject (the 1,000-scan DAG, benchmarks/README.md, session 6).
# The map jobs estimate it the same way from the same TACs (parametric.smk), so a refit does
# not remake the maps. An edit of the k2prime section reruns every fit and map job.

#: fit_regions' outputs: each region model's table and curves (one job per scan, every
#: model: the release model is fitted once per scan and shared; an edit of one model's
#: options refits the scan's other models too, config/README.md "What an edit reruns").
#: The region models in name order: which one is primary (MODELS lists it first) is no
#: business of the fits, so choosing another reruns none.
FIT_MODELS = sorted(MODELS)
FIT_OUTPUTS = {f"{kind}_{label(m)}": scan_template(template, scan="{scan}", model=label(m))
               for m in FIT_MODELS for kind, template in (("table", paths.FIT),
                                                          ("curves", paths.FIT_CURVES))}
if FITS_NEED_K2PRIME:
    FIT_OUTPUTS["k2prime"] = k2prime_path("{scan}")
#: The config keys of the region models (every job reads all of them), and the k2prime
#: section when the job estimates the shared k2'.
MODEL_KEYS = tuple(f"models.{m}" for m in FIT_MODELS) + (("k2prime",) if FITS_NEED_K2PRIME
                                                          else ())
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
        subject_tacs=fit_subject_tacs,  # the subject's shared k2' (none when unused)
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
        from pipeline.design import k2prime_settings
        from pipeline.kinetics import write_scan_fits, write_subject_k2prime
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            k2prime = output.get("k2prime")
            if k2prime is not None:
                write_subject_k2prime(input.subject_tacs, k2prime,
                                      settings=k2prime_settings(params.used),
                                      reference=params.reference)
            write_scan_fits(input.tacs, {m: output[f"table_{label(m)}"] for m in params.models},
                            reference=params.reference, conditions=params.conditions,
                            options={m: params.used[f"models.{m}"] for m in params.models},
                            entities=params.entities, k2prime_path=k2prime,
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
