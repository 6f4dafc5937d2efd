"""Helpers of the voxelwise group maps: region masks, nilearn second-level model with
permutation FWE, labelled cluster tables, and atomic NIfTI writes with sidecars."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.tables import provenance, write_json, write_table

__all__ = ["label_clusters", "region_masks", "region_members", "save_map", "second_level",
           "write_skipped"]


def region_masks(region_config: str | PathLike | None, shape, affine):
    from pipeline.regions import build_masks, load_region_config

    return build_masks(load_region_config(region_config), tuple(shape[:3]), affine)


def region_members(masks: Any) -> dict[str, np.ndarray]:
    """Flat (C-order) voxel indices of each region: where its weight is the largest and
    above 0.5.

    Parameters
    ----------
    masks : RegionMasks
        From :func:`region_masks`.
    """
    weights = masks.weights.reshape(len(masks.names), -1)
    best = np.argmax(weights, axis=0)
    inside = np.max(weights, axis=0) > 0.5
    return {name: np.flatnonzero(inside & (best == i)) for i, name in enumerate(masks.names)}


def label_clusters(stat_img: Any, *, height: float, cluster_size: int,
                   region_config: str | PathLike | None = None,
                   fwe_img: Any | None = None) -> pd.DataFrame:
    """Cluster table (nilearn ``get_clusters_table``) with each peak's region and FWE p."""
    import warnings

    from nilearn.reporting import get_clusters_table

    with warnings.catch_warnings():  # no cluster above threshold is a result, not a problem
        warnings.filterwarnings("ignore", message="No clusters found")
        table = get_clusters_table(stat_img, stat_threshold=height,
                                   cluster_threshold=cluster_size, two_sided=True)
    table = table.rename(columns={"Cluster ID": "cluster_id", "X": "x", "Y": "y", "Z": "z",
                                  "Peak Stat": "peak_t", "Cluster Size (mm3)": "size_mm3"})
    table["region"] = pd.Series(dtype=object)
    table["p_fwe_peak"] = np.nan
    if table.empty:
        return table
    inv = np.linalg.inv(stat_img.affine)
    ijk = np.rint(np.column_stack([table[["x", "y", "z"]].to_numpy(float),
                                   np.ones(len(table))]) @ inv.T)[:, :3].astype(int)
    masks = region_masks(region_config, stat_img.shape, stat_img.affine)
    names = []
    for i, j, k in ijk:
        w = masks.weights[:, i, j, k]
        names.append(masks.names[int(np.argmax(w))] if w.max() > 0 else "outside regions")
    table["region"] = names
    if fwe_img is not None:
        fwe = np.asarray(fwe_img.dataobj, float)
        table["p_fwe_peak"] = [10 ** -fwe[i, j, k] for i, j, k in ijk]
    return table


def second_level(effects: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                 design_matrix: pd.DataFrame, contrast: str, n_perm: int, seed: int,
                 smoothing: float):
    """t map and -log10 FWE p map (sign-flip / permutation, two-sided) of one contrast."""
    import nibabel as nib
    from nilearn.glm.second_level import SecondLevelModel, non_parametric_inference

    imgs = [nib.Nifti1Image(np.nan_to_num(effects[..., k]).astype(np.float32), affine)
            for k in range(effects.shape[-1])]
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), affine)
    model = SecondLevelModel(mask_img=mask_img, smoothing_fwhm=smoothing or None,
                             minimize_memory=False)
    model.fit(imgs, design_matrix=design_matrix)
    tmap = model.compute_contrast(contrast, output_type="stat")
    fwe = None
    if n_perm > 0:
        fwe = non_parametric_inference(imgs, design_matrix=design_matrix,
                                       second_level_contrast=contrast, mask=mask_img,
                                       smoothing_fwhm=smoothing or None, n_perm=n_perm,
                                       two_sided_test=True, random_state=seed, n_jobs=1)
    return tmap, fwe, mask_img


def write_skipped(outputs: Mapping[str, str | PathLike], shape: tuple, affine: np.ndarray,
                  reason: str) -> dict[str, Path]:
    """Zero maps and an empty cluster table whose sidecars say why nothing was computed."""
    import nibabel as nib

    note = provenance(Description="not computed", skipped=reason)
    for key, path in outputs.items():
        if key == "clusters":
            write_table(path, pd.DataFrame(columns=["cluster_id", "x", "y", "z", "peak_t",
                                                    "size_mm3", "region", "p_fwe_peak"]), note)
        else:
            vol = shape if key != "effects" else (*shape, 1)
            save_map(nib.Nifti1Image(np.zeros(vol, np.float32), affine), path,
                     {**note, "participants": []})
    return {k: Path(v) for k, v in outputs.items()}


def save_map(img: Any, path: str | PathLike, sidecar: Mapping[str, Any]) -> None:
    import nibabel as nib

    from pipeline.tables import atomic_path, sidecar_path

    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    write_json(sidecar_path(path), sidecar)
