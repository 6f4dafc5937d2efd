"""Tests of pipeline.stats.regional: paired contrasts, drift control, exclusions, FDR."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.design import load_design
from pipeline.errors import ConfigError, InputError
from pipeline.stats.contrast_tests import cohen_dz_ci, summarize_contrasts
from pipeline.stats.regional import contrast_values

DESIGN = load_design({"design": {
    "conditions": {"rejbase": {"task": "rejection", "window": [5, 45]},
                   "rejection": {"task": "rejection", "window": [45, 90]},
                   "accbase": {"task": "acceptance", "window": [5, 45]},
                   "acceptance": {"task": "acceptance", "window": [45, 90]}},
    "contrasts": {"rejection": {"baseline": "rejbase", "condition": "rejection"},
                  "acceptance": {"baseline": "accbase", "condition": "acceptance"},
                  "rejvsacc": {"baseline": "rejbase", "condition": "rejection",
                               "control": "acceptance"}}}})


def _bp_table(rng, n=10, change=None, regions=("amygdala_l", "caudate_l"), skip=()):
    """Long BP table: baseline 2.0 +- noise, condition = baseline * (1 + change/100)."""
    change = change or {}
    rows = []
    for s in range(n):
        pid = f"sub-{s:02d}"
        for task, base_name, cond_name in (("rejection", "rejbase", "rejection"),
                                           ("acceptance", "accbase", "acceptance")):
            if (pid, task) in skip:
                continue
            for region in regions:
                base = 2.0 + rng.normal(0, 0.2)
                pct = change.get((task, region), 0.0) + rng.normal(0, 2.0)
                rows.append(dict(participant_id=pid, condition=base_name, region=region,
                                 model="mrtm2", bp_nd=base))
                rows.append(dict(participant_id=pid, condition=cond_name, region=region,
                                 model="mrtm2", bp_nd=base * (1 + pct / 100)))
    return pd.DataFrame(rows)


def test_summarize_contrasts_matches_scipy_paired_t(rng):
    """Without drift, t/df/p are scipy's one-sample t on the paired % change."""
    bp = _bp_table(rng, change={("rejection", "amygdala_l"): -8.0})
    values, _ = contrast_values(bp, DESIGN)
    table = summarize_contrasts(values)
    row = table[(table.contrast == "rejection") & (table.region == "amygdala_l")].iloc[0]
    cell = values[(values.contrast == "rejection") & (values.region == "amygdala_l")]
    pct = 100 * (cell.bp_condition - cell.bp_baseline) / cell.bp_baseline
    ref = stats.ttest_1samp(pct, 0.0)
    assert row.t == pytest.approx(ref.statistic, rel=1e-12)
    assert row.p == pytest.approx(ref.pvalue, rel=1e-12)
    assert row.df == 9 and row.n == 10
    assert row.change_pct_mean == pytest.approx(pct.mean(), rel=1e-12)
    assert row.cohen_dz == pytest.approx(pct.mean() / pct.std(ddof=1), rel=1e-12)
    assert row.ci_low < row.cohen_dz < row.ci_high
    assert row.test == "paired_t"


def test_summarize_contrasts_fdr_is_benjamini_hochberg(rng):
    """p_fdr is scipy's BH over the regions of one contrast and model."""
    bp = _bp_table(rng, regions=("a", "b", "c", "d"), change={("rejection", "a"): -6.0})
    table = summarize_contrasts(contrast_values(bp, DESIGN)[0])
    rej = table[table.contrast == "rejection"]
    assert rej.p_fdr.to_numpy() == pytest.approx(stats.false_discovery_control(rej.p.to_numpy()))


def test_contrast_values_missing_scan_is_excluded_with_reason(rng):
    """A participant without a task-acceptance scan is left out of acceptance and listed."""
    bp = _bp_table(rng, skip={("sub-03", "acceptance")})
    values, excl = contrast_values(bp, DESIGN)
    acc = values[values.contrast == "acceptance"]
    assert "sub-03" not in set(acc.participant_id)
    assert "sub-03" in set(values[values.contrast == "rejection"].participant_id)
    reasons = excl[(excl.contrast == "acceptance") & (excl.participant_id == "sub-03")].reason
    assert reasons.str.contains("no task-acceptance scan").all() and len(reasons) == 2
    assert ((excl.contrast == "rejvsacc") & (excl.participant_id == "sub-03")).any()
    table = summarize_contrasts(values)
    assert set(table[table.contrast == "acceptance"].n) == {9}


def test_contrast_values_scan_excluded_for_motion_names_the_reason(rng):
    """A scan the workflow excluded for head motion: its participant leaves the contrasts
    that need it with that reason (not 'no scan'), and a participant whose every scan was
    excluded is still listed, even if absent from participants.tsv."""
    bp = _bp_table(rng, skip={("sub-03", "rejection"), ("sub-04", "rejection"),
                              ("sub-04", "acceptance")})
    why = "excluded for head motion: a frame is displaced 12.0 mm from the reference (> 10 mm)"
    excluded = [{"participant_id": "sub-03", "session": None, "task": "rejection",
                 "run": None, "reason": why}] + [
        {"participant_id": "sub-04", "session": None, "task": task, "run": None,
         "reason": why} for task in ("rejection", "acceptance")]
    values, excl = contrast_values(bp[bp.participant_id != "sub-04"], DESIGN,
                                   excluded_scans=excluded)
    assert "sub-03" not in set(values[values.contrast == "rejection"].participant_id)
    assert "sub-03" in set(values[values.contrast == "acceptance"].participant_id)
    for pid, contrasts in (("sub-03", {"rejection", "rejvsacc"}),
                           ("sub-04", {"rejection", "acceptance", "rejvsacc"})):
        rows = excl[excl.participant_id == pid]
        assert set(rows.contrast) == contrasts, pid
        named = rows[rows.contrast != "rejvsacc"].reason
        assert named.str.contains("scan was excluded for head motion: a frame is displaced "
                                  "12.0 mm", regex=False).all()
    table = summarize_contrasts(values)
    assert set(table[table.contrast == "rejection"].n) == {8}
    assert set(table[table.contrast == "acceptance"].n) == {9}


def test_contrast_values_participant_without_any_scan_is_listed(rng):
    """Participants from participants.tsv with no PET at all appear in the exclusions."""
    _, excl = contrast_values(_bp_table(rng, n=3), DESIGN, participants=["sub-99"])
    assert (excl.participant_id == "sub-99").sum() >= 4


def test_contrast_values_nonpositive_baseline_is_excluded(rng):
    """A baseline BP_ND <= 0 makes % change undefined: excluded with the reason."""
    bp = _bp_table(rng)
    bp.loc[(bp.participant_id == "sub-01") & (bp.condition == "rejbase")
           & (bp.region == "caudate_l"), "bp_nd"] = -0.1
    values, excl = contrast_values(bp, DESIGN)
    assert excl.reason.str.contains("<= 0").any()
    cell = values[(values.contrast == "rejection") & (values.region == "caudate_l")]
    assert len(cell) == 9


def _with_null(bp: pd.DataFrame, drift: dict[str, float], rng) -> pd.DataFrame:
    """bp_nd_null: the baseline windows unchanged, condition windows = baseline * (1 + d)."""
    bp = bp.copy()
    base = bp.condition.isin(["rejbase", "accbase"])
    bp["bp_nd_null"] = bp["bp_nd"]
    for (_, region), rows in bp.groupby(["participant_id", "region"]):
        for base_name, cond_name in (("rejbase", "rejection"), ("accbase", "acceptance")):
            b = rows[rows.condition == base_name]
            c = rows[rows.condition == cond_name]
            if len(b) and len(c):
                d = drift.get(region, 0.0) + rng.normal(0, 0.5)
                bp.loc[c.index, "bp_nd_null"] = b.bp_nd.iloc[0] * (1 + d / 100)
    assert (bp.loc[base, "bp_nd_null"] == bp.loc[base, "bp_nd"]).all()
    return bp


def test_contrast_values_subtracts_each_participants_null_drift(rng):
    """effect = change - the participant's own drift (from bp_nd_null), within one scan."""
    bp = _with_null(_bp_table(rng), {"caudate_l": -5.0}, rng)
    values, _ = contrast_values(bp, DESIGN, drift_pool="none")
    cell = values[(values.contrast == "rejection") & (values.region == "caudate_l")]
    merged = bp.pivot_table(index=["participant_id", "region"], columns="condition",
                            values="bp_nd_null")
    expect = 100 * (merged["rejection"] / merged["rejbase"] - 1)
    drift = cell.set_index(["participant_id", "region"])["drift_pct"]
    np.testing.assert_allclose(drift, expect.loc[drift.index], rtol=1e-12)
    np.testing.assert_allclose(cell.effect_pct, cell.change_pct - cell.drift_pct)
    assert (cell.drift_method == "release_model").all()
    ctl = values[values.contrast == "rejvsacc"]
    assert (ctl.drift_method == "control").all() and (ctl.drift_pct == 0).all()


def _own_drift(bp: pd.DataFrame, base: str, cond: str) -> pd.Series:
    null = bp.pivot_table(index=["participant_id", "region"], columns="condition",
                          values="bp_nd_null")
    return 100 * (null[cond] / null[base] - 1)


def test_contrast_values_pools_the_drift_over_scans_with_the_same_windows(rng):
    """Default: a participant's drift is the mean of its rejection and acceptance scans'
    drifts (same windows), the same value in both contrasts; effect = change - it."""
    bp = _with_null(_bp_table(rng), {"caudate_l": -5.0}, rng)
    values, _ = contrast_values(bp, DESIGN)
    expect = 0.5 * (_own_drift(bp, "rejbase", "rejection")
                    + _own_drift(bp, "accbase", "acceptance"))
    for name in ("rejection", "acceptance"):
        cell = values[values.contrast == name].set_index(["participant_id", "region"])
        np.testing.assert_allclose(cell.drift_pct, expect.loc[cell.index], rtol=1e-12)
        np.testing.assert_allclose(cell.effect_pct, cell.change_pct - cell.drift_pct)
        assert (cell.drift_scans == 2).all() and (cell.drift_method == "release_model").all()
    ctl = values[values.contrast == "rejvsacc"]
    assert (ctl.drift_pct == 0).all() and (ctl.drift_scans == 0).all()


def test_pooled_drift_uses_the_scans_a_participant_has(rng):
    """Without an acceptance drift (release model failed there), the rejection row keeps
    its own scan's drift (drift_scans 1); other participants still average two."""
    bp = _with_null(_bp_table(rng), {}, rng)
    lost = (bp.participant_id == "sub-01") & (bp.region == "caudate_l") \
        & (bp.condition == "acceptance")
    bp.loc[lost, "bp_nd_null"] = np.nan
    values, excl = contrast_values(bp, DESIGN)
    rej = values[(values.contrast == "rejection") & (values.region == "caudate_l")]
    own = _own_drift(bp, "rejbase", "rejection").loc[("sub-01", "caudate_l")]
    row = rej[rej.participant_id == "sub-01"].iloc[0]
    assert row.drift_scans == 1 and row.drift_pct == pytest.approx(own, rel=1e-12)
    assert (rej[rej.participant_id != "sub-01"].drift_scans == 2).all()
    assert ((excl.participant_id == "sub-01") & (excl.contrast == "acceptance")).any()


def test_unknown_drift_pool_is_a_config_error(rng):
    bp = _with_null(_bp_table(rng), {}, rng)
    with pytest.raises(ConfigError, match=r"null_drift\.pool"):
        contrast_values(bp, DESIGN, drift_pool="subjects")


def test_summarize_contrasts_adds_the_systematic_sd(rng):
    """t = mean / sqrt(sd^2/n + sys_sd^2), Welch-Satterthwaite df; sys_sd 0 = scipy's t."""
    bp = _with_null(_bp_table(rng), {"caudate_l": -5.0}, rng)
    values, _ = contrast_values(bp, DESIGN)
    cell = values[(values.contrast == "rejection") & (values.region == "caudate_l")]
    e = cell.effect_pct.to_numpy()
    plain = summarize_contrasts(values, sys_sd=0.0, guard=False)
    row = plain[(plain.contrast == "rejection") & (plain.region == "caudate_l")].iloc[0]
    ref = stats.ttest_1samp(e, 0.0)
    assert row.t == pytest.approx(ref.statistic, rel=1e-10)
    assert row.p == pytest.approx(ref.pvalue, rel=1e-10)
    table = summarize_contrasts(values, sys_sd=2.0, guard=False)
    row = table[(table.contrast == "rejection") & (table.region == "caudate_l")].iloc[0]
    a = e.var(ddof=1) / e.size
    assert row.t == pytest.approx(e.mean() / np.sqrt(a + 4.0))
    assert row.df == pytest.approx((e.size - 1) * ((a + 4.0) / a) ** 2)
    assert row.test == "t_vs_null_drift" and row.drift_sys_sd == 2.0
    assert row.drift_pct == pytest.approx(cell.drift_pct.mean())
    half = 1.96 * np.sqrt(cell.drift_pct.var(ddof=1) / e.size + 4.0)
    assert row.drift_ci_high - row.drift_ci_low == pytest.approx(2 * half)


def test_contrast_values_without_release_free_fits_tests_the_raw_change(rng, caplog):
    """No bp_nd_null (or drift_correct=False): the raw change is tested, as a paired t."""
    bp = _bp_table(rng)
    values, _ = contrast_values(bp, DESIGN)
    assert (values[values.contrast == "rejection"].drift_method == "none").all()
    bp_null = _with_null(bp, {}, rng)
    values, _ = contrast_values(bp_null, DESIGN, drift_correct=False)
    assert (values.effect_pct[values.contrast == "acceptance"]
            == values.change_pct[values.contrast == "acceptance"]).all()


def test_contrast_values_participant_without_null_drift_is_excluded(rng):
    """A failed release-model fit (NaN bp_nd_null) leaves that participant out, with why."""
    bp = _with_null(_bp_table(rng), {}, rng)
    bp.loc[(bp.participant_id == "sub-02") & (bp.condition == "rejection")
           & (bp.region == "amygdala_l"), "bp_nd_null"] = np.nan
    values, excl = contrast_values(bp, DESIGN)
    cell = values[(values.contrast == "rejection") & (values.region == "amygdala_l")]
    assert "sub-02" not in set(cell.participant_id) and len(cell) == 9
    assert excl.reason.str.contains("release model did not fit").any()


def test_contrast_values_control_is_double_difference(rng):
    """rejvsacc tests rejection change minus acceptance change per participant."""
    bp = _bp_table(rng, change={("rejection", "amygdala_l"): -8.0,
                                ("acceptance", "amygdala_l"): -8.0})
    values, _ = contrast_values(bp, DESIGN)
    dd = values[values.contrast == "rejvsacc"].set_index(["participant_id", "region"])
    rej = values[values.contrast == "rejection"].set_index(["participant_id", "region"])
    acc = values[values.contrast == "acceptance"].set_index(["participant_id", "region"])
    assert dd.effect_pct.to_numpy() == pytest.approx(
        (rej.change_pct - acc.change_pct).loc[dd.index].to_numpy())
    table = summarize_contrasts(values)
    amy = table[(table.contrast == "rejvsacc") & (table.region == "amygdala_l")].iloc[0]
    # equal release in both scans cancels: |mean| within 3 SE of 0 (noise 2 % per window)
    assert abs(amy.effect_pct_mean) < 3 * amy.effect_pct_sd / np.sqrt(amy.n)


def test_summarize_contrasts_wilcoxon_option(rng):
    """test='wilcoxon' puts the signed-rank p in p."""
    values, _ = contrast_values(_bp_table(rng), DESIGN)
    table = summarize_contrasts(values, test="wilcoxon")
    assert (table.p == table.wilcoxon_p).all()
    with pytest.raises(ConfigError, match=r"statistics\.test"):
        summarize_contrasts(values, test="anova")


def test_contrast_values_missing_column_is_input_error():
    """A BP table without bp_nd is refused with the column named."""
    with pytest.raises(InputError, match=r"missing column\(s\) bp_nd"):
        contrast_values(pd.DataFrame({"participant_id": [], "condition": [], "region": [],
                                      "model": []}), DESIGN)


def test_cohen_dz_ci_matches_published_value():
    """dz = 0.5, n = 20: 95 % CI 0.028 to 0.960 (noncentral t; Cumming 2012, ESCI)."""
    low, high = cohen_dz_ci(0.5, 20)
    assert low == pytest.approx(0.028, abs=0.002)  # published to 3 decimals
    assert high == pytest.approx(0.960, abs=0.002)


def test_estimate_k2prime_falls_back_and_reports(frames_90min):
    """A scan whose TACs give no k2' is skipped; none at all is an InputError."""
    from pipeline.design import K2primeSettings
    from pipeline.kinetics import estimate_k2prime
    from pipeline.simulate.compartments import srtm_consistent_tacs
    from pipeline.tables import TacTable

    ref, tacs = srtm_consistent_tacs(frames_90min, [2.0, 2.5], k2prime=0.12)
    good = TacTable(frames_90min, pd.DataFrame({"ref": ref, "a": tacs[:, 0], "b": tacs[:, 1]}))
    bad = TacTable(frames_90min, pd.DataFrame({"ref": ref, "a": np.nan * ref, "b": np.nan * ref}))
    settings = K2primeSettings("srtm", ("a", "b"), None)
    value, per_scan = estimate_k2prime([good, bad], settings, reference="ref")
    assert value == pytest.approx(0.12, rel=0.01)  # noiseless SRTM-consistent TACs
    assert np.isnan(per_scan[1])
    with pytest.raises(InputError, match="no scan of this subject gives a usable k2'"):
        estimate_k2prime([bad], settings, reference="ref")
