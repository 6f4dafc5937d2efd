"""Where a simulated head is: subject anatomy relative to MNI, head pose in the PET scanner,
and head motion during a scan. Every transform is known exactly, so preprocessing can be
scored against it.

Spaces (world mm, RAS):

- ``mni``: MNI152, where the phantom (:mod:`pipeline.simulate.phantom`) is drawn;
- ``native``: the subject's own head, the world space of the T1w image (MR scanner);
- ``scanner``: the PET scanner, the world space of the PET image.

The subject's anatomy is MNI deformed: a point ``x`` of native space shows the MNI point
``mni_from_native(x) = y + u(y)`` with ``y = A x`` (``A = affine_mni_from_native``: head
size per axis and the head's orientation in the MR scanner) and ``u`` a smooth random
displacement field (mm, defined on a coarse MNI grid, linearly interpolated), so the
T1w-to-MNI registration has a non-linear part to find.

In the PET scanner, frame ``k`` sees native point ``x`` at scanner point
``motion_k @ pose @ x``: ``pose`` (``scanner_from_native`` at scan start) is drawn anew for
every scan (repositioning between scans), and ``motion_k`` is a rigid motion about the
head centre that grows smoothly from identity to at most ``max_translation`` mm and
``max_rotation`` degrees by the end of the scan, in a random 3D direction, plus a small
frame-to-frame jitter. A frame has one pose (its mid-time); motion within a frame is not
simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.spatial.transform import Rotation

__all__ = [
    "MNI_BRAIN_CENTRE",
    "HeadGeometry",
    "MotionSettings",
    "PoseSettings",
    "draw_head_geometry",
    "draw_motion",
    "draw_pose",
]

#: Approximate centre of the MNI152 brain, mm (centre of its bounding box).
MNI_BRAIN_CENTRE = np.array([0.0, -18.0, 18.0])
_WARP_SPACING = 8.0                              # mm between warp field nodes
_WARP_BOX = (np.array([-100.0, -136.0, -82.0]), np.array([100.0, 104.0, 118.0]))


@dataclass(frozen=True)
class PoseSettings:
    """How subjects and heads vary (standard deviations; all drawn as Gaussians).

    Attributes
    ----------
    head_scale_sd : float, default=0.06
        Relative head size: a subject factor plus a smaller per-axis factor (unitless).
    warp_rms_mm : float, default=2.0
        RMS of the non-linear displacement field, mm.
    warp_fwhm_mm : float, default=30.0
        Smoothness of the displacement field, mm.
    mr_rotation_deg : float, default=5.0
        Head orientation in the MR scanner, degrees per axis.
    pet_rotation_deg : tuple of float, default=(6.0, 4.0, 4.0)
        Head orientation in the PET scanner, degrees about x (pitch), y, z; drawn anew for
        every scan.
    pet_offset_mm : tuple of float, default=(8.0, 10.0, 12.0)
        Head centre position in the PET scanner, mm from the field-of-view centre.
    """

    head_scale_sd: float = 0.06
    warp_rms_mm: float = 2.0
    warp_fwhm_mm: float = 30.0
    mr_rotation_deg: float = 5.0
    pet_rotation_deg: tuple[float, float, float] = (6.0, 4.0, 4.0)
    pet_offset_mm: tuple[float, float, float] = (8.0, 10.0, 12.0)


@dataclass(frozen=True)
class MotionSettings:
    """Head motion during a scan.

    Attributes
    ----------
    max_translation_mm : float, default=3.0
        Largest translation of the head centre by the end of the scan, mm (3D norm).
    max_rotation_deg : float, default=2.0
        Largest rotation angle by the end of the scan, degrees.
    jitter_mm : float, default=0.1
        Frame-to-frame jitter of the translation, mm (SD per axis).
    jitter_deg : float, default=0.05
        Frame-to-frame jitter of the rotation, degrees (SD per axis).
    """

    max_translation_mm: float = 3.0
    max_rotation_deg: float = 2.0
    jitter_mm: float = 0.1
    jitter_deg: float = 0.05


@dataclass(frozen=True)
class HeadGeometry:
    """A subject's anatomy relative to MNI.

    Attributes
    ----------
    affine_mni_from_native : ndarray of shape (4, 4)
        Linear part ``A`` of the native -> MNI mapping.
    warp : ndarray of shape (3, nx, ny, nz)
        Displacement ``u`` (mm) on the warp grid, MNI coordinates.
    warp_affine : ndarray of shape (4, 4)
        Warp grid voxel -> MNI mm.
    """

    affine_mni_from_native: np.ndarray
    warp: np.ndarray
    warp_affine: np.ndarray

    @property
    def native_centre(self) -> np.ndarray:
        """The MNI brain centre in native space, mm (ignoring the small warp)."""
        return (np.linalg.inv(self.affine_mni_from_native)
                @ np.append(MNI_BRAIN_CENTRE, 1.0))[:3]

    def displacement(self, mni_points: np.ndarray) -> np.ndarray:
        """``u`` at MNI points (n, 3), mm; zero outside the warp grid."""
        ijk = _apply(np.linalg.inv(self.warp_affine), mni_points).T
        return np.stack([map_coordinates(c, ijk, order=1, mode="nearest")
                         for c in self.warp], axis=1)

    def mni_from_native(self, points: np.ndarray) -> np.ndarray:
        """MNI coordinates (n, 3) of native points (n, 3), mm."""
        y = _apply(self.affine_mni_from_native, points)
        return y + self.displacement(y)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, float)
    return points @ matrix[:3, :3].T + matrix[:3, 3]


def _rigid(rotation_deg: np.ndarray, centre: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotate about ``centre`` and move ``centre`` to ``target``."""
    m = np.eye(4)
    m[:3, :3] = Rotation.from_rotvec(np.radians(rotation_deg)).as_matrix()
    m[:3, 3] = target - m[:3, :3] @ centre
    return m


def draw_head_geometry(rng: np.random.Generator, settings: PoseSettings = PoseSettings()
                       ) -> HeadGeometry:
    """Draw one subject's head size, MR orientation and non-linear anatomy.

    The native space puts the brain centre near the MR isocentre (0, 0, 0) +- 5 mm.

    Parameters
    ----------
    rng : Generator
        The subject's generator.
    settings : PoseSettings, default=PoseSettings()
        Ranges of size, orientation and warps.
    """
    sd = settings.head_scale_sd
    scale = np.exp(sd * rng.standard_normal() + 0.5 * sd * rng.standard_normal(3))
    native_from_mni = np.eye(4)
    rotation = Rotation.from_rotvec(np.radians(settings.mr_rotation_deg
                                               * rng.standard_normal(3))).as_matrix()
    native_from_mni[:3, :3] = rotation @ np.diag(scale)
    native_from_mni[:3, 3] = (5.0 * rng.standard_normal(3)
                              - native_from_mni[:3, :3] @ MNI_BRAIN_CENTRE)
    lo, hi = _WARP_BOX
    shape = tuple(int(n) for n in np.ceil((hi - lo) / _WARP_SPACING) + 1)
    warp = rng.standard_normal((3, *shape))
    if settings.warp_rms_mm > 0:
        sigma = settings.warp_fwhm_mm / 2.3548 / _WARP_SPACING
        warp = np.stack([gaussian_filter(c, sigma, mode="wrap") for c in warp])
        warp *= settings.warp_rms_mm / np.sqrt((warp ** 2).sum(axis=0).mean())
    else:
        warp[:] = 0.0
    warp_affine = np.diag([_WARP_SPACING] * 3 + [1.0])
    warp_affine[:3, 3] = lo
    return HeadGeometry(affine_mni_from_native=np.linalg.inv(native_from_mni), warp=warp,
                        warp_affine=warp_affine)


def draw_pose(rng: np.random.Generator, head: HeadGeometry,
              settings: PoseSettings = PoseSettings()) -> np.ndarray:
    """Head position of one PET scan: ``scanner_from_native`` (4x4), brain centre placed
    near the field-of-view centre.

    Parameters
    ----------
    rng : Generator
        The scan's generator.
    head : HeadGeometry
        The subject's head.
    settings : PoseSettings, default=PoseSettings()
        Ranges of position and rotation in the scanner.
    """
    rotation = np.asarray(settings.pet_rotation_deg) * rng.standard_normal(3)
    offset = np.asarray(settings.pet_offset_mm) * rng.standard_normal(3)
    return _rigid(rotation, head.native_centre, offset)


def draw_motion(rng: np.random.Generator, times: np.ndarray, scan_end: float,
                centre: np.ndarray, settings: MotionSettings = MotionSettings()
                ) -> np.ndarray:
    """Rigid head motion in scanner space at each time: ``(n, 4, 4)`` matrices.

    Parameters
    ----------
    rng : numpy.random.Generator
    times : ndarray of shape (n,)
        Frame mid-times, minutes.
    scan_end : float
        Minutes.
    centre : ndarray of shape (3,)
        Head centre in scanner space at scan start, mm (rotation centre).
    settings : MotionSettings

    Returns
    -------
    ndarray of shape (n, 4, 4)
        ``motion_k``: scanner point at scan start -> scanner point at time k. The drift
        reaches ``U(0.5, 1)`` of each maximum by ``scan_end`` (profile ``(t/T)^p``,
        ``p ~ U(0.7, 1.5)``); jitter is added, and the result is scaled back if any frame
        exceeds the maxima.
    """
    times = np.asarray(times, float)
    direction_t = rng.standard_normal(3)
    direction_r = rng.standard_normal(3)
    direction_t /= np.linalg.norm(direction_t)
    direction_r /= np.linalg.norm(direction_r)
    amp_t = rng.uniform(0.5, 1.0) * settings.max_translation_mm
    amp_r = rng.uniform(0.5, 1.0) * settings.max_rotation_deg
    profile = np.clip(times / scan_end, 0.0, 1.0) ** rng.uniform(0.7, 1.5)
    trans = profile[:, None] * amp_t * direction_t
    rot = profile[:, None] * amp_r * direction_r
    trans = trans + settings.jitter_mm * rng.standard_normal(trans.shape)
    rot = rot + settings.jitter_deg * rng.standard_normal(rot.shape)
    t_norm = np.linalg.norm(trans, axis=1).max()
    r_norm = np.linalg.norm(rot, axis=1).max()
    if t_norm > settings.max_translation_mm:
        trans *= settings.max_translation_mm / t_norm
    if r_norm > settings.max_rotation_deg:
        rot *= settings.max_rotation_deg / r_norm
    return np.stack([_rigid(r, centre, centre + t) for t, r in zip(trans, rot, strict=True)])
