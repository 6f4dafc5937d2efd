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
