"""A PET-like image of the subject's anatomy, to refine the PET -> T1w coregistration.

Why. Mutual information between a PET image and the T1w is biased when the PET's contrast
is not a function of T1w intensity: the tracer binds in some grey matter and not in other
grey matter of the same T1w brightness, and the PET is blurred by the scanner. On the
simulated [11C]carfentanil benchmark (``benchmarks/preprocess_accuracy.py``) the T1w
mutual-information coregistration was off by 0.31-0.42 mm along one axis in every scan
(0.37-0.46 mm RMS over the brain), the same direction every time; the reference region is a thin
cortical ribbon, and that shift alone moved every regional BP_ND by about -3 % (a PET mean
registered to the MNI-space study's own PET, same contrast, was off by 0.13 mm).

Model. The PET mean is the geometric-transfer-matrix forward model of partial-volume
correction (Rousset et al. 1998, J Nucl Med 39:904) evaluated in T1w space:

``PET(x) ~ PSF * [ sum_r a_r g(x) m_r(x) + a_gm g(x) (1 - sum_r m_r(x)) + a_wm w(x) ] + c``

with ``g``, ``w`` the subject's grey- and white-matter fractions (:mod:`.segment`), ``m_r``
the analysis' regions (without grey-matter restriction) pulled into T1w space through the
normalization, and a Gaussian PSF. The activities ``a`` and ``c`` are fitted by linear
least squares to the PET sampled through a first (mutual-information) coregistration, for a
few PSF widths, keeping the best fit; the PET is then registered rigidly to this synthetic
image, whose contrast is the PET's own (:func:`pipeline.preprocess.coregister.
coregister_pet_to_t1`). Everything runs on the T1w grid block-averaged to about 2 mm (exact
for volume fractions; the PET carries no finer detail).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from pipeline.preprocess.fields import CoordinateField, read_field
from pipeline.preprocess.tissue_regions import split_grey_matter_restriction
from pipeline.regions import RegionMasks

__all__ = ["AnatomyBasis", "SyntheticPet", "anatomy_basis", "fit_synthetic_pet",
           "load_anatomy_basis"]

_FWHM_TO_SD = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class AnatomyBasis:
    """Tissue-and-region fractions on a coarse T1w grid: one volume per model term.

    Attributes
    ----------
    maps : ndarray of shape (n_terms, x, y, z), float32
        Volume fractions (0-1): grey matter in each region, the other grey matter, white
        matter.
    names : list of str
        One per term.
    affine : ndarray of shape (4, 4)
        Coarse T1w grid voxel -> T1w world mm.
    """

    maps: np.ndarray
    names: list[str]
    affine: np.ndarray


@dataclass(frozen=True)
class SyntheticPet:
    """The fitted synthetic PET (:func:`fit_synthetic_pet`).

    Attributes
    ----------
    image : ndarray (3D), float32
        Bq/mL, on the basis grid.
    affine : ndarray of shape (4, 4)
        Its voxel -> T1w world mm.
    fwhm_mm : float
        The PSF FWHM that fitted best, mm.
    r_squared : float
        Fraction of the PET's variance (near the brain) the model explains.
    activities : dict of str to float
        Fitted activity of each term, Bq/mL (and ``constant``).
    """

    image: np.ndarray
    affine: np.ndarray
    fwhm_mm: float
    r_squared: float
    activities: dict[str, float]


def _block_mean(volume: np.ndarray, factor: int) -> np.ndarray:
    """Means over ``factor``^3 blocks (trailing voxels that fill no block are dropped)."""
    n = [s // factor for s in volume.shape[:3]]
    cut = volume[:n[0] * factor, :n[1] * factor, :n[2] * factor]
    return cut.reshape(n[0], factor, n[1], factor, n[2], factor).mean(axis=(1, 3, 5))


def _block_affine(affine: np.ndarray, factor: int) -> np.ndarray:
    coarse = np.array(affine, float)
    coarse[:3, :3] = affine[:3, :3] * factor
    coarse[:3, 3] = affine[:3, :3] @ np.full(3, (factor - 1) / 2.0) + affine[:3, 3]
    return coarse


def anatomy_basis(grey_matter: np.ndarray, white_matter: np.ndarray, t1_affine: np.ndarray,
                  regions: RegionMasks, mni_from_t1: CoordinateField, *,
                  grid_mm: float = 2.0) -> AnatomyBasis:
    """The model's terms on the T1w grid block-averaged to about ``grid_mm``.

    Parameters
    ----------
    grey_matter, white_matter : ndarray (3D)
        Tissue fractions (0-1) on the T1w grid (:func:`pipeline.preprocess.segment.
        segment_t1`).
    t1_affine : ndarray of shape (4, 4)
        T1w voxel -> T1w world mm.
    regions : RegionMasks
        Regions on an MNI grid, without grey-matter restriction (weights 0-1).
    mni_from_t1 : CoordinateField
        From the normalization.
    grid_mm : float, default=2.0
        Target voxel size, mm (the block size is the nearest whole number of T1w voxels).

    Returns
    -------
    AnatomyBasis
    """
    t1_affine = np.asarray(t1_affine, float)
    voxel = float(np.cbrt(abs(np.linalg.det(t1_affine[:3, :3]))))
    factor = max(1, round(grid_mm / voxel))
    grey = _block_mean(np.asarray(grey_matter, np.float32), factor)
    white = _block_mean(np.asarray(white_matter, np.float32), factor)
    affine = _block_affine(t1_affine, factor)
    ijk = np.indices(grey.shape, dtype=np.float64).reshape(3, -1).T
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    to_voxel = np.linalg.inv(regions.affine)
    coords = (mni_from_t1(world) @ to_voxel[:3, :3].T + to_voxel[:3, 3]).T
    maps, rest = [], np.ones(grey.size, np.float32)
    for r in range(len(regions.names)):
        weight = np.clip(map_coordinates(regions.weights[r], coords, order=1, mode="constant",
                                         cval=0.0), 0.0, 1.0).astype(np.float32)
        rest -= weight
        maps.append(grey.reshape(-1) * weight)
    maps.append(grey.reshape(-1) * np.clip(rest, 0.0, 1.0))
    maps.append(white.reshape(-1))
    names = [f"grey matter, {name}" for name in regions.names] + ["other grey matter",
                                                                  "white matter"]
    return AnatomyBasis(maps=np.stack(maps).reshape(len(maps), *grey.shape), names=names,
                        affine=affine)


def fit_synthetic_pet(pet: np.ndarray, pet_affine: np.ndarray, pet_from_t1: np.ndarray,
                      basis: AnatomyBasis,
                      fwhms_mm: tuple[float, ...] = (4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
                      ) -> SyntheticPet:
    """Fit the model's activities and PSF to a PET image under a given coregistration.

    Parameters
    ----------
    pet : ndarray (3D)
        Bq/mL (the motion-corrected mean).
    pet_affine : ndarray of shape (4, 4)
        PET voxel -> scanner mm.
    pet_from_t1 : ndarray of shape (4, 4)
        Current estimate: T1w-world point -> PET point, mm.
    basis : AnatomyBasis
    fwhms_mm : tuple of float
        PSF widths tried (isotropic Gaussian FWHM, mm); the least-squares best is kept.

    Returns
    -------
    SyntheticPet
    """
    voxel = np.linalg.norm(basis.affine[:3, :3], axis=0)
    shape = basis.maps.shape[1:]
    ijk = np.indices(shape, dtype=np.float64).reshape(3, -1).T
    chain = np.linalg.inv(np.asarray(pet_affine, float)) @ np.asarray(pet_from_t1, float)
    pet_ijk = ijk @ (chain @ basis.affine)[:3, :3].T + (chain @ basis.affine)[:3, 3]
    inside = np.all((pet_ijk >= 0) & (pet_ijk <= np.asarray(pet.shape[:3]) - 1), axis=1)
    measured = map_coordinates(np.nan_to_num(np.asarray(pet, np.float32)), pet_ijk.T, order=1,
                               mode="constant", cval=0.0)
    near = gaussian_filter(basis.maps.sum(axis=0), 4.0 / voxel) > 1e-2
    fit = near.reshape(-1) & inside
    best = None
    for fwhm in fwhms_mm:
        blurred = np.stack([gaussian_filter(m, fwhm * _FWHM_TO_SD / voxel, mode="constant")
                            for m in basis.maps]).reshape(len(basis.maps), -1)
        design = np.column_stack([blurred[:, fit].T, np.ones(int(fit.sum()))])
        coef, *_ = np.linalg.lstsq(design, measured[fit], rcond=None)
        residual = float(np.mean((design @ coef - measured[fit]) ** 2))
        if best is None or residual < best[0]:
            best = (residual, fwhm, coef, blurred)
    residual, fwhm, coef, blurred = best
    image = (coef[:-1] @ blurred + coef[-1]).reshape(shape).astype(np.float32)
    variance = float(np.var(measured[fit]))
    return SyntheticPet(
        image=image, affine=basis.affine, fwhm_mm=float(fwhm),
        r_squared=1.0 - residual / variance if variance > 0 else 0.0,
        activities={**dict(zip(basis.names, map(float, coef[:-1]), strict=True)),
                    "constant": float(coef[-1])})


def load_anatomy_basis(mnicoords_field: str | PathLike, probseg_gm: str | PathLike,
                       probseg_wm: str | PathLike, region_config: str | PathLike | None, *,
                       cache_dir: str | PathLike | None = None) -> AnatomyBasis:
    """:func:`anatomy_basis` from the files of the normalization and segmentation steps.

    Parameters
    ----------
    mnicoords_field : path-like
        The subject's ``_desc-mnicoords_field.nii.gz``.
    probseg_gm, probseg_wm : path-like
        Its ``_label-GM_probseg`` and ``_label-WM_probseg`` images (T1w grid, 0-1).
    region_config : path-like or None
        The analysis' region config (None = ``config/regions.yaml``); its regions are used
        without their grey-matter restriction, on the 2 mm MNI grid.
    cache_dir : path-like, default=None
        MNI mask cache.
    """
    import nibabel as nib

    from pipeline.regions import build_masks, load_region_config
    from pipeline.space import mni_grid

    shape, affine = mni_grid(2)
    unrestricted, _ = split_grey_matter_restriction(load_region_config(region_config))
    regions = build_masks(unrestricted, shape, affine, cache_dir=cache_dir)
    grey, white = nib.load(str(probseg_gm)), nib.load(str(probseg_wm))
    return anatomy_basis(np.asarray(grey.dataobj, np.float32),
                         np.asarray(white.dataobj, np.float32), grey.affine, regions,
                         read_field(mnicoords_field))
