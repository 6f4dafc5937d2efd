"""The systematic part of the within-scan drift in voxelwise maps.

A drift-corrected within-scan effect carries the release model's systematic uncertainty
(``drift_sys_sd`` of ``group/null_drift.tsv``, % points), shared by every participant of a
region. The voxelwise test draws it once per region and permutation
(:func:`pipeline.stats.signflip.sign_flip_test`), as the region-wise test adds it to the
variance of the mean.
"""

from __future__ import annotations

from os import PathLike

import numpy as np
import pandas as pd

from pipeline.design import Design
from pipeline.stats._group_maps import region_masks

__all__ = ["systematic_sd_map", "systematic_sign_flip"]


def systematic_sd_map(drift: pd.DataFrame | None, design: Design, contrast: str, model: str,
                      region_config: str | PathLike | None, shape: tuple[int, ...],
                      affine: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per voxel, the systematic drift SD of its region and the region's index.

    Parameters
    ----------
    drift : DataFrame or None
        ``group/null_drift.tsv`` (``contrast``, ``region``, ``model``, ``drift_method``,
        ``drift_sys_sd`` in % points).
    design : Design
        The study design.
    contrast : str
        The contrast mapped.
    model : str
        The voxelwise model.
    region_config : str or path-like or None
        The region config whose regions label the voxels.
    shape : tuple of int
        The map's grid shape (3D).
    affine : ndarray
        The map's voxel-to-mm affine (4 x 4).

    Returns
    -------
    tuple of ndarray or None
        ``(sd, label)``: % points per voxel and the region index (-1 outside the named
        regions, which get the largest SD and one shared draw); None when the contrast's
        test has no systematic part (not a drift-corrected within-scan contrast).
    """
    spec = design.contrasts[contrast]
    if drift is None or spec.control is not None or not design.within_scan(contrast) \
            or "drift_sys_sd" not in drift:
        return None
    rows = drift[(drift["contrast"] == contrast) & (drift["model"] == model)
                 & (drift.get("drift_method", "release_model") == "release_model")]
    sds = rows.set_index("region")["drift_sys_sd"].astype(float).dropna()
    if sds.empty or not (sds > 0).any():
        return None
    masks = region_masks(region_config, shape, affine)
    best = np.argmax(masks.weights, axis=0)
    inside = np.max(masks.weights, axis=0) > 0.5
    sd = np.full(shape, float(sds.max()))
    label = np.full(shape, -1)
    for i, name in enumerate(masks.names):
        sel = inside & (best == i)
        label[sel] = i
        if name in sds.index:
            sd[sel] = float(sds[name])
    return sd, label


def systematic_sign_flip(effects: np.ndarray, keep: np.ndarray, affine: np.ndarray,
                         sys: tuple[np.ndarray, np.ndarray], n_perm: int, seed: int,
                         smoothing: float):
    """t and -log10 FWE p images of a sign-flip test with per-region systematic draws.

    Parameters
    ----------
    effects : ndarray
        Per-participant effect maps, % change (x, y, z, participant).
    keep : ndarray of bool
        The analysis mask (x, y, z).
    affine : ndarray
        Voxel-to-mm affine (4 x 4).
    sys : tuple of ndarray
        ``(sd, label)`` of :func:`systematic_sd_map`.
    n_perm : int
        Sign flips (0: t map only).
    seed : int
        Random seed.
    smoothing : float
        Gaussian FWHM (mm) applied to the effects first; 0 for none.

    Returns
    -------
    tmap : Nifti1Image
        One-sample t of the effect.
    fwe : Nifti1Image or None
        -log10 FWE-corrected p (max-t over voxels); None with ``n_perm`` 0.
    """
    import nibabel as nib

    from pipeline.stats.signflip import sign_flip_test

    data = np.nan_to_num(effects)
    if smoothing:
        from nilearn.image import smooth_img

        data = np.asarray(smooth_img(nib.Nifti1Image(data, affine), smoothing).dataobj)
    values = data[keep].T  # participants x voxels
    sd, label = sys
    t, p = sign_flip_test(values, sys_sd=sd[keep], groups=label[keep],
                          n_perm=max(int(n_perm), 1), seed=seed)
    tmap = np.zeros(keep.shape, np.float32)
    tmap[keep] = t
    fwe = None
    if n_perm > 0:
        fwe = np.zeros(keep.shape, np.float32)
        fwe[keep] = -np.log10(np.maximum(p, 1.0 / (n_perm + 1)))
        fwe = nib.Nifti1Image(fwe, affine)
    return nib.Nifti1Image(tmap, affine), fwe
