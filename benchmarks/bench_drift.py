"""Accuracy of within-scan release estimates per drift method and physics variation.

For each variation of petbp's simulator (:data:`pipeline.simulate.variations.VARIATIONS`)
and for the independent simulator's studies (``../shared/validation/independent_sim``), the
region-level analysis of the workflow (:func:`pipeline.stats.region_study.analyse_region_study`
with the default config's design, models and k2') is run with each drift method:

* ``release_model``: each participant's change minus the model's change on the TACs with
  the release model's release removed, averaged over the participant's scans with the same
  windows (``drift_pool: scans``), systematic SD ``sys_sd`` in the test (the default);
* ``release_model_own_scan``: the same with each scan's own drift only (``drift_pool:
  none``, the method before pooling);
* ``release_model_regions``: the pooled drift blended, per participant, with a weighted
  quadratic regression on baseline BP_ND across its regions (``drift_pool: regions``,
  :mod:`pipeline.stats.drift_regions`; the blend's bias SD joins ``sys_sd``);
* ``none``: the raw change, tested against zero.

The methods share each study's fits (one region fit per study), so they see the same noise.

Printed per method and variation:

* ``fwer_<contrast>``: share of null studies with any FDR-significant region in that
  contrast (primary model); the binomial 95 % upper bound on a true 5 % rate is printed;
* ``rmse_planted`` / ``rmse_unplanted``: RMSE (% points) of the headline effect against the
  measured-space truth (an ideal noiseless segmented-SRTM analysis from injection of the
  blurred curves, planted minus the null twin) over planted and unplanted rows;
* ``found``: planted rows FDR-significant with BP falling, of all planted rows;
* ``coverage``: share of null-study rows whose 95 % drift interval contains the true null
  change (the model's change on the noiseless curves).

Run: ``python benchmarks/bench_drift.py [--studies 40] [--planted 5] [--subjects 12]
[--release-model srtm|early_step|early_step_aic|early_step_r1|srtm2|two_stage]
[--baseline-start 20]`` (a full run takes about an hour on 2 cores; ``--variations 0 1``
picks some; the release model's options as ``statistics.null_drift.release_model``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.config import load_config  # noqa: E402
from pipeline.design import k2prime_settings, load_design  # noqa: E402
from pipeline.kinetics.release import RELEASE_MODELS  # noqa: E402
from pipeline.kinetics.srtm_segments import fit_srtm_segments  # noqa: E402
from pipeline.simulate.variations import VARIATIONS, simulate_variation  # noqa: E402
from pipeline.stats.contrast_tests import SYSTEMATIC_SD, summarize_contrasts  # noqa: E402
from pipeline.stats.region_study import (  # noqa: E402
    ScanTacs,
    analyse_region_study,
    region_bp_table,
)
from pipeline.stats.regional import contrast_values  # noqa: E402
from pipeline.tables import TacTable, read_tacs  # noqa: E402

INDEPENDENT = ROOT.parent / "shared" / "validation" / "independent_sim"

#: Drift methods: (drift_correct, drift_pool) of :func:`contrast_values`.
METHODS = {"release_model": (True, "scans"), "release_model_own_scan": (True, "none"),
           "release_model_regions": (True, "regions"), "none": (False, "none")}


def default_analysis():
    """Design, models, k2' settings of the shipped config."""
    config = load_config(str(ROOT / "config" / "config.yaml"))
    design = load_design(config)
    models = {m: config["models"][m] for m in config["models"]}
    return design, models, k2prime_settings(config)


def chosen_variations(indices: list[int] | None) -> list:
    """The variations of ``--variations`` (indices into VARIATIONS; None: all fourteen)."""
    return [VARIATIONS[i] for i in (indices if indices is not None else range(len(VARIATIONS)))]


def measured_release(tables: list[TacTable], twins: list[TacTable], reference: str,
                     onset: float = 45.0) -> np.ndarray:
    """Per scan and region: % fall of BP_ND after onset, planted minus null twin, from an
    ideal noiseless segmented SRTM fitted from injection (scans x regions)."""
    out = []
    for planted, null in zip(tables, twins, strict=True):
        regions = [r for r in planted.regions if r != reference]
        falls = []
        for table in (planted, null):
            fit = fit_srtm_segments(table.frames, table.column(reference),
                                    table.tacs[regions].to_numpy(float), boundaries=[onset],
                                    weights=table.frames.duration)
            falls.append(-fit.change_pct())
        out.append(falls[0] - falls[1])
    return np.asarray(out)


def score(contrasts: pd.DataFrame, truth: pd.DataFrame | None, primary: str) -> dict:
    """FWER flags, errors and found counts of one study (primary model rows)."""
    rows = contrasts[contrasts["model"] == primary]
    out = {}
    for contrast, cell in rows.groupby("contrast"):
        out[f"hit_{contrast}"] = bool(cell["significant"].any())
    if truth is not None:
        plain = rows[rows["contrast"].isin(truth["contrast"].unique())].merge(
            truth, on=["contrast", "region"], how="inner")
        plain["err"] = -plain["effect_pct_mean"] - plain["truth_pct"]
        planted = plain["truth_pct"].abs() > 1.0
        out.update(sq_planted=list(plain.loc[planted, "err"] ** 2),
                   sq_unplanted=list(plain.loc[~planted, "err"] ** 2),
                   found=int((plain["significant"] & planted
                              & (plain["effect_pct_mean"] < 0)).sum()),
                   n_planted=int(planted.sum()))
    return out


def coverage(contrasts: pd.DataFrame, clean: pd.DataFrame, primary: str) -> list[bool]:
    """Does each release-model row's drift interval hold the noiseless change?"""
    rows = contrasts[(contrasts["model"] == primary)
                     & (contrasts["drift_method"] == "release_model")]
    merged = rows.merge(clean[["contrast", "region", "model", "change_pct_mean"]],
                        on=["contrast", "region", "model"], suffixes=("", "_true"))
    return list((merged["drift_ci_low"] <= merged["change_pct_mean_true"])
                & (merged["change_pct_mean_true"] <= merged["drift_ci_high"]))


def study_fits(variation, args, design, models, k2p, k: int, null: bool):
    """One simulated study's fits: BP table, the noiseless null analysis (null studies) and
    the truth table (planted studies); read from / written to ``args.cache`` if given."""
    cached = None
    if args.cache:
        name = (f"{VARIATIONS.index(variation)}_{k}_{int(null)}_{args.subjects}_{args.noise}"
                f"_{int(args.all_models)}")
        model = "" if args.release_model == "srtm" else \
            f"_{args.release_model}{args.baseline_start:g}"
        cached = Path(args.cache) / f"{name}_{args.fit_start}{model}.pkl"
        if cached.is_file():
            return pd.read_pickle(cached)
    scans, truth = simulate_variation(variation, subjects=args.subjects, seed=1000 + k,
                                      null=null, noise=args.noise)
    reference = truth.attrs["reference"]
    truth_table = None
    if not null:
        release = measured_release(truth.attrs["noiseless"], truth.attrs["noiseless_null"],
                                   reference)
        regions = [r for r in scans[0].tacs.regions if r != reference]
        per = pd.DataFrame(release, columns=regions)
        per["contrast"] = [s.task for s in scans]
        truth_table = per.groupby("contrast").mean().stack().rename(
            "truth_pct").reset_index().rename(columns={"level_1": "region"})
    clean_scans = [ScanTacs(s.participant_id, s.task, t)
                   for s, t in zip(scans, truth.attrs["noiseless"], strict=True)]
    clean = analyse_region_study(clean_scans, design, models=models, reference=reference,
                                 k2prime=k2p, release_fit_start=None, guard=False)[1] \
        if null else None
    bp = region_bp_table(scans, design, models=models, reference=reference, k2prime=k2p,
                         release_fit_start=args.fit_start, release_model=args.release_model,
                         baseline_start=args.baseline_start
                         if args.release_model.startswith("early_step") else None)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        pd.to_pickle((bp, clean, truth_table), cached)
    return bp, clean, truth_table


def run_variation(variation, args, design, models, k2p, primary) -> list[dict]:
    results = {method: {"hits": [], "sq_planted": [], "sq_unplanted": [], "found": 0,
                        "n_planted": 0, "cover": []} for method in args.methods}
    for k in range(args.studies + args.planted):
        null = k < args.studies
        bp, clean, truth_table = study_fits(variation, args, design, models, k2p, k, null)
        for method in results:
            correct, pool = METHODS[method]
            values, _ = contrast_values(bp, design, drift_correct=correct, drift_pool=pool)
            contrasts = summarize_contrasts(values, sys_sd=args.sys_sd, design=design)
            s = score(contrasts, truth_table, primary)
            r = results[method]
            if null:
                r["hits"].append({c: s[c] for c in s if c.startswith("hit_")})
                if correct:
                    r["cover"] += coverage(contrasts, clean, primary)
            else:
                r["sq_planted"] += s["sq_planted"]
                r["sq_unplanted"] += s["sq_unplanted"]
                r["found"] += s["found"]
                r["n_planted"] += s["n_planted"]
    rows = []
    for method, r in results.items():
        row = {"variation": variation.name, "method": method}
        hits = pd.DataFrame(r["hits"])
        for column in hits.columns:
            row[column.replace("hit_", "fwer_")] = float(hits[column].mean())
        row["rmse_planted"] = float(np.sqrt(np.mean(r["sq_planted"]))) if r["sq_planted"] \
            else np.nan
        row["rmse_unplanted"] = float(np.sqrt(np.mean(r["sq_unplanted"]))) \
            if r["sq_unplanted"] else np.nan
        row["found"] = f"{r['found']}/{r['n_planted']}"
        row["coverage"] = float(np.mean(r["cover"])) if r["cover"] else np.nan
        rows.append(row)
    return rows


def independent_scans(folder: Path) -> list[ScanTacs]:
    scans = []
    for path in sorted((folder / "tacs").glob("*_desc-phantom_tacs.tsv")):
        sub, task = path.name.split("_")[0], path.name.split("_")[1].split("-")[1]
        table = read_tacs(path)
        keep = [c for c in table.regions if c not in ("csf", "extracerebral")]
        scans.append(ScanTacs(sub, task, TacTable(table.frames, table.tacs[keep])))
    return scans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=40, help="null studies per variation")
    parser.add_argument("--planted", type=int, default=5, help="planted studies per variation")
    parser.add_argument("--subjects", type=int, default=12)
    parser.add_argument("--variations", type=int, nargs="*", default=None)
    parser.add_argument("--fit-start", type=float, default=10.0, help="minutes")
    parser.add_argument("--release-model", default="srtm", choices=RELEASE_MODELS,
                        help="how the release model gets R1 and k2")
    parser.add_argument("--baseline-start", type=float, default=20.0,
                        help="minutes: where early_step's baseline BP_ND begins")
    parser.add_argument("--sys-sd", type=float, default=SYSTEMATIC_SD, help="%% points")
    parser.add_argument("--noise", type=float, default=0.5,
                        help="base noise level of the region simulator (the variations "
                        "scale it); 0.5 is the demo's")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--all-models", action="store_true",
                        help="fit every configured model (default: the primary only, the "
                        "one scored; FDR runs per model, so its rows do not change)")
    parser.add_argument("--out", default=None, help="also write the table here (TSV)")
    parser.add_argument("--cache", default=None,
                        help="keep each study's fits in this folder and reuse them (re-score "
                        "other methods without refitting)")
    args = parser.parse_args()
    design, models, k2p = default_analysis()
    primary = next(iter(models))
    if not args.all_models:  # scores use the primary model only; FDR runs per model
        models = {primary: models[primary]}
    chosen = chosen_variations(args.variations)
    rows = []
    for variation in chosen:
        start = time.time()
        rows += run_variation(variation, args, design, models, k2p, primary)
        print(f"# {variation.name}: {time.time() - start:.0f} s", flush=True)
        if args.out:  # written after every variation, so a long run keeps what it finished
            pd.DataFrame(rows).to_csv(args.out, sep="\t", index=False)
    table = pd.DataFrame(rows)
    bound = stats.binom.ppf(0.95, args.studies, 0.05) / args.studies
    pd.set_option("display.width", 250)
    print(table.round(3).to_string(index=False))
    print(f"# {args.studies} null and {args.planted} planted studies of {args.subjects} "
          f"subjects per variation; a true 5 % FWER exceeds {bound:.3f} with probability "
          "< 5 %; " + json.dumps({"fit_start": args.fit_start, "sys_sd": args.sys_sd,
                                   "noise": args.noise, "release_model": args.release_model,
                                   "baseline_start": args.baseline_start}))


if __name__ == "__main__":
    main()
