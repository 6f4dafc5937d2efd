"""Coordinate fields: a grid whose voxels hold the coordinates (mm) of another space.

Registration results are turned into two fields per subject, so that every later step
(region masks in native space, warping maps to MNI) is a numpy interpolation with no ANTs:

- ``mni_from_t1``: on a T1w-space grid, the MNI coordinates of each point;
- ``t1_from_mni``: on the MNI analysis grid, the T1w-space coordinates of each point.

A field is made by resampling an image whose values are its own world coordinates through
the registration's transforms; trilinear interpolation of a linear function is exact, so
the field holds the transform's own values at its voxel centres. Between voxel centres it is
interpolated linearly (the SyN warp is smooth on that scale: flow sigma 3 voxels of 2 mm).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike

import numpy as np
from scipy.ndimage import map_coordinates

from pipeline.errors import InputError, format_problem

__all__ = ["CoordinateField", "coordinate_grid", "read_field", "write_field"]


@dataclass(frozen=True)
class CoordinateField:
    """Coordinates of a target space on a grid of a source space.

    Attributes
    ----------
    data : ndarray of shape (3, nx, ny, nz), float32
        Target-space x, y, z (RAS mm) of each source-grid voxel centre.
    affine : ndarray of shape (4, 4)
        Source grid voxel -> source-space mm.
    """

    data: np.ndarray
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape of the grid."""
        return tuple(int(n) for n in self.data.shape[1:])

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Target-space coordinates (n, 3) of source-space points (n, 3), mm.

        Linear interpolation; points outside the grid take the nearest edge value
        (so the grid must cover every point that matters, which the writers ensure).
        """
        points = np.asarray(points, np.float64)
        inverse = np.linalg.inv(self.affine)
        ijk = (points @ inverse[:3, :3].T + inverse[:3, 3]).T
        return np.stack([map_coordinates(c, ijk, order=1, mode="nearest") for c in self.data],
                        axis=1)


def coordinate_grid(lo_mm: np.ndarray, hi_mm: np.ndarray, step_mm: float
                    ) -> tuple[tuple[int, int, int], np.ndarray]:
    """An axis-aligned (RAS) grid covering the box ``[lo_mm, hi_mm]`` at ``step_mm``."""
    lo, hi = np.asarray(lo_mm, float), np.asarray(hi_mm, float)
    shape = tuple(int(n) for n in np.ceil((hi - lo) / step_mm) + 1)
    affine = np.diag([float(step_mm)] * 3 + [1.0])
    affine[:3, 3] = lo
    return shape, affine


def write_field(field: CoordinateField, path: str | PathLike, *, space_from: str,
                space_to: str) -> str:
    """Write a field as a 4D NIfTI (last axis x/y/z, float32) with an intent name."""
    import nibabel as nib

    from pipeline.tables import atomic_path

    img = nib.Nifti1Image(np.moveaxis(field.data, 0, -1).astype(np.float32), field.affine)
    img.header.set_xyzt_units("mm")
    img.header.set_intent("vector", (), name=f"{space_to}<-{space_from}"[:15])
    img.header["descrip"] = f"{space_to} mm of {space_from} points"[:79].encode()
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    return str(path)


def read_field(path: str | PathLike) -> CoordinateField:
    """Read a field written by :func:`write_field`."""
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj, np.float32)
    if data.ndim != 4 or data.shape[-1] != 3:
        raise InputError(format_problem(
            path, f"a coordinate field must be 4D with 3 components; got shape {data.shape}",
            "Give the _desc-mnicoords / _desc-t1coords image written by the normalization "
            "step."))
    return CoordinateField(data=np.ascontiguousarray(np.moveaxis(data, -1, 0)),
                           affine=img.affine)
