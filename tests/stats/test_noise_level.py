"""Tests of pipeline.stats.noise_level: the simulator noise level from TAC roughness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.simulate.roi import simulate_region_tacs
from pipeline.stats.noise_level import noise_level, tac_roughness
from pipeline.tables import TacTable


def _roughness(noise: float, seed: int) -> pd.Series:
    study = simulate_region_tacs(subjects=8, seed=seed, noise=noise, null=True)
    return tac_roughness([study.tac_table(i) for i in range(len(study.scans))])


@pytest.mark.parametrize("true_level", [0.5, 1.5])
def test_noise_level_recovers_the_simulated_level(true_level):
    """Data simulated at a known level (other subjects) -> that level back."""
    level = noise_level(_roughness(true_level, 5), _roughness(0.0, 6), _roughness(1.0, 6))
    # 8 subjects x 2 scans x 15 regions, ~12 frames each: the median variance ratio has
    # a ~10 % sampling error, so the level (its square root) is within ~10 %
    assert level == pytest.approx(true_level, rel=0.12)


def test_roughness_of_a_cubic_is_zero_and_short_scans_are_skipped(frames_90min):
    """A TAC that is exactly cubic in time has no roughness; too few frames: no value."""
    t = frames_90min.mid
    table = TacTable(frames_90min, pd.DataFrame({"a": 5.0 + 0.1 * t - 1e-3 * t**2 + 1e-5 * t**3}))
    assert tac_roughness([table])["a"] == pytest.approx(0.0, abs=1e-20)
    short = TacTable(frames_90min.subset(np.arange(10)), pd.DataFrame({"a": np.ones(10)}))
    assert tac_roughness([short]).empty
    assert np.isnan(noise_level(pd.Series({"a": 1.0}), pd.Series({"b": 0.0}),
                                pd.Series({"b": 1.0})))
