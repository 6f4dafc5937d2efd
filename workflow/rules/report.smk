# The study report: one self-contained report.html, methods.md, and every figure as a file
# under group/figures/ (pipeline.report; layout in pipeline/report/spec.yaml).


def report_inputs(wildcards):
    """Everything the report reads: group tables and maps, TACs and region fits."""
    return group_outputs() + all_tacs(wildcards) + all_fits(wildcards)


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
