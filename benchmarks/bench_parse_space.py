"""Parse-time cost of space detection: ``snakemake -n`` into a new output folder (a benchmark).

Every raw image's space is detected when the workflow is parsed (pipeline.preprocess.plan);
on a raw study that used to decode every image on every first parse. This times a dry run
of the whole study into a folder that does not exist yet (nothing may be written there), as
a user's first ``snakemake -n`` or a cluster job's parse would:

* ``cold_s``: the evidence cache (``.snakemake/petbp/space`` in the working directory)
  emptied before each run: the detection itself;
* ``warm_s``: the cache kept from the previous run (a second parse, a new output folder,
  a cluster job).

* ``detect_s``: seconds of :func:`pipeline.preprocess.plan.image_space` per image, in one
  process (MNI template already loaded), median over the study's images and ``--repeat``
  rounds: the detection alone, without Snakemake.

Medians of ``--repeat`` runs, with the 1-minute load average before and after. ``--repo``
runs another checkout's workflow and library (e.g. ``git archive main | tar -x -C DIR``, for
the numbers before a change); its own detection cache, if any, is emptied for the cold runs
the same way.

Usage::

    python benchmarks/bench_parse_space.py --bids STUDY/bids [--repeat 5] [--repo DIR]
    petbp simulate --space scanner --out STUDY --subjects 6 --voxel-size 2   # a raw study

Outputs (the output folders of the dry runs stay empty) go to ``benchmarks/out/parse/``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["detection_seconds", "dry_run_seconds", "main"]

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "parse"


def dry_run_seconds(repo: Path, bids: Path, output_dir: Path, *, cold: bool) -> float:
    """Wall time (s) of ``snakemake -n`` of ``repo``'s workflow on ``bids`` into the new folder
    ``output_dir`` (the detection cache emptied first when ``cold``)."""
    if cold:
        shutil.rmtree(repo / ".snakemake" / "petbp", ignore_errors=True)
    shutil.rmtree(output_dir, ignore_errors=True)
    cmd = [str(Path(sys.executable).with_name("snakemake")), "-n", "--quiet", "--nolock",
           "--cores", "1", "--snakefile", str(repo / "Snakefile"), "--directory", str(repo),
           "--config", f"bids_dir={bids}", f"output_dir={output_dir}"]
    env = dict(os.environ, PYTHONPATH=str(repo))
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    if output_dir.exists():
        raise RuntimeError(f"the dry run wrote into {output_dir}")
    return elapsed


_DETECT = """
import json, sys, time
from pipeline.preprocess.plan import image_space
from pipeline.space_detection import _mni_match_template
_mni_match_template()
times = []
for path in sys.argv[2:] * int(sys.argv[1]):
    start = time.perf_counter()
    image_space(path)
    times.append(time.perf_counter() - start)
print(json.dumps(times))
"""


def detection_seconds(repo: Path, images: list[Path], repeat: int) -> list[float]:
    """Seconds of ``image_space`` on each image, ``repeat`` rounds, with ``repo``'s library."""
    env = dict(os.environ, PYTHONPATH=str(repo))
    proc = subprocess.run([sys.executable, "-c", _DETECT, str(repeat), *map(str, images)],
                          capture_output=True, text=True, env=env, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print and return the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=Path, required=True, help="the study's BIDS folder")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="the checkout whose workflow runs (default this one)")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    n_scans = len(list(args.bids.glob("sub-*/**/pet/*_pet.nii*")))
    load_before = os.getloadavg()[0]
    result: dict = {"repo": str(args.repo), "bids": str(args.bids), "scans": n_scans}
    for kind in ("cold", "warm"):
        times = [dry_run_seconds(args.repo.resolve(), args.bids.resolve(),
                                 OUT / f"new_{kind}_{i}", cold=kind == "cold")
                 for i in range(args.repeat)]
        result[f"{kind}_s"] = round(statistics.median(times), 2)
        result[f"{kind}_all_s"] = [round(t, 2) for t in times]
    images = sorted(args.bids.glob("sub-*/**/pet/*_pet.nii*"))
    detect = detection_seconds(args.repo.resolve(), images, args.repeat)
    result["detect_s"] = round(statistics.median(detect), 3)
    result["load_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
