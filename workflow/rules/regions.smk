# Regional time-activity curves of every scan (pipeline.regions).

rule extract_tacs:
    input:
        pet=pet_of,
        regions=config["regions"],
    output:
        tacs=out("{scan}_desc-" + REGION_SET.name + "_tacs.tsv"),
    log:
        out("logs/{scan}_extract_tacs.log"),
    threads: res("extract_tacs")["threads"]
    resources:
        mem_mb=res("extract_tacs")["mem_mb"],
        runtime=res("extract_tacs")["runtime"],
    run:
        from pipeline.regions import write_region_tacs

        with log_to(log[0]):
            write_region_tacs(input.pet, input.regions, output.tacs,
                              cache_dir=out("cache/masks"))
