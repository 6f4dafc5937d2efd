"""Tests of patient-vs-control statistics: design.groups, group labels, two-sample tests,
per-group contrasts, group differences and protocol checks."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from group_data import CONDITIONS, CONTRASTS, GROUPS
from scipy import stats

from pipeline.design import load_design
from pipeline.errors import ConfigError, InputError
from pipeline.groups import Groups, group_labels, parse_groups
from pipeline.stats.contrast_tests import summarize_contrasts
from pipeline.stats.groups import group_differences, raw_activation, with_groups
from pipeline.stats.protocols import compare_protocols, kbol_minutes
from pipeline.stats.regional import contrast_values
from pipeline.stats.tables import write_contrasts
from pipeline.stats.two_sample import (
    adjusted_difference,
    hedges_g,
    hedges_g_ci,
    permutation_p,
    welch,
)

REGIONS = ("amygdala_l", "thalamus_l", "caudate_l")


def _config(groups=GROUPS):
    return {"design": {"conditions": CONDITIONS, "contrasts": CONTRASTS, "groups": groups},
            "statistics": {"test": "ttest", "alpha": 0.05, "null_drift": {"method": "none"}}}


def _participants(n_a=8, n_b=8, rng=None):
    rng = rng or np.random.default_rng(1)
    n = n_a + n_b
    return pd.DataFrame({"participant_id": [f"sub-{i + 1:02d}" for i in range(n)],
                         "group": ["HC"] * n_a + ["MDD"] * n_b,
                         "age": rng.integers(20, 45, n).astype(float),
                         "sex": np.where(rng.random(n) < 0.5, "F", "M")})


def _bp(participants, rng, release=None):
    """Long BP table: baseline ~2, condition = baseline x (1 - release%/100 + noise)."""
    release = release or {}
    rows = []
    for pid, group in participants[["participant_id", "group"]].itertuples(index=False):
        for task, base, cond in (("rejection", "rejbase", "rejection"),
                                 ("acceptance", "accbase", "acceptance")):
            for region in REGIONS:
                b = 2.0 + rng.normal(0, 0.2)
                pct = release.get((group, task, region), 0.0) + rng.normal(0, 2.0)
                for name, value in ((base, b), (cond, b * (1 - pct / 100))):
                    rows.append(dict(participant_id=pid, task=task, condition=name,
                                     region=region, model="logan_ref", bp_nd=value))
    return pd.DataFrame(rows)


# ---- design.groups --------------------------------------------------------------------

def test_parse_groups_reads_levels_and_comparisons():
    """Reference first; each other level is compared with it; covariates kept."""
    groups = parse_groups({"column": "dx", "levels": ["HC", "MDD", "BD"],
                           "covariates": ["age", "sex"]})
    assert groups.reference == "HC"
    assert groups.comparisons == [("HC", "MDD"), ("HC", "BD")]
    assert groups.covariates == ("age", "sex")
    assert load_design(_config()).groups == Groups("group", ("HC", "MDD"))
    assert load_design(_config(None)).groups is None


@pytest.mark.parametrize(("spec", "match"), [
    ({"levels": ["HC", "MDD"]}, "column"),
    ({"column": "group", "levels": ["HC"]}, "at least two"),
    ({"column": "group", "levels": ["HC", "HC"]}, "twice"),
    ({"column": "group", "levels": ["HC", "M D"]}, "A-Z"),
    ({"column": "group", "levels": ["HC", "MDD"], "covariates": "age"}, "list"),
    ({"column": "group", "levels": ["HC", "MDD"], "covariates": ["group"]}, "group column"),
])
def test_parse_groups_rejects_bad_config(spec, match):
    """Each malformed design.groups is one ConfigError naming the key."""
    with pytest.raises(ConfigError, match=match):
        parse_groups(spec)


# ---- group labels (bad input) ---------------------------------------------------------

def test_group_labels_missing_column_names_file_and_fix():
    """A participants.tsv without the group column: one error naming file and column."""
    parts = _participants().drop(columns="group")
    with pytest.raises(InputError, match=r"/data/participants.tsv: no column 'group'.*"
                                         r"\n  Add a group column"):
        group_labels(parts, parse_groups(GROUPS), source="/data/participants.tsv")


@pytest.mark.parametrize("levels", [["HC", "MDDX"], ["hc", "MDD"]])
def test_group_labels_unknown_or_empty_level(levels):
    """A configured level with no participant (typo, wrong case) is an error listing the
    labels found."""
    with pytest.raises(InputError, match=r"level '(MDDX|hc)' has no participant.*"
                                         r"labels found: \['HC', 'MDD'\]"):
        group_labels(_participants(), parse_groups({"column": "group", "levels": levels}))


def test_group_labels_needs_three_usable_per_level():
    """A level with < 3 participants with usable scans is an error naming them."""
    parts = _participants(8, 4)
    usable = [*list(parts["participant_id"][:8]), "sub-09", "sub-10"]
    with pytest.raises(InputError, match=r"group 'MDD'.*2 participant\(s\).*sub-09, sub-10"
                                         r".*at least 3"):
        group_labels(parts, parse_groups(GROUPS), analysed=usable)


def test_group_labels_other_labels_are_logged_not_used(caplog):
    """Labels outside the levels and n/a are left out with a log line each."""
    parts = _participants(4, 4)
    parts.loc[0, "group"] = "BD"
    parts.loc[1, "group"] = np.nan
    with caplog.at_level(logging.WARNING):
        labels = group_labels(parts, parse_groups(GROUPS))
    assert "sub-01" not in labels.index and "sub-02" not in labels.index
    assert (labels == "HC").sum() == 2 and (labels == "MDD").sum() == 4
    assert "sub-01 left out" in caplog.text and "'BD' is not one of" in caplog.text
    assert "sub-02 left out" in caplog.text and "no group (n/a)" in caplog.text


def test_write_contrasts_with_missing_group_column_writes_nothing(tmp_path, rng):
    """The contrasts step fails with one clear error and leaves no output behind."""
    parts = _participants()
    bp = _bp(parts, rng)
    bp_path = tmp_path / "bp_nd.tsv"
    bp.to_csv(bp_path, sep="\t", index=False)
    outs = [tmp_path / f"{n}.tsv" for n in ("contrasts", "values", "exclusions")]
    with pytest.raises(InputError, match="no column 'group'"):
        write_contrasts(bp_path, *outs, design=_config()["design"], drift_method="none",
                        participants=parts.drop(columns="group"))
    assert not any(p.exists() for p in outs)


# ---- two-sample statistics ------------------------------------------------------------

def test_welch_matches_scipy(rng):
    """t, df, p and the CI of the difference equal scipy's Welch test (rel 1e-10)."""
    a, b = rng.normal(5, 3, 16), rng.normal(1, 1.5, 11)
    res = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert res["t"] == pytest.approx(ref.statistic, rel=1e-10)
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert res["df"] == pytest.approx(ref.df, rel=1e-10)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-10)
    assert res["difference"] == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert np.isnan(welch(a, b[:1])["t"])


def test_hedges_g_formula_and_ci(rng):
    """g = J (mean_a - mean_b) / pooled SD; its CI holds g and is symmetric around 0."""
    a, b = rng.normal(1, 2, 10), rng.normal(0, 2, 14)
    pooled = np.sqrt((9 * a.var(ddof=1) + 13 * b.var(ddof=1)) / 22)
    j = 1 - 3 / (4 * 24 - 9)
    assert hedges_g(a, b) == pytest.approx(j * (a.mean() - b.mean()) / pooled, rel=1e-12)
    lo, hi = hedges_g_ci(hedges_g(a, b), 10, 14)
    assert lo < hedges_g(a, b) < hi
    lo0, hi0 = hedges_g_ci(0.0, 10, 14)
    assert lo0 == pytest.approx(-hi0, rel=1e-6)


def test_hedges_g_ci_covers_the_true_effect(rng):
    """95% CI coverage of the population d (J-corrected) over 1000 simulated pairs of
    groups of 12 and 9 is 0.95 within 3 binomial SEs (SE 0.0069)."""
    delta, n_a, n_b, hits = 0.8, 12, 9, 0
    for _ in range(1000):
        a, b = rng.normal(delta, 1, n_a), rng.normal(0, 1, n_b)
        lo, hi = hedges_g_ci(hedges_g(a, b), n_a, n_b)
        j = 1 - 3 / (4 * (n_a + n_b) - 9)
        hits += lo <= j * delta <= hi
    assert abs(hits / 1000 - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 1000)


def test_permutation_p_near_welch_p_and_exact_when_small(rng):
    """For normal data the permutation p is close to Welch's (MC SE < 0.007); with 3 + 3
    values the 20 relabellings are enumerated (smallest two-sided p = 2/20)."""
    a, b = rng.normal(0.8, 1, 14), rng.normal(0, 1, 14)
    assert permutation_p(a, b, n_perm=5000, seed=1) == pytest.approx(welch(a, b)["p"],
                                                                     abs=0.03)
    assert permutation_p(np.array([10.0, 11, 12]), np.array([0.0, 1, 2]),
                         n_perm=5000) == pytest.approx(0.1)


def test_adjusted_difference_without_covariates_is_student_t(rng):
    """OLS y ~ 1 + group equals the pooled-variance (Student) t test."""
    a, b = rng.normal(2, 1, 10), rng.normal(0, 1, 12)
    res = adjusted_difference(np.r_[a, b], np.r_[np.ones(10, bool), np.zeros(12, bool)],
                              pd.DataFrame(index=range(22)))
    ref = stats.ttest_ind(a, b, equal_var=True)
    assert res["t_adj"] == pytest.approx(ref.statistic, rel=1e-10)
    assert res["p_adj"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert res["df_adj"] == 20
    assert res["difference_adj"] == pytest.approx(a.mean() - b.mean(), rel=1e-10)


def test_adjusted_difference_removes_a_confounded_covariate(rng):
    """Age differs between groups and drives y; the adjusted difference recovers the
    planted group effect (2.0) with nominal 95% CI coverage over 400 studies (within 3
    binomial SEs, 0.033), while the unadjusted difference is biased by ~ +2."""
    hits, raw = 0, []
    for _ in range(400):
        in_a = np.r_[np.ones(15, bool), np.zeros(15, bool)]
        age = np.where(in_a, 40.0, 30.0) + rng.normal(0, 5, 30)
        sex = np.where(rng.random(30) < 0.5, "F", "M")
        y = 2.0 * in_a + 0.2 * (age - 35) + 0.5 * (sex == "M") + rng.normal(0, 1, 30)
        res = adjusted_difference(y, in_a, pd.DataFrame({"age": age, "sex": sex}))
        hits += res["ci_low_adj"] <= 2.0 <= res["ci_high_adj"]
        raw.append(y[in_a].mean() - y[~in_a].mean())
        assert res["df_adj"] == 26
    assert abs(hits / 400 - 0.95) < 3 * np.sqrt(0.95 * 0.05 / 400)
    assert np.mean(raw) == pytest.approx(4.0, abs=0.2)


# ---- per-group contrasts and group differences ----------------------------------------

def test_with_groups_rows_are_summarize_contrasts_of_each_group(rng):
    """Pooled rows are unchanged ('all'); each group's rows equal summarize_contrasts on
    that group's participants; values gain a group column."""
    parts = _participants()
    design = load_design(_config())
    values, _ = contrast_values(_bp(parts, rng), design)
    pooled = summarize_contrasts(values)
    out_values, table = with_groups(values, pooled, design.groups, parts)
    assert list(table["group"].unique()) == ["all", "HC", "MDD"]
    pd.testing.assert_frame_equal(table[table.group == "all"].drop(columns="group")
                                  .reset_index(drop=True), pooled)
    hc = summarize_contrasts(values[values.participant_id.isin(parts.participant_id[:8])])
    pd.testing.assert_frame_equal(table[table.group == "HC"].drop(columns="group")
                                  .reset_index(drop=True), hc)
    assert out_values["group"].tolist() == values["participant_id"].map(
        parts.set_index("participant_id")["group"]).tolist()


def test_group_differences_recover_planted_difference(rng):
    """Controls release 8 % in thalamus_l (rejection), patients nothing: the difference is
    the mean activation of HC minus MDD (matching a direct computation), significant after
    FDR; a region without release is not."""
    parts = _participants(12, 12)
    design = load_design(_config())
    bp = _bp(parts, rng, release={("HC", "rejection", "thalamus_l"): 8.0})
    values, _ = contrast_values(bp, design)
    labels = group_labels(parts, design.groups)
    table = group_differences(values, labels, design.groups, n_perm=2000)
    row = table[(table.contrast == "rejection") & (table.region == "thalamus_l")].iloc[0]
    cell = values[(values.contrast == "rejection") & (values.region == "thalamus_l")]
    act = -cell.set_index("participant_id")["change_pct"]
    expected = act[labels[labels == "HC"].index].mean() - act[labels[labels == "MDD"]
                                                              .index].mean()
    assert row.difference == pytest.approx(expected, rel=1e-12)
    assert row.difference == pytest.approx(8.0, abs=2.5)  # SE ~0.8 with 2 % noise
    assert row.p_fdr < 0.05 and row.significant and row.p_perm < 0.01
    assert (row.n_a, row.n_b, row.group_a, row.group_b) == (12, 12, "HC", "MDD")
    other = table[(table.contrast == "acceptance") & (table.region == "caudate_l")].iloc[0]
    assert other.p_fdr > 0.05


def test_group_differences_ignore_drift_and_use_control_change(rng):
    """Activation is the raw % change: a drift column does not move it; for a contrast with
    a control the control's change is subtracted."""
    parts = _participants(5, 5)
    design = load_design(_config())
    values, _ = contrast_values(_bp(parts, rng), design)
    shifted = values.assign(drift_pct=3.0, effect_pct=values["effect_pct"] - 3.0)
    labels = group_labels(parts, design.groups)
    base = group_differences(values, labels, design.groups, n_perm=0)
    moved = group_differences(shifted, labels, design.groups, n_perm=0)
    pd.testing.assert_series_equal(base["activation_a"], moved["activation_a"])
    ctl = values[values.contrast == "rejvsacc"]
    assert np.allclose(raw_activation(ctl), -(ctl.change_pct - ctl.control_change_pct))


def test_group_differences_fdr_within_contrast_and_model(rng):
    """p_fdr is BH of p across the regions of one contrast and model."""
    parts = _participants(6, 6)
    design = load_design(_config())
    values, _ = contrast_values(_bp(parts, rng), design)
    table = group_differences(values, group_labels(parts, design.groups), design.groups,
                              n_perm=0)
    for _, cell in table.groupby(["contrast", "model"]):
        assert np.allclose(cell.p_fdr, stats.false_discovery_control(cell.p))


def test_group_differences_with_covariates(rng):
    """Covariates give the *_adj columns; a participant without a covariate is left out of
    the adjusted model only."""
    parts = _participants(8, 8, rng)
    parts.loc[3, "age"] = np.nan
    groups = parse_groups({**GROUPS, "covariates": ["age", "sex"]})
    design = load_design(_config())
    values, _ = contrast_values(_bp(parts, rng), design)
    table = group_differences(values, group_labels(parts, groups), groups,
                              participants=parts, n_perm=0)
    assert (table.n_adj == 15).all() and (table.n_a == 8).all()
    assert table.difference_adj.notna().all() and (table.covariates == "age+sex").all()
    assert table.p_fdr_adj.notna().all()


# ---- protocols ------------------------------------------------------------------------

def _sidecar(kbol, end_s=5400.0, dose=555.0):
    infused = dose * (end_s / 60) / (kbol + end_s / 60)
    return {"ModeOfAdministration": "bolus-infusion", "InjectedRadioactivity": dose,
            "InfusionRadioactivity": infused, "InfusionSpeed": infused / end_s,
            "InfusionSpeedUnits": "MBq/s", "InfusionStart": 0}


def test_kbol_from_sidecar_fields():
    """Kbol = bolus / infusion rate (minutes), with or without InfusionSpeed."""
    assert kbol_minutes(_sidecar(90.0)) == pytest.approx(90.0, rel=1e-12)
    without = {k: v for k, v in _sidecar(45.0).items() if k != "InfusionSpeed"}
    assert kbol_minutes(without, scan_end_s=5400.0) == pytest.approx(45.0, rel=1e-12)
    assert np.isnan(kbol_minutes({"ModeOfAdministration": "bolus"}))


def test_compare_protocols_warns_when_kbol_differs(caplog):
    """Same Kbol and frames: no warning; Kbol 90 vs 60 min: a warning naming both."""
    labels = pd.Series(["HC", "HC", "MDD", "MDD"], index=pd.Index(
        ["sub-1", "sub-2", "sub-3", "sub-4"], name="participant_id"))
    frames = "0-60 60-120"

    def table(kbols):
        return pd.DataFrame({"participant_id": labels.index, "task": "rejection",
                             "mode": "bolus-infusion", "kbol_min": kbols, "frames": frames})

    assert compare_protocols(table([90, 90, 90, 91]), labels)["same_protocol"]
    with caplog.at_level(logging.WARNING):
        result = compare_protocols(table([90, 90, 60, 60]), labels)
    assert not result["same_protocol"]
    assert "Kbol differs: median 90.0 min (HC) vs 60.0 min (MDD)" in result["warnings"][0]
    assert "need not cancel" in caplog.text


def test_binding_difference_is_flagged_for_plain_contrasts(rng, caplog):
    """Patients' baseline BP_ND 25 % lower in every region: plain contrasts' rows are
    flagged binding_differs (the drift need not cancel) with a warning; the double
    difference (control contrast) is not flagged."""
    parts = _participants(12, 12)
    bp = _bp(parts, rng)
    mdd = bp["participant_id"].isin(parts.participant_id[12:])
    bp.loc[mdd, "bp_nd"] *= 0.75
    design = load_design(_config())
    values, _ = contrast_values(bp, design)
    with caplog.at_level(logging.WARNING):
        table = group_differences(values, group_labels(parts, design.groups), design.groups,
                                  n_perm=0)
    plain = table[table.contrast != "rejvsacc"]
    assert plain.binding_differs.all() and (plain.bp_baseline_p < 0.001).all()
    assert not table[table.contrast == "rejvsacc"].binding_differs.any()
    assert "baseline BP_ND differs between groups" in caplog.text
    assert (plain.bp_baseline_b / plain.bp_baseline_a).between(0.65, 0.85).all()
