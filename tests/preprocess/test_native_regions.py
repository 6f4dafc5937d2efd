"""Atlas regions pulled into a native grid: identity and known rigid moves."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.preprocess.fields import CoordinateField, coordinate_grid
from pipeline.preprocess.native_regions import extract_native_tacs, native_region_masks
from pipeline.preprocess.rigid import matrix_from_params
from pipeline.regions import RegionMasks, extract_tacs
from pipeline.space import voxel_volume_ml


def _identity_field(step: float = 4.0) -> CoordinateField:
    shape, affine = coordinate_grid([-120, -160, -100], [120, 120, 120], step)
    ijk = np.indices(shape, dtype=np.float64)
    world = np.tensordot(affine[:3, :3], ijk, axes=(1, 0)) + affine[:3, 3, None, None, None]
    return CoordinateField(world.astype(np.float32), affine)


def _blob_masks() -> RegionMasks:
    """Two smooth-edged cubes and a reference slab on a 4 mm MNI-like grid."""
    shape = (40, 48, 40)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    affine[:3, 3] = [-80.0, -110.0, -60.0]
    weights = np.zeros((3, *shape), np.float32)
    weights[0, 10:16, 20:26, 15:21] = 1.0
    weights[1, 24:30, 20:26, 15:21] = 1.0
    weights[2, 12:28, 6:10, 10:24] = 1.0
    n = weights.reshape(3, -1).sum(1)
    vox = voxel_volume_ml(affine)
    return RegionMasks(names=["a", "b", "ref"], weights=weights, reference="ref", shape=shape,
                       affine=affine, voxel_volume_ml=vox, n_voxels=n.astype(int),
                       volume_ml=n * vox, outside_fov_fraction=np.zeros(3))


def test_identity_gives_the_mni_masks():
    """Same grid, identity transforms: the native weights are the MNI weights."""
    masks = _blob_masks()
    native = native_region_masks(masks, _identity_field(), np.eye(4), masks.shape,
                                 masks.affine)
    np.testing.assert_allclose(native.weights, masks.weights, atol=1e-5)
    np.testing.assert_array_equal(native.n_voxels, masks.n_voxels)
    np.testing.assert_allclose(native.outside_fov_fraction, 0.0, atol=1e-9)


def test_moving_frames_follow_their_regions(rng):
    """Each frame's content is shifted by its own motion; per-frame masks recover the
    unshifted TACs exactly (integer-voxel shifts: no interpolation anywhere)."""
    masks = _blob_masks()
    values = np.array([5.0, 9.0, 2.0])                      # activity of a, b, ref
    base = np.tensordot(values, masks.weights, axes=(0, 0))  # (x, y, z)
    shifts = [(0, 0, 0), (1, 0, 0), (0, -2, 1), (2, 1, -1)]  # voxels (4 mm)
    scale = np.array([1.0, 2.0, 3.0, 4.0])                   # frame-dependent activity
    frames = np.stack([s * np.roll(base, shift, axis=(0, 1, 2))
                       for s, shift in zip(scale, shifts, strict=True)], axis=-1)
    frame_from_reference = np.stack([matrix_from_params([4.0 * a, 4.0 * b, 4.0 * c, 0, 0, 0])
                                     for a, b, c in shifts])
    tacs, _ = extract_native_tacs(frames, masks, _identity_field(), np.eye(4), masks.affine,
                                  np.linalg.inv(frame_from_reference))
    np.testing.assert_allclose(np.asarray(tacs), scale[:, None] * values[None], rtol=1e-5)
    # Ignoring motion smears the regions: region a picks up other activity.
    still = extract_tacs(frames[..., 3], masks)
    assert abs(np.asarray(still)[0, 0] - 4 * 5.0) > 1.0


def test_rigid_pet_to_t1_transform_is_applied():
    """A PET grid displaced by a known rigid transform gets the displaced masks."""
    masks = _blob_masks()
    t1_from_pet = matrix_from_params([8.0, -4.0, 0.0, 0, 0, 0])
    native = native_region_masks(masks, _identity_field(), t1_from_pet, masks.shape,
                                 masks.affine)
    # PET voxel v sits at MNI v + (8, -4, 0) mm = v + (2, -1, 0) voxels.
    expected = np.roll(masks.weights, (-2, 1, 0), axis=(1, 2, 3))
    np.testing.assert_allclose(native.weights, expected, atol=1e-5)


def test_region_outside_the_field_of_view_is_an_error():
    """A frame whose motion pushes a region out of the grid is refused, naming it."""
    from pipeline.errors import InputError

    masks = _blob_masks()
    frames = np.ones((*masks.shape, 1), np.float32)
    far = np.linalg.inv(matrix_from_params([0.0, 0.0, 200.0, 0, 0, 0]))[None]
    with pytest.raises(InputError, match="outside the PET field of view in frame 0"):
        extract_native_tacs(frames, masks, _identity_field(), np.eye(4), masks.affine, far)


def test_binary_regions_stay_binary_under_subvoxel_moves():
    """A binary MNI region pulled through a 0.3-voxel shift is thresholded at 0.5 after
    interpolation (label resampling): weights stay 0/1 and the voxel count is unchanged (a
    cube shifted by 0.3 voxel along x still covers as many voxel centres); a
    fractional (probability-weighted) region keeps its interpolated weights."""
    masks = _blob_masks()
    weights = masks.weights.copy()
    weights[1] *= 0.6                                  # region b: probability weights
    masks = RegionMasks(names=masks.names, weights=weights, reference="ref",
                        shape=masks.shape, affine=masks.affine,
                        voxel_volume_ml=masks.voxel_volume_ml, n_voxels=masks.n_voxels,
                        volume_ml=masks.volume_ml, outside_fov_fraction=masks.outside_fov_fraction)
    t1_from_pet = matrix_from_params([1.2, 0.0, 0.0, 0, 0, 0])       # 0.3 voxel along x
    native = native_region_masks(masks, _identity_field(), t1_from_pet, masks.shape,
                                 masks.affine)
    for r in (0, 2):
        assert set(np.unique(native.weights[r])) == {0.0, 1.0}
        assert native.n_voxels[r] == masks.n_voxels[r]
    b = native.weights[1][native.weights[1] > 0]
    assert np.any((b > 0) & (b < 0.6 - 1e-3))          # edges interpolated, not thresholded
    np.testing.assert_allclose(b.sum(), weights[1].sum(), rtol=1e-4)
