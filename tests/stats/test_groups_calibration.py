"""Calibration of the between-group tests on simulated two-group studies (slow).

Region-level studies (:func:`pipeline.simulate.simulate_region_tacs`: the image phantom's
partial-volume mixing, 28-frame bolus+infusion scans, noise 0.33 ~ the image demo's TACs),
16 controls and 16 patients, analysed with the workflow's fit steps (logan_ref, shared k2')
and :func:`pipeline.stats.groups.group_differences`. benchmarks/bench_groups.py runs the
same with more studies.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
from scipy import stats

from pipeline.config import load_config
from pipeline.simulate import simulate_region_tacs
from pipeline.simulate.group_study import two_group_demo
from pipeline.stats.simulated_fits import region_group_differences

pytestmark = pytest.mark.slow

N_STUDIES = 40
NOISE = 0.33


def _config():
    config = copy.deepcopy(load_config("config/groups.yaml"))
    config["models"] = {"logan_ref": config["models"]["logan_ref"]}
    return config


def _tolerated(n: int, rate: float = 0.05, alpha: float = 0.01) -> int:
    """Largest count of n families with a finding that a true rate of ``rate`` explains:
    the binomial one-sided test rejects 'rate <= 5 %' at level ``alpha`` above it."""
    return int(stats.binom.isf(alpha, n, rate))


@pytest.mark.parametrize("binding", [1.0, 0.9])
def test_null_two_group_studies_keep_family_wise_rate(binding):
    """No release in either group (and, with binding 0.9, patients' receptor availability
    10 % lower, so that drift could differ): over 40 studies x 3 contrasts = 120
    (contrast, model) families, the count with any FDR-significant group difference is
    within the one-sided binomial 1 % tolerance of a 5 % rate (<= 12 of 120)."""
    config = _config()
    settings, groups, _ = two_group_demo(32)
    groups = [groups[0], dataclasses.replace(groups[1], binding_scale=binding)]
    hits, families = 0, 0
    for seed in range(5000, 5000 + N_STUDIES):
        study = simulate_region_tacs(subjects=32, seed=seed, noise=NOISE, null=True,
                                     pv_mixing="phantom", settings=settings, groups=groups)
        _, diff = region_group_differences(study, config)
        for _, cell in diff.groupby(["contrast", "model"]):
            families += 1
            hits += bool((cell["p_fdr"] < 0.05).any())
    assert families == 3 * N_STUDIES
    assert hits <= _tolerated(families), f"{hits}/{families} families with a finding"
