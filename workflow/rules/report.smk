# The study report: one self-contained report.html, methods.md, and every figure as a file
# under group/figures/ (pipeline.report; layout in pipeline/report/spec.yaml).


rule region_qc:
    input:
        pet=pet_of,
        sidecar=sidecar_of,
        regions=config["regions"],
        tacs=tacs_of,  # after extract_tacs (or native_tacs): it leaves the loaded image in image_cache
    output:
        png=scan_template(paths.REGION_QC, scan="{scan}"),
    params:
        cache=out(paths.MASK_CACHE),
        image_cache=out(paths.PET_CACHE),
        scan=scan_of,
    log:
        log_path("{scan}_region_qc.log"),
    threads: res("region_qc")["threads"]
    resources:
        mem_mb=res("region_qc")["mem_mb"],
        runtime=res("region_qc")["runtime"],
    run:
        from pipeline.bids.scan import scan_with_image
        from pipeline.regions import write_region_qc

        with log_to(log[0]):
            scan = scan_with_image(params.scan, input.pet, input.sidecar)
            write_region_qc(scan, input.regions, output.png, cache_dir=params.cache,
                            image_cache=params.image_cache)


rule report:
    input:
        report_inputs,
        # apart: report_inputs waits for motion correction (a checkpoint), these do not,
        # so the registrations behind the QC figures are planned from the start
        preprocess_qc_images,
    output:
        html=report(
            out(paths.REPORT),
            caption="../report/report.rst",
            category="Report",
        ),
        methods=report(
            out("methods.md"),
            caption="../report/methods.rst",
            category="Report",
        ),
        figures=report(
            directory(out("group/figures")),
            patterns=["{name}.svg", "{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    params:
        # the report prints the configuration in effect (pipeline.config.effective_config)
        # and compares it with every output's ConfigUsed: it reads all of it
        config=effective_config(config),
    log:
        log_path("group/report.log"),
    threads: res("report")["threads"]
    resources:
        mem_mb=res("report")["mem_mb"],
        runtime=res("report")["runtime"],
    run:
        from pipeline.report import write_report

        with log_to(log[0]):
            # report.html lies at the top of output_dir (pipeline.paths.REPORT)
            # figures drawn by `threads` worker processes (pipeline.report.drawing)
            write_report(Path(output.html).parent, params.config, output.html,
                         methods_md=output.methods, figure_dir=output.figures,
                         workers=threads)
