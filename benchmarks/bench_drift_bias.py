"""How much of the within-scan release error is bias: the release model on noiseless curves.

For each variation of petbp's region simulator (:data:`pipeline.simulate.variations.VARIATIONS`)
one planted study is simulated and its **noiseless** curves are analysed as the workflow
analyses noisy ones (shipped config: windows, logan_ref with the subject's shared k2', the
release model fitted from ``--fit-start``, drift pooled over the participant's scans). With no
noise, every error left is bias of the method. Printed per variation and fit start:

* ``rmse_planted`` / ``rmse_unplanted``: RMSE (% points) of the headline effect against the
  measured-space truth (as ``bench_drift.py``: an ideal noiseless segmented SRTM fitted from
  injection, planted minus the null twin), over planted (|truth| > 1) and unplanted rows;
* ``rmse_oracle``: the same for the raw windowed change minus the *true* null drift (logan_ref
  on the noiseless null twin): the error a perfect drift estimate would leave (the windowed
  model's own view of the release);
* ``spurious_null``: median over regions of the release model's own release estimate
  (% fall of BP_ND) on the noiseless null twin: what the model reads into curves without
  release.

Below the table: the **systematic SD** each fit start implies, the RMS over petbp's variations
of ``rmse_unplanted`` (the bias of the group-mean effect where nothing was released: what the
within-scan test's ``sys_sd`` stands for), variations that change only the noise left out
(they share the defaults' noiseless curves).

``--independent`` scores the same on the noiseless curves of the independent simulator's four
studies (``../shared/validation/independent_sim``, its truth as in
``tests/stats/test_independent_sim.py``: planted rows |truth| > 2 points; ``largest`` is the
largest error of a planted study's row; ``null_rms`` the RMS effect of the null studies' rows).

Run: ``python benchmarks/bench_drift_bias.py [--variations 0 1] [--fit-starts 10 20]
[--release-models srtm early_step srtm2 two_stage] [--baseline-starts 20] [--independent]``
(about 30 s per variation and release model on one core).
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

from bench_drift import chosen_variations, default_analysis, measured_release  # noqa: E402
from bench_drift_noise import NAMES  # noqa: E402

from pipeline.kinetics import estimate_k2prime  # noqa: E402
from pipeline.kinetics.release import RELEASE_MODELS, remove_release  # noqa: E402
from pipeline.simulate.variations import simulate_variation  # noqa: E402
from pipeline.stats.contrast_tests import summarize_contrasts  # noqa: E402
from pipeline.stats.region_study import ScanTacs, region_bp_table  # noqa: E402
from pipeline.stats.regional import contrast_values  # noqa: E402
from pipeline.tables import TacTable, read_tacs  # noqa: E402

INDEPENDENT = ROOT.parent / "shared" / "validation" / "independent_sim"
#: The independent simulator's studies: planted, then its null twin.
INDEPENDENT_STUDIES = (("kbol90", "kbol90-null"), ("kbol60", "kbol60-null"))
#: The within-scan contrasts scored (``rejvsacc`` has no drift to estimate).
WITHIN = ("rejection", "acceptance")
#: Onset of the feedback window, minutes (the shipped design).
ONSET = 45.0


def _rmse(errors: pd.Series) -> float:
    return float(np.sqrt(np.mean(errors**2))) if len(errors) else float("nan")


def truth_table(truth: pd.DataFrame, scans: list[ScanTacs], reference: str) -> pd.DataFrame:
    """Measured-space release per (contrast, region), % fall of BP_ND (as bench_drift)."""
    release = measured_release(truth.attrs["noiseless"], truth.attrs["noiseless_null"], reference)
    regions = [r for r in scans[0].tacs.regions if r != reference]
    per = pd.DataFrame(release, columns=regions)
    per["contrast"] = [s.task for s in scans]
    return (per.groupby("contrast").mean().stack().rename("truth_pct").reset_index()
            .rename(columns={"level_1": "region"}))


def spurious_release(truth: pd.DataFrame, scans: list[ScanTacs], reference: str,
                     fit_start: float, release_model: str = "srtm", k2prime=None,
                     baseline_start: float | None = None) -> float:
    """Median % fall of BP_ND the release model reads into the noiseless null curves."""
    falls = []
    subjects = [s.participant_id for s in scans]
    k2p = {}
    if release_model == "srtm2":
        for pid in set(subjects):
            k2p[pid] = estimate_k2prime([t for t, p in zip(truth.attrs["noiseless_null"],
                                                           subjects, strict=True) if p == pid],
                                        k2prime, reference=reference)[0]
    for table, pid in zip(truth.attrs["noiseless_null"], subjects, strict=True):
        regions = [r for r in table.regions if r != reference]
        _, fit = remove_release(table.frames, table.column(reference),
                                table.tacs[regions].to_numpy(float), boundaries=[ONSET],
                                fit_start=fit_start, release_model=release_model,
                                k2prime=k2p.get(pid), baseline_start=baseline_start)
        falls.append(-fit.change_pct())
    return float(np.nanmedian(np.concatenate(falls)))


def headline(scans: list[ScanTacs], design, models, k2p, reference: str, primary: str,
             fit_start: float | None, release_model: str = "srtm",
             baseline_start: float | None = None) -> pd.DataFrame:
    """Primary-model within-scan contrast rows of a study (release model if fit_start)."""
    bp = region_bp_table(scans, design, models=models, reference=reference, k2prime=k2p,
                         release_fit_start=fit_start, release_model=release_model,
                         baseline_start=baseline_start)
    values, _ = contrast_values(bp, design, drift_correct=fit_start is not None,
                                drift_pool="scans")
    table = summarize_contrasts(values, design=design)  # the effect, not its test, is scored
    return table[(table["model"] == primary) & table["contrast"].isin(WITHIN)]


def bias_rows(variation, fit_starts: list[float], subjects: int, seed: int,
              settings: tuple[tuple[str, float | None], ...] = (("srtm", None),)
              ) -> list[dict]:
    """One noiseless planted study of ``variation`` scored at each fit start."""
    design, models, k2p = default_analysis()
    primary = next(iter(models))
    models = {primary: models[primary]}
    noisy, truth = simulate_variation(variation, subjects=subjects, seed=seed, null=False)
    reference = truth.attrs["reference"]
    clean = [ScanTacs(s.participant_id, s.task, t)
             for s, t in zip(noisy, truth.attrs["noiseless"], strict=True)]
    null = [ScanTacs(s.participant_id, s.task, t)
            for s, t in zip(noisy, truth.attrs["noiseless_null"], strict=True)]
    expected = truth_table(truth, noisy, reference)
    true_drift = headline(null, design, models, k2p, reference, primary, None)[
        ["contrast", "region", "change_pct_mean"]].rename(
        columns={"change_pct_mean": "null_change"})
    raw = headline(clean, design, models, k2p, reference, primary, None)[
        ["contrast", "region", "change_pct_mean"]]
    oracle = raw.merge(true_drift, on=["contrast", "region"]).merge(
        expected, on=["contrast", "region"])
    oracle_err = -(oracle["change_pct_mean"] - oracle["null_change"]) - oracle["truth_pct"]
    oracle_planted = oracle["truth_pct"].abs() > 1.0
    rows = []
    for release_model, base in settings:
        for fit_start in fit_starts:
            scored = headline(clean, design, models, k2p, reference, primary, fit_start,
                              release_model, base).merge(expected, on=["contrast", "region"])
            err = -scored["effect_pct_mean"] - scored["truth_pct"]
            planted = scored["truth_pct"].abs() > 1.0
            rows.append({"variation": variation.name, "release_model": release_model,
                         "fit_start": fit_start, "baseline_start": base,
                         "rmse_planted": _rmse(err[planted]),
                         "rmse_unplanted": _rmse(err[~planted]),
                         "rmse_oracle": _rmse(oracle_err[oracle_planted]),
                         "spurious_null": spurious_release(truth, noisy, reference, fit_start,
                                                           release_model, k2p, base)})
    return rows


def independent_noiseless(study: str) -> list[ScanTacs]:
    """Noiseless regional curves of one independent study, regions renamed as petbp's."""
    scans = []
    for path in sorted((INDEPENDENT / study / "tacs").glob("*_desc-phantom_tacs.tsv")):
        sub, task = path.name.split("_")[0], path.name.split("_")[1].split("-")[1]
        frames = read_tacs(path).frames
        clean = pd.read_csv(INDEPENDENT / study / "truth" / "noiseless_tacs"
                            / path.name.replace("_desc-phantom", ""), sep="\t")
        tacs = clean[list(NAMES)].rename(columns=NAMES)
        scans.append(ScanTacs(sub, task, TacTable(frames, tacs)))
    return scans


def independent_truth(study: str) -> pd.Series:
    """Mean measured-space % fall per (contrast, region) of one independent study."""
    effects = pd.read_csv(INDEPENDENT / study / "truth" / "effects.tsv", sep="\t")
    effects = effects[effects["region"].isin(NAMES)]
    return effects.assign(region=effects["region"].map(NAMES)).groupby(
        ["contrast", "region"])["meas_srtm_pct"].mean()


def independent_rows(fit_starts: list[float],
                     settings: tuple[tuple[str, float | None], ...] = (("srtm", None),)
                     ) -> list[dict]:
    """The release model's error on the independent studies' noiseless curves."""
    design, models, k2p = default_analysis()
    primary = next(iter(models))
    models = {primary: models[primary]}
    rows = []
    for (release_model, base), fit_start in ((m, f) for m in settings for f in fit_starts):
        planted_err, null_err = [], []
        for planted, null in INDEPENDENT_STUDIES:
            truth = independent_truth(planted) - independent_truth(null)
            for study, errors in ((planted, planted_err), (null, null_err)):
                table = headline(independent_noiseless(study), design, models, k2p,
                                 "occipital", primary, fit_start, release_model, base)
                expected = np.array([0.0 if study == null else truth.get((c, r), 0.0)
                                     for c, r in zip(table["contrast"], table["region"],
                                                     strict=True)])
                errors.append(pd.DataFrame({"err": -table["effect_pct_mean"].to_numpy()
                                            - expected, "truth": expected}))
        err = pd.concat(planted_err)
        planted_rows = err["truth"].abs() > 2.0
        rows.append({"variation": "independent_sim (noiseless)",
                     "release_model": release_model, "fit_start": fit_start,
                     "baseline_start": base,
                     "rmse_planted": _rmse(err.loc[planted_rows, "err"]),
                     "rmse_unplanted": _rmse(err.loc[~planted_rows, "err"]),
                     "largest": float(err["err"].abs().max()),
                     "null_rms": _rmse(pd.concat(null_err)["err"])})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variations", type=int, nargs="*", default=None)
    parser.add_argument("--fit-starts", type=float, nargs="+", default=[10.0, 15.0, 20.0, 25.0],
                        help="minutes: the release model's first fitted frame")
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--release-models", nargs="+", default=["srtm"],
                        choices=RELEASE_MODELS, help="how the release model gets R1 and k2")
    parser.add_argument("--baseline-starts", type=float, nargs="+", default=[20.0],
                        help="minutes: where early_step's baseline BP_ND begins")
    parser.add_argument("--independent", action="store_true",
                        help="also the independent simulator's noiseless curves")
    args = parser.parse_args()
    chosen = chosen_variations(args.variations)
    settings = tuple((m, b if m.startswith("early_step") else None) for m in args.release_models
                     for b in (args.baseline_starts if m.startswith("early_step") else [None]))
    rows = []
    for variation in chosen:
        start = time.time()
        rows += [dict(row, same_curves=variation.noise != 1.0)
                 for row in bias_rows(variation, args.fit_starts, args.subjects, args.seed,
                                      settings)]
        print(f"# {variation.name}: {time.time() - start:.0f} s", flush=True)
    if args.independent:
        rows += independent_rows(args.fit_starts, settings)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.drop(columns="same_curves", errors="ignore").round(2).to_string(index=False))
    if "same_curves" in table:
        own = table[table["same_curves"] == False]  # noqa: E712 (NaN rows: independent)
        for (release_model, fit_start, base), cell in own.fillna({"baseline_start": 0}).groupby(
                ["release_model", "fit_start", "baseline_start"]):
            print(f"# {release_model}, fit start {fit_start:g}, baseline from {base:g} min: "
                  f"systematic SD (RMS of "
                  f"rmse_unplanted over {len(cell)} variations) "
                  f"{np.sqrt(np.mean(cell['rmse_unplanted'] ** 2)):.3f}")


if __name__ == "__main__":
    main()
