# Regional time-activity curves of every scan analysed as is (pipeline.regions); those of
# preprocessed scans come from native_tacs (preprocess.smk).

rule extract_tacs:
    input:
        pet=pet_of,
        sidecar=sidecar_of,
        regions=config["regions"],
    output:
        tacs=scan_template(paths.TACS, scan="{scan}"),
    params:
        used=used("regions"),
        scan=scan_of,
        cache=out(paths.MASK_CACHE),
        image_cache=out(paths.PET_CACHE),  # the loaded image, for the maps and region figure
    wildcard_constraints:
        scan=AS_IS_SCANS,
    log:
        log_path("{scan}_extract_tacs.log"),
    threads: res("extract_tacs")["threads"]
    resources:
        mem_mb=res("extract_tacs")["mem_mb"],
        runtime=res("extract_tacs")["runtime"],
    run:
        from pipeline.regions import write_region_tacs
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_region_tacs(params.scan, input.regions, output.tacs, cache_dir=params.cache,
                              image_cache=params.image_cache)
            record_config_used(output, params.used)
