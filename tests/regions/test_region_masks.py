"""Tests of build_masks: region construction steps, counts, overlaps, FOV, cache."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from pipeline.errors import ConfigError, InputError
from pipeline.regions import build_masks, label_image, load_region_config
from pipeline.space import mni_grid


def _build(tmp_path, write_config, body, grid):
    return build_masks(load_region_config(write_config(tmp_path, body)), *grid)


def test_build_masks_label_blocks_exact(tmp_path, label_atlas, write_config, grid8, blocks):
    """On the atlas's own grid each region is exactly its block: 27 voxels of 0.512 mL."""
    masks = _build(tmp_path, write_config, """\
        reference: a
        regions:
          a: {labels: [1]}
          b: {labels: [left_block]}
        """, grid8)
    assert masks.names == ["a", "b"]
    expected = np.zeros(grid8[0], bool)
    expected[blocks[1]] = True
    np.testing.assert_array_equal(masks.weights[0] > 0, expected)
    np.testing.assert_array_equal(masks.n_voxels, [27, 27])
    np.testing.assert_allclose(masks.volume_ml, [27 * 0.512] * 2, rtol=1e-12)
    np.testing.assert_array_equal(masks.outside_fov_fraction, [0.0, 0.0])
    assert masks.weights.dtype == np.float32
    assert masks.reference == "a"


def test_build_masks_hemisphere_splits_midline_block(tmp_path, label_atlas, write_config, grid8):
    """Block 3 spans x = 10, 2, -6 mm: left keeps the x = -6 slab (9 voxels), right 18."""
    masks = _build(tmp_path, write_config, """\
        reference: r
        regions:
          l: {labels: [3], hemisphere: left}
          r: {labels: [3], hemisphere: right}
        """, grid8)
    np.testing.assert_array_equal(masks.n_voxels, [9, 18])


def test_build_masks_erosion_leaves_block_centre(tmp_path, label_atlas, write_config, grid8,
                                                 blocks):
    """Eroding a 3x3x3 block by one voxel (8 mm) leaves its centre voxel only."""
    masks = _build(tmp_path, write_config, """\
        reference: a
        regions:
          a: {labels: [1], erode_voxels: 1}
          b: {labels: [2], erode_mm: 8}
        """, grid8)
    np.testing.assert_array_equal(masks.n_voxels, [1, 1])
    assert masks.weights[0][6, 11, 9] == 1.0


def test_build_masks_sphere_counts_lattice_points(tmp_path, label_atlas, write_config):
    """A sphere of radius 5 mm on the 2 mm grid holds the lattice points within 5 mm: 81."""
    masks = _build(tmp_path, write_config, """\
        reference: s
        regions:
          s: {sphere: {center: [0, -32, -10], radius: 5}}
        """, mni_grid(2))
    offsets = np.arange(-2, 3) * 2.0
    inside = sum(1 for x in offsets for y in offsets for z in offsets if x * x + y * y + z * z
                 <= 25.0)
    assert masks.n_voxels[0] == inside == 81


def test_build_masks_exclude_with_margin(tmp_path, label_atlas, write_config, grid8):
    """A 28 mm sphere around block 1 loses the block (27 voxels), with an 8 mm margin more."""
    masks = _build(tmp_path, write_config, """\
        reference: big
        regions:
          big: {sphere: {center: [42, -38, 0], radius: 28}, exclude: [a]}
          wide: {sphere: {center: [42, -38, 0], radius: 28}, exclude: [a], exclude_margin_mm: 8}
          a: {labels: [1]}
        allow_overlap: [[big, wide]]
        """, grid8)
    whole = _build(tmp_path, write_config, """\
        reference: big
        regions:
          big: {sphere: {center: [42, -38, 0], radius: 28}}
        """, grid8).n_voxels[0]
    assert masks.n_voxels[0] == whole - 27
    # The 8 mm margin adds the 6-connected face neighbours of the block: 6 faces of 9 voxels.
    assert masks.n_voxels[1] == whole - 27 - 54


def test_build_masks_forbidden_overlap_names_pair(tmp_path, label_atlas, write_config, grid8):
    """Two regions sharing voxels fail unless allowed, naming the pair and the fix."""
    body = """\
        reference: a
        regions:
          a: {labels: [1]}
          b: {labels: [1, 2]}
        """
    with pytest.raises(ConfigError, match=r"regions\.yaml, allow_overlap: overlapping regions: "
                                          r"'a' and 'b' share 27 voxels(.|\n)*exclude"):
        _build(tmp_path, write_config, body, grid8)
    allowed = _build(tmp_path, write_config, body + "allow_overlap: [[b, a]]\n", grid8)
    np.testing.assert_array_equal(allowed.n_voxels, [27, 54])


def test_build_masks_empty_after_threshold(tmp_path, write_config, grid8):
    """A probabilistic label that never reaches the threshold is an error naming the step."""
    prob = np.zeros((*grid8[0], 1), np.float32)
    prob[10, 10, 10, 0] = 0.3
    nib.Nifti1Image(prob, grid8[1]).to_filename(tmp_path / "prob.nii.gz")
    (tmp_path / "prob.tsv").write_text("0\tfaint\n")
    (tmp_path / "labels.nii.gz").touch()
    (tmp_path / "labels.tsv").write_text("1\tx\n")
    path = tmp_path / "p.yaml"
    path.write_text("reference: f\natlases:\n  p: {image: prob.nii.gz, labels: prob.tsv, "
                    "kind: probabilistic}\nregions:\n  f: {atlas: p, labels: [faint]}\n")
    with pytest.raises(ConfigError, match=r"p\.yaml, region 'f': the region is empty after "
                                          r"resampling atlas 'p' and thresholding at 0\.5"):
        build_masks(load_region_config(path), *grid8)


def test_build_masks_empty_after_erosion(tmp_path, label_atlas, write_config, grid8):
    """Eroding a 3-voxel-wide block by 2 voxels empties it: the error says so."""
    with pytest.raises(ConfigError, match="region 'a': the region is empty after eroding by 16 mm"):
        _build(tmp_path, write_config, "reference: a\nregions:\n  a: {labels: [1], "
                                       "erode_voxels: 2}\n", grid8)


def test_build_masks_reference_too_small(tmp_path, label_atlas, write_config, grid8):
    """A reference below min_reference_voxels is refused, naming region and config."""
    path = write_config(tmp_path, "reference: a\nregions:\n  a: {labels: [1]}\n")
    path.write_text(path.read_text().replace("min_reference_voxels: 1", "min_reference_voxels: 28"))
    with pytest.raises(InputError, match=r"reference region 'a' of .*regions\.yaml has 27 voxels "
                                         r"inside the field of view \(at least 28 needed"):
        build_masks(load_region_config(path), *grid8)


def test_build_masks_partial_fov_fraction(tmp_path, label_atlas, write_config, grid8):
    """Cutting the grid through block 1 (i = 5..7) at i = 6 leaves 1/3 of it inside."""
    shape, affine = grid8
    cut = affine.copy()
    cut[0, 3] = 90.0 - 8 * 6  # the new first slice is old slice i = 6
    masks = _build(tmp_path, write_config, "reference: b\nregions:\n  a: {labels: [1]}\n"
                                           "  b: {labels: [2]}\n", ((17, *shape[1:]), cut))
    assert masks.n_voxels[0] == 18
    assert masks.outside_fov_fraction[0] == pytest.approx(1 / 3, rel=1e-12)
    assert masks.outside_fov_fraction[1] == 0.0


def test_build_masks_region_outside_fov(tmp_path, label_atlas, write_config, grid8):
    """A region wholly outside the image's field of view is an error naming it."""
    shape, affine = grid8
    cut = affine.copy()
    cut[0, 3] = 90.0 - 8 * 9  # starts at i = 9, after block 1
    with pytest.raises(InputError, match=r"region 'a' of .* lies wholly outside"):
        _build(tmp_path, write_config, "reference: b\nregions:\n  a: {labels: [1]}\n"
                                       "  b: {labels: [2]}\n", ((14, *shape[1:]), cut))


def test_build_masks_native_space_grid_refused(tmp_path, label_atlas, write_config):
    """A grid with its origin at a corner (native space) is refused before any work."""
    path = write_config(tmp_path, "reference: a\nregions:\n  a: {labels: [1]}\n")
    with pytest.raises(InputError, match=r"scan\.nii: the image's field of view covers only"):
        build_masks(load_region_config(path), (128, 128, 63), np.diag([2.0, 2, 2.4, 1]),
                    source="scan.nii")


def test_label_image_numbers_regions(tmp_path, label_atlas, write_config, grid8, blocks):
    """0 outside regions, i + 1 inside region i."""
    masks = _build(tmp_path, write_config, "reference: a\nregions:\n  a: {labels: [1]}\n"
                                           "  b: {labels: [2]}\n", grid8)
    labels = label_image(masks)
    assert np.all(labels[blocks[1]] == 1) and np.all(labels[blocks[2]] == 2)
    assert np.count_nonzero(labels) == 54


def test_build_masks_disk_cache_round_trip(tmp_path, label_atlas, write_config, grid8):
    """A second process-free load from the disk cache gives identical masks."""
    from pipeline.regions import masks as masks_module

    region_set = load_region_config(write_config(tmp_path, "reference: a\nregions:\n"
                                                           "  a: {labels: [1, 3]}\n"))
    first = build_masks(region_set, *grid8, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("regions-*.npz"))) == 1
    masks_module._MEMORY.clear()
    second = build_masks(region_set, *grid8, cache_dir=tmp_path / "cache")
    assert second is not first
    np.testing.assert_array_equal(second.weights, first.weights)
    np.testing.assert_array_equal(second.n_voxels, first.n_voxels)


def test_build_masks_user_mask_and_grey_matter(tmp_path, label_atlas, write_config, grid8,
                                               blocks):
    """A user mask keeps its voxels; a user grey-matter map at 0.5 keeps only GM >= 0.5."""
    shape, affine = grid8
    mask = np.zeros(shape, np.uint8)
    mask[blocks[2]] = 1
    nib.Nifti1Image(mask, affine).to_filename(tmp_path / "mask.nii.gz")
    gm = np.zeros(shape, np.float32)
    gm[5:8, 10:13, 8] = 0.7   # one 3x3 slab of block 1 is grey matter...
    gm[5:8, 10:13, 9] = 0.49  # ...the next slab just misses the threshold
    nib.Nifti1Image(gm, affine).to_filename(tmp_path / "gm.nii.gz")
    masks = _build(tmp_path, write_config, """\
        reference: m
        grey_matter_map: gm.nii.gz
        regions:
          m: {mask: mask.nii.gz}
          g: {labels: [1], grey_matter: 0.5}
        """, grid8)
    np.testing.assert_array_equal(masks.n_voxels, [27, 9])
    assert np.all(masks.weights[1][5:8, 10:13, 8] == 1.0)


def test_build_masks_builtin_label_atlas(tmp_path):
    """A region from a built-in label atlas (Neuromorphometrics) builds on the 3 mm grid."""
    path = tmp_path / "n.yaml"
    path.write_text("reference: amy\natlas: neuromorphometrics\nmin_reference_voxels: 10\n"
                    "regions:\n  amy: {labels: [Left Amygdala]}\n")
    masks = build_masks(load_region_config(path), *mni_grid(3))
    # Neuromorphometrics' left amygdala is about 1.5 mL: 40-100 voxels of 27 uL.
    assert 40 <= masks.n_voxels[0] <= 100


def test_build_masks_probability_union_summed_and_clipped(tmp_path, grid8):
    """Union of labels sums probabilities: 0.3 + 0.3 passes a 0.5 threshold, 0.7 + 0.6 -> 1."""
    shape, affine = grid8
    prob = np.zeros((*shape, 2), np.float32)
    prob[10, 10, 10] = [0.3, 0.3]
    prob[10, 10, 11] = [0.7, 0.6]
    nib.Nifti1Image(prob, affine).to_filename(tmp_path / "prob.nii.gz")
    (tmp_path / "prob.tsv").write_text("0\tone\n1\ttwo\n")
    path = tmp_path / "p.yaml"
    path.write_text("reference: u\nmin_reference_voxels: 1\nallow_overlap: true\natlases:\n"
                    "  p: {image: prob.nii.gz, labels: prob.tsv, kind: probabilistic}\n"
                    "regions:\n  u: {atlas: p, labels: [one, two], weights: probability}\n"
                    "  o: {atlas: p, labels: [one], weights: probability}\n")
    masks = build_masks(load_region_config(path), *grid8)
    # Same grid as the atlas: interpolation returns the stored values (float32 rounding).
    np.testing.assert_allclose(masks.weights[0][10, 10, 10:12], [0.6, 1.0], rtol=1e-6)
    np.testing.assert_allclose(masks.weights[1][10, 10, 10:12], [0.0, 0.7], rtol=1e-6)
