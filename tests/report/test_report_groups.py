"""The report's patient-vs-control section on tables made by the workflow's own steps."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pipeline.config import validate_config
from pipeline.design import load_design
from pipeline.groups import parse_groups
from pipeline.report import write_report
from pipeline.report.collect import collect_results
from pipeline.report.findings import key_findings
from pipeline.stats.group_tables import write_group_differences, write_ratings
from pipeline.stats.tables import write_contrasts, write_correlations

REGIONS = ("amygdala_l", "thalamus_l", "caudate_l")


def _config():
    return validate_config({
        "bids_dir": "demo", "output_dir": "unused",
        "design": {
            "conditions": {"rejbase": {"task": "rejection", "window": [5, 45]},
                           "rejection": {"task": "rejection", "window": [45, 90]},
                           "accbase": {"task": "acceptance", "window": [5, 45]},
                           "acceptance": {"task": "acceptance", "window": [45, 90]}},
            "contrasts": {"rejection": {"baseline": "rejbase", "condition": "rejection"},
                          "acceptance": {"baseline": "accbase", "condition": "acceptance"},
                          "rejvsacc": {"baseline": "rejbase", "condition": "rejection",
                                       "control": "acceptance"}},
            "groups": {"column": "group", "levels": ["HC", "MDD"], "covariates": ["age"]}},
        "models": {"logan_ref": {"t_star": 10}},
        "primary_model": "logan_ref",
        "statistics": {"null_drift": {"method": "none"}, "n_perm": 200, "n_boot": 200,
                       "correlations": [
                           {"contrast": "acceptance", "region": "thalamus_l",
                            "score": "desire", "group": "HC"},
                           {"contrast": "acceptance", "region": "thalamus_l",
                            "score": "desire"}]},
        "voxelwise": {"enabled": False}})


@pytest.fixture(scope="module")
def group_results(tmp_path_factory):
    """An output folder with bp_nd, contrasts, group differences, ratings, correlations:
    10 HC release 8 % in thalamus_l under acceptance, 10 MDD none; ratings follow it."""
    rng = np.random.default_rng(15)
    out = tmp_path_factory.mktemp("groups_out")
    group = out / "group"
    group.mkdir()
    pids = [f"sub-{i + 1:02d}" for i in range(20)]
    parts = pd.DataFrame({"participant_id": pids, "group": ["HC"] * 10 + ["MDD"] * 10,
                          "age": rng.integers(20, 40, 20).astype(float)})
    parts.to_csv(out / "participants.tsv", sep="\t", index=False)
    rows, release = [], {}
    for pid, grp in zip(pids, parts.group, strict=True):
        for task, base, cond in (("rejection", "rejbase", "rejection"),
                                 ("acceptance", "accbase", "acceptance")):
            for region in REGIONS:
                b = 2.0 + rng.normal(0, 0.2)
                pct = (8.0 if (grp, task, region) == ("HC", "acceptance", "thalamus_l")
                       else 0.0) + rng.normal(0, 2.0)
                if (task, region) == ("acceptance", "thalamus_l"):
                    release[pid] = pct
                for name, value in ((base, b), (cond, b * (1 - pct / 100))):
                    rows.append(dict(participant_id=pid, session="n/a", task=task, run="n/a",
                                     condition=name, region=region, model="logan_ref",
                                     bp_nd=value))
    pd.DataFrame(rows).to_csv(group / "bp_nd.tsv", sep="\t", index=False)
    base = rng.normal(50, 8, 20)
    change = np.array([release[p] for p in pids]) + rng.normal(0, 2, 20)
    pheno = out / "phenotype"
    pheno.mkdir()
    pd.DataFrame({"participant_id": pids, "rejbase": base, "rejection": base + 1,
                  "accbase": base, "acceptance": base + change}).to_csv(
        pheno / "desire.tsv", sep="\t", index=False)
    config = _config()
    write_contrasts(group / "bp_nd.tsv", group / "contrasts.tsv",
                    group / "contrast_values.tsv", group / "exclusions.tsv",
                    design=config["design"], drift_method="none", participants=parts)
    write_group_differences(group / "contrast_values.tsv", parts,
                            group / "group_differences.tsv",
                            groups=parse_groups(config["design"]["groups"]), n_perm=200)
    write_ratings({"desire": pheno / "desire.tsv"}, group / "contrast_values.tsv", parts,
                  group / "rating_changes.tsv", group / "rating_tests.tsv",
                  design=load_design(config), correlations=config["statistics"]
                  ["correlations"], n_perm=200)
    write_correlations(group / "contrast_values.tsv", parts, group / "correlations.tsv",
                       specs=config["statistics"]["correlations"], model="logan_ref",
                       n_boot=200, n_perm=200, ratings_path=group / "rating_changes.tsv")
    return out, config


def test_collect_separates_pooled_and_group_rows(group_results):
    """contrasts keeps the pooled rows (no group column); group rows are kept apart."""
    out, config = group_results
    results = collect_results(out, config)
    assert "group" not in results.contrasts.columns
    assert set(results.group_contrasts["group"]) == {"HC", "MDD"}
    assert len(results.contrasts) * 2 == len(results.group_contrasts)
    assert results.group_differences is not None and results.rating_tests is not None


def test_key_findings_name_the_group_difference(group_results):
    """The planted thalamus_l acceptance difference is named with its CI and p_FDR."""
    out, config = group_results
    lines = key_findings(collect_results(out, config))
    line = next(x for x in lines if x.startswith("HC vs MDD, acceptance"))
    assert re.search(r"thalamus_l \+\d+\.\d points \(95% CI", line), line
    assert "p_FDR" in line and "HC " in line and "MDD " in line


def test_report_shows_group_section_without_errors(group_results, tmp_path):
    """The section has the difference table and plot, per-group paired plots, rating
    table/plot/scatter; methods describe the group tests; no figure failed."""
    out, config = group_results
    html_path = write_report(out, config, tmp_path / "report.html",
                             methods_md=tmp_path / "methods.md", figure_dir=tmp_path / "figs")
    html = html_path.read_text()
    assert "Patients and controls, ratings" in html
    assert 'id="group-differences-logan_ref"' in html and 'id="rating-tests"' in html
    figs = {p.name for p in (tmp_path / "figs").iterdir()}
    assert {"group_differences_HCvsMDD_model-logan_ref.svg", "rating_changes.svg",
            "paired_contrast-acceptance_group-HC_model-logan_ref.svg",
            "paired_contrast-rejvsacc_group-MDD_model-logan_ref.svg",
            "rating_scatter_contrast-acceptance_region-thalamus_l_score-desire.svg"} <= figs
    assert "could not be drawn" not in html
    methods = (tmp_path / "methods.md").read_text()
    assert "Welch's unequal-variance t test" in methods and "[Welch1947]" in methods
    assert "adjusted for age" in methods and "rating change" in methods


def test_one_group_report_says_there_are_no_groups(synthetic_report):
    """A study without groups or ratings gets one sentence in the section, no error."""
    html, _, _ = synthetic_report
    assert "This study has no patient-vs-control design" in html.read_text()
