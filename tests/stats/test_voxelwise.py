"""Tests of pipeline.stats.voxelwise: effect maps, labelled clusters, and the voxelwise
family-wise error rate on null studies (slow)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.config import load_config
from pipeline.design import k2prime_settings, load_design
from pipeline.kinetics import estimate_k2prime, fit_conditions
from pipeline.kinetics.release import release_free_tacs, segment_boundaries
from pipeline.parametric import fit_voxels
from pipeline.regions import build_masks, load_region_config
from pipeline.simulate.roi import simulate_region_tacs
from pipeline.stats.contrast_tests import summarize_contrasts
from pipeline.stats.drift import drift_table
from pipeline.stats.regional import contrast_values
from pipeline.stats.voxelwise import effect_maps, write_voxelwise_contrast

VOXEL = 6.0
SHAPE = (32, 38, 32)
AFFINE = np.diag([-VOXEL, VOXEL, VOXEL, 1.0])
AFFINE[:3, 3] = [90.0, -126.0, -72.0]

DESIGN = load_design({"design": {
    "conditions": {"rejbase": {"task": "rejection", "window": [5, 45]},
                   "rejection": {"task": "rejection", "window": [45, 90]},
                   "accbase": {"task": "acceptance", "window": [5, 45]},
                   "acceptance": {"task": "acceptance", "window": [45, 90]}},
    "contrasts": {"rejection": {"baseline": "rejbase", "condition": "rejection"},
                  "acceptance": {"baseline": "accbase", "condition": "acceptance"},
                  "rejvsacc": {"baseline": "rejbase", "condition": "rejection",
                               "control": "acceptance"}}}})


def _save(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), AFFINE), str(path))
    return path


def test_effect_maps_percent_change_minus_drift(tmp_path):
    """Effect = 100 (cond - base) / base minus the region's drift; bad voxels masked."""
    maps = {}
    for k, pid in enumerate(["sub-1", "sub-2", "sub-3"]):
        base = np.full(SHAPE, 2.0)
        base[0, 0, 0] = 0.0  # no baseline binding: excluded
        for cond, value in (("rejbase", base), ("rejection", base * (0.9 + 0.01 * k))):
            maps[(pid, cond)] = _save(tmp_path / f"{pid}_{cond}.nii", value)
    effects, pids, keep, _ = effect_maps(maps, DESIGN, "rejection", model="m")
    assert pids == ["sub-1", "sub-2", "sub-3"]
    assert not keep[0, 0, 0] and keep[5, 5, 5]
    assert effects[5, 5, 5] == pytest.approx([-10.0, -9.0, -8.0])
    drift = pd.DataFrame({"contrast": ["rejection"], "region": ["thalamus_l"], "model": ["m"],
                          "drift_pct": [-4.0]})
    corrected, *_ = effect_maps(maps, DESIGN, "rejection", model="m", drift=drift)
    # a voxel outside the named regions gets the median drift (-4 here)
    assert corrected[5, 5, 5] == pytest.approx([-6.0, -5.0, -4.0])


def test_effect_maps_average_several_runs_and_say_so(tmp_path, caplog):
    """Two runs of one condition: their mean BP_ND is used, and the log names both."""
    maps = {}
    for pid in ["sub-1", "sub-2", "sub-3"]:
        maps[(pid, "rejbase")] = _save(tmp_path / f"{pid}_base.nii", np.full(SHAPE, 2.0))
        maps[(pid, "rejection")] = _save(tmp_path / f"{pid}_cond.nii", np.full(SHAPE, 1.8))
    runs = [_save(tmp_path / f"sub-1_run-{r}.nii", np.full(SHAPE, v))
            for r, v in ((1, 1.8), (2, 1.6))]
    maps[("sub-1", "rejection")] = runs
    with caplog.at_level("WARNING"):
        effects, *_ = effect_maps(maps, DESIGN, "rejection", model="m")
    # sub-1: mean of 1.8 and 1.6 = 1.7 against 2.0 -> -15 %, not the first run's -10 %
    assert effects[5, 5, 5] == pytest.approx([-15.0, -10.0, -10.0])
    assert "sub-1/rejection has 2 maps" in caplog.text and "run-2" in caplog.text


def test_effect_maps_needs_three_participants(tmp_path):
    """Fewer than three complete participants is an InputError naming the contrast."""
    from pipeline.errors import InputError

    maps = {("sub-1", c): _save(tmp_path / f"{c}.nii", np.ones(SHAPE))
            for c in ("rejbase", "rejection")}
    with pytest.raises(InputError, match="voxelwise contrast rejection: only 1"):
        effect_maps(maps, DESIGN, "rejection", model="m")


N_NULL = 20
MAX_HITS = int(stats.binom.ppf(0.99, 2 * N_NULL, 0.05))  # 2 contrasts per study


@pytest.mark.calibration
@pytest.mark.slow
def test_null_studies_voxelwise_fwe_rate(tmp_path):
    """Null painted studies: <= 5 % (99 % binomial bound) of contrasts have an FWE finding.

    The region-level drift comes from each scan's release-free TACs (release model from
    10 min, averaged over each participant's two scans, the default systematic SD), as in the
    workflow. Measured 2026-12-06: 2 of 40 with the pooled drift (1 of 40 with each scan's
    own drift, before pooling); bound 6.
    """
    config = load_config("config/config.yaml")
    config["models"] = {"logan_ref": config["models"]["logan_ref"]}
    masks = build_masks(load_region_config("config/regions.yaml"), SHAPE, AFFINE)
    inside = masks.weights.max(axis=0) > 0.5
    label = np.argmax(masks.weights, axis=0)
    analysed = inside & (label != masks.names.index(masks.reference))
    rng = np.random.default_rng(0)
    hits = 0
    for seed in range(N_NULL):
        study = simulate_region_tacs(subjects=8, seed=500 + seed, null=True)
        folder = tmp_path / f"study{seed}"
        folder.mkdir()
        maps, fits = {}, []
        scans = study.scans.reset_index(drop=True)
        for pid, subject in scans.groupby("participant_id"):
            k2p = estimate_k2prime([study.tac_table(i) for i in subject.index],
                                   k2prime_settings(config), reference="occipital")[0]
            for i in subject.index:
                conditions = [(c.name, c.window) for c in DESIGN.conditions.values()
                              if c.task == scans.task[i]]
                null, _ = release_free_tacs(study.tac_table(i), reference="occipital",
                                            boundaries=segment_boundaries(conditions),
                                            fit_start=10.0)
                fit = fit_conditions(study.tac_table(i), reference="occipital",
                                     model="logan_ref", conditions=conditions,
                                     options={"t_star": 10, "k2prime": "shared"}, k2prime=k2p,
                                     null_tacs=null)
                fit["participant_id"] = pid
                fits.append(fit)
                tacs = study.tacs[i]
                image = tacs[:, [study.regions.index(n) for n in masks.names]][:, label]
                image = image.T.reshape(*SHAPE, -1) * (
                    1 + 0.05 * rng.standard_normal((*SHAPE, tacs.shape[0])))
                ref = tacs[:, study.regions.index("occipital")]
                for c in DESIGN.conditions.values():
                    if c.task != scans.task[i]:
                        continue
                    fit = fit_voxels(study.frames, ref, image, analysed, "logan_ref",
                                     window=c.window, t_star=10, k2prime=k2p)
                    maps[(pid, c.name)] = _save(folder / f"{pid}_{c.name}.nii", fit["bp_nd"])
        values = contrast_values(pd.concat(fits), DESIGN)[0]
        drift_path = folder / "drift.tsv"
        drift_table(summarize_contrasts(values, design=DESIGN)).to_csv(
            drift_path, sep="\t", index=False)
        values_path = folder / "values.tsv"
        values.to_csv(values_path, sep="\t", index=False)
        for contrast in ("rejection", "acceptance"):
            out = {k: folder / f"{contrast}_{k}.{'tsv' if k == 'clusters' else 'nii'}"
                   for k in ("effects", "tmap", "fwe", "clusters")}
            write_voxelwise_contrast(maps, out, design=DESIGN, contrast=contrast,
                                     model="logan_ref", settings={"n_perm": 100},
                                     drift_path=drift_path, values_path=values_path,
                                     seed=seed)
            fwe = np.asarray(nib.load(str(out["fwe"])).dataobj)
            hits += int((fwe > -np.log10(0.05)).any())
    print(f"null studies x contrasts with a voxelwise FWE finding: {hits} of {2 * N_NULL} "
          f"(bound {MAX_HITS})")
    assert hits <= MAX_HITS
