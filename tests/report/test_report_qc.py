"""Scan QC flags on curves with known residuals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.report.qc import fit_quality, frame_outliers, residual_z, scan_qc

N_FRAMES = 20
REGIONS = [f"r{i}" for i in range(6)]


def _curves(rng, noise=0.02, spike_frame=None, spike=0.0, misfit=0.0) -> pd.DataFrame:
    """Fitted = smooth TAC; measured = fitted x (1 + noise + a smooth misfit + a spike)."""
    start = np.arange(N_FRAMES) * 240.0
    t = (start + 120.0) / 60.0
    rows = []
    for k, region in enumerate(REGIONS):
        fitted = 1000.0 * (1 + k) * (1 - np.exp(-t / 10.0))
        factor = 1 + noise * rng.standard_normal(N_FRAMES) + misfit * np.sin(t / 25.0)
        if spike_frame is not None:
            factor[spike_frame] += spike
        rows.append(pd.DataFrame({"frame_start": start, "frame_end": start + 240.0,
                                  "region": region, "condition": "whole",
                                  "measured": fitted * factor, "fitted": fitted,
                                  "used": True}))
    return pd.concat(rows, ignore_index=True)


def test_frame_outliers_flags_a_frame_off_in_every_region(rng):
    """A 25 % jump of one frame in all regions is flagged, and only that frame."""
    frames = frame_outliers(_curves(rng, spike_frame=9, spike=0.25))
    assert frames.loc[frames["flagged"], "frame_start"].tolist() == [9 * 240.0]


def test_frame_outliers_ignores_smooth_misfit_and_noise(rng):
    """A smooth 15 % misfit shared by all regions plus 2 % noise flags no frame."""
    frames = frame_outliers(_curves(rng, misfit=0.15))
    assert not frames["flagged"].any()


def test_frame_outliers_ignores_a_spike_in_one_region(rng):
    """One region's bad frame is not motion-like (the median over regions stays small)."""
    curves = _curves(rng)
    curves.loc[(curves["region"] == "r2") & (curves["frame_start"] == 9 * 240.0),
               "measured"] *= 1.5
    assert not frame_outliers(curves)["flagged"].any()


def test_fit_quality_nrmse_equals_relative_offset(rng):
    """measured = 1.05 x fitted on every frame gives NRMSE = 0.05 / 1.05 exactly."""
    curves = _curves(rng, noise=0.0)
    curves["measured"] = curves["fitted"] * 1.05
    quality = fit_quality(curves)
    expected = [0.05 * np.sqrt(np.mean(f**2)) / (1.05 * np.mean(f))
                for f in (curves[curves.region == r]["fitted"] for r in REGIONS)]
    assert quality["nrmse"].to_numpy() == pytest.approx(expected, rel=1e-12)


def test_scan_qc_reports_flags_high_residuals_and_failed_fits(rng):
    """Fit flags, NaN estimates and high NRMSE each give a message naming the region."""
    curves = _curves(rng)
    curves.loc[curves["region"] == "r1", "measured"] *= 1.3
    bp = pd.DataFrame({"region": REGIONS, "condition": "whole",
                       "bp_nd": [1.0, 1.0, np.nan, 1.0, 1.0, 1.0],
                       "flags": ["", "", "not_converged", "at_bound", np.nan, ""]})
    messages = scan_qc(curves, bp).messages
    assert "fit flag not_converged: r2 (whole)" in messages
    assert "fit flag at_bound: r3 (whole)" in messages
    assert "no BP_ND estimate: r2" in messages
    assert any(m.startswith("high residuals: r1 (whole), NRMSE 0.2") for m in messages)
    assert len(messages) == 4


def test_residual_z_is_region_by_frame(rng):
    """The heat-map matrix has one row per region (table order) and one column per frame."""
    z = residual_z(_curves(rng))
    assert list(z.index) == REGIONS
    assert z.shape == (len(REGIONS), N_FRAMES)
    assert z.columns[0] == pytest.approx(2.0)  # first frame mid-time, minutes
