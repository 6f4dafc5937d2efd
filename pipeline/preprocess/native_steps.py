"""Steps after registration: native-space region TACs and MNI-space images (no ANTs).

- :func:`write_native_region_tacs`: the TAC table of a scanner-space scan, atlas regions
  pulled into each frame (the same table and sidecar as :func:`pipeline.regions.
  write_region_tacs`, so fitting and everything after it is unchanged);
- :func:`write_volume_to_mni`: a native map (e.g. BP_ND) on the MNI grid;
- :func:`write_frames_to_mni`: the whole scan on the MNI grid (motion corrected, one
  interpolation), for voxelwise analysis in MNI.
"""

from __future__ import annotations

import dataclasses
from os import PathLike
from pathlib import Path

import nibabel as nib
import numpy as np

from pipeline.errors import InputError, format_problem
from pipeline.preprocess.confounds import MotionThresholds, frames_kept, read_motion
from pipeline.preprocess.fields import read_field
from pipeline.preprocess.native_regions import extract_native_tacs
from pipeline.preprocess.steps import read_coregistration
from pipeline.preprocess.tissue_regions import (
    GreyMatter,
    TissueMap,
    split_grey_matter_restriction,
)
from pipeline.preprocess.warp import warp_frames_to_mni, warp_volume_to_mni
from pipeline.regions.extract import region_records

__all__ = ["mni_region_masks", "subject_grey_matter", "write_frames_to_mni",
           "write_native_region_tacs", "write_volume_to_mni"]


def mni_region_masks(region_config: str | PathLike | None, *, resolution: int = 2,
                     cache_dir: str | PathLike | None = None,
                     without_grey_matter: bool = False):
    """The region set built on the MNI grid of ``resolution`` mm (RegionMasks).

    Parameters
    ----------
    region_config : path-like or None
        Region config (None = ``config/regions.yaml``).
    resolution : int, default=2
        MNI grid spacing, mm.
    cache_dir : path-like, default=None
        Mask cache.
    without_grey_matter : bool, default=False
        Leave the regions' grey-matter restrictions out and return them too:
        ``(masks, {region: threshold})``
        (:func:`~pipeline.preprocess.tissue_regions.split_grey_matter_restriction`).
    """
    from pipeline.regions import build_masks, load_region_config
    from pipeline.space import mni_grid

    shape, affine = mni_grid(resolution)
    region_set = load_region_config(region_config)
    if not without_grey_matter:
        return build_masks(region_set, shape, affine, cache_dir=cache_dir)
    unrestricted, thresholds = split_grey_matter_restriction(region_set)
    return build_masks(unrestricted, shape, affine, cache_dir=cache_dir), thresholds


def subject_grey_matter(probseg_gm: str | PathLike, thresholds: dict[str, float],
                        pet_affine: np.ndarray) -> GreyMatter | None:
    """The subject's grey matter (a ``_label-GM_probseg`` image) for a PET grid, or None
    when no region is restricted to grey matter.

    Parameters
    ----------
    probseg_gm : path-like
        Grey-matter fractions (0-1) on the T1w grid.
    thresholds : dict of str to float
        Region name -> grey-matter fraction threshold (0-1).
    pet_affine : ndarray of shape (4, 4)
        PET voxel -> mm (its voxel size is the averaging volume).
    """
    if not thresholds:
        return None
    img = nib.load(str(probseg_gm))
    voxel = np.linalg.norm(np.asarray(pet_affine, float)[:3, :3], axis=0)
    return GreyMatter(fraction=TissueMap(np.asarray(img.dataobj, np.float32), img.affine,
                                         voxel), thresholds=thresholds)


def write_native_region_tacs(pet_path: str | PathLike, confounds_tsv: str | PathLike,
                             coregistration_json: str | PathLike,
                             mnicoords_field: str | PathLike,
                             region_config: str | PathLike | None, out_tsv: str | PathLike,
                             *, probseg_gm: str | PathLike | None = None,
                             thresholds: MotionThresholds | None = None,
                             cache_dir: str | PathLike | None = None) -> Path:
    """Regional TACs of a scanner-space scan with atlas regions brought into each frame.

    Parameters
    ----------
    pet_path : path-like
        The raw 4D PET (scanner space).
    confounds_tsv : path-like
        Its motion confounds (the sidecar holds ``FrameFromReference``).
    coregistration_json : path-like
        Its PET -> T1w transform.
    mnicoords_field : path-like
        The subject's ``_desc-mnicoords_field.nii.gz``.
    region_config : path-like or None
        Region config (None = ``config/regions.yaml``).
    out_tsv : path-like
        TAC table (``frame_start``, ``frame_end`` in s, regions in Bq/mL) + JSON.
    probseg_gm : path-like, default=None
        The subject's grey-matter fractions (``_label-GM_probseg.nii.gz``): regions with a
        grey-matter restriction are then restricted to the subject's grey matter
        (:mod:`pipeline.preprocess.tissue_regions`); None keeps the MNI template's.
    thresholds : MotionThresholds, default=None
        Frames that are motion outliers under these thresholds are left out of the table
        (:func:`~pipeline.preprocess.confounds.frames_kept`); None keeps every frame.
    cache_dir : path-like, default=None
        MNI mask cache.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        If the thresholds exclude the scan, or a region leaves the field of view.
    """
    import pandas as pd

    from pipeline.bids import load_pet
    from pipeline.tables import TacTable, provenance, write_tacs

    keep, decision = (None, None) if thresholds is None else frames_kept(
        confounds_tsv, thresholds, scan=Path(str(pet_path)).name)
    pet = load_pet(pet_path)
    _, frame_from_reference, _ = read_motion(confounds_tsv)
    if keep is None:
        keep = np.ones(pet.frames.n_frames, bool)
    if len(keep) != pet.frames.n_frames:
        raise InputError(format_problem(
            confounds_tsv, f"{len(keep)} frames, but {pet_path} has {pet.frames.n_frames}",
            "Give the confounds of this scan's motion correction (rerun it)."))
    data = pet.data if keep.all() else np.asarray(pet.data)[..., keep]
    t1_from_pet = read_coregistration(coregistration_json)
    grey_matter = None
    if probseg_gm is None:
        masks = mni_region_masks(region_config, cache_dir=cache_dir)
    else:
        masks, gm_thresholds = mni_region_masks(region_config, cache_dir=cache_dir,
                                                without_grey_matter=True)
        grey_matter = subject_grey_matter(probseg_gm, gm_thresholds, pet.affine)
    tacs, native = extract_native_tacs(data, masks, read_field(mnicoords_field),
                                       t1_from_pet, pet.affine,
                                       np.linalg.inv(frame_from_reference[keep]),
                                       source=str(pet_path), grey_matter=grey_matter)
    del data
    regions = region_records(native, tacs)
    sidecar = provenance(
        Description="Regional time-activity curves of a scanner-space scan: weighted mean "
        "activity of each region in each frame (Bq/mL, decay-corrected); atlas regions "
        "brought into each frame's native grid through the inverse normalization, "
        "coregistration and motion transforms (frames not interpolated); frame_start/"
        "frame_end in seconds.",
        Sources=[str(pet_path), str(confounds_tsv), str(coregistration_json),
                 str(mnicoords_field), *([str(probseg_gm)] if probseg_gm else [])],
        GreyMatterRestriction=(
            {name: {"threshold": t, "source": "subject T1w grey-matter fraction averaged "
                    "over each PET voxel"} for name, t in grey_matter.thresholds.items()}
            if grey_matter else "MNI152 grey-matter template (in MNI space)"),
        RegionSet=masks.region_set, ReferenceRegion=masks.reference,
        VoxelVolumeML=native.voxel_volume_ml, Regions=regions, RegionConfig=masks.provenance,
        Space="native (scanner) PET grid", **_motion_record(keep, decision, thresholds),
        Notes=list(pet.notes))
    table = pd.DataFrame(np.asarray(tacs), columns=masks.names)
    return write_tacs(out_tsv, TacTable(pet.frames.subset(keep), table), sidecar)


def _motion_record(keep: np.ndarray, decision, thresholds) -> dict:
    """Sidecar fields saying which frames were left out for motion, and why."""
    return {"MotionThresholds": None if thresholds is None else dataclasses.asdict(thresholds),
            "FramesExcluded": [int(k) for k in np.flatnonzero(~keep)],
            "FramesExcludedDescription": "0-based frame numbers of the raw scan left out as "
            "motion outliers (framewise displacement above the threshold); the table has "
            "the other frames, and the fits interpolate across the gaps",
            "MotionReasons": [] if decision is None else list(decision.reasons)}


def write_volume_to_mni(volume_path: str | PathLike, coregistration_json: str | PathLike,
                        t1coords_field: str | PathLike, out_path: str | PathLike) -> Path:
    """Resample a 3D native-space image (e.g. a BP_ND map) onto the MNI analysis grid."""
    from pipeline.preprocess.steps import write_volume

    img = nib.load(str(volume_path))
    field = read_field(t1coords_field)
    pet_from_t1 = np.linalg.inv(read_coregistration(coregistration_json))
    warped = warp_volume_to_mni(np.asarray(img.dataobj, np.float32), img.affine, pet_from_t1,
                                field)
    return write_volume(out_path, warped, field.affine, xform_code=4)


def write_frames_to_mni(pet_path: str | PathLike, confounds_tsv: str | PathLike,
                        coregistration_json: str | PathLike, t1coords_field: str | PathLike,
                        out_path: str | PathLike, *,
                        thresholds: MotionThresholds | None = None) -> Path:
    """Write a scanner-space scan on the MNI grid, for voxelwise analysis.

    Each frame is resampled once, through the chain motion -> coregistration -> warp
    (:func:`pipeline.preprocess.warp.warp_frames_to_mni`), so the maps and the group
    statistics of MNI-space scans apply unchanged. Voxels outside the PET field of view
    are 0 (they fall outside the analysis mask's brain or are flagged by the fits).

    Parameters
    ----------
    pet_path : path-like or Scan
        The raw scan (a :class:`pipeline.bids.Scan` carries its sidecar's facts).
    confounds_tsv : path-like
        Its confounds from motion correction.
    coregistration_json : path-like
        Its PET -> T1w transform.
    t1coords_field : path-like
        The subject's ``_desc-t1coords_field.nii.gz`` (T1w mm on the MNI grid).
    out_path : path-like
        ``..._space-MNI152NLin2009aSym_desc-preproc_pet.nii.gz`` (4D, Bq/mL, decay-corrected
        to injection). A JSON sidecar of the same stem gives the frames kept (seconds, the
        raw sidecar's times), ``Units`` Bq/mL and the frames left out for motion.
    thresholds : MotionThresholds, default=None
        Frames that are motion outliers under these are left out (as in the TAC table,
        :func:`write_native_region_tacs`); None keeps every frame.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        If the thresholds exclude the scan.
    """
    from pipeline.bids import load_pet
    from pipeline.preprocess.steps import write_volume
    from pipeline.tables import provenance, write_json

    keep, decision = (None, None) if thresholds is None else frames_kept(
        confounds_tsv, thresholds, scan=Path(str(pet_path)).name)
    pet = load_pet(pet_path)
    if keep is None:
        keep = np.ones(pet.frames.n_frames, bool)
    _, frame_from_reference, _ = read_motion(confounds_tsv)
    field = read_field(t1coords_field)
    pet_from_t1 = np.linalg.inv(read_coregistration(coregistration_json))
    warped = warp_frames_to_mni(np.asarray(pet.data)[..., keep], pet.affine, pet_from_t1, field,
                                frame_from_reference[keep])
    np.nan_to_num(warped, copy=False)
    raw = dict(pet.scan.sidecar)
    sidecar = {k: v for k, v in raw.items() if k not in ("Units", "ImageDecayCorrected",
                                                         "ImageDecayCorrectionTime")}
    sidecar.update(provenance(
        Description="The scan motion corrected and resampled once onto the MNI152 grid "
        "(motion, PET-T1w coregistration and T1w-MNI warp composed); 0 outside the field "
        "of view.", Sources=[str(pet_path), str(confounds_tsv), str(coregistration_json),
                             str(t1coords_field)]))
    sidecar.update(
        FrameTimesStart=[v for v, k in zip(raw["FrameTimesStart"], keep, strict=True) if k],
        FrameDuration=[v for v, k in zip(raw["FrameDuration"], keep, strict=True) if k],
        Units="Bq/mL", ImageDecayCorrected=True,
        ImageDecayCorrectionTime=raw.get("InjectionStart") or 0,
        SpatialReference="MNI152NLin2009aSym", **_motion_record(keep, decision, thresholds),
        LoadNotes=list(pet.notes))
    out_path = Path(out_path)
    stem = out_path.name.removesuffix(".gz").removesuffix(".nii")
    write_json(out_path.with_name(stem + ".json"), sidecar)
    return write_volume(out_path, warped, field.affine, xform_code=4)
