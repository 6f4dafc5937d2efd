"""Regional time-activity curves: weighted means of a 4D PET image, one pass for all regions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.errors import InputError, format_problem
from pipeline.regions.config import load_region_config
from pipeline.regions.masks import RegionMasks, build_masks

__all__ = ["RegionTacs", "extract_tacs", "image_source", "load_pet_image", "region_records",
           "region_tacs", "write_region_tacs"]


class RegionTacs(np.ndarray):
    """TAC array (n_frames, n_regions) with ``nan_voxels`` and ``nan_fraction`` per region."""

    nan_voxels: np.ndarray | None
    nan_fraction: np.ndarray | None

    def __array_finalize__(self, obj: Any) -> None:
        # Views and results of arithmetic keep the counts of the array they came from.
        self.nan_voxels = getattr(obj, "nan_voxels", None)
        self.nan_fraction = getattr(obj, "nan_fraction", None)


def extract_tacs(data: np.ndarray, masks: RegionMasks) -> RegionTacs:
    """Weighted mean of every region in every frame, from one pass over the 4D data.

    The TAC of region r in frame t is ``sum_v w[r, v] x[v, t] / sum_v w[r, v]`` over the
    voxels v whose value in that frame is not NaN.

    Parameters
    ----------
    data : ndarray of shape (x, y, z, n_frames) or (x, y, z)
        Activity, Bq/mL, on the grid of ``masks``. NaN marks missing voxels.
    masks : RegionMasks
        From :func:`pipeline.regions.build_masks` for this grid.

    Returns
    -------
    RegionTacs of shape (n_frames, n_regions)
        Bq/mL; NaN for a region with no valid voxel in a frame. ``.nan_voxels`` counts each
        region's voxels that are NaN in at least one frame; ``.nan_fraction`` is their share
        of the region's weight.

    Raises
    ------
    InputError
        If the spatial shape of ``data`` differs from the masks' grid.
    """
    data = np.asarray(data)
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4 or data.shape[:3] != tuple(masks.shape):
        raise InputError(format_problem(
            None, f"the PET data has shape {data.shape} but the region masks were built for "
            f"grid {tuple(masks.shape)}", "Build the masks from this image's shape and affine."))
    n_regions = len(masks.names)
    weights = masks.weights.reshape(n_regions, -1)
    used = np.flatnonzero(np.any(weights > 0, axis=0))
    w = weights[:, used].astype(np.float64)
    # Gather only the voxels inside some region, whatever the array's memory order (nibabel
    # gives Fortran order: a C-order reshape of the whole 4D image would copy all of it).
    values = data[np.unravel_index(used, data.shape[:3])].astype(np.float64)  # (n_used, t)
    missing = np.isnan(values)
    values[missing] = 0.0
    valid = (~missing).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tacs = (w @ values / (w @ valid)).T
    any_missing = missing.any(axis=1)
    out = np.ascontiguousarray(tacs).view(RegionTacs)
    out.nan_voxels = np.count_nonzero((w > 0) & any_missing[None, :], axis=1)
    out.nan_fraction = (w @ any_missing.astype(np.float64)) / w.sum(axis=1)
    return out


def region_tacs(pet: Any, region_config_path: str | os.PathLike | None = None, *,
                cache_dir: str | os.PathLike | None = None,
                image_cache: str | os.PathLike | None = None
                ) -> tuple[pd.DataFrame, RegionMasks, RegionTacs]:
    """Load a PET image (path or ``PetImage``), build masks, extract TACs; write nothing.

    Parameters
    ----------
    pet : path-like, Scan or PetImage
        The image (loaded with :func:`pipeline.bids.load_pet` unless already loaded).
    region_config_path : str or path-like, default=None
        The region config; None uses the shipped default.
    cache_dir : str or path-like, default=None
        Folder of cached region masks, shared by every scan on the same grid.
    image_cache : str or path-like, default=None
        Folder of loaded images (:mod:`pipeline.bids.image_cache`): a Scan is read from
        there, or read and stored there for the scan's later steps.
    """
    pet = load_pet_image(pet, image_cache)
    source = image_source(pet)
    region_set = load_region_config(region_config_path)
    masks = build_masks(region_set, pet.data.shape, pet.affine, source=source,
                        cache_dir=cache_dir)
    tacs = extract_tacs(pet.data, masks)
    if tacs.shape[0] != pet.frames.n_frames:
        raise InputError(format_problem(
            source, f"the image has {tacs.shape[0]} frames but its timing has "
            f"{pet.frames.n_frames}", "Give one FrameDuration and FrameTimesStart per frame."))
    empty = [n for n, col in zip(masks.names, tacs.T, strict=True) if np.all(np.isnan(col))]
    if empty:
        raise InputError(format_problem(
            source, f"region(s) {', '.join(empty)} have only NaN voxels in every frame",
            "Check the image's field of view and NaN handling, or drop these regions."))
    return pd.DataFrame(np.asarray(tacs), columns=masks.names), masks, tacs


def write_region_tacs(pet: Any, region_config_path: str | os.PathLike | None,
                      out_tsv: str | os.PathLike, *,
                      cache_dir: str | os.PathLike | None = None,
                      image_cache: str | os.PathLike | None = None) -> Path:
    """Write a scan's regional TACs (``..._desc-<regionset>_tacs.tsv``) and JSON sidecar.

    Parameters
    ----------
    pet : str, path-like, Scan or PetImage
        A 4D PET NIfTI in MNI space or a ``Scan`` (read with :func:`pipeline.bids.load_pet`:
        Bq/mL, decay-corrected) or an already loaded ``PetImage`` (``data``, ``frames``,
        ``affine``, ``scan``, ``notes``).
    region_config_path : str or path-like or None
        Region config (YAML); None uses ``config/regions.yaml``.
    out_tsv : str or path-like
        Output table: ``frame_start``, ``frame_end`` (seconds), one column per region (Bq/mL).
    cache_dir : str or path-like, default=None
        Mask cache folder (see :func:`pipeline.regions.build_masks`).
    image_cache : str or path-like, default=None
        Folder of loaded images (:mod:`pipeline.bids.image_cache`): the workflow's TAC step
        stores each scan there for its maps and region figure.

    Returns
    -------
    Path
        ``out_tsv``. Nothing is written if any check fails.
    """
    from pipeline.tables import TacTable, provenance, write_tacs

    pet = load_pet_image(pet, image_cache)
    table, masks, tacs = region_tacs(pet, region_config_path, cache_dir=cache_dir)
    source = str(image_source(pet) or "")
    regions = region_records(masks, tacs)
    sidecar = provenance(
        Description="Regional time-activity curves: weighted mean activity of each region "
        "in each frame (Bq/mL, decay-corrected); frame_start/frame_end in seconds.",
        Sources=[source] if source else [], RegionSet=masks.region_set,
        ReferenceRegion=masks.reference, VoxelVolumeML=masks.voxel_volume_ml,
        Regions=regions, RegionConfig=masks.provenance,
        Notes=list(getattr(pet, "notes", []) or []))
    return write_tacs(out_tsv, TacTable(pet.frames, table), sidecar)


def load_pet_image(pet: Any, image_cache: str | os.PathLike | None = None) -> Any:
    """A PetImage from a path or Scan (via :func:`pipeline.bids.load_pet`), or as given.

    Parameters
    ----------
    pet : path-like, Scan or PetImage
        What to load (a PetImage is returned as it is).
    image_cache : str or path-like, default=None
        Folder of loaded images: a Scan is read through
        :func:`pipeline.bids.image_cache.load_cached_pet` (its data may then be a read-only
        memory map).
    """
    if isinstance(pet, str | os.PathLike) or not hasattr(pet, "data"):
        from pipeline.bids import Scan, load_pet

        if image_cache is not None and isinstance(pet, Scan):
            from pipeline.bids.image_cache import load_cached_pet

            return load_cached_pet(pet, image_cache)
        return load_pet(pet)
    return pet


def image_source(pet: Any) -> Any:
    """The image file a PetImage came from, if it says.

    Parameters
    ----------
    pet : PetImage or Any
        A loaded image (its ``scan.image_path``) or anything with an ``image_path`` or ``path``.
    """
    scan = getattr(pet, "scan", None)
    for holder in (scan, pet):
        for attr in ("image_path", "path"):
            value = getattr(holder, attr, None)
            if isinstance(value, str | os.PathLike):
                return value
    return None


def region_records(masks: Any, tacs: RegionTacs) -> dict[str, dict[str, float]]:
    """The TAC sidecar's ``Regions`` entry: size and missing data of each region.

    Parameters
    ----------
    masks : RegionMasks
        The regions as extracted (``names``, ``n_voxels``, ``volume_ml`` in mL,
        ``outside_fov_fraction``), on the PET grid or in native space.
    tacs : RegionTacs
        The extracted TACs with ``nan_voxels`` and ``nan_fraction`` per region.

    Returns
    -------
    dict
        Region name -> ``n_voxels``, ``volume_ml``, ``outside_fov_fraction``,
        ``nan_voxels``, ``nan_fraction`` and ``missing_fraction`` (outside the field of view
        or NaN, combined).
    """
    return {
        name: {"n_voxels": int(masks.n_voxels[i]), "volume_ml": float(masks.volume_ml[i]),
               "outside_fov_fraction": float(masks.outside_fov_fraction[i]),
               "nan_voxels": int(tacs.nan_voxels[i]),
               "nan_fraction": float(tacs.nan_fraction[i]),
               "missing_fraction": float(1.0 - (1.0 - masks.outside_fov_fraction[i])
                                         * (1.0 - tacs.nan_fraction[i]))}
        for i, name in enumerate(masks.names)}
