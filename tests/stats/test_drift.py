"""Tests of pipeline.stats.drift: null drift by simulating the study's own protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.design import load_design
from pipeline.simulate.carfentanil import default_frames
from pipeline.stats.drift import DRIFT_COLUMNS, common_frames, simulate_null_drift
from pipeline.tables import TacTable

CONFIG = {
    "design": {"conditions": {"base": {"task": "rejection", "window": [30, 45]},
                              "feed": {"task": "rejection", "window": [60, 90]},
                              "other": {"task": "acceptance"}},
               "contrasts": {"rej": {"baseline": "base", "condition": "feed"},
                             "sep": {"baseline": "other", "condition": "feed"}}},
    "models": {"ratio": {}}, "primary_model": "ratio",
    "statistics": {"null_drift": {"n_subjects": 12, "calibration_subjects": 6, "seed": 4}},
}


def test_simulate_null_drift_calibrates_to_observed_binding():
    """kinetics: data -> simulated baseline BP_ND matches the study's (one pass)."""
    observed = pd.DataFrame({"participant_id": "sub-01", "condition": "base", "model": "ratio",
                             "region": ["amygdala_l", "thalamus_l", "myregion"],
                             "bp_nd": [1.2, 2.0, 0.9]})
    table = simulate_null_drift(load_design(CONFIG), CONFIG, frames=default_frames(),
                                reference="occipital", observed=observed)
    assert list(table.columns) == DRIFT_COLUMNS
    assert set(table.contrast) == {"rej"}  # separate-scan contrast: no window drift
    assert set(table.region) == {"amygdala_l", "thalamus_l", "myregion"}
    assert (table.n_sim == 12).all() and np.isfinite(table.drift_pct).all()
    # every drift gets a systematic SD: the sensitivity runs' spread, at least sys_sd_min (1)
    assert (table.drift_sys_sd >= 1.0).all() and np.isfinite(table.drift_sys_sd).all()
    sim = table.set_index("region").bp_baseline_sim
    # calibrated on 6 pilot subjects, checked on 12 others: between-subject BP CV ~10 %
    assert sim["amygdala_l"] == pytest.approx(1.2, rel=0.12)
    assert sim["thalamus_l"] == pytest.approx(2.0, rel=0.12)


def test_common_frames_picks_the_most_common_schedule():
    """The schedule shared by most scans is used for the simulation."""
    frames = default_frames()
    short = frames.subset(np.arange(20))
    tables = [TacTable(f, pd.DataFrame({"a": np.ones(f.n_frames)}))
              for f in (frames, short, frames)]
    assert common_frames(tables).n_frames == frames.n_frames


def test_simulator_accepts_empty_release_tables():
    """No release regions at all (null studies): an empty effects table, not a crash."""
    from dataclasses import replace

    from pipeline.simulate.carfentanil import StudySettings
    from pipeline.simulate.roi import simulate_region_tacs

    settings = replace(StudySettings(), rejection={}, acceptance={})
    study = simulate_region_tacs(subjects=2, seed=1, settings=settings, noise=0.0)
    assert study.effects.empty
    assert list(study.effects.columns) == ["participant_id", "condition", "region",
                                           "release_fraction"]
    # nothing released: the true BP_ND of both windows of a scan is the same
    truth = study.truth.pivot_table(index=["participant_id", "task", "region"],
                                    columns="condition", values="bp_nd")
    assert np.allclose(truth["baseline"], truth.drop(columns="baseline").max(axis=1))
