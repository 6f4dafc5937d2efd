"""The built-in demo's measured-space truth: its noiseless study and null twin through the workflow.

The demo's planted release is known as a fraction of k3, but what a regional analysis can see
is blurred by partial-volume mixing. This script simulates the demo study (same seed, subjects,
voxel size and kinetics as ``write_demo_study``) **without noise**, and its null twin (the same
participants without release), runs the workflow on each up to ``group/contrasts.tsv`` and
prints, per contrast and region (primary model ``logan_ref``):

* ``truth``: the measured-space release, % points (negative = BP_ND fell): for a within-scan
  contrast the raw windowed change of the noiseless planted study minus that of the null
  twin; for a design-based contrast (``rejvsacc``, ``drift_method`` = ``control``) the
  planted study's effect minus the null twin's;
* ``effect_planted``: the headline effect petbp reports on the noiseless planted study; its
  difference from ``truth`` is the method's bias on the demo;
* ``effect_null``: the headline effect on the noiseless null twin (0 for an unbiased method).

Run: ``python benchmarks/demo_truth.py [--work DIR] [--cores 2]`` (about 3 min on 2 cores).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.simulate.study import demo_settings, simulate_study  # noqa: E402

KEYS = ["contrast", "region", "model"]


def run_study(work: Path, name: str, *, null: bool, cores: int) -> pd.DataFrame:
    """Simulate one noiseless demo study, run the workflow to its contrast table, read it."""
    bids = work / name / "bids"
    if not bids.exists():
        simulate_study(work / name, subjects=12, design="windows", seed=2013, voxel_size=3.0,
                       noise=0.0, settings=demo_settings(), null=null)
    out = work / f"results_{name}"
    target = out / "group" / "contrasts.tsv"
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet",
                    "--config", f"bids_dir={bids}", f"output_dir={out}", "--", str(target)],
                   cwd=ROOT, check=True)
    return pd.read_csv(target, sep="\t")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "demo_truth")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--model", default="logan_ref")
    args = parser.parse_args()
    planted = run_study(args.work, "planted", null=False, cores=args.cores)
    null = run_study(args.work, "null", null=True, cores=args.cores)
    table = planted[[*KEYS, "drift_method", "change_pct_mean", "effect_pct_mean"]].merge(
        null[[*KEYS, "change_pct_mean", "effect_pct_mean"]], on=KEYS, suffixes=("_p", "_n"))
    table = table[table["model"] == args.model]
    result = pd.DataFrame({
        "contrast": table["contrast"], "region": table["region"],
        "truth": (table["effect_pct_mean_p"] - table["effect_pct_mean_n"]).where(
            table["drift_method"] == "control",
            table["change_pct_mean_p"] - table["change_pct_mean_n"]),
        "effect_planted": table["effect_pct_mean_p"], "effect_null": table["effect_pct_mean_n"]})
    result["bias_planted"] = result["effect_planted"] - result["truth"]
    print(result.round(2).to_string(index=False))


if __name__ == "__main__":
    main()
