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

#: key of a grid and region set -> (labels, MNI template, template row's RGB or None).
_SAME_FOR_EVERY_SCAN: dict[tuple, tuple] = {}


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
        weights = np.asarray(pet.frames.duration, float)
        weights = weights / weights.sum()
        image = np.zeros(pet.data.shape[:3], np.float64)
        for f, weight in enumerate(weights):  # frame by frame: no 4D copy (maybe a memory map)
            image += weight * np.nan_to_num(pet.data[..., f])
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
    from nilearn.datasets import load_mni152_template

    from pipeline.tables import atomic_path

    palette = [c for i, c in enumerate(plt.get_cmap("tab20").colors) if i not in (14, 15)]
    colours = np.array([palette[i % len(palette)] for i in range(len(masks.names))])
    colours[masks.index(masks.reference)] = (1.0, 0.85, 0.0)  # the reference in yellow
    cmap = ListedColormap(colours)
    # the labels and the template row are the same for every scan on this grid: made once
    key = (str(getattr(masks, "provenance", {}).get("config_digest")), tuple(masks.shape),
           np.asarray(masks.affine, float).tobytes(), tuple(masks.names), masks.reference)
    made = _SAME_FOR_EVERY_SCAN.get(key)
    if made is None:
        template = load_mni152_template(resolution=2)
        label_data = label_image(masks).astype(np.int16)
        template_rgb = _composite(_on_grid(np.asarray(template.dataobj, np.float32),
                                           template.affine, masks.shape, masks.affine),
                                  label_data, colours) \
            if _axis_aligned(masks.affine) and _axis_aligned(template.affine) else None
        made = (label_data, template, template_rgb)
        _SAME_FOR_EVERY_SCAN.clear()  # one grid at a time is what the workflow draws
        _SAME_FOR_EVERY_SCAN[key] = made
    label_data, template, template_rgb = made
    backgrounds = [("MNI152 template", template)]
    if background_img is not None:
        mean = mean_image(background_img, masks.shape)
        backgrounds.append(("scan mean image", nib.Nifti1Image(mean, masks.affine)))
    fig = plt.figure(figsize=(13, 2.6 * len(backgrounds) + 1.2))
    grid = fig.add_gridspec(len(backgrounds), 2, width_ratios=[6, 1.3], hspace=0.15, wspace=0.02,
                            bottom=1.0 / (2.6 * len(backgrounds) + 1.2), top=0.9)
    # axis-aligned grids (MNI grids): the cuts are composited in numpy on the masks' grid
    # (the template sampled there, nearest neighbour); nilearn's plot_roi otherwise
    direct = template_rgb is not None
    for row, (name, bg) in enumerate(backgrounds):
        if direct:
            rgb = template_rgb if row == 0 else _composite(
                np.asarray(bg.dataobj, np.float32), label_data, colours)
        for col, (mode, cuts) in enumerate([("z", AXIAL_CUTS_MM), ("x", (0,))]):
            if direct:
                _draw_cuts(fig, grid[row, col], mode, cuts, rgb, masks.affine,
                           title=name if col == 0 else None)
                continue
            from nilearn import plotting

            plotting.plot_roi(nib.Nifti1Image(label_data, masks.affine), bg_img=bg,
                              display_mode=mode, cut_coords=cuts, axes=fig.add_subplot(
                                  grid[row, col]), black_bg=False, draw_cross=False,
                              annotate=col == 0, title=name if col == 0 else None,
                              colorbar=False, cmap=cmap, vmin=0.5,
                              vmax=len(masks.names) + 0.5, alpha=0.7)
    handles = [Patch(color=colours[i], label=f"{n} ({masks.n_voxels[i]} vox, "
                     f"{masks.volume_ml[i]:.1f} mL){' [ref]' if n == masks.reference else ''}")
               for i, n in enumerate(masks.names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=8,
               frameon=False)
    fig.suptitle(title or f"Region set '{masks.region_set}' (reference: {masks.reference})")
    out_png = Path(out_png)
    try:
        with atomic_path(out_png) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return out_png


def _axis_aligned(affine: np.ndarray) -> bool:
    rotation = np.asarray(affine, float)[:3, :3]
    return bool(np.allclose(rotation - np.diag(np.diag(rotation)), 0.0, atol=1e-6))


def _on_grid(volume: np.ndarray, affine: np.ndarray, shape: tuple[int, ...],
             target: np.ndarray) -> np.ndarray:
    """``volume`` (axis-aligned grid) sampled at the voxel centres of an axis-aligned
    ``target`` grid of ``shape``, nearest neighbour; 0 outside it."""
    index = []
    for a in range(3):
        world = target[a, 3] + target[a, a] * np.arange(shape[a])
        index.append(np.rint((world - affine[a, 3]) / affine[a, a]).astype(int))
    inside = [(i >= 0) & (i < volume.shape[a]) for a, i in enumerate(index)]
    out = np.zeros(tuple(shape[:3]), np.float32)
    sub = np.ix_(*(i[ok] for i, ok in zip(index, inside, strict=True)))
    out[np.ix_(*inside)] = volume[sub]
    return out


def _panel(rgb: np.ndarray, affine: np.ndarray, axis: int, mm: float) -> np.ndarray | None:
    """The RGB slice nearest to world coordinate ``mm`` along ``axis``, rows from the top
    (superior/anterior) and columns with world coordinates increasing; None outside."""
    index = int(np.rint((mm - affine[axis, 3]) / affine[axis, axis]))
    if not 0 <= index < rgb.shape[axis]:
        return None
    plane = np.take(rgb, index, axis=axis)  # the other two axes, then RGB
    for k, a in enumerate(a for a in range(3) if a != axis):
        if affine[a, a] < 0:
            plane = np.flip(plane, axis=k)
    return np.flip(np.swapaxes(plane, 0, 1), axis=0)


def _draw_cuts(fig: Any, cell: Any, mode: str, cuts: tuple[float, ...], rgb: np.ndarray,
               affine: np.ndarray, *, title: str | None) -> None:
    """Cuts (``z``: axial, ``x``: sagittal) of a composited RGB volume side by side, as one
    image (one ``imshow``: a tenth of the time of one axes per cut)."""
    axis = {"x": 0, "z": 2}[mode]
    panels = [(cut, _panel(rgb, affine, axis, cut)) for cut in cuts]
    panels = [(cut, p) for cut, p in panels if p is not None]
    ax = fig.add_subplot(cell)
    ax.set_axis_off()
    if not panels:
        return
    gap = np.ones((panels[0][1].shape[0], 2, 3), np.float32)
    ax.imshow(np.concatenate([x for _, p in panels for x in (p, gap)][:-1], axis=1),
              interpolation="nearest")
    width = panels[0][1].shape[1] + 2
    for n, (cut, _) in enumerate(panels):
        ax.text(n * width + width / 2, panels[0][1].shape[0] - 2, f"{mode}={cut:g}",
                ha="center", va="bottom", fontsize=8, color="white")
    if title:
        ax.set_title(title, loc="left", fontsize=10)


def _composite(background: np.ndarray, labels: np.ndarray, colours: np.ndarray,
               alpha: float = 0.7) -> np.ndarray:
    """RGB (x, y, z, 3) of a grey background with the labels' colours blended over it."""
    values = background[np.isfinite(background) & (background != 0)]
    top = float(np.percentile(values, 99.5)) if values.size else 1.0
    grey = np.clip(np.nan_to_num(background) / (top or 1.0), 0.0, 1.0)[..., None]
    rgb = np.repeat(grey, 3, axis=-1).astype(np.float32)
    inside = labels > 0
    rgb[inside] = (1 - alpha) * rgb[inside] + alpha * colours[labels[inside] - 1, :3]
    return rgb


def write_region_qc(pet: Any, region_config_path: str | os.PathLike | None,
                    out_png: str | os.PathLike, *,
                    cache_dir: str | os.PathLike | None = None,
                    image_cache: str | os.PathLike | None = None) -> Path:
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
    image_cache : str or path-like, default=None
        Folder of loaded images (:mod:`pipeline.bids.image_cache`), where the workflow's
        TAC step left the scan.
    """
    from pipeline.regions.config import load_region_config
    from pipeline.regions.extract import image_source, load_pet_image
    from pipeline.regions.masks import build_masks

    pet = load_pet_image(pet, image_cache)
    region_set = load_region_config(region_config_path)
    masks = build_masks(region_set, pet.data.shape, pet.affine, source=image_source(pet),
                        cache_dir=cache_dir)
    return plot_region_qc(masks, pet, out_png)
