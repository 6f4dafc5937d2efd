"""The drift guard: rows whose drift estimate the data contradict fall back, visibly."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipeline.stats.contrast_tests import summarize_contrasts
from pipeline.stats.drift_guard import fallback_contrasts
from pipeline.stats.regional import contrast_values
from tests.stats.test_regional import DESIGN, _bp_table, _with_null


def test_fallback_contrasts_pairs_plain_contrasts_with_design_controls():
    assert fallback_contrasts(DESIGN) == {"rejection": "rejvsacc"}


def _values(rng, drift):
    bp = _with_null(_bp_table(rng, regions=("a", "b", "c", "d")), drift, rng)
    return contrast_values(bp, DESIGN)[0]


def test_guard_passes_plausible_drifts(rng):
    table = summarize_contrasts(_values(rng, {"a": -2.0, "b": -1.0}), design=DESIGN)
    assert (table.guard == "").all()
    plain = table[table.contrast.isin(["rejection", "acceptance"])]
    assert (plain.headline == "drift_corrected").all()


def test_guard_drift_far_outside_observed_changes_falls_back_to_control(rng):
    """A drift of -40 % where the changes span a few %: rejection takes rejvsacc's test."""
    table = summarize_contrasts(_values(rng, {"c": -40.0}), design=DESIGN)
    row = table[(table.contrast == "rejection") & (table.region == "c")].iloc[0]
    ctl = table[(table.contrast == "rejvsacc") & (table.region == "c")].iloc[0]
    assert "far outside the changes observed" in row.guard
    assert row.headline == "control_corrected (rejvsacc)"
    assert row.p == ctl.p and row.effect_pct_mean == ctl.effect_pct_mean
    # acceptance has no design-based control: raw change shown, no test, not significant
    acc = table[(table.contrast == "acceptance") & (table.region == "c")].iloc[0]
    assert acc.headline == "raw (drift not controlled)"
    assert np.isnan(acc.p) and not acc.significant
    assert acc.effect_pct_mean == acc.change_pct_mean


def test_guard_release_model_failing_for_many_participants(rng):
    """Drift missing for 4 of 10 participants in one region: that row falls back."""
    bp = _with_null(_bp_table(rng, regions=("a", "b")), {}, rng)
    failed = bp.participant_id.isin(["sub-00", "sub-01", "sub-02", "sub-03"]) \
        & (bp.region == "a") & (bp.condition == "acceptance")
    bp.loc[failed, "bp_nd_null"] = np.nan
    table = summarize_contrasts(contrast_values(bp, DESIGN)[0], design=DESIGN)
    row = table[(table.contrast == "acceptance") & (table.region == "a")].iloc[0]
    assert "release model fitted 6 of 10" in row.guard
    other = table[(table.contrast == "acceptance") & (table.region == "b")].iloc[0]
    assert other.guard == ""


def test_guard_can_be_switched_off(rng):
    table = summarize_contrasts(_values(rng, {"c": -40.0}), design=DESIGN, guard=False)
    assert (table.guard == "").all()
    assert isinstance(table, pd.DataFrame)
