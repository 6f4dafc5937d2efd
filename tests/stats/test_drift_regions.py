"""Tests of pipeline.stats.drift_regions: the null drift blended across regions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.stats.contrast_tests import summarize_contrasts
from pipeline.stats.drift_regions import blend_drift_across_regions
from pipeline.stats.regional import contrast_values
from tests.stats.test_regional import DESIGN, _bp_table, _with_null

N_SUB, N_REG = 40, 14


def _drift_table(rng, *, offsets_sd: float, noise_sd: np.ndarray) -> tuple[pd.DataFrame,
                                                                           np.ndarray]:
    """Drift = a quadratic in BP_ND + a fixed offset per region + participant noise whose
    SD differs by region; returns the table and each region's true mean drift."""
    bp_region = np.linspace(0.6, 2.2, N_REG)
    offsets = rng.normal(0, offsets_sd, N_REG) if offsets_sd > 0 else np.zeros(N_REG)
    truth = -6.0 + 5.0 * bp_region - 1.2 * bp_region**2 + offsets
    bp = bp_region[None, :] * (1 + rng.normal(0, 0.05, (N_SUB, N_REG)))
    own = truth[None, :] + rng.normal(0, 1, (N_SUB, N_REG)) * noise_sd[None, :]
    table = pd.DataFrame(dict(
        participant_id=np.repeat([f"sub-{i:02d}" for i in range(N_SUB)], N_REG),
        region=np.tile([f"r{j:02d}" for j in range(N_REG)], N_SUB), model="m",
        drift_pct=own.ravel(), bp_baseline=bp.ravel()))
    return table, truth


def _region_means(table: pd.DataFrame) -> np.ndarray:
    return table.groupby("region")["drift_pct"].mean().to_numpy()


def test_blend_pulls_noisy_regions_to_the_regression_when_it_fits(rng):
    """Drift exactly quadratic in BP_ND (no lack of fit), noise SD 1-12 points: the blended
    group means are closer to the truth than the own drifts' (RMSE at least 40 % lower:
    the noisiest regions' own-mean SE is about 2 points, the regression's error well under
    1), weights are small in the noisy regions and the bias SD stays below 1 point."""
    errors_own, errors_blend = [], []
    for _ in range(5):
        table, truth = _drift_table(rng, offsets_sd=0.0, noise_sd=np.linspace(1, 12, N_REG))
        out = blend_drift_across_regions(table)
        errors_own.append(_region_means(table) - truth)
        errors_blend.append(_region_means(out) - truth)
        weights = out.groupby("region")["drift_weight"].first().to_numpy()
        assert weights[-1] < 0.5
        assert (out["drift_lack_sd"] < 1.0).all()
    rmse = [float(np.sqrt(np.mean(np.square(e)))) for e in (errors_own, errors_blend)]
    assert rmse[1] < 0.6 * rmse[0], rmse


def test_blend_keeps_the_own_drift_where_regions_differ_beyond_the_regression(rng):
    """Region offsets of SD 4 points beyond the quadratic and little noise (SD 1): each
    region keeps its own drift (weights > 0.95), the group means move < 0.2 points."""
    table, _ = _drift_table(rng, offsets_sd=4.0, noise_sd=np.full(N_REG, 1.0))
    out = blend_drift_across_regions(table)
    assert (out["drift_weight"] > 0.95).all()
    np.testing.assert_allclose(_region_means(out), _region_means(table), atol=0.2)


def test_stated_bias_sd_covers_the_blend_error(rng):
    """Offsets of SD 1.5 points and noise SD 2-10: over repeated studies, the blended group
    mean lies within 1.96 sqrt(sampling^2 + lack^2) of the truth in >= 90 % of regions
    (the coverage goal of the drift interval)."""
    hits = []
    for _ in range(20):
        table, truth = _drift_table(rng, offsets_sd=1.5, noise_sd=np.linspace(2, 10, N_REG))
        out = blend_drift_across_regions(table)
        grouped = out.groupby("region")
        sampling = grouped["drift_pct"].std(ddof=1).to_numpy() / np.sqrt(N_SUB)
        lack = grouped["drift_lack_sd"].first().to_numpy()
        half = 1.96 * np.sqrt(sampling**2 + lack**2)
        hits += list(np.abs(_region_means(out) - truth) <= half)
    assert np.mean(hits) >= 0.90, np.mean(hits)


def test_too_few_regions_keep_the_own_drift(rng):
    """With 5 regions (3 parameters + fewer than 3 spare) nothing is smoothed."""
    table, _ = _drift_table(rng, offsets_sd=0.0, noise_sd=np.full(N_REG, 3.0))
    table = table[table["region"].isin([f"r{j:02d}" for j in range(5)])]
    out = blend_drift_across_regions(table)
    np.testing.assert_array_equal(out["drift_pct"].to_numpy(), table["drift_pct"].to_numpy())
    assert (out["drift_lack_sd"] == 0).all() and (out["drift_weight"] == 1).all()


def test_contrast_values_regions_pool_shares_the_blend_and_widens_the_test(rng):
    """``drift_pool: regions``: both scans' contrasts get the same blended drift per
    participant and region; the test's systematic SD is sqrt(sys_sd^2 + lack^2)."""
    regions = tuple(f"r{j:02d}" for j in range(10))
    bp = _with_null(_bp_table(rng, n=12, regions=regions),
                    {r: 3.0 * np.sin(j) for j, r in enumerate(regions)}, rng)
    values, _ = contrast_values(bp, DESIGN, drift_pool="regions")
    rej = values[values.contrast == "rejection"].set_index(["participant_id", "region"])
    acc = values[values.contrast == "acceptance"].set_index(["participant_id", "region"])
    np.testing.assert_allclose(rej.drift_pct, acc.drift_pct.loc[rej.index], rtol=1e-12)
    np.testing.assert_allclose(rej.effect_pct, rej.change_pct - rej.drift_pct)
    assert {"drift_lack_sd", "drift_weight"} <= set(values.columns)
    table = summarize_contrasts(values, sys_sd=1.0, design=DESIGN, guard=False)
    for row in table[table.contrast == "rejection"].itertuples():
        lack = rej.xs(row.region, level="region").drift_lack_sd.iloc[0]
        assert row.drift_sys_sd == pytest.approx(np.hypot(1.0, lack), rel=1e-12)
