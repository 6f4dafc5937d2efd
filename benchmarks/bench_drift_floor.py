"""The floor of any drift estimate: within-scan effects with the true drift subtracted.

For each variation of petbp's region simulator, the planted studies of ``bench_drift.py``
(same seeds, same noisy fits: ``--cache`` reuses them) are scored three ways against the
measured-space truth (``bench_drift.measured_release``), RMSE in % points over planted
(|truth| > 1) and unplanted rows of the primary model's group-mean effects:

* ``none``: the raw windowed change, no drift handling;
* ``release_model``: the shipped drift handling (pooled over the participant's scans);
* ``oracle``: the noisy raw change minus each participant's **true** null drift (the same
  windowed analysis of the participant's noiseless null-twin curves). No drift estimate can
  do better than this, since it is exact and noise-free: what remains is the noise of the raw
  change itself (and the windowed model's own bias, ``rmse_oracle`` of
  ``bench_drift_bias.py``).

``se_change_median`` / ``se_change_max``: the standard error over participants of the raw
change (median and largest over the rows of the planted studies), % points: the noise floor
of the group-mean effect with ``--subjects`` participants.

Run: ``python benchmarks/bench_drift_floor.py --cache DIR [--variations 0 4] [--planted 3]
[--first 40]`` (planted seeds ``1000 + first`` ...; with the cache of run 7 the noisy fits are
read, not refitted).
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

from bench_drift import chosen_variations, default_analysis, study_fits  # noqa: E402

from pipeline.simulate.variations import simulate_variation  # noqa: E402
from pipeline.stats.region_study import ScanTacs, region_bp_table  # noqa: E402
from pipeline.stats.regional import contrast_values  # noqa: E402

KEYS = ["contrast", "participant_id", "region", "model"]


def true_drift(variation, args, design, models, k2p, seed: int) -> pd.DataFrame:
    """Per participant, region and within-scan contrast: the windowed change of the
    noiseless null-twin curves (% points), the drift a perfect estimate would subtract."""
    scans, truth = simulate_variation(variation, subjects=args.subjects, seed=seed,
                                      null=False, noise=args.noise)
    reference = truth.attrs["reference"]
    twins = [ScanTacs(s.participant_id, s.task, t)
             for s, t in zip(scans, truth.attrs["noiseless_null"], strict=True)]
    bp = region_bp_table(twins, design, models=models, reference=reference, k2prime=k2p,
                         release_fit_start=None)
    values, _ = contrast_values(bp, design, drift_correct=False, drift_pool="none")
    return values[[*KEYS, "change_pct"]].rename(columns={"change_pct": "true_drift"})


def score_rows(values: pd.DataFrame, truth: pd.DataFrame, column: str) -> tuple[list, list]:
    """Squared errors of the group-mean ``column`` (activation sign: -effect) per row."""
    means = values.groupby(["contrast", "region"])[column].mean().rename("effect").reset_index()
    rows = means.merge(truth, on=["contrast", "region"], how="inner")
    err = -rows["effect"] - rows["truth_pct"]
    planted = rows["truth_pct"].abs() > 1.0
    return list(err[planted] ** 2), list(err[~planted] ** 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variations", type=int, nargs="*", default=None)
    parser.add_argument("--planted", type=int, default=3)
    parser.add_argument("--first", type=int, default=40,
                        help="index of the first planted study (seed 1000 + first), as "
                        "bench_drift.py's --studies")
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--noise", type=float, default=0.5)
    parser.add_argument("--fit-start", type=float, default=10.0)
    parser.add_argument("--cache", default=None)
    args = parser.parse_args()
    args.all_models, args.release_model, args.baseline_start = False, "srtm", 20.0
    design, models, k2p = default_analysis()
    primary = next(iter(models))
    models = {primary: models[primary]}
    chosen = chosen_variations(args.variations)
    rows = []
    for variation in chosen:
        start = time.time()
        sq = {m: ([], []) for m in ("none", "release_model", "oracle")}
        ses = []
        for k in range(args.first, args.first + args.planted):
            bp, _, truth = study_fits(variation, args, design, models, k2p, k, False)
            raw, _ = contrast_values(bp, design, drift_correct=False, drift_pool="none")
            raw = raw[raw["model"] == primary]
            within = raw[raw["drift_method"] == "none"]
            corrected, _ = contrast_values(bp, design, drift_correct=True, drift_pool="scans")
            corrected = corrected[corrected["model"] == primary]
            drift = true_drift(variation, args, design, models, k2p, 1000 + k)
            oracle = within.merge(drift, on=KEYS, how="inner")
            oracle["oracle"] = oracle["change_pct"] - oracle["true_drift"]
            for method, frame, column in (("none", within, "effect_pct"),
                                          ("release_model", corrected, "effect_pct"),
                                          ("oracle", oracle, "oracle")):
                frame = frame[frame["contrast"].isin(truth["contrast"].unique())]
                planted_sq, unplanted_sq = score_rows(frame, truth, column)
                sq[method][0].extend(planted_sq)
                sq[method][1].extend(unplanted_sq)
            ses += list(within.groupby(["contrast", "region"])["change_pct"].sem())
        row = {"variation": variation.name}
        for method, (planted_sq, unplanted_sq) in sq.items():
            row[f"rmse_planted_{method}"] = float(np.sqrt(np.mean(planted_sq)))
            row[f"rmse_unplanted_{method}"] = float(np.sqrt(np.mean(unplanted_sq)))
        row["se_change_median"] = float(np.median(ses))
        row["se_change_max"] = float(np.max(ses))
        rows.append(row)
        print(f"# {variation.name}: {time.time() - start:.0f} s", flush=True)
    table = pd.DataFrame(rows)
    print(f"# subjects {args.subjects}, noise {args.noise}, planted studies "
          f"{args.first}-{args.first + args.planted - 1}")
    print(table.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
