"""Tests of the voxelwise group maps (two-sample and per-group) on synthetic effect maps."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.groups import parse_groups
from pipeline.regions import build_masks, load_region_config
from pipeline.stats.voxelwise_groups import group_map_files, write_voxelwise_groups
from pipeline.tables import read_json, read_table, sidecar_path, write_json

VOXEL = 6.0
SHAPE = (32, 38, 32)
AFFINE = np.diag([-VOXEL, VOXEL, VOXEL, 1.0])
AFFINE[:3, 3] = [90.0, -126.0, -72.0]
SETTINGS = {"n_perm": 100, "height_threshold": 3.0, "cluster_threshold": 1,
            "smoothing_fwhm": 0}


def _effects(tmp_path, rng, n_a=8, n_b=8, release=8.0):
    """Effect maps (% change) inside the target regions: noise SD 2, and in HC a release
    of ``release`` % in thalamus_l (effect -release)."""
    masks = build_masks(load_region_config(None), SHAPE, AFFINE)
    targets = [i for i, n in enumerate(masks.names) if n != masks.reference]
    inside = np.any(masks.weights[targets] > 0.5, axis=0)
    thal = masks.weights[masks.names.index("thalamus_l")] > 0.5
    n = n_a + n_b
    data = np.full((*SHAPE, n), np.nan)
    data[inside] = rng.normal(0, 2.0, (int(inside.sum()), n))
    data[thal, :n_a] -= release
    pids = [f"sub-{i + 1:02d}" for i in range(n)]
    path = tmp_path / "rejection_model-m_effects.nii.gz"
    nib.save(nib.Nifti1Image(data.astype(np.float32), AFFINE), str(path))
    write_json(sidecar_path(path), {"participants": pids})
    parts = pd.DataFrame({"participant_id": pids, "group": ["HC"] * n_a + ["MDD"] * n_b,
                          "age": rng.integers(20, 40, n).astype(float)})
    return path, parts, thal, inside, data


def test_group_maps_find_the_planted_difference(tmp_path, rng):
    """The difference map is positive (HC released more) in thalamus_l, with FWE p < 0.05
    there, its t equals Student's t of activation at a voxel, the HC map is negative
    there and the MDD map is not; clusters name thalamus_l."""
    path, parts, thal, inside, data = _effects(tmp_path, rng)
    groups = parse_groups({"column": "group", "levels": ["HC", "MDD"]})
    outputs = group_map_files(groups, str(tmp_path / "rejection_model-m"))
    write_voxelwise_groups(path, parts, outputs, groups=groups, settings=SETTINGS)
    t = np.asarray(nib.load(outputs["diff_HCvsMDD_tmap"]).dataobj, float)
    assert t[thal].mean() > 5.0
    assert abs(t[inside & ~thal].mean()) < 0.3
    voxel = tuple(np.argwhere(thal)[0])
    ref = stats.ttest_ind(-data[voxel][:8], -data[voxel][8:], equal_var=True)
    assert t[voxel] == pytest.approx(ref.statistic, rel=1e-4)
    fwe = np.asarray(nib.load(outputs["diff_HCvsMDD_fwep"]).dataobj, float)
    assert fwe[thal].max() > -np.log10(0.05)
    hc = np.asarray(nib.load(outputs["group_HC_tmap"]).dataobj, float)
    mdd = np.asarray(nib.load(outputs["group_MDD_tmap"]).dataobj, float)
    assert hc[thal].mean() < -5.0 and abs(mdd[thal].mean()) < 1.0
    clusters = read_table(outputs["diff_HCvsMDD_clusters"])
    assert clusters.loc[clusters.peak_t.idxmax(), "region"] == "thalamus_l"
    side = read_json(sidecar_path(outputs["diff_HCvsMDD_tmap"]))
    assert side["design_columns"] == ["intercept", "group"] and len(side["participants"]) == 16


def test_group_maps_with_covariate_and_too_small_group(tmp_path, rng):
    """A covariate enters the design (demeaned); a group with < 3 participants gets zero
    maps whose sidecars say why, the others are still made."""
    path, parts, *_ = _effects(tmp_path, rng, n_a=8, n_b=2)
    groups = parse_groups({"column": "group", "levels": ["HC", "MDD"],
                           "covariates": ["age"]})
    outputs = group_map_files(groups, str(tmp_path / "rejection_model-m"))
    write_voxelwise_groups(path, parts, outputs, groups=groups,
                           settings={**SETTINGS, "n_perm": 0})
    assert "at least 3" in read_json(sidecar_path(outputs["diff_HCvsMDD_tmap"]))["skipped"]
    assert not np.asarray(nib.load(outputs["group_MDD_tmap"]).dataobj).any()
    assert read_table(outputs["group_MDD_clusters"]).empty
    side = read_json(sidecar_path(outputs["group_HC_tmap"]))
    assert side["design_columns"] == ["intercept", "age"]
