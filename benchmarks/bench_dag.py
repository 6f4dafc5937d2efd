"""How petbp's Snakemake workflow scales with the number of scans (a benchmark, not a test).

For each study size (default 10, 100 and 1,000 scans) a synthetic BIDS-PET study is made by
replicating a small simulated study (hard links: every scan is a real, readable scan with its own
sidecar and participant row, so the workflow's parse-time checks do their full work). Then:

* ``first_parse_quiet_s``: the first ``snakemake -n --quiet`` of the new study (its output
  folder created first), which detects every scan's space from its image and keeps the
  evidence (``output_dir/.petbp/plans``);
* ``dag_s``: wall time of ``snakemake -n`` (parse the Snakefile, discover and check every scan,
  build the DAG of the whole study, print every job), median of ``--repeat`` runs, after the
  first parse (space evidence read from its cache);
  ``dag_quiet_s`` the same with ``--quiet`` (no job list printed); ``*_cpu_s`` the median
  CPU time (user + system) of the same runs, which a loaded machine changes much less;
* ``floor_s`` / ``floor_quiet_s``: the same two dry runs of a Snakefile with the same jobs per
  scan and subject whose rules have plain file inputs and no code of petbp's: what Snakemake
  itself needs for that many jobs (the part of ``dag_s`` that petbp cannot cut without fewer
  jobs);
* ``run_s`` / ``per_scan_s``: wall time of actually running the per-scan rules for the same
  ``--run-scans`` scans inside each study (``--cores 2``, local executor), minus ``dag_s``, and that
  divided by the number of scans run. Flat ``per_scan_s`` across study sizes means that per-scan
  work does not grow with the size of the study.

Usage::

    python benchmarks/bench_dag.py                      # 10, 100, 1000 scans; prints a table
    python benchmarks/bench_dag.py --sizes 10 100 --profile   # + cProfile of the largest -n
    python benchmarks/bench_dag.py --sizes 1000 --run-scans 0  # DAG times only

Outputs go to ``benchmarks/out/dag/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

__all__ = ["dag_seconds", "floor_seconds", "main", "replicate_study", "rule_outputs", "rules_main",
           "run_scans"]

REPO = Path(__file__).resolve().parents[1]
#: CPU time (user + system, s) of the last command :func:`_measured` ran, and the median CPU
#: time of each :func:`dag_seconds` / :func:`floor_seconds` call, in call order.
_LAST_CPU = [0.0]
CPU_SECONDS: list[float] = []
OUT = REPO / "benchmarks" / "out" / "dag"
#: A small simulated study to replicate (3 subjects, 4 mm voxels; two tasks each).
SOURCE_DEMO = {"subjects": 3, "voxel_size": 4}


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def replicate_study(source: Path, dest: Path, n_scans: int) -> int:
    """Write a BIDS study of ``n_scans`` scans to ``dest`` by replicating ``source``'s subjects.

    New subject ``s0001`` copies source subject 1, ``s0002`` subject 2, ... cycling; images and
    sidecars are hard-linked under the new names and ``participants.tsv`` gets one row per new
    subject (the source subject's scores). Returns the number of scans written (whole subjects,
    so it may exceed ``n_scans`` by less than one subject's scans).
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    subjects = sorted(p.name[4:] for p in source.glob("sub-*") if p.is_dir())
    for item in source.iterdir():  # dataset-level files (description, inherited sidecars)
        if item.is_file() and item.name != "participants.tsv":
            shutil.copyfile(item, dest / item.name)
    participants = pd.read_csv(source / "participants.tsv", sep="\t", dtype=str)
    rows, written, index = [], 0, 0
    while written < n_scans:
        src_sub = subjects[index % len(subjects)]
        new_sub = f"s{index + 1:04d}"
        for path in sorted((source / f"sub-{src_sub}").rglob("*")):
            if path.is_file():
                rel = str(path.relative_to(source)).replace(f"sub-{src_sub}", f"sub-{new_sub}")
                _link(path, dest / rel)
                written += path.name.endswith(("_pet.nii.gz", "_pet.nii"))
        row = participants[participants["participant_id"] == f"sub-{src_sub}"].copy()
        row["participant_id"] = f"sub-{new_sub}"
        rows.append(row)
        index += 1
    table = pd.concat(rows, ignore_index=True)
    table.to_csv(dest / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    return written


def _smk(workdir: Path, overlay: Path, *args: str) -> list[str]:
    """A snakemake command on the repository's workflow with ``overlay`` over config.yaml."""
    return [sys.executable, "-m", "snakemake", *args, "--snakefile", str(REPO / "Snakefile"),
            "--directory", str(workdir), "--configfile", str(REPO / "config" / "config.yaml"),
            str(overlay)]


def _n_jobs(log: str) -> int:
    match = re.search(r"^total\s+(\d+)", log, flags=re.MULTILINE)
    return int(match.group(1)) if match else 0


def dag_seconds(workdir: Path, overlay: Path, *targets: str, repeat: int = 3,
                quiet: bool = False) -> tuple[float, float, int]:
    """Median wall time (s) and peak RSS (MB) of ``snakemake -n`` over ``repeat`` runs; jobs
    (``quiet``: with ``--quiet``, which prints no job list and no job count). The median CPU
    time (user + system, s) of the same runs is left in ``CPU_SECONDS[-1]``."""
    times, cpus, peak, n_jobs = [], [], 0.0, 0
    flags = ("-n", "--cores", "2", *(("--quiet",) if quiet else ()))
    for _ in range(repeat):
        elapsed, rss, log = _measured(_smk(workdir, overlay, *targets, *flags), workdir)
        times.append(elapsed)
        cpus.append(_LAST_CPU[0])
        peak, n_jobs = max(peak, rss), _n_jobs(log)
    CPU_SECONDS.append(statistics.median(cpus))
    return statistics.median(times), peak, n_jobs


def _floor_workflow(folder: Path, bids: Path) -> Path:
    """A Snakefile with petbp's jobs for the scans of ``bids`` and nothing else: per scan a TAC
    job, one fit job (all the subject's TACs in; two models' tables and the subject's k2' out)
    and one map job (the scan's k2' in; a mask and two windows' maps out); per subject a QC
    figure (first scan); one group table of all fits (the jobs of petbp since session 6; a
    k2' job per subject before). Every rule
    has plain file inputs (no input functions, params, logs or resources), so a dry run
    measures Snakemake's own cost for that many jobs."""
    folder.mkdir(parents=True, exist_ok=True)
    scans = sorted(str(p.relative_to(bids))[: -len("_pet.nii.gz")]
                   for p in bids.glob("sub-*/pet/*_pet.nii.gz"))
    text = f"""BIDS = {str(bids)!r}
OUT = {str(folder / "results")!r}
SCANS = {scans!r}
SUBJECTS = sorted({{s.split("/")[0] for s in SCANS}})
FIRST = {{sub: min(s for s in SCANS if s.startswith(sub + "/")) for sub in SUBJECTS}}
BY_SUBJECT = {{sub: [s for s in SCANS if s.startswith(sub + "/")] for sub in SUBJECTS}}
wildcard_constraints:
    scan=r"sub-[A-Za-z0-9]+/pet/sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",
    sub=r"sub-[A-Za-z0-9]+",
rule all:
    input:
        OUT + "/group/bp_nd.tsv",
        [f"{{OUT}}/{{s}}_cond-{{c}}_bpnd.nii.gz" for s in SCANS for c in ("base", "late")],
        [f"{{OUT}}/{{sub}}/{{sub}}_qc.png" for sub in SUBJECTS],
rule tacs:
    input: BIDS + "/{{scan}}_pet.nii.gz", BIDS + "/{{scan}}_pet.json"
    output: OUT + "/{{scan}}_tacs.tsv"
    shell: "touch {{output}}"
rule fit:
    input: lambda w: [f"{{OUT}}/{{s}}_tacs.tsv" for s in BY_SUBJECT[w.scan.split("/")[0]]]
    output:
        OUT + "/{{scan}}_model-a_bp.tsv",
        OUT + "/{{scan}}_model-b_bp.tsv",
        OUT + "/{{scan}}_k2prime.json",
    shell: "touch {{output}}"
rule collect:
    input: [f"{{OUT}}/{{s}}_model-{{m}}_bp.tsv" for s in SCANS for m in ("a", "b")]
    output: OUT + "/group/bp_nd.tsv"
    shell: "touch {{output}}"
rule parametric_maps:
    input: BIDS + "/{{scan}}_pet.nii.gz", OUT + "/{{scan}}_tacs.tsv", OUT + "/{{scan}}_k2prime.json"
    output:
        OUT + "/{{scan}}_mask.nii.gz",
        OUT + "/{{scan}}_cond-base_bpnd.nii.gz",
        OUT + "/{{scan}}_cond-late_bpnd.nii.gz",
    shell: "touch {{output}}"
rule qc:
    input: lambda w: BIDS + "/" + FIRST[w.sub] + "_pet.nii.gz"
    output: OUT + "/{{sub}}/{{sub}}_qc.png"
    shell: "touch {{output}}"
"""
    path = folder / "Snakefile"
    path.write_text(text)
    return path


def floor_seconds(folder: Path, bids: Path, repeat: int = 3,
                  quiet: bool = False) -> tuple[float, int]:
    """Median wall time (s) of ``snakemake -n`` of :func:`_floor_workflow`, and its jobs (the
    median CPU time in ``CPU_SECONDS[-1]``)."""
    snakefile = _floor_workflow(folder, bids)
    times, cpus, n_jobs = [], [], 0
    for _ in range(repeat):
        cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "2", "--snakefile",
               str(snakefile), "--directory", str(folder), *(("--quiet",) if quiet else ())]
        elapsed, _, log = _measured(cmd, folder)
        times.append(elapsed)
        cpus.append(_LAST_CPU[0])
        n_jobs = _n_jobs(log)
    CPU_SECONDS.append(statistics.median(cpus))
    return statistics.median(times), n_jobs


def run_scans(workdir: Path, overlay: Path, targets: list[str]) -> tuple[float, int]:
    """Wall time (s) of running the jobs that make ``targets`` (--cores 2), and their number."""
    elapsed, _, log = _measured(_smk(workdir, overlay, *targets, "--cores", "2"), workdir)
    return elapsed, _n_jobs(log)


def scan_targets(overlay: Path, workdir: Path, subjects: list[str]) -> list[str]:
    """Every per-scan and per-subject output of ``subjects`` (from ``snakemake --summary``)."""
    cmd = _smk(workdir, overlay, "--summary", "--cores", "1")
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=True)
    files = [ln.split("\t")[0] for ln in proc.stdout.splitlines()[1:] if "\t" in ln]
    keep = tuple(f"/sub-{s}/" for s in subjects)
    return sorted(f for f in files if any(k in f for k in keep) and "/logs/" not in f)


def _measured(cmd: list[str], cwd: Path, timeout: float = 3600) -> tuple[float, float, str]:
    """Run ``cmd``; return wall time (s), peak RSS (MB) of it and its descendants, and output.

    The peak is ``ru_maxrss`` from ``wait4`` on the child: the largest resident set of the
    process or any descendant it waited for (not their sum). Its CPU time (user + system, s,
    with the descendants it waited for) is left in ``_LAST_CPU[0]``: on a shared machine
    wall time depends on the other users' load, CPU time much less.
    """
    log = cwd / ".bench_cmd.log"
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    _LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024.0, text


def rule_outputs(workdir: Path, overlay: Path, per_rule: int = 3) -> dict[str, list[str]]:
    """Up to ``per_rule`` outputs of different jobs of every rule (``snakemake --summary``).

    Jobs with several outputs list each of them; only outputs with the same last name part as
    the rule's first output (e.g. ``tmap.nii.gz``) are kept, one per job.
    """
    cmd = _smk(workdir, overlay, "--cores", "1", "--summary")
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, check=True)
    rows = [ln.split("\t") for ln in proc.stdout.splitlines() if "\t" in ln]
    col = {name: i for i, name in enumerate(rows[0])}
    chosen: dict[str, list[str]] = {}
    for row in rows[1:]:
        rule, output = row[col["rule"]], row[col["output_file"]]
        picked = chosen.setdefault(rule, [])
        kind = Path(picked[0]).name.rsplit("_", 1)[-1] if picked else None
        if len(picked) < per_rule and (kind is None or output.endswith("_" + kind)):
            picked.append(output)
    return chosen


def _overlay(path: Path, **config: object) -> Path:
    import yaml

    config.setdefault("regions", str(REPO / "config" / "regions.yaml"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({k: str(v) if isinstance(v, Path) else v
                                    for k, v in config.items()}))
    return path


def _simulate(dest: Path, subjects: int, voxel_size: float) -> tuple[Path, float, float]:
    """Simulate the demo study into ``dest``; its BIDS folder, wall time (s) and peak RSS (MB)."""
    code = ("from pipeline.simulate.study import write_demo_study; "
            f"write_demo_study({str(dest)!r}, subjects={subjects}, voxel_size={voxel_size})")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    elapsed, peak, _ = _measured([sys.executable, "-c", code], dest)
    return dest / "bids", elapsed, peak


def rules_main(args: argparse.Namespace) -> pd.DataFrame:
    """Simulate a demo study, run the workflow locally, then measure one job of every rule."""
    root = OUT / f"rules-{args.subjects}sub-{args.voxel_size:g}mm"
    bids, sim_s, sim_mb = _simulate(root / "demo", args.subjects, args.voxel_size)
    overlay = _overlay(root / "config.yaml", bids_dir=bids, output_dir=root / "results")
    full_s, _, _ = _measured(_smk(root, overlay, "--cores", "2"), root)
    print(f"simulate_demo: {sim_s:.1f} s, peak {sim_mb:.0f} MB; full local run "
          f"(--cores 2): {full_s:.1f} s", flush=True)
    rows = []
    for rule, outputs in sorted(rule_outputs(root, overlay).items()):
        runs = [_measured(_smk(root, overlay, output, "--cores", "1", "--force"), root)
                for output in outputs]
        rows.append({"rule": rule, "jobs_measured": len(runs),
                     "peak_rss_mb": round(max(r[1] for r in runs), 1),
                     "wall_s": round(max(r[0] for r in runs), 1)})
        print(rows[-1], flush=True)
    elapsed, peak, _ = _measured(_smk(root, overlay, "--cores", "1", "-n"), root)
    rows.append({"rule": "(snakemake -n, baseline)", "peak_rss_mb": round(peak, 1),
                 "wall_s": round(elapsed, 1)})
    rows.append({"rule": "simulate_demo", "peak_rss_mb": round(sim_mb, 1),
                 "wall_s": round(sim_s, 1)})
    return pd.DataFrame(rows)


def dag_main(args: argparse.Namespace) -> pd.DataFrame:
    """DAG build time and per-scan run cost for each study size."""
    source, _, _ = _simulate(OUT / "source", 3, args.voxel_size) if args.source is None \
        else (Path(args.source), 0.0, 0.0)
    run_subjects = [f"s{i + 1:04d}" for i in range(args.run_scans // 2)]
    rows = []
    for size in args.sizes:
        root = OUT / f"study-{size}"
        n_scans = replicate_study(source, root / "bids", size)
        overlay = _overlay(root / "config.yaml", bids_dir=root / "bids",
                           output_dir=root / "results")
        load = os.getloadavg()[0]
        # the first parse detects every scan's space by reading its image and keeps the
        # evidence under output_dir/.petbp/plans once output_dir exists: timed on its own,
        # then every dry run below reads the evidence, as every later parse of a study does
        (root / "results").mkdir(parents=True, exist_ok=True)
        first_s, _, _ = dag_seconds(root, overlay, repeat=1, quiet=True)
        dag_s, dag_mb, n_jobs = dag_seconds(root, overlay, repeat=args.repeat)
        dag_cpu = CPU_SECONDS[-1]
        quiet_s, _, _ = dag_seconds(root, overlay, repeat=args.repeat, quiet=True)
        quiet_cpu = CPU_SECONDS[-1]
        floor_s, floor_jobs = floor_seconds(root / "floor", root / "bids", args.repeat)
        floor_cpu = CPU_SECONDS[-1]
        floor_quiet_s, _ = floor_seconds(root / "floor", root / "bids", args.repeat, quiet=True)
        floor_quiet_cpu = CPU_SECONDS[-1]
        row = {"scans": n_scans, "load": f"{load:.1f}-{os.getloadavg()[0]:.1f}",
               "jobs": n_jobs, "first_parse_quiet_s": round(first_s, 2),
               "dag_s": round(dag_s, 2), "dag_cpu_s": round(dag_cpu, 2),
               "dag_quiet_s": round(quiet_s, 2), "dag_quiet_cpu_s": round(quiet_cpu, 2),
               "floor_jobs": floor_jobs, "floor_s": round(floor_s, 2),
               "floor_cpu_s": round(floor_cpu, 2), "floor_quiet_s": round(floor_quiet_s, 2),
               "floor_quiet_cpu_s": round(floor_quiet_cpu, 2), "dag_peak_mb": round(dag_mb)}
        if run_subjects:
            targets = scan_targets(overlay, root, run_subjects)
            one_s, _, _ = dag_seconds(root, overlay, targets[0], repeat=1)
            sub_s, _, _ = dag_seconds(root, overlay, *targets, repeat=1)
            _clear_outputs(root / "results")
            run_s, n_run = run_scans(root, overlay, targets)
            ran = 2 * len(run_subjects)
            row.update({"one_job_dry_s": round(one_s, 1), "scans_run": ran,
                        "jobs_run": n_run, "run_s": round(run_s, 1),
                        "per_scan_s": round((run_s - sub_s) / ran, 1)})
        rows.append(row)
        print(rows[-1], flush=True)
        if args.profile and size == max(args.sizes):
            _profile(root, overlay)
    return pd.DataFrame(rows)


def _clear_outputs(results: Path) -> None:
    """Delete a study's outputs but keep the cached space evidence (``.petbp/plans``), so the
    timed run parses as a rerun does, not as the first parse."""
    for folder, keep in ((results, ".petbp"), (results / ".petbp", "plans")):
        if not folder.is_dir():
            continue
        for item in folder.iterdir():
            if item.name == keep:
                continue
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()


def _profile(root: Path, overlay: Path, top: int = 25) -> None:
    """cProfile ``snakemake -n`` and print where petbp's own code spends the time."""
    prof = root / "dag.prof"
    cmd = _smk(root, overlay, "-n", "--cores", "2", "--quiet")
    subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), *cmd[1:]], cwd=root,
                   capture_output=True, check=True)
    stats = pstats.Stats(str(prof))
    stats.sort_stats("cumulative").print_stats(str(REPO), top)
    stats.sort_stats("cumulative").print_stats("snakemake/(dag|workflow).py", 8)


def main(argv: list[str] | None = None) -> int:
    """Command line: ``dag`` (default) or ``rules``; prints a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", default="dag", choices=["dag", "rules"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--run-scans", type=int, default=4,
                        help="scans (an even number: whole subjects) run in every study")
    parser.add_argument("--repeat", type=int, default=3, help="dry runs per size (median)")
    parser.add_argument("--source", help="BIDS study to replicate (default: simulate 3 subjects)")
    parser.add_argument("--subjects", type=int, default=3, help="rules mode: demo subjects")
    parser.add_argument("--voxel-size", type=float, default=4.0, help="demo voxel size, mm")
    parser.add_argument("--profile", action="store_true", help="cProfile the largest -n")
    args = parser.parse_args(argv)
    table = rules_main(args) if args.mode == "rules" else dag_main(args)
    print(table.to_markdown(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
