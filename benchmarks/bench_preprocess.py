"""Benchmark: run time and peak memory of each preprocessing step (a benchmark, not a test).

Each step (a future Snakemake job) runs in a fresh subprocess, as a job would: its wall
time (median of ``--runs``) and peak resident memory (``ru_maxrss`` of the subprocess,
Python and imports included) are reported, with the load average before and after, since
the machine is shared. Steps, on one scan (and its subject) of a simulated scanner-space
study (:func:`pipeline.simulate.scanner_study.simulate_scanner_study`, default geometry:
PET 128 x 128 x 96 x 28 at 2 mm, T1w 176 x 208 x 176 at 1 mm):

- ``plan``: space detection and the scan's plan (``petbp check`` would run this);
- ``normalize``: T1w -> MNI152, affine + SyN, fields (once per subject);
- ``segment``: grey/white matter and CSF fractions of the T1w (once per subject);
- ``motion``: motion estimation, confounds, corrected mean;
- ``coregister``: PET mean -> T1w (mutual information, then refined against the
  subject's synthetic PET, as the workflow does: needs ``normalize`` and ``segment``);
- ``native_tacs``: atlas regions into every frame, TAC table (mask cache warm, as in a run);
- ``frames_to_mni``: the whole scan on the MNI 2 mm grid (for voxelwise analysis in MNI);
- ``qc``: motion and registration figures.

Run from the repository root (a study is simulated into ``--workdir`` if absent)::

    .venv/bin/python benchmarks/bench_preprocess.py --workdir /tmp/petbp_bench_prep --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r'''
import json, resource, sys, time
args = json.loads(sys.argv[1])
step, d = args["step"], args["paths"]
threads = args["threads"]
t0 = time.perf_counter()
if step == "plan":
    from pipeline.preprocess import plan_scan
    plan_scan(d["pet"], "auto")
elif step == "normalize":
    from pipeline.preprocess import NormalizeSettings, write_normalization
    write_normalization(d["t1"], d["prefix"], NormalizeSettings(threads=threads))
elif step == "segment":
    from pipeline.preprocess.segment import SegmentSettings
    from pipeline.preprocess.steps import write_segmentation
    write_segmentation(d["t1"], d["mnicoords"], d["prefix"], SegmentSettings(threads=threads))
elif step == "motion":
    from pipeline.preprocess import MotionCorrectionSettings, write_motion
    write_motion(d["pet"], d["confounds"], d["mean"],
                 MotionCorrectionSettings(threads=threads, passes=args["passes"]),
                 thresholds=None)
elif step == "coregister":
    from pipeline.preprocess import CoregisterSettings, write_coregistration
    write_coregistration(d["mean"], d["t1"], d["xfm"], CoregisterSettings(threads=threads),
                         mnicoords_field=d["mnicoords"], probseg_gm=d["gm"],
                         probseg_wm=d["wm"], cache_dir=d["cache"])
elif step == "native_tacs":
    from pipeline.preprocess import MotionThresholds, write_native_region_tacs
    write_native_region_tacs(d["pet"], d["confounds"], d["xfm"], d["mnicoords"], None,
                             d["tacs"], probseg_gm=d["gm"], thresholds=MotionThresholds(),
                             cache_dir=d["cache"])
elif step == "frames_to_mni":
    from pipeline.preprocess import MotionThresholds, write_frames_to_mni
    write_frames_to_mni(d["pet"], d["confounds"], d["xfm"], d["t1coords"], d["frames_mni"],
                        thresholds=MotionThresholds())
elif step == "qc":
    from pipeline.preprocess import MotionThresholds, write_preprocess_qc
    write_preprocess_qc(d["confounds"], d["mean"], d["t1"], d["xfm"], d["t1_mni"],
                        d["qc_motion"], d["qc_reg"], thresholds=MotionThresholds())
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

STEPS = ["plan", "normalize", "segment", "motion", "coregister", "native_tacs",
         "frames_to_mni", "qc"]
#: Steps run once per subject (shared by its scans: two in the seed study).
PER_SUBJECT = ("normalize", "segment")


def paths(workdir: Path) -> dict[str, str]:
    """Inputs and outputs of every step for sub-01's rejection scan."""
    bids, out = workdir / "study" / "bids", workdir / "out"
    stem = out / "sub-01_task-rejection"
    return {k: str(v) for k, v in {
        "pet": bids / "sub-01" / "pet" / "sub-01_task-rejection_pet.nii.gz",
        "t1": bids / "sub-01" / "anat" / "sub-01_T1w.nii.gz",
        "prefix": out / "sub-01",
        "mnicoords": out / "sub-01_desc-mnicoords_field.nii.gz",
        "t1coords": out / "sub-01_desc-t1coords_field.nii.gz",
        "t1_mni": out / "sub-01_space-MNI152NLin2009aSym_T1w.nii.gz",
        "gm": out / "sub-01_label-GM_probseg.nii.gz",
        "wm": out / "sub-01_label-WM_probseg.nii.gz",
        "confounds": f"{stem}_desc-confounds_timeseries.tsv",
        "mean": f"{stem}_desc-hmcmean_pet.nii.gz",
        "xfm": f"{stem}_from-pet_to-T1w_xfm.json",
        "tacs": f"{stem}_desc-default_tacs.tsv",
        "frames_mni": f"{stem}_space-MNI152NLin2009aSym_pet.nii.gz",
        "qc_motion": f"{stem}_desc-motion_qc.png", "qc_reg": f"{stem}_desc-registration_qc.png",
        "cache": out / "cache"}.items()}


def run_step(step: str, files: dict, threads: int, passes: int) -> dict:
    """One fresh-process run of a step: its own timing and peak RSS."""
    env = dict(os.environ, ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads))
    result = subprocess.run([sys.executable, "-c", CHILD, json.dumps(
        {"step": step, "paths": files, "threads": threads, "passes": passes})],
        capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"step {step} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/petbp_bench_prep"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2,
                        help="ITK threads per registration (the job's cores)")
    parser.add_argument("--passes", type=int, default=1, help="motion-correction passes")
    parser.add_argument("--steps", nargs="*", default=STEPS, choices=STEPS)
    args = parser.parse_args()
    study = args.workdir / "study"
    if not (study / "truth" / "truth.json").exists():
        from pipeline.simulate.scanner_study import simulate_scanner_study

        simulate_scanner_study(study, subjects=1, seed=11, noise=0.5)
    files = paths(args.workdir)
    Path(files["prefix"]).parent.mkdir(parents=True, exist_ok=True)
    # Warm the MNI region-mask cache, as in a workflow run (built once per study).
    from pipeline.preprocess.native_steps import mni_region_masks

    mni_region_masks(None, cache_dir=files["cache"])
    rows = []
    for step in args.steps:
        load_before = os.getloadavg()[0]
        runs = [run_step(step, files, args.threads, args.passes) for _ in range(args.runs)]
        seconds = [r["seconds"] for r in runs]
        rows.append({"step": step, "median_s": round(statistics.median(seconds), 1),
                     "runs_s": [round(s, 1) for s in seconds],
                     "peak_rss_mb": round(max(r["maxrss_mb"] for r in runs)),
                     "load_before": round(load_before, 2),
                     "load_after": round(os.getloadavg()[0], 2)})
        print(json.dumps(rows[-1]), flush=True)
    medians = {row["step"]: row["median_s"] for row in rows}
    per_scan = sum(v / (2 if k in PER_SUBJECT else 1) for k, v in medians.items()
                   if k != "plan")
    print(f"per scan (subject steps shared by 2 scans, plan excluded): {per_scan:.0f} s",
          flush=True)
    summary = {"per_scan_s": round(per_scan, 1), "threads": args.threads,
               "passes": args.passes, "runs": args.runs,
               "cpu_count": os.cpu_count(), "steps": rows,
               "time": time.strftime("%Y-%m-%d %H:%M")}
    (args.workdir / "bench_preprocess.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
