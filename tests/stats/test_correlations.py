"""Tests of pipeline.stats.correlations: r, partial r, bootstrap CI, permutation p."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pipeline.errors import InputError
from pipeline.stats.correlations import correlate, correlate_scores


def test_correlate_pearson_and_spearman_match_scipy(rng):
    """r and p equal scipy's pearsonr / spearmanr without covariates."""
    x = rng.normal(size=30)
    y = 0.5 * x + rng.normal(size=30)
    res = correlate(x, y, n_boot=200, n_perm=200)
    ref = stats.pearsonr(x, y)
    assert res["r"] == pytest.approx(ref.statistic, rel=1e-10)
    assert res["p"] == pytest.approx(ref.pvalue, rel=1e-8)
    assert res["ci_low"] < res["r"] < res["ci_high"]
    sp = correlate(x, y, method="spearman", n_boot=200, n_perm=200)
    assert sp["r"] == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-10)


def test_correlate_partial_matches_first_order_formula(rng):
    """With one covariate, r equals (rxy - rxz ryz) / sqrt((1 - rxz^2)(1 - ryz^2))."""
    z = rng.normal(size=40)
    x = z + rng.normal(size=40)
    y = z + 0.3 * x + rng.normal(size=40)
    rxy, rxz, ryz = (stats.pearsonr(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    expected = (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))
    res = correlate(x, y, covariates=z[:, None], n_boot=200, n_perm=200)
    assert res["r"] == pytest.approx(expected, rel=1e-10)
    t = expected * np.sqrt(37 / (1 - expected**2))  # df = n - 2 - 1
    assert res["p"] == pytest.approx(2 * stats.t.sf(abs(t), 37), rel=1e-8)


def test_correlate_permutation_p_agrees_with_parametric(rng):
    """For normal data the permutation p is near the t-test p (Monte Carlo SE ~0.007)."""
    x = rng.normal(size=25)
    y = 0.4 * x + rng.normal(size=25)
    res = correlate(x, y, n_boot=200, n_perm=5000, seed=3)
    assert res["p_perm"] == pytest.approx(res["p"], abs=0.03)


def test_correlate_scores_rows_and_missing_scores(rng):
    """One row per measure and method; participants with n/a scores are left out."""
    values = pd.DataFrame({"contrast": "rejection", "region": "amygdala_l", "model": "m",
                           "participant_id": [f"sub-{i}" for i in range(12)],
                           "activation": rng.normal(size=12),
                           "activation_pct": rng.normal(size=12)})
    parts = pd.DataFrame({"participant_id": [f"sub-{i}" for i in range(12)],
                          "resilience": np.r_[rng.normal(size=11), np.nan],
                          "age": rng.normal(30, 5, 12), "sex": ["F", "M"] * 6})
    spec = [{"contrast": "rejection", "region": "amygdala_l", "score": "resilience"},
            {"contrast": "rejection", "region": "amygdala_l", "score": "resilience",
             "covariates": ["age", "sex"]}]
    table = correlate_scores(values, parts, spec, model="m", n_boot=100, n_perm=100)
    assert len(table) == 8 and set(table.n) == {11}
    assert set(table.method) == {"pearson", "spearman", "partial_pearson", "partial_spearman"}
    with pytest.raises(InputError, match=r"no column 'ER89'"):
        correlate_scores(values, parts, [{"contrast": "rejection", "region": "amygdala_l",
                                          "score": "ER89"}], model="m")
