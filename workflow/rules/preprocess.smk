# Scanner-space scans, before analysis (pipeline.preprocess): motion correction and PET-T1w
# coregistration per scan, T1w-MNI normalization and tissue segmentation once per T1w, then
# region TACs from atlas regions brought into every frame (frames not interpolated) and the
# frames resampled once onto the MNI grid for maps. Only scans whose plan says so
# (`preprocessing`, inputs.smk ScanTable) match these rules; the others are analysed as is.
#
# Motion correction is a checkpoint: a scan over the motion limits (motion.max_displacement_mm,
# motion.max_outlier_fraction) is excluded when the DAG is built from its confounds
# (inputs.smk motion_exclusion), so its TACs, fits and maps are never asked for and every
# group step, the contrasts' exclusions and the report name it with the reason; its motion
# and registration QC are still drawn. The scan limits reach no per-scan step: editing them
# changes only which scans the group steps read.


checkpoint motion_correction:
    input:
        pet=raw_pet_of,
        sidecar=raw_sidecar_of,
    output:
        confounds=scan_template(paths.CONFOUNDS, scan="{scan}"),
        mean=scan_template(paths.HMC_MEAN, scan="{scan}"),
    params:
        used=used("motion.reference_start"),
        scan=scan_of,
    wildcard_constraints:
        scan=PREPROCESSED_SCANS,
    log:
        log_path("{scan}_motion_correction.log"),
    threads: res("motion_correction")["threads"]
    resources:
        mem_mb=res("motion_correction")["mem_mb"],
        runtime=res("motion_correction")["runtime"],
    run:
        from pipeline.preprocess import MotionCorrectionSettings, write_motion
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            settings = MotionCorrectionSettings(
                reference_start_min=params.used["motion.reference_start"], threads=threads)
            # thresholds are applied where frames are used: editing one redoes no registration
            write_motion(params.scan, output.confounds, output.mean, settings, thresholds=None)
            record_config_used([output.confounds], params.used)


rule coregister:
    input:
        mean=scan_template(paths.HMC_MEAN, scan="{scan}"),
        t1w=t1w_of,
        mnicoords=normalization_of("mnicoords"),
        grey_matter=grey_matter_of,
        white_matter=lambda w: anat_file(paths.SEGMENTATION["wm"], w.scan),
        regions=config["regions"],
    output:
        xfm=scan_template(paths.COREGISTRATION, scan="{scan}"),
    params:
        used=used("regions"),
        cache=out(paths.MASK_CACHE),
    wildcard_constraints:
        scan=PREPROCESSED_SCANS,
    log:
        log_path("{scan}_coregister.log"),
    threads: res("coregister")["threads"]
    resources:
        mem_mb=res("coregister")["mem_mb"],
        runtime=res("coregister")["runtime"],
    run:
        from pipeline.preprocess import CoregisterSettings, write_coregistration

        with log_to(log[0]):
            # refined against a synthetic PET of the subject's anatomy (the analysis' regions)
            write_coregistration(input.mean, input.t1w, output.xfm,
                                 CoregisterSettings(threads=threads),
                                 mnicoords_field=input.mnicoords, probseg_gm=input.grey_matter,
                                 probseg_wm=input.white_matter, region_config=input.regions,
                                 cache_dir=params.cache)


rule normalize_t1:
    input:
        t1w=t1w_of_anat,
    output:
        **{kind: out(path) for kind, path in paths.NORMALIZATION.items()},
    params:
        used=used("normalization.resolution"),
        prefix=lambda w: out(w.anat),
    log:
        log_path("{anat}_normalize_t1.log"),
    threads: res("normalize_t1")["threads"]
    resources:
        mem_mb=res("normalize_t1")["mem_mb"],
        runtime=res("normalize_t1")["runtime"],
    run:
        from pipeline.preprocess import NormalizeSettings, write_normalization
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            settings = NormalizeSettings(resolution=params.used["normalization.resolution"],
                                         threads=threads)
            write_normalization(input.t1w, params.prefix, settings)
            record_config_used([output.xfm], params.used)


rule segment_t1:
    input:
        t1w=t1w_of_anat,
        mnicoords=out(paths.NORMALIZATION["mnicoords"]),
    output:
        **{kind: out(path) for kind, path in paths.SEGMENTATION.items()},
    params:
        prefix=lambda w: out(w.anat),
    log:
        log_path("{anat}_segment_t1.log"),
    threads: res("segment_t1")["threads"]
    resources:
        mem_mb=res("segment_t1")["mem_mb"],
        runtime=res("segment_t1")["runtime"],
    run:
        from pipeline.preprocess.segment import SegmentSettings
        from pipeline.preprocess.steps import write_segmentation

        with log_to(log[0]):
            write_segmentation(input.t1w, input.mnicoords, params.prefix,
                               SegmentSettings(threads=threads))


rule native_tacs:
    input:
        pet=raw_pet_of,
        sidecar=raw_sidecar_of,
        confounds=scan_template(paths.CONFOUNDS, scan="{scan}"),
        xfm=scan_template(paths.COREGISTRATION, scan="{scan}"),
        mnicoords=normalization_of("mnicoords"),
        grey_matter=grey_matter_of,
        regions=config["regions"],
    output:
        tacs=scan_template(paths.TACS, scan="{scan}"),
    params:
        used=used("regions", "motion.fd_mm"),
        scan=scan_of,
        cache=out(paths.MASK_CACHE),
    wildcard_constraints:
        scan=PREPROCESSED_SCANS,
    log:
        log_path("{scan}_native_tacs.log"),
    threads: res("native_tacs")["threads"]
    resources:
        mem_mb=res("native_tacs")["mem_mb"],
        runtime=res("native_tacs")["runtime"],
    run:
        from pipeline.preprocess import MotionThresholds, write_native_region_tacs
        from pipeline.tables import record_config_used

        with log_to(log[0]):
            # frames over motion.fd_mm are left out; the scan limits were applied (the DAG)
            frames = MotionThresholds.frames_only(params.used["motion.fd_mm"])
            write_native_region_tacs(params.scan, input.confounds, input.xfm, input.mnicoords,
                                     input.regions, output.tacs,
                                     probseg_gm=input.grey_matter, cache_dir=params.cache,
                                     thresholds=frames)
            record_config_used(output, params.used)


rule frames_to_mni:
    input:
        pet=raw_pet_of,
        sidecar=raw_sidecar_of,
        confounds=scan_template(paths.CONFOUNDS, scan="{scan}"),
        xfm=scan_template(paths.COREGISTRATION, scan="{scan}"),
        t1coords=normalization_of("t1coords"),
    output:
        pet=scan_template(paths.PET_MNI, scan="{scan}"),
        sidecar=scan_template(paths.PET_MNI.removesuffix(".nii.gz") + ".json", scan="{scan}"),
    params:
        used=used("motion.fd_mm"),
        scan=scan_of,
    wildcard_constraints:
        scan=PREPROCESSED_SCANS,
    log:
        log_path("{scan}_frames_to_mni.log"),
    threads: res("frames_to_mni")["threads"]
    resources:
        mem_mb=res("frames_to_mni")["mem_mb"],
        runtime=res("frames_to_mni")["runtime"],
    run:
        from pipeline.preprocess import MotionThresholds, write_frames_to_mni

        with log_to(log[0]):
            frames = MotionThresholds.frames_only(params.used["motion.fd_mm"])
            write_frames_to_mni(params.scan, input.confounds, input.xfm, input.t1coords,
                                output.pet, thresholds=frames)


rule preprocess_qc:
    input:
        confounds=scan_template(paths.CONFOUNDS, scan="{scan}"),
        mean=scan_template(paths.HMC_MEAN, scan="{scan}"),
        t1w=t1w_of,
        xfm=scan_template(paths.COREGISTRATION, scan="{scan}"),
        t1_mni=normalization_of("t1_mni"),
    output:
        motion=scan_template(paths.MOTION_QC, scan="{scan}"),
        registration=scan_template(paths.REGISTRATION_QC, scan="{scan}"),
    params:
        used=used(*MOTION_KEYS),
        title=lambda w: Path(w.scan).name,
    wildcard_constraints:
        scan=PREPROCESSED_SCANS,
    log:
        log_path("{scan}_preprocess_qc.log"),
    threads: res("preprocess_qc")["threads"]
    resources:
        mem_mb=res("preprocess_qc")["mem_mb"],
        runtime=res("preprocess_qc")["runtime"],
    run:
        from pipeline.preprocess import write_preprocess_qc
        from pipeline.preprocess.confounds import thresholds_from_config

        with log_to(log[0]):
            write_preprocess_qc(input.confounds, input.mean, input.t1w, input.xfm,
                                input.t1_mni, output.motion, output.registration,
                                title=params.title,
                                thresholds=thresholds_from_config(params.used))
