# Parametric BP_ND maps per scan and condition window (pipeline.parametric), on the
# analysis mask.

rule analysis_mask:
    input:
        pet=pet_of,
        regions=config["regions"],
    output:
        mask=out("{scan}_desc-analysis_mask.nii.gz"),
    params:
        mode=VOXELWISE["mask"],
    log:
        out("logs/{scan}_analysis_mask.log"),
    threads: res("analysis_mask")["threads"]
    resources:
        mem_mb=res("analysis_mask")["mem_mb"],
        runtime=res("analysis_mask")["runtime"],
    run:
        from pipeline.parametric import write_analysis_mask

        with log_to(log[0]):
            write_analysis_mask(input.pet, output.mask, region_config=input.regions,
                                mode=params.mode)


rule parametric_map:
    input:
        pet=pet_of,
        tacs=tacs_of,
        mask=lambda w: mask_path(w.scan),
        k2prime=k2prime_of_scan(VOX_MODEL, VOXELWISE["options"]),
    output:
        bpnd=out("{scan}_model-{model}_cond-{cond}_bpnd.nii.gz"),
    params:
        window=window_of,
        options=VOXELWISE["options"],
    log:
        out("logs/{scan}_model-{model}_cond-{cond}_parametric_map.log"),
    threads: res("parametric_map")["threads"]
    resources:
        mem_mb=res("parametric_map")["mem_mb"],
        runtime=res("parametric_map")["runtime"],
    run:
        from pipeline.parametric import write_condition_map

        with log_to(log[0]):
            write_condition_map(input.pet, input.tacs, input.mask,
                                output.bpnd.removesuffix("_bpnd.nii.gz"),
                                window=params.window, reference=REFERENCE,
                                model=wildcards.model, options=params.options,
                                k2prime_path=input.k2prime[0] if input.k2prime else None)
