"""Bring native-space PET data to the MNI analysis grid, with one interpolation.

For an MNI-grid voxel, the ``t1_from_mni`` coordinate field gives its T1w point, the
coregistration its PET motion-reference point, and (for a dynamic frame) the frame's motion
its point in that frame; the value is read there (trilinear). Two uses, compared in
``benchmarks/bench_preprocess.py``:

- :func:`warp_volume_to_mni`: a 3D native-space map (e.g. BP_ND fitted on motion-corrected
  native frames) to MNI;
- :func:`warp_frames_to_mni`: every dynamic frame to MNI, each with its own motion, so a
  voxelwise fit can run in MNI directly.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from pipeline.preprocess.fields import CoordinateField

__all__ = ["warp_frames_to_mni", "warp_volume_to_mni"]


def _pet_points(t1_from_mni: CoordinateField, pet_from_t1: np.ndarray) -> np.ndarray:
    """Motion-reference PET points (n, 3) of every MNI-grid voxel, mm."""
    t1 = t1_from_mni.data.reshape(3, -1).T.astype(np.float64)
    return t1 @ pet_from_t1[:3, :3].T + pet_from_t1[:3, 3]


def _sample(volume: np.ndarray, affine: np.ndarray, points: np.ndarray, order: int
            ) -> np.ndarray:
    inverse = np.linalg.inv(affine)
    ijk = (points @ inverse[:3, :3].T + inverse[:3, 3]).T
    return map_coordinates(np.nan_to_num(np.asarray(volume, np.float32)), ijk, order=order,
                           mode="constant", cval=np.nan)


def warp_volume_to_mni(volume: np.ndarray, affine: np.ndarray, pet_from_t1: np.ndarray,
                       t1_from_mni: CoordinateField, *, order: int = 1) -> np.ndarray:
    """A 3D image on the PET motion-reference grid, resampled onto the MNI grid.

    Parameters
    ----------
    volume : ndarray (3D)
        Values on the PET grid (e.g. BP_ND, unitless; activity, Bq/mL).
    affine : ndarray of shape (4, 4)
        PET voxel -> scanner mm.
    pet_from_t1 : ndarray of shape (4, 4)
        From the coregistration.
    t1_from_mni : CoordinateField
        On the MNI analysis grid (from the normalization); the output is on its grid.
    order : int, default=1
        Spline order (1 = trilinear).

    Returns
    -------
    ndarray, shape of the field's grid, float32
        NaN outside the PET field of view.
    """
    points = _pet_points(t1_from_mni, np.asarray(pet_from_t1, float))
    return _sample(volume, affine, points, order).reshape(t1_from_mni.shape).astype(np.float32)


def warp_frames_to_mni(data: np.ndarray, affine: np.ndarray, pet_from_t1: np.ndarray,
                       t1_from_mni: CoordinateField, frame_from_reference: np.ndarray, *,
                       order: int = 1) -> np.ndarray:
    """Every frame of a scanner-space scan on the MNI grid, motion included, one interpolation.

    Parameters
    ----------
    data : ndarray of shape (x, y, z, n_frames)
        Bq/mL, as acquired.
    affine, pet_from_t1, t1_from_mni, order
        As in :func:`warp_volume_to_mni`.
    frame_from_reference : ndarray of shape (n_frames, 4, 4)
        From motion correction.

    Returns
    -------
    ndarray of shape (*field grid, n_frames), float32
        Bq/mL; NaN outside the PET field of view.
    """
    points = _pet_points(t1_from_mni, np.asarray(pet_from_t1, float))
    out = np.empty((*t1_from_mni.shape, data.shape[-1]), np.float32)
    for k in range(data.shape[-1]):
        moved = points @ frame_from_reference[k][:3, :3].T + frame_from_reference[k][:3, 3]
        out[..., k] = _sample(data[..., k], affine, moved, order).reshape(t1_from_mni.shape)
    return out
