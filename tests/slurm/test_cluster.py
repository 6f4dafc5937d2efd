"""The one-node SLURM cluster works, and Snakemake's SLURM executor runs a toy workflow on it."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

TOY_SNAKEFILE = """
rule all:
    input: expand("out/{i}.txt", i=range(3))

rule make:
    output: "out/{i}.txt"
    threads: 1
    resources: mem_mb=100, runtime=5
    shell: "echo $SLURM_JOB_ID > {output}"
"""

FAILING_SNAKEFILE = """
rule all:
    input: "ok.txt", "bad.txt"

rule ok:
    output: "ok.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo $SLURM_JOB_ID > {output}"

rule bad:
    output: "bad.txt"
    resources: mem_mb=100, runtime=5
    shell: "echo 'petbp-toy: deliberate failure' >&2; exit 3"
"""


def _squeue_state(job_id: str) -> str:
    out = subprocess.run(["squeue", "--states=all", "--noheader", "--format=%T", "--jobs", job_id],
                         capture_output=True, text=True, timeout=10)
    return out.stdout.strip()


def test_sbatch_runs_a_job_and_squeue_reports_it(slurm_cluster, tmp_path):
    """A batch job (with an srun step) runs on the node; squeue shows it COMPLETED afterwards."""
    out = tmp_path / "job.out"
    submitted = slurm_cluster.run(
        "sbatch", "--parsable", f"--output={out}", f"--chdir={tmp_path}",
        "--wrap", "srun hostname; echo job=$SLURM_JOB_ID")
    job_id = submitted.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while _squeue_state(job_id) != "COMPLETED" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _squeue_state(job_id) == "COMPLETED"
    lines = out.read_text().split()
    assert lines == [slurm_cluster.node, f"job={job_id}"]
    assert job_id in slurm_cluster.submitted_job_ids()


def test_toy_workflow_runs_through_slurm(slurm_cluster, slurm_run, tmp_path: Path):
    """Every job of a toy workflow is a distinct SLURM job known to slurmctld."""
    (tmp_path / "Snakefile").write_text(TOY_SNAKEFILE)
    result = slurm_run(tmp_path)
    assert result.returncode == 0, result.stdout[-4000:]
    job_ids = [(tmp_path / "out" / f"{i}.txt").read_text().strip() for i in range(3)]
    # each output was written inside a SLURM job, and each job is one that slurmctld allocated
    assert len(set(job_ids)) == 3
    assert set(job_ids) <= slurm_cluster.submitted_job_ids()
    for job_id in job_ids:
        assert f"with SLURM jobid {job_id}" in result.stdout
    logs = list((tmp_path / ".snakemake" / "slurm_logs" / "rule_make").glob("*/*.log"))
    assert sorted(p.stem for p in logs) == sorted(job_ids)


def test_failing_job_fails_the_run_with_a_clear_message(slurm_cluster, slurm_run, tmp_path: Path):
    """A job that exits non-zero on the cluster fails the run, naming the rule and SLURM job."""
    (tmp_path / "Snakefile").write_text(FAILING_SNAKEFILE)
    result = slurm_run(tmp_path)
    assert result.returncode != 0
    assert "Error in rule bad" in result.stdout
    assert "failed, SLURM status is: 'FAILED'" in result.stdout
    assert (tmp_path / "ok.txt").exists()  # keep-going: the independent job still ran
    assert not (tmp_path / "bad.txt").exists()
    bad_logs = list((tmp_path / ".snakemake" / "slurm_logs" / "rule_bad").glob("*.log"))
    assert len(bad_logs) == 1
    assert "petbp-toy: deliberate failure" in bad_logs[0].read_text()
