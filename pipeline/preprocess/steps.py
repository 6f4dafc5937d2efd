"""The preprocessing steps as file-to-file functions, one per future workflow rule.

Each reads its inputs, calls the library, and writes its outputs atomically (nothing is
half-written on error); PET is read with :func:`pipeline.bids.load_pet` (Bq/mL,
decay-corrected, frame times from the sidecar in minutes).

============================  ============================================================
step                          outputs
============================  ============================================================
:func:`write_motion`          ``<scan>_desc-confounds_timeseries.tsv`` (+ JSON with the
                              per-frame transforms), ``<scan>_desc-hmcmean_pet.nii.gz``
:func:`write_coregistration`  ``<scan>_from-pet_to-T1w_xfm.json`` (+ ANTs ``.mat``)
:func:`write_normalization`   ``<sub>_from-T1w_to-MNI152NLin2009aSym_{affine.mat,warp,
                              inversewarp}``, ``<sub>_desc-mnicoords_field.nii.gz``,
                              ``<sub>_desc-t1coords_field.nii.gz``,
                              ``<sub>_space-MNI152NLin2009aSym_T1w.nii.gz``
:func:`write_segmentation`    ``<sub>_label-{GM,WM,CSF}_probseg.nii.gz`` (tissue fractions
                              of the T1w), ``<sub>_desc-brain_mask.nii.gz``
============================  ============================================================

Region TACs and MNI maps from these outputs: :mod:`pipeline.preprocess.native_steps`.
"""

from __future__ import annotations

import dataclasses
import logging
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline.errors import InputError, format_problem
from pipeline.preprocess.antsio import write_ants_matrix
from pipeline.preprocess.confounds import MotionDecision, MotionThresholds, write_motion_confounds
from pipeline.preprocess.coregister import (
    CoregisterSettings,
    coregister_pet_to_t1,
    refine_coregistration,
)
from pipeline.preprocess.fields import read_field, write_field
from pipeline.preprocess.motion import (
    MotionCorrectionSettings,
    estimate_motion,
    resample_frames,
    weighted_mean,
)
from pipeline.preprocess.normalize import (
    TEMPLATE_SPACE,
    Normalization,
    NormalizeSettings,
    normalize_t1,
)
from pipeline.preprocess.segment import SegmentSettings, segment_t1
from pipeline.preprocess.synthetic_pet import load_anatomy_basis
from pipeline.tables import atomic_path, provenance, read_json, write_json

__all__ = [
    "load_t1",
    "read_coregistration",
    "write_coregistration",
    "write_motion",
    "write_normalization",
    "write_segmentation",
    "write_volume",
]

log = logging.getLogger(__name__)
_DEFAULT_THRESHOLDS = MotionThresholds()


def write_volume(path: str | PathLike, data: np.ndarray, affine: np.ndarray, *,
                 xform_code: int = 1) -> Path:
    """Write a float32 NIfTI-1 image atomically; sform/qform code ``xform_code`` (1 =
    scanner or T1w space, 4 = MNI152)."""
    img = nib.Nifti1Image(np.asarray(data, np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=xform_code)
    img.set_qform(affine, code=xform_code)
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return Path(path)


def load_t1(path: str | PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A T1w image as float32 data and affine, with a clear error for unusable files."""
    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, np.float32)
    except (OSError, ValueError, EOFError) as err:
        raise InputError(format_problem(path, f"the T1w image cannot be read ({err})",
                                        "Give the subject's anat/sub-XX_T1w.nii.gz.")) from err
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3 or not np.isfinite(data).any() or np.nanmax(data) <= 0:
        raise InputError(format_problem(
            path, f"a T1w image must be a 3D volume with positive intensities; got shape "
            f"{data.shape}", "Give the subject's anatomical T1w image."))
    return np.nan_to_num(data), np.asarray(img.affine, float)


def write_motion(pet_path: str | PathLike, out_confounds: str | PathLike,
                 out_mean: str | PathLike,
                 settings: MotionCorrectionSettings | None = None,
                 thresholds: MotionThresholds | None = _DEFAULT_THRESHOLDS
                 ) -> MotionDecision | None:
    """Estimate a scan's head motion; write the confounds table and the corrected mean.

    Parameters
    ----------
    pet_path : path-like
        A BIDS-PET 4D image (its sidecar gives the frames).
    out_confounds : path-like
        ``<scan>_desc-confounds_timeseries.tsv``; the JSON sidecar holds the transforms.
    out_mean : path-like
        ``<scan>_desc-hmcmean_pet.nii.gz``: duration-weighted mean of the motion-corrected
        reference frames (Bq/mL), on the PET grid (the input to coregistration).
    settings : MotionCorrectionSettings
    thresholds : MotionThresholds or None
        None: no outlier decision in the confounds (the workflow decides where frames are
        used, :func:`pipeline.preprocess.confounds.frames_kept`).

    Returns
    -------
    MotionDecision or None
        Outlier frames and whether the scan is excluded, with reasons (also logged and in
        the sidecar); None without thresholds.
    """
    from pipeline.bids import load_pet

    settings = settings or MotionCorrectionSettings()
    pet = load_pet(pet_path)
    estimate = estimate_motion(pet.data, pet.affine, pet.frames, settings,
                               source=str(pet_path))
    late = estimate.reference_frames
    corrected = resample_frames(pet.data[..., late], pet.affine,
                                estimate.frame_from_reference[late])
    mean = weighted_mean(corrected, pet.frames.subset(np.asarray(late)), range(len(late)))
    write_volume(out_mean, mean, pet.affine)
    return write_motion_confounds(estimate, pet.frames, out_confounds, thresholds,
                                  source=pet_path, settings=dataclasses.asdict(settings))


def write_coregistration(mean_pet_path: str | PathLike, t1_path: str | PathLike,
                         out_json: str | PathLike,
                         settings: CoregisterSettings | None = None, *,
                         mnicoords_field: str | PathLike | None = None,
                         probseg_gm: str | PathLike | None = None,
                         probseg_wm: str | PathLike | None = None,
                         region_config: str | PathLike | None = None,
                         cache_dir: str | PathLike | None = None) -> np.ndarray:
    """Coregister a scan's motion-corrected mean to the T1w; write the rigid transform.

    Writes ``out_json`` (``pet_from_t1`` and ``t1_from_pet``, 4x4 RAS mm) and, beside it,
    the same transform as an ANTs/ITK file (``.mat``, fixed = T1w, for antsApplyTransforms).
    With the subject's normalization field and tissue fractions, the mutual-information
    result is refined against a synthetic PET of the subject's anatomy
    (:func:`pipeline.preprocess.coregister.refine_coregistration`); the sidecar records the
    model's PSF width, R^2 and how far the refinement moved the brain.

    Parameters
    ----------
    mean_pet_path : path-like
        The motion-corrected mean PET (:func:`write_motion`).
    t1_path : path-like
        The subject's T1w.
    out_json : path-like
        ``<scan>_from-pet_to-T1w_xfm.json``.
    settings : CoregisterSettings, default=None
        None = the defaults.
    mnicoords_field : path-like, default=None
        The subject's ``_desc-mnicoords_field.nii.gz``; with ``probseg_gm`` and
        ``probseg_wm``, turns on the refinement.
    probseg_gm, probseg_wm : path-like, default=None
        The subject's ``_label-GM_probseg`` / ``_label-WM_probseg`` (:func:`write_segmentation`).
    region_config : path-like, default=None
        Region config of the synthetic PET's regions (None = ``config/regions.yaml``).
    cache_dir : path-like, default=None
        MNI mask cache.

    Returns
    -------
    ndarray of shape (4, 4)
        ``pet_from_t1``.
    """
    settings = settings or CoregisterSettings()
    mean_img = nib.load(str(mean_pet_path))
    pet_mean = np.asarray(mean_img.dataobj, np.float32)
    t1, t1_affine = load_t1(t1_path)
    pet_from_t1 = coregister_pet_to_t1(pet_mean, mean_img.affine, t1, t1_affine, settings)
    sources, refinement = [str(mean_pet_path), str(t1_path)], None
    anatomy_files = (mnicoords_field, probseg_gm, probseg_wm)
    if any(f is not None for f in anatomy_files):
        if not all(f is not None for f in anatomy_files):
            raise ValueError("write_coregistration: the refinement needs mnicoords_field, "
                             "probseg_gm and probseg_wm together")
        anatomy = load_anatomy_basis(mnicoords_field, probseg_gm, probseg_wm, region_config,
                                     cache_dir=cache_dir)
        stage1 = pet_from_t1
        pet_from_t1, synthetic, used = refine_coregistration(pet_mean, mean_img.affine,
                                                             stage1, anatomy, settings)
        brain = np.argwhere(anatomy.maps.sum(axis=0) > 0.5)
        points = brain @ anatomy.affine[:3, :3].T + anatomy.affine[:3, 3]
        moved = (points @ (pet_from_t1 - stage1)[:3, :3].T + (pet_from_t1 - stage1)[:3, 3])
        refinement = {
            "Method": "rigid registration (Mattes mutual information) of the PET mean to a "
            "synthetic PET: the subject's grey matter in each region, other grey matter and "
            "white matter (T1w segmentation; regions through the normalization), a fitted "
            "activity each, blurred by a fitted Gaussian PSF",
            "Used": bool(used), "PsfFwhmMm": synthetic.fwhm_mm,
            "RSquared": round(synthetic.r_squared, 4),
            "BrainShiftFromStage1RmsMm": round(float(np.sqrt(np.mean(np.sum(
                moved ** 2, axis=1)))), 3)}
        sources += [str(f) for f in anatomy_files]
    out_json = Path(out_json)
    mat = out_json.with_name(out_json.name.removesuffix(".json") + ".mat")
    with atomic_path(mat) as tmp:
        write_ants_matrix(pet_from_t1, tmp)
    write_json(out_json, provenance(
        Description="Rigid PET -> T1w coregistration (ANTs) of the motion-corrected mean PET: "
        "Mattes mutual information with the T1w"
        + (", refined against a synthetic PET of the subject's anatomy (Refinement)"
           if refinement else "") + ". pet_from_t1 maps a T1w-world point (RAS mm) to the "
        "PET motion reference (scanner mm); t1_from_pet is its inverse.",
        Sources=sources, pet_from_t1=pet_from_t1.tolist(),
        t1_from_pet=np.linalg.inv(pet_from_t1).tolist(), AntsTransform=mat.name,
        Settings=dataclasses.asdict(settings), Refinement=refinement))
    return pet_from_t1


def read_coregistration(path: str | PathLike) -> np.ndarray:
    """``t1_from_pet`` (4x4) from a coregistration JSON."""
    meta = read_json(path)
    if "t1_from_pet" not in meta:
        raise InputError(format_problem(path, "no t1_from_pet transform in this file",
                                        "Give the _from-pet_to-T1w_xfm.json of the "
                                        "coregistration step."))
    return np.asarray(meta["t1_from_pet"], float)


def write_normalization(t1_path: str | PathLike, out_prefix: str | PathLike,
                        settings: NormalizeSettings | None = None) -> Normalization:
    """Register a subject's T1w to MNI152 (affine + SyN); write transforms, fields and QC.

    Parameters
    ----------
    t1_path : path-like
        The subject's T1w.
    out_prefix : path-like
        E.g. ``results/sub-01/anat/sub-01``; outputs are
        ``<prefix>_from-T1w_to-MNI152NLin2009aSym_{affine.mat,warp.nii.gz,
        inversewarp.nii.gz}``, ``<prefix>_desc-mnicoords_field.nii.gz`` (MNI mm on a 2 mm
        T1w-space grid), ``<prefix>_desc-t1coords_field.nii.gz`` (T1w mm on the MNI 2 mm
        grid) and ``<prefix>_space-MNI152NLin2009aSym_T1w.nii.gz``.
    settings : NormalizeSettings, default=None
        None = the defaults (registration and fields on the 2 mm template grid).

    Returns
    -------
    Normalization
    """
    settings = settings or NormalizeSettings()
    t1, t1_affine = load_t1(t1_path)
    prefix = f"{out_prefix}_from-T1w_to-{TEMPLATE_SPACE}"
    result = normalize_t1(t1, t1_affine, prefix, settings)
    write_field(result.mni_from_t1, f"{out_prefix}_desc-mnicoords_field.nii.gz",
                space_from="T1w", space_to="MNI")
    write_field(result.t1_from_mni, f"{out_prefix}_desc-t1coords_field.nii.gz",
                space_from="MNI", space_to="T1w")
    write_volume(f"{out_prefix}_space-{TEMPLATE_SPACE}_T1w.nii.gz", result.t1_in_mni,
                 result.mni_affine, xform_code=4)
    write_json(f"{out_prefix}_from-T1w_to-{TEMPLATE_SPACE}_xfm.json", provenance(
        Description="T1w -> MNI152 registration (ANTs affine then SyN, Mattes mutual "
        "information) to nilearn's MNI152 2009a symmetric template. ANTs files: fixed = "
        "MNI; apply [warp, affine] to bring T1w-space images to MNI.",
        Sources=[str(t1_path)], Template=TEMPLATE_SPACE,
        Files={k: Path(v).name for k, v in result.transforms.items()},
        Settings=dataclasses.asdict(settings)))
    return result


#: Tissue-fraction files of :func:`write_segmentation`, by class.
PROBSEG = {"gm": "label-GM_probseg.nii.gz", "wm": "label-WM_probseg.nii.gz",
           "csf": "label-CSF_probseg.nii.gz"}


def write_segmentation(t1_path: str | PathLike, mnicoords_field: str | PathLike,
                       out_prefix: str | PathLike,
                       settings: SegmentSettings | None = None) -> dict[str, Path]:
    """Tissue fractions of a subject's T1w (grey matter, white matter, CSF) and its brain mask.

    Parameters
    ----------
    t1_path : path-like
    mnicoords_field : path-like
        The subject's ``_desc-mnicoords_field.nii.gz`` (from :func:`write_normalization`).
    out_prefix : path-like
        Outputs are ``<prefix>_label-{GM,WM,CSF}_probseg.nii.gz`` (fractions 0-1 of each
        T1w voxel, with a JSON sidecar) and ``<prefix>_desc-brain_mask.nii.gz``.
    settings : SegmentSettings

    Returns
    -------
    dict of str to Path
        ``gm``, ``wm``, ``csf``, ``brain``.
    """
    settings = settings or SegmentSettings()
    t1, t1_affine = load_t1(t1_path)
    tissue = segment_t1(t1, t1_affine, read_field(mnicoords_field), settings,
                        source=str(t1_path))
    files = {kind: Path(f"{out_prefix}_{name}") for kind, name in PROBSEG.items()}
    files["brain"] = Path(f"{out_prefix}_desc-brain_mask.nii.gz")
    write_volume(files["brain"], tissue.brain.astype(np.float32), t1_affine)
    for kind in PROBSEG:
        write_volume(files[kind], getattr(tissue, kind), t1_affine)
        write_json(str(files[kind]).removesuffix(".nii.gz") + ".json", provenance(
            Description=f"Fraction of each T1w voxel that is {kind.upper()} (0-1): "
            "N4-corrected T1w intensity unmixed between the two adjacent tissue classes "
            "(CSF-GM, GM-WM) of a partial-volume mixture model, inside the MNI152 brain "
            "mask pulled into T1w space.", Sources=[str(t1_path), str(mnicoords_field)],
            ClassMeans=tissue.class_means, Settings=dataclasses.asdict(settings)))
    return files
