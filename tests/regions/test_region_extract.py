"""Tests of TAC extraction: exact weighted means, NaN handling, partial FOV, written files."""

from __future__ import annotations

import json
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from factories import make_bids, scan_files

from pipeline.errors import InputError
from pipeline.frames import Frames
from pipeline.regions import build_masks, extract_tacs, load_region_config, write_region_tacs
from pipeline.tables import read_tacs

#: Per-frame activity of each block (Bq/mL), 4 frames.
CURVES = {1: [100.0, 400.0, 300.0, 200.0], 2: [50.0, 80.0, 90.0, 95.0], 3: [7.0, 8.0, 9.0, 10.0]}


def _phantom(shape, blocks, n_frames=4, background=1000.0):
    data = np.full((*shape, n_frames), background, np.float32)
    for label, block in blocks.items():
        data[block] = np.asarray(CURVES[label], np.float32)
    return data


def _three_regions(tmp_path, write_config):
    return load_region_config(write_config(tmp_path, """\
        reference: c
        regions:
          a: {labels: [1]}
          b: {labels: [2]}
          c: {labels: [3]}
        """))


def test_extract_tacs_uniform_blocks_exact(tmp_path, label_atlas, write_config, grid8, blocks):
    """Regions of uniform activity give back exactly that activity in every frame."""
    masks = build_masks(_three_regions(tmp_path, write_config), *grid8)
    tacs = extract_tacs(_phantom(grid8[0], blocks), masks)
    assert tacs.shape == (4, 3)
    # Mean of 27 equal float32 values, summed in float64: exact.
    np.testing.assert_array_equal(tacs, np.column_stack([CURVES[1], CURVES[2], CURVES[3]]))
    np.testing.assert_array_equal(tacs.nan_voxels, [0, 0, 0])


def test_extract_tacs_probability_weighting(tmp_path, grid8):
    """weights: probability gives sum(p x) / sum(p) over voxels with p >= threshold."""
    shape, affine = grid8
    prob = np.zeros((*shape, 1), np.float32)
    voxels = [(10, 12, 10), (10, 12, 11), (10, 12, 12), (10, 13, 10)]
    probs = np.array([1.0, 0.5, 0.25, 0.1], np.float32)  # the 0.1 voxel is below threshold
    for v, p in zip(voxels, probs, strict=True):
        prob[(*v, 0)] = p
    nib.Nifti1Image(prob, affine).to_filename(tmp_path / "prob.nii.gz")
    (tmp_path / "prob.tsv").write_text("index\tname\n0\tspot\n")
    path = tmp_path / "p.yaml"
    path.write_text("reference: s\nmin_reference_voxels: 1\natlases:\n  p: {image: prob.nii.gz, "
                    "labels: prob.tsv, kind: probabilistic, percent: false}\nregions:\n"
                    "  s: {atlas: p, labels: [spot], threshold: 0.2, weights: probability}\n")
    masks = build_masks(load_region_config(path), *grid8)
    assert masks.n_voxels[0] == 3
    values = np.array([10.0, 20.0, 40.0, 1e6])
    data = np.zeros((*shape, 2), np.float32)
    for v, x in zip(voxels, values, strict=True):
        data[v] = [x, 2 * x]
    expected = (1.0 * 10 + 0.5 * 20 + 0.25 * 40) / 1.75
    tacs = extract_tacs(data, masks)
    # Atlas and grid coincide, so interpolation returns the stored probabilities up to
    # float32 rounding of the voxel positions (< 1e-6 relative).
    np.testing.assert_allclose(tacs[:, 0], [expected, 2 * expected], rtol=1e-6)
    assert masks.volume_ml[0] == pytest.approx(1.75 * 0.512, rel=1e-6)


def test_extract_tacs_nan_voxels_excluded_and_counted(tmp_path, label_atlas, write_config,
                                                      grid8, blocks):
    """NaN voxels drop out of the frames where they are NaN and are counted per region."""
    masks = build_masks(_three_regions(tmp_path, write_config), *grid8)
    data = _phantom(grid8[0], blocks)
    data[6, 11, 9, 2] = np.nan  # block 1, frame 2 only
    data[6, 11, 10, 2] = 1e9  # block 1: an outlier that moves the mean by a known amount
    tacs = extract_tacs(data, masks)
    expected = (25 * CURVES[1][2] + 1e9) / 26
    assert tacs[2, 0] == pytest.approx(expected, rel=1e-12)
    assert tacs.nan_voxels[0] == 1 and tacs.nan_fraction[0] == pytest.approx(1 / 27)
    assert tacs[1, 0] == CURVES[1][1]


def test_extract_tacs_partial_fov_uses_voxels_inside(tmp_path, label_atlas, write_config,
                                                     grid8, blocks):
    """With the grid cut through block 1, the TAC is the mean of the part inside."""
    shape, affine = grid8
    cut = affine.copy()
    cut[0, 3] = 90.0 - 8 * 6
    masks = build_masks(_three_regions(tmp_path, write_config), (17, *shape[1:]), cut)
    data = _phantom(shape, blocks)[6:]
    data[0, 10:13, 8:11] = 500.0  # old slice i = 6: one third of block 1
    tacs = extract_tacs(data, masks)
    np.testing.assert_allclose(tacs[:, 0], (500.0 + np.asarray(CURVES[1])) / 2, rtol=1e-12)
    assert masks.outside_fov_fraction[0] == pytest.approx(1 / 3)


def test_extract_tacs_wrong_grid(tmp_path, label_atlas, write_config, grid8):
    """Data on another grid is refused with both shapes in the message."""
    masks = build_masks(_three_regions(tmp_path, write_config), *grid8)
    with pytest.raises(InputError, match=r"shape \(4, 4, 4, 2\) but the region masks were built "
                                         r"for grid \(23, 28, 23\)"):
        extract_tacs(np.zeros((4, 4, 4, 2)), masks)


def test_write_region_tacs_from_pet_image(tmp_path, label_atlas, write_config, grid8, blocks):
    """A loaded PetImage gives a TAC table in seconds and Bq/mL and a full sidecar."""
    config = write_config(tmp_path, "reference: c\nregions:\n  a: {labels: [1]}\n"
                                    "  b: {labels: [2]}\n  c: {labels: [3]}\n")
    frames = Frames.from_bids([0, 60, 180, 480], [60, 120, 300, 600])
    pet = SimpleNamespace(data=_phantom(grid8[0], blocks), frames=frames, affine=grid8[1],
                          scan=None, notes=["test image"])
    out = write_region_tacs(pet, config, tmp_path / "out" / "sub-01_desc-test_tacs.tsv")
    table = read_tacs(out)
    np.testing.assert_array_equal(table.column("a"), CURVES[1])
    np.testing.assert_array_equal(table.frames.start_seconds, [0, 60, 180, 480])
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["ReferenceRegion"] == "c"
    assert sidecar["Regions"]["a"] == {"n_voxels": 27, "volume_ml": pytest.approx(13.824),
                                       "outside_fov_fraction": 0.0, "nan_voxels": 0,
                                       "nan_fraction": 0.0, "missing_fraction": 0.0}
    assert sidecar["RegionConfig"]["atlases"][0]["name"] == "blocks"


def test_write_region_tacs_from_bids_path(tmp_path, label_atlas, write_config, grid8, blocks):
    """A BIDS image path is loaded (kBq/mL -> Bq/mL) and its regions extracted."""
    config = write_config(tmp_path, "reference: c\nregions:\n  a: {labels: [1]}\n"
                                    "  c: {labels: [3]}\n")
    root = make_bids(tmp_path / "bids", subjects=["01"], tasks=["rest"], shape=grid8[0],
                     affine=grid8[1], units="kBq/mL",
                     data=lambda stem, shape4d: _phantom(shape4d[:3], blocks, shape4d[3]) / 1e3
                     if shape4d[3] == 4 else np.ones(shape4d, np.float32),
                     durations=[60.0, 120.0, 300.0, 600.0])
    image = scan_files(root)[0]
    out = write_region_tacs(image, config, tmp_path / "t_tacs.tsv")
    np.testing.assert_allclose(read_tacs(out).column("a"), CURVES[1], rtol=1e-6)  # float32 kBq
    assert json.loads(out.with_suffix(".json").read_text())["Sources"] == [str(image)]


def test_write_region_tacs_writes_nothing_on_error(tmp_path, label_atlas, write_config):
    """A native-space image stops before any file is written."""
    config = write_config(tmp_path, "reference: a\nregions:\n  a: {labels: [1]}\n")
    pet = SimpleNamespace(data=np.zeros((64, 64, 32, 2), np.float32),
                          frames=Frames.from_bids([0, 60], [60, 60]),
                          affine=np.diag([2.0, 2.0, 2.0, 1.0]), scan=None, notes=[])
    out = tmp_path / "out" / "x_tacs.tsv"
    with pytest.raises(InputError, match="field of view covers only"):
        write_region_tacs(pet, config, out)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_extract_tacs_counts_survive_slicing(tmp_path, label_atlas, write_config, grid8, blocks):
    """A column slice of the result still carries the per-region NaN counts array."""
    masks = build_masks(_three_regions(tmp_path, write_config), *grid8)
    tacs = extract_tacs(_phantom(grid8[0], blocks), masks)
    np.testing.assert_array_equal(tacs[:, 0].nan_voxels, [0, 0, 0])


def test_extract_tacs_fortran_order_data(tmp_path, label_atlas, write_config, grid8, blocks):
    """Fortran-ordered data (as nibabel returns) gives the same TACs as C order."""
    masks = build_masks(_three_regions(tmp_path, write_config), *grid8)
    data = _phantom(grid8[0], blocks)
    np.testing.assert_array_equal(extract_tacs(np.asfortranarray(data), masks),
                                  extract_tacs(data, masks))
