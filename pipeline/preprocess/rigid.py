"""Rigid transforms as 4x4 matrices: building, decomposing, composing, framewise displacement.

Conventions (every function here):

- Points are in world millimetres, RAS (NIfTI/nibabel convention). A matrix ``M`` maps a
  point ``x`` (homogeneous column) to ``M @ x``.
- A transform is named after what it maps: ``b_from_a`` takes points of space ``a`` to
  space ``b`` (e.g. ``frame_from_reference``: a point of the motion-corrected reference to
  where the same piece of head is in frame k).
- Six rigid parameters are ``(trans_x, trans_y, trans_z, rot_x, rot_y, rot_z)``:
  translations in mm, rotations in **radians** about the x, y and z axes of a centre
  ``c`` (mm), applied as ``R = Rz @ Ry @ Rx`` and ``x' = R (x - c) + c + t``. This is the
  BIDS/fMRIPrep confounds convention (rotations in radians), with an explicit centre so
  that translations are those of the head centre, not of a far-away origin.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ANTS_LPS",
    "framewise_displacement",
    "invert",
    "lps_to_ras",
    "matrix_from_params",
    "params_from_matrix",
    "point_displacement_rms",
    "rotation_angle",
]

#: RAS <-> LPS flip (ITK/ANTs use LPS world coordinates; it is its own inverse).
ANTS_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rot_x = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rot_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rot_z = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def matrix_from_params(params: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """4x4 rigid matrix (or a stack) from six parameters about ``centre``.

    Parameters
    ----------
    params : array-like of shape (6,) or (n, 6)
        ``trans_x, trans_y, trans_z`` (mm), ``rot_x, rot_y, rot_z`` (radians).
    centre : array-like of shape (3,), default=None
        Centre of rotation, mm (None = the origin).

    Returns
    -------
    ndarray of shape (4, 4) or (n, 4, 4)

    Examples
    --------
    >>> m = matrix_from_params([1.0, 0, 0, 0, 0, np.pi / 2])
    >>> np.round(m @ [1.0, 0, 0, 1], 6).tolist()
    [1.0, 1.0, 0.0, 1.0]
    """
    params = np.asarray(params, float)
    single = params.ndim == 1
    params = np.atleast_2d(params)
    c = np.zeros(3) if centre is None else np.asarray(centre, float)
    out = np.repeat(np.eye(4)[None], len(params), axis=0)
    for i, (tx, ty, tz, rx, ry, rz) in enumerate(params):
        rot = _rotation(rx, ry, rz)
        out[i, :3, :3] = rot
        out[i, :3, 3] = c - rot @ c + (tx, ty, tz)
    return out[0] if single else out


def params_from_matrix(matrix: np.ndarray, centre: np.ndarray | None = None) -> np.ndarray:
    """Six parameters of a rigid matrix (or a stack) about ``centre``; inverse of
    :func:`matrix_from_params` for rotations below 90 degrees.

    Parameters
    ----------
    matrix : ndarray of shape (4, 4) or (n, 4, 4)
        Rigid (its 3x3 part is projected onto the nearest rotation first).
    centre : array-like of shape (3,), default=None
        mm.

    Returns
    -------
    ndarray of shape (6,) or (n, 6)
        mm and radians.
    """
    matrix = np.asarray(matrix, float)
    single = matrix.ndim == 2
    stack = matrix.reshape(-1, 4, 4)
    c = np.zeros(3) if centre is None else np.asarray(centre, float)
    out = np.empty((len(stack), 6))
    for i, m in enumerate(stack):
        u, _, vt = np.linalg.svd(m[:3, :3])
        rot = u @ vt
        ry = -np.arcsin(np.clip(rot[2, 0], -1.0, 1.0))
        rx = np.arctan2(rot[2, 1], rot[2, 2])
        rz = np.arctan2(rot[1, 0], rot[0, 0])
        t = m[:3, 3] - (c - m[:3, :3] @ c)
        out[i] = (*t, rx, ry, rz)
    return out[0] if single else out


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 matrix or a stack of them."""
    return np.linalg.inv(np.asarray(matrix, float))


def lps_to_ras(matrix: np.ndarray) -> np.ndarray:
    """Convert a point-mapping 4x4 matrix between LPS (ITK/ANTs) and RAS (either way)."""
    return ANTS_LPS @ np.asarray(matrix, float) @ ANTS_LPS


def rotation_angle(matrix: np.ndarray) -> np.ndarray:
    """Rotation angle (radians) of rigid matrices: ``arccos((trace(R) - 1) / 2)``."""
    m = np.asarray(matrix, float).reshape(-1, 4, 4)
    trace = np.trace(m[:, :3, :3], axis1=1, axis2=2)
    angles = np.arccos(np.clip((trace - 1.0) / 2.0, -1.0, 1.0))
    return angles[0] if np.ndim(matrix) == 2 else angles


def framewise_displacement(params: np.ndarray, radius: float = 50.0) -> np.ndarray:
    """Framewise displacement of Power et al. (2012), mm.

    ``FD_k = sum |d trans| + radius * sum |d rot|`` between frames ``k - 1`` and ``k``
    (rotations in radians turned into arc length on a sphere of ``radius`` mm); 0 for the
    first frame.

    Parameters
    ----------
    params : ndarray of shape (n_frames, 6)
        mm and radians (see the module docstring).
    radius : float, default=50.0
        mm, the head radius of Power et al.

    Returns
    -------
    ndarray of shape (n_frames,)
        mm.

    Examples
    --------
    >>> framewise_displacement(np.array([[0, 0, 0, 0, 0, 0], [1, 0, 0, 0.01, 0, 0]]))
    array([0. , 1.5])
    """
    params = np.asarray(params, float)
    step = np.abs(np.diff(params, axis=0))
    fd = step[:, :3].sum(axis=1) + radius * step[:, 3:].sum(axis=1)
    return np.concatenate([[0.0], fd])


def point_displacement_rms(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> np.ndarray:
    """RMS distance (mm) between where two transforms put the same points.

    Parameters
    ----------
    a, b : ndarray of shape (4, 4) or (n, 4, 4)
    points : ndarray of shape (n_points, 3)
        mm.

    Returns
    -------
    ndarray of shape (n,)
        mm: ``sqrt(mean_p |a p - b p|^2)`` per transform pair (n = 1 for single matrices).
    """
    homogeneous = np.column_stack([np.asarray(points, float), np.ones(len(points))])
    a = np.asarray(a, float).reshape(-1, 4, 4)
    b = np.asarray(b, float).reshape(-1, 4, 4)
    diff = np.einsum("nij,pj->npi", a - b, homogeneous)[..., :3]
    return np.sqrt((diff ** 2).sum(axis=2).mean(axis=1))
