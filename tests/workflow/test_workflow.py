"""The Snakemake workflow end to end on small painted studies (tests/workflow/painted.py).

Scenario configs are files in this folder, run with ``--replace-workflow-config`` so only
the scenario and the schema defaults apply.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from painted import write_painted_study

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake(*args: str, config: Path | None = None, **overrides: str):
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT),
           "--cores", "2", "--force-use-threads", *args]
    if config is not None:
        cmd += ["--configfile", str(config), "--replace-workflow-config"]
    if overrides:
        cmd += ["--config", *[f"{k}={v}" for k, v in overrides.items()]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=ROOT)


@pytest.fixture(scope="module")
def windows_study(tmp_path_factory) -> Path:
    """4 subjects, rejection and acceptance scans; sub-03 lacks its acceptance scan."""
    return write_painted_study(tmp_path_factory.mktemp("windows") / "bids", subjects=4,
                               seed=3, voxel_size=6, missing=(("03", "acceptance"),))


def test_dry_run_lists_every_stage(windows_study, tmp_path):
    """-n plans TACs, fits, k2', maps and group steps for each analysed scan: one fit job per
    scan (every model, and the subject's k2' beside the scan) and one map job per scan (its
    mask and every window it holds), in the map rule of its set of conditions."""
    result = _snakemake("-n", config=ROOT / "tests/workflow/windows.yaml",
                        bids_dir=windows_study, output_dir=tmp_path / "out")
    assert result.returncode == 0, result.stderr + result.stdout
    text = result.stdout
    for rule, count in (("extract_tacs", 7), ("fit_regions", 7), ("region_qc", 4),
                        ("parametric_maps_rejbase_rejection", 4),
                        ("parametric_maps_accbase_acceptance", 3), ("contrasts", 1)):
        assert any(line.split()[:2] == [rule, str(count)] for line in text.splitlines()), \
            (rule, text[-2000:])
    assert text.count("_k2prime.json") >= 7  # each fit job writes its subject's k2'
    assert "estimate_k2prime" not in text
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_bad_sidecar_stops_before_any_job(windows_study, tmp_path):
    """A sidecar without FrameDuration stops the run at parse time, naming the file."""
    bids = tmp_path / "bids"
    subprocess.run(["cp", "-r", str(windows_study), str(bids)], check=True)
    sidecar = bids / "sub-02/pet/sub-02_task-rejection_pet.json"
    fields = json.loads(sidecar.read_text())
    del fields["FrameDuration"]
    sidecar.write_text(json.dumps(fields))
    result = _snakemake("-n", config=ROOT / "tests/workflow/windows.yaml", bids_dir=bids,
                        output_dir=tmp_path / "out")
    assert result.returncode != 0
    assert "sub-02_task-rejection_pet.json" in result.stderr + result.stdout
    assert "FrameDuration" in result.stderr + result.stdout
    assert not (tmp_path / "out").exists()


def test_config_with_a_repeated_key_stops_before_any_job(windows_study, tmp_path):
    """A key pasted twice into the config file (YAML would keep the second silently) stops
    the run at parse time, naming the file, the key and both lines."""
    text = (ROOT / "tests/workflow/windows.yaml").read_text()
    config = tmp_path / "twice.yaml"
    config.write_text(text + "seed_note: 1\nseed_note: 2\n")
    result = _snakemake("-n", config=config, bids_dir=windows_study,
                        output_dir=tmp_path / "out")
    assert result.returncode != 0
    message = result.stderr + result.stdout
    lines = len(text.splitlines())
    assert "twice.yaml" in message and "'seed_note' appears twice" in message, message[-2000:]
    assert f"lines {lines + 1} and {lines + 2}" in message, message[-2000:]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_full_run_then_nothing_to_do_then_partial_rerun(windows_study, tmp_path):
    """A tiny study runs end to end; a second run does nothing; only lost files are remade."""
    out = tmp_path / "out"
    config = ROOT / "tests/workflow/windows.yaml"
    result = _snakemake(config=config, bids_dir=windows_study, output_dir=out)
    assert result.returncode == 0, result.stderr[-4000:]
    group = out / "group"
    for name in ("bp_nd", "contrasts", "correlations", "null_drift", "exclusions"):
        assert (group / f"{name}.tsv").is_file(), name
    assert (group / "rejection_model-loganref_tmap.nii.gz").is_file()
    assert (out / "report.html").is_file()
    # the loaded images kept for the maps and region figures are gone after a run succeeds
    assert not (out / ".petbp/cache/pet").exists()
    contrasts = pd.read_csv(group / "contrasts.tsv", sep="\t")
    assert set(contrasts.contrast) == {"rejection", "acceptance", "rejvsacc"}
    # sub-03 has no acceptance scan: 3 participants at most (fewer where the release model
    # did not fit a noisy region of this tiny study, listed with the reason)
    assert set(contrasts[contrasts.contrast == "rejvsacc"].n) == {3}
    assert contrasts[contrasts.contrast == "acceptance"].n.max() == 3
    exclusions = pd.read_csv(group / "exclusions.tsv", sep="\t")
    assert ((exclusions.participant_id == "sub-03") & (exclusions.contrast == "acceptance")
            & exclusions.reason.str.contains("no task-acceptance scan")).any()
    fewer = contrasts[(contrasts.contrast == "acceptance") & (contrasts.n < 3)]
    for row in fewer.itertuples():
        reasons = exclusions[(exclusions.contrast == "acceptance")
                             & (exclusions.region == row.region)
                             & (exclusions.model == row.model)].reason
        assert reasons.str.contains("release model did not fit").any(), row.region
    again = _snakemake("-n", config=config, bids_dir=windows_study, output_dir=out)
    assert "Nothing to be done" in again.stdout + again.stderr
    # as after an interruption: one scan's fit and the group table are missing
    (out / "sub-01/pet/sub-01_task-rejection_model-mrtm2_bp.tsv").unlink()
    (out / "group/bp_nd.tsv").unlink()
    plan = _snakemake("-n", config=config, bids_dir=windows_study, output_dir=out)
    jobs = [line.split() for line in (plan.stdout + plan.stderr).splitlines()]
    planned = {j[0] for j in jobs if len(j) == 2 and j[1].isdigit()}
    counts = {j[0]: int(j[1]) for j in jobs if len(j) == 2 and j[1].isdigit()}
    assert counts.get("fit_regions") == 1 and counts.get("collect_bp_nd") == 1, counts
    # the maps estimate k2' themselves: a refit does not remake them
    assert not planned & {"extract_tacs", "parametric_maps_rejbase_rejection",
                          "parametric_maps_accbase_acceptance", "region_qc"}, counts


@pytest.mark.slow
def test_separate_scans_scenario_runs(tmp_path):
    """The separate-scans design (task-baseline/-rejection/-acceptance) runs end to end."""
    bids = write_painted_study(tmp_path / "bids", subjects=3, seed=4, design="separate",
                               voxel_size=6)
    out = tmp_path / "out"
    result = _snakemake(config=ROOT / "tests/workflow/separate.yaml", bids_dir=bids,
                        output_dir=out)
    assert result.returncode == 0, result.stderr[-4000:]
    contrasts = pd.read_csv(out / "group/contrasts.tsv", sep="\t")
    assert set(contrasts.contrast) == {"rejection", "acceptance"}
    assert (contrasts.drift_pct == 0).all()  # separate scans: no window drift to remove
    assert pd.read_csv(out / "group/null_drift.tsv", sep="\t").empty
