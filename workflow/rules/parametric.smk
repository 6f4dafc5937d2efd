# Parametric BP_ND maps per scan and condition window (pipeline.parametric), on the
# analysis mask.

rule analysis_mask:
    input:
        pet=pet_of,
        regions=config["regions"],
    output:
        mask=scan_template(paths.MASK, scan="{scan}"),
    params:
        used=used("regions", "voxelwise.mask"),
    log:
        log_path("{scan}_analysis_mask.log"),
    threads: res("analysis_mask")["threads"]
    resources:
        mem_mb=res("analysis_mask")["mem_mb"],
        runtime=res("analysis_mask")["runtime"],
    run:
        from pipeline.parametric import write_analysis_mask
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            write_analysis_mask(input.pet, output.mask, region_config=input.regions,
                                mode=params.used["voxelwise.mask"])
            record_config_used(output, params.used)


#: The config values of each condition's maps.
MAP_USED = {cond: used("voxelwise.model", "voxelwise.options", f"design.conditions.{cond}.window")
            for cond in DESIGN.conditions}


rule parametric_map:
    input:
        unpack(map_inputs),  # pet, sidecar, k2prime (one input function: one call per job)
        tacs=scan_template(paths.TACS, scan="{scan}"),
        mask=scan_template(paths.MASK, scan="{scan}"),
    output:
        bpnd=scan_template(paths.MAP, scan="{scan}", model="{model}", cond="{cond}"),
    params:
        used=lambda w: MAP_USED[w.cond],
        reference=REFERENCE,
        scan=scan_of,
        image_cache=out(paths.PET_CACHE),  # where extract_tacs left the loaded image
    log:
        log_path("{scan}_model-{model}_cond-{cond}_parametric_map.log"),
    threads: res("parametric_map")["threads"]
    resources:
        mem_mb=res("parametric_map")["mem_mb"],
        runtime=res("parametric_map")["runtime"],
    run:
        from pipeline.bids.scan import scan_with_image
        from pipeline.parametric import write_condition_map
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            # a preprocessed scan is mapped from its frames on the MNI grid (preprocess.smk)
            scan = scan_with_image(params.scan, input.pet, input.sidecar)
            write_condition_map(scan, input.tacs, input.mask,
                                output.bpnd.removesuffix("_bpnd.nii.gz"),
                                window=params.used[f"design.conditions.{wildcards.cond}.window"],
                                reference=params.reference,
                                model=params.used["voxelwise.model"],
                                options=params.used["voxelwise.options"] or {},
                                k2prime_path=input.k2prime[0] if input.k2prime else None,
                                image_cache=params.image_cache)
            record_config_used(output, params.used)
