"""The workflow on two-group studies: the DAG on a painted study, bad group input at run
time, and (slow) an image-level simulated patient-vs-control study scored with the
phantom's own labels against the planted truth."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from painted import write_painted_study

from pipeline.config import load_config

ROOT = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _snakemake(config: Path, *args: str, timeout: int = 900):
    cmd = [SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(ROOT),
           "--cores", "2", "--force-use-threads", "--configfile", str(config),
           "--replace-workflow-config", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _scenario(tmp_path: Path, **changes) -> Path:
    """config/groups.yaml with ``changes`` (dotted keys) as a scenario file."""
    config = yaml.safe_load((ROOT / "config/groups.yaml").read_text())
    for dotted, value in changes.items():
        node = config
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def grouped_study(tmp_path_factory) -> Path:
    """A painted 6-subject study with a group column (3 HC, 3 MDD) and ratings."""
    bids = write_painted_study(tmp_path_factory.mktemp("grouped") / "bids", subjects=6,
                               seed=5, voxel_size=6)
    parts = pd.read_csv(bids / "participants.tsv", sep="\t")
    parts.insert(1, "group", ["HC"] * 3 + ["MDD"] * 3)
    parts.to_csv(bids / "participants.tsv", sep="\t", index=False)
    (bids / "phenotype").mkdir()
    rng = np.random.default_rng(5)
    base = rng.normal(50, 5, 6)
    pd.DataFrame({"participant_id": parts.participant_id, "rejbase": base,
                  "rejection": base - 2, "accbase": base, "acceptance": base + 5}).to_csv(
        bids / "phenotype" / "desire.tsv", sep="\t", index=False)
    return bids


def test_dry_run_plans_group_rules(grouped_study, tmp_path):
    """-n plans the rating, group-difference and voxelwise group steps once each/contrast."""
    config = _scenario(tmp_path, bids_dir=str(grouped_study),
                       output_dir=str(tmp_path / "out"))
    result = _snakemake(config, "-n")
    assert result.returncode == 0, result.stderr + result.stdout
    lines = [line.split()[:2] for line in result.stdout.splitlines()]
    for rule, count in (("rating_changes", "1"), ("group_differences", "1"),
                        ("voxelwise_groups", "3")):
        assert [rule, count] in lines, (rule, result.stdout[-2000:])


@pytest.mark.slow
def test_unknown_level_fails_with_one_error_and_no_tables(grouped_study, tmp_path):
    """A level missing from participants.tsv stops the contrasts step with the file and
    the fix in the log; no group table is written."""
    out = tmp_path / "out"
    config = _scenario(tmp_path, bids_dir=str(grouped_study), output_dir=str(out),
                       **{"design.groups.levels": ["HC", "MDDX"],
                          "voxelwise.enabled": False,
                          # pooled correlations only: a correlation within the unknown level
                          # is refused when the config is read (tests/test_config.py)
                          "statistics.correlations": [
                              {"contrast": "rejection", "region": "amygdala_l",
                               "score": "resilience"}]})
    result = _snakemake(config, "--keep-going")
    assert result.returncode != 0
    log = (out / ".petbp/logs/group/contrasts.log").read_text()
    assert "level 'MDDX' has no participant" in log and "participants.tsv" in log
    assert not (out / "group/contrasts.tsv").exists()
    assert not (out / "group/group_differences.tsv").exists()


def _measured_truth(seed: int, subjects: int, mixing: pd.DataFrame) -> pd.Series:
    """Noiseless region-level twin of the image study (same subjects: same seed and
    streams) minus its null twin, analysed like the data: the measured-space difference."""
    from pipeline.simulate import simulate_region_tacs
    from pipeline.simulate.group_study import two_group_demo
    from pipeline.stats.region_study import region_group_differences

    config = copy.deepcopy(load_config(str(ROOT / "config/groups.yaml")))
    config["models"] = {"logan_ref": config["models"]["logan_ref"]}
    config["design"]["groups"]["covariates"] = []
    settings, groups, _ = two_group_demo(subjects)
    diffs = []
    for null in (False, True):
        study = simulate_region_tacs(subjects=subjects, seed=seed, noise=0.0, null=null,
                                     pv_mixing=mixing, settings=settings, groups=groups)
        diffs.append(region_group_differences(study, config)[1]
                     .set_index(["contrast", "region"])["difference"])
    return diffs[0] - diffs[1]


@pytest.mark.slow
@pytest.mark.calibration  # 2 min on 2 cores; kept out of CI to hold it under 20 min
def test_two_group_study_scored_with_phantom_labels(tmp_path):
    """16 HC releasing 5-8 % (SD 3-4) in 6 regions, 16 MDD none, image-level (3 mm, seed
    2015 as in config/groups.yaml), analysed with a user atlas of the phantom's labels:
    >= 7 of the 9 planted (contrast, region) differences FDR-significant, each within 2.5
    points of the measured-space truth, none in unplanted regions, and the planted r = 0.7
    rating-release correlation in controls comes out >= 0.4."""
    from pipeline.simulate import write_demo_study
    from pipeline.simulate.group_study import (
        TWO_GROUP_ACCEPTANCE,
        TWO_GROUP_REJECTION,
        write_phantom_atlas,
    )

    seed, subjects = 2015, 32
    bids = write_demo_study(tmp_path / "sim", subjects=subjects, voxel_size=3,
                            study="two_groups", seed=seed)
    regions = write_phantom_atlas(tmp_path / "atlas", voxel_size=3)
    out = tmp_path / "out"
    config = _scenario(tmp_path, bids_dir=str(bids), output_dir=str(out),
                       regions=str(regions), **{"voxelwise.enabled": False})
    result = _snakemake(config, timeout=3600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out / "report.html").is_file()
    diff = pd.read_csv(out / "group/group_differences.tsv", sep="\t")
    diff = diff[(diff.model == "logan_ref") & (diff.contrast != "rejvsacc")]
    diff = diff.set_index(["contrast", "region"])
    planted = {("rejection", r) for r in TWO_GROUP_REJECTION} \
        | {("acceptance", r) for r in TWO_GROUP_ACCEPTANCE}
    found = set(diff.index[diff.p_fdr < 0.05])
    mixing = pd.read_csv(tmp_path / "atlas/pv_mixing.tsv", sep="\t", index_col="region")
    truth = _measured_truth(seed, subjects, mixing)
    errors = {k: float(diff.loc[k, "difference"] - truth[k]) for k in planted}
    effects = pd.read_csv(tmp_path / "sim/truth/effects.tsv", sep="\t")
    hc = set(pd.read_csv(bids / "participants.tsv", sep="\t").query("group == 'HC'")
             .participant_id)
    means = 100 * effects.assign(hc=effects.participant_id.isin(hc)).groupby(
        ["condition", "region", "hc"])["release_fraction"].mean()
    planted_mean = {k: means[(*k, True)] - means[(*k, False)] for k in planted}
    cor = pd.read_csv(out / "group/correlations.tsv", sep="\t")
    r = cor[(cor.group == "HC") & (cor.method == "pearson")
            & (cor.measure == "activation_pct")].r.iloc[0]
    report = {"found": sorted(found & planted), "unplanted": sorted(found - planted),
              "errors_vs_measured": errors, "measured_truth": truth[list(planted)].to_dict(),
              "planted_truth": planted_mean, "rating_r_HC": r}
    (tmp_path / "score.json").write_text(json.dumps({k: str(v) for k, v in report.items()}))
    print(json.dumps({k: str(v) for k, v in report.items()}, indent=1))
    assert len(found & planted) >= 7, report
    assert max(abs(e) for e in errors.values()) <= 2.5, report
    assert not found - planted, report
    assert r >= 0.4, report
