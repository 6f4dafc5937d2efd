"""Tests of two-group simulated studies and condition-level ratings."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import ConfigError
from pipeline.simulate import StudySettings, simulate_region_tacs, write_demo_study
from pipeline.simulate.group_study import two_group_demo, write_phantom_atlas
from pipeline.simulate.groups import (
    GroupPlan,
    RatingPlan,
    apply_groups,
    group_stream,
    simulate_ratings,
)
from pipeline.simulate.population import draw_population, study_streams


def _population(n=20, seed=3, settings=None):
    return draw_population(n, "windows", study_streams(seed), settings or StudySettings())


def test_apply_groups_scales_release_and_binding():
    """Group sizes in order; MDD releases half in nacc_l under rejection and nothing
    elsewhere; its binding is 10 % lower; HC keeps its draws; the input is unchanged."""
    base = _population(10)
    others = {r: 0.0 for r in StudySettings().rejection if r != "nacc_l"}
    plans = [GroupPlan("HC", 6),
             GroupPlan("MDD", 4, release_scale={"rejection": {"nacc_l": 0.5, **others},
                                                "acceptance": 0.0}, binding_scale=0.9)]
    pop = apply_groups(base, plans)
    assert list(pop.participants["group"]) == ["HC"] * 6 + ["MDD"] * 4
    assert "group" not in base.participants
    merged = pop.effects.merge(base.effects, on=["participant_id", "condition", "region"],
                               suffixes=("", "_base"))
    mdd = merged["participant_id"].isin(pop.participants["participant_id"][6:])
    ratio = merged["release_fraction"] / merged["release_fraction_base"]
    nacc = (merged["region"] == "nacc_l") & (merged["condition"] == "rejection")
    assert np.allclose(ratio[~mdd], 1.0)
    assert np.allclose(ratio[mdd & nacc], 0.5)
    assert np.allclose(merged.loc[mdd & ~nacc, "release_fraction"], 0.0)
    kin = pop.kinetics.merge(base.kinetics, on=["participant_id", "region"],
                             suffixes=("", "_base"))
    in_mdd = kin["participant_id"].isin(pop.participants["participant_id"][6:])
    assert np.allclose(kin.k3[in_mdd], 0.9 * kin.k3_base[in_mdd])
    assert np.allclose(kin.k3[~in_mdd], kin.k3_base[~in_mdd])
    assert np.allclose(kin.k1, kin.k1_base)


def test_apply_groups_rejects_bad_plans():
    with pytest.raises(ConfigError, match="do not add up"):
        apply_groups(_population(10), [GroupPlan("HC", 5), GroupPlan("MDD", 4)])
    with pytest.raises(ConfigError, match="distinct alphanumeric"):
        apply_groups(_population(10), [GroupPlan("HC", 5), GroupPlan("H C", 5)])


def test_ratings_follow_release_with_planted_correlation():
    """Within a group that releases, the rating change correlates with the true release
    fraction at the planted r = 0.7 (2000 controls: SE of r ~0.011, tolerance 0.04); the
    mean change per group is as planned; baselines match the design's columns."""
    settings = dataclasses.replace(StudySettings(), acceptance={"thalamus_l": 0.07},
                                   rejection={}, effect_sd=0.03)
    plans = [GroupPlan("HC", 2000), GroupPlan("MDD", 2000, release_scale=0.0)]
    pop = apply_groups(_population(4000, settings=settings), plans)
    plan = RatingPlan(condition="acceptance", region="thalamus_l", correlation=0.7,
                      change_mean={"HC": {"acceptance": 8.0}}, change_sd=8.0)
    table = simulate_ratings(pop, plans, plan, settings, group_stream(1))
    assert list(table.columns) == ["participant_id", "rejbase", "rejection", "accbase",
                                   "acceptance"]
    change = table["acceptance"] - table["accbase"]
    release = pop.effects.set_index("participant_id")["release_fraction"].reindex(
        table["participant_id"]).to_numpy()
    hc = (pop.participants["group"] == "HC").to_numpy()
    assert np.corrcoef(change[hc], release[hc])[0, 1] == pytest.approx(0.7, abs=0.04)
    assert change[hc].mean() == pytest.approx(8.0, abs=0.6)  # SE 8 / sqrt(2000) = 0.18
    assert change[~hc].mean() == pytest.approx(0.0, abs=0.6)
    assert change[hc].std() == pytest.approx(8.0, rel=0.05)


def test_region_study_with_groups_keeps_other_streams():
    """Adding groups and ratings leaves the kinetics and the HC TACs of a seed unchanged
    (their random stream is separate); patients' TACs change only through their release."""
    settings, groups, ratings = two_group_demo(8)
    plain = simulate_region_tacs(subjects=8, seed=4, settings=settings)
    grouped = simulate_region_tacs(subjects=8, seed=4, settings=settings, groups=groups,
                                   ratings=ratings)
    hc = (grouped.scans["participant_id"].isin(grouped.participants["participant_id"][:4])
          ).to_numpy()
    np.testing.assert_array_equal(plain.tacs[hc], grouped.tacs[hc])
    assert not np.allclose(plain.tacs[~hc], grouped.tacs[~hc])
    assert set(grouped.ratings) == {"desire"} and len(grouped.ratings["desire"]) == 8


def test_two_group_demo_writes_group_column_ratings_and_truth(tmp_path):
    """The two-group demo: participants.tsv group column (described in its JSON),
    phenotype/desire.tsv + .json with one column per condition, groups in truth.json."""
    bids = write_demo_study(tmp_path, subjects=6, voxel_size=6.0, study="two_groups", seed=3)
    parts = pd.read_csv(bids / "participants.tsv", sep="\t")
    assert list(parts["group"]) == ["HC"] * 3 + ["MDD"] * 3
    assert "group" in json.loads((bids / "participants.json").read_text())
    ratings = pd.read_csv(bids / "phenotype" / "desire.tsv", sep="\t")
    assert list(ratings.columns) == ["participant_id", "rejbase", "rejection", "accbase",
                                     "acceptance"]
    assert json.loads((bids / "phenotype" / "desire.json").read_text())["acceptance"]["Units"]
    truth = json.loads((tmp_path / "truth" / "truth.json").read_text())
    assert [g["level"] for g in truth["planted"]["groups"]] == ["HC", "MDD"]
    effects = pd.read_csv(tmp_path / "truth" / "effects.tsv", sep="\t")
    mdd = effects["participant_id"].isin(parts["participant_id"][3:])
    assert (effects.loc[mdd, "release_fraction"] == 0).all()
    assert (effects.loc[~mdd, "release_fraction"] != 0).any()
    with pytest.raises(ConfigError, match="at least 6"):
        write_demo_study(tmp_path / "x", subjects=4, study="two_groups")
    with pytest.raises(ConfigError, match="unknown study"):
        write_demo_study(tmp_path / "y", study="three_groups")


def test_phantom_atlas_is_a_user_atlas_of_the_phantom_regions(tmp_path):
    """The atlas config loads with petbp's region loader and lists the phantom's regions."""
    from pipeline.regions import build_masks, load_region_config

    config = write_phantom_atlas(tmp_path, voxel_size=6.0)
    regions = load_region_config(config)
    assert regions.reference == "occipital" and "thalamus_l" in regions.regions
    import nibabel as nib

    img = nib.load(str(tmp_path / "phantom_labels.nii.gz"))
    masks = build_masks(regions, img.shape, img.affine)
    assert masks.weights[masks.names.index("thalamus_l")].sum() > 10


def test_cli_simulate_two_groups(tmp_path, capsys):
    """petbp simulate --two-groups writes a group column and the desire ratings."""
    from pipeline.cli import main

    status = main(["simulate", "--out", str(tmp_path), "--subjects", "6", "--voxel-size",
                   "6", "--two-groups", "--seed", "2"])
    assert status == 0, capsys.readouterr().err
    parts = pd.read_csv(tmp_path / "bids" / "participants.tsv", sep="\t")
    assert list(parts["group"]) == ["HC"] * 3 + ["MDD"] * 3
    assert (tmp_path / "bids" / "phenotype" / "desire.tsv").is_file()
