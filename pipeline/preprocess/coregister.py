"""Rigid PET -> T1w coregistration of one scan, with ANTs, in two stages.

The PET image registered is the motion-corrected mean of the reference frames (frames with
counts and anatomy; :mod:`pipeline.preprocess.motion`).

1. Mutual information with the T1w (:func:`coregister_pet_to_t1`): the T1w is the fixed
   image; ANTs starts from the centres of mass and runs three levels of Mattes mutual
   information inside the T1w's head (the T1w smoothed to 8, 4 and 2 mm effective
   resolution: PET carries no finer detail, and the full-resolution level would cost most
   of the time).
2. With the subject's tissue fractions and the normalization (:func:`refine_coregistration`):
   a synthetic PET of the subject's anatomy is fitted to the PET under the stage-1
   transform (:mod:`pipeline.preprocess.synthetic_pet`) and the PET is registered to it
   (same contrast, so no mutual-information bias from the tracer's distribution). On the
   simulated benchmark (the seed-11 study it was developed on) this took the
   coregistration error from 0.37-0.46 mm to 0.07-0.11 mm RMS and the regional BP_ND
   error against the MNI analysis from 5.7 % to 3.7 % (median; 1.1 % with binary native
   regions, :mod:`pipeline.preprocess.native_regions`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from pipeline.preprocess.motion import head_mask, register_rigid
from pipeline.preprocess.synthetic_pet import AnatomyBasis, SyntheticPet, fit_synthetic_pet

__all__ = ["CoregisterSettings", "coregister_pet_to_t1", "refine_coregistration"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoregisterSettings:
    """Settings of :func:`coregister_pet_to_t1`.

    Attributes
    ----------
    iterations : tuple of int, default=(100, 50, 25)
    shrink_factors : tuple of int, default=(8, 4, 2)
        Relative to the T1w voxel (1 mm T1w: 8, 4, 2 mm).
    smoothing_sigmas : tuple of float, default=(3.0, 2.0, 1.0)
        T1w voxels.
    sampling_rate : float, default=0.25
    threads : int, default=1
    refine_shrink_mm : tuple of float, default=(8.0, 4.0, 2.0)
        Stage 2 (synthetic PET) resolution levels, mm (the synthetic PET is on a ~2 mm grid).
    refine_iterations : tuple of int, default=(100, 50, 25)
    refine_smoothing_sigmas : tuple of float, default=(2.0, 1.0, 0.0)
        Stage-2 smoothing, voxels of the synthetic PET grid.
    min_r_squared : float, default=0.5
        Stage 2 is used only if the synthetic PET explains at least this fraction of the
        PET's variance near the brain; otherwise the stage-1 transform is kept (logged).
    """

    iterations: tuple[int, ...] = (100, 50, 25)
    shrink_factors: tuple[int, ...] = (8, 4, 2)
    smoothing_sigmas: tuple[float, ...] = (3.0, 2.0, 1.0)
    sampling_rate: float = 0.25
    threads: int = 1
    refine_shrink_mm: tuple[float, ...] = (8.0, 4.0, 2.0)
    refine_iterations: tuple[int, ...] = (100, 50, 25)
    refine_smoothing_sigmas: tuple[float, ...] = (2.0, 1.0, 0.0)
    min_r_squared: float = 0.5


def coregister_pet_to_t1(pet_mean: np.ndarray, pet_affine: np.ndarray, t1: np.ndarray,
                         t1_affine: np.ndarray,
                         settings: CoregisterSettings = CoregisterSettings()) -> np.ndarray:
    """Rigidly register a (motion-corrected mean) PET image to the subject's T1w.

    Parameters
    ----------
    pet_mean : ndarray (3D)
        Bq/mL, in the motion reference space.
    pet_affine : ndarray of shape (4, 4)
        PET voxel -> scanner mm.
    t1 : ndarray (3D)
    t1_affine : ndarray of shape (4, 4)
        T1w voxel -> T1w world mm.
    settings : CoregisterSettings

    Returns
    -------
    ndarray of shape (4, 4)
        ``pet_from_t1``: a T1w-world point (RAS mm) -> the same anatomy in the PET motion
        reference (scanner mm). Its inverse is ``t1_from_pet``.
    """
    voxel = float(np.cbrt(abs(np.linalg.det(np.asarray(t1_affine, float)[:3, :3]))))
    factors = tuple(max(1, round(f / voxel)) for f in settings.shrink_factors)
    return register_rigid(
        t1, t1_affine, pet_mean, pet_affine, mask=head_mask(t1, t1_affine, 0.1),
        iterations=settings.iterations, shrink_factors=factors,
        smoothing_sigmas=settings.smoothing_sigmas, sampling_rate=settings.sampling_rate,
        threads=settings.threads)


def refine_coregistration(pet_mean: np.ndarray, pet_affine: np.ndarray,
                          pet_from_t1: np.ndarray, anatomy: AnatomyBasis,
                          settings: CoregisterSettings = CoregisterSettings()
                          ) -> tuple[np.ndarray, SyntheticPet, bool]:
    """Stage 2: register the PET to a synthetic PET of the subject's anatomy.

    Parameters
    ----------
    pet_mean : ndarray (3D)
        Bq/mL, in the motion reference space.
    pet_affine : ndarray of shape (4, 4)
        PET voxel -> scanner mm.
    pet_from_t1 : ndarray of shape (4, 4)
        Stage-1 transform (:func:`coregister_pet_to_t1`); the synthetic PET's activities are
        fitted under it.
    anatomy : AnatomyBasis
        The subject's tissue-and-region fractions (:func:`pipeline.preprocess.synthetic_pet.
        anatomy_basis`).
    settings : CoregisterSettings

    Returns
    -------
    pet_from_t1 : ndarray of shape (4, 4)
        Refined (or the stage-1 transform when the model fits too poorly).
    synthetic : SyntheticPet
        The fitted model (its PSF width and R^2 go into the sidecar).
    refined : bool
        Whether stage 2 was used.
    """
    synthetic = fit_synthetic_pet(pet_mean, pet_affine, pet_from_t1, anatomy)
    if synthetic.r_squared < settings.min_r_squared:
        log.warning("synthetic PET explains only %.2f of the PET's variance (< %.2f): keeping "
                    "the mutual-information coregistration", synthetic.r_squared,
                    settings.min_r_squared)
        return np.asarray(pet_from_t1, float), synthetic, False
    voxel = float(np.cbrt(abs(np.linalg.det(synthetic.affine[:3, :3]))))
    factors = tuple(max(1, round(f / voxel)) for f in settings.refine_shrink_mm)
    refined = register_rigid(
        synthetic.image, synthetic.affine, pet_mean, pet_affine,
        mask=head_mask(synthetic.image, synthetic.affine, 0.1),
        iterations=settings.refine_iterations, shrink_factors=factors,
        smoothing_sigmas=settings.refine_smoothing_sigmas,
        sampling_rate=settings.sampling_rate, threads=settings.threads)
    return refined, synthetic, True
