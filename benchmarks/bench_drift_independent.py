"""The release model on the independent simulator's noisy studies, scored as the tests do.

``../shared/validation/independent_sim``: four 12-subject studies of a simulator that shares
no code with petbp (Kbol 90 and 60 min, planted and null twins). The shipped config's
region analysis runs with the release model and fit start given here and the pooled drift
(``drift_pool: scans``), scored as ``tests/stats/test_independent_sim.py``: truth is the
planted study's mean ``meas_srtm_pct`` minus its null twin's, planted rows |truth| > 2
points. Printed per (release model, fit start, systematic SD): RMSE (% points) of the
primary model's headline effect in planted and unplanted rows of the planted studies, the
largest error there, planted rows found (FDR-significant, BP falling) per planted study,
and false findings (unplanted rows of planted studies and every row of the null studies).

With ``--oracle`` it also prints, per planted row, the raw change's error and the error of
the *oracle*: each participant's noisy raw change minus its true null change (the same
windowed analysis of its noiseless null-twin curves), the best that subtracting a drift
known from outside the scan can do (benchmarks/README.md, run 11).

Run: ``python benchmarks/bench_drift_independent.py [--release-models srtm early_step]
[--fit-starts 10 20] [--baseline-start 20] [--sys-sd 1.12] [--oracle]`` (about 40 s per
setting on one core).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_drift import default_analysis, independent_scans  # noqa: E402
from bench_drift_bias import (  # noqa: E402
    INDEPENDENT,
    WITHIN,
    independent_noiseless,
    independent_truth,
)
from bench_drift_noise import NAMES  # noqa: E402

from pipeline.kinetics.release import RELEASE_MODELS  # noqa: E402
from pipeline.stats.contrast_tests import summarize_contrasts  # noqa: E402
from pipeline.stats.region_study import ScanTacs, region_bp_table  # noqa: E402
from pipeline.stats.regional import contrast_values  # noqa: E402
from pipeline.tables import TacTable  # noqa: E402

STUDIES = ("kbol90", "kbol90-null", "kbol60", "kbol60-null")


def noisy_scans(study: str) -> list[ScanTacs]:
    """The noisy regional TACs of one independent study, regions renamed as petbp's."""
    return [ScanTacs(s.participant_id, s.task,
                     TacTable(s.tacs.frames, s.tacs.tacs[list(NAMES)].rename(columns=NAMES)))
            for s in independent_scans(INDEPENDENT / study)]


def score(release_model: str, fit_start: float, sys_sds: list[float],
          baseline_start: float | None = None) -> list[dict]:
    """Scores of one release model and fit start at each systematic SD."""
    design, models, k2p = default_analysis()
    primary = next(iter(models))
    bp = {study: region_bp_table(noisy_scans(study), design, models=models,
                                 reference="occipital", k2prime=k2p,
                                 release_fit_start=fit_start, release_model=release_model,
                                 baseline_start=baseline_start)
          for study in STUDIES}
    rows = []
    for sys_sd in sys_sds:
        parts = []
        for study in STUDIES:
            values, _ = contrast_values(bp[study], design, drift_pool="scans")
            table = summarize_contrasts(values, sys_sd=sys_sd, design=design)
            table = table[(table["model"] == primary) & table["contrast"].isin(WITHIN)].copy()
            planted = study.removesuffix("-null")
            truth = independent_truth(planted) - independent_truth(planted + "-null")
            table["study"] = study
            table["truth"] = [0.0 if study.endswith("null") else truth.get((c, r), 0.0)
                              for c, r in zip(table["contrast"], table["region"], strict=True)]
            parts.append(table)
        out = pd.concat(parts, ignore_index=True)
        out["error"] = -out["effect_pct_mean"] - out["truth"]
        out["planted"] = out["truth"].abs() > 2.0
        own = out[~out["study"].str.endswith("null")]
        found = out[out["planted"] & out["significant"] & (out["effect_pct_mean"] < 0)]
        worst = own.loc[own["error"].abs().idxmax()]
        rows.append({
            "release_model": release_model, "fit_start": fit_start,
            "baseline_start": baseline_start, "sys_sd": sys_sd,
            "rmse_planted": float(np.sqrt((own.loc[own["planted"], "error"] ** 2).mean())),
            "rmse_unplanted": float(np.sqrt((own.loc[~own["planted"], "error"] ** 2).mean())),
            "largest": float(own["error"].abs().max()),
            "largest_row": f"{worst['study']} {worst['contrast']} {worst['region']}",
            "found_kbol90": int((found["study"] == "kbol90").sum()),
            "found_kbol60": int((found["study"] == "kbol60").sum()),
            "false": int((out["significant"] & ~out["planted"]).sum()),
            "failed_fits": int(out["n"].lt(12).sum()) if "n" in out else -1})
    return rows


def _raw_changes(scans: list[ScanTacs]) -> pd.Series:
    """Primary model's raw within-scan change (%) per (contrast, participant, region)."""
    design, models, k2p = default_analysis()
    primary = next(iter(models))
    bp = region_bp_table(scans, design, models={primary: models[primary]},
                         reference="occipital", k2prime=k2p, release_fit_start=None)
    values, _ = contrast_values(bp, design, drift_correct=False)
    values = values[values["contrast"].isin(WITHIN)]
    return values.set_index(["contrast", "participant_id", "region"])["change_pct"]


def oracle_rows() -> pd.DataFrame:
    """Per planted-study row: truth, the raw change's error and the oracle's error (% points,
    positive = BP_ND read as falling more than the truth) and the raw change's SE."""
    rows = []
    for planted in ("kbol90", "kbol60"):
        truth = independent_truth(planted) - independent_truth(planted + "-null")
        noisy = _raw_changes(noisy_scans(planted))
        null = _raw_changes(independent_noiseless(planted + "-null"))
        both = pd.DataFrame({"noisy": noisy, "null": null}).dropna()
        for (contrast, region), group in both.groupby(level=["contrast", "region"]):
            expected = truth.get((contrast, region), 0.0)
            rows.append({"study": planted, "contrast": contrast, "region": region,
                         "truth": expected,
                         "raw_error": -group["noisy"].mean() - expected,
                         "oracle_error": -(group["noisy"] - group["null"]).mean() - expected,
                         "se_change": group["noisy"].sem()})
    return pd.DataFrame(rows)


def print_oracle() -> None:
    """The oracle's and the raw change's RMSE and largest error on the planted studies."""
    table = oracle_rows()
    planted = table["truth"].abs() > 2.0
    for column in ("raw_error", "oracle_error"):
        err = table[column]
        worst = table.loc[err.abs().idxmax()]
        print(f"{column}: RMSE planted {np.sqrt((err[planted] ** 2).mean()):.2f}, "
              f"unplanted {np.sqrt((err[~planted] ** 2).mean()):.2f}, largest "
              f"{err.abs().max():.2f} ({worst['study']} {worst['contrast']} {worst['region']}, "
              f"SE of its change {worst['se_change']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release-models", nargs="+", default=["srtm"], choices=RELEASE_MODELS)
    parser.add_argument("--fit-starts", type=float, nargs="+", default=[10.0])
    parser.add_argument("--baseline-start", type=float, default=20.0,
                        help="minutes: where early_step's baseline BP_ND begins")
    parser.add_argument("--sys-sd", type=float, nargs="+", default=[1.12],
                        help="% points added to each within-scan test")
    parser.add_argument("--oracle", action="store_true",
                        help="also the raw change and the true-drift oracle")
    args = parser.parse_args()
    if args.oracle:
        print_oracle()
    rows = []
    for release_model in args.release_models:
        for fit_start in args.fit_starts:
            start = time.time()
            base = args.baseline_start if release_model.startswith("early_step") else None
            rows += score(release_model, fit_start, args.sys_sd, base)
            print(f"# {release_model} from {fit_start:g} min: {time.time() - start:.0f} s",
                  flush=True)
    pd.set_option("display.width", 220)
    print(pd.DataFrame(rows).round(2).to_string(index=False))


if __name__ == "__main__":
    main()
