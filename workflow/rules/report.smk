# The study report: one self-contained report.html, methods.md, and every figure as a file
# under group/figures/ (pipeline.report; layout in pipeline/report/spec.yaml).
# Per-scan figures are drawn by their own jobs before it, beside the other scans' steps:
# region_qc (region overlays) and scan_figure (TACs, fits and residuals).


rule region_qc:
    input:
        pet=pet_of,
        sidecar=sidecar_of,
        regions=config["regions"],
        tacs=tacs_of,  # after extract_tacs: it leaves the loaded image in image_cache
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


rule scan_figure:
    input:
        fits=scan_template(paths.FIT_CURVES, scan="{scan}", model="{model}"),
        bp=scan_template(paths.FIT, scan="{scan}", model="{model}"),
        tacs=tacs_of,
    output:
        png=scan_template(paths.FIT_QC, scan="{scan}", model="{model}"),
    params:
        model=model_of,
        reference=REFERENCE,  # used only if the fit table's sidecar does not name it
    log:
        log_path("{scan}_model-{model}_scan_figure.log"),
    threads: res("scan_figure")["threads"]
    resources:
        mem_mb=res("scan_figure")["mem_mb"],
        runtime=res("scan_figure")["runtime"],
    run:
        from pipeline.report.scan_figure import write_scan_figure

        with log_to(log[0]):
            write_scan_figure(input.fits, input.bp, input.tacs, output.png,
                              model=params.model, reference=params.reference)


rule report:
    input:
        report_inputs,
        # drawn per scan as soon as its fits exist, beside the other scans' steps; the
        # report embeds them (pipeline.report.scan_figure)
        scan_figures,
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
            write_report(Path(output.html).parent, params.config, output.html,
                         methods_md=output.methods, figure_dir=output.figures)
