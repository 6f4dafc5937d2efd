# Regional time-activity curves of every scan analysed as is (pipeline.regions), and the
# scan's region figure drawn from the same loaded image and masks; the TACs of preprocessed
# scans come from native_tacs (preprocess.smk), their figures from region_qc (report.smk).

rule extract_tacs:
    input:
        pet=pet_of,
        sidecar=sidecar_of,
        regions=config["regions"],
    output:
        tacs=scan_template(paths.TACS, scan="{scan}"),
        # no job of its own: a separate job paid a process start, its imports and a read
        # of the image, and 500 jobs per 1,000 scans in every dry run (benchmarks/README.md)
        png=scan_template(paths.REGION_QC, scan="{scan}"),
    params:
        used=used("regions"),
        scan=scan_of,
        cache=out(paths.MASK_CACHE),
        image_cache=out(paths.PET_CACHE),  # the loaded image, for the maps
    wildcard_constraints:
        scan=AS_IS_SCANS,
    log:
        log_path("{scan}_extract_tacs.log"),
    threads: res("extract_tacs")["threads"]
    resources:
        mem_mb=res("extract_tacs")["mem_mb"],
        runtime=res("extract_tacs")["runtime"],
    run:
        from pipeline.regions import write_region_tacs_with_qc
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_region_tacs_with_qc(params.scan, input.regions, output.tacs, output.png,
                                      cache_dir=params.cache, image_cache=params.image_cache)
            record_config_used(output, params.used)
