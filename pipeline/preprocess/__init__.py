"""From scanner space to MNI: motion correction, PET-T1w coregistration, T1w normalization.

Raw (scanner-space) dynamic PET is analysed in its own space: regions are pulled from MNI
into every frame, so the frames are never interpolated for region TACs. Registration uses
ANTs through antspyx, an optional extra (``pip install 'petbp[preproc]'``); everything after
registration is numpy.

Public API (one module per job)::

    plan = plan_scan(pet_path, mode="auto")               # plan: space detection, T1w
    write_motion(pet, confounds_tsv, mean_nii)             # motion.py + confounds.py
    write_coregistration(mean_nii, t1w, xfm_json)          # coregister.py
    write_normalization(t1w, out_prefix)                   # normalize.py (once per subject)
    write_native_region_tacs(pet, confounds_tsv, xfm_json, mnicoords, regions, tacs_tsv)
    write_volume_to_mni(map_nii, xfm_json, t1coords, out)  # warp.py
    write_frames_to_mni(pet, confounds_tsv, xfm_json, t1coords, out)
    write_preprocess_qc(confounds_tsv, mean_nii, t1w, xfm_json, t1_in_mni, m_png, r_png)
    write_scan_plan(pet_path, mode, space_json)           # plan.py, for the check/DAG

Transforms are 4x4 RAS matrices named ``b_from_a`` (:mod:`.rigid`).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the names below, for type checkers and readers
    from pipeline.preprocess.antsio import INSTALL_HINT, require_ants
    from pipeline.preprocess.confounds import MotionDecision, MotionThresholds, read_motion
    from pipeline.preprocess.coregister import CoregisterSettings, coregister_pet_to_t1
    from pipeline.preprocess.fields import CoordinateField, read_field, write_field
    from pipeline.preprocess.motion import MotionCorrectionSettings, MotionEstimate, estimate_motion
    from pipeline.preprocess.native_regions import (
        extract_native_tacs,
        iter_frame_masks,
        native_region_masks,
    )
    from pipeline.preprocess.native_steps import (
        mni_region_masks,
        write_frames_to_mni,
        write_native_region_tacs,
        write_volume_to_mni,
    )
    from pipeline.preprocess.normalize import TEMPLATE_SPACE, NormalizeSettings, normalize_t1
    from pipeline.preprocess.plan import (
        MODES,
        ScanPlan,
        find_t1w,
        image_space,
        plan_scan,
        write_scan_plan,
    )
    from pipeline.preprocess.qc import plot_motion_qc, plot_registration_qc, write_preprocess_qc
    from pipeline.preprocess.steps import (
        read_coregistration,
        write_coregistration,
        write_motion,
        write_normalization,
    )
    from pipeline.preprocess.warp import warp_frames_to_mni, warp_volume_to_mni

#: Public name -> the submodule that defines it. The package imports a submodule only when
#: one of its names is first used (PEP 562): the workflow's parse needs only ``plan`` and
#: ``confounds``, and importing every step (scipy.ndimage, the registration code) cost each
#: Snakemake process about 0.5 s (benchmarks/README.md, bench_dag.py, session 6).
_SOURCE = {
    "CoordinateField": "fields",
    "CoregisterSettings": "coregister",
    "INSTALL_HINT": "antsio",
    "MODES": "plan",
    "MotionCorrectionSettings": "motion",
    "MotionDecision": "confounds",
    "MotionEstimate": "motion",
    "MotionThresholds": "confounds",
    "NormalizeSettings": "normalize",
    "ScanPlan": "plan",
    "TEMPLATE_SPACE": "normalize",
    "coregister_pet_to_t1": "coregister",
    "estimate_motion": "motion",
    "extract_native_tacs": "native_regions",
    "find_t1w": "plan",
    "image_space": "plan",
    "iter_frame_masks": "native_regions",
    "mni_region_masks": "native_steps",
    "native_region_masks": "native_regions",
    "normalize_t1": "normalize",
    "plan_scan": "plan",
    "plot_motion_qc": "qc",
    "plot_registration_qc": "qc",
    "read_coregistration": "steps",
    "read_field": "fields",
    "read_motion": "confounds",
    "require_ants": "antsio",
    "warp_frames_to_mni": "warp",
    "warp_volume_to_mni": "warp",
    "write_coregistration": "steps",
    "write_field": "fields",
    "write_frames_to_mni": "native_steps",
    "write_motion": "steps",
    "write_native_region_tacs": "native_steps",
    "write_normalization": "steps",
    "write_preprocess_qc": "qc",
    "write_scan_plan": "plan",
    "write_volume_to_mni": "native_steps",
}


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first use."""
    if name in _SOURCE:
        value = getattr(importlib.import_module(f"{__name__}.{_SOURCE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INSTALL_HINT",
    "MODES",
    "TEMPLATE_SPACE",
    "CoordinateField",
    "CoregisterSettings",
    "MotionCorrectionSettings",
    "MotionDecision",
    "MotionEstimate",
    "MotionThresholds",
    "NormalizeSettings",
    "ScanPlan",
    "coregister_pet_to_t1",
    "estimate_motion",
    "extract_native_tacs",
    "find_t1w",
    "image_space",
    "iter_frame_masks",
    "mni_region_masks",
    "native_region_masks",
    "normalize_t1",
    "plan_scan",
    "plot_motion_qc",
    "plot_registration_qc",
    "read_coregistration",
    "read_field",
    "read_motion",
    "require_ants",
    "warp_frames_to_mni",
    "warp_volume_to_mni",
    "write_coregistration",
    "write_field",
    "write_frames_to_mni",
    "write_motion",
    "write_native_region_tacs",
    "write_normalization",
    "write_preprocess_qc",
    "write_scan_plan",
    "write_volume_to_mni",
]
