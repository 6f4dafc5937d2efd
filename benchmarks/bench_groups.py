"""Calibration of the patient-vs-control statistics on region-level simulated studies (a
benchmark, not a test; tests/stats/test_groups_calibration.py pins the numbers).

Scenarios (two-group windows studies, 16 + 16 subjects, 28-frame 90-min bolus+infusion
scans, the image phantom's partial-volume mixing, primary model logan_ref with the shared
k2'):

* ``null``: no release in either group; ``null_binding``: no release, patients' receptor
  availability 10 % lower (drift depends on binding: does it still cancel?). Reported: the
  rate of (contrast, model) families with any FDR-significant group difference, with the
  Clopper-Pearson 95 % interval, the study-wide rate (any family of the study), and how
  many families have a finding in a row not flagged ``binding_differs``.
* ``planted``: the two-group demo (controls 5-8 % in six regions, nine (contrast, region)
  pairs, SD 3-4 %; patients none; rating r = 0.7 with thalamus_l acceptance release).
  Reported per study: planted pairs found (p_FDR < 0.05), findings in unplanted pairs, the
  largest error of a planted difference against the measured-space truth (the same
  subjects simulated without noise, minus their null twin), and the measured
  rating-release correlation in controls.

Run from the repository root::

    nice .venv/bin/python benchmarks/bench_groups.py --studies 100 --noise 0.33
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import numpy as np
import pandas as pd
from scipy import stats

from pipeline.config import load_config
from pipeline.simulate import simulate_region_tacs
from pipeline.simulate.group_study import (
    TWO_GROUP_ACCEPTANCE,
    TWO_GROUP_REJECTION,
    two_group_demo,
)
from pipeline.stats.region_study import region_group_differences

PLANTED = {("rejection", r) for r in TWO_GROUP_REJECTION} \
    | {("acceptance", r) for r in TWO_GROUP_ACCEPTANCE}


def analysis_config() -> dict:
    """config/groups.yaml with the primary model only (the FDR family of the criteria)."""
    config = copy.deepcopy(load_config("config/groups.yaml"))
    config["models"] = {"logan_ref": config["models"]["logan_ref"]}
    config["design"]["groups"]["covariates"] = []
    return config


def null_studies(n: int, noise: float, binding: float = 1.0, seed0: int = 1000,
                 subjects: int = 32) -> pd.DataFrame:
    """One row per study and (contrast, model) family: any p_fdr < 0.05, the smallest p."""
    config = analysis_config()
    settings, groups, _ = two_group_demo(subjects)
    groups = [groups[0], dataclasses.replace(groups[1], binding_scale=binding)]
    rows = []
    for seed in range(seed0, seed0 + n):
        study = simulate_region_tacs(subjects=subjects, seed=seed, noise=noise, null=True,
                                     pv_mixing="phantom", settings=settings, groups=groups)
        _, diff = region_group_differences(study, config)
        for (contrast, model), cell in diff.groupby(["contrast", "model"]):
            hits = cell["p_fdr"] < 0.05
            rows.append(dict(seed=seed, contrast=contrast, model=model,
                             any_fdr=bool(hits.any()),
                             any_unflagged=bool((hits & ~cell["binding_differs"]).any()),
                             flagged=int(cell["binding_differs"].sum()),
                             p_min=float(cell["p"].min())))
    return pd.DataFrame(rows)


def measured_truth(seed: int, subjects: int = 32) -> pd.Series:
    """Measured-space group difference per (contrast, region): noiseless study minus its
    noiseless null twin (same subjects), analysed as the data are."""
    config = analysis_config()
    settings, groups, _ = two_group_demo(subjects)
    out = []
    for null in (False, True):
        study = simulate_region_tacs(subjects=subjects, seed=seed, noise=0.0, null=null,
                                     pv_mixing="phantom", settings=settings, groups=groups)
        out.append(region_group_differences(study, config)[1]
                   .set_index(["contrast", "region"])["difference"])
    return out[0] - out[1]


def planted_studies(n: int, noise: float, seed0: int = 2000,
                    subjects: int = 32) -> pd.DataFrame:
    """Per study: planted pairs found, unplanted findings, largest error, rating r (HC)."""
    config = analysis_config()
    settings, groups, ratings = two_group_demo(subjects)
    rows = []
    for seed in range(seed0, seed0 + n):
        truth = measured_truth(seed, subjects)
        study = simulate_region_tacs(subjects=subjects, seed=seed, noise=noise,
                                     pv_mixing="phantom", settings=settings, groups=groups,
                                     ratings=ratings)
        values, diff = region_group_differences(study, config)
        diff = diff[diff["contrast"] != "rejvsacc"].set_index(["contrast", "region"])
        found = set(diff.index[diff["p_fdr"] < 0.05])
        errors = [abs(diff.loc[k, "difference"] - truth[k]) for k in PLANTED]
        rating = study.ratings["desire"]
        change = (rating["acceptance"] - rating["accbase"]).to_numpy()
        cell = values[(values["contrast"] == "acceptance") & (values["region"] == "thalamus_l")]
        joined = cell.merge(rating.assign(change=change), on="participant_id").merge(
            study.participants[["participant_id", "group"]], on="participant_id")
        hc = joined[joined["group"] == "HC"]
        rows.append(dict(seed=seed, found=len(found & PLANTED), unplanted=len(found - PLANTED),
                         unplanted_pairs=";".join(f"{c}/{r}" for c, r in sorted(found - PLANTED)),
                         max_error=max(errors), rating_r=float(np.corrcoef(
                             -hc["change_pct"], hc["change"])[0, 1])))
    return pd.DataFrame(rows)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval of k successes in n."""
    tail = (1 - level) / 2
    lo = 0.0 if k == 0 else stats.beta.ppf(tail, k, n - k + 1)
    hi = 1.0 if k == n else stats.beta.ppf(1 - tail, k + 1, n - k)
    return float(lo), float(hi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=100)
    parser.add_argument("--noise", type=float, default=0.33,
                        help="simulator noise level (0.33 ~ the image demo's TACs)")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["null", "null_binding", "planted"])
    args = parser.parse_args()
    for name, binding in (("null", 1.0), ("null_binding", 0.9)):
        if name in args.skip:
            continue
        start = time.perf_counter()
        table = null_studies(args.studies, args.noise, binding)
        k, n = int(table["any_fdr"].sum()), len(table)
        per_study = table.groupby("seed")["any_fdr"].any()
        lo, hi = clopper_pearson(k, n)
        slo, shi = clopper_pearson(int(per_study.sum()), len(per_study))
        print(f"{name}: {k}/{n} families with an FDR finding = {k / n:.3f} "
              f"(95% CI {lo:.3f}-{hi:.3f}); studies with any: {int(per_study.sum())}/"
              f"{len(per_study)} = {per_study.mean():.3f} (95% CI {slo:.3f}-{shi:.3f}); "
              f"by contrast: {table.groupby('contrast')['any_fdr'].sum().to_dict()}; "
              f"families with a finding not flagged binding_differs: "
              f"{int(table['any_unflagged'].sum())}/{n}; rows flagged per family (mean): "
              f"{table['flagged'].mean():.2f}; "
              f"{time.perf_counter() - start:.0f} s")
    if "planted" not in args.skip:
        start = time.perf_counter()
        table = planted_studies(args.studies, args.noise)
        ok = (table["found"] >= 7) & (table["unplanted"] == 0) & (table["max_error"] <= 2.5) \
            & (table["rating_r"] >= 0.4)
        print(table.describe().round(3).to_string())
        print(f"planted: P(found >= 7) {np.mean(table['found'] >= 7):.3f}, "
              f"P(no unplanted) {np.mean(table['unplanted'] == 0):.3f}, "
              f"P(max error <= 2.5) {np.mean(table['max_error'] <= 2.5):.3f}, "
              f"P(rating r >= 0.4) {np.mean(table['rating_r'] >= 0.4):.3f}, "
              f"all four {ok.mean():.3f}; unplanted findings: "
              f"{table['unplanted_pairs'][table['unplanted'] > 0].tolist()}; "
              f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
