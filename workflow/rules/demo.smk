# The built-in demo study: simulated once into <output_dir>/.petbp/demo (bids/ and truth/),
# then analysed like any dataset. A checkpoint, because the scans are only known afterwards.

checkpoint simulate_demo:
    output:
        description=out(f"{paths.DEMO_BIDS}/{paths.DATASET_DESCRIPTION}"),
    params:
        used=used("demo"),
    log:
        log_path("demo/simulate_demo.log"),
    threads: res("simulate_demo")["threads"]
    resources:
        mem_mb=res("simulate_demo")["mem_mb"],
        runtime=res("simulate_demo")["runtime"],
    run:
        from pipeline.simulate.study import write_demo_study

        with log_to(log[0]):
            write_demo_study(out(paths.DEMO_DIR), **params.used["demo"])
