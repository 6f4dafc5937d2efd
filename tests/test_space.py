"""Tests of pipeline.space: MNI grids and the field-of-view overlap check."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import InputError
from pipeline.space import check_overlap, mni_grid, overlap_fraction, voxel_volume_ml


@pytest.mark.parametrize("resolution", [2, 3])
def test_overlap_fraction_mni_grid_covers_whole_brain(resolution):
    """The standard MNI grids contain every voxel of the MNI brain mask."""
    shape, affine = mni_grid(resolution)
    assert overlap_fraction(shape, affine) == 1.0


def test_mni_grid_origin_maps_to_anterior_commissure():
    """Voxel (45, 63, 36) of the 2 mm grid is MNI (0, 0, 0) mm, as in FSL/SPM."""
    _, affine = mni_grid(2)
    np.testing.assert_array_equal(affine @ [45, 63, 36, 1], [0, 0, 0, 1])


def test_voxel_volume_ml_of_2mm_grid():
    """A 2 mm isotropic voxel is 8 mm^3 = 0.008 mL (exact)."""
    assert voxel_volume_ml(mni_grid(2)[1]) == pytest.approx(0.008, rel=1e-12)


def test_overlap_fraction_half_field_of_view():
    """An image holding only x > 0 of the MNI grid covers about half the brain."""
    shape, affine = mni_grid(2)
    # x = 90 - 2 i, so i in 0..44 is x in [2, 90] mm (the left hemisphere is x < 0).
    fraction = overlap_fraction((45, *shape[1:]), affine)
    assert 0.4 < fraction < 0.6  # the brain is nearly symmetric about x = 0


def test_overlap_fraction_against_a_grid_is_exact():
    """Against a grid reference the fraction is a voxel count ratio: 5 of 10 slices."""
    shape, affine = (10, 10, 10), np.eye(4)
    assert overlap_fraction((10, 10, 5), affine, reference=(shape, affine)) == 0.5


def test_check_overlap_accepts_partial_axial_field_of_view():
    """A scan missing the lowest 26 slices (cerebellum, brainstem) still passes."""
    _, affine = mni_grid(2)
    affine = affine.copy()
    affine[2, 3] += 52.0
    assert check_overlap((91, 109, 65, 28), affine, source="scan.nii.gz") > 0.7


def test_check_overlap_rejects_native_space_corner_origin():
    """A native image with the origin at its corner is refused, naming the file and the fix."""
    affine = np.diag([2.0, 2.0, 2.4, 1.0])
    with pytest.raises(InputError, match=r"sub-01_pet\.nii\.gz: the image's field of view "
                                         r"covers only .*% of the MNI152 brain(.|\n)*"
                                         r"normalize the PET images to MNI152"):
        check_overlap((128, 128, 63, 28), affine, source="sub-01_pet.nii.gz")


def test_check_overlap_rejects_singular_affine():
    """A header with zero voxel size gets an error naming the file."""
    with pytest.raises(InputError, match=r"x\.nii: the image affine is singular"):
        check_overlap((10, 10, 10), np.zeros((4, 4)), source="x.nii")


def test_check_overlap_min_fraction_is_configurable():
    """The same image passes or fails depending on min_fraction."""
    shape, affine = mni_grid(2)
    half = (45, *shape[1:])
    assert check_overlap(half, affine, source="a", min_fraction=0.3) < 0.6
    with pytest.raises(InputError, match="at least 90% needed"):
        check_overlap(half, affine, source="a", min_fraction=0.9)
