"""Tissue fractions of a T1w (pipeline.preprocess.segment) and the subject's grey matter in
native-space regions (pipeline.preprocess.tissue_regions)."""

from __future__ import annotations

import numpy as np

from pipeline.preprocess.segment import (
    _fit_class_means,
    _partial_volumes,
    pet_voxel_average,
)
from pipeline.preprocess.tissue_regions import split_grey_matter_restriction


def _mixture(rng, means, sd, n_pure=(20000, 40000, 40000), n_mixed=(8000, 12000)):
    """Intensities of pure CSF/GM/WM voxels and of CSF-GM and GM-WM partial volumes (a
    uniform fraction of the brighter class), with Gaussian noise; and their true GM."""
    values, gm = [], []
    for k, n in enumerate(n_pure):
        values.append(means[k] + sd * rng.standard_normal(n))
        gm.append(np.full(n, 1.0 if k == 1 else 0.0))
    for a, n in enumerate(n_mixed):
        t = rng.uniform(0, 1, n)
        values.append((1 - t) * means[a] + t * means[a + 1] + sd * rng.standard_normal(n))
        gm.append(t if a == 0 else 1 - t)
    return np.concatenate(values), np.concatenate(gm)


def test_class_means_recovered_from_a_partial_volume_mixture():
    """The mixture fit finds the three class means within 2 % of the CSF-WM range (noise SD
    4 % of it, 20 % of voxels mixed; the prior modes start it 10 % off), and the unmixed
    grey-matter fractions are within 0.1 of the truth on average (noise alone moves a
    fraction by SD/(GM-CSF) = 0.1 per voxel)."""
    rng = np.random.default_rng(0)
    means = np.array([300.0, 650.0, 1000.0])
    values, true_gm = _mixture(rng, means, sd=28.0)
    # template priors that are only roughly right: the start of the fit
    priors = np.zeros((values.size, 3))
    priors[np.abs(values - means[0] - 35) < 60, 0] = 1.0
    priors[np.abs(values - means[1] - 35) < 60, 1] = 1.0
    priors[np.abs(values - means[2] - 35) < 60, 2] = 1.0
    fitted = _fit_class_means(values, priors)
    assert np.all(np.abs(fitted - means) < 0.02 * (means[2] - means[0])), fitted
    fractions = _partial_volumes(values, fitted)
    assert np.allclose(fractions.sum(axis=1), 1.0, atol=1e-6)
    assert np.mean(np.abs(fractions[:, 1] - true_gm)) < 0.1


def test_pet_voxel_average_is_the_mean_over_a_pet_voxel():
    """Averaging a 1 mm fraction map over 4 mm PET voxels keeps its total (a smoothing) and
    turns a sharp edge into a ramp about one PET voxel wide."""
    fraction = np.zeros((40, 40, 40), np.float32)
    fraction[:20] = 1.0
    smooth = pet_voxel_average(fraction, np.eye(4), [4.0, 4.0, 4.0])
    assert abs(smooth[5:35, 20, 20].sum() - fraction[5:35, 20, 20].sum()) < 1e-3
    assert smooth[17, 20, 20] > 0.7 and smooth[22, 20, 20] < 0.3
    assert 0.45 < smooth[19:21, 20, 20].mean() < 0.55


def test_grey_matter_restriction_is_split_off():
    """Regions with a grey_matter threshold lose it (their own cache digest) and the
    thresholds are returned; a set without any comes back unchanged."""
    from pipeline.regions import load_region_config

    regions = load_region_config(None)
    unrestricted, thresholds = split_grey_matter_restriction(regions)
    restricted = {n for n, spec in regions.regions.items() if spec.grey_matter is not None}
    assert set(thresholds) == restricted
    if restricted:
        assert all(unrestricted.regions[n].grey_matter is None for n in restricted)
        assert unrestricted.digest != regions.digest
        again, none = split_grey_matter_restriction(unrestricted)
        assert again is unrestricted and none == {}


def test_mask_cache_keeps_derived_region_sets_apart(tmp_path):
    """The on-disk mask cache names files by the whole region-set digest: the set without
    its grey-matter restriction (digest + suffix) and the set itself get their own files,
    so a later process reading the cache gets the masks it asked for (a prefix of the
    digest once made the MNI analysis read the unrestricted reference region)."""
    from pipeline.regions import build_masks, load_region_config
    from pipeline.regions import masks as masks_module
    from pipeline.space import mni_grid

    regions = load_region_config(None)
    unrestricted, thresholds = split_grey_matter_restriction(regions)
    assert thresholds  # the shipped reference region is restricted to grey matter
    shape, affine = mni_grid(3)
    built = build_masks(unrestricted, shape, affine, cache_dir=tmp_path)
    masks_module._MEMORY.clear()  # as a new process: only the disk cache
    restricted = build_masks(regions, shape, affine, cache_dir=tmp_path)
    ref = regions.names.index(regions.reference)
    assert restricted.n_voxels[ref] < built.n_voxels[ref]
    assert len(list(tmp_path.glob("regions-*.npz"))) == 2
    masks_module._MEMORY.clear()
    again = build_masks(regions, shape, affine, cache_dir=tmp_path)
    assert np.array_equal(again.weights, restricted.weights)
