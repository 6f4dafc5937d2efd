"""Partial-volume mixing of a study's regions, for the null-drift simulation.

A region TAC measured on blurred images is a mixture of the activity of every tissue class
near it. This module estimates the mixing weights from the region masks on the PET grid, the
MNI152 grey- and white-matter templates shipped with nilearn (each voxel split into region
tissue, "cortex" = grey matter outside the regions, and "white_matter"; cortical regions
hold only their grey matter, as in the simulator's phantom) and an isotropic Gaussian
point-spread function: weight[r, c] = mean over region r's voxels of the PSF-blurred
fraction of class c. The result is the ``pv_mixing`` table of
:func:`pipeline.simulate.simulate_region_tacs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import numpy as np
import pandas as pd

__all__ = ["pv_mixing_from_masks"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _template_on_grid(kind: str, shape: Sequence[int], affine: np.ndarray) -> np.ndarray:
    from nilearn.datasets import load_mni152_gm_template, load_mni152_wm_template
    from nilearn.image import resample_img

    template = (load_mni152_gm_template if kind == "gm" else load_mni152_wm_template)(
        resolution=2)
    img = resample_img(template, target_affine=affine, target_shape=tuple(shape[:3]),
                       interpolation="continuous", force_resample=True, copy_header=True)
    return np.clip(np.nan_to_num(np.asarray(img.dataobj, float)), 0.0, 1.0)


def pv_mixing_from_masks(region_config: str | PathLike | None, shape: Sequence[int],
                         affine: np.ndarray, psf_fwhm: float) -> pd.DataFrame | None:
    """Mixing weights (regions x tissue classes) after blurring by a Gaussian PSF.

    Parameters
    ----------
    region_config : path-like or None
        Region config (None = config/regions.yaml).
    shape, affine : grid of the PET images (MNI space)
    psf_fwhm : float
        Isotropic PSF FWHM, mm (reconstructed resolution plus any smoothing); 0 = no mixing.

    Returns
    -------
    DataFrame or None
        Index: region names (reference included); columns: region names, ``cortex``,
        ``white_matter``. None when ``psf_fwhm`` is 0.
    """
    if not psf_fwhm:
        return None
    from scipy.ndimage import gaussian_filter

    from pipeline.regions import build_masks, load_region_config
    from pipeline.simulate.phantom import CORTICAL_REGIONS, tissue_fractions

    region_set = load_region_config(region_config)
    masks = build_masks(region_set, tuple(shape[:3]), affine)
    weights = np.asarray(masks.weights, float)
    gm, wm = tissue_fractions(_template_on_grid("gm", shape, affine),
                              _template_on_grid("wm", shape, affine))
    # Cortical regions (and any region restricted to grey matter) hold only their grey
    # matter; the white matter in their voxels stays white matter, as in the simulator.
    cortical = set(CORTICAL_REGIONS) | {
        name for name, spec in region_set.regions.items()
        if getattr(spec, "grey_matter", None)}
    claimed = np.zeros(weights.shape[1:])
    wm_left = wm.copy()
    classes = {}
    for i, name in enumerate(masks.names):
        w = np.minimum(weights[i], 1.0 - claimed)
        if name in cortical:
            classes[name] = w * gm
        else:
            classes[name] = w * (gm + wm)
            wm_left -= w * wm
        claimed += w
    classes["cortex"] = (1.0 - claimed) * gm
    classes["white_matter"] = np.clip(wm_left, 0.0, None)
    voxel = np.sqrt((np.asarray(affine, float)[:3, :3] ** 2).sum(axis=0))
    sigma = psf_fwhm * _FWHM_TO_SIGMA / voxel
    blurred = {c: gaussian_filter(f, sigma, mode="constant") for c, f in classes.items()}
    rows = {}
    for i, name in enumerate(masks.names):
        w = weights[i]
        rows[name] = {c: float((w * b).sum() / w.sum()) for c, b in blurred.items()}
    return pd.DataFrame.from_dict(rows, orient="index")[list(classes)]
