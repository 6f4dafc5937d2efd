"""Where the noise of within-scan release estimates comes from, on petbp's simulator and on
data it did not make.

Two tables:

1. Frame noise: the coefficient of variation of late frames (start >= 30 min, scaled to a
   10-min frame, variance ~ 1/duration) of the target regions in
   * petbp's region simulator at ``--noise`` levels (noisy minus noiseless),
   * the independent simulator (``../shared/validation/independent_sim/kbol90-null``, noisy
     minus its noiseless curves),
   * the real TACs of ``../shared/validation/real_tacs`` (residuals of a frame-duration
     weighted SRTM fit with the cerebellar cortex as reference, so model misfit counts as
     noise there: an upper bound).
2. Per-participant spread (SD over the 12 participants, median over regions and both
   within-scan contrasts) of logan_ref's raw change, the release model's drift (each scan's
   own, and pooled over the participant's two scans) and the tested effect, on a null study
   of petbp's defaults and on the independent Kbol 90 null study.

Run: ``python benchmarks/bench_drift_noise.py [--noise 0.5 1.0] [--seed 1000]``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_drift import default_analysis  # noqa: E402

from pipeline.kinetics.srtm import fit_srtm  # noqa: E402
from pipeline.simulate.variations import VARIATIONS, simulate_variation  # noqa: E402
from pipeline.stats.region_study import ScanTacs, region_bp_table  # noqa: E402
from pipeline.stats.regional import contrast_values  # noqa: E402
from pipeline.tables import TacTable, read_tacs  # noqa: E402

VALIDATION = ROOT.parent / "shared" / "validation"
INDEPENDENT = VALIDATION / "independent_sim" / "kbol90-null"
NAMES = {"thalamus_L": "thalamus_l", "thalamus_R": "thalamus_r", "amygdala_L": "amygdala_l",
         "amygdala_R": "amygdala_r", "accumbens_L": "nacc_l", "accumbens_R": "nacc_r",
         "caudate_L": "caudate_l", "caudate_R": "caudate_r", "putamen_L": "putamen_l",
         "putamen_R": "putamen_r", "insula_L": "insula_l", "insula_R": "insula_r",
         "anterior_cingulate": "acc", "pag": "pag", "occipital_cortex": "occipital"}
REAL_REGIONS = ["Thalamus", "Caudate", "Putamen", "Amygdala", "Accumbens-area"]


def late_cv(noisy: np.ndarray, clean: np.ndarray, start: np.ndarray, duration: np.ndarray
            ) -> np.ndarray:
    """RMS relative deviation of frames starting >= 30 min, scaled to 10-min frames, %."""
    late = start >= 30.0
    rel = (noisy[late] - clean[late]) / clean[late] * np.sqrt(duration[late] / 10.0)[:, None]
    return 100.0 * np.sqrt(np.mean(rel**2, axis=0))


def independent_scans(noiseless: bool) -> list[ScanTacs]:
    scans = []
    for path in sorted((INDEPENDENT / "tacs").glob("*_desc-phantom_tacs.tsv")):
        sub, task = path.name.split("_")[0], path.name.split("_")[1].split("-")[1]
        table = read_tacs(path)
        tacs = table.tacs[list(NAMES)].rename(columns=NAMES)
        if noiseless:
            clean = pd.read_csv(INDEPENDENT / "truth" / "noiseless_tacs"
                                / path.name.replace("_desc-phantom", ""), sep="\t")
            tacs = clean[list(NAMES)].rename(columns=NAMES).set_axis(tacs.index)
        scans.append(ScanTacs(sub, task, TacTable(table.frames, tacs)))
    return scans


def frame_noise(levels: list[float], seed: int) -> pd.DataFrame:
    rows = []
    for level in levels:
        scans, truth = simulate_variation(VARIATIONS[0], subjects=12, seed=seed, null=True,
                                          noise=level)
        for scan, clean in zip(scans, truth.attrs["noiseless"], strict=True):
            f = scan.tacs.frames
            cv = late_cv(scan.tacs.tacs.to_numpy(float), clean.tacs.to_numpy(float),
                         f.start, f.duration)
            rows += [(f"petbp noise {level}", r, v) for r, v in zip(scan.tacs.regions, cv,
                                                                     strict=True)]
    noisy, clean = independent_scans(False), independent_scans(True)
    for a, b in zip(noisy, clean, strict=True):
        f = a.tacs.frames
        cv = late_cv(a.tacs.tacs.to_numpy(float), b.tacs.tacs.to_numpy(float), f.start,
                     f.duration)
        rows += [("independent", r, v) for r, v in zip(a.tacs.regions, cv, strict=True)]
    real = VALIDATION / "real_tacs"
    for path in sorted(real.glob("sub-0[0-9][0-9]_ses-*_desc-gtmseg_tacs.tsv")):
        t = read_tacs(path)
        ref = 0.5 * (t.column("Left-Cerebellum-Cortex") + t.column("Right-Cerebellum-Cortex"))
        cols = [f"{side}-{r}" for r in REAL_REGIONS for side in ("Left", "Right")]
        data = t.tacs[cols].to_numpy(float)
        fit = fit_srtm(t.frames, ref, data, weights=t.frames.duration)
        cv = late_cv(data, fit.fitted, t.frames.start, t.frames.duration)
        rows += [("real (SRTM residual)", c.split("-", 1)[1], v)
                 for c, v in zip(cols, cv, strict=True)]
    table = pd.DataFrame(rows, columns=["source", "region", "cv_pct"])
    table["region"] = table["region"].str.replace(r"_[lr]$", "", regex=True).replace(
        {"Thalamus": "thalamus", "Caudate": "caudate", "Putamen": "putamen",
         "Amygdala": "amygdala", "Accumbens-area": "nacc"})
    return table.groupby(["region", "source"])["cv_pct"].median().unstack()


def spreads(scans: list[ScanTacs], reference: str) -> dict[str, float]:
    design, models, k2p = default_analysis()
    primary = next(iter(models))
    bp = region_bp_table(scans, design, models={primary: models[primary]},
                         reference=reference, k2prime=k2p, release_fit_start=10.0)
    out = {}
    for pool in ("none", "scans"):
        values, _ = contrast_values(bp, design, drift_pool=pool)
        values = values[values["contrast"].isin(["rejection", "acceptance"])]
        sd = values.groupby(["contrast", "region"])[["change_pct", "drift_pct",
                                                     "effect_pct"]].std().median()
        out["change SD"] = float(sd["change_pct"])
        out[f"drift SD ({pool})"] = float(sd["drift_pct"])
        out[f"effect SD ({pool})"] = float(sd["effect_pct"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--seed", type=int, default=1000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    pd.set_option("display.width", 200)
    print("Late-frame CV (% of activity, 10-min frame equivalent), median over scans:")
    print(frame_noise(args.noise, args.seed).round(2).to_string())
    scans, truth = simulate_variation(VARIATIONS[0], subjects=12, seed=args.seed, null=True,
                                      noise=args.noise[0])
    rows = {f"petbp defaults, noise {args.noise[0]}": spreads(scans, truth.attrs["reference"]),
            "independent kbol90-null": spreads(independent_scans(False), "occipital")}
    print("\nPer-participant SD (% points), median over regions and contrasts:")
    print(pd.DataFrame(rows).T.round(2).to_string())


if __name__ == "__main__":
    main()
