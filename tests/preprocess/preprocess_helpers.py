"""Helpers of the preprocessing tests: a brain-like volume on a 4 mm grid, moved by known
rigid transforms (see conftest.py)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import affine_transform, gaussian_filter

GRID4 = (48, 56, 48)


def affine4() -> np.ndarray:
    """4 mm RAS grid centred near the MNI brain (voxel (0,0,0) at (-94, -130, -78) mm)."""
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-94.0, -130.0, -78.0]
    return affine


def brain_volume() -> np.ndarray:
    """A smooth brain-like volume (GM + 0.4 WM, Bq/mL-like scale) on the 4 mm grid."""
    import nibabel as nib

    from pipeline.space import mni_template_file

    out = []
    for name in ("gm", "wm"):
        img = nib.load(str(mni_template_file(name)))
        chain = np.linalg.inv(img.affine) @ affine4()
        data = gaussian_filter(np.asarray(img.dataobj, np.float32), 2.0)
        out.append(affine_transform(data, chain[:3, :3], chain[:3, 3], output_shape=GRID4,
                                    order=1))
    return (10000.0 * (out[0] + 0.4 * out[1])).astype(np.float32)


def move(volume: np.ndarray, affine: np.ndarray, frame_from_reference: np.ndarray
         ) -> np.ndarray:
    """The volume as seen in a frame whose head moved by ``frame_from_reference``
    (frame value at point q = reference value at frame_from_reference^-1 q)."""
    voxel_map = np.linalg.inv(affine) @ np.linalg.inv(frame_from_reference) @ affine
    return affine_transform(volume, voxel_map[:3, :3], voxel_map[:3, 3], order=3,
                            mode="constant", cval=0.0)
