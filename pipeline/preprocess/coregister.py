"""Rigid PET -> T1w coregistration (mutual information) of one scan, with ANTs.

The PET image registered is the motion-corrected mean of the reference frames (frames with
counts and anatomy; :mod:`pipeline.preprocess.motion`); the T1w is the fixed image. ANTs
starts from the centres of mass and runs three levels of Mattes mutual information inside
the T1w's head (the T1w smoothed to 8, 4 and 2 mm effective resolution: PET carries no
finer detail, and the full-resolution level would cost most of the time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.preprocess.motion import head_mask, register_rigid

__all__ = ["CoregisterSettings", "coregister_pet_to_t1"]


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
    """

    iterations: tuple[int, ...] = (100, 50, 25)
    shrink_factors: tuple[int, ...] = (8, 4, 2)
    smoothing_sigmas: tuple[float, ...] = (3.0, 2.0, 1.0)
    sampling_rate: float = 0.25
    threads: int = 1


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
