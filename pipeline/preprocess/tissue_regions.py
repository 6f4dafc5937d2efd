"""Grey-matter restriction of regions in a scan's own space, with the subject's grey matter.

A region with ``grey_matter: p`` in the region config keeps, in MNI space, the voxels where
the MNI152 grey-matter template is at least ``p``. In native space the region is built in
two parts instead: the region *without* that restriction (e.g. the occipital lobe's atlas
labels, a large region that a millimetre of normalization error hardly changes) is pulled
into the PET grid through the transforms, and is then restricted to the PET voxels whose
grey-matter fraction is at least ``p``, the fraction coming from the subject's own T1w
(:mod:`pipeline.preprocess.segment`) averaged over each PET voxel. The cortical ribbon is
then where this subject's cortex is, as exactly as the rigid PET-T1w coregistration.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import map_coordinates

from pipeline.preprocess.segment import pet_voxel_average
from pipeline.regions.config import RegionSet

__all__ = ["GreyMatter", "TissueMap", "split_grey_matter_restriction"]


def split_grey_matter_restriction(region_set: RegionSet) -> tuple[RegionSet, dict[str, float]]:
    """The region set without its grey-matter restrictions, and the restrictions.

    Parameters
    ----------
    region_set : RegionSet

    Returns
    -------
    unrestricted : RegionSet
        Every ``grey_matter`` threshold removed (its own mask-cache digest); overlaps are
        allowed, since two restricted regions may share white matter before restriction.
    thresholds : dict of str to float
        Region name -> grey-matter fraction threshold (0-1), for the restricted regions.
    """
    thresholds = {name: float(spec.grey_matter) for name, spec in region_set.regions.items()
                  if spec.grey_matter is not None}
    if not thresholds:
        return region_set, {}
    regions = {name: dataclasses.replace(spec, grey_matter=None) if name in thresholds
               else spec for name, spec in region_set.regions.items()}
    unrestricted = dataclasses.replace(region_set, regions=regions, allow_overlap=True,
                                       digest=f"{region_set.digest}-no-grey-matter")
    return unrestricted, thresholds


class TissueMap:
    """A tissue fraction of the T1w, averaged over PET-sized voxels, read at T1w points.

    Parameters
    ----------
    fraction : ndarray (3D)
        Fraction (0-1) on the T1w grid (e.g. ``TissueFractions.gm``).
    affine : ndarray of shape (4, 4)
        T1w voxel -> T1w world mm.
    pet_voxel_mm : array-like of shape (3,)
        The PET voxel size, mm (the averaging volume, :func:`pet_voxel_average`).
    """

    def __init__(self, fraction: np.ndarray, affine: np.ndarray, pet_voxel_mm) -> None:
        self.data = pet_voxel_average(fraction, affine, np.asarray(pet_voxel_mm, float))
        self.inverse = np.linalg.inv(np.asarray(affine, float))

    def __call__(self, t1_points: np.ndarray) -> np.ndarray:
        """Fractions (n,) at T1w-world points (n, 3), mm; 0 outside the T1w grid."""
        ijk = np.asarray(t1_points, np.float64) @ self.inverse[:3, :3].T + self.inverse[:3, 3]
        return map_coordinates(self.data, ijk.T, order=1, mode="constant", cval=0.0)


@dataclasses.dataclass(frozen=True)
class GreyMatter:
    """The subject's grey matter and the regions restricted to it.

    Attributes
    ----------
    fraction : TissueMap
        Grey-matter fraction of PET-sized voxels, read at T1w points.
    thresholds : dict of str to float
        Region name -> smallest grey-matter fraction of its PET voxels (0-1).
    """

    fraction: TissueMap
    thresholds: dict[str, float]
