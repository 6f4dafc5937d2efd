"""Region QC figure: the regions over the MNI template and over a scan's mean image."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import InputError, format_problem
from pipeline.regions.masks import RegionMasks, label_image

__all__ = ["AXIAL_CUTS_MM", "mean_image", "plot_region_qc", "write_region_qc"]

#: Axial levels (MNI z, mm) shown: amygdala/PAG, accumbens, striatum/thalamus/insula, ACC,
#: occipital cortex.
AXIAL_CUTS_MM = (-18, -10, -2, 6, 14, 26, 36)


def mean_image(pet: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """A 3D background from a PetImage (duration-weighted mean), NIfTI path/image or array.

    Parameters
    ----------
    pet : PetImage, path-like, nibabel image or ndarray
        The image; a 4D array or image is averaged over frames (durations weigh a PetImage).
    shape : tuple of int
        The masks' grid shape (x, y, z).

    Raises
    ------
    InputError
        If the image is not on the masks' grid (``shape``).
    """
    import nibabel as nib

    source = None
    if isinstance(pet, str | os.PathLike):
        source = pet
        pet = nib.load(str(pet))
    if hasattr(pet, "frames") and hasattr(pet, "data"):
        data = np.asarray(pet.data, np.float64)
        weights = np.asarray(pet.frames.duration, float)
        image = np.tensordot(np.nan_to_num(data), weights / weights.sum(), axes=([3], [0]))
    elif hasattr(pet, "dataobj"):
        data = np.asarray(pet.dataobj, np.float64)
        image = np.nanmean(data, axis=3) if data.ndim == 4 else data
    else:
        data = np.asarray(pet, np.float64)
        image = np.nanmean(data, axis=3) if data.ndim == 4 else data
    if image.shape != tuple(shape):
        raise InputError(format_problem(
            source, f"background image has spatial shape {image.shape}, the region masks "
            f"{tuple(shape)}", "Give the mean image of the scan the masks were built for."))
    return np.nan_to_num(image).astype(np.float32)


def plot_region_qc(masks: RegionMasks, background_img: Any = None,
                   out_png: str | os.PathLike = "regions_qc.png", *,
                   title: str | None = None) -> Path:
    """Draw the regions over the MNI152 template and, if given, over the scan's mean image.

    Parameters
    ----------
    masks : RegionMasks
        From :func:`pipeline.regions.build_masks`.
    background_img : PetImage, path, nibabel image or ndarray, default=None
        The scan (4D: its duration-weighted mean is shown) or a 3D image on the masks' grid.
        None draws the MNI template row only.
    out_png : str or path-like
        Output PNG, written atomically.
    title : str, default=None
        Figure title; default names the region set and the reference region.

    Returns
    -------
    Path
        ``out_png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    from nilearn import plotting
    from nilearn.datasets import load_mni152_template

    from pipeline.tables import atomic_path

    labels = nib.Nifti1Image(label_image(masks).astype(np.int16), masks.affine)
    backgrounds = [("MNI152 template", load_mni152_template(resolution=2))]
    if background_img is not None:
        mean = mean_image(background_img, masks.shape)
        backgrounds.append(("scan mean image", nib.Nifti1Image(mean, masks.affine)))
    palette = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)]
    colours = np.array([palette[i % len(palette)] for i in range(len(masks.names))])
    colours[masks.index(masks.reference)] = (1.0, 0.85, 0.0)  # the reference in yellow
    cmap = ListedColormap(colours)
    fig = plt.figure(figsize=(16, 3.2 * len(backgrounds) + 1.2))
    grid = fig.add_gridspec(len(backgrounds), 2, width_ratios=[6, 1.3], hspace=0.15, wspace=0.02)
    for row, (name, bg) in enumerate(backgrounds):
        for col, (mode, cuts) in enumerate([("z", AXIAL_CUTS_MM), ("x", (0,))]):
            ax = fig.add_subplot(grid[row, col])
            plotting.plot_roi(labels, bg_img=bg, display_mode=mode, cut_coords=cuts, axes=ax,
                              cmap=cmap, vmin=0.5, vmax=len(masks.names) + 0.5, alpha=0.7,
                              black_bg=False, draw_cross=False, annotate=col == 0,
                              title=name if col == 0 else None, colorbar=False)
    handles = [Patch(color=colours[i], label=f"{n} ({masks.n_voxels[i]} vox, "
                     f"{masks.volume_ml[i]:.1f} mL){' [ref]' if n == masks.reference else ''}")
               for i, n in enumerate(masks.names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=8,
               frameon=False)
    fig.suptitle(title or f"Region set '{masks.region_set}' (reference: {masks.reference})")
    out_png = Path(out_png)
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=90, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return out_png


def write_region_qc(pet: Any, region_config_path: str | os.PathLike | None,
                    out_png: str | os.PathLike, *,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """QC figure of a scan: its regions over the MNI template and over its mean image.

    Parameters
    ----------
    pet : str, path-like, Scan or PetImage
        The scan (loaded with :func:`pipeline.bids.load_pet` if a path or Scan).
    region_config_path : str or path-like or None
        Region config; None uses ``config/regions.yaml``.
    out_png : str or path-like
        Output PNG.
    cache_dir : str or path-like, default=None
        Mask cache folder (see :func:`pipeline.regions.build_masks`).
    """
    from pipeline.regions.config import load_region_config
    from pipeline.regions.extract import image_source, load_pet_image
    from pipeline.regions.masks import build_masks

    pet = load_pet_image(pet)
    region_set = load_region_config(region_config_path)
    masks = build_masks(region_set, pet.data.shape, pet.affine, source=image_source(pet),
                        cache_dir=cache_dir)
    return plot_region_qc(masks, pet, out_png)
