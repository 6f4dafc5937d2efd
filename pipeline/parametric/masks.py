"""Masks of the parametric maps: brain and reference masks on the PET grid, the reference TAC,
and the workflow's analysis mask (target regions or the MNI brain).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.errors import InputError, format_problem

__all__ = ["analysis_mask", "default_mask", "load_mask", "reference_tac", "write_analysis_mask"]


def load_mask(path: str | os.PathLike, shape: Sequence[int], affine: np.ndarray,
              what: str) -> np.ndarray:
    """A 3D mask (values > 0.5) that must lie on the PET grid (same shape and affine).

    Parameters
    ----------
    path : str or path-like
        A 3D NIfTI mask.
    shape : sequence of int
        The PET image's shape (its first three dimensions are compared).
    affine : ndarray of shape (4, 4)
        The PET image's voxel -> mm transform.
    what : str
        What the mask is (``"reference mask"``), named in errors.

    Raises
    ------
    InputError
        Naming the file, if it is missing, unreadable or on another grid.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise InputError(format_problem(path, f"{what} not found", "Check the path."))
    try:
        img = nib.load(str(path))
        values = np.asarray(img.dataobj)
    except Exception as err:  # nibabel raises many types for unreadable files
        raise InputError(format_problem(
            path, f"{what} cannot be read as NIfTI ({type(err).__name__}: {err})",
            "Give a 3D NIfTI mask on the PET grid.")) from err
    values = np.squeeze(values)
    if values.shape != tuple(shape):
        raise InputError(format_problem(
            path, f"{what} has shape {values.shape} but the PET volumes have {tuple(shape)}",
            "Resample the mask to the PET grid (same dimensions and affine)."))
    if not np.allclose(img.affine, affine, atol=1e-3):
        raise InputError(format_problem(
            path, f"{what} is not on the PET grid (its affine differs from the image's)",
            "Resample the mask to the PET image."))
    return np.nan_to_num(values.astype(float)) > 0.5


def reference_tac(data: np.ndarray, ref_mask: np.ndarray,
                  where: str | os.PathLike | None = None) -> np.ndarray:
    """Mean TAC (Bq/mL) of the voxels in ``ref_mask``, with clear errors for unusable masks.

    Parameters
    ----------
    data : ndarray of shape (x, y, z, n_frames)
        The image, Bq/mL.
    ref_mask : ndarray of bool, shape (x, y, z)
        The reference region's voxels.
    where : str or path-like, default=None
        The mask file, named in errors.

    Raises
    ------
    InputError
        If the mask is empty, or the image is zero/NaN in every reference voxel (the
        region lies outside the field of view).
    """
    n = int(ref_mask.sum())
    if n == 0:
        raise InputError(format_problem(
            where, "the reference mask is empty (no voxel above 0.5)",
            "Give a reference region mask with at least one voxel on the PET grid."))
    values = data[ref_mask]
    finite = np.all(np.isfinite(values), axis=1) & np.any(values != 0, axis=1)
    if not finite.any():
        raise InputError(format_problem(
            where, f"all {n} reference voxels are zero or NaN in the image: the region lies "
            "outside the field of view", "Check the reference mask's space and the image."))
    return values[finite].astype(np.float64).mean(axis=0)


def default_mask(data: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Voxels with finite data and mean activity above 5 % of the 98th percentile.

    Parameters
    ----------
    data : ndarray of shape (x, y, z, n_frames)
        Activity, Bq/mL.
    durations : ndarray of shape (n_frames,)
        Frame durations (any unit): the mean is duration-weighted.
    """
    weights = np.asarray(durations, float) / np.sum(durations)
    mean = np.zeros(data.shape[:3], dtype=np.float32)
    for f, weight in enumerate(weights):  # frame by frame: no copy of the 4D image
        mean += np.float32(weight) * data[..., f]  # NaN/Inf in any frame: not finite
    finite = np.isfinite(mean)
    level = np.percentile(mean[finite], 98) if finite.any() else 0.0
    with np.errstate(invalid="ignore"):
        return finite & (mean > 0.05 * level)


def analysis_mask(region_config: str | os.PathLike | None, shape: Sequence[int],
                  affine: np.ndarray, mode: str = "regions") -> np.ndarray:
    """Voxels analysed on a grid: target regions (``regions``) or the MNI brain (``brain``).

    Parameters
    ----------
    region_config : str, path-like or None
        The region config (``regions`` mode); None uses the shipped default.
    shape : sequence of int
        The grid's shape (the first three dimensions are used).
    affine : ndarray of shape (4, 4)
        The grid's voxel -> mm transform.
    mode : {"regions", "brain"}, default="regions"
        Target regions of the region config, or the MNI152 brain mask.

    Returns
    -------
    ndarray of bool, shape ``shape[:3]``
    """
    if mode == "brain":
        import nibabel as nib
        from nilearn.datasets import load_mni152_brain_mask
        from nilearn.image import resample_img

        target = nib.Nifti1Image(np.zeros(tuple(shape[:3]), np.int8), affine)
        brain = resample_img(load_mni152_brain_mask(resolution=2), target_affine=affine,
                             target_shape=tuple(shape[:3]), interpolation="nearest",
                             force_resample=True, copy_header=True)
        del target
        return np.asarray(brain.dataobj) > 0
    from pipeline.regions import build_masks, load_region_config

    masks = build_masks(load_region_config(region_config), tuple(shape[:3]), affine)
    targets = [i for i, n in enumerate(masks.names) if n != masks.reference]
    return np.any(masks.weights[targets] > 0.5, axis=0)


def write_analysis_mask(pet_path: str | os.PathLike, out_path: str | os.PathLike, *,
                        region_config: str | os.PathLike | None = None,
                        mode: str = "regions") -> Path:
    """Write the analysis mask of a PET image's grid (uint8 NIfTI, 1 = analysed).

    Part of the workflow's ``parametric_maps`` step; the sidecar records the mode and voxel
    count.

    Parameters
    ----------
    pet_path : str or path-like
        A PET image (its header gives the grid).
    out_path : str or path-like
        The ``.nii.gz`` mask to write (with its JSON sidecar).
    region_config : str or path-like, default=None
        The region config; None uses the shipped default.
    mode : {"regions", "brain"}, default="regions"
        As in :func:`analysis_mask` (``voxelwise.mask``).

    Raises
    ------
    InputError
        If the mask has no voxel on the image's grid.
    """
    import nibabel as nib

    from pipeline.tables import atomic_path, provenance, sidecar_path, write_json

    header = nib.load(str(pet_path))
    voxels = analysis_mask(region_config, header.shape, header.affine, mode)
    if not voxels.any():
        raise InputError(format_problem(
            pet_path, f"the analysis mask ({mode}) has no voxel on this image's grid",
            "Check that the image is in MNI space and the region config is right."))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_path) as tmp:
        nib.save(nib.Nifti1Image(voxels.astype(np.uint8), header.affine), str(tmp))
    write_json(sidecar_path(out_path), provenance(
        Description=f"Analysis mask ({mode})", n_voxels=int(voxels.sum()),
        region_config=str(region_config), inputs=[str(pet_path)]))
    return out_path
