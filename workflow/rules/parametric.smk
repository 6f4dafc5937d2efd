# Parametric BP_ND maps (pipeline.parametric): one job per scan writes its analysis mask and
# the map of every condition window it holds, from one read of the image. Snakemake outputs
# are fixed per rule, so there is one rule per set of conditions a scan can hold under the
# design (pipeline.scan_keys.condition_sets), named parametric_maps_<conditions>, matching
# only the scans of that set (by task and session).

#: The config values every map job reads (its windows' are added per rule; the k2prime
#: section when the voxelwise model uses the shared k2', which the job estimates).
MAP_KEYS = ("regions", "voxelwise.mask", "voxelwise.model", "voxelwise.options") \
    + (("k2prime",) if MAPS_NEED_K2PRIME else ())

for _conds, _scans in condition_sets(DESIGN):

    rule:
        name:
            "parametric_maps_" + "_".join(_conds)
        input:
            unpack(map_inputs),  # pet, sidecar, k2prime_tacs (one input function: one call per job)
            tacs=scan_template(paths.TACS, scan="{scan}"),
            regions=config["regions"],
        output:
            mask=scan_template(paths.MASK, scan="{scan}"),
            **{f"bpnd_{c}": scan_template(paths.MAP, scan="{scan}", model=label(VOX_MODEL), cond=c)
               for c in _conds},
        params:
            used=used(*MAP_KEYS, *(f"design.conditions.{c}.window" for c in _conds)),
            conditions=_conds,
            reference=REFERENCE,
            scan=scan_of,
            image_cache=out(paths.PET_CACHE),  # where extract_tacs left the loaded image
        wildcard_constraints:
            scan=_scans,
        log:
            log_path("{scan}_parametric_maps.log"),
        threads: res("parametric_maps")["threads"]
        resources:
            mem_mb=res("parametric_maps")["mem_mb"],
            runtime=res("parametric_maps")["runtime"],
        run:
            from pipeline.bids.scan import scan_with_image
            from pipeline.design import k2prime_settings
            from pipeline.parametric import write_scan_maps
            from pipeline.tables import record_config_used

            with log_to(log[0]):
                # a preprocessed scan is mapped from its frames on the MNI grid (preprocess.smk)
                scan = scan_with_image(params.scan, input.pet, input.sidecar)
                conds = params.conditions
                write_scan_maps(
                    scan, input.tacs, output.mask,
                    {c: output[f"bpnd_{c}"].removesuffix("_bpnd.nii.gz") for c in conds},
                    windows={c: params.used[f"design.conditions.{c}.window"] for c in conds},
                    reference=params.reference, model=params.used["voxelwise.model"],
                    region_config=input.regions, mask_mode=params.used["voxelwise.mask"],
                    options=params.used["voxelwise.options"] or {},
                    k2prime_tacs=list(input.k2prime_tacs) or None,
                    k2prime_settings=k2prime_settings(params.used)
                    if input.k2prime_tacs else None,
                    image_cache=params.image_cache)
                record_config_used(output, params.used)
