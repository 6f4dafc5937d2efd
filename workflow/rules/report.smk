# The study report: one self-contained report.html, methods.md, and every figure as a file
# under group/figures/ (pipeline.report; layout in pipeline/report/spec.yaml).


def region_qc_path(key):
    return out(f"{key}_desc-{REGION_SET.name}_regions.png")


def region_qc_images(wildcards):
    """One region-overlay image per subject (its first scan): registration and field of view."""
    first = {}
    for key, scan in sorted(scans().items()):
        first.setdefault(scan.sub, key)
    return [region_qc_path(key) for key in first.values()]


def report_inputs(wildcards):
    """Everything the report reads: group tables and maps, TACs, region fits, overlays."""
    return group_outputs() + all_tacs(wildcards) + all_fits(wildcards) \
        + region_qc_images(wildcards)


rule region_qc:
    input:
        pet=pet_of,
        regions=config["regions"],
    output:
        png=out("{scan}_desc-" + REGION_SET.name + "_regions.png"),
    log:
        out("logs/{scan}_region_qc.log"),
    threads: res("region_qc")["threads"]
    resources:
        mem_mb=res("region_qc")["mem_mb"],
        runtime=res("region_qc")["runtime"],
    run:
        from pipeline.regions import write_region_qc

        with log_to(log[0]):
            write_region_qc(input.pet, input.regions, output.png, cache_dir=out("cache/masks"))


rule report:
    input:
        report_inputs,
    output:
        html=report(
            out("report.html"),
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
        config=lambda w: dict(config),
    log:
        out("logs/group/report.log"),
    threads: res("report")["threads"]
    resources:
        mem_mb=res("report")["mem_mb"],
        runtime=res("report")["runtime"],
    run:
        from pipeline.report import write_report

        with log_to(log[0]):
            write_report(OUT, params.config, output.html, methods_md=output.methods,
                         figure_dir=output.figures)
