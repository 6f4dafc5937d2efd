"""The whole workflow end to end on an 18-subject, 36-scan 2 mm study (a benchmark, not a test).

What it measures (issue 16's first goal: end to end within 6x the single-read floor):

* ``floor``: reading the study's 36 images once with nibabel (``get_fdata(dtype=float32)``,
  the decompression and scaling every image step pays) in one single-threaded process (BLAS
  and OpenMP limited to one thread; not pinned to a core: on a shared machine a pinned
  process waits for whoever else runs there); median of ``--floor-runs``;
* ``end to end``: ``snakemake --cores 2`` with the default config (``config/config.yaml``, the
  workflow's default profile: jobs as threads) from an empty output folder: wall time, job
  count, median of ``--runs``;
* per rule: jobs, summed and largest wall time of its jobs (from Snakemake's own log: each
  job's start and "Finished" lines carry time stamps to the second, so each job's time is
  good to about +-1 s and a sum over many jobs to well under that per job on average);
* ``--rss``: peak resident memory of one job of every rule (the first in ``snakemake
  --summary`` order, or ``--rss-jobs`` of them) re-run alone as ``snakemake --force <output>
  --cores 1`` in a fresh process, as a cluster job step runs it (``ru_maxrss`` from
  ``wait4``: includes Snakemake's own ~110 MB, measured as the ``snakemake -n`` row).

The study is simulated once (``petbp simulate --subjects 18 --voxel-size 2``, seed 2016: the
same size as the issue's held-out study, not that study) into ``--study`` and reused.
``--repo`` runs another checkout's workflow and library (e.g. an extracted older commit:
``git archive <commit> | tar -x -C DIR``) with this environment's packages, for before/after
tables.

Usage::

    python benchmarks/bench_workflow.py --runs 2 --rss              # prints the tables
    python benchmarks/bench_workflow.py --repo /tmp/before --runs 2 # another checkout

Outputs go to ``benchmarks/out/workflow/`` (git-ignored) unless ``--workdir`` is given.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

__all__ = ["end_to_end", "first_job_start", "job_peaks", "main", "read_floor", "rule_times",
           "simulate_study"]

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "out" / "workflow"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                     "MKL_NUM_THREADS")}


def _env(repo: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(repo), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _measured(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``cmd``: wall time (s), peak RSS (MB, ``ru_maxrss`` of it or a waited-for
    descendant) and its output; raise with the output's end if it fails."""
    log = cwd / ".bench_cmd.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024.0, text


def _load() -> str:
    return "{:.2f}/{:.2f}/{:.2f}".format(*os.getloadavg())


def simulate_study(study: Path, subjects: int, voxel_size: float, seed: int) -> Path:
    """The BIDS folder of the simulated study in ``study`` (simulated if missing)."""
    bids = study / "bids"
    if not (bids / "participants.tsv").is_file():
        subprocess.run([sys.executable, "-m", "pipeline", "simulate", "--out", str(study),
                        "--subjects", str(subjects), "--voxel-size", str(voxel_size),
                        "--seed", str(seed), "--force"], check=True, env=_env(REPO))
    return bids


_FLOOR = """
import sys, time
import nibabel as nib, numpy as np
start = time.perf_counter()
for path in sys.argv[1:]:
    data = nib.load(path).get_fdata(dtype=np.float32)
    del data
print(time.perf_counter() - start)
"""


def read_floor(bids: Path, runs: int) -> list[float]:
    """Seconds to read every ``*_pet.nii.gz`` of ``bids`` once with nibabel, one core."""
    images = sorted(str(p) for p in bids.rglob("*_pet.nii.gz"))
    times = []
    for _ in range(runs):
        proc = subprocess.run([sys.executable, "-c", _FLOOR, *images],
                              capture_output=True, text=True, check=True,
                              env=_env(REPO, **ONE_THREAD))
        times.append(float(proc.stdout.strip().splitlines()[-1]))
    return times


def _snakemake(repo: Path, workdir: Path, bids: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args, "--snakefile", str(repo / "Snakefile"),
            "--directory", str(workdir), "--workflow-profile",
            str(repo / "workflow" / "profiles" / "default"), "--configfile",
            str(repo / "config" / "config.yaml"), "--config", f"bids_dir={bids}",
            f"output_dir={workdir / 'results'}", f"regions={repo / 'config' / 'regions.yaml'}"]


_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")


def first_job_start(log_text: str) -> datetime | None:
    """The time stamp of the first job's start in a Snakemake log (None: no job ran)."""
    stamp = None
    for line in log_text.splitlines():
        found = _STAMP.match(line.strip())
        if found:
            stamp = datetime.strptime(found[1], "%a %b %d %H:%M:%S %Y")
        elif re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line) and stamp is not None:
            return stamp
    return None


def rule_times(log_text: str) -> dict[str, list[float]]:
    """Wall time (s) of every job, by rule, from a Snakemake log's time stamps."""
    stamp = None
    started: dict[str, tuple[str, datetime]] = {}
    pending_rule = None
    times: dict[str, list[float]] = {}
    for line in log_text.splitlines():
        found = _STAMP.match(line.strip())
        if found:
            stamp = datetime.strptime(found[1], "%a %b %d %H:%M:%S %Y")
            continue
        head = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if head:
            pending_rule = head[1]
            continue
        jobid = re.match(r"^\s+jobid: (\d+)$", line)
        if jobid and pending_rule is not None and stamp is not None:
            started[jobid[1]] = (pending_rule, stamp)
            pending_rule = None
            continue
        done = re.match(r"^Finished jobid: (\d+)", line)
        if done and done[1] in started and stamp is not None:
            rule, begin = started.pop(done[1])
            times.setdefault(rule, []).append((stamp - begin).total_seconds())
    return times


def end_to_end(repo: Path, workdir: Path, bids: Path) -> dict:
    """One run of the whole workflow from an empty output folder."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    load_before = _load()
    launched = datetime.now()
    elapsed, peak, _ = _measured(_snakemake(repo, workdir, bids, "--cores", "2"), workdir,
                                 _env(repo))
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    text = logs[-1].read_text()
    times = rule_times(text)
    first = first_job_start(text)
    # launch to the first job's start: Python and Snakemake start-up plus the parse (to the
    # log's second: about +-1 s)
    parse = (first - launched.replace(microsecond=0)).total_seconds() if first else None
    return {"wall_s": elapsed, "process_peak_mb": peak, "jobs": sum(map(len, times.values())),
            "rules": times, "load": f"{load_before} -> {_load()}", "to_first_job_s": parse}


def job_peaks(repo: Path, workdir: Path, bids: Path, per_rule: int) -> list[dict]:
    """Peak RSS (MB) and wall time (s) of ``per_rule`` jobs of every rule run alone."""
    proc = subprocess.run(_snakemake(repo, workdir, bids, "--cores", "1", "--summary"),
                          cwd=workdir, capture_output=True, text=True, check=True,
                          env=_env(repo))
    rows = [ln.split("\t") for ln in proc.stdout.splitlines() if "\t" in ln]
    col = {name: i for i, name in enumerate(rows[0])}
    outputs: dict[str, list[str]] = {}
    seen_jobs: set[tuple[str, str]] = set()
    for row in rows[1:]:
        rule, output = row[col["rule"]], row[col["output_file"]]
        # one output per job: the job's outputs share a log; take each job's first file
        job = (rule, row[col["log-file(s)"]] if "log-file(s)" in col else output)
        if job in seen_jobs or rule in {"all"}:
            continue
        seen_jobs.add(job)
        if len(outputs.setdefault(rule, [])) < per_rule:
            outputs[rule].append(output)
    results = []
    for rule, files in sorted(outputs.items()):
        # --force remakes only this output; without the mtime trigger the outputs remade by
        # earlier measurements do not make their downstream jobs run here too
        runs = [_measured(_snakemake(repo, workdir, bids, output, "--cores", "1", "--force",
                                     "--rerun-triggers", "params", "input", "code"),
                          workdir, _env(repo)) for output in files]
        results.append({"rule": rule, "jobs_measured": len(runs),
                        "peak_rss_mb": max(r[1] for r in runs),
                        "wall_s": max(r[0] for r in runs)})
        print(f"  {rule}: {results[-1]['peak_rss_mb']:.0f} MB, {results[-1]['wall_s']:.1f} s",
              flush=True)
    elapsed, peak, _ = _measured(_snakemake(repo, workdir, bids, "--cores", "1", "-n"),
                                 workdir, _env(repo))
    results.append({"rule": "(snakemake -n: the process alone)", "jobs_measured": 1,
                    "peak_rss_mb": peak, "wall_s": elapsed})
    return results


def _rule_table(runs: list[dict]) -> str:
    names = sorted({r for run in runs for r in run["rules"]},
                   key=lambda r: -statistics.median(sum(run["rules"].get(r, [0])) for run in runs))
    lines = ["| rule | jobs | summed job wall time (s), median of runs | per job, median (s) "
             "| slowest job (s) |", "|---|---:|---:|---:|---:|"]
    for name in names:
        sums = [sum(run["rules"].get(name, [])) for run in runs]
        every = [t for run in runs for t in run["rules"].get(name, [])]
        lines.append(f"| {name} | {len(runs[0]['rules'].get(name, []))} | "
                     f"{statistics.median(sums):.0f} | {statistics.median(every):.1f} | "
                     f"{max(every):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line; prints markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=Path, default=OUT / "study",
                        help="simulated study folder (made if missing)")
    parser.add_argument("--workdir", type=Path, default=OUT / "runs")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="checkout whose Snakefile and pipeline/ are run")
    parser.add_argument("--subjects", type=int, default=18)
    parser.add_argument("--voxel-size", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=2016)
    parser.add_argument("--runs", type=int, default=2, help="end-to-end runs (median)")
    parser.add_argument("--floor-runs", type=int, default=3)
    parser.add_argument("--rss", action="store_true", help="measure each rule's peak memory")
    parser.add_argument("--rss-jobs", type=int, default=1, help="jobs per rule for --rss")
    args = parser.parse_args(argv)
    repo = args.repo.resolve()
    bids = simulate_study(args.study.resolve(), args.subjects, args.voxel_size, args.seed)
    n_images = len(list(bids.rglob("*_pet.nii.gz")))
    floor_load = _load()
    floors = read_floor(bids, args.floor_runs) if args.floor_runs else []
    if floors:
        print(f"floor: read {n_images} images once: {', '.join(f'{t:.1f}' for t in floors)} s "
              f"(median {statistics.median(floors):.1f} s; load {floor_load} -> {_load()})",
              flush=True)
    runs = []
    for i in range(args.runs):
        runs.append(end_to_end(repo, args.workdir.resolve() / f"run{i}", bids))
        rules = runs[-1]["rules"]
        print(f"end to end {i + 1}: {runs[-1]['wall_s']:.1f} s, {runs[-1]['jobs']} jobs, "
              f"load {runs[-1]['load']}; to the first job {runs[-1]['to_first_job_s']} s, "
              f"extract_tacs summed {sum(rules.get('extract_tacs', [])):.0f} s, report "
              f"{sum(rules.get('report', [])):.0f} s", flush=True)
    print(f"\n{repo} on {n_images} scans")
    if runs:
        wall = statistics.median(r["wall_s"] for r in runs)
        each = ", ".join(f"{r['wall_s']:.1f}" for r in runs)
        print(f"end to end (median of {len(runs)}): {wall:.1f} s ({each}), "
              f"{runs[0]['jobs']} jobs")
        if floors:
            print(f"ratio to the single-read floor: {wall / statistics.median(floors):.1f}x")
        print()
        print(_rule_table(runs))
    if args.rss:
        print("\npeak RSS of single jobs (snakemake --force <output> --cores 1):", flush=True)
        workdir = args.workdir.resolve() / "run0"
        peaks = job_peaks(repo, workdir, bids, args.rss_jobs)
        print("\n| rule | jobs measured | peak RSS (MB) | wall (s) |\n|---|---:|---:|---:|")
        for row in peaks:
            print(f"| {row['rule']} | {row['jobs_measured']} | {row['peak_rss_mb']:.0f} | "
                  f"{row['wall_s']:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
