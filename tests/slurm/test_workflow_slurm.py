"""The petbp workflow on a real (one-node) SLURM cluster gives the same group tables as a local run.

A small simulated study (3 subjects x 2 tasks, 4 mm voxels) is analysed twice with the same inputs
and config: locally (``--cores 2``) and through ``workflow/profiles/slurm`` (executor plugin, one
SLURM job per rule instance). Voxelwise maps are switched off and the Monte Carlo sizes reduced to
keep the wall time small; the regional analysis runs in full, up to the group tables (the report
and its region overlays are left out: they add two rounds of SLURM jobs).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "Snakefile").exists(),
                       reason="the workflow (Snakefile) is not in this checkout"),
]

REPO = Path(__file__).resolve().parents[2]
GROUP_TABLES = ("bp_nd.tsv", "contrasts.tsv", "correlations.tsv")
#: Same code, inputs and seeds on the same machine: results must agree to rounding (1e-9 relative).
RTOL = 1e-9


def _overlay(tmp: Path, bids: Path, out: Path) -> Path:
    """A config overlay on config/config.yaml: the study, the output and small run sizes."""
    path = tmp / f"config-{out.name}.yaml"
    path.write_text(yaml.safe_dump({
        "bids_dir": str(bids), "output_dir": str(out),
        "regions": str(REPO / "config" / "regions.yaml"),
        "voxelwise": {"enabled": False},
        "statistics": {"n_boot": 200, "n_perm": 200},
    }))
    return path


def _targets(work: Path) -> list[str]:
    return [str(work / "results" / "group" / name) for name in GROUP_TABLES]


def _workflow_args(overlay: Path, *targets: str) -> list[str]:
    # targets first: --configfile takes every following word as a file
    return [*targets, "--snakefile", str(REPO / "Snakefile"),
            "--configfile", str(REPO / "config" / "config.yaml"), str(overlay)]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """The simulated BIDS study both runs analyse."""
    from pipeline.simulate.study import write_demo_study

    root = tmp_path_factory.mktemp("study")
    return Path(write_demo_study(root, subjects=3, voxel_size=4))


@pytest.fixture(scope="module")
def local_results(study, tmp_path_factory, snakemake_runner) -> Path:
    """Group tables of a local run."""
    work = tmp_path_factory.mktemp("local")
    overlay = _overlay(work, study, work / "results")
    result = snakemake_runner(work, "--cores", "2", *_workflow_args(overlay, *_targets(work)),
                              timeout=600)
    assert result.returncode == 0, result.stdout[-4000:]
    return work / "results"


def _assert_same_table(local: Path, slurm: Path) -> None:
    a = pd.read_csv(local, sep="\t", keep_default_na=False)
    b = pd.read_csv(slurm, sep="\t", keep_default_na=False)
    assert list(a.columns) == list(b.columns), local.name
    assert a.shape == b.shape, local.name
    for col in a.columns:
        x = pd.to_numeric(a[col].where(a[col] != "n/a"), errors="coerce")
        y = pd.to_numeric(b[col].where(b[col] != "n/a"), errors="coerce")
        if x.notna().any() and x.isna().eq(a[col].eq("n/a") | a[col].eq("")).all():
            np.testing.assert_allclose(y.to_numpy(), x.to_numpy(), rtol=RTOL, atol=0,
                                       equal_nan=True, err_msg=f"{local.name}: {col}")
        else:
            assert a[col].tolist() == b[col].tolist(), f"{local.name}: {col}"


def test_workflow_on_slurm_matches_local_run(study, local_results, slurm_cluster, slurm_run,
                                             tmp_path):
    """Every job but `all` goes through SLURM, and the group tables equal the local run's."""
    overlay = _overlay(tmp_path, study, tmp_path / "results")
    result = slurm_run(tmp_path, *_workflow_args(overlay, *_targets(tmp_path)), timeout=900)
    assert result.returncode == 0, result.stdout[-6000:]
    submitted = [line.split("SLURM jobid ")[1].split()[0] for line in result.stdout.splitlines()
                 if "has been submitted with SLURM jobid" in line]
    # the profile groups per-subject region jobs and the group tables: 3 subjects + 1 tables job
    assert len(submitted) == 4
    assert set(submitted) <= slurm_cluster.submitted_job_ids()
    assert "localrule" not in result.stdout  # no job ran in the submitting process
    for name in GROUP_TABLES:
        _assert_same_table(local_results / "group" / name, tmp_path / "results" / "group" / name)


def test_failing_scan_job_fails_the_slurm_run_clearly(study, slurm_cluster, slurm_run, tmp_path):
    """A scan whose image holds a NaN in the brain fails its SLURM job; the run fails, saying
    why. (A NaN, not an infinity: the parse-time space detection reads NaN as 0, so the scan
    reaches its job, whereas an infinity already fails the detection before any job.)"""
    bids = tmp_path / "bids"
    for path in study.rglob("*"):  # a copy of the study (hard links: inputs stay untouched)
        target = bids / path.relative_to(study)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.hardlink_to(path)
    bad = next(bids.glob("sub-*/pet/*_pet.nii.gz"))
    img = nib.load(bad)
    data = np.asarray(img.dataobj, dtype=np.float32)
    data[tuple(s // 2 for s in data.shape[:3])] = np.nan
    bad.unlink()  # replace the link, not the shared file
    header = img.header.copy()
    header.set_data_dtype(np.float32)  # the demo may store int16 + scale, which has no NaN
    nib.save(nib.Nifti1Image(data, img.affine, header), bad)
    overlay = _overlay(tmp_path, bids, tmp_path / "results")
    stem = bad.name.removesuffix("_pet.nii.gz")
    # only the bad scan's region TACs: the job that reads the image
    tacs = tmp_path / "results" / bad.parent.relative_to(bids) / \
        f"{stem}_desc-{_region_set_name()}_tacs.tsv"
    result = slurm_run(tmp_path, *_workflow_args(overlay, str(tacs)), timeout=300)
    assert result.returncode != 0
    assert "Error in rule extract_tacs" in result.stdout
    # the run names the rule's log, which holds the InputError naming the file and the fix
    rule_log = tmp_path / "results" / ".petbp" / "logs" / bad.parent.relative_to(bids) / \
        f"{stem}_extract_tacs.log"
    assert str(rule_log) in result.stdout
    assert f"{bad}: NaN or infinite values inside the brain" in rule_log.read_text()
    # ...and the job's SLURM log (one job: the profile groups the subject's region jobs) too
    logs = list((tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert len(logs) == 1
    assert "infinite values" in logs[0].read_text()


def _region_set_name() -> str:
    from pipeline.regions import load_region_config

    return load_region_config(REPO / "config" / "regions.yaml").name
